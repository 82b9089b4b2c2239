/* Standalone test and benchmark for the float32 codecs (no Lua, no RocksDB).
 *
 *   gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Icsrc spec/c/test_compress.c \
 *       csrc/codec/sn_compress.c csrc/base/sn_err.c -lz -lzstd -lm -o /tmp/test_compress
 *   /tmp/test_compress          tests, then the throughput table
 *   /tmp/test_compress test     the tests only
 *   /tmp/test_compress bench    the table only
 *
 * Exits non-zero on any failure; the throughput table is informational. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define ZLIB_CONST
#include <zlib.h>
#include <zstd.h>

#include "codec/sn_compress.h"

#define MIB (1u << 20)
#define CANARY 64 /* bytes after every decode buffer that must stay untouched */
#define RUNS 11

static int failures;
/* Every other decode and compress goes through one long-lived context, so
 * the reused state meets every size, codec and damaged stream in turn and
 * must come out of each failure as good as new (the canaries watch it). */
static sn_codec_ctx *shared_ctx;
static unsigned ctx_turn;
#define TURN_CTX() (ctx_turn++ % 2 ? shared_ctx : NULL)

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            failures++;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                           \
            fputc('\n', stderr);                                    \
        }                                                           \
    } while (0)

#include "codec_data.h"

/* ---- decode helpers ---------------------------------------------------- */

/* Decodes into a buffer of exactly raw_len bytes followed by a canary, so
 * any write past dst shows up even without a sanitizer. */
static int decode_guarded(sn_codec c, const unsigned char *src, size_t len, size_t raw_len,
                          unsigned char **out, sn_err *e)
{
    unsigned char *dst = malloc(raw_len + CANARY);
    if (!dst) abort();
    memset(dst + raw_len, 0xA5, CANARY);
    int rc = sn_decompress_ctx(TURN_CTX(), c, src, len, dst, raw_len, e);
    for (size_t i = 0; i < CANARY; i++)
        CHECK(dst[raw_len + i] == 0xA5, "%s wrote past dst (raw_len %zu)", sn_codec_name(c), raw_len);
    if (out)
        *out = dst;
    else
        free(dst);
    return rc;
}

static void expect_corrupt(sn_codec c, const unsigned char *src, size_t len, size_t raw_len,
                           const char *what)
{
    sn_err e = {0};
    int rc = decode_guarded(c, src, len, raw_len, NULL, &e);
    CHECK(rc == SN_ECORRUPT, "%s, %s (len %zu, raw_len %zu): rc %d, want SN_ECORRUPT", sn_codec_name(c),
          what, len, raw_len, rc);
    CHECK(rc == SN_OK || e.code == rc, "%s, %s: e.code %d != rc %d", sn_codec_name(c), what, e.code, rc);
    CHECK(rc == SN_OK || e.msg[0] != '\0', "%s, %s: no error message", sn_codec_name(c), what);
}

/* ---- correctness ------------------------------------------------------- */

static void check_bf16(const unsigned char *orig, const unsigned char *dec, size_t len)
{
    unsigned char *q = malloc(len ? len : 1);
    if (!q) abort();
    memcpy(q, orig, len);
    sn_codec_quantize(SN_CODEC_BF16, q, len);
    CHECK(memcmp(q, dec, len) == 0, "bf16 decode differs from sn_codec_quantize (len %zu)", len);
    for (size_t i = 0; i + 4 <= len; i += 4) {
        float a = float_of(bits_of(orig + i)), b = float_of(bits_of(dec + i));
        if (fpclassify(a) != FP_NORMAL || fabsf(a) > 3.38e38f) continue; /* may round to Inf */
        double rel = fabs(((double)b - a) / a);
        if (!(rel < 1.0 / 256)) {
            CHECK(0, "bf16 relative error %g at %zu (%a -> %a)", rel, i / 4, a, b);
            break;
        }
    }
    free(q);
}

