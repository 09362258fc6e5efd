/* libFuzzer target for src/codec/msgpack.c and src/codec/forward.c. The input is one would-be
 * Forward frame. Properties, beyond "no crash" (ASan bounds reads: the input is libFuzzer's
 * exact-size copy):
 *  1. sl_mp_frame_len never claims more than len bytes as complete, its "need more" bound is past
 *     len, and the resumable framer fed in two pieces agrees with the one-shot answer;
 *  2. sl_fwd_decode calls no malloc (counted with the sanitizer allocation hooks), and a rejected
 *     frame yields no events;
 *  3. every yielded record is exactly one well-formed msgpack map, lies inside the frame or the
 *     decompression buffer, and sl_mp_to_json of it is valid JSON (sl_json_scan_object); the
 *     paths sl_mp_to_json_scan finds while converting are the ones the scan finds in the output;
 *  4. the ack of a decoded chunk is a well-formed {"ack": v} whose v is the chunk bytes again;
 *  5. the handshake parsers never fail open: an accepted PING/PONG/HELO has its fields in the
 *     input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/forward.h"
#include "codec/json.h"
#include "codec/msgpack.h"
#include "fuzz_check.h"

int __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                              void (*f)(const volatile void *));

static volatile int counting;
static volatile size_t n_mallocs;

static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    if (counting) n_mallocs++;
}

static void on_free(const volatile void *p)
{
    (void)p;
}

static uint8_t zbuf[1 << 16];
static struct sl_fwd_zarena zarena;
static char json[1 << 20], json2[1 << 20];

struct ctx {
    const uint8_t *frame;
    size_t len;
    size_t events;
};

static int within(const uint8_t *p, size_t n, const uint8_t *base, size_t blen)
{
    return p >= base && p <= base + blen && n <= (size_t)(base + blen - p);
}

static int on_event(void *vctx, const struct sl_fwd_request *req, const struct sl_fwd_event *ev)
{
    struct ctx *c = vctx;
    CHECK(ev->index == c->events);
    c->events++;
    CHECK(req->tag != NULL);
    if (ev->error) {
        CHECK(strncmp(ev->error, "entry ", 6) == 0);
        return 0;
    }
    CHECK(within(ev->record, ev->record_len, c->frame, c->len) ||
          within(ev->record, ev->record_len, zbuf, sizeof(zbuf)));
    CHECK(sl_mp_check_one(ev->record, ev->record_len, NULL) == 0);
    CHECK(ev->record[0] >= 0x80 && (ev->record[0] <= 0x8f || ev->record[0] >= 0xde));
    /* The paths found while converting are exactly what a scan of the output finds. Short key
     * names, so records the fuzzer builds hit them, nested and duplicated. */
    static const char *const paths[] = {"a", "b", "a.b", "a.b.c", "@timestamp", "b.a", "c.c", "x"};
    struct sl_json_scan cs;
    memset(&cs, 0, sizeof(cs));
    for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++)
        cs.paths[k] = paths[k];
    cs.n_paths = sizeof(paths) / sizeof(paths[0]);
    ssize_t jl = sl_mp_to_json_scan(ev->record, ev->record_len, json, sizeof(json), NULL, &cs);
    CHECK(jl == sl_mp_to_json(ev->record, ev->record_len, json2, sizeof(json2), NULL));
    if (jl >= 0 && (size_t)jl <= sizeof(json)) {
        CHECK(memcmp(json, json2, (size_t)jl) == 0);
        struct sl_json_scan s;
        memset(&s, 0, sizeof(s));
        for (size_t k = 0; k < cs.n_paths; k++)
            s.paths[k] = paths[k];
        s.n_paths = cs.n_paths;
        if (sl_json_scan_object(json, (size_t)jl, &s) != 0) {
            fprintf(stderr, "invalid JSON at %zu: %s\n", s.err_offset, s.err_msg);
            CHECK(0);
        }
        for (size_t k = 0; k < cs.n_paths; k++) {
            CHECK((cs.val[k] == NULL) == (s.val[k] == NULL));
            if (s.val[k]) CHECK(cs.val[k] == s.val[k] && cs.vlen[k] == s.vlen[k]);
        }
    }
    return 0;
}

