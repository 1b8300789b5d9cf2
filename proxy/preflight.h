/* SPDX-License-Identifier: Apache-2.0 */
/* `apilb preflight [options]`: what an operator runs on a node before
 * pointing kubelet at apilb. It reads the same options as the daemon and
 * checks, one printed line each (ok, warn or FAIL with the reason, and a
 * "fix" line under a failure that has a known remedy): the listen addresses
 * are free or held by apilb; every apiserver apilb would use (seeds, the
 * upstreams file, the state file and, with credentials, one LIST of the
 * cluster's apiservers) answers TLS trusted by the cluster CA with a
 * certificate that covers the name kubelet will verify through apilb; with
 * credentials, the RBAC apilb needs (SelfSubjectAccessReview) and /readyz
 * of each apiserver; with --kubelet-kubeconfig, that the kubelet's
 * kubeconfig points at apilb's listener and trusts the same CA. The checks
 * that need libcurl, jansson or libyaml are the discovery module's
 * (watcher/apicheck.h). Main thread; starts no other. docs/preflight.md. */
#ifndef PROXY_PREFLIGHT_H
#define PROXY_PREFLIGHT_H

#include <stdio.h>

#include "config.h"

/* Runs every check that cfg allows, printing to out. Returns the process
 * exit code: 0 when no check failed (warnings allowed), 1 otherwise. */
int preflight_run(const struct config *cfg, FILE *out);

#endif
