/* Codecs for float32 payloads: zlib, optionally behind a byte-lane shuffle.
 *
 * Splitting each float32 into byte lanes puts the low-entropy sign/exponent
 * bytes next to each other, which is where nearly all the gain on weights
 * comes from. The mantissa lanes are close to random, so LZ77 match search
 * costs CPU and finds nothing: the shuffled codecs use Huffman-only or RLE
 * deflate instead.
 *
 * The shuffled codecs use raw deflate (no zlib/gzip wrapper): the record
 * envelope carries its own CRC over the decoded bytes, so a second checksum
 * would only cost time. */
#define ZLIB_CONST
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sn_compress.h"

/* The lane order is defined by byte order in memory, and the bit tricks
 * below read a float32 as the uint32 a little-endian host stores. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sn_compress.c supports little-endian hosts only"
#endif

_Static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");
_Static_assert(SN_MAX_RECORD <= UINT_MAX / 2, "zlib counts bytes in uInt");

typedef struct {
    int level, window_bits, mem_level, strategy;
} zparams;

static const zparams GZIP_Z = {6, 15 + 16, 8, Z_DEFAULT_STRATEGY};
/* Huffman-only ignores the level (any non-zero) and the window; memLevel 9
 * doubles the block size, so fewer block headers and slightly faster. The
 * measurements behind this choice are in fuzz/test_compress.c's report. */
static const zparams SHUFFLE_Z = {1, -15, 9, Z_HUFFMAN_ONLY};
/* RLE rather than Huffman-only: it costs ~0.4% on dense weights but turns
 * runs of zeros (pruned weights, zero-initialised biases) into a few bytes. */
static const zparams BF16_Z = {1, -15, 8, Z_RLE};

/* Deflate expands incompressible input by a few bytes per block at most;
 * a longer stream cannot belong to a payload under the record cap. */
#define MAX_PACKED ((size_t)SN_MAX_RECORD + SN_MAX_RECORD / 64u + 4096u)

/* Inner loops run a fixed BLOCK iterations so the compiler vectorizes them
 * at -O2 without needing a runtime trip-count epilogue. */
#define BLOCK 32

static const char *const codec_names[SN_CODEC_COUNT] = {"none", "gzip", "shuffle", "bf16"};

const char *sn_codec_name(sn_codec c)
{
    return (unsigned)c < SN_CODEC_COUNT ? codec_names[c] : "unknown";
}

int sn_codec_from_name(const char *name, sn_codec *out)
{
    for (unsigned i = 0; name && i < SN_CODEC_COUNT; i++) {
        if (strcmp(name, codec_names[i]) == 0) {
            *out = (sn_codec)i;
            return 0;
        }
    }
    return -1;
}

int sn_codec_is_lossy(sn_codec c)
{
    return c == SN_CODEC_BF16;
}

static int nomem(sn_err *e)
{
    return sn_fail(e, SN_ENOMEM, "out of memory");
}

/* memcpy keeps the loads legal for any alignment and any effective type;
 * compilers turn it into a plain move. */
