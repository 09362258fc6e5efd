/* Tests of src/codec/forward.c against byte-exact vectors of every carrier mode of the Forward
 * Protocol Specification v1 (python3-msgpack's encodings, which equal msgpack-c 4.0.0's),
 * plus bounds (truncation at every byte, decompression limits), per-entry errors, and encoder
 * round trips. Digests are compared with hex strings computed by sha512sum, not with values
 * computed by the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "codec/forward.h"
#include "codec/msgpack.h"
#include "test_util.h"

/* ---- the vectors of 1.10 ---- */

#define CHUNK_HEX "b8 41 41 45 43 41 77 51 46 42 67 63 49 43 51 6f 4c 44 41 30 4f 44 77 3d 3d"
#define ENTRIES_HEX                                                                                \
    "92 d7 00 55 ec e6 f8 00 00 00 00 81 a1 61 01 92 d7 00 55 ec e6 f9 00 00 01 f4 81 a1 62 02"

static const char message_hex[] =
    "94 a7 61 70 70 2e 6c 6f 67 d7 00 55 ec e6 f8 07 5b cd 15 81 a7 6d 65 73 73 61 67 65 a5 68 65 "
    "6c 6c 6f 81 a5 63 68 75 6e 6b b8 41 41 45 43 41 77 51 46 42 67 63 49 43 51 6f 4c 44 41 30 4f "
    "44 77 3d 3d";
static const char forward_hex[] =
    "93 a7 61 70 70 2e 6c 6f 67 92 92 d7 00 55 ec e6 f8 00 00 00 00 81 a1 61 01 92 d7 00 55 ec e6 "
    "f9 00 00 01 f4 81 a1 62 02 82 a4 73 69 7a 65 02 a5 63 68 75 6e 6b b8 41 41 45 43 41 77 51 46 "
    "42 67 63 49 43 51 6f 4c 44 41 30 4f 44 77 3d 3d";
static const char packed_hex[] = "93 a7 61 70 70 2e 6c 6f 67 c4 1e " ENTRIES_HEX
                                 " 82 a4 73 69 7a 65 02 a5 63 68 75 6e 6b " CHUNK_HEX;
/* fluentd: str32 entries, "compressed":"text" */
static const char fluentd_hex[] = "93 a7 61 70 70 2e 6c 6f 67 db 00 00 00 1e " ENTRIES_HEX
                                  " 83 a4 73 69 7a 65 02 aa 63 6f 6d 70 72 65 73 73 65 64 a4 74 65 "
                                  "78 74 a5 63 68 75 6e 6b " CHUNK_HEX;
static const char compressed_hex[] =
    "93 a7 61 70 70 2e 6c 6f 67 c4 2e 1f 8b 08 00 00 00 00 00 02 03 9b 74 9d 21 f4 cd b3 1f 0c 40 "
    "d0 b8 30 91 71 12 98 fb 93 81 81 f1 4b e3 c2 24 26 00 bc 53 c0 15 1e 00 00 00 83 a4 73 69 7a "
    "65 02 aa 63 6f 6d 70 72 65 73 73 65 64 a4 67 7a 69 70 a5 63 68 75 6e 6b " CHUNK_HEX;
static const char ack_hex[] = "81 a3 61 63 6b " CHUNK_HEX;

static const int64_t T1 = 1441588984LL * 1000000000 + 123456789;
static const int64_t T2 = 1441588984LL * 1000000000;
static const int64_t T3 = 1441588985LL * 1000000000 + 500;

/* ---- collecting callback ---- */

#define MAXEV 2048
struct got {
    size_t n;
    int64_t t[MAXEV];
    const uint8_t *rec[MAXEV];
    size_t rlen[MAXEV];
    size_t idx[MAXEV];
    const uint8_t *meta[MAXEV];
    size_t mlen[MAXEV];
    char err[MAXEV > 16 ? 16 : MAXEV][SL_FWD_ERRLEN];
    int bad[MAXEV];
    size_t stop_after; /* 0: never */
};

