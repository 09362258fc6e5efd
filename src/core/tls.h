/* OpenSSL contexts and non-blocking I/O helpers for the Forward input and output.
 *
 * Both sides use one SSL_CTX per component, made at start-up (a file that does not load, or a key
 * that does not match its certificate, is a start-up error), and one SSL per connection driven on
 * the loop: every call is non-blocking, and a call that cannot finish says which readiness it waits
 * for (SL_TLS_WANT_READ / SL_TLS_WANT_WRITE) so the caller sets its epoll interest accordingly. */
#ifndef SL_TLS_H
#define SL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* What OpenSSL keeps per connection (two record buffers of ~17 KiB plus the handshake state),
 * charged to the memory budget for each TLS connection. */
#define SL_TLS_CONN_COST (64u * 1024)

enum {
    SL_TLS_OK = 0,
    SL_TLS_WANT_READ = 1,
    SL_TLS_WANT_WRITE = 2,
    SL_TLS_EOF = 3,
    SL_TLS_ERR = -1
};

/* min_version: 0 = TLS 1.2, 1 = TLS 1.3 (enum sl_tls_version). Returns NULL with err set. */
SSL_CTX *sl_tls_server_ctx(const char *cert_file, const char *key_file, const char *ca_file,
                           bool verify_client, int min_version, char *err, size_t errlen);
SSL_CTX *sl_tls_client_ctx(const char *ca_file, bool verify, const char *cert_file,
                           const char *key_file, int min_version, char *err, size_t errlen);

/* A client SSL for host: SNI (unless host is an IP literal) and, when verify is on, the name or
 * IP the certificate must carry. Returns NULL with err set. */
SSL *sl_tls_client_new(SSL_CTX *ctx, int fd, const char *host, bool verify, char *err,
                       size_t errlen);

/* Drives SSL_accept / SSL_connect. Returns SL_TLS_OK (done), SL_TLS_WANT_READ/WRITE, SL_TLS_EOF
 * (the peer closed before finishing) or SL_TLS_ERR with the OpenSSL reason in err (for a
 * certificate failure, the verification error). */
int sl_tls_handshake(SSL *ssl, char *err, size_t errlen);

/* Like recv/send: >0 bytes; 0 with *st SL_TLS_EOF (clean close) or SL_TLS_WANT_*; -1 with
 * *st SL_TLS_ERR and the reason in err. */
ssize_t sl_tls_read(SSL *ssl, void *buf, size_t n, int *st, char *err, size_t errlen);
ssize_t sl_tls_write(SSL *ssl, const void *buf, size_t n, int *st, char *err, size_t errlen);

/* Best-effort close_notify (never waits) and free. */
void sl_tls_close(SSL *ssl);

#endif
