/* SPDX-License-Identifier: Apache-2.0 */
/* The checks of `apilb preflight` that talk to the Kubernetes API or read a
 * kubeconfig: one LIST of the apiservers the cluster publishes, a
 * SelfSubjectAccessReview per permission apilb needs, /readyz of one
 * apiserver, and a summary of another kubeconfig (the kubelet's). They need
 * libcurl, jansson and libyaml, so they live in the discovery module and the
 * executable reaches them only through struct apicheck_ops (exported by
 * apilb-discovery.so beside apilb_watcher_ops). Every call is blocking and
 * bounded by the timeout given to open(); main thread only (preflight runs
 * no other thread). Nothing here logs: results come back as sentences. */
#ifndef WATCHER_APICHECK_H
#define WATCHER_APICHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define APICHECK_OPS_SYMBOL "apilb_apicheck_ops"
#define APICHECK_MSG_BYTES 512

/* Credentials and the connection settings of the checks. */
struct apicheck;

/* What a kubeconfig points at. A plain value apart from ca_pem. */
struct apicheck_kubeconfig {
    char host[ADDR_HOST_MAX]; /* host of server: (no brackets) */
    unsigned port;
    char tls_name[ADDR_HOST_MAX]; /* tls-server-name, or "" */
    char *ca_pem;                 /* its CA bundle (data or file), new; NULL for none */
};

struct apicheck_ops {
    /* curl_global_init; once, before open(). Returns 0 or -EIO. */
    int (*global_init)(void);
    void (*global_cleanup)(void);
    /* Reads the credentials (kubeconfig at path, or the service account in
     * sa_dir when kubeconfig is NULL). timeout_ms bounds each request.
     * Returns 0 with *out (free with close()), or a negative errno with one
     * line in err naming the file and what is wrong. */
    int (*open)(const char *kubeconfig, const char *sa_dir, unsigned timeout_ms,
                struct apicheck **out, char *err, size_t err_len);
    void (*close)(struct apicheck *c);
    /* The server of the credentials as "https://host:port" and the name TLS
     * verifies there, for messages. */
    void (*describe)(const struct apicheck *c, char *buf, size_t len);
    /* The CA bundle the credentials trust (PEM, new), or NULL for none. */
    char *(*ca)(const struct apicheck *c);
    /* One LIST of the `kubernetes` EndpointSlices (slices) or Endpoints in
     * default, through the credentials' server or, when it cannot be
     * reached, via[0..n_via) in turn. Appends the ready apiservers to
     * out[*n..max) (duplicates skipped). Returns 0, or a negative errno with
     * a sentence (HTTP status and the apiserver's message) in msg. */
    int (*discover)(struct apicheck *c, bool slices, const struct addr *via, size_t n_via,
                    struct addr *out, size_t max, size_t *n, char *msg, size_t msg_len);
    /* POSTs a SelfSubjectAccessReview for verb on resource (of group, "" for
     * the core group) in namespace default (nodes: cluster-scoped, no
     * namespace), routed like discover(). Returns
     * 0 with *allowed and the apiserver's reason (may be "") in msg, or a
     * negative errno with a sentence in msg. */
    int (*access)(struct apicheck *c, const struct addr *via, size_t n_via, const char *verb,
                  const char *group, const char *resource, bool *allowed, char *msg,
                  size_t msg_len);
    /* GET /readyz of the apiserver at a with the credentials. Returns the
     * HTTP status (and the failed checks of a failing answer in msg), or a
     * negative errno with the connection or TLS error in msg. */
    long (*readyz)(struct apicheck *c, const struct addr *a, char *msg, size_t msg_len);
    /* Reads the kubeconfig at path (its current context). Returns 0, or a
     * negative errno with one line in err. The caller frees out->ca_pem. */
    int (*kubeconfig_read)(const char *path, struct apicheck_kubeconfig *out, char *err,
                           size_t err_len);
};
extern const struct apicheck_ops apilb_apicheck_ops;

#endif