static void corrupt_variants(sn_codec c, const unsigned char *orig, const unsigned char *packed,
                             size_t plen, size_t len)
{
    unsigned char *buf = malloc(plen + 1024);
    if (!buf) abort();
    if (plen > 0) {
        expect_corrupt(c, packed, plen - 1, len, "truncated by 1 byte");
        expect_corrupt(c, packed, plen / 2, len, "truncated to half");
    }
    if (plen > 0 || len > 0) expect_corrupt(c, packed, 0, len, "empty input");
    memcpy(buf, packed, plen);
    buf[plen] = 0;
    expect_corrupt(c, buf, plen + 1, len, "one trailing byte");
    expect_corrupt(c, packed, plen, len + 1, "raw_len one too big");
    if (len > 0) expect_corrupt(c, packed, plen, len - 1, "raw_len one too small");
    for (size_t g = 1; g <= 1000; g = g * 7 + 3) {
        for (size_t i = 0; i < g; i++) buf[i] = (unsigned char)rng();
        if (c != SN_CODEC_NONE || g != len) expect_corrupt(c, buf, g, len, "random garbage");
    }
    if (c == SN_CODEC_GZIP && plen > 40) {
        /* gzip alone carries a CRC, so a flipped bit must never decode to
         * other bytes (it may hit a bit the decoder ignores) */
        unsigned char *dec = NULL;
        sn_err e = {0};
        memcpy(buf, packed, plen);
        buf[plen / 2] ^= 0x10;
        int rc = decode_guarded(c, buf, plen, len, &dec, &e);
        CHECK(rc == SN_ECORRUPT || (rc == SN_OK && memcmp(dec, orig, len) == 0),
              "gzip, flipped bit (len %zu, raw_len %zu): rc %d and other bytes", plen, len, rc);
        free(dec);
    }
    free(buf);
}

static void roundtrip(sn_codec c, int kind, size_t len)
{
    unsigned char *src = make_data(kind, len), *packed = NULL, *dec = NULL;
    size_t plen = 0;
    sn_err e = {0};
    int rc = sn_compress_ctx(TURN_CTX(), c, src, len, &packed, &plen, &e);
    if (c == SN_CODEC_BF16 && len % 4) {
        CHECK(rc == SN_EARG && packed == NULL, "bf16 compress of %zu bytes: rc %d, want SN_EARG", len, rc);
        unsigned char dummy[8] = {0};
        expect_corrupt(c, dummy, sizeof dummy, len, "bf16 ragged raw_len");
        free(src);
        return;
    }
    CHECK(rc == SN_OK, "%s compress %zu bytes of %s: %s", sn_codec_name(c), len, data_names[kind], e.msg);
    if (rc != SN_OK) {
        free(src);
        return;
    }
    rc = decode_guarded(c, packed, plen, len, &dec, &e);
    CHECK(rc == SN_OK, "%s decompress %zu bytes of %s: %s", sn_codec_name(c), len, data_names[kind], e.msg);
    if (rc == SN_OK && sn_codec_is_lossy(c))
        check_bf16(src, dec, len);
    else if (rc == SN_OK)
        CHECK(memcmp(src, dec, len) == 0, "%s round trip of %zu bytes of %s differs", sn_codec_name(c), len,
              data_names[kind]);
    if (len <= MIB) corrupt_variants(c, src, packed, plen, len);
    free(dec);
    free(packed);
    free(src);
}

