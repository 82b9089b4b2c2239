/* libFuzzer target for the float32 codecs.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *       -D_POSIX_C_SOURCE=200809L -Icsrc fuzz/fuzz_compress.c \
 *       $(COMPRESS_SRCS: see the Makefile) -lz -lzstd -o /tmp/fuzz_compress
 *
 * Input: byte 0 picks the codec (one value past the last is an unknown
 * codec), bytes 1..4 are raw_len little-endian, the rest is the compressed
 * payload. The decoder must return SN_OK or SN_ECORRUPT and stay inside dst,
 * which is allocated at exactly raw_len bytes so ASan sees any overrun.
 * Every input is also compressed with each codec and must decode back.
 *
 * Random bytes rarely get past the shuffle stream's header and lane lengths
 * (format 3: tag 0x7, lanes as zstd frames), so the input is also
 * shuffle-compressed and that stream damaged: a bit flipped (at a spot
 * picked from the input) must decode or be refused, and every cut must be
 * refused. Inputs whose first 4 bytes are "SNZ3" are instead taken as a raw
 * zstd frame and wrapped as lane 3 of a format 3 stream (the other lanes
 * raw), so the fuzzer reaches the frame checks with valid lane lengths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/sn_compress.h"

/* Small caps keep it at thousands of runs a second (a 1 MiB claimed length
 * meant a 1 MiB buffer per run, which under ASan held it to a few hundred): every
 * decoder bound is reached with a few lanes of floats, and a bigger length
 * only repeats the same branches. The Makefile's -max_len matches MAX_INPUT. */
#define MAX_RAW (1u << 16)
#define MAX_INPUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_untrusted(const uint8_t *data, size_t size)
{
    sn_codec c = (sn_codec)(data[0] % (SN_CODEC_COUNT + 1));
    uint32_t claimed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
                       (uint32_t)data[4] << 24;
    size_t raw_len = claimed % (MAX_RAW + 1);
    unsigned char *dst = malloc(raw_len ? raw_len : 1);
    if (!dst) abort();
    sn_err e = {0};
    int rc = sn_decompress(c, data + 5, size - 5, dst, raw_len, &e);
    if (rc != SN_OK && rc != SN_ECORRUPT) abort();
    if (rc != SN_OK && (e.code != rc || e.msg[0] == '\0')) abort();
    free(dst);
}

/* expect: what decoding must return (the input itself, or for bf16 the
 * input after sn_codec_quantize). */
static void roundtrip(sn_codec c, const uint8_t *src, const uint8_t *expect, size_t len)
{
    unsigned char *packed = NULL;
    size_t plen = 0;
    sn_err e = {0};
    if (sn_compress(c, src, len, &packed, &plen, &e) != SN_OK) abort();
    unsigned char *back = malloc(len ? len : 1);
    if (!back) abort();
    if (sn_decompress(c, packed, plen, back, len, &e) != SN_OK) abort();
    if (memcmp(back, expect, len) != 0) abort();
    /* the same stream under a wrong length must be refused, not half-used */
    if (len >= 4 && sn_decompress(c, packed, plen, back, len - 4, &e) != SN_ECORRUPT) abort();
    free(back);
    free(packed);
}

static void damage_shuffle(const uint8_t *data, size_t size)
{
    unsigned char *packed = NULL;
    size_t plen = 0;
    sn_err e = {0};
    if (sn_compress(SN_CODEC_SHUFFLE, data, size, &packed, &plen, &e) != SN_OK) abort();
    unsigned char *back = malloc(size ? size : 1);
    if (!back) abort();
    uint32_t h = 2166136261u; /* FNV-1a of the input picks the spot */
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    size_t at = h % plen;
    packed[at] ^= (unsigned char)(1u << (h >> 29));
    int rc = sn_decompress(SN_CODEC_SHUFFLE, packed, plen, back, size, &e);
    if (rc != SN_OK && (rc != SN_ECORRUPT || e.code != rc || e.msg[0] == '\0')) abort();
    packed[at] ^= (unsigned char)(1u << (h >> 29));
    if (sn_decompress(SN_CODEC_SHUFFLE, packed, at, back, size, &e) != SN_ECORRUPT) abort();
    free(back);
    free(packed);
}

/* "SNZ3", raw_len u16 little-endian, then the bytes to place as lane 3's
 * zstd frame: the header, raw lanes 0-2 of zeros, the length, the frame,
 * the tail. */
static void wrap_frame(const uint8_t *data, size_t size)
{
    if (size < 6 || memcmp(data, "SNZ3", 4) != 0) return;
    size_t raw_len = (size_t)data[4] | (size_t)data[5] << 8, n = raw_len / 4, t = raw_len % 4;
    size_t flen = size - 6, len = 1 + 3 * n + 4 + flen + t;
    unsigned char *s = calloc(len, 1), *dst = malloc(raw_len ? raw_len : 1);
    if (!s || !dst) abort();
    s[0] = 0x87;
    size_t pos = 1 + 3 * n;
    for (int i = 0; i < 4; i++) s[pos + i] = (unsigned char)(flen >> 8 * i);
    memcpy(s + pos + 4, data + 6, flen);
    sn_err e = {0};
    int rc = sn_decompress(SN_CODEC_SHUFFLE, s, len, dst, raw_len, &e);
    if (rc != SN_OK && (rc != SN_ECORRUPT || e.code != rc || e.msg[0] == '\0')) abort();
    free(dst);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return -1;   /* -1: not added to the corpus */
    if (size >= 5) decode_untrusted(data, size);
    wrap_frame(data, size);

    roundtrip(SN_CODEC_NONE, data, data, size);
    roundtrip(SN_CODEC_GZIP, data, data, size);
    roundtrip(SN_CODEC_SHUFFLE, data, data, size);
    damage_shuffle(data, size);

    size_t whole = size / 4 * 4;
    unsigned char *q = malloc(whole ? whole : 1);
    if (!q) abort();
    memcpy(q, data, whole);
    sn_codec_quantize(SN_CODEC_BF16, q, whole);
    roundtrip(SN_CODEC_BF16, data, q, whole);
    roundtrip(SN_CODEC_BF16, q, q, whole); /* quantizing is idempotent */
    free(q);
    return 0;
}
