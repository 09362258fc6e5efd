/* The status server shares the loop with the pipeline: a client that sends garbage, too much, or
 * too many connections must get a bounded answer and never stall or grow the process. These
 * tests run a real server on 127.0.0.1:0 and talk to it with plain sockets from the same thread,
 * turning the loop between writes and reads. The head parser gets its own vectors. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/http.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/status_page.h"

/* ---- parser vectors ---- */

static enum sl_http_parse_rc parse(const char *s, struct sl_http_request *r)
{
    return sl_http_parse_head(s, strlen(s), r);
}

static void test_parse_basic(void **state)
{
    (void)state;
    struct sl_http_request r;
    const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    assert_int_equal(parse(s, &r), SL_HTTP_PARSE_COMPLETE);
    assert_int_equal(r.head_len, strlen(s) - 4);
    assert_int_equal(r.method_len, 3);
    assert_memory_equal(r.method, "GET", 3);
    assert_int_equal(r.path_len, 8);
    assert_memory_equal(r.path, "/metrics", 8);
    assert_int_equal(r.query_len, 3);
    assert_memory_equal(r.query, "x=1", 3);
    assert_int_equal(r.minor_version, 1);
    assert_true(r.keep_alive);
    assert_false(r.has_content_length);

    /* bare LF line ends, and leading empty lines, are tolerated (RFC 9112 2.2) */
    assert_int_equal(parse("\r\n\nHEAD / HTTP/1.0\nConnection: Keep-Alive\n\n", &r),
                     SL_HTTP_PARSE_COMPLETE);
    assert_int_equal(r.minor_version, 0);
    assert_true(r.keep_alive);
    assert_null(r.query);
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &r), SL_HTTP_PARSE_COMPLETE);
    assert_false(r.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nconnection: foo, close\r\n\r\n", &r),
                     SL_HTTP_PARSE_COMPLETE);
    assert_false(r.keep_alive);
    assert_int_equal(parse("POST /x HTTP/1.1\r\nContent-Length:  12 \r\n"
                           "content-length: 12\r\n\r\n",
                           &r),
                     SL_HTTP_PARSE_COMPLETE);
    assert_true(r.has_content_length);
    assert_int_equal(r.content_length, 12);
}

static void test_parse_need_more(void **state)
{
    (void)state;
    struct sl_http_request r;
    const char *full = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t n = 0; n < strlen(full); n++)
        assert_int_equal(sl_http_parse_head(full, n, &r), SL_HTTP_PARSE_NEED_MORE);
    assert_int_equal(sl_http_parse_head(full, strlen(full), &r), SL_HTTP_PARSE_COMPLETE);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",                      /* two spaces */
        "GET / HTTP/2.0\r\n\r\n",                       /* version */
        "GET / HTTP/1.1 \r\n\r\n",                      /* trailing junk */
        "GET http://x/ HTTP/1.1\r\n\r\n",               /* absolute-form */
        "G(T / HTTP/1.1\r\n\r\n",                       /* method not a token */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before colon */
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",         /* obs-fold */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",           /* control byte */
        "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", /* not a number */
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", /* overflow */
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "\rGET / HTTP/1.1\r\n\r\n",
        "GET /\r HTTP/1.1\r\n\r\n",
    };
    struct sl_http_request r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], &r) != SL_HTTP_PARSE_ERROR) fail_msg("accepted: %s", bad[i]);
    }
}

/* ---- server ---- */

static struct sl_loop *L;
static struct sl_http_server *S;
static struct sl_metrics *M;
static const struct sl_http_static page = {"text/html; charset=utf-8", sl_status_page_html,
                                           SL_STATUS_PAGE_LEN};

static void hello(const struct sl_http_request *req, struct sl_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    sl_buf_puts(&resp->body, "hello\n");
}

/* A body far larger than a loopback socket buffer takes at once, so writes go through EPOLLOUT. */
#define BIG_LEN (3u << 20)
static void big(const struct sl_http_request *req, struct sl_http_response *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    for (size_t i = 0; i < BIG_LEN / 16; i++)
        sl_buf_printf(&resp->body, "%015zu\n", i);
}

