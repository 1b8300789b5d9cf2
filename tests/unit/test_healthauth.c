/* SPDX-License-Identifier: Apache-2.0 */
/* The credentials of --health-auth kubeconfig (proxy/healthauth.h): what is
 * accepted, what is refused with which reason, and that a refusal keeps the
 * old credentials. Keys and certificates are made here, in memory. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check_run.h"
#include "healthauth.h"

/* A NUL-terminated copy of the n bytes at p (a memory BIO's, which has no
 * NUL: strndup() would look past them for one). */
static char *copy_bytes(const char *p, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* PEM text of a new P-256 key and of a certificate for it, signed by
 * issuer_key (itself when NULL). Caller frees both; *key_out is the key. */
static void make_pair(EVP_PKEY *issuer_key, char **cert_pem, char **key_pem, EVP_PKEY **key_out)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *b;
    char *p;
    long n;

    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"system:node:test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    ck_assert_int_gt(X509_sign(x, issuer_key != NULL ? issuer_key : k, EVP_sha256()), 0);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    n = BIO_get_mem_data(b, &p);
    *cert_pem = copy_bytes(p, (size_t)n);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(b, &p);
    *key_pem = copy_bytes(p, (size_t)n);
    BIO_free(b);
    X509_free(x);
    if (key_out != NULL)
        *key_out = k;
    else
        EVP_PKEY_free(k);
}

START_TEST(certificate_key_and_token_accepted_once)
{
    struct health_auth a = {NULL, NULL, NULL, NULL, NULL, NULL};
    char *cert, *key, *both;
    const char *why;
    bool changed;

    make_pair(NULL, &cert, &key, NULL);
    ck_assert(!health_auth_present(&a));
    ck_assert_int_eq(health_auth_set(&a, cert, key, "tok", &changed, &why), 0);
    ck_assert(changed);
    ck_assert(health_auth_present(&a));
    ck_assert_ptr_nonnull(a.cert);
    ck_assert_str_eq(a.token, "tok");
    /* The same again changes nothing. */
    ck_assert_int_eq(health_auth_set(&a, cert, key, "tok", &changed, &why), 0);
    ck_assert(!changed);
    /* kubelet-client-current.pem: certificate and key in one file. */
    both = malloc(strlen(cert) + strlen(key) + 1);
    strcpy(both, cert);
    strcat(both, key);
    ck_assert_int_eq(health_auth_set(&a, both, both, NULL, &changed, &why), 0);
    ck_assert(changed);
    ck_assert_ptr_null(a.token);
    ck_assert_ptr_nonnull(a.key);
    /* A token alone. */
    ck_assert_int_eq(health_auth_set(&a, NULL, NULL, "tok2", &changed, &why), 0);
    ck_assert_ptr_null(a.cert);
    health_auth_destroy(&a);
    ck_assert(!health_auth_present(&a));
    free(both);
    free(cert);
    free(key);
}
END_TEST

START_TEST(unusable_refused_with_reason_and_old_kept)
{
    struct health_auth a = {NULL, NULL, NULL, NULL, NULL, NULL};
    char *cert, *key, *cert2, *key2;
    const char *why;
    bool changed;

    make_pair(NULL, &cert, &key, NULL);
    make_pair(NULL, &cert2, &key2, NULL);
    ck_assert_int_eq(health_auth_set(&a, NULL, NULL, "tok", &changed, &why), 0);
    ck_assert_int_eq(health_auth_set(&a, cert, key2, NULL, &changed, &why), -EINVAL);
    ck_assert_str_eq(why, "the client key does not match the client certificate");
    ck_assert(!changed);
    ck_assert_str_eq(a.token, "tok"); /* the old ones stay */
    ck_assert_int_eq(health_auth_set(&a, cert, NULL, NULL, &changed, &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "without its key"));
    ck_assert_int_eq(health_auth_set(&a, NULL, NULL, NULL, &changed, &why), -EINVAL);
    ck_assert_str_eq(why, "neither a client certificate nor a token");
    ck_assert_int_eq(health_auth_set(&a, "garbage", key, NULL, &changed, &why), -EINVAL);
    ck_assert_str_eq(why, "no PEM certificate in the client certificate");
    ck_assert_int_eq(health_auth_set(&a, cert, cert, NULL, &changed, &why), -EINVAL);
    ck_assert_str_eq(why, "no PEM private key in the client key");
    ck_assert_str_eq(a.token, "tok");
    ck_assert_ptr_null(a.cert);
    health_auth_destroy(&a);
    free(cert);
    free(key);
    free(cert2);
    free(key2);
}
END_TEST

START_TEST(chain_after_the_leaf)
{
    struct health_auth a = {NULL, NULL, NULL, NULL, NULL, NULL};
    char *ca, *ca_key, *leaf, *leaf_key, *chain;
    EVP_PKEY *issuer;
    const char *why;
    bool changed;

    make_pair(NULL, &ca, &ca_key, &issuer);
    make_pair(issuer, &leaf, &leaf_key, NULL);
    chain = malloc(strlen(leaf) + strlen(ca) + 1);
    strcpy(chain, leaf);
    strcat(chain, ca);
    ck_assert_int_eq(health_auth_set(&a, chain, leaf_key, NULL, &changed, &why), 0);
    ck_assert_int_eq(sk_X509_num(a.chain), 1);
    health_auth_destroy(&a);
    EVP_PKEY_free(issuer);
    free(chain);
    free(ca);
    free(ca_key);
    free(leaf);
    free(leaf_key);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("healthauth", &tc);

    tcase_add_test(tc, certificate_key_and_token_accepted_once);
    tcase_add_test(tc, unusable_refused_with_reason_and_old_kept);
    tcase_add_test(tc, chain_after_the_leaf);
    return check_run(s);
}
