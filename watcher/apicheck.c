/* SPDX-License-Identifier: Apache-2.0 */
/* The API checks of `apilb preflight`; see apicheck.h. One blocking libcurl
 * request at a time, TLS always verified (against the credentials' CA, or
 * the system bundle when they name none), never logged. */
#include "apicheck.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credcurl.h"
#include "endpoints.h"
#include "jsonlimit.h"
#include "kubeconfig.h"
#include "strbuf.h"

#define REPLY_MAX (8u << 20)
#define TOKEN_MAX 16384
/* The name every apiserver certificate carries (kubeadm, RKE, k3s). */
#define APICHECK_SERVER_NAME "kubernetes"

struct apicheck {
    struct kube_creds creds;
    unsigned timeout_ms;
};

static int global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

static void global_cleanup(void)
{
    curl_global_cleanup();
}

static int open_creds(const char *kubeconfig, const char *sa_dir, unsigned timeout_ms,
                      struct apicheck **out, char *err, size_t err_len)
{
    struct apicheck *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    rc = kubeconfig != NULL ? kube_creds_load_kubeconfig(kubeconfig, &c->creds, err, err_len)
                            : kube_creds_load_incluster(sa_dir, &c->creds, err, err_len);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->timeout_ms = timeout_ms;
    *out = c;
    return 0;
}

static void close_creds(struct apicheck *c)
{
    if (c == NULL)
        return;
    kube_creds_free(&c->creds);
    free(c);
}

static void bracket(const char *host, char *buf, size_t len)
{
    snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]" : "%s", host);
}

static void describe(const struct apicheck *c, char *buf, size_t len)
{
    char host[ADDR_HOST_MAX + 2];

    bracket(c->creds.origin, host, sizeof(host));
    if (strcmp(c->creds.tls_name, c->creds.origin) == 0)
        snprintf(buf, len, "https://%s:%u", host, c->creds.port);
    else
        snprintf(buf, len, "https://%s:%u (verified as %s)", host, c->creds.port,
                 c->creds.tls_name);
}

static char *ca(const struct apicheck *c)
{
    return kube_creds_ca(&c->creds);
}

/* The name TLS verifies at the apiserver ip: the credentials' own name
 * (tls-server-name, or the server's host when ip is that host), else the
 * name every apiserver certificate carries. */
static const char *name_at(const struct apicheck *c, const char *ip)
{
    if (ip == NULL || strcmp(c->creds.tls_name, c->creds.origin) != 0 ||
        strcmp(ip, c->creds.origin) == 0)
        return c->creds.tls_name;
    return APICHECK_SERVER_NAME;
}

static size_t collect_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct strbuf *b = arg;
    size_t n = size * nmemb;

    if (b->len + n > REPLY_MAX)
        return 0;
    strbuf_add(b, data, n);
    return strbuf_failed(b) ? 0 : n;
}

/* One request to the apiserver at a (NULL: the credentials' server). post,
 * when not NULL, is a JSON body to POST. The answer is appended to body.
 * Returns the HTTP status, or -EIO with curl's sentence in msg. */
static long call(struct apicheck *c, const struct addr *a, const char *path, const char *post,
                 struct strbuf *body, char *msg, size_t msg_len)
{
    char ip[ADDR_STRLEN] = "", url[1024], name[ADDR_HOST_MAX + 2], target[ADDR_STRLEN + 2];
    char connect_to[2 * ADDR_HOST_MAX + 32], errbuf[CURL_ERROR_SIZE] = "";
    char *token = malloc(TOKEN_MAX), *auth = malloc(TOKEN_MAX + 32);
    struct curl_slist *hdrs = NULL, *ct = NULL;
    unsigned port = c->creds.port;
    CURL *h = curl_easy_init();
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    long code = -EIO;