static void check_framer(const uint8_t *data, size_t size)
{
    size_t n = 0, n2 = 0;
    size_t max = size + 64;
    int rc = sl_mp_frame_len(data, size, max, &n, NULL);
    if (rc == SL_MP_FRAME_DONE) CHECK(n > 0 && n <= size);
    if (rc == SL_MP_FRAME_MORE) CHECK(n > size && n <= max);
    struct sl_mp_framer f;
    sl_mp_framer_reset(&f);
    int rc2 = sl_mp_framer_scan(&f, data, size / 2, max, &n2, NULL);
    if (rc2 == SL_MP_FRAME_MORE) rc2 = sl_mp_framer_scan(&f, data, size, max, &n2, NULL);
    CHECK(rc2 == rc);
    if (rc != SL_MP_FRAME_ERROR) CHECK(n2 == n);
}

static void check_ack(const struct sl_fwd_request *req)
{
    if (!req->opt.chunk) return;
    static uint8_t out[1 << 17];
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    sl_fwd_ack(req->opt.chunk, req->opt.chunk_len, &w);
    if (w.overflow) return;
    CHECK(sl_mp_check_one(out, w.len, NULL) == 0);
    struct sl_mp_reader r;
    struct sl_mp_obj o;
    sl_mp_reader_init(&r, out, w.len);
    CHECK(sl_mp_read(&r, &o) == 0 && o.type == SL_MP_MAP && o.n == 1);
    CHECK(sl_mp_read(&r, &o) == 0 && o.type == SL_MP_STR && o.n == 3 && !memcmp(o.p, "ack", 3));
    CHECK(w.len - r.pos == req->opt.chunk_len);
    CHECK(memcmp(out + r.pos, req->opt.chunk, req->opt.chunk_len) == 0);
}

static void check_handshake(const uint8_t *data, size_t size)
{
    char err[SL_FWD_ERRLEN];
    struct sl_fwd_ping p;
    if (sl_fwd_parse_ping(data, size, &p, err, sizeof(err)) == 0) {
        CHECK(within((const uint8_t *)p.host, p.host_len, data, size));
        CHECK(within(p.salt, p.salt_len, data, size));
        CHECK(within((const uint8_t *)p.digest, p.digest_len, data, size));
        CHECK(sl_fwd_verify_ping(&p, "n", 1, "k", 1) == -1 || p.digest_len == 128);
    }
    struct sl_fwd_pong q;
    if (sl_fwd_parse_pong(data, size, &q, err, sizeof(err)) == 0)
        CHECK(within((const uint8_t *)q.digest, q.digest_len, data, size));
    struct sl_fwd_helo h;
    if (sl_fwd_parse_helo(data, size, &h, err, sizeof(err)) == 0)
        CHECK(h.nonce && within(h.nonce, h.nonce_len, data, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int hooked;
    if (!hooked) {
        __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
        hooked = 1;
    }
    check_framer(data, size);

    struct sl_fwd_decode_opts opts = {zbuf, sizeof(zbuf), &zarena};
    struct sl_fwd_request req;
    struct ctx c = {data, size, 0};
    char err[SL_FWD_ERRLEN];
    n_mallocs = 0;
    counting = 1;
    int rc = sl_fwd_decode(data, size, &opts, &req, on_event, &c, err, sizeof(err));
    counting = 0;
    CHECK(n_mallocs == 0);
    if (rc == SL_FWD_ERROR) {
        CHECK(c.events == 0);
        CHECK(err[0] != '\0');
    } else {
        CHECK(rc == SL_FWD_OK);
        CHECK(req.n_entries == c.events);
        if (req.mode == SL_FWD_MESSAGE) CHECK(c.events == 1);
        check_ack(&req);
    }
    check_handshake(data, size);
    return 0;
}