/* Round-to-nearest-even and the special values, bit for bit. */
static void check_bf16_rounding(void)
{
    static const uint32_t cases[][2] = {
        {0x3f800000u, 0x3f800000u}, /* 1.0 exact */
        {0x3f807fffu, 0x3f800000u}, /* below half: down */
        {0x3f808000u, 0x3f800000u}, /* tie, even below: down */
        {0x3f818000u, 0x3f820000u}, /* tie, odd below: up */
        {0x3f808001u, 0x3f810000u}, /* above half: up */
        {0xbf808001u, 0xbf810000u}, /* sign is kept */
        {0x7f7fffffu, 0x7f800000u}, /* FLT_MAX rounds to Inf, as RNE should */
        {0x7f800000u, 0x7f800000u}, /* +Inf */
        {0xff800000u, 0xff800000u}, /* -Inf */
        {0x7fc00000u, 0x7fc00000u}, /* quiet NaN */
        {0x7f800001u, 0x7fc00000u}, /* NaN with a low-half payload stays NaN */
        {0x7fa12345u, 0x7fa10000u}, /* NaN keeps its top payload */
        {0x00000001u, 0x00000000u}, /* smallest subnormal */
        {0x80000000u, 0x80000000u}, /* -0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char b[4], *packed = NULL, *dec = NULL;
        size_t plen = 0;
        sn_err e = {0};
        memcpy(b, &cases[i][0], 4);
        int rc = sn_compress(SN_CODEC_BF16, b, 4, &packed, &plen, &e);
        if (rc == SN_OK) rc = decode_guarded(SN_CODEC_BF16, packed, plen, 4, &dec, &e);
        sn_codec_quantize(SN_CODEC_BF16, b, 4);
        CHECK(bits_of(b) == cases[i][1], "quantize %08x -> %08x, want %08x", cases[i][0], bits_of(b),
              cases[i][1]);
        CHECK(rc == SN_OK && bits_of(dec) == cases[i][1], "bf16 codec %08x -> %08x, want %08x",
              cases[i][0], rc == SN_OK ? bits_of(dec) : 0u, cases[i][1]);
        free(packed);
        free(dec);
    }
}

static void check_names_and_args(void)
{
    for (int c = 0; c < SN_CODEC_COUNT; c++) {
        sn_codec back;
        CHECK(sn_codec_from_name(sn_codec_name((sn_codec)c), &back) == 0 && back == (sn_codec)c,
              "codec name round trip %d", c);
        CHECK(sn_codec_is_lossy((sn_codec)c) == (c == SN_CODEC_BF16), "lossy flag %d", c);
    }
    sn_codec dummy;
    CHECK(sn_codec_from_name("zstd", &dummy) == -1, "unknown codec name accepted");
    CHECK(sn_codec_from_name(NULL, &dummy) == -1, "NULL codec name accepted");

    unsigned char *packed = NULL, buf[4] = {0};
    size_t plen = 0;
    sn_err e = {0};
    CHECK(sn_compress((sn_codec)7, buf, 4, &packed, &plen, &e) == SN_EARG, "compress unknown codec");
    expect_corrupt((sn_codec)7, buf, 4, 4, "unknown codec");
    CHECK(sn_decompress(SN_CODEC_NONE, NULL, 0, NULL, 0, &e) == SN_OK, "none, 0 bytes, NULL buffers");
    CHECK(sn_decompress(SN_CODEC_GZIP, buf, 4, buf, (size_t)SN_MAX_RECORD + 1, &e) == SN_ECORRUPT,
          "raw_len over the cap");
    CHECK(sn_fail(NULL, SN_EIO, "no sink %d", 1) == SN_EIO, "sn_fail with NULL e");
}

/* ---- shuffle stream format -------------------------------------------- */

/* Format 3, as documented in sn_compress.c: header byte (tag 0x7 in bits
 * 0-3, bit 4 + k when lane k is coded), lanes 0..3 (coded: u32 LE length +
 * one zstd frame declaring n bytes; raw: n bytes), then the raw_len % 4
 * tail. */
#define SHUF_TAG 0x07u
#define OLD_SHUF_TAG 0x06u /* format 2 (raw deflate lanes), now refused */

static unsigned char *pack(sn_codec c, const unsigned char *src, size_t len, size_t *plen)
{
    unsigned char *packed = NULL;
    sn_err e = {0};
    if (sn_compress(c, src, len, &packed, plen, &e) != SN_OK) {
        fprintf(stderr, "compress: %s\n", e.msg);
        abort();
    }
    return packed;
}

static void expect_decodes(const unsigned char *src, size_t len, const unsigned char *want,
                           size_t raw_len, const char *what)
{
    unsigned char *dec = NULL;
    sn_err e = {0};
    int rc = decode_guarded(SN_CODEC_SHUFFLE, src, len, raw_len, &dec, &e);
    CHECK(rc == SN_OK, "shuffle, %s: %s", what, e.msg);
    CHECK(rc != SN_OK || memcmp(dec, want, raw_len) == 0, "shuffle, %s: decodes to other bytes", what);
    free(dec);
}

/* Decoding must end in SN_OK or SN_ECORRUPT, never past dst. */
static void expect_survives(const unsigned char *src, size_t len, size_t raw_len, const char *what)
{
    sn_err e = {0};
    int rc = decode_guarded(SN_CODEC_SHUFFLE, src, len, raw_len, NULL, &e);
    CHECK(rc == SN_OK || (rc == SN_ECORRUPT && e.code == rc && e.msg[0]), "shuffle, %s: rc %d", what, rc);
}

/* One zstd frame of the m bytes at src. size_flag 0 leaves the content
 * size out of the frame header (zstd then writes none). */
static size_t zframe(const unsigned char *src, size_t m, int level, int checksum, int size_flag,
                     unsigned char *out, size_t cap)
{
    static const unsigned char none[1];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c) abort();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, size_flag);
    size_t r;
    if (size_flag) {
        r = ZSTD_compress2(c, out, cap, m ? src : none, m);
    } else {
        /* streaming with no pledged size: the header carries no size */
        ZSTD_inBuffer in = {m ? src : none, m, 0};
        ZSTD_outBuffer o = {out, cap, 0};
        r = ZSTD_compressStream2(c, &o, &in, ZSTD_e_end);
        if (r != 0) abort();
        r = o.pos;
    }
    if (ZSTD_isError(r)) abort();
    ZSTD_freeCCtx(c);
    return r;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void lane_of(unsigned char *dst, const unsigned char *src, size_t n, unsigned k)
{
    for (size_t i = 0; i < n; i++) dst[i] = src[4 * i + k];
}

/* Walks a stream by the documented format, independently of the decoder:
 * raw lanes must be the lanes verbatim, coded ones must decode to them. */
static void check_layout(const unsigned char *src, size_t len, const unsigned char *p, size_t plen,
                         const char *what)
{
    size_t n = len / 4, pos = 1;
    unsigned char *want = malloc(n + 1), *got = malloc(n + 1);
    if (!want || !got) abort();
    CHECK(plen >= 1 && (p[0] & 0x0f) == SHUF_TAG, "%s: header 0x%02x", what, plen ? p[0] : 0);
    for (unsigned k = 0; k < 4 && plen >= 1; k++) {
        lane_of(want, src, n, k);
        if (p[0] >> (4 + k) & 1) {
            CHECK(plen - pos >= 4, "%s: lane %u length cut off", what, k);
            if (plen - pos < 4) break;
            size_t c = get_u32(p + pos);
            pos += 4;
            CHECK(c <= plen - pos && c + 4 < n, "%s: lane %u coded length %zu (n %zu)", what, k, c, n);
            if (c > plen - pos) break;
            CHECK(ZSTD_getFrameContentSize(p + pos, c) == n, "%s: lane %u frame does not declare %zu bytes",
                  what, k, n);
            CHECK(ZSTD_findFrameCompressedSize(p + pos, c) == c, "%s: lane %u is not exactly one frame", what, k);
            size_t r = ZSTD_decompress(got, n + 1, p + pos, c);
            CHECK(!ZSTD_isError(r) && r == n && memcmp(got, want, n) == 0,
                  "%s: coded lane %u does not decode to the lane", what, k);
            pos += c;
        } else {
            CHECK(plen - pos >= n && memcmp(p + pos, want, n) == 0, "%s: raw lane %u differs", what, k);
            if (plen - pos < n) break;
            pos += n;
        }
    }
    CHECK(plen - pos == len % 4 && memcmp(p + pos, src + 4 * n, len % 4) == 0, "%s: tail differs", what);
    free(want);
    free(got);
}

/* Which lanes get coded, the ratio that buys, determinism, the layout. */
static void check_lane_choices(void)
{
    static const struct {
        int kind;
        unsigned lanes; /* coded-lane bits, header bits 4-7 */
        double max_ratio;
    } want[] = {
        {DATA_RANDOM, 0x0, 1.0 + 1.0 / MIB}, {DATA_GAUSS, 0x8, 0.84},    {DATA_UNIFORM, 0x8, 0.84},
        {DATA_ZERO, 0xf, 0.005},             {DATA_HALF_ZERO, 0xf, 0.56}, {DATA_PRUNED, 0xf, 0.56},
    };
    static const size_t sizes[] = {1000, 1003, 64 * 1024 + 4, MIB, 4 * MIB + 3};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t len = sizes[s], plen, plen2;
            char what[96];
            snprintf(what, sizeof what, "shuffle %zu bytes of %s", len, data_names[want[w].kind]);
            unsigned char *src = make_data(want[w].kind, len);
            unsigned char *p = pack(SN_CODEC_SHUFFLE, src, len, &plen);
            unsigned char *p2 = pack(SN_CODEC_SHUFFLE, src, len, &plen2);
            unsigned lanes = p[0] >> 4;
            CHECK(plen == plen2 && memcmp(p, p2, plen) == 0, "%s: not deterministic", what);
            CHECK(plen <= len + 1, "%s: %zu bytes, longer than 1 + raw", what, plen);
            if (len >= MIB) {
                CHECK(lanes == want[w].lanes, "%s: coded lanes 0x%x, want 0x%x", what, lanes, want[w].lanes);
                CHECK((double)plen / (double)len <= want[w].max_ratio, "%s: ratio %.4f over %.4f", what,
                      (double)plen / (double)len, want[w].max_ratio);
            }
            check_layout(src, len, p, plen, what);
            free(p);
            free(p2);
            free(src);
        }
    }
    /* below LANE_MIN float32s nothing is coded: header, lanes, tail */
    for (size_t len = 0; len <= 300; len++) {
        size_t plen;
        unsigned char *src = make_data(len % 2 ? DATA_ZERO : DATA_GAUSS, len);
        unsigned char *p = pack(SN_CODEC_SHUFFLE, src, len, &plen);
        if (len < 256) CHECK(plen == len + 1 && p[0] == SHUF_TAG, "shuffle %zu bytes: %zu, 0x%02x", len, plen, p[0]);
        check_layout(src, len, p, plen, "small shuffle");
        expect_decodes(p, plen, src, len, "small");
        free(p);
        free(src);
    }
}

