/* SPDX-License-Identifier: Apache-2.0 */
/* Apiserver certificates as `apilb preflight` judges them: a TLS handshake
 * with one apiserver, the chain verified against the cluster CA and the
 * name a client will verify through apilb looked up in the certificate; and
 * whether two CA bundles share a certificate. Blocking, bounded by a
 * timeout; main thread (preflight runs no other). OpenSSL only. */
#ifndef PROXY_CERTCHECK_H
#define PROXY_CERTCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

enum certcheck_result {
    CERTCHECK_OK = 0,      /* verified by the CA and covers the name */
    CERTCHECK_UNREACHABLE, /* no TCP connection (refused, timed out, ...) */
    CERTCHECK_HANDSHAKE,   /* connected, but no TLS handshake */
    CERTCHECK_UNTRUSTED,   /* the chain does not verify against the CA */
    CERTCHECK_NAME,        /* trusted, but the name is not in the certificate */
    CERTCHECK_UNVERIFIED,  /* no CA given: the name is in it, the chain unchecked */
};

/* Connects to a, completes a TLS handshake (SNI = name unless name is an
 * IP address, as Go clients do) and checks the server certificate: its
 * chain against the PEM bundle ca_pem (NULL: not checked), then whether it
 * covers name (an IP address or a DNS name). Each step waits at most
 * timeout_ms. Returns the verdict and writes what explains it into detail:
 * the error, or for CERTCHECK_NAME the names the certificate does cover
 * ("DNS:kubernetes, IP:10.0.0.11"). */
enum certcheck_result certcheck_probe(const struct addr *a, const char *ca_pem, const char *name,
                                      unsigned timeout_ms, char *detail, size_t detail_len);

/* Whether the PEM bundles a and b have a certificate in common. */
bool certcheck_ca_shared(const char *a, const char *b);

#endif
