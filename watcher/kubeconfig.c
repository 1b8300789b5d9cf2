/* SPDX-License-Identifier: Apache-2.0 */
/* kubeconfig and in-cluster credentials; see kubeconfig.h. */
#include "kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileread.h"
#include "yamljson.h"

#define FILE_MAX (4u << 20)

/* Decodes base64 (kubeconfig "-data" fields) into a NUL-terminated string. */
static char *b64_decode(const char *in, char *err, size_t err_len, const char *field)
{
    size_t n = strlen(in), pad = 0;
    unsigned char *out;
    int got;

    while (n > 0 && (in[n - 1] == '\n' || in[n - 1] == ' '))
        n--;
    if (n == 0 || n % 4 != 0 || n > FILE_MAX) {
        snprintf(err, err_len, "%s: not valid base64", field);
        return NULL;
    }
    out = malloc(n / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (got < 0) {
        free(out);
        snprintf(err, err_len, "%s: not valid base64", field);
        return NULL;
    }
    if (in[n - 1] == '=')
        pad++;
    if (in[n - 2] == '=')
        pad++;
    out[got - (int)pad] = '\0';
    return (char *)out;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The "cluster"/"user"/"context" body of the entry named name in list. */
static json_t *named(json_t *root, const char *list, const char *inner, const char *name)
{
    json_t *arr = json_object_get(root, list), *it;
    size_t i;

    if (!json_is_array(arr))
        return NULL;
    json_array_foreach(arr, i, it)
    {
        const char *n = str(it, "name");

        if (n != NULL && strcmp(n, name) == 0) {
            json_t *body = json_object_get(it, inner);

            return json_is_object(body) ? body : NULL;
        }
    }
    return NULL;
}

/* Resolves a path relative to the kubeconfig's directory. */
static char *resolve(const char *dir, const char *p)
{
    char *out;

    if (p[0] == '/' || dir == NULL)
        return strdup(p);
    out = malloc(strlen(dir) + strlen(p) + 2);
    if (out != NULL)
        sprintf(out, "%s/%s", dir, p);
    return out;
}

static int parse_server(const char *server, struct kube_creds *c, char *err, size_t err_len)
{
    char hostport[ADDR_HOST_MAX + 16];
    const char *p, *why;
    size_t n;

    if (strncmp(server, "https://", 8) != 0) {
        snprintf(err, err_len, "server '%s': must start with https://", server);
        return -EINVAL;
    }
    p = server + 8;
    n = strcspn(p, "/?#");
    if (n == 0 || n >= sizeof(hostport)) {
        snprintf(err, err_len, "server '%s': no host", server);
        return -EINVAL;
    }
    memcpy(hostport, p, n);
    hostport[n] = '\0';
    if (addr_split(hostport, 443, c->origin, &c->port, &why) < 0) {
        snprintf(err, err_len, "server '%s': %s", server, why);
        return -EINVAL;
    }
    snprintf(c->tls_name, sizeof(c->tls_name), "%s", c->origin);
    return 0;
}

/* The cluster and user of the current context of root (the kubeconfig at
 * path), or of the only cluster and user of a file without contexts; the
 * user may be NULL. Returns 0, or -EINVAL with one line in err. */
static int pick_context(json_t *root, const char *path, json_t **cluster, json_t **user, char *err,
                        size_t err_len)
{
    const char *cur = str(root, "current-context"), *cn, *un;
    json_t *ctx;

    if (cur == NULL || (ctx = named(root, "contexts", "context", cur)) == NULL) {
        /* A file with exactly one cluster and user and no context is common
         * in hand-written configs: use those. */
        json_t *cl = json_object_get(root, "clusters"), *us = json_object_get(root, "users");

        if (json_array_size(cl) == 1 && json_array_size(us) <= 1) {
            *cluster = json_object_get(json_array_get(cl, 0), "cluster");
            *user = json_object_get(json_array_get(us, 0), "user");
            return 0;
        }
        snprintf(err, err_len, "--kubeconfig=%s: current-context '%s' not found", path,
                 cur != NULL ? cur : "(none)");
        return -EINVAL;
    }
    cn = str(ctx, "cluster");
    un = str(ctx, "user");
    *cluster = cn != NULL ? named(root, "clusters", "cluster", cn) : NULL;
    *user = un != NULL ? named(root, "users", "user", un) : NULL;
    if (*cluster == NULL) {
        snprintf(err, err_len, "--kubeconfig=%s: cluster '%s' of context '%s' not found", path,
                 cn != NULL ? cn : "(none)", cur);
        return -EINVAL;
    }
    return 0;
}

/* The cluster part: server, tls-server-name, insecure-skip-tls-verify and
 * the certificate authority (files relative to dir). Returns 0, or -EINVAL
 * with one line in err. */
static int load_cluster(json_t *cluster, const char *dir, const char *path, struct kube_creds *c,
                        char *err, size_t err_len)
{
    char sub[256] = "";
    const char *v;

    if (!json_is_object(cluster) || (v = str(cluster, "server")) == NULL) {
        snprintf(err, err_len, "--kubeconfig=%s: the cluster has no server", path);
        return -EINVAL;
    }
    if (parse_server(v, c, sub, sizeof(sub)) < 0)
        goto bad_field;
    if ((v = str(cluster, "tls-server-name")) != NULL && *v != '\0') {
        snprintf(c->tls_name, sizeof(c->tls_name), "%s", v);
        c->tls_name_set = true;
    }
    v = str(cluster, "insecure-skip-tls-verify");
    c->insecure = v != NULL && strcmp(v, "true") == 0;
    if ((v = str(cluster, "certificate-authority-data")) != NULL) {
        if ((c->ca_pem = b64_decode(v, sub, sizeof(sub), "certificate-authority-data")) == NULL)
            goto bad_field;
    } else if ((v = str(cluster, "certificate-authority")) != NULL) {
        c->ca_file = resolve(dir, v);
    }
    if (c->insecure && (c->ca_pem != NULL || c->ca_file != NULL)) {
        snprintf(err, err_len,
                 "--kubeconfig=%s: a certificate authority together with "
                 "insecure-skip-tls-verify is not allowed",
                 path);
        return -EINVAL;
    }
    return 0;
bad_field:
    snprintf(err, err_len, "--kubeconfig=%s: %s", path, sub);
    return -EINVAL;
}

/* The user part (user may be NULL: none): a client certificate with its
 * key, a token or a token file (files relative to dir); exec and
 * auth-provider are refused. Returns 0, or -EINVAL with one line in err. */
static int load_user(json_t *user, const char *dir, const char *path, struct kube_creds *c,
                     char *err, size_t err_len)
{
    char sub[256] = "";
    const char *v;

    if (!json_is_object(user))
        return 0;
    if (json_object_get(user, "exec") != NULL || json_object_get(user, "auth-provider")) {
        snprintf(err, err_len,
                 "--kubeconfig=%s: exec and auth-provider credentials are not supported "
                 "(use a client certificate or a token)",
                 path);
        return -EINVAL;
    }
    if ((v = str(user, "client-certificate-data")) != NULL) {
        if ((c->cert_pem = b64_decode(v, sub, sizeof(sub), "client-certificate-data")) == NULL)
            goto bad_field;
    } else if ((v = str(user, "client-certificate")) != NULL) {
        c->cert_file = resolve(dir, v);
    }
    if ((v = str(user, "client-key-data")) != NULL) {
        if ((c->key_pem = b64_decode(v, sub, sizeof(sub), "client-key-data")) == NULL)
            goto bad_field;
    } else if ((v = str(user, "client-key")) != NULL) {
        c->key_file = resolve(dir, v);
    }
    if ((c->cert_pem || c->cert_file) != (c->key_pem || c->key_file)) {
        snprintf(err, err_len,
                 "--kubeconfig=%s: a client certificate needs its key (and a key its "
                 "certificate)",
                 path);
        return -EINVAL;
    }
    if ((v = str(user, "token")) != NULL)
        c->token = strdup(v);
    else if ((v = str(user, "tokenFile")) != NULL)
        c->token_file = resolve(dir, v);
    return 0;
bad_field:
    snprintf(err, err_len, "--kubeconfig=%s: %s", path, sub);
    return -EINVAL;
}

int kube_creds_load_kubeconfig(const char *path, struct kube_creds *c, char *err, size_t err_len)
{
    char sub[256] = "", *text, *dir = NULL, *copy;
    json_t *root, *cluster, *user;
    size_t len;
    int rc;

    memset(c, 0, sizeof(*c));
    snprintf(c->source, sizeof(c->source), "kubeconfig");
    rc = fileread_all(path, FILE_MAX, &text, &len);
    if (rc < 0) {
        snprintf(err, err_len, "--kubeconfig=%s: cannot read: %s", path, strerror(-rc));
        return rc;
    }
    root = yamljson_load(text, len, sub, sizeof(sub));
    free(text);
    if (root == NULL) {
        snprintf(err, err_len, "--kubeconfig=%s: %s", path, sub);
        return -EINVAL;
    }
    copy = strdup(path);
    if (copy != NULL)
        dir = strdup(dirname(copy));
    free(copy);
    rc = pick_context(root, path, &cluster, &user, err, err_len);
    if (rc == 0)
        rc = load_cluster(cluster, dir, path, c, err, err_len);
    if (rc == 0)
        rc = load_user(user, dir, path, c, err, err_len);
    json_decref(root);
    free(dir);
    if (rc != 0)
        kube_creds_free(c);
    return rc;
}

int kube_creds_load_incluster(const char *dir, struct kube_creds *c, char *err, size_t err_len)
{
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    char path[4096];

    memset(c, 0, sizeof(*c));
    snprintf(c->source, sizeof(c->source), "in-cluster");
    snprintf(path, sizeof(path), "%s/token", dir);
    if (access(path, R_OK) != 0) {
        snprintf(err, err_len, "--in-cluster: cannot read %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    c->token_file = strdup(path);
    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    c->ca_file = strdup(path);
    /* Verify the name every apiserver certificate carries; the address to
     * dial comes from the upstream table (or the service host, last). */
    snprintf(c->tls_name, sizeof(c->tls_name), "kubernetes.default.svc");
    c->tls_name_set = true;
    snprintf(c->origin, sizeof(c->origin), "%s", host != NULL ? host : "kubernetes.default.svc");
    c->port = port != NULL ? (unsigned)atoi(port) : 443;
    if (c->port == 0 || c->port > 65535)
        c->port = 443;
    return 0;
}

int kube_creds_token(const struct kube_creds *c, char *buf, size_t len)
{
    size_t n;

    if (c->token != NULL) {
        snprintf(buf, len, "%s", c->token);
    } else if (c->token_file != NULL) {
        char *t;
        int e = fileread_all(c->token_file, FILE_MAX, &t, &n);

        if (e < 0)
            return e;
        snprintf(buf, len, "%s", t);
        free(t);
    } else {
        buf[0] = '\0';
        return 0;
    }
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return (int)n;
}

char *kube_creds_ca(const struct kube_creds *c)
{
    char *buf;
    size_t n;

    if (c->ca_pem != NULL)
        return strdup(c->ca_pem);
    if (c->ca_file == NULL || fileread_all(c->ca_file, KUBE_CA_MAX, &buf, &n) < 0)
        return NULL;
    if (n == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The PEM text of data, else of the file at path (read now); NULL in *out
 * when there is neither. */
static int pem_of(const char *data, const char *path, char **out)
{
    size_t n;

    *out = NULL;
    if (data != NULL)
        return (*out = strdup(data)) == NULL ? -ENOMEM : 0;
    if (path == NULL)
        return 0;
    return fileread_all(path, FILE_MAX, out, &n);
}

static void secret_free(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

int kube_creds_client(const struct kube_creds *c, char **cert_pem, char **key_pem, char **token,
                      const char **what)
{
    char *buf = NULL;
    int rc, n;

    *cert_pem = *key_pem = *token = NULL;
    *what = "client certificate";
    if ((rc = pem_of(c->cert_pem, c->cert_file, cert_pem)) < 0)
        goto fail;
    *what = "client key";
    if ((rc = pem_of(c->key_pem, c->key_file, key_pem)) < 0)
        goto fail;
    *what = "token";
    rc = -ENOMEM;
    if ((buf = malloc(KUBE_TOKEN_MAX)) == NULL)
        goto fail;
    n = kube_creds_token(c, buf, KUBE_TOKEN_MAX);
    if (n < 0) {
        rc = n;
        goto fail;
    }
    if (n > 0 && (*token = strdup(buf)) == NULL)
        goto fail;
    secret_free(buf);
    return 0;
fail:
    secret_free(buf);
    secret_free(*cert_pem);
    secret_free(*key_pem);
    *cert_pem = *key_pem = NULL;
    return rc;
}

void kube_creds_free(struct kube_creds *c)
{
    free(c->ca_file);
    free(c->ca_pem);
    free(c->cert_file);
    free(c->cert_pem);
    free(c->key_file);
    free(c->key_pem);
    free(c->token);
    free(c->token_file);
    c->ca_file = c->ca_pem = c->cert_file = c->cert_pem = c->key_file = c->key_pem = NULL;
    c->token = c->token_file = NULL;
}
