/* SPDX-License-Identifier: Apache-2.0 */
/* --check-config; see configcheck.h. */
#define LOG_MODULE "control"
#include "configcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfgsource.h"
#include "discovery.h"
#include "healthlink.h"
#include "upstream.h"

static void kick_none(void *arg)
{
    (void)arg;
}

/* The health checks' settings and the credentials they would present. */
static int health_check(const struct config *cfg, char *err, size_t err_len)
{
    struct healthlink l = {.cfg = cfg, .kick = kick_none};
    struct watcher_auth a;
    int rc = discovery_auth_load(cfg, &a, err, err_len);

    if (rc == 0)
        rc = healthlink_start(&l, NULL, NULL, &a, err, err_len);
    discovery_auth_free(cfg, &a);
    return rc;
}

/* The seeds and the upstreams file, every name resolved. */
static int sources_check(const struct config *cfg, char *err, size_t err_len)
{
    struct addr *a = malloc(sizeof(*a) * UPSTREAM_MAX);
    struct cfgsource f;
    size_t n;
    int rc = a == NULL ? -ENOMEM : 0;

    if (rc == 0)
        rc = cfgsource_seeds(cfg->seeds, cfg->n_seeds, cfg->seeds_from, true, a, &n, err, err_len);
    free(a);
    if (rc == 0 && cfg->upstreams_file != NULL) {
        rc = cfgsource_init(&f, cfg->upstreams_file, NULL, NULL);
        if (rc == 0)
            rc = cfgsource_load(&f, err, err_len);
        cfgsource_fini(&f);
    }
    if (rc == -ENOMEM)
        snprintf(err, err_len, "out of memory");
    return rc;
}

int configcheck_run(const struct config *cfg, char *err, size_t err_len)
{
    int rc = 0;

    if (cfg->health_check != CONFIG_HEALTH_NONE)
        rc = health_check(cfg, err, err_len);
    if (rc == 0)
        rc = discovery_cluster_ca(cfg, NULL, err, err_len);
    if (rc == 0)
        rc = sources_check(cfg, err, err_len);
    return rc;
}