static inline uint32_t load32(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

static inline void store32(unsigned char *p, uint32_t w)
{
    memcpy(p, &w, 4);
}

/* ---- bfloat16 ---------------------------------------------------------- */

/* Round-to-nearest-even to the top 16 bits. Inf is already exact. A NaN
 * keeps its top half, but one whose payload lived only in the low half would
 * truncate to Inf, so it gets the quiet bit to stay a NaN. */
static inline uint32_t bf16_round(uint32_t w)
{
    uint32_t rounded = (w + 0x7fffu + ((w >> 16) & 1u)) & 0xffff0000u;
    uint32_t top = w & 0xffff0000u;
    uint32_t nan = top | ((top & 0x007f0000u) ? 0u : 0x00400000u);
    int special = (w & 0x7f800000u) == 0x7f800000u;
    int is_nan = (w & 0x007fffffu) != 0;
    return special ? (is_nan ? nan : w) : rounded;
}

static inline void quantize_one(unsigned char *p, size_t i)
{
    store32(p + 4 * i, bf16_round(load32(p + 4 * i)));
}

void sn_codec_quantize(sn_codec c, void *buf, size_t len)
{
    if (c != SN_CODEC_BF16) return;
    unsigned char *p = buf;
    size_t n = len / 4, i = 0;
    for (; i + BLOCK <= n; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) quantize_one(p, i + j);
    for (; i < n; i++) quantize_one(p, i);
}

/* ---- lane shuffles ----------------------------------------------------- */

/* Each lane is its own restrict parameter: derived from one pointer, the
 * compiler could not prove the lanes disjoint and would not vectorize. The
 * kernels stay out of line because GCC drops restrict when it inlines. */
static inline void shuffle4_one(unsigned char *restrict l0, unsigned char *restrict l1,
                                unsigned char *restrict l2, unsigned char *restrict l3,
                                const unsigned char *restrict src, size_t i)
{
    uint32_t w = load32(src + 4 * i);
    l0[i] = (unsigned char)w;
    l1[i] = (unsigned char)(w >> 8);
    l2[i] = (unsigned char)(w >> 16);
    l3[i] = (unsigned char)(w >> 24);
}

__attribute__((noinline)) static void shuffle4_lanes(unsigned char *restrict l0, unsigned char *restrict l1,
                           unsigned char *restrict l2, unsigned char *restrict l3,
                           const unsigned char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) shuffle4_one(l0, l1, l2, l3, src, i + j);
    for (; i < n; i++) shuffle4_one(l0, l1, l2, l3, src, i);
}

/* n float32s from src into 4 lanes of n bytes at dst. */
static void shuffle4(unsigned char *dst, const unsigned char *src, size_t n)
{
    shuffle4_lanes(dst, dst + n, dst + 2 * n, dst + 3 * n, src, n);
}

static inline void unshuffle4_one(unsigned char *restrict dst, const unsigned char *restrict src,
                                  size_t n, size_t i)
{
    uint32_t w = (uint32_t)src[i] | (uint32_t)src[n + i] << 8 | (uint32_t)src[2 * n + i] << 16 |
                 (uint32_t)src[3 * n + i] << 24;
    store32(dst + 4 * i, w);
}

static void unshuffle4(unsigned char *restrict dst, const unsigned char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) unshuffle4_one(dst, src, n, i + j);
    for (; i < n; i++) unshuffle4_one(dst, src, n, i);
}

static inline void bf16_split_one(unsigned char *restrict hi, unsigned char *restrict lo,
                                  const unsigned char *restrict src, size_t i)
{
    uint32_t w = bf16_round(load32(src + 4 * i));
    hi[i] = (unsigned char)(w >> 24);
    lo[i] = (unsigned char)(w >> 16);
}

/* bf16 lanes: high byte of every value, then low byte. */
__attribute__((noinline)) static void bf16_split(unsigned char *restrict hi, unsigned char *restrict lo,
                       const unsigned char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) bf16_split_one(hi, lo, src, i + j);
    for (; i < n; i++) bf16_split_one(hi, lo, src, i);
}

static inline void bf16_join_one(unsigned char *restrict dst, const unsigned char *restrict src,
                                 size_t n, size_t i)
{
    store32(dst + 4 * i, (uint32_t)src[i] << 24 | (uint32_t)src[n + i] << 16);
}

static void bf16_join(unsigned char *restrict dst, const unsigned char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) bf16_join_one(dst, src, n, i + j);
    for (; i < n; i++) bf16_join_one(dst, src, n, i);
}

/* ---- zlib -------------------------------------------------------------- */

static int zlib_setup_error(sn_err *e, int zrc, const char *what)
{
    if (zrc == Z_MEM_ERROR) return nomem(e);
    /* only a zlib build that disagrees with its header gets here */
    return sn_fail(e, SN_EIO, "zlib %s failed to initialise (%d, zlib %s)", what, zrc, zlibVersion());
}

/* One deflate call over the whole input into a buffer of deflateBound
 * bytes, which zlib guarantees is enough for a single Z_FINISH. */