    if (h == NULL || token == NULL || auth == NULL) {
        snprintf(msg, msg_len, "out of memory");
        goto out;
    }
    if (a != NULL) {
        char *colon;

        addr_format(a, ip, sizeof(ip));
        colon = strrchr(ip, ':');
        *colon = '\0';
        port = addr_port(a);
        snprintf(target, sizeof(target), "%s", ip);
        if (ip[0] == '[') {
            memmove(ip, ip + 1, strlen(ip));
            ip[strlen(ip) - 1] = '\0';
        }
    } else {
        bracket(c->creds.origin, target, sizeof(target));
    }
    bracket(name_at(c, a != NULL ? ip : NULL), name, sizeof(name));
    snprintf(url, sizeof(url), "https://%s:%u%s", name, port, path);
    snprintf(connect_to, sizeof(connect_to), "%s:%u:%s:%u", name, port, target, port);
    ct = curl_slist_append(NULL, connect_to);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "apilb-preflight/" APILB_VERSION);
    credcurl_apply(h, &c->creds);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (post != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    }
    if (kube_creds_token(&c->creds, token, TOKEN_MAX) > 0) {
        snprintf(auth, TOKEN_MAX + 32, "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    } else {
        snprintf(msg, msg_len, "%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
        code = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
    }
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(ct);
    if (auth != NULL)
        explicit_bzero(auth, TOKEN_MAX + 32);
    if (token != NULL)
        explicit_bzero(token, TOKEN_MAX);
    free(auth);
    free(token);
    return code;
}

/* call() through the credentials' server, then via[0..n_via) while the
 * apiserver cannot be reached. */
static long call_routed(struct apicheck *c, const struct addr *via, size_t n_via, const char *path,
                        const char *post, struct strbuf *body, char *msg, size_t msg_len)
{
    long code = call(c, NULL, path, post, body, msg, msg_len);

    for (size_t i = 0; code < 0 && i < n_via; i++) {
        body->len = 0;
        code = call(c, &via[i], path, post, body, msg, msg_len);
    }
    return code;
}

/* "HTTP 403: <the Status message>" for a failed request. */
static void status_sentence(long code, const struct strbuf *body, char *msg, size_t msg_len)
{
    json_t *root = body->len > 0 ? json_loadb(body->p, body->len, 0, NULL) : NULL;
    json_t *m = json_object_get(root, "message");

    snprintf(msg, msg_len, "HTTP %ld%s%s", code, json_is_string(m) ? ": " : "",
             json_is_string(m) ? json_string_value(m) : "");
    json_decref(root);
}

static int discover(struct apicheck *c, bool slices, const struct addr *via, size_t n_via,
                    struct addr *out, size_t max, size_t *n, char *msg, size_t msg_len)
{
    const char *path = slices ? "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
                                "?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"
                              : "/api/v1/namespaces/default/endpoints"
                                "?fieldSelector=metadata.name%3Dkubernetes";
    struct watcher_endpoint *ep = NULL;
    struct strbuf body;
    char why[160];
    json_error_t je;
    json_t *root = NULL, *items, *it;
    size_t i, end;
    long code;
    int rc = -EIO;

    strbuf_init(&body);
    code = call_routed(c, via, n_via, path, NULL, &body, msg, msg_len);
    if (code < 0) {
        rc = (int)code;
        goto out;
    }
    if (code != 200) {
        status_sentence(code, &body, msg, msg_len);
        rc = code == 403 ? -EACCES : -EIO;
        goto out;
    }
    /* The tree jansson would build is bounded first, as the watcher does. */
    if (jsonlimit_scan(body.p, body.len, JSONLIMIT_VALUES, JSONLIMIT_DEPTH, &end, why,
                       sizeof(why)) < 0) {
        snprintf(msg, msg_len, "the answer is refused before parsing: %s", why);
        rc = -EINVAL;
        goto out;
    }
    root = json_loadb(body.p, body.len, 0, &je);
    items = json_object_get(root, "items");
    if (!json_is_array(items)) {
        snprintf(msg, msg_len, "the answer is not a list: %s", root == NULL ? je.text : "no items");
        rc = -EINVAL;
        goto out;
    }
    ep = malloc(sizeof(*ep) * ADDR_SET_MAX);
    if (ep == NULL) {
        snprintf(msg, msg_len, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    json_array_foreach(items, i, it)
    {
        size_t k = 0;
        int family;

        if (endpoints_extract(it, slices ? ENDPOINTS_SLICE : ENDPOINTS_V1, ep, ADDR_SET_MAX, &k,
                              &family, why, sizeof(why)) < 0) {
            snprintf(msg, msg_len, "an object of the list is unusable: %s", why);
            rc = -EINVAL;
            goto out;
        }
        for (size_t j = 0; j < k; j++) {
            size_t m = 0;

            while (m < *n && addr_cmp(&out[m], &ep[j].addr) != 0)
                m++;
            if (m == *n && *n == max) {
                snprintf(msg, msg_len,
                         "the cluster lists more than %zu apiservers, the most "
                         "apilb keeps",
                         max);
                rc = -E2BIG;
                goto out;
            }
            if (m == *n)
                out[(*n)++] = ep[j].addr;
        }
    }
    rc = 0;
out:
    json_decref(root);
    free(ep);
    strbuf_free(&body);
    return rc;
}

static int access_review(struct apicheck *c, const struct addr *via, size_t n_via, const char *verb,
                         const char *group, const char *resource, bool *allowed, char *msg,
                         size_t msg_len)
{
    /* nodes are cluster-scoped: asked without a namespace */
    const char *ns = strcmp(resource, "nodes") == 0 ? "" : "default";
    json_t *req =
        json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:s, s:s}}}", "apiVersion", "authorization.k8s.io/v1",
                  "kind", "SelfSubjectAccessReview", "spec", "resourceAttributes", "namespace", ns,
                  "verb", verb, "group", group, "resource", resource);
    char *post = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    struct strbuf body;
    json_t *root = NULL, *st, *ok, *reason;
    long code;
    int rc = -EIO;

    strbuf_init(&body);
    if (post == NULL) {
        snprintf(msg, msg_len, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    code = call_routed(c, via, n_via, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                       post, &body, msg, msg_len);
    if (code < 0) {
        rc = (int)code;
        goto out;
    }
    if (code != 201 && code != 200) {
        status_sentence(code, &body, msg, msg_len);
        goto out;
    }
    root = json_loadb(body.p, body.len, 0, NULL);
    st = json_object_get(root, "status");
    ok = json_object_get(st, "allowed");
    reason = json_object_get(st, "reason");
    if (!json_is_boolean(ok)) {
        snprintf(msg, msg_len, "the answer has no status.allowed");
        rc = -EINVAL;
        goto out;
    }
    *allowed = json_is_true(ok);
    snprintf(msg, msg_len, "%s", json_is_string(reason) ? json_string_value(reason) : "");
    rc = 0;
out:
    json_decref(root);
    json_decref(req);
    free(post);
    strbuf_free(&body);
    return rc;
}

static long readyz(struct apicheck *c, const struct addr *a, char *msg, size_t msg_len)
{
    struct strbuf body;
    long code;

    strbuf_init(&body);
    msg[0] = '\0';
    /* The exact path: only it is exempt from priority and fairness. */
    code = call(c, a, "/readyz", NULL, &body, msg, msg_len);
    if (code > 0 && code != 200) {
        size_t off = 0;
        char *line, *save = NULL;

        strbuf_add(&body, "", 1);
        for (line = body.p != NULL ? strtok_r(body.p, "\n", &save) : NULL; line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            char *end = strstr(line, " failed");

            if (strncmp(line, "[-]", 3) != 0 || end == NULL || off + 2 >= msg_len)
                continue;
            off += (size_t)snprintf(msg + off, msg_len - off, "%s%.*s", off ? ", " : "",
                                    (int)(end - line - 3), line + 3);
        }
    }
    strbuf_free(&body);
    return code;
}

static int kubeconfig_read(const char *path, struct apicheck_kubeconfig *out, char *err,
                           size_t err_len)
{
    static const char flag[] = "--kubeconfig=";
    struct kube_creds kc;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = kube_creds_load_kubeconfig(path, &kc, err, err_len);
    if (rc < 0) {
        /* The loader names the daemon's flag; this file came from another. */
        if (strncmp(err, flag, sizeof(flag) - 1) == 0) {
            char *copy = strdup(err + sizeof(flag) - 1);

            if (copy != NULL)
                snprintf(err, err_len, "--kubelet-kubeconfig=%s", copy);
            free(copy);
        }
        return rc;
    }
    snprintf(out->host, sizeof(out->host), "%s", kc.origin);
    out->port = kc.port;
    if (strcmp(kc.tls_name, kc.origin) != 0)
        snprintf(out->tls_name, sizeof(out->tls_name), "%s", kc.tls_name);
    out->ca_pem = kube_creds_ca(&kc);
    kube_creds_free(&kc);
    return 0;
}

const struct apicheck_ops apilb_apicheck_ops = {
    .global_init = global_init,
    .global_cleanup = global_cleanup,
    .open = open_creds,
    .close = close_creds,
    .describe = describe,
    .ca = ca,
    .discover = discover,
    .access = access_review,
    .readyz = readyz,
    .kubeconfig_read = kubeconfig_read,
};
