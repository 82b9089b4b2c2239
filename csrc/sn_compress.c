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
 * would only cost time.
 *
 * The shuffled stream is never materialised. Compression gathers it a chunk
 * at a time just before deflate reads it; decompression scatters each
 * inflated chunk straight into its lane of dst. A payload-sized scratch
 * buffer would cost memory at the largest payloads and, measured, fresh
 * page faults on every call whenever malloc hands memory back to the OS. */
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
/* Huffman-only ignores the level (any non-zero) and never matches, yet
 * beat every LZ77 setting on Gaussian weights: ratio 0.833 at ~190 MB/s
 * against 0.850 at ~20 MB/s for level 6. memLevel 9 doubles the block
 * size: 7% faster and fewer block headers than 8. A smaller window only
 * slows zlib's input copying down. */
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

/* Stream bytes per zlib call: enough to amortise the call, small enough for
 * L1 and the stack. */
#define CHUNK 16384

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

/* memcpy keeps the accesses legal for any alignment and effective type;
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

/* ---- lane kernels ------------------------------------------------------ */

/* The kernels stay out of line: GCC drops restrict when it inlines, and
 * without it these loops need an alias check that its -O2 cost model will
 * not pay for, so they would not vectorize. */

static inline unsigned char lane_byte(const unsigned char *src, size_t i, unsigned shift)
{
    return (unsigned char)(load32(src + 4 * i) >> shift);
}

static inline unsigned char bf16_lane_byte(const unsigned char *src, size_t i, unsigned shift)
{
    return (unsigned char)(bf16_round(load32(src + 4 * i)) >> shift);
}

/* dst[i] = byte (shift / 8) of the i-th float32 at src */
__attribute__((noinline)) static void get_lane(unsigned char *restrict dst,
                                               const unsigned char *restrict src, size_t m,
                                               unsigned shift)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) dst[i + j] = lane_byte(src, i + j, shift);
    for (; i < m; i++) dst[i] = lane_byte(src, i, shift);
}

/* the same after rounding each value to bfloat16 */
__attribute__((noinline)) static void get_bf16_lane(unsigned char *restrict dst,
                                                    const unsigned char *restrict src, size_t m,
                                                    unsigned shift)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) dst[i + j] = bf16_lane_byte(src, i + j, shift);
    for (; i < m; i++) dst[i] = bf16_lane_byte(src, i, shift);
}

static inline void put_one(unsigned char *dst, const unsigned char *src, size_t i, unsigned shift)
{
    store32(dst + 4 * i, (uint32_t)src[i] << shift);
}

static inline void or_one(unsigned char *dst, const unsigned char *src, size_t i, unsigned shift)
{
    store32(dst + 4 * i, load32(dst + 4 * i) | (uint32_t)src[i] << shift);
}

/* The first lane of the stream sets whole float32s, zeroing the other
 * bytes; later lanes OR theirs in. No read of dst before it is written. */
__attribute__((noinline)) static void put_lane(unsigned char *restrict dst,
                                               const unsigned char *restrict src, size_t m,
                                               unsigned shift)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) put_one(dst, src, i + j, shift);
    for (; i < m; i++) put_one(dst, src, i, shift);
}

__attribute__((noinline)) static void or_lane(unsigned char *restrict dst,
                                              const unsigned char *restrict src, size_t m,
                                              unsigned shift)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) or_one(dst, src, i + j, shift);
    for (; i < m; i++) or_one(dst, src, i, shift);
}

/* ---- stream layouts ---------------------------------------------------- */

/* A codec's stream is a function of its raw bytes. gather writes stream
 * bytes [off, off + m) from the raw payload; scatter writes them back. The
 * span may cross lane boundaries, so both walk it lane segment by segment. */
typedef void (*gather_fn)(unsigned char *dst, const unsigned char *raw, size_t raw_len,
                          size_t off, size_t m);
typedef void (*scatter_fn)(unsigned char *raw, size_t raw_len, size_t off,
                           const unsigned char *src, size_t m);

/* shuffle: lanes of byte 0, 1, 2, 3 of every float32, then the ragged tail
 * as is (lane 4 below). */
