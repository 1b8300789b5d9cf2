/* SPDX-License-Identifier: Apache-2.0 */
/* The credentials the readyz checks present with --health-auth kubeconfig:
 * a client certificate (with its chain) and its key, parsed once, and/or a
 * bearer token, copied from what the discovery module reads (health.c gets
 * them from control.c). The PEM texts are kept to tell a change; they, the
 * key and the token are wiped before they are freed. Control loop only. */
#ifndef PROXY_HEALTHAUTH_H
#define PROXY_HEALTHAUTH_H

#include <stdbool.h>

#include <openssl/ssl.h>

/* A plain value embedded in struct health; all NULL: nothing presented. */
struct health_auth {
    char *cert_pem, *key_pem, *token;
    X509 *cert;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
};

/* Replaces what *a holds with cert_pem (leaf, then its chain), key_pem and
 * token (borrowed, copied; NULL: absent). *changed says whether anything
 * differs from before (equal credentials: 0, nothing done). Returns 0, or
 * -EINVAL with the reason in *why (static text) and *a unchanged: a
 * certificate without its key or the reverse, neither a certificate nor a
 * token, no PEM certificate or key, a key that does not match, ENOMEM. */
int health_auth_set(struct health_auth *a, const char *cert_pem, const char *key_pem,
                    const char *token, bool *changed, const char **why)
    __attribute__((warn_unused_result));

/* Whether *a holds anything to present. */
bool health_auth_present(const struct health_auth *a);

/* Makes ssl present the client certificate, if there is one. Returns 0, or
 * -EINVAL when OpenSSL refuses it. */
int health_auth_attach(const struct health_auth *a, SSL *ssl) __attribute__((warn_unused_result));

/* Wipes and frees what *a holds; *a is zeroed (and may be set again). */
void health_auth_destroy(struct health_auth *a);

#endif
