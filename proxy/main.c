/* SPDX-License-Identifier: Apache-2.0 */
/* apilb: the node-local load balancer for the Kubernetes API. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"

extern char **environ;

int main(int argc, char *argv[])
{
    struct config cfg;
    char err[CONFIG_ERR_BYTES];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int rc;

    if (config_parse(&cfg, argc, argv, environ, cpus > 0 ? (unsigned)cpus : 1, err) < 0) {
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
    if (cfg.check_config) {
        rc = control_check(&cfg);
        if (rc == 0)
            config_print(&cfg, stdout);
        config_free(&cfg);
        return rc;
    }
    /* A peer that closes while we write must be an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    rc = control_run(&cfg);
    config_free(&cfg);
    return rc;
}