static size_t shuffle_segment(size_t raw_len, size_t off, size_t m, size_t *lane, size_t *i)
{
    size_t n = raw_len / 4;
    *lane = n && off < 4 * n ? off / n : 4;
    *i = *lane < 4 ? off - *lane * n : off - 4 * n;
    return *lane < 4 && n - *i < m ? n - *i : m;
}

static void gather_shuffle(unsigned char *dst, const unsigned char *raw, size_t raw_len,
                           size_t off, size_t m)
{
    while (m > 0) {
        size_t lane, i, seg = shuffle_segment(raw_len, off, m, &lane, &i);
        if (lane < 4)
            get_lane(dst, raw + 4 * i, seg, 8u * (unsigned)lane);
        else
            memcpy(dst, raw + raw_len / 4 * 4 + i, seg);
        dst += seg;
        off += seg;
        m -= seg;
    }
}

static void scatter_shuffle(unsigned char *raw, size_t raw_len, size_t off,
                            const unsigned char *src, size_t m)
{
    while (m > 0) {
        size_t lane, i, seg = shuffle_segment(raw_len, off, m, &lane, &i);
        if (lane == 0)
            put_lane(raw + 4 * i, src, seg, 0);
        else if (lane < 4)
            or_lane(raw + 4 * i, src, seg, 8u * (unsigned)lane);
        else
            memcpy(raw + raw_len / 4 * 4 + i, src, seg);
        src += seg;
        off += seg;
        m -= seg;
    }
}

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
        get_bf16_lane(dst, raw + 4 * i, seg, lane ? 16u : 24u);
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
            put_lane(raw + 4 * i, src, seg, 24);
        else
            or_lane(raw + 4 * i, src, seg, 16);
        src += seg;
        off += seg;
        m -= seg;
    }
}

/* ---- deflate ----------------------------------------------------------- */

static int zlib_setup_error(sn_err *e, int zrc, const char *what)
{
    if (zrc == Z_MEM_ERROR) return nomem(e);
    /* only a zlib build that disagrees with its header gets here */
    return sn_fail(e, SN_EIO, "zlib %s failed to initialise (%d, zlib %s)", what, zrc,
                   zlibVersion());
}

static int deflate_gathered(z_stream *z, gather_fn gather, const unsigned char *raw,
                            size_t raw_len, size_t stream_len)
{
    unsigned char chunk[CHUNK];
    size_t off = 0;
    int zrc;
    do {
        size_t m = stream_len - off < CHUNK ? stream_len - off : CHUNK;
        gather(chunk, raw, raw_len, off, m);
        off += m;
        z->next_in = chunk;
        z->avail_in = (uInt)m;
        zrc = deflate(z, off == stream_len ? Z_FINISH : Z_NO_FLUSH);
    } while (zrc == Z_OK && z->avail_in == 0 && off < stream_len);
    return zrc;
}

/* Deflates the stream_len bytes gather derives from raw (raw itself when
 * gather is NULL) into one buffer of deflateBound bytes. Feeding the input
 * in chunks yields the same stream as one call, so zlib's promise that the
 * bound suffices for a single Z_FINISH still holds. */
static int z_compress(const zparams *p, gather_fn gather, const unsigned char *raw,
                      size_t raw_len, size_t stream_len, unsigned char **out, size_t *out_len,
                      sn_err *e)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    int zrc = deflateInit2(&z, p->level, Z_DEFLATED, p->window_bits, p->mem_level, p->strategy);
    if (zrc != Z_OK) return zlib_setup_error(e, zrc, "deflate");
    size_t cap = deflateBound(&z, (uLong)stream_len);
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return nomem(e);
    }
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (gather) {
        zrc = deflate_gathered(&z, gather, raw, raw_len, stream_len);
    } else {
        z.next_in = raw;
        z.avail_in = (uInt)raw_len;
        zrc = deflate(&z, Z_FINISH);
    }
    size_t n = z.total_out;
    deflateEnd(&z);
    if (zrc != Z_STREAM_END) {
        free(buf);
        return sn_fail(e, SN_EIO, "deflate did not finish (zlib %d)", zrc);
    }
    /* the bound exceeds the raw size (by 13% at memLevel 9); the caller
     * should not hold memory the stream did not need */
    unsigned char *shrunk = cap - n > cap / 8 ? realloc(buf, n ? n : 1) : NULL;
    *out = shrunk ? shrunk : buf;
    *out_len = n;
    return SN_OK;
}