/* Streams built by hand: what the decoder must take and what it must refuse.
 * One fixture holds the data, its four byte lanes and a zstd frame of each
 * (made with settings other than the encoder's: a decoder must take any
 * valid frame, checksummed or not). */
enum { HB_N = 300, HB_TAIL = 2, HB_LEN = 4 * HB_N + HB_TAIL, HB_ZCAP = 2 * HB_N + 64 };

typedef struct hand_built {
    unsigned char *src, lane[4][HB_N + 2], z[4][HB_ZCAP], buf[8 * HB_LEN];
    size_t zl[4], len;
    unsigned char zshort[HB_ZCAP], zlong[HB_ZCAP], znosize[HB_ZCAP], alt[2 * HB_ZCAP];
    size_t zlen_short, zlen_long, zlen_nosize;
} hand_built;

static void hb_init(hand_built *h)
{
    static const int level[4] = {3, 19, -5, 1}, checksum[4] = {0, 1, 0, 1};
    h->src = make_data(DATA_GAUSS, HB_LEN);
    for (unsigned k = 0; k < 4; k++) {
        lane_of(h->lane[k], h->src, HB_N, k);
        h->zl[k] = zframe(h->lane[k], HB_N, level[k], checksum[k], 1, h->z[k], sizeof h->z[k]);
    }
    h->zlen_short = zframe(h->lane[3], HB_N - 1, 1, 0, 1, h->zshort, sizeof h->zshort);
    h->lane[3][HB_N] = h->lane[3][HB_N - 1];
    h->zlen_long = zframe(h->lane[3], HB_N + 1, 1, 0, 1, h->zlong, sizeof h->zlong);
    h->zlen_nosize = zframe(h->lane[3], HB_N, 1, 0, 0, h->znosize, sizeof h->znosize);
    CHECK(ZSTD_getFrameContentSize(h->znosize, h->zlen_nosize) == ZSTD_CONTENTSIZE_UNKNOWN,
          "test setup: frame without a content size has one");
}