static int z_compress(const zparams *p, const unsigned char *in, size_t len, unsigned char **out,
                      size_t *out_len, sn_err *e)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    int zrc = deflateInit2(&z, p->level, Z_DEFLATED, p->window_bits, p->mem_level, p->strategy);
    if (zrc != Z_OK) return zlib_setup_error(e, zrc, "deflate");
    size_t cap = deflateBound(&z, (uLong)len);
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return nomem(e);
    }
    z.next_in = in;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    zrc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    if (zrc != Z_STREAM_END) {
        free(buf);
        return sn_fail(e, SN_EIO, "deflate did not finish (zlib %d)", zrc);
    }
    /* deflateBound is generous for non-default settings; keep only what is used */
    unsigned char *shrunk = realloc(buf, n ? n : 1);
    *out = shrunk ? shrunk : buf;
    *out_len = n;
    return SN_OK;
}

static int z_verdict(const z_stream *z, int zrc, size_t n, const char *what, sn_err *e)
{
    if (z->total_out > n)
        return sn_fail(e, SN_ECORRUPT, "%s payload decodes to more than the expected %zu bytes",
                       what, n);
    if (zrc == Z_STREAM_END && z->total_out < n)
        return sn_fail(e, SN_ECORRUPT, "%s payload decodes to %lu bytes, expected %zu", what,
                       (unsigned long)z->total_out, n);
    if (zrc == Z_STREAM_END && z->avail_in != 0)
        return sn_fail(e, SN_ECORRUPT, "%s payload has %u trailing bytes after the stream", what,
                       (unsigned)z->avail_in);
    if (zrc == Z_STREAM_END) return SN_OK;
    if (zrc == Z_MEM_ERROR) return nomem(e);
    if (zrc == Z_BUF_ERROR)
        return sn_fail(e, SN_ECORRUPT, "%s payload is truncated", what);
    return sn_fail(e, SN_ECORRUPT, "%s payload is malformed: %s", what,
                   z->msg ? z->msg : "invalid deflate stream");
}

/* Inflate src into exactly n bytes at dst. zlib never writes past avail_out
 * nor reads past avail_in, so untrusted input is bounded on both sides. */
static int z_decompress(int window_bits, const unsigned char *src, size_t len, unsigned char *dst,
                        size_t n, const char *what, sn_err *e)
{
    unsigned char spare;
    z_stream z;
    memset(&z, 0, sizeof z);
    int zrc = inflateInit2(&z, window_bits);
    if (zrc != Z_OK) return zlib_setup_error(e, zrc, "inflate");
    z.next_in = src;
    z.avail_in = (uInt)len;
    z.next_out = n ? dst : &spare; /* zlib rejects a NULL output even for 0 bytes */
    z.avail_out = (uInt)n;
    zrc = inflate(&z, Z_FINISH);
    if (zrc == Z_BUF_ERROR && z.avail_out == 0) {
        /* dst is full but the stream is not over: one more byte of room tells
         * a stream that is too long from one that is cut short */
        z.next_out = &spare;
        z.avail_out = 1;
        zrc = inflate(&z, Z_FINISH);
    }
    int rc = z_verdict(&z, zrc, n, what, e);
    inflateEnd(&z);
    return rc;
}

/* ---- codecs ------------------------------------------------------------ */

static int compress_none(const unsigned char *src, size_t len, unsigned char **out,
                         size_t *out_len, sn_err *e)
{
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) return nomem(e);
    memcpy(buf, src, len);
    *out = buf;
    *out_len = len;
    return SN_OK;
}

static int compress_shuffle(const unsigned char *src, size_t len, unsigned char **out,
                            size_t *out_len, sn_err *e)
{
    size_t n = len / 4, body = 4 * n;
    unsigned char *lanes = malloc(len ? len : 1);
    if (!lanes) return nomem(e);
    shuffle4(lanes, src, n);
    memcpy(lanes + body, src + body, len - body);
    int rc = z_compress(&SHUFFLE_Z, lanes, len, out, out_len, e);
    free(lanes);
    return rc;
}

static int compress_bf16(const unsigned char *src, size_t len, unsigned char **out,
                         size_t *out_len, sn_err *e)
{
    if (len % 4)
        return sn_fail(e, SN_EARG, "bf16 needs whole float32s, got %zu bytes", len);
    size_t n = len / 4;
    unsigned char *lanes = malloc(n ? 2 * n : 1);
    if (!lanes) return nomem(e);
    bf16_split(lanes, lanes + n, src, n);
    int rc = z_compress(&BF16_Z, lanes, 2 * n, out, out_len, e);
    free(lanes);
    return rc;
}

