/* SPDX-License-Identifier: Apache-2.0 */
/* The configured sources; see cfgsource.h. */
#define LOG_MODULE "control"
#include "cfgsource.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "resolve.h"
#include "upfile.h"
#include "upstream.h"

int cfgsource_seeds(const struct config_seed *sd, size_t n, const char *who, bool fatal,
                    struct addr *out, size_t *n_out, char *err, size_t err_len)
{
    char why[CONFIG_ERR_BYTES];

    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (resolve_seed(&sd[i], out, UPSTREAM_MAX, n_out, why, sizeof(why)) == 0)
            continue;
        if (fatal) {
            snprintf(err, err_len, "%s=%s:%u: %s", who, sd[i].host, sd[i].port, why);
            return -EINVAL;
        }
        log_warn("upstream name does not resolve", "source=%s err=\"%s\"", who, log_quote(why));
    }
    return 0;
}

int cfgsource_init(struct cfgsource *f, const char *path, cfgsource_apply_fn apply, void *arg)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->apply = apply;
    f->arg = arg;
    if (path == NULL)
        return 0;
    f->ips = calloc((size_t)UPSTREAM_MAX * 3, sizeof(*f->ips));
    if (f->ips == NULL)
        return -ENOMEM;
    f->named = f->ips + UPSTREAM_MAX;
    f->merged = f->named + UPSTREAM_MAX;
    return 0;
}

void cfgsource_fini(struct cfgsource *f)
{
    free(f->ips);
    f->ips = f->named = f->merged = NULL;
    f->n_ips = f->n_named = f->n_merged = 0;
}

const struct addr *cfgsource_addrs(const struct cfgsource *f, size_t *n)
{
    *n = f->n_merged;
    return f->merged;
}

/* merged = ips, then what of named is not in ips. A union over the one
 * address bound is refused whole (merged keeps the last set): -E2BIG with
 * err naming the count and the bound; 0 otherwise. */
static int merge(struct cfgsource *f, char *err, size_t err_len)
{
    size_t n = f->n_ips;

    for (size_t i = 0; i < f->n_named; i++) {
        size_t k = 0;

        while (k < f->n_ips && addr_cmp(&f->ips[k], &f->named[i]) != 0)
            k++;
        if (k == f->n_ips)
            n++;
    }
    if (n > UPSTREAM_MAX) {
        snprintf(err, err_len, "%s: its entries give %zu addresses, more than apilb keeps (%u)",
                 f->path, n, (unsigned)UPSTREAM_MAX);
        return -E2BIG;
    }
    memcpy(f->merged, f->ips, f->n_ips * sizeof(*f->ips));
    f->n_merged = f->n_ips;
    for (size_t i = 0; i < f->n_named; i++) {
        size_t k = 0;

        while (k < f->n_ips && addr_cmp(&f->ips[k], &f->named[i]) != 0)
            k++;
        if (k == f->n_ips)
            f->merged[f->n_merged++] = f->named[i];
    }
    return 0;
}

/* Merges and applies, or logs why the set was refused. */
static void merge_apply(struct cfgsource *f, const char *why)
{
    char err[CONFIG_ERR_BYTES];

    if (merge(f, err, sizeof(err)) != 0) {
        log_error("upstreams file not applied: set refused, keeping the current upstreams",
                  "err=\"%s\"", log_quote(err));
        return;
    }
    f->apply(f->arg, f->merged, f->n_merged, why);
}

/* Reads the file: its IP entries into f->ips, its host names into
 * names[0..*n_names) (UPSTREAM_MAX of room). Returns 0, or a negative errno
 * with err saying why. */
static int read_entries(struct cfgsource *f, struct config_seed *names, size_t *n_names, char *err,
                        size_t err_len)
{
    struct config_seed *sd = malloc(sizeof(*sd) * UPSTREAM_MAX);
    int n;

    if (sd == NULL) {
        snprintf(err, err_len, "%s: out of memory", f->path);
        return -ENOMEM;
    }
    n = upfile_read(f->path, sd, UPSTREAM_MAX, err, err_len);
    if (n < 0) {
        free(sd);
        return n;
    }
    f->n_ips = 0;
    *n_names = 0;
    for (int i = 0; i < n; i++) {
        struct addr a;

        if (addr_from_ip(sd[i].host, sd[i].port, &a) == 0)
            f->ips[f->n_ips++] = a;
        else
            names[(*n_names)++] = sd[i];
    }
    free(sd);
    return 0;
}

int cfgsource_load(struct cfgsource *f, char *err, size_t err_len)
{
    struct config_seed *names = malloc(sizeof(*names) * UPSTREAM_MAX);
    size_t n_names = 0;
    int rc;

    if (names == NULL) {
        snprintf(err, err_len, "%s: out of memory", f->path);
        return -ENOMEM;
    }
    rc = read_entries(f, names, &n_names, err, err_len);
    if (rc == 0)
        rc = cfgsource_seeds(names, n_names, "--upstreams-file", true, f->named, &f->n_named, err,
                             err_len);
    if (rc == 0)
        rc = merge(f, err, err_len);
    free(names);
    return rc;
}

/* Starts looking names[0..n) up (copied) off the loop. */
static void lookup_start(struct cfgsource *f, const struct config_seed *names, size_t n)
{
    int rc = resolve_job_start(names, n, &f->async, &f->job);

    if (rc != 0)
        log_warn("upstream names not looked up: keeping their last addresses", "n=%zu err=\"%s\"",
                 n, strerror(-rc));
    else
        log_debug("looking up the upstreams file's names", "n=%zu", n);
}

void cfgsource_stop(struct cfgsource *f)
{
    resolve_job_release(f->job);
    f->job = NULL;
    free(f->names_next);
    f->names_next = NULL;
}

void cfgsource_reload(struct cfgsource *f, const char *why)
{
    struct config_seed *names = malloc(sizeof(*names) * UPSTREAM_MAX);
    char err[CONFIG_ERR_BYTES] = "out of memory";
    size_t n_names = 0;

    if (names == NULL || read_entries(f, names, &n_names, err, sizeof(err)) != 0) {
        log_error("upstreams file not applied", "err=\"%s\"", log_quote(err));
        free(names);
        return;
    }
    if (n_names == 0) {
        cfgsource_stop(f);
        f->n_named = 0;
    } else if (f->job != NULL) {
        free(f->names_next);
        f->names_next = names; /* resolved_cb starts it */
        f->n_names_next = n_names;
        names = NULL;
        log_debug("the upstreams file's names wait for the lookup under way", "n=%zu", n_names);
    } else {
        lookup_start(f, names, n_names);
    }
    free(names);
    merge_apply(f, why);
}

/* The file's names have been looked up: their addresses join its IPs, and
 * the names of a newer file, if any waited, are looked up next. */
static void resolved_cb(uv_async_t *h)
{
    struct cfgsource *f = h->data;
    struct config_seed *next = f->names_next;

    if (f->job == NULL || !resolve_job_take(f->job, f->named, &f->n_named))
        return; /* a released lookup's wake-up, or not done yet */
    resolve_job_release(f->job);
    f->job = NULL;
    if (next != NULL) {
        f->names_next = NULL;
        lookup_start(f, next, f->n_names_next);
        free(next);
    }
    merge_apply(f, "file-names-resolved");
}

void cfgsource_attach(struct cfgsource *f, uv_loop_t *loop)
{
    uv_async_init(loop, &f->async, resolved_cb);
    f->async.data = f;
}