/* header, lanes (coded per mask; lane 3 from l3/l3len when given, its
 * declared length off by clen_delta), tail */
static void hb_build(hand_built *h, unsigned head, unsigned mask, const unsigned char *l3, size_t l3len,
                     int clen_delta)
{
    size_t len = 0;
    h->buf[len++] = (unsigned char)head;
    for (unsigned k = 0; k < 4; k++) {
        if (!(mask >> k & 1)) {
            memcpy(h->buf + len, h->lane[k], HB_N);
            len += HB_N;
            continue;
        }
        const unsigned char *zz = k == 3 && l3 ? l3 : h->z[k];
        size_t zn = k == 3 && l3 ? l3len : h->zl[k];
        put_u32(h->buf + len, (uint32_t)(zn + (size_t)(k == 3 ? clen_delta : 0)));
        len += 4;
        memcpy(h->buf + len, zz, zn);
        len += zn;
    }
    memcpy(h->buf + len, h->src + 4 * HB_N, HB_TAIL);
    h->len = len + HB_TAIL;
}

/* build with lane 3 coded from l3 and expect a refusal */
static void hb_refused(hand_built *h, const unsigned char *l3, size_t l3len, int clen_delta, const char *what)
{
    hb_build(h, SHUF_TAG | 0x80, 0x8, l3, l3len, clen_delta);
    expect_corrupt(SN_CODEC_SHUFFLE, h->buf, h->len, HB_LEN, what);
}