static void start(const struct sl_http_limits *lim)
{
    char err[256];
    L = sl_loop_new();
    S = sl_http_new(L, lim);
    assert_non_null(S);
    assert_int_equal(sl_http_listen(S, "127.0.0.1:0", err, sizeof err), 0);
    assert_true(sl_http_port(S) > 0);
    M = sl_metrics_new(0);
    struct sl_metric_family *f =
        sl_metrics_counter(M, "t_requests_total", "Test.", "path", err, sizeof err);
    *sl_metric_counter(f, (const char *[]){"/"}) = 42;
    assert_int_equal(sl_http_route(S, "/hello", hello, NULL), 0);
    assert_int_equal(sl_http_route(S, "/big", big, NULL), 0);
    assert_int_equal(sl_http_route(S, "/metrics", sl_http_metrics_handler, M), 0);
    assert_int_equal(sl_http_route(S, "/", sl_http_static_handler, (void *)&page), 0);
}

static void stop(void)
{
    sl_http_free(S);
    sl_metrics_free(M);
    sl_loop_free(L);
}

static int client_rcvbuf(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* a small receive window makes the server's writes hit EAGAIN and wait for EPOLLOUT */
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(sl_http_port(S)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int client(void)
{
    return client_rcvbuf(0);
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            sl_loop_run_once(L, 5);
            continue;
        }
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

struct resp {
    int status;
    char head[2048];
    char *body;
    size_t body_len;
    bool eof; /* the server closed the connection after (or instead of) the response */
};

/* Turns the loop and reads until one response is complete (or the peer closed). With head_only
 * the body announced by Content-Length is not expected. */
static char rbuf[BIG_LEN + 65536];
static size_t rlen;

static bool read_some(int fd, bool *eof)
{
    ssize_t n = recv(fd, rbuf + rlen, sizeof rbuf - rlen, 0);
    if (n > 0) {
        rlen += (size_t)n;
        sl_loop_run_once(L, 0); /* the window just opened: let the server write */
        return true;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        *eof = true;
    else
        sl_loop_run_once(L, 5);
    return false;
}

static struct resp get_response(int fd, bool head_only)
{
    struct resp r = {0};
    uint64_t deadline = sl_now_ms() + 5000;
    for (;;) {
        char *end = memmem(rbuf, rlen, "\r\n\r\n", 4);
        if (end) {
            size_t hl = (size_t)(end - rbuf) + 4;
            assert_true(hl < sizeof r.head);
            memcpy(r.head, rbuf, hl);
            r.head[hl] = '\0';
            char *cl = strcasestr(r.head, "\r\nContent-Length: ");
            assert_non_null(cl);
            size_t want = head_only ? 0 : strtoul(cl + 18, NULL, 10);
            if (rlen >= hl + want) {
                r.status = atoi(r.head + 9);
                r.body = malloc(want + 1);
                memcpy(r.body, rbuf + hl, want);
                r.body[want] = '\0';
                r.body_len = want;
                memmove(rbuf, rbuf + hl + want, rlen - hl - want);
                rlen -= hl + want;
                return r;
            }
        }
        if (r.eof || sl_now_ms() > deadline) {
            r.status = r.eof ? -1 : -2; /* closed without a response / timed out */
            return r;
        }
        read_some(fd, &r.eof);
    }
}

/* After a response with Connection: close, the server must close: reads end in EOF. */
static void expect_eof(int fd)
{
    bool eof = false;
    uint64_t deadline = sl_now_ms() + 5000;
    while (!eof && sl_now_ms() < deadline) {
        size_t before = rlen;
        read_some(fd, &eof);
        assert_int_equal(rlen, before); /* no stray bytes */
    }
    assert_true(eof);
}

/* No more bytes arrive for a while (HEAD has no body). */
static void expect_quiet(int fd)
{
    bool eof = false;
    for (int i = 0; i < 10; i++)
        read_some(fd, &eof);
    assert_false(eof);
    assert_int_equal(rlen, 0);
}

static struct resp request(int fd, const char *req)
{
    send_all(fd, req, strlen(req));
    return get_response(fd, strncmp(req, "HEAD", 4) == 0);
}

static void test_get_keepalive_and_pipelining(void **state)
{
    (void)state;
    start(NULL);
    rlen = 0;
    int fd = client();
    struct resp r = request(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello\n");
    assert_non_null(strstr(r.head, "Connection: keep-alive\r\n"));
    free(r.body);
    r = request(fd, "GET /hello?q HTTP/1.1\r\n\r\n"); /* same connection */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello\n");
    free(r.body);
    /* two requests in one segment: two responses, in order */
    const char *two = "GET /metrics HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n";
    send_all(fd, two, strlen(two));
    r = get_response(fd, false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_string_equal(r.body, "# HELP t_requests_total Test.\n# TYPE t_requests_total counter\n"
                                "t_requests_total{path=\"/\"} 42\n");
    free(r.body);
    r = get_response(fd, false);
    assert_string_equal(r.body, "hello\n");
    free(r.body);
    assert_int_equal(sl_http_stats(S)->accepted, 1);
    assert_int_equal(sl_http_stats(S)->requests, 4);
    close(fd);
    stop();
}

static void test_status_codes(void **state)
{
    (void)state;
    start(NULL);
    rlen = 0;
    int fd = client();
    struct resp r = request(fd, "GET /nope HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 404);
    free(r.body);
    /* a small body is discarded and the connection stays usable */
    r = request(fd, "POST /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde");
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
    free(r.body);
    r = request(fd, "HEAD /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nContent-Length: 6\r\n"));
    free(r.body);
    expect_quiet(fd);
    r = request(fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello\n");
    free(r.body);
    r = request(fd, "BREW /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 405);
    free(r.body);
    /* malformed: 400 and close */
    r = request(fd, "GARBAGE\r\n\r\n");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    free(r.body);
    expect_eof(fd);
    close(fd);

    /* HTTP/1.0 without keep-alive: answered, then closed */
    fd = client();
    r = request(fd, "GET /hello HTTP/1.0\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Connection: close\r\n"));
    free(r.body);
    expect_eof(fd);
    close(fd);

    /* chunked bodies are not supported: 501 and close; a body over the limit: 413 and close */
    fd = client();
    r = request(fd, "POST /hello HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(r.status, 501);
    free(r.body);
    expect_eof(fd);
    close(fd);
    fd = client();
    r = request(fd, "POST /hello HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n");
    assert_int_equal(r.status, 413);
    free(r.body);
    expect_eof(fd);
    close(fd);
    stop();
}

static void test_head_too_large(void **state)
{
    (void)state;
    start(NULL);
    rlen = 0;
    int fd = client();
    char req[9 * 1024 + 64];
    size_t n = (size_t)snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nX-Pad: ");
    memset(req + n, 'a', 9 * 1024);
    n += 9 * 1024;
    memcpy(req + n, "\r\n\r\n", 4);
    n += 4;
    send_all(fd, req, n);
    struct resp r = get_response(fd, false);
    assert_int_equal(r.status, 431);
    free(r.body);
    /* the server closes with unread bytes pending, so the kernel may turn the FIN into a reset:
     * either ends the connection */
    bool eof = false;
    uint64_t deadline = sl_now_ms() + 5000;
    while (!eof && sl_now_ms() < deadline)
        read_some(fd, &eof);
    assert_true(eof);
    close(fd);
    stop();
}

static void test_connection_limit(void **state)
{
    (void)state;
    start(NULL);
    rlen = 0;
    int fds[64];
    for (int i = 0; i < 64; i++)
        fds[i] = client();
    uint64_t deadline = sl_now_ms() + 5000;
    while (sl_http_stats(S)->conns < 64 && sl_now_ms() < deadline)
        sl_loop_run_once(L, 5);
    assert_int_equal(sl_http_stats(S)->conns, 64);
    int extra = client();
    struct resp r = get_response(extra, false);
    assert_int_equal(r.status, 503);
    free(r.body);
    expect_eof(extra);
    close(extra);
    assert_int_equal(sl_http_stats(S)->rejected, 1);
    assert_int_equal(sl_http_stats(S)->conns, 64);
    /* the 64 are still served */
    r = request(fds[63], "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    free(r.body);
    /* closing one makes room again */
    close(fds[0]);
    deadline = sl_now_ms() + 5000;
    while (sl_http_stats(S)->conns == 64 && sl_now_ms() < deadline)
        sl_loop_run_once(L, 5);
    fds[0] = client();
    r = request(fds[0], "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    free(r.body);
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    stop();
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct sl_http_limits lim = {.idle_timeout_ms = 100};
    start(&lim);
    rlen = 0;
    int fd = client();
    struct resp r = request(fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    free(r.body);
    /* a partial request does not keep the connection alive */
    send_all(fd, "GET /hel", 8);
    uint64_t t0 = sl_now_ms();
    expect_eof(fd);
    assert_true(sl_now_ms() - t0 >= 50);
    close(fd);
    assert_int_equal(sl_http_stats(S)->conns, 0);
    stop();
}

static void test_large_response_and_cap(void **state)
{
    (void)state;
    start(NULL);
    rlen = 0;
    int fd = client_rcvbuf(4096);
    struct resp r = request(fd, "GET /big HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, BIG_LEN);
    assert_memory_equal(r.body + BIG_LEN - 16, "000000000196607\n", 16);
    free(r.body);
    r = request(fd, "GET /hello HTTP/1.1\r\n\r\n");
    assert_string_equal(r.body, "hello\n");
    free(r.body);
    close(fd);
    stop();

    struct sl_http_limits lim = {.max_response = 1000};
    start(&lim);
    rlen = 0;
    fd = client();
    r = request(fd, "GET /big HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 503);
    free(r.body);
    r = request(fd, "GET /hello HTTP/1.1\r\n\r\n"); /* still usable */
    assert_int_equal(r.status, 200);
    free(r.body);
    close(fd);
    stop();
}

static void test_status_page(void **state)
{
    (void)state;
    start(NULL);
    rlen = 0;
    int fd = client();
    struct resp r = request(fd, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: text/html; charset=utf-8\r\n"));
    assert_int_equal(r.body_len, SL_STATUS_PAGE_LEN);
    assert_true(r.body_len < 20 * 1024);
    assert_int_equal(strncmp(r.body, "<!DOCTYPE html>", 15), 0);
    /* self-contained: nothing is fetched from anywhere but this server's /status */
    assert_null(strstr(r.body, "http:"));
    assert_null(strstr(r.body, "https:"));
    assert_null(strstr(r.body, "src="));
    /* the only <link> is the inline favicon (a data: URL fetches nothing) */
    const char *lk = strstr(r.body, "<link");
    assert_non_null(lk);
    static const char favicon[] = "<link rel=\"icon\" href=\"data:,\">";
    assert_int_equal(strncmp(lk, favicon, sizeof favicon - 1), 0);
    assert_null(strstr(lk + 1, "<link"));
    assert_null(strstr(r.body, "@import"));
    assert_null(strstr(r.body, "innerHTML"));
    assert_non_null(strstr(r.body, "fetch('status'"));
    free(r.body);
    close(fd);
    stop();
}

static void test_listen_addresses(void **state)
{
    (void)state;
    char err[256];
    struct sl_loop *l = sl_loop_new();
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:",   "127.0.0.1:65536",       "::1:80",
        "[::1]80",   "127.0.0.1:8x", "no.such.host.invalid:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sl_http_server *s = sl_http_new(l, NULL);
        err[0] = '\0';
        if (sl_http_listen(s, bad[i], err, sizeof err) == 0) fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
        sl_http_free(s);
    }
    struct sl_http_server *s = sl_http_new(l, NULL);
    assert_int_equal(sl_http_listen(s, ":0", err, sizeof err), 0);
    assert_true(sl_http_port(s) > 0);
    /* the same port twice fails with a reason */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", sl_http_port(s));
    struct sl_http_server *s2 = sl_http_new(l, NULL);
    assert_int_equal(sl_http_listen(s2, addr, err, sizeof err), -1);
    assert_non_null(strstr(err, "in use"));
    sl_http_free(s2);
    sl_http_free(s);
    s = sl_http_new(l, NULL);
    if (sl_http_listen(s, "[::1]:0", err, sizeof err) == 0)
        assert_true(sl_http_port(s) > 0);
    else
        print_message("no IPv6 loopback here: %s\n", err);
    sl_http_free(s);
    sl_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_need_more),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_get_keepalive_and_pipelining),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_head_too_large),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_large_response_and_cap),
        cmocka_unit_test(test_status_page),
        cmocka_unit_test(test_listen_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
