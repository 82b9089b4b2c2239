/* Codecs for float32 payloads: zlib, zstd behind a byte-lane shuffle.
 *
 * Splitting each float32 into byte lanes puts the low-entropy sign/exponent
 * bytes next to each other, which is where nearly all the gain on weights
 * comes from. The mantissa lanes of trained weights are close to random
 * (7.97-8.00 bits per byte on Gaussian weights), so "shuffle" entropy-codes
 * only the lanes whose byte statistics promise a real saving, each as one
 * zstd frame, and stores the rest verbatim; see "shuffle" below for the
 * stream format. zstd decodes such a lane ~8x faster than inflate does
 * (2.6 GB/s against ~300 MB/s) at the same size.
 *
 * bf16 uses raw deflate (no zlib/gzip wrapper) and the shuffle lanes carry
 * no zstd checksum: the record envelope has its own CRC over the decoded
 * bytes, so a second checksum would only cost time.
 *
 * bf16's shuffled stream is never materialised: compression gathers it a
 * chunk at a time just before deflate reads it, decompression scatters each
 * inflated chunk straight into dst. "shuffle" holds only its coded lanes
 * whole (one lane-sized buffer to compress, one per coded lane to decode),
 * never a second copy of the payload's raw lanes. A payload-sized scratch
 * buffer would cost memory at the largest payloads and, measured, fresh
 * page faults on every call whenever malloc hands memory back to the OS.
 *
 * This file holds the codec names, the entry points and the bf16 stream;
 * sn_lanes.c the byte-lane kernels, sn_deflate.c zlib, sn_shuffle.c the
 * "shuffle" stream (sn_compress_int.h is what they share). */
#define ZLIB_CONST
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/sn_compress_int.h"

static const zparams GZIP_Z = {6, 15 + 16, 8, Z_DEFAULT_STRATEGY};
/* RLE rather than Huffman-only: it costs ~0.4% on dense weights but turns
 * runs of zeros (pruned weights, zero-initialised biases) into a few bytes. */
static const zparams BF16_Z = {1, -15, 8, Z_RLE};

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

/* ---- bfloat16 ---------------------------------------------------------- */

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

/* ---- the bf16 stream --------------------------------------------------- */

/* bf16: the high byte of every rounded value, then the low byte. Callers
 * guarantee raw_len % 4 == 0, so there is no tail. */
static size_t bf16_segment(size_t raw_len, size_t off, size_t m, size_t *lane, size_t *i)
{
    size_t n = raw_len / 4;
    *lane = off / n; /* m > 0 implies n > 0 */
    *i = off - *lane * n;
    return n - *i < m ? n - *i : m;
}

static void gather_bf16(unsigned char *dst, const unsigned char *raw, size_t raw_len, size_t off,
                        size_t m)
{
    while (m > 0) {
        size_t lane, i, seg = bf16_segment(raw_len, off, m, &lane, &i);
        sn_get_bf16_lane(dst, raw + 4 * i, seg, lane ? 16u : 24u);
        dst += seg;
        off += seg;
        m -= seg;
    }
}

static void scatter_bf16(unsigned char *raw, size_t raw_len, size_t off, const unsigned char *src,
                         size_t m)
{
    while (m > 0) {
        size_t lane, i, seg = bf16_segment(raw_len, off, m, &lane, &i);
        if (lane == 0)
            sn_put_lane(raw + 4 * i, src, seg, 24);
        else
            sn_or_lane(raw + 4 * i, src, seg, 16);
        src += seg;
        off += seg;
        m -= seg;
    }
}

/* ---- entry points ------------------------------------------------------ */

static int compress_none(const unsigned char *src, size_t len, unsigned char **out,
                         size_t *out_len, sn_err *e)
{
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) return sn_codec_nomem(e);
    memcpy(buf, src, len);
    *out = buf;
    *out_len = len;
    return SN_OK;
}

static int compress_bf16(const unsigned char *src, size_t len, unsigned char **out,
                         size_t *out_len, sn_err *e)
{
    if (len % 4) return sn_fail(e, SN_EARG, "bf16 needs whole float32s, got %zu bytes", len);
    return sn_z_compress(&BF16_Z, gather_bf16, src, len, len / 2, out, out_len, e);
}

int sn_compress(sn_codec c, const void *src, size_t len, unsigned char **out, size_t *out_len,
                sn_err *e)
{
    return sn_compress_ctx(NULL, c, src, len, out, out_len, e);
}

int sn_compress_ctx(sn_codec_ctx *x, sn_codec c, const void *src, size_t len,
                    unsigned char **out, size_t *out_len, sn_err *e)
{
    static const unsigned char empty[1];
    if (!out || !out_len || (!src && len)) return sn_fail(e, SN_EARG, "sn_compress: NULL buffer");
    *out = NULL;
    *out_len = 0;
    if (len > SN_MAX_RECORD)
        return sn_fail(e, SN_EARG, "payload of %zu bytes exceeds the %u-byte cap", len,
                       SN_MAX_RECORD);
    const unsigned char *s = len ? src : empty; /* no arithmetic on a NULL pointer */
    switch (c) {
    case SN_CODEC_NONE: return compress_none(s, len, out, out_len, e);
    case SN_CODEC_GZIP: return sn_z_compress(&GZIP_Z, NULL, s, len, len, out, out_len, e);
    case SN_CODEC_SHUFFLE:
        return sn_compress_shuffle(x, s, len, out, out_len, e);
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

static int decompress_bf16(const unsigned char *src, size_t len, unsigned char *dst,
                           size_t raw_len, sn_err *e)
{
    if (raw_len % 4)
        return sn_fail(e, SN_ECORRUPT, "bf16 payload of %zu bytes is not whole float32s",
                       raw_len);
    return sn_z_decompress(BF16_Z.window_bits, scatter_bf16, src, len, dst, raw_len, raw_len / 2,
                        "bf16", e);
}

int sn_decompress(sn_codec c, const void *src, size_t len, void *dst, size_t raw_len, sn_err *e)
{
    return sn_decompress_ctx(NULL, c, src, len, dst, raw_len, e);
}

int sn_decompress_ctx(sn_codec_ctx *x, sn_codec c, const void *src, size_t len, void *dst,
                      size_t raw_len, sn_err *e)
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
    case SN_CODEC_GZIP:
        return sn_z_decompress(GZIP_Z.window_bits, NULL, s, len, d, raw_len, raw_len, "gzip", e);
    case SN_CODEC_SHUFFLE:
        return sn_decompress_shuffle(x, s, len, d, raw_len, e);
    case SN_CODEC_BF16: return decompress_bf16(s, len, d, raw_len, e);
    default: return sn_fail(e, SN_ECORRUPT, "unknown codec %d", (int)c);
    }
}