static void check_hand_built_tags(hand_built *h)
{
    for (unsigned mask = 0; mask < 16; mask++) {
        hb_build(h, SHUF_TAG | mask << 4, mask, NULL, 0, 0);
        expect_decodes(h->buf, h->len, h->src, HB_LEN, "hand-built lanes");
        for (unsigned tag = 0; tag < 16; tag++)
            if (tag != SHUF_TAG) {
                h->buf[0] = (unsigned char)(tag | mask << 4);
                expect_corrupt(SN_CODEC_SHUFFLE, h->buf, h->len, HB_LEN, "other format tag");
            }
    }
    /* a format 2 stream (lane 3 as raw deflate) under either tag */
    z_stream d;
    memset(&d, 0, sizeof d);
    if (deflateInit2(&d, 1, Z_DEFLATED, -15, 9, Z_HUFFMAN_ONLY) != Z_OK) abort();
    d.next_in = h->lane[3];
    d.avail_in = HB_N;
    d.next_out = h->alt;
    d.avail_out = sizeof h->alt;
    if (deflate(&d, Z_FINISH) != Z_STREAM_END) abort();
    size_t dl = d.total_out;
    deflateEnd(&d);
    hb_build(h, OLD_SHUF_TAG | 0x80, 0x8, h->alt, dl, 0);
    expect_corrupt(SN_CODEC_SHUFFLE, h->buf, h->len, HB_LEN, "format 2 stream");
    h->buf[0] = SHUF_TAG | 0x80;
    expect_corrupt(SN_CODEC_SHUFFLE, h->buf, h->len, HB_LEN, "raw deflate lane under the format 3 tag");
}