int sn_compress(sn_codec c, const void *src, size_t len, unsigned char **out, size_t *out_len,
                sn_err *e)
{
    static const unsigned char empty[1];
    if (!out || !out_len || (!src && len))
        return sn_fail(e, SN_EARG, "sn_compress: NULL buffer");
    *out = NULL;
    *out_len = 0;
    if (len > SN_MAX_RECORD)
        return sn_fail(e, SN_EARG, "payload of %zu bytes exceeds the %u-byte cap", len,
                       SN_MAX_RECORD);
    const unsigned char *s = len ? src : empty; /* no arithmetic on a NULL pointer */
    switch (c) {
    case SN_CODEC_NONE: return compress_none(s, len, out, out_len, e);
    case SN_CODEC_GZIP: return z_compress(&GZIP_Z, s, len, out, out_len, e);
    case SN_CODEC_SHUFFLE: return compress_shuffle(s, len, out, out_len, e);
    case SN_CODEC_BF16: return compress_bf16(s, len, out, out_len, e);
    default: return sn_fail(e, SN_EARG, "unknown codec %d", (int)c);
    }
}

static int decompress_none(const unsigned char *src, size_t len, unsigned char *dst,
                           size_t raw_len, sn_err *e)
{
    if (len != raw_len)
        return sn_fail(e, SN_ECORRUPT, "none payload is %zu bytes, expected %zu", len, raw_len);
    memcpy(dst, src, len);
    return SN_OK;
}

static int decompress_shuffle(const unsigned char *src, size_t len, unsigned char *dst,
                              size_t raw_len, sn_err *e)
{
    size_t n = raw_len / 4, body = 4 * n;
    unsigned char *lanes = malloc(raw_len ? raw_len : 1);
    if (!lanes) return nomem(e);
    int rc = z_decompress(SHUFFLE_Z.window_bits, src, len, lanes, raw_len, "shuffle", e);
    if (rc == SN_OK) {
        unshuffle4(dst, lanes, n);
        memcpy(dst + body, lanes + body, raw_len - body);
    }
    free(lanes);
    return rc;
}

static int decompress_bf16(const unsigned char *src, size_t len, unsigned char *dst,
                           size_t raw_len, sn_err *e)
{
    if (raw_len % 4)
        return sn_fail(e, SN_ECORRUPT, "bf16 payload of %zu bytes is not whole float32s",
                       raw_len);
    size_t n = raw_len / 4;
    unsigned char *lanes = malloc(n ? 2 * n : 1);
    if (!lanes) return nomem(e);
    int rc = z_decompress(BF16_Z.window_bits, src, len, lanes, 2 * n, "bf16", e);
    if (rc == SN_OK) bf16_join(dst, lanes, n);
    free(lanes);
    return rc;
}

int sn_decompress(sn_codec c, const void *src, size_t len, void *dst, size_t raw_len, sn_err *e)
{
    static const unsigned char empty[1];
    unsigned char sink[1];
    if ((!src && len) || (!dst && raw_len))
        return sn_fail(e, SN_EARG, "sn_decompress: NULL buffer");
    if (raw_len > SN_MAX_RECORD)
        return sn_fail(e, SN_ECORRUPT, "payload claims %zu bytes, over the %u-byte cap", raw_len,
                       SN_MAX_RECORD);
    if (len > MAX_PACKED)
        return sn_fail(e, SN_ECORRUPT, "compressed payload of %zu bytes is too long", len);
    const unsigned char *s = len ? src : empty; /* no arithmetic on a NULL pointer */
    unsigned char *d = raw_len ? dst : sink;
    switch (c) {
    case SN_CODEC_NONE: return decompress_none(s, len, d, raw_len, e);
    case SN_CODEC_GZIP: return z_decompress(GZIP_Z.window_bits, s, len, d, raw_len, "gzip", e);
    case SN_CODEC_SHUFFLE: return decompress_shuffle(s, len, d, raw_len, e);
    case SN_CODEC_BF16: return decompress_bf16(s, len, d, raw_len, e);
    default: return sn_fail(e, SN_ECORRUPT, "unknown codec %d", (int)c);
    }
}
