/* Standalone test and benchmark for the float32 codecs (no Lua, no RocksDB).
 *
 *   gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Icsrc fuzz/test_compress.c \
 *       csrc/sn_compress.c csrc/sn_err.c -lz -lm -o /tmp/test_compress
 *
 * Exits non-zero on any failure; the throughput table is informational. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sn_compress.h"

#define MIB (1u << 20)
#define CANARY 64 /* bytes after every decode buffer that must stay untouched */
#define RUNS 5

static int failures;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            failures++;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                           \
            fputc('\n', stderr);                                    \
        }                                                           \
    } while (0)

/* ---- data -------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(void)
{
    return (double)(rng() >> 11) * (1.0 / 9007199254740992.0);
}

static double gauss(double sigma)
{
    double u1 = unit(), u2 = unit();
    if (u1 < 1e-300) u1 = 1e-300;
    return sigma * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

enum { DATA_RANDOM, DATA_GAUSS, DATA_UNIFORM };
static const char *const data_names[] = {"random bytes", "gaussian s=0.05", "uniform [-1,1]"};

/* Floats fill whole float32s; a ragged tail gets random bytes. */
static unsigned char *make_data(int kind, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    if (!p) abort();
    size_t i = 0;
    for (; kind != DATA_RANDOM && i + 4 <= len; i += 4) {
        float f = (float)(kind == DATA_GAUSS ? gauss(0.05) : 2.0 * unit() - 1.0);
        memcpy(p + i, &f, 4);
    }
    for (; i < len; i++) p[i] = (unsigned char)rng();
    return p;
}

static uint32_t bits_of(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

static float float_of(uint32_t w)
{
    float f;
    memcpy(&f, &w, 4);
    return f;
}

/* ---- decode helpers ---------------------------------------------------- */

/* Decodes into a buffer of exactly raw_len bytes followed by a canary, so
 * any write past dst shows up even without a sanitizer. */
static int decode_guarded(sn_codec c, const unsigned char *src, size_t len, size_t raw_len,
                          unsigned char **out, sn_err *e)
{
    unsigned char *dst = malloc(raw_len + CANARY);
    if (!dst) abort();
    memset(dst + raw_len, 0xA5, CANARY);
    int rc = sn_decompress(c, src, len, dst, raw_len, e);
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

static void corrupt_variants(sn_codec c, const unsigned char *packed, size_t plen, size_t len)
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
        /* gzip alone carries a CRC, so a flipped bit must never decode */
        memcpy(buf, packed, plen);
        buf[plen / 2] ^= 0x10;
        expect_corrupt(c, buf, plen, len, "flipped bit");
    }
    free(buf);
}

static void roundtrip(sn_codec c, int kind, size_t len)
{
    unsigned char *src = make_data(kind, len), *packed = NULL, *dec = NULL;
    size_t plen = 0;
    sn_err e = {0};
    int rc = sn_compress(c, src, len, &packed, &plen, &e);
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
    if (len <= MIB) corrupt_variants(c, packed, plen, len);
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

/* ---- benchmark --------------------------------------------------------- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
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

static void bench_one(sn_codec c, int kind, const unsigned char *src, size_t len)
{
    double tc[RUNS], td[RUNS];
    size_t plen = 0;
    unsigned char *dst = malloc(len);
    if (!dst) abort();
    for (int r = 0; r < RUNS; r++) {
        unsigned char *packed = NULL;
        sn_err e = {0};
        double t0 = now();
        int rc = sn_compress(c, src, len, &packed, &plen, &e);
        tc[r] = now() - t0;
        t0 = now();
        if (rc == SN_OK) rc = sn_decompress(c, packed, plen, dst, len, &e);
        td[r] = now() - t0;
        CHECK(rc == SN_OK, "bench %s: %s", sn_codec_name(c), e.msg);
        free(packed);
    }
    printf("%-16s %-8s %8.4f %12.1f %14.1f\n", data_names[kind], sn_codec_name(c),
           (double)plen / (double)len, (double)len / median(tc) / 1e6, (double)len / median(td) / 1e6);
    free(dst);
}

static void bench(void)
{
    size_t len = 4 * MIB;
    printf("\n4 MiB of float32, median of %d runs, MB/s = 10^6 raw bytes per second\n", RUNS);
    printf("%-16s %-8s %8s %12s %14s\n", "data", "codec", "ratio", "compress", "decompress");
    for (int kind = DATA_GAUSS; kind <= DATA_UNIFORM; kind++) {
        unsigned char *src = make_data(kind, len);
        for (int c = 0; c < SN_CODEC_COUNT; c++) bench_one((sn_codec)c, kind, src, len);
        free(src);
    }
}

int main(void)
{
    static const size_t sizes[] = {0, 1, 3, 4, 1000, MIB, 4 * MIB};
    check_names_and_args();
    check_bf16_rounding();
    for (int c = 0; c < SN_CODEC_COUNT; c++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int kind = DATA_RANDOM; kind <= DATA_GAUSS; kind++) roundtrip((sn_codec)c, kind, sizes[s]);
    printf("correctness: %s (%d failure%s)\n", failures ? "FAILED" : "ok", failures, failures == 1 ? "" : "s");
    bench();
    return failures ? 1 : 0;
}
