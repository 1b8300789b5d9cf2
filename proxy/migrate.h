/* SPDX-License-Identifier: Apache-2.0 */
/* Hand-over of queued connections between the apilbs of an upgrade.
 *
 * Each listening socket of a SO_REUSEPORT group has its own accept queue.
 * When the old apilb closes its listeners, a connection that completed its
 * handshake into its queue after its last accept() (or every queued one, if
 * it was killed) would be reset. Linux 5.14+ can move those connections to
 * another listener of the group instead: for every group with
 * net.ipv4.tcp_migrate_req=1, or for one group whose reuseport program is of
 * the SELECT_OR_MIGRATE kind. migrate_enable() attaches such a program, two
 * instructions that choose nothing (the kernel keeps choosing by hash), so
 * migration is on for this group only, whatever the node's sysctl says.
 *
 * Loading it needs CAP_BPF (root, or the capability): without, the caller
 * logs it and the node's sysctl decides as before. Main thread. */
#ifndef PROXY_MIGRATE_H
#define PROXY_MIGRATE_H

/* Turns migration on for the SO_REUSEPORT group of the bound, listening fd
 * (the group of every apilb on that address). Returns 0 or a negative errno:
 * -EPERM without CAP_BPF (or under a seccomp profile that refuses bpf(2)),
 * -EINVAL on kernels older than 5.14. */
int migrate_enable(int fd);

#endif
