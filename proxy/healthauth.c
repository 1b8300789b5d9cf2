/* SPDX-License-Identifier: Apache-2.0 */
/* Credentials of the readyz checks; see healthauth.h. */
#include "healthauth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

static void secret_free(char *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static bool same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Parses a client certificate (leaf first, then its chain) and its key
 * from PEM text into out's cert, chain and key. Returns 0, or -EINVAL with
 * the reason in *why (out's fields NULL then). */
static int parse(const char *cert_pem, const char *key_pem, struct health_auth *out,
                 const char **why)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x;
    int rc = -EINVAL;

    out->chain = sk_X509_new_null();
    *why = "out of memory";
    if (cb == NULL || kb == NULL || out->chain == NULL)
        goto out;
    /* PEM_read_bio_X509 skips other blocks: kubelet-client-current.pem
     * holds the key beside the certificate. */
    *why = "no PEM certificate in the client certificate";
    if ((out->cert = PEM_read_bio_X509(cb, NULL, NULL, NULL)) == NULL)
        goto out;
    *why = "out of memory";
    while ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(out->chain, x) == 0) {
            X509_free(x);
            goto out;
        }
    }
    *why = "no PEM private key in the client key";
    if ((out->key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL)) == NULL)
        goto out;
    *why = "the client key does not match the client certificate";
    if (X509_check_private_key(out->cert, out->key) != 1)
        goto out;
    *why = NULL;
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(cb);
    BIO_free(kb);
    if (rc != 0)
        health_auth_destroy(out);
    return rc;
}

int health_auth_set(struct health_auth *a, const char *cert_pem, const char *key_pem,
                    const char *token, bool *changed, const char **why)
{
    struct health_auth n = {NULL, NULL, NULL, NULL, NULL, NULL};

    *changed = false;
    *why = NULL;
    if (same_str(cert_pem, a->cert_pem) && same_str(key_pem, a->key_pem) &&
        same_str(token, a->token))
        return 0;
    if ((cert_pem == NULL) != (key_pem == NULL))
        *why = "a client certificate without its key, or a key without its certificate";
    else if (cert_pem == NULL && token == NULL)
        *why = "neither a client certificate nor a token";
    if (*why == NULL && cert_pem != NULL)
        (void)parse(cert_pem, key_pem, &n, why);
    if (*why == NULL && ((cert_pem != NULL && ((n.cert_pem = strdup(cert_pem)) == NULL ||
                                               (n.key_pem = strdup(key_pem)) == NULL)) ||
                         (token != NULL && (n.token = strdup(token)) == NULL)))
        *why = "out of memory";
    if (*why != NULL) {
        health_auth_destroy(&n);
        return -EINVAL;
    }
    health_auth_destroy(a);
    *a = n;
    *changed = true;
    return 0;
}

bool health_auth_present(const struct health_auth *a)
{
    return a->cert != NULL || a->token != NULL;
}

int health_auth_attach(const struct health_auth *a, SSL *ssl)
{
    if (a->cert == NULL)
        return 0;
    if (SSL_use_certificate(ssl, a->cert) != 1 || SSL_use_PrivateKey(ssl, a->key) != 1)
        goto fail;
    for (int i = 0; i < sk_X509_num(a->chain); i++)
        if (SSL_add1_chain_cert(ssl, sk_X509_value(a->chain, i)) != 1)
            goto fail;
    return 0;
fail:
    ERR_clear_error();
    return -EINVAL;
}

void health_auth_destroy(struct health_auth *a)
{
    secret_free(a->cert_pem);
    secret_free(a->key_pem);
    secret_free(a->token);
    X509_free(a->cert);
    sk_X509_pop_free(a->chain, X509_free);
    EVP_PKEY_free(a->key);
    memset(a, 0, sizeof(*a));
}
