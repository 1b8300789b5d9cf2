/* SPDX-License-Identifier: Apache-2.0 */
/* Apiserver certificates for preflight; see certcheck.h. */
#include "certcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static bool is_ip(const char *name)
{
    struct addr a;

    return addr_from_ip(name, 1, &a) == 0;
}

/* The certificates of a PEM bundle, in a new stack (NULL on ENOMEM). */
static STACK_OF(X509) *pem_certs(const char *pem)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    BIO *bio = pem != NULL ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *x;

    while (sk != NULL && bio != NULL && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (sk_X509_push(sk, x) == 0)
            X509_free(x);
    ERR_clear_error();
    BIO_free(bio);
    return sk;
}

/* "DNS:a, IP:b" for the subjectAltName entries of x. */
static void san_list(X509 *x, char *buf, size_t len)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && off + 1 < len; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[ADDR_HOST_MAX + 8] = "";

        if (g->type == GEN_DNS) {
            snprintf(one, sizeof(one), "DNS:%.*s", ASN1_STRING_length(g->d.dNSName),
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            int n = ASN1_STRING_length(g->d.iPAddress);
            char ip[INET6_ADDRSTRLEN] = "?";

            if (n == 4 || n == 16)
                inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), ip,
                          sizeof(ip));
            snprintf(one, sizeof(one), "IP:%s", ip);
        }
        if (one[0] != '\0')
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", one);
    }
    if (buf[0] == '\0')
        snprintf(buf, len, "no subjectAltName");
    GENERAL_NAMES_free(gens);
}

static void ssl_error(char *buf, size_t len, const char *what)
{
    unsigned long e = ERR_get_error();

    snprintf(buf, len, "%s: %s", what, e != 0 ? ERR_reason_error_string(e) : "connection closed");
    ERR_clear_error();
}

/* A blocking socket connected to a whose connect, reads and writes give up
 * after timeout_ms; -1 with detail set when none could be had. */
static int dial(const struct addr *a, unsigned timeout_ms, char *detail, size_t detail_len)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1) {
        snprintf(detail, detail_len, "socket: %s", strerror(errno));
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1) {
        int e = errno;

        snprintf(detail, detail_len, "connect: %s",
                 e == EINPROGRESS || e == EAGAIN ? "timed out" : strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

/* The verdict on the certificate peer of a finished handshake on ssl: the
 * chain (when verify: there were CAs to judge it by), then the name. */
static enum certcheck_result judge(SSL *ssl, X509 *peer, bool verify, const char *name,
                                   char *detail, size_t detail_len)
{
    int covered;

    if (verify && SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(detail, detail_len, "%s",
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        return CERTCHECK_UNTRUSTED;
    }
    covered =
        is_ip(name) ? X509_check_ip_asc(peer, name, 0) : X509_check_host(peer, name, 0, 0, NULL);
    if (covered != 1) {
        san_list(peer, detail, detail_len);
        return CERTCHECK_NAME;
    }
    return verify ? CERTCHECK_OK : CERTCHECK_UNVERIFIED;
}

enum certcheck_result certcheck_probe(const struct addr *a, const char *ca_pem, const char *name,
                                      unsigned timeout_ms, char *detail, size_t detail_len)
{
    enum certcheck_result res = CERTCHECK_HANDSHAKE;
    STACK_OF(X509) *cas = NULL;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    X509 *peer = NULL;
    bool verify = false;
    int fd;

    detail[0] = '\0';
    fd = dial(a, timeout_ms, detail, detail_len);
    if (fd == -1)
        return CERTCHECK_UNREACHABLE;
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || (cas = pem_certs(ca_pem)) == NULL) {
        snprintf(detail, detail_len, "tls: out of memory");
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    for (int i = 0; i < sk_X509_num(cas); i++)
        verify |= X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), sk_X509_value(cas, i)) == 1;
    ERR_clear_error();
    /* The chain is judged after the handshake (SSL_get_verify_result), so
     * an untrusted certificate is still read and described. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        snprintf(detail, detail_len, "tls: out of memory");
        goto out;
    }
    if (!is_ip(name))
        SSL_set_tlsext_host_name(ssl, name);
    if (SSL_connect(ssl) != 1) {
        int e = errno;

        /* SO_RCVTIMEO ran out: a listener that accepts and never answers. */
        if (ERR_peek_error() == 0 && (e == EAGAIN || e == EWOULDBLOCK))
            snprintf(detail, detail_len, "tls handshake: no answer within %u ms", timeout_ms);
        else
            ssl_error(detail, detail_len, "tls handshake");
        goto out;
    }
    peer = SSL_get1_peer_certificate(ssl);
    if (peer == NULL) {
        snprintf(detail, detail_len, "tls: the server sent no certificate");
        goto out;
    }
    res = judge(ssl, peer, verify, name, detail, detail_len);
out:
    X509_free(peer);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    sk_X509_pop_free(cas, X509_free);
    ERR_clear_error();
    close(fd);
    return res;
}

bool certcheck_ca_shared(const char *a, const char *b)
{
    STACK_OF(X509) *sa = pem_certs(a), *sb = pem_certs(b);
    bool shared = false;

    for (int i = 0; sa != NULL && sb != NULL && i < sk_X509_num(sa) && !shared; i++)
        for (int j = 0; j < sk_X509_num(sb) && !shared; j++)
            shared = X509_cmp(sk_X509_value(sa, i), sk_X509_value(sb, j)) == 0;
    sk_X509_pop_free(sa, X509_free);
    sk_X509_pop_free(sb, X509_free);
    return shared;
}
