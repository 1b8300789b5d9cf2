/* SPDX-License-Identifier: Apache-2.0 */
/* The configured sources: the seeds (--upstream, APILB_UPSTREAMS, CP_HOSTS)
 * and the upstreams file (--upstreams-file), turned into addresses. At start
 * names are looked up blocking, before the loop runs. On a reload the file's
 * IP entries apply at once, with the addresses its names had at the last
 * lookup, and the names are looked up again off the loop: a DNS server that
 * does not answer holds only that lookup, and while one is under way the
 * newest file's names wait for it, so a hanging resolver never piles up
 * threads. Loop thread unless said. */
#ifndef PROXY_CFGSOURCE_H
#define PROXY_CFGSOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "addr.h"
#include "config.h"

/* The file's addresses changed to a[0..n) (borrowed) for the reason why. */
typedef void (*cfgsource_apply_fn)(void *arg, const struct addr *a, size_t n, const char *why);

/* The upstreams file. ips, named and merged hold UPSTREAM_MAX each. */
struct cfgsource {
    const char *path; /* borrowed: the config's; NULL without --upstreams-file */
    cfgsource_apply_fn apply;
    void *arg;
    struct addr *ips;    /* the file's IP entries */
    struct addr *named;  /* its names' addresses from the last finished lookup */
    struct addr *merged; /* ips, then what of named is not in ips */
    size_t n_ips, n_named, n_merged;
    struct resolve_job *job;        /* the lookup under way, or NULL */
    struct config_seed *names_next; /* UPSTREAM_MAX of room, or NULL */
    size_t n_names_next;
    uv_async_t async; /* job is done */
};

/* Looks sd[0..n) up (blocking) into out[0..UPSTREAM_MAX), *n_out the count;
 * who names the option in messages. A name that does not resolve is an
 * error when fatal (-EINVAL, err says "who=host:port: why"), else a log
 * line. Returns 0 or -EINVAL. Any thread. */
int cfgsource_seeds(const struct config_seed *sd, size_t n, const char *who, bool fatal,
                    struct addr *out, size_t *n_out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Readies f for path (NULL: no file); apply hears of every later change.
 * Returns 0 or -ENOMEM. */
int cfgsource_init(struct cfgsource *f, const char *path, cfgsource_apply_fn apply, void *arg)
    __attribute__((warn_unused_result));

/* Reads the whole file at start, names looked up here, blocking; a name
 * that does not resolve is a configuration error. Returns 0, or a negative
 * errno with err naming the file or the entry. Any thread, before attach. */
int cfgsource_load(struct cfgsource *f, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The file's addresses now (borrowed until the next change); *n the count. */
const struct addr *cfgsource_addrs(const struct cfgsource *f, size_t *n);

/* Attaches the lookups' wake-up to loop (closed with its other handles). */
void cfgsource_attach(struct cfgsource *f, uv_loop_t *loop);

/* Reads the file again (a failure is logged, the old set kept), applies
 * its IPs at once and looks its names up off the loop. */
void cfgsource_reload(struct cfgsource *f, const char *why);

/* Drops the lookup under way and the names waiting for it; before the
 * loop's handles close. */
void cfgsource_stop(struct cfgsource *f);

/* Frees the sets; after cfgsource_stop (or when never attached). */
void cfgsource_fini(struct cfgsource *f);

#endif
