/* SPDX-License-Identifier: Apache-2.0 */
/* See resolve.h. A resolve_job is shared by the loop and its thread, under
 * its mutex; whichever of them lets go of it last frees it. Not libuv's
 * threadpool: a lookup that hangs there would hold a pool thread, and libuv
 * joins its pool at exit, so apilb could not exit before the resolver gave
 * up. A detached thread ends with the process. */
#define LOG_MODULE "resolve"
#include "resolve.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "upstream.h"

struct resolve_job {
    pthread_mutex_t mu;
    uv_async_t *done; /* NULL once the loop released the job */
    bool finished;    /* the thread has stored its results */
    int holders;      /* 2 (loop and thread) down to 0 */
    size_t n_seeds, n_out;
    struct config_seed seeds[UPSTREAM_MAX];
    struct addr out[UPSTREAM_MAX];
};

/* Appends a to out[0..*n) unless it is there; false when it is new and
 * out has max already. */
static bool add_unique(const struct addr *a, struct addr *out, size_t max, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (addr_cmp(&out[i], a) == 0)
            return true;
    if (*n == max)
        return false;
    out[(*n)++] = *a;
    return true;
}

int resolve_seed(const struct config_seed *sd, struct addr *out, size_t max, size_t *n, char *err,
                 size_t err_len)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct addr a;
    size_t before = *n, listed = 0;
    bool fits = true;
    char port[8];
    int rc;

    if (addr_from_ip(sd->host, sd->port, &a) == 0) {
        if (add_unique(&a, out, max, n))
            return 0;
        snprintf(err, err_len, "%s: one address more than the %zu of an address set", sd->host,
                 max);
        return -E2BIG;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", sd->port);
    rc = getaddrinfo(sd->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot resolve: %s", sd->host, gai_strerror(rc));
        return -ENOENT;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(a.ss))
            continue;
        memset(&a, 0, sizeof(a));
        memcpy(&a.ss, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        listed++;
        if (fits)
            fits = add_unique(&a, out, max, n);
    }
    freeaddrinfo(res);
    if (!fits) {
        *n = before; /* refused whole: none of the name's addresses */
        snprintf(err, err_len,
                 "%s: resolves to %zu addresses, with the %zu before them more "
                 "than the %zu of an address set",
                 sd->host, listed, before, max);
        return -E2BIG;
    }
    return 0;
}

/* Drops one holder of j; frees it after the last. */
static void job_put(struct resolve_job *j)
{
    int left;

    pthread_mutex_lock(&j->mu);
    left = --j->holders;
    pthread_mutex_unlock(&j->mu);
    if (left == 0) {
        pthread_mutex_destroy(&j->mu);
        free(j);
    }
}

static void *job_run(void *arg)
{
    struct resolve_job *j = arg;
    struct addr *out = malloc(sizeof(j->out));
    size_t n = 0;
    char err[256];

    /* Looked up into a buffer of its own: the loop reads j->out only after
     * finished, under the mutex. */
    for (size_t i = 0; out != NULL && i < j->n_seeds; i++)
        if (resolve_seed(&j->seeds[i], out, UPSTREAM_MAX, &n, err, sizeof(err)) != 0)
            log_warn("upstream name does not resolve", "source=--upstreams-file err=\"%s\"",
                     log_quote(err));
    if (out == NULL)
        log_warn("upstream names not looked up", "err=\"%s\"", strerror(ENOMEM));
    pthread_mutex_lock(&j->mu);
    if (out != NULL)
        memcpy(j->out, out, n * sizeof(out[0]));
    j->n_out = n;
    j->finished = true;
    if (j->done != NULL)
        uv_async_send(j->done);
    pthread_mutex_unlock(&j->mu);
    free(out);
    job_put(j);
    return NULL;
}

int resolve_job_start(const struct config_seed *sd, size_t n, uv_async_t *done,
                      struct resolve_job **out)
{
    struct resolve_job *j = calloc(1, sizeof(*j));
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    *out = NULL;
    if (j == NULL)
        return -ENOMEM;
    assert(n <= UPSTREAM_MAX); /* the upstreams file refuses more */
    memcpy(j->seeds, sd, n * sizeof(sd[0]));
    j->n_seeds = n;
    j->done = done;
    j->holders = 2;
    pthread_mutex_init(&j->mu, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, job_run, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&j->mu);
        free(j);
        return -rc;
    }
    *out = j;
    return 0;
}

bool resolve_job_take(struct resolve_job *j, struct addr *out, size_t *n)
{
    bool finished;

    pthread_mutex_lock(&j->mu);
    finished = j->finished;
    if (finished) {
        memcpy(out, j->out, j->n_out * sizeof(out[0]));
        *n = j->n_out;
    }
    pthread_mutex_unlock(&j->mu);
    return finished;
}

void resolve_job_release(struct resolve_job *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->done = NULL;
    pthread_mutex_unlock(&j->mu);
    job_put(j);
}
