/* SPDX-License-Identifier: Apache-2.0 */
/* Credentials to reach the apiserver: from a kubeconfig file (the subset
 * kubectl, kubeadm, kubelet and RKE write: server, certificate-authority(-data),
 * client-certificate(-data), client-key(-data), token, tokenFile,
 * tls-server-name, insecure-skip-tls-verify; paths relative to the file) or
 * from the pod's service account. exec and auth-provider plugins are not
 * supported and say so. Files named here are re-read by their users on every
 * new connection, so rotation needs no restart. */
#ifndef WATCHER_KUBECONFIG_H
#define WATCHER_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

struct kube_creds {
    char tls_name[ADDR_HOST_MAX]; /* host in the URL: what TLS verifies (and SNI) */
    bool tls_name_set;            /* tls_name was configured (tls-server-name, in-cluster),
                                     not taken from the server URL */
    unsigned port;                /* port of the server URL */
    char origin[ADDR_HOST_MAX];   /* host of the server URL, dialled when no route is known */
    char *ca_file, *ca_pem;       /* PEM file or decoded data (data wins) */
    char *cert_file, *cert_pem;
    char *key_file, *key_pem;
    char *token, *token_file;
    bool insecure;
    char source[64]; /* "kubeconfig", "in-cluster" (for logs) */
};

/* Loads current-context of the kubeconfig at path. Returns 0 or -EINVAL with
 * one line in err naming the file and what is wrong. */
int kube_creds_load_kubeconfig(const char *path, struct kube_creds *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Loads the service account from dir (token, ca.crt) and the environment
 * (KUBERNETES_SERVICE_PORT; the name verified is kubernetes.default.svc). */
int kube_creds_load_incluster(const char *dir, struct kube_creds *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Fills buf with the bearer token (re-reading tokenFile every call, trailing
 * whitespace stripped). Returns its length, 0 for none, or -errno. */
int kube_creds_token(const struct kube_creds *c, char *buf, size_t len);

#define KUBE_CA_MAX (1u << 20)
/* The longest bearer token used (projected tokens are ~1 KiB). */
#define KUBE_TOKEN_MAX 16384

/* The CA bundle as PEM text: the decoded data, or the file's content (read
 * now, at most KUBE_CA_MAX bytes). Caller frees. NULL when there is none or
 * the file cannot be read. */
char *kube_creds_ca(const struct kube_creds *c);

/* The client certificate and key as PEM text (the decoded data, or the
 * files' content read now) and the bearer token (read now), each new
 * (caller frees, wiping the key and the token) or NULL when the
 * credentials have none. Returns 0, or -errno with *what naming the part
 * that could not be read ("client certificate", "client key", "token");
 * nothing is returned then. */
int kube_creds_client(const struct kube_creds *c, char **cert_pem, char **key_pem, char **token,
                      const char **what) __attribute__((warn_unused_result));

void kube_creds_free(struct kube_creds *c);

#endif
