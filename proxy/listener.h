/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets. Every worker gets its own socket per --listen address,
 * all bound with SO_REUSEPORT, so the kernel spreads new connections over the
 * workers and a second apilb (same user) can bind beside this one for a
 * zero-downtime upgrade. Main thread, before the workers start. */
#ifndef PROXY_LISTENER_H
#define PROXY_LISTENER_H

#include <stddef.h>

#include "addr.h"

#define LISTENER_BACKLOG 4096

/* Opens a non-blocking listening socket on *a. A port of 0 is replaced in *a
 * by the port the kernel chose. Returns the fd or a negative errno. */
int listener_open(struct addr *a);

/* Describes who holds the TCP port of a ("pid 123 (nginx)"), as far as /proc
 * tells; writes "" when it cannot be found. */
void listener_holder(const struct addr *a, char *buf, size_t len);

/* Describes the other programs (not apilb) that listen on the TCP port of a
 * too, as "pid 12 (nginx), ..."; "" when none. With SO_REUSEPORT such a
 * program silently shares the port with apilb. */
void listener_sharers(const struct addr *a, char *buf, size_t len);

/* Another process's socket listening on one of apilb's addresses. */
struct listener_other {
    unsigned long inode;
    unsigned long uid; /* of the socket: the kernel lets only apilb's own uid join */
    long pid;          /* -1: not visible (another PID namespace, another user) */
    char comm[32];     /* its /proc/PID/comm; "" when pid is -1 */
};

/* Fd's socket inode into *inode; 0 or a negative errno. Any thread. */
int listener_inode(int fd, unsigned long *inode) __attribute__((warn_unused_result));

/* The sockets listening on exactly a's address and port (its SO_REUSEPORT
 * group, which the kernel spreads new connections over) that are not among
 * ours[0..n_ours) (inodes), at most max, into out; returns how many. Their
 * owners are looked up in /proc. Reads /proc: any thread but a loop's. */
size_t listener_others(const struct addr *a, const unsigned long *ours, size_t n_ours,
                       struct listener_other *out, size_t max);

#endif
