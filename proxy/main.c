/* SPDX-License-Identifier: Apache-2.0 */
/* apilb: the node-local load balancer for the Kubernetes API. */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "configcheck.h"
#include "control.h"
#include "log.h"
#include "preflight.h"
#include "statuscmd.h"

extern char **environ;

/* Each proxied connection needs two descriptors (and a pipe pair while
 * bytes are in flight): take every descriptor the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the descriptor limit", "hard=%llu", (unsigned long long)rl.rlim_max);
}

/* config_exists_fn: the service-account token probe of config_parse(). */
static bool readable(const char *path)
{
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return false;
    fclose(f);
    return true;
}

int main(int argc, char *argv[])
{
    struct config cfg;
    char err[CONFIG_ERR_BYTES];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int rc;

    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return statuscmd_main(argc - 1, argv + 1, environ, stdout, stderr);
    if (config_parse(&cfg, argc, argv, environ, cpus > 0 ? (unsigned)cpus : 1, readable, err) < 0) {
        fprintf(stderr, "apilb: %s\n", err);
        config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (cfg.show_help) {
        config_usage(stdout);
        config_free(&cfg);
        return 0;
    }
    if (cfg.show_version) {
        printf("apilb %s\n", APILB_VERSION);
        config_free(&cfg);
        return 0;
    }
    log_setup(cfg.log_level, cfg.log_format);
    if (cfg.preflight) {
        rc = preflight_run(&cfg, stdout);
        config_free(&cfg);
        return rc;
    }
    if (cfg.check_config) {
        rc = configcheck_run(&cfg, err, sizeof(err)) < 0 ? EXIT_CONFIG : 0;
        if (rc == 0)
            config_print(&cfg, stdout);
        else
            fprintf(stderr, "apilb: %s\n", err);
        config_free(&cfg);
        return rc;
    }
    raise_fd_limit();
    /* A peer that closes while we write must be an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    rc = control_run(&cfg);
    config_free(&cfg);
    return rc;
}