static int collect(void *ctx, const struct sl_fwd_request *req, const struct sl_fwd_event *ev)
{
    (void)req;
    struct got *g = ctx;
    assert_true(g->n < MAXEV);
    g->t[g->n] = ev->time_ns;
    g->rec[g->n] = ev->record;
    g->rlen[g->n] = ev->record_len;
    g->idx[g->n] = ev->index;
    g->meta[g->n] = ev->meta;
    g->mlen[g->n] = ev->meta_len;
    g->bad[g->n] = ev->error != NULL;
    if (ev->error && g->n < 16) snprintf(g->err[g->n], SL_FWD_ERRLEN, "%s", ev->error);
    /* the entry always covers the record */
    if (!ev->error)
        assert_true(ev->record >= ev->entry &&
                    ev->record + ev->record_len <= ev->entry + ev->entry_len);
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static uint8_t zbuf[1 << 16];
static struct sl_fwd_zarena zarena;

static int decode(const uint8_t *f, size_t n, struct sl_fwd_request *req, struct got *g, char *err)
{
    struct sl_fwd_decode_opts o = {zbuf, sizeof(zbuf), &zarena};
    memset(g, 0, sizeof(*g));
    return sl_fwd_decode(f, n, &o, req, collect, g, err, SL_FWD_ERRLEN);
}

static void expect_rec(const struct got *g, size_t k, const char *hex)
{
    uint8_t exp[64];
    size_t n = unhex(hex, exp);
    assert_int_equal(g->rlen[k], n);
    assert_memory_equal(g->rec[k], exp, n);
}

static void expect_two_events(const struct got *g)
{
    assert_int_equal(g->n, 2);
    assert_true(g->t[0] == T2);
    assert_true(g->t[1] == T3);
    expect_rec(g, 0, "81 a1 61 01");
    expect_rec(g, 1, "81 a1 62 02");
    assert_int_equal(g->idx[1], 1);
}

static void expect_chunk(const struct sl_fwd_request *req)
{
    uint8_t exp[32];
    size_t n = unhex(CHUNK_HEX, exp);
    assert_int_equal(req->opt.chunk_len, n);
    assert_memory_equal(req->opt.chunk, exp, n);
    assert_true(req->opt.chunk_is_str);
    assert_int_equal(req->opt.chunk_str_len, 24);
    assert_memory_equal(req->opt.chunk_str, "AAECAwQFBgcICQoLDA0ODw==", 24);
}

static void test_event_time_and_chunk_id(void **state)
{
    (void)state;
    uint8_t buf[16];
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, buf, sizeof(buf));
    sl_mp_w_event_time(&w, T1);
    uint8_t exp[16];
    size_t n = unhex("d7 00 55 ec e6 f8 07 5b cd 15", exp);
    assert_int_equal(w.len, n);
    assert_memory_equal(buf, exp, n);

    uint8_t id[16];
    for (int k = 0; k < 16; k++)
        id[k] = (uint8_t)k;
    char cid[25];
    sl_fwd_chunk_id(id, cid);
    assert_string_equal(cid, "AAECAwQFBgcICQoLDA0ODw==");

    /* ext8 form of the same time, in a Message frame */
    uint8_t f[64];
    n = unhex("93 a1 74 c7 08 00 55 ec e6 f8 07 5b cd 15 80", f);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_MESSAGE);
    assert_int_equal(g.n, 1);
    assert_true(g.t[0] == T1);
}

static void test_message_vector(void **state)
{
    (void)state;
    uint8_t f[128];
    size_t n = unhex(message_hex, f);
    assert_int_equal(n, 66);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_MESSAGE);
    assert_int_equal(req.tag_len, 7);
    assert_memory_equal(req.tag, "app.log", 7);
    assert_int_equal(g.n, 1);
    assert_true(g.t[0] == T1);
    expect_rec(&g, 0, "81 a7 6d 65 73 73 61 67 65 a5 68 65 6c 6c 6f");
    expect_chunk(&req);
    assert_false(req.opt.has_size);
    assert_int_equal(req.opt.compressed, SL_FWD_COMP_ABSENT);
}

static void test_forward_vector(void **state)
{
    (void)state;
    uint8_t f[128];
    size_t n = unhex(forward_hex, f);
    assert_int_equal(n, 78);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_FORWARD);
    assert_memory_equal(req.tag, "app.log", 7);
    expect_two_events(&g);
    expect_chunk(&req);
    assert_true(req.opt.has_size);
    assert_int_equal(req.opt.size, 2);
}

static void test_packed_vectors(void **state)
{
    (void)state;
    uint8_t f[128];
    size_t n = unhex(packed_hex, f);
    assert_int_equal(n, 79);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_PACKED);
    expect_two_events(&g);
    expect_chunk(&req);

    n = unhex(fluentd_hex, f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_PACKED);
    assert_int_equal(req.opt.compressed, SL_FWD_COMP_TEXT);
    expect_two_events(&g);
    expect_chunk(&req);
}

static void test_packed_encoder_matches_vectors(void **state)
{
    (void)state;
    uint8_t out[256], exp[128];
    struct sl_mp_wbuf w;
    struct sl_fwd_packer p;
    for (int gz = 0; gz <= 1; gz++) {
        sl_mp_wbuf_init(&w, out, sizeof(out));
        sl_fwd_packed_begin(&p, &w, "app.log", 7);
        sl_fwd_packed_add(&p, T2, (const uint8_t *)"\x81\xa1\x61\x01", 4);
        sl_fwd_packed_add(&p, T3, (const uint8_t *)"\x81\xa1\x62\x02", 4);
        assert_int_equal(sl_fwd_packed_end(&p, "AAECAwQFBgcICQoLDA0ODw==", 24, gz ? 9 : 0), 0);
        size_t n = unhex(gz ? compressed_hex : packed_hex, exp);
        assert_int_equal(w.len, n);
        assert_memory_equal(out, exp, n);
    }
}