static void check_hand_built_frames(hand_built *h)
{
    unsigned char *alt = h->alt;
    hb_refused(h, h->zshort, h->zlen_short, 0, "coded lane one byte short");
    hb_refused(h, h->zlong, h->zlen_long, 0, "coded lane one byte long");
    hb_refused(h, h->znosize, h->zlen_nosize, 0, "frame without a content size");
    /* the N - 1 byte frame with its header patched to declare N: the size
     * check passes, the frame must still not decode. Layout for a
     * single-segment frame of 256..65791 bytes: magic, descriptor, then the
     * size - 256 as u16. */
    memcpy(alt, h->zshort, h->zlen_short);
    CHECK(alt[4] == 0x60, "test setup: frame descriptor 0x%02x, want 0x60", alt[4]);
    alt[5] = (unsigned char)((HB_N - 256) & 0xff);
    alt[6] = (unsigned char)((HB_N - 256) >> 8);
    CHECK(ZSTD_getFrameContentSize(alt, h->zlen_short) == HB_N, "test setup: patched size");
    hb_refused(h, alt, h->zlen_short, 0, "frame declares more than it holds");
    memcpy(alt, h->zlong, h->zlen_long);
    alt[5] = (unsigned char)((HB_N - 256) & 0xff);
    alt[6] = (unsigned char)((HB_N - 256) >> 8);
    hb_refused(h, alt, h->zlen_long, 0, "frame holds more than it declares");
    /* a second frame after the lane's: empty, then skippable */
    size_t l = h->zl[3];
    memcpy(alt, h->z[3], l);
    l += zframe(NULL, 0, 1, 0, 1, alt + l, sizeof h->alt - l);
    hb_refused(h, alt, l, 0, "empty frame after the lane's");
    static const unsigned char skippable[12] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4};
    memcpy(alt + h->zl[3], skippable, sizeof skippable);
    hb_refused(h, alt, h->zl[3] + sizeof skippable, 0, "skippable frame after the lane's");
    hb_refused(h, skippable, sizeof skippable, 0, "skippable frame as the lane");
    memcpy(alt, skippable, sizeof skippable);
    memcpy(alt + sizeof skippable, h->z[3], h->zl[3]);
    hb_refused(h, alt, sizeof skippable + h->zl[3], 0, "skippable frame before the lane's");
    /* a byte after the zstd frame, inside the lane's length */
    memcpy(alt, h->z[3], h->zl[3]);
    alt[h->zl[3]] = 0;
    hb_refused(h, alt, h->zl[3] + 1, 0, "trailing byte inside a coded lane");
}

static void check_hand_built_lengths(hand_built *h)
{
    hb_refused(h, NULL, 0, 1, "coded length past the stream");
    hb_refused(h, NULL, 0, -1, "coded length one short");
    hb_build(h, SHUF_TAG | 0x80, 0x8, NULL, 0, 0);
    put_u32(h->buf + 1 + 3 * HB_N, 0xffffffffu);
    expect_corrupt(SN_CODEC_SHUFFLE, h->buf, h->len, HB_LEN, "coded length 2^32-1");
    put_u32(h->buf + 1 + 3 * HB_N, 0);
    expect_corrupt(SN_CODEC_SHUFFLE, h->buf, h->len, HB_LEN, "coded length 0");
    /* coded lanes need n > 0 */
    for (size_t raw = 0; raw < 4; raw++) {
        unsigned char tiny[64] = {SHUF_TAG | 0x10};
        size_t tl = 1 + 4 + zframe(NULL, 0, 1, 0, 1, tiny + 5, sizeof tiny - 5);
        put_u32(tiny + 1, (uint32_t)(tl - 5));
        memcpy(tiny + tl, h->src, raw);
        expect_corrupt(SN_CODEC_SHUFFLE, tiny, tl + raw, raw, "coded lane of an empty lane");
    }
}

/* every truncation, every header byte, every single flipped bit */
static void check_hand_built_damage(hand_built *h)
{
    hb_build(h, SHUF_TAG | 0xf0, 0xf, NULL, 0, 0);
    unsigned char *buf = h->buf;
    for (size_t cut = 0; cut < h->len; cut++) expect_corrupt(SN_CODEC_SHUFFLE, buf, cut, HB_LEN, "every truncation");
    for (unsigned v = 0; v < 256; v++) {
        unsigned char save = buf[0];
        buf[0] = (unsigned char)v;
        if (v != save) expect_survives(buf, h->len, HB_LEN, "every header byte");
        buf[0] = save;
    }
    for (size_t i = 1; i < h->len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[i] ^= (unsigned char)(1u << bit);
            expect_survives(buf, h->len, HB_LEN, "one flipped bit");
            buf[i] ^= (unsigned char)(1u << bit);
        }
    }
    expect_decodes(buf, h->len, h->src, HB_LEN, "after the flips");
}

static void check_hand_built(void)
{
    hand_built *h = calloc(1, sizeof *h);
    if (!h) abort();
    hb_init(h);
    check_hand_built_tags(h);
    check_hand_built_frames(h);
    check_hand_built_lengths(h);
    check_hand_built_damage(h);
    free(h->src);
    free(h);
}

/* The sample promises a coded lane that then does not fit: the lane must
 * fall back to raw and the stream stay at most 1 + raw_len. The sampled
 * blocks (every 16th of 1024 float32s at this size) are zero, the rest
 * random. */
