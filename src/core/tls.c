/* OpenSSL helpers; see tls.h. */
#include "core/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The first queued OpenSSL error (the most specific), or the errno text; clears the queue. */
static void reason(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, errlen, "%s: %s", what, buf);
    } else if (errno) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
    } else {
        snprintf(err, errlen, "%s failed", what);
    }
    ERR_clear_error();
}

static SSL_CTX *ctx_common(const SSL_METHOD *m, int min_version, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx) {
        reason(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, min_version ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* The write buffer may move between retries (it grows with queued acks); partial writes let
     * a large request go out record by record. Idle connections give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Forward frames are self-delimiting, so a peer that closes without close_notify (Fluent
     * Bit, a killed client) loses nothing we would accept: treat it as a plain end of stream. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    return ctx;
}

static int load_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file, char *err,
                     size_t errlen)
{
    char what[512];
    errno = 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(what, sizeof what, "certificate %s", cert_file);
        reason(err, errlen, what);
        return -1;
    }
    errno = 0;
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof what, "private key %s", key_file);
        reason(err, errlen, what);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what, "private key %s does not match certificate %s", key_file,
                 cert_file);
        reason(err, errlen, what);
        return -1;
    }
    return 0;
}

SSL_CTX *sl_tls_server_ctx(const char *cert_file, const char *key_file, const char *ca_file,
                           bool verify_client, int min_version, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_common(TLS_server_method(), min_version, err, errlen);
    if (!ctx) return NULL;
    if (load_pair(ctx, cert_file, key_file, err, errlen) != 0) goto fail;
    if (ca_file) {
        errno = 0;
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            char what[512];
            snprintf(what, sizeof what, "CA file %s", ca_file);
            reason(err, errlen, what);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names) SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    SSL_CTX_set_verify(
        ctx, verify_client ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
        NULL);
    /* No session cache: every connection is a full handshake, and nothing per client stays in
     * memory outside the connection's own budget share. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *sl_tls_client_ctx(const char *ca_file, bool verify, const char *cert_file,
                           const char *key_file, int min_version, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_common(TLS_client_method(), min_version, err, errlen);
    if (!ctx) return NULL;
    errno = 0;
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        char what[512];
        snprintf(what, sizeof what, "CA file %s", ca_file ? ca_file : "(system default)");
        reason(err, errlen, what);
        goto fail;
    }
    if (cert_file && key_file && load_pair(ctx, cert_file, key_file, err, errlen) != 0) goto fail;
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *sl_tls_client_new(SSL_CTX *ctx, int fd, const char *host, bool verify, char *err,
                       size_t errlen)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        reason(err, errlen, "SSL_new");
        SSL_free(ssl);
        return NULL;
    }
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    /* RFC 6066: SNI carries host names only, never IP literals. */
    if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) {
        reason(err, errlen, "SNI");
        SSL_free(ssl);
        return NULL;
    }
    if (verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : SSL_set1_host(ssl, host);
        if (ok != 1) {
            reason(err, errlen, "setting the expected host name");
            SSL_free(ssl);
            return NULL;
        }
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

static int classify(SSL *ssl, int ret, const char *what, char *err, size_t errlen)
{
    int e = SSL_get_error(ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return SL_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return SL_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return SL_TLS_EOF;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && errno == 0) return SL_TLS_EOF;
        reason(err, errlen, what);
        return SL_TLS_ERR;
    default: {
        long vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK) {
            snprintf(err, errlen, "%s: certificate verification failed: %s", what,
                     X509_verify_cert_error_string(vr));
            ERR_clear_error();
        } else {
            reason(err, errlen, what);
        }
        return SL_TLS_ERR;
    }
    }
}

int sl_tls_handshake(SSL *ssl, char *err, size_t errlen)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    if (r == 1) return SL_TLS_OK;
    return classify(ssl, r, "TLS handshake", err, errlen);
}

ssize_t sl_tls_read(SSL *ssl, void *buf, size_t n, int *st, char *err, size_t errlen)
{
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1) {
        *st = SL_TLS_OK;
        return (ssize_t)got;
    }
    *st = classify(ssl, r, "TLS read", err, errlen);
    return *st == SL_TLS_ERR ? -1 : 0;
}

ssize_t sl_tls_write(SSL *ssl, const void *buf, size_t n, int *st, char *err, size_t errlen)
{
    size_t put = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write_ex(ssl, buf, n, &put);
    if (r == 1) {
        *st = SL_TLS_OK;
        return (ssize_t)put;
    }
    *st = classify(ssl, r, "TLS write", err, errlen);
    return *st == SL_TLS_ERR ? -1 : 0;
}

void sl_tls_close(SSL *ssl)
{
    if (!ssl) return;
    /* Only a close_notify that can be sent now; a failed or unfinished handshake gets none. */
    if (SSL_is_init_finished(ssl)) {
        ERR_clear_error();
        (void)SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
}