/* gzip with zlib at mtime 0 (zlib's default header), level 9 like Python's gzip.compress */
static size_t gz(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t o = cap - zs.avail_out;
    deflateEnd(&zs);
    return o;
}

static size_t compressed_frame(const uint8_t *payload, size_t plen, uint8_t *f)
{
    size_t n = unhex("93 a7 61 70 70 2e 6c 6f 67", f);
    f[n++] = 0xc4;
    f[n++] = (uint8_t)plen;
    memcpy(f + n, payload, plen);
    n += plen;
    n +=
        unhex("83 a4 73 69 7a 65 02 aa 63 6f 6d 70 72 65 73 73 65 64 a4 67 7a 69 70 a5 63 68 75 6e "
              "6b " CHUNK_HEX,
              f + n);
    return n;
}

static void test_compressed_vector(void **state)
{
    (void)state;
    uint8_t entries[64], gzb[128], f[256], exp[256];
    size_t en = unhex(ENTRIES_HEX, entries);
    size_t gl = gz(entries, en, gzb, sizeof(gzb));
    size_t n = compressed_frame(gzb, gl, f);
    size_t xn = unhex(compressed_hex, exp);
    assert_int_equal(n, 111);
    assert_int_equal(xn, 111);
    assert_memory_equal(f, exp, n);

    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_COMPRESSED);
    assert_int_equal(req.opt.compressed, SL_FWD_COMP_GZIP);
    expect_two_events(&g);
    expect_chunk(&req);

    /* two concatenated members: four events */
    uint8_t two[128];
    memcpy(two, gzb, gl);
    memcpy(two + gl, gzb, gl);
    n = compressed_frame(two, 2 * gl, f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(g.n, 4);
    assert_true(g.t[2] == T2 && g.t[3] == T3);
    assert_int_equal(g.idx[3], 3);

    /* the bound: exactly 30 bytes fits, 29 does not */
    struct sl_fwd_decode_opts o = {zbuf, 30, &zarena};
    n = compressed_frame(gzb, gl, f);
    memset(&g, 0, sizeof(g));
    assert_int_equal(sl_fwd_decode(f, n, &o, &req, collect, &g, err, sizeof(err)), SL_FWD_OK);
    assert_int_equal(g.n, 2);
    o.zcap = 29;
    memset(&g, 0, sizeof(g));
    assert_int_equal(sl_fwd_decode(f, n, &o, &req, collect, &g, err, sizeof(err)), SL_FWD_ERROR);
    assert_string_equal(err, "decompressed size exceeds 29");
    assert_int_equal(g.n, 0);
    /* second member over the bound */
    o.zcap = 45;
    n = compressed_frame(two, 2 * gl, f);
    assert_int_equal(sl_fwd_decode(f, n, &o, &req, collect, &g, err, sizeof(err)), SL_FWD_ERROR);
    assert_string_equal(err, "decompressed size exceeds 45");
    /* no buffer given */
    assert_int_equal(sl_fwd_decode(f, n, NULL, &req, collect, &g, err, sizeof(err)), SL_FWD_ERROR);
    assert_string_equal(err, "gzip payload but no decompression buffer");
    /* garbage after a member, and a truncated member */
    memcpy(two + gl, "\x01\x02\x03", 3);
    n = compressed_frame(two, gl + 3, f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_ERROR);
    assert_non_null(strstr(err, "gzip"));
    n = compressed_frame(gzb, gl - 4, f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_ERROR);
    assert_non_null(strstr(err, "gzip"));
}