/* ---- inflate ----------------------------------------------------------- */

static int inflate_scattered(z_stream *z, scatter_fn scatter, unsigned char *raw, size_t raw_len,
                             size_t stream_len)
{
    unsigned char chunk[CHUNK];
    int zrc;
    do {
        size_t off = z->total_out;
        size_t room = stream_len - off < CHUNK ? stream_len - off : CHUNK;
        z->next_out = chunk;
        z->avail_out = (uInt)room;
        zrc = inflate(z, Z_NO_FLUSH);
        scatter(raw, raw_len, off, chunk, room - z->avail_out);
    } while (zrc == Z_OK && z->total_out < stream_len);
    return zrc;
}

static int inflate_verdict(const z_stream *z, int zrc, size_t n, const char *what, sn_err *e)
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
    if (zrc == Z_BUF_ERROR) return sn_fail(e, SN_ECORRUPT, "%s payload is truncated", what);
    return sn_fail(e, SN_ECORRUPT, "%s payload is malformed: %s", what,
                   z->msg ? z->msg : "invalid deflate stream");
}

/* Inflates src into exactly stream_len bytes, written to raw through
 * scatter, or straight into raw when scatter is NULL. zlib never writes past
 * avail_out nor reads past avail_in, so untrusted input is bounded on both
 * sides. */
static int z_decompress(int window_bits, scatter_fn scatter, const unsigned char *src,
                        size_t len, unsigned char *raw, size_t raw_len, size_t stream_len,
                        const char *what, sn_err *e)
{
    unsigned char spare;
    z_stream z;
    memset(&z, 0, sizeof z);
    int zrc = inflateInit2(&z, window_bits);
    if (zrc != Z_OK) return zlib_setup_error(e, zrc, "inflate");
    z.next_in = src;
    z.avail_in = (uInt)len;
    if (scatter) {
        zrc = inflate_scattered(&z, scatter, raw, raw_len, stream_len);
    } else {
        z.next_out = stream_len ? raw : &spare; /* zlib rejects a NULL output */
        z.avail_out = (uInt)stream_len;
        zrc = inflate(&z, Z_FINISH);
    }
    if (zrc == Z_OK || (zrc == Z_BUF_ERROR && z.avail_out == 0)) {
        /* every expected byte is out but the stream is not over: one byte of
         * room tells a stream that is too long from one that is cut short */
        z.next_out = &spare;
        z.avail_out = 1;
        zrc = inflate(&z, Z_FINISH);
    }
    int rc = inflate_verdict(&z, zrc, stream_len, what, e);
    inflateEnd(&z);
    return rc;
}

/* ---- entry points ------------------------------------------------------ */

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

static int compress_bf16(const unsigned char *src, size_t len, unsigned char **out,
                         size_t *out_len, sn_err *e)
{
    if (len % 4) return sn_fail(e, SN_EARG, "bf16 needs whole float32s, got %zu bytes", len);
    return z_compress(&BF16_Z, gather_bf16, src, len, len / 2, out, out_len, e);
}

int sn_compress(sn_codec c, const void *src, size_t len, unsigned char **out, size_t *out_len,
                sn_err *e)
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
    case SN_CODEC_GZIP: return z_compress(&GZIP_Z, NULL, s, len, len, out, out_len, e);
    case SN_CODEC_SHUFFLE:
        return z_compress(&SHUFFLE_Z, gather_shuffle, s, len, len, out, out_len, e);
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
    return z_decompress(BF16_Z.window_bits, scatter_bf16, src, len, dst, raw_len, raw_len / 2,
                        "bf16", e);
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
    case SN_CODEC_GZIP:
        return z_decompress(GZIP_Z.window_bits, NULL, s, len, d, raw_len, raw_len, "gzip", e);
    case SN_CODEC_SHUFFLE:
        return z_decompress(SHUFFLE_Z.window_bits, scatter_shuffle, s, len, d, raw_len, raw_len,
                            "shuffle", e);
    case SN_CODEC_BF16: return decompress_bf16(s, len, d, raw_len, e);
    default: return sn_fail(e, SN_ECORRUPT, "unknown codec %d", (int)c);
    }
}