static void check_fallback(void)
{
    size_t len = 4 * MIB, plen;
    unsigned char *src = make_data(DATA_RANDOM, len);
    for (size_t b = 0; b < len / 4096; b += 16) memset(src + b * 4096, 0, 4096);
    unsigned char *p = pack(SN_CODEC_SHUFFLE, src, len, &plen);
    CHECK(plen <= len + 1, "fallback: %zu bytes for %zu", plen, len);
    check_layout(src, len, p, plen, "fallback");
    expect_decodes(p, plen, src, len, "fallback");
    free(p);
    free(src);
}

/* ---- benchmark --------------------------------------------------------- */

static double clock_of(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof *v, cmp_double);
    return v[RUNS / 2];
}

/* MB/s from the median CPU time (process clock), the wall time beside it */
static void bench_one(sn_codec c, int kind, const unsigned char *src, size_t len)
{
    double tc[RUNS], td[RUNS], wc[RUNS], wd[RUNS];
    size_t plen = 0;
    unsigned char *dst = malloc(len);
    if (!dst) abort();
    for (int r = 0; r < RUNS; r++) {
        unsigned char *packed = NULL;
        sn_err e = {0};
        double c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_of(CLOCK_MONOTONIC);
        int rc = sn_compress(c, src, len, &packed, &plen, &e);
        tc[r] = clock_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
        wc[r] = clock_of(CLOCK_MONOTONIC) - w0;
        c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
        w0 = clock_of(CLOCK_MONOTONIC);
        if (rc == SN_OK) rc = sn_decompress(c, packed, plen, dst, len, &e);
        td[r] = clock_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
        wd[r] = clock_of(CLOCK_MONOTONIC) - w0;
        CHECK(rc == SN_OK, "bench %s: %s", sn_codec_name(c), e.msg);
        CHECK(rc != SN_OK || memcmp(dst, src, len) == 0 || sn_codec_is_lossy(c), "bench %s: round trip",
              sn_codec_name(c));
        free(packed);
    }
    printf("%-16s %-8s %8.4f %10.1f %10.1f %10.1f %10.1f\n", data_names[kind], sn_codec_name(c),
           (double)plen / (double)len, (double)len / median(tc) / 1e6, (double)len / median(td) / 1e6,
           (double)len / median(wc) / 1e6, (double)len / median(wd) / 1e6);
    free(dst);
}

static void bench(void)
{
    static const int kinds[] = {DATA_GAUSS, DATA_UNIFORM, DATA_ZERO, DATA_HALF_ZERO, DATA_PRUNED};
    size_t len = 4 * MIB;
    printf("\n4 MiB of float32, median of %d runs, MB/s = 10^6 raw bytes per second\n", RUNS);
    printf("%-16s %-8s %8s %21s %21s\n", "", "", "", "CPU time", "wall time");
    printf("%-16s %-8s %8s %10s %10s %10s %10s\n", "data", "codec", "ratio", "compress", "decompress",
           "compress", "decompress");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        unsigned char *src = make_data(kinds[i], len);
        for (int c = 0; c < SN_CODEC_COUNT; c++) bench_one((sn_codec)c, kinds[i], src, len);
        free(src);
    }
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {0, 1, 3, 4, 5, 7, 255, 256, 257, 1000, 1001, 1003, 32772, MIB, 4 * MIB,
                                   4 * MIB + 3};
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        bench();
        return failures ? 1 : 0;
    }
    shared_ctx = sn_codec_ctx_new();
    if (!shared_ctx) abort();
    check_names_and_args();
    check_bf16_rounding();
    for (int c = 0; c < SN_CODEC_COUNT; c++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int kind = DATA_RANDOM; kind < DATA_KINDS; kind++) roundtrip((sn_codec)c, kind, sizes[s]);
    check_lane_choices();
    check_hand_built();
    check_fallback();
    sn_codec_ctx_free(shared_ctx);
    printf("correctness: %s (%d failure%s)\n", failures ? "FAILED" : "ok", failures, failures == 1 ? "" : "s");
    if (argc < 2 || strcmp(argv[1], "test") != 0) bench();
    return failures ? 1 : 0;
}