static void test_v15_meta_and_integer_time(void **state)
{
    (void)state;
    /* Forward frame holding the v1.5 metadata entry and the integer-time entry of 1.10 */
    uint8_t f[128];
    size_t n = unhex("92 a7 61 70 70 2e 6c 6f 67 92"
                     " 92 92 d7 00 55 ec e6 f8 00 00 00 00 80 81 a1 61 01"
                     " 92 ce 55 ec e6 f8 81 a1 61 01",
                     f);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(g.n, 2);
    assert_true(g.t[0] == T2);
    assert_true(g.t[1] == T2);
    expect_rec(&g, 0, "81 a1 61 01");
    expect_rec(&g, 1, "81 a1 61 01");
    assert_int_equal(g.mlen[0], 1);
    assert_int_equal(g.meta[0][0], 0x80);
    assert_null(g.meta[1]);
    assert_int_equal(req.opt.chunk_len, 0);
    assert_null(req.opt.chunk);

    /* time 0 stays 0; float time is accepted leniently; nil option */
    n = unhex("93 a1 74 92 92 00 80 92 cb 41 d5 7b 39 be 00 00 00 80 c0", f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(g.n, 2);
    assert_true(g.t[0] == 0);
    assert_true(g.t[1] == T2);
}

static void test_ack_bytes(void **state)
{
    (void)state;
    uint8_t f[128], exp[64], out[64];
    size_t n = unhex(message_hex, f);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    sl_fwd_ack(req.opt.chunk, req.opt.chunk_len, &w);
    size_t xn = unhex(ack_hex, exp);
    assert_int_equal(w.len, xn);
    assert_memory_equal(out, exp, xn);

    /* fluentd's 25-byte chunk with "\n" and fluency's 36-char UUID come back byte for byte */
    const char *chunks[] = {"p8n9gmxTQVC8/nh2wlKKeQ==\n", "123e4567-e89b-12d3-a456-426614174000"};
    for (int k = 0; k < 2; k++) {
        uint8_t fb[128];
        struct sl_mp_wbuf fw;
        sl_mp_wbuf_init(&fw, fb, sizeof(fb));
        sl_mp_w_array(&fw, 3);
        sl_mp_w_str(&fw, "t", 1);
        sl_mp_w_array(&fw, 0);
        sl_mp_w_map(&fw, 1);
        sl_mp_w_str(&fw, "chunk", 5);
        size_t cstart = fw.len;
        sl_mp_w_str(&fw, chunks[k], strlen(chunks[k]));
        assert_int_equal(decode(fb, fw.len, &req, &g, err), SL_FWD_OK);
        assert_int_equal(g.n, 0);
        sl_mp_wbuf_init(&w, out, sizeof(out));
        sl_fwd_ack(req.opt.chunk, req.opt.chunk_len, &w);
        assert_int_equal(w.len, 5 + fw.len - cstart);
        assert_memory_equal(out + 5, fb + cstart, fw.len - cstart);
        assert_int_equal(req.opt.chunk_str_len, strlen(chunks[k]));
    }
}

static void test_nil_keepalive(void **state)
{
    (void)state;
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode((const uint8_t *)"\xc0", 1, &req, &g, err), SL_FWD_OK);
    assert_int_equal(req.mode, SL_FWD_KEEPALIVE);
    assert_int_equal(g.n, 0);
}

/* ---- handshake ---- */

static const char ping_digest[] =
    "c04595ac2136aee29622265d29f517a8f5ac08375f131395a0d0e89d5494bd30"
    "60d2d4f48f757b6caa3bab42127669cf6d775250a56a076ad55920925500a35f";
static const char password_digest[] =
    "be22a5dc5f31ede104b0386030d4df3e7e6a8b93e00b4725199fec980097bbad"
    "4f01bce36147ae5ea619c0abec5569d680613a1a31e51be4ffe4a5ffb0460dd9";
static const char pong_digest[] =
    "84f113ff067cc7c078417277349c6e49a4c889eabad5ef2c82b364c62f27b9ef"
    "e6889ec4d4430509b6b8006d44042d3dd95873fc519269ad6928003ddd1daeb1";
static const uint8_t auth_salt[16] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
                                      0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f};
static const char client_salt[] = "0123456789abcdef0123456789abcdef";

static void nonce16(uint8_t n[16])
{
    for (int k = 0; k < 16; k++)
        n[k] = (uint8_t)k;
}

static void test_helo(void **state)
{
    (void)state;
    uint8_t nonce[16], out[128], exp[128];
    nonce16(nonce);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    sl_fwd_helo(nonce, auth_salt, 1, &w);
    size_t n =
        unhex("92 a4 48 45 4c 4f 83 a5 6e 6f 6e 63 65 c4 10 00 01 02 03 04 05 06 07 08 09 0a "
              "0b 0c 0d 0e 0f a4 61 75 74 68 c4 10 f0 e1 d2 c3 b4 a5 96 87 78 69 5a 4b 3c 2d "
              "1e 0f a9 6b 65 65 70 61 6c 69 76 65 c3",
              exp);
    assert_int_equal(n, 65);
    assert_int_equal(w.len, 65);
    assert_memory_equal(out, exp, 65);

    struct sl_fwd_helo h;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(sl_fwd_parse_helo(out, w.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.nonce_len, 16);
    assert_memory_equal(h.nonce, nonce, 16);
    assert_int_equal(h.auth_len, 16);
    assert_int_equal(h.keepalive, 1);

    /* Fluent Bit style: str fields, no keepalive key -> defaults to true */
    struct sl_mp_wbuf w2;
    uint8_t fb[128];
    sl_mp_wbuf_init(&w2, fb, sizeof(fb));
    sl_mp_w_array(&w2, 2);
    sl_mp_w_str(&w2, "HELO", 4);
    sl_mp_w_map(&w2, 2);
    sl_mp_w_str(&w2, "nonce", 5);
    sl_mp_w_str(&w2, nonce, 16);
    sl_mp_w_str(&w2, "auth", 4);
    sl_mp_w_str(&w2, "", 0);
    assert_int_equal(sl_fwd_parse_helo(fb, w2.len, &h, err, sizeof(err)), 0);
    assert_int_equal(h.keepalive, 1);
    assert_int_equal(h.auth_len, 0);
    /* not a HELO */
    assert_int_equal(sl_fwd_parse_helo((const uint8_t *)"\x91\xa4PING", 6, &h, err, sizeof(err)),
                     -1);
}

static void test_digests(void **state)
{
    (void)state;
    uint8_t nonce[16];
    nonce16(nonce);
    char hex[129];
    assert_int_equal(
        sl_fwd_ping_digest(client_salt, 32, "client.example.com", 18, nonce, 16, "secret", 6, hex),
        0);
    assert_string_equal(hex, ping_digest);
    assert_int_equal(sl_fwd_password_digest(auth_salt, 16, "alice", 5, "s3cret", 6, hex), 0);
    assert_string_equal(hex, password_digest);
    assert_int_equal(
        sl_fwd_ping_digest(client_salt, 32, "server.example.com", 18, nonce, 16, "secret", 6, hex),
        0);
    assert_string_equal(hex, pong_digest);
}

static void test_ping_round_trip(void **state)
{
    (void)state;
    uint8_t nonce[16], out[512];
    nonce16(nonce);
    struct sl_fwd_helo h = {nonce, 16, auth_salt, 16, 1};
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    assert_int_equal(sl_fwd_make_ping(&h, "client.example.com", 18, client_salt, 32, "secret", 6,
                                      "alice", 5, "s3cret", 6, &w),
                     0);
    assert_int_equal(w.len, 325);
    uint8_t start[64];
    size_t sn = unhex("96 a4 50 49 4e 47 b2", start);
    assert_memory_equal(out, start, sn);
    assert_memory_equal(out + sn, "client.example.com", 18);
    assert_int_equal(out[sn + 18], 0xd9);
    assert_int_equal(out[sn + 19], 0x20);

    struct sl_fwd_ping p;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(sl_fwd_parse_ping(out, w.len, &p, err, sizeof(err)), 0);
    assert_int_equal(p.digest_len, 128);
    assert_memory_equal(p.digest, ping_digest, 128);
    assert_memory_equal(p.user, "alice", 5);
    assert_memory_equal(p.password, password_digest, 128);
    assert_int_equal(sl_fwd_verify_ping(&p, nonce, 16, "secret", 6), 0);
    assert_int_equal(sl_fwd_verify_ping(&p, nonce, 16, "Secret", 6), -1);

    /* without user auth the HELO has an empty auth: "" and "" are sent */
    h.auth_len = 0;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    assert_int_equal(sl_fwd_make_ping(&h, "client.example.com", 18, client_salt, 32, "secret", 6,
                                      "alice", 5, "s3cret", 6, &w),
                     0);
    assert_int_equal(sl_fwd_parse_ping(out, w.len, &p, err, sizeof(err)), 0);
    assert_int_equal(p.user_len, 0);
    assert_int_equal(p.password_len, 0);

    /* 5 elements is not a PING */
    uint8_t bad[8] = {0x95, 0xa4, 'P', 'I', 'N', 'G', 0xa0, 0xa0};
    bad[0] = 0x93;
    assert_int_equal(sl_fwd_parse_ping(bad, 8, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid ping message"));
}

/* User authentication on the server side. The second vector was computed independently with
 * Python: hashlib.sha512(bytes(range(0xa0, 0xb0)) + b"bob" + "pä55w0rd".encode()).hexdigest() */
static void test_verify_password(void **state)
{
    (void)state;
    uint8_t nonce[16], out[512], salt2[16];
    nonce16(nonce);
    for (int k = 0; k < 16; k++)
        salt2[k] = (uint8_t)(0xa0 + k);
    char hex[129];
    assert_int_equal(sl_fwd_password_digest(salt2, 16, "bob", 3,
                                            "p\xc3\xa4"
                                            "55w0rd",
                                            9, hex),
                     0);
    assert_string_equal(hex, "5aaf0ff17b17efb4c96f0449fcf19845e7a0e2d9786b2bf486b601994ff44e94"
                             "f24a5c7958053afad0bf81423e8c85f92ab78d7db08541f501c1f3e5d7f3ef0a");

    struct sl_fwd_helo h = {nonce, 16, auth_salt, 16, 1};
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    assert_int_equal(
        sl_fwd_make_ping(&h, "c", 1, client_salt, 32, "k", 1, "alice", 5, "s3cret", 6, &w), 0);
    struct sl_fwd_ping p;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(sl_fwd_parse_ping(out, w.len, &p, err, sizeof(err)), 0);
    assert_int_equal(sl_fwd_verify_password(&p, auth_salt, 16, "alice", 5, "s3cret", 6), 0);
    assert_int_equal(sl_fwd_verify_password(&p, auth_salt, 16, "alice", 5, "s3creT", 6), -1);
    assert_int_equal(sl_fwd_verify_password(&p, auth_salt, 16, "alic", 4, "s3cret", 6), -1);
    assert_int_equal(sl_fwd_verify_password(&p, salt2, 16, "alice", 5, "s3cret", 6), -1);
    /* a PING without user auth ("" / "") matches no user */
    h.auth_len = 0;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    assert_int_equal(
        sl_fwd_make_ping(&h, "c", 1, client_salt, 32, "k", 1, "alice", 5, "s3cret", 6, &w), 0);
    assert_int_equal(sl_fwd_parse_ping(out, w.len, &p, err, sizeof(err)), 0);
    assert_int_equal(sl_fwd_verify_password(&p, auth_salt, 16, "alice", 5, "s3cret", 6), -1);
}

static void test_pong(void **state)
{
    (void)state;
    uint8_t nonce[16], out[256], exp[256];
    nonce16(nonce);
    struct sl_mp_wbuf w;
    sl_mp_wbuf_init(&w, out, sizeof(out));
    sl_fwd_pong(1, "", 0, "server.example.com", 18, pong_digest, &w);
    assert_int_equal(w.len, 157);
    size_t n = unhex("95 a4 50 4f 4e 47 c3 a0 b2", exp);
    memcpy(exp + n, "server.example.com", 18);
    n += 18;
    exp[n++] = 0xd9;
    exp[n++] = 0x80;
    memcpy(exp + n, pong_digest, 128);
    n += 128;
    assert_int_equal(n, 157);
    assert_memory_equal(out, exp, 157);

    struct sl_fwd_pong p;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(sl_fwd_parse_pong(out, w.len, &p, err, sizeof(err)), 0);
    assert_int_equal(p.ok, 1);
    assert_int_equal(
        sl_fwd_verify_pong(&p, client_salt, 32, nonce, 16, "secret", 6, err, sizeof(err)), 0);
    assert_int_equal(
        sl_fwd_verify_pong(&p, client_salt, 32, nonce, 16, "other", 5, err, sizeof(err)), -1);
    assert_string_equal(err, "shared key mismatch in PONG");

    sl_mp_wbuf_init(&w, out, sizeof(out));
    sl_fwd_pong(0, "shared_key mismatch", 19, NULL, 0, NULL, &w);
    n = unhex("95 a4 50 4f 4e 47 c2 b3", exp);
    memcpy(exp + n, "shared_key mismatch", 19);
    n += 19;
    exp[n++] = 0xa0;
    exp[n++] = 0xa0;
    assert_int_equal(w.len, n);
    assert_memory_equal(out, exp, n);
    assert_int_equal(sl_fwd_parse_pong(out, w.len, &p, err, sizeof(err)), 0);
    assert_int_equal(p.ok, 0);
    assert_int_equal(
        sl_fwd_verify_pong(&p, client_salt, 32, nonce, 16, "secret", 6, err, sizeof(err)), -1);
    assert_string_equal(err, "authentication failed: shared_key mismatch");
}

/* ---- errors ---- */

struct err_case {
    const char *hex;
    const char *msg;
};

static const struct err_case frame_errors[] = {
    {"a3 61 62 63", "frame is a str, not an array"},
    {"91 a1 74", "frame has 1 elements, expected 2 to 4"},
    {"95 a1 74 90 80 80 80", "frame has 5 elements, expected 2 to 4"},
    {"92 01 90", "element 0 (tag) is a int, not a str"},
    {"92 a1 74 80", "element 1 is a map, expected a time, an entries array or packed entries"},
    {"92 a1 74 c0", "element 1 is a nil, expected a time, an entries array or packed entries"},
    {"92 a1 74 01", "Message mode frame has 2 elements, expected 3 or 4"},
    {"94 a1 74 90 80 80", "frame has 4 elements, expected 2 or 3 for entries"},
    {"93 a1 74 90 a1 78", "option is a str, not a map"},
    {"93 a1 74 c4 01 c1 80", "entries: invalid byte 0xc1 at byte 0 of 1"},
    {"93 a1 74 c4 02 92 01 80",
     "entries: container declares more elements than bytes present at byte 0 of 2"},
    {"93 a1 74 c4 03 92 01 a2 80", "entries: truncated value at byte 0 of 3"},
    {"93 a1 74 c4 00 81 aa 63 6f 6d 70 72 65 73 73 65 64 a4 7a 73 74 64",
     "compressed \"zstd\" is not supported"},
    {"90 c0", "1 trailing bytes after the frame"},
    {"92 a1 74", "frame is not one msgpack value: container declares more elements than bytes "
                 "present"},
    {"", "frame is not one msgpack value: truncated value"},
};

static void test_frame_errors(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(frame_errors) / sizeof(frame_errors[0]); k++) {
        uint8_t buf[64];
        size_t n = unhex(frame_errors[k].hex, buf);
        uint8_t *b = dup_exact(buf, n);
        struct sl_fwd_request req;
        struct got g;
        char err[SL_FWD_ERRLEN];
        int rc = decode(b, n, &req, &g, err);
        if (rc != SL_FWD_ERROR || strcmp(err, frame_errors[k].msg) != 0)
            print_error("case %zu: rc %d err '%s'\n", k, rc, err);
        assert_int_equal(rc, SL_FWD_ERROR);
        assert_string_equal(err, frame_errors[k].msg);
        assert_int_equal(g.n, 0); /* a rejected frame yields nothing */
        free(b);
    }
}

static void test_entry_errors_skip_only_that_entry(void **state)
{
    (void)state;
    uint8_t f[128];
    /* entries: ok, record str, time map, not an array, 3 elements, ext type 1, bad nsec, ok */
    size_t n = unhex("92 a1 74 98"
                     " 92 01 81 a1 61 01"
                     " 92 01 a1 78"
                     " 92 80 80"
                     " 01"
                     " 93 01 80 80"
                     " 92 d7 01 00 00 00 00 00 00 00 00 80"
                     " 92 d7 00 00 00 00 01 3b 9a ca 00 80"
                     " 92 92 02 80 81 a1 62 02",
                     f);
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(g.n, 8);
    assert_int_equal(req.n_entries, 8);
    assert_int_equal(req.n_bad, 6);
    assert_false(g.bad[0]);
    expect_rec(&g, 0, "81 a1 61 01");
    assert_string_equal(g.err[1], "entry 1: record is a str, not a map");
    assert_string_equal(g.err[2], "entry 2: time is a map");
    assert_string_equal(g.err[3], "entry 3: is a int, not [time, record]");
    assert_string_equal(g.err[4], "entry 4: has 3 elements, not [time, record]");
    assert_string_equal(g.err[5], "entry 5: time is an ext that is not EventTime");
    assert_string_equal(g.err[6], "entry 6: EventTime nanoseconds out of range");
    assert_false(g.bad[7]);
    assert_true(g.t[7] == 2000000000LL);
    expect_rec(&g, 7, "81 a1 62 02");

    /* Message mode with a non-map record: one bad entry, the frame is still fine (acked) */
    n = unhex("94 a1 74 01 a1 78 81 a5 63 68 75 6e 6b a1 63", f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.err[0], "entry 0: record is a str, not a map");
    assert_int_equal(req.opt.chunk_len, 2);

    /* unknown option keys, non-string keys and odd value types are ignored */
    n = unhex("93 a1 74 90 84 a3 66 6f 6f 01 01 02 a4 73 69 7a 65 a1 78 ad 66 6c 75 65 6e 74 5f 73 "
              "69 67 6e 61 6c 01",
              f);
    assert_int_equal(decode(f, n, &req, &g, err), SL_FWD_OK);
    assert_false(req.opt.has_size);
    assert_true(req.opt.has_signal);
    assert_int_equal(req.opt.fluent_signal, 1);
}

static void test_callback_stops(void **state)
{
    (void)state;
    uint8_t f[128];
    size_t n = unhex(forward_hex, f);
    struct sl_fwd_decode_opts o = {zbuf, sizeof(zbuf), &zarena};
    struct sl_fwd_request req;
    struct got g;
    char err[SL_FWD_ERRLEN];
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    assert_int_equal(sl_fwd_decode(f, n, &o, &req, collect, &g, err, sizeof(err)), SL_FWD_STOPPED);
    assert_int_equal(g.n, 1);
}

/* Every proper prefix of every vector: the framer says "more" with a bound beyond the prefix (and
 * within the whole), and decode rejects it. Exact-size heap copies let ASan catch overreads. */
static void test_truncation_everywhere(void **state)
{
    (void)state;
    const char *vectors[] = {message_hex, forward_hex,    packed_hex,
                             fluentd_hex, compressed_hex, ack_hex};
    for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
        uint8_t full[256];
        size_t n = unhex(vectors[v], full);
        size_t fl = 0;
        assert_int_equal(sl_mp_frame_len(full, n, n, &fl, NULL), SL_MP_FRAME_DONE);
        assert_int_equal(fl, n);
        for (size_t cut = 0; cut < n; cut++) {
            uint8_t *b = dup_exact(full, cut);
            const char *e = NULL;
            assert_int_equal(sl_mp_frame_len(b, cut, 1 << 20, &fl, &e), SL_MP_FRAME_MORE);
            assert_true(fl > cut && fl <= n);
            struct sl_fwd_request req;
            struct got g;
            char err[SL_FWD_ERRLEN];
            assert_int_equal(decode(b, cut, &req, &g, err), SL_FWD_ERROR);
            assert_int_equal(g.n, 0);
            free(b);
        }
    }
    /* the compressed payload cut inside the bin (the frame stays well-formed): gzip errors */
    uint8_t entries[64], gzb[128], f[256];
    size_t en = unhex(ENTRIES_HEX, entries);
    size_t gl = gz(entries, en, gzb, sizeof(gzb));
    for (size_t cut = 0; cut < gl; cut++) {
        size_t n = compressed_frame(gzb, cut, f);
        uint8_t *b = dup_exact(f, n);
        struct sl_fwd_request req;
        struct got g;
        char err[SL_FWD_ERRLEN];
        int rc = decode(b, n, &req, &g, err);
        /* an empty payload is zero entries; anything else cut short is an error */
        if (cut == 0)
            assert_int_equal(rc, SL_FWD_OK);
        else
            assert_int_equal(rc, SL_FWD_ERROR);
        free(b);
    }
}

/* ---- encoder round trip ---- */

static int grow_heap(struct sl_mp_wbuf *w, size_t need)
{
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *d = realloc(w->data, cap);
    if (!d) return -1;
    w->data = d;
    w->cap = cap;
    return 0;
}

static void test_encoder_round_trip(void **state)
{
    (void)state;
    enum { N = 1000 };
    static uint8_t recs[N][64];
    static size_t rlens[N];
    static int64_t times[N];
    for (int gzl = 0; gzl <= 6; gzl += 6) {
        struct sl_mp_wbuf w;
        sl_mp_wbuf_init(&w, NULL, 0);
        w.grow = grow_heap;
        struct sl_fwd_packer p;
        sl_fwd_packed_begin(&p, &w, "fwd.round", 9);
        for (int k = 0; k < N; k++) {
            struct sl_mp_wbuf r;
            sl_mp_wbuf_init(&r, recs[k], sizeof(recs[k]));
            sl_mp_w_map(&r, 2);
            sl_mp_w_str(&r, "seq", 3);
            sl_mp_w_int(&r, k * 7919 - 1000000);
            sl_mp_w_str(&r, "msg", 3);
            char m[32];
            int ml = snprintf(m, sizeof(m), "event number %d", k);
            sl_mp_w_str(&r, m, (size_t)ml);
            assert_false(r.overflow);
            rlens[k] = r.len;
            times[k] = (int64_t)(1700000000 + k) * 1000000000 + k * 1001;
            sl_fwd_packed_add(&p, times[k], recs[k], rlens[k]);
        }
        char cid[25];
        uint8_t id[16] = {9, 8, 7};
        sl_fwd_chunk_id(id, cid);
        assert_int_equal(sl_fwd_packed_end(&p, cid, 24, gzl), 0);

        static uint8_t big[1 << 17];
        struct sl_fwd_decode_opts o = {big, sizeof(big), &zarena};
        struct sl_fwd_request req;
        static struct got g;
        char err[SL_FWD_ERRLEN];
        memset(&g, 0, sizeof(g));
        size_t fl = 0;
        assert_int_equal(sl_mp_frame_len(w.data, w.len, w.len, &fl, NULL), SL_MP_FRAME_DONE);
        assert_int_equal(fl, w.len);
        int rc = sl_fwd_decode(w.data, w.len, &o, &req, collect, &g, err, sizeof(err));
        if (rc) print_error("%s\n", err);
        assert_int_equal(rc, SL_FWD_OK);
        assert_int_equal(req.mode, gzl ? SL_FWD_COMPRESSED : SL_FWD_PACKED);
        assert_int_equal(req.opt.size, N);
        assert_memory_equal(req.opt.chunk_str, cid, 24);
        assert_int_equal(g.n, N);
        for (int k = 0; k < N; k++) {
            assert_true(g.t[k] == times[k]);
            assert_int_equal(g.rlen[k], rlens[k]);
            assert_memory_equal(g.rec[k], recs[k], rlens[k]);
        }
        free(w.data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_time_and_chunk_id),
        cmocka_unit_test(test_message_vector),
        cmocka_unit_test(test_forward_vector),
        cmocka_unit_test(test_packed_vectors),
        cmocka_unit_test(test_packed_encoder_matches_vectors),
        cmocka_unit_test(test_compressed_vector),
        cmocka_unit_test(test_v15_meta_and_integer_time),
        cmocka_unit_test(test_ack_bytes),
        cmocka_unit_test(test_nil_keepalive),
        cmocka_unit_test(test_helo),
        cmocka_unit_test(test_digests),
        cmocka_unit_test(test_ping_round_trip),
        cmocka_unit_test(test_pong),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_entry_errors_skip_only_that_entry),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_encoder_round_trip),
        cmocka_unit_test(test_verify_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
