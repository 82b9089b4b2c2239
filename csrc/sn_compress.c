/* Codecs for float32 payloads: zlib, optionally behind a byte-lane shuffle.
 *
 * Splitting each float32 into byte lanes puts the low-entropy sign/exponent
 * bytes next to each other, which is where nearly all the gain on weights
 * comes from. The mantissa lanes of trained weights are close to random
 * (7.97-8.00 bits per byte on Gaussian weights), so "shuffle" entropy-codes
 * only the lanes whose byte statistics promise a real saving and stores the
 * rest verbatim; see "shuffle" below for the stream format.
 *
 * The shuffled codecs use raw deflate (no zlib/gzip wrapper): the record
 * envelope carries its own CRC over the decoded bytes, so a second checksum
 * would only cost time.
 *
 * The shuffled streams are never materialised. Compression gathers a lane a
 * chunk at a time just before deflate reads it; decompression inflates each
 * coded lane a chunk at a time and interleaves the chunks straight into dst.
 * A payload-sized scratch buffer would cost memory at the largest payloads
 * and, measured, fresh page faults on every call whenever malloc hands
 * memory back to the OS. */
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
/* A coded shuffle lane. Huffman-only ignores the level (any non-zero) and
 * never matches, yet beat every LZ77 setting on Gaussian weights: ratio
 * 0.833 at ~190 MB/s against 0.850 at ~20 MB/s for level 6 (whole payload,
 * all lanes coded). memLevel 9 doubles the block size: 7% faster and fewer
 * block headers than 8. A smaller window only slows zlib's input copying
 * down. The strategy is chosen per lane: Huffman-only or Z_RLE. */
static const zparams LANE_Z = {1, -15, 9, Z_HUFFMAN_ONLY};
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

static inline void weave_one(unsigned char *dst, const unsigned char *l0,
                             const unsigned char *l1, const unsigned char *l2,
                             const unsigned char *l3, size_t i)
{
    store32(dst + 4 * i, (uint32_t)l0[i] | (uint32_t)l1[i] << 8 | (uint32_t)l2[i] << 16 |
                             (uint32_t)l3[i] << 24);
}

/* dst[4i + k] = lk[i]: the four lanes back into m whole float32s, each
 * written once. */
__attribute__((noinline)) static void weave_lanes(unsigned char *restrict dst,
                                                  const unsigned char *restrict l0,
                                                  const unsigned char *restrict l1,
                                                  const unsigned char *restrict l2,
                                                  const unsigned char *restrict l3, size_t m)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) weave_one(dst, l0, l1, l2, l3, i + j);
    for (; i < m; i++) weave_one(dst, l0, l1, l2, l3, i);
}

/* ---- stream layouts ---------------------------------------------------- */

/* A codec's stream is a function of its raw bytes. gather writes stream
 * bytes [off, off + m) from the raw payload; scatter writes them back. The
 * span may cross lane boundaries, so both walk it lane segment by segment. */
typedef void (*gather_fn)(unsigned char *dst, const unsigned char *raw, size_t raw_len,
                          size_t off, size_t m);
typedef void (*scatter_fn)(unsigned char *raw, size_t raw_len, size_t off,
                           const unsigned char *src, size_t m);

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

/* ---- shuffle ----------------------------------------------------------- */

/* Stream format 2 of "shuffle", for n = raw_len / 4 whole float32s and
 * t = raw_len % 4 trailing bytes. Lane k (0..3) is byte k of every
 * little-endian float32: lanes 0-1 are the low mantissa bits, lane 2 the
 * high ones and the lowest exponent bit, lane 3 the sign and the other
 * seven exponent bits.
 *
 *   byte 0      header: bits 0-3 the format tag 0x6; bit 4 + k set when
 *               lane k is coded
 *   lanes 0..3  in lane order, each one of
 *                 coded: u32 little-endian clen, then clen bytes of raw
 *                        deflate (any strategy; the encoder picks
 *                        Huffman-only or Z_RLE per lane) that inflate to
 *                        exactly n bytes, with no trailing data
 *                 raw:   the n lane bytes verbatim
 *   tail        the t trailing bytes verbatim
 *
 * and nothing after. No lane is coded when n == 0, so an empty payload is
 * the lone byte 0x06. The encoder codes a lane only when it ends up shorter
 * than storing it, so a stream is never longer than 1 + raw_len bytes.
 *
 * Any other tag is refused (a later format gets a new tag).
 *
 * Which lanes to code, and how, is decided from byte statistics of a
 * fixed sample of the payload (every stride-th block of SAMPLE_BLOCK
 * float32s), so the same payload always gives the same stream. */
#define SHUFFLE_TAG 0x6u
#define SHUFFLE_TAG_MASK 0x0fu

/* The sample: every stride-th block of SAMPLE_BLOCK float32s (4 KiB of
 * payload), stride = blocks / SAMPLE_BLOCKS within 1..SAMPLE_STRIDE. Up to
 * 31 blocks everything is read; a 4 MiB payload is read at 1/16. */
#define SAMPLE_BLOCK 1024u
#define SAMPLE_BLOCKS 16u
#define SAMPLE_STRIDE 16u
#define LANE_MIN 64u        /* shorter lanes are stored: headers eat the gain */
/* Code a lane only below this many estimated bits per byte. At 7.97 (lane
 * 2 of Gaussian weights) Huffman-only deflate saves nothing, measured
 * ratio 1.0001, for ~6 ms of CPU per MiB; lane 3 is at 2.6. */
#define CODE_BELOW_BITS 7.5f
/* Z_RLE must beat Huffman-only by this factor: on short random runs it
 * compresses a little worse and runs slower. */
#define RLE_EDGE 0.9f
/* what one distance-1 match costs, length and distance codes together */
#define RUN_MATCH_BITS 10.0f

/* Float32s per decode step: one chunk per coded lane lives on the stack. */
#define WEAVE_CHUNK 8192u

typedef struct {
    uint32_t all[4][256]; /* byte histogram of each lane */
    uint32_t run[4][256]; /* the bytes equal to the three before them */
    uint32_t runs[4];     /* how many stretches of such bytes start */
    uint32_t count;       /* float32s sampled */
} lane_stats;

/* An RLE match repeats the previous byte, so a byte equal to the three
 * before it is (nearly) free under Z_RLE. The first three of a block never
 * count: they are compared with ~w0, which differs from w0 in every byte. */
static void sample_block(lane_stats *st, const unsigned char *src, size_t m)
{
    uint32_t p1 = ~load32(src), p2 = p1, p3 = p1;
    unsigned before = 0; /* bit k: the previous byte of lane k was in a run */
    for (size_t i = 0; i < m; i++) {
        uint32_t w = load32(src + 4 * i);
        uint32_t d = (w ^ p1) | (p1 ^ p2) | (p2 ^ p3);
        unsigned now = 0;
        for (unsigned k = 0; k < 4; k++) {
            unsigned b = (w >> 8 * k) & 255u, in = ((d >> 8 * k) & 255u) == 0;
            st->all[k][b]++;
            st->run[k][b] += in;
            st->runs[k] += in & ~(before >> k) & 1u;
            now |= in << k;
        }
        before = now;
        p3 = p2;
        p2 = p1;
        p1 = w;
    }
    st->count += (uint32_t)m;
}

/* log2(x) for x >= 1, within 0.005: the exponent plus a quadratic in the
 * mantissa. Not libm's: fuzz builds do not link it, and a decision needs no
 * more precision. */
static float log2_approx(float x)
{
    uint32_t b;
    float m;
    memcpy(&b, &x, 4);
    float exponent = (float)((int)(b >> 23) - 127);
    b = (b & 0x007fffffu) | 0x3f800000u;
    memcpy(&m, &b, 4);
    return exponent + (-0.34484843f * m + 2.02466578f) * m - 0.67487759f;
}

/* Bits a Huffman code spends on the bytes counted in hist less minus: each
 * near -log2(p), but never under one bit, which is why Huffman-only cannot
 * take a lane of one repeated byte below 1/8 of its size. */
static float huffman_bits(const uint32_t *hist, const uint32_t *minus)
{
    uint32_t total = 0;
    for (unsigned s = 0; s < 256; s++) total += hist[s] - minus[s];
    if (total == 0) return 0;
    float log_total = log2_approx((float)total), bits = 0;
    for (unsigned s = 0; s < 256; s++) {
        uint32_t c = hist[s] - minus[s];
        float len = c ? log_total - log2_approx((float)c) : 0;
        bits += (float)c * (len > 1 ? len : 1);
    }
    return bits;
}

/* Sets strategy[k] to the deflate strategy for lane k, or -1 to store it. */
static void plan_lanes(const unsigned char *src, size_t n, int strategy[4])
{
    static const uint32_t none[256];
    for (unsigned k = 0; k < 4; k++) strategy[k] = -1;
    if (n < LANE_MIN) return;
    lane_stats st;
    memset(&st, 0, sizeof st);
    size_t blocks = (n + SAMPLE_BLOCK - 1) / SAMPLE_BLOCK;
    size_t stride = blocks / SAMPLE_BLOCKS;
    stride = stride < 1 ? 1 : stride > SAMPLE_STRIDE ? SAMPLE_STRIDE : stride;
    for (size_t b = 0; b < blocks; b += stride) {
        size_t i = b * SAMPLE_BLOCK, m = n - i < SAMPLE_BLOCK ? n - i : SAMPLE_BLOCK;
        sample_block(&st, src + 4 * i, m);
    }
    for (unsigned k = 0; k < 4; k++) {
        float huff = huffman_bits(st.all[k], none);
        float rle = huffman_bits(st.all[k], st.run[k]) + RUN_MATCH_BITS * (float)st.runs[k];
        int use_rle = rle < RLE_EDGE * huff;
        float best = use_rle ? rle : huff;
        if (best < CODE_BELOW_BITS * (float)st.count)
            strategy[k] = use_rle ? Z_RLE : Z_HUFFMAN_ONLY;
    }
}

/* Deflates lane k of the n float32s at src into at most cap bytes at dst,
 * gathering it a chunk at a time. Z_STREAM_END with *clen set when the lane
 * fit; Z_OK or Z_BUF_ERROR when it did not; anything else is a zlib
 * failure. z is fresh from deflateInit2 or deflateReset. */
static int deflate_lane(z_stream *z, int strategy, const unsigned char *src, size_t n,
                        unsigned k, unsigned char *dst, size_t cap, size_t *clen)
{
    unsigned char chunk[CHUNK];
    size_t off = 0;
    z->next_out = dst;
    z->avail_out = (uInt)cap;
    /* right after a reset this only records the strategy */
    int zrc = deflateParams(z, LANE_Z.level, strategy);
    if (zrc != Z_OK) return zrc == Z_BUF_ERROR ? Z_STREAM_ERROR : zrc;
    do {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        get_lane(chunk, src + 4 * off, m, 8u * k);
        off += m;
        z->next_in = chunk;
        z->avail_in = (uInt)m;
        zrc = deflate(z, off == n ? Z_FINISH : Z_NO_FLUSH);
    } while (zrc == Z_OK && z->avail_in == 0 && off < n);
    *clen = z->total_out;
    return zrc;
}

static int compress_shuffle(const unsigned char *src, size_t len, unsigned char **out,
                            size_t *out_len, sn_err *e)
{
    size_t n = len / 4, tail = len % 4, pos = 1;
    int strategy[4], rc = SN_OK, zready = 0;
    unsigned coded = 0;
    plan_lanes(src, n, strategy);
    unsigned char *buf = malloc(len + 1);
    if (!buf) return nomem(e);
    z_stream z;
    memset(&z, 0, sizeof z);
    for (unsigned k = 0; k < 4 && rc == SN_OK; k++) {
        if (strategy[k] >= 0) {
            int zrc = zready ? deflateReset(&z)
                             : deflateInit2(&z, LANE_Z.level, Z_DEFLATED, LANE_Z.window_bits,
                                            LANE_Z.mem_level, strategy[k]);
            if (zrc != Z_OK && !zready) {
                rc = zlib_setup_error(e, zrc, "deflate");
                break;
            }
            zready = 1;
            size_t clen = 0;
            /* worth it only when 4 + clen < n; LANE_MIN keeps n - 5 positive */
            if (zrc == Z_OK) zrc = deflate_lane(&z, strategy[k], src, n, k, buf + pos + 4, n - 5, &clen);
            if (zrc == Z_STREAM_END) {
                store32(buf + pos, (uint32_t)clen); /* little-endian host */
                pos += 4 + clen;
                coded |= 1u << k;
                continue;
            }
            if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
                rc = zrc == Z_MEM_ERROR ? nomem(e)
                                        : sn_fail(e, SN_EIO, "deflate failed on lane %u (zlib %d)", k, zrc);
                break;
            }
            /* did not fit: the estimate was wrong, store the lane */
        }
        get_lane(buf + pos, src, n, 8u * k);
        pos += n;
    }
    if (zready) deflateEnd(&z);
    if (rc != SN_OK) {
        free(buf);
        return rc;
    }
    memcpy(buf + pos, src + 4 * n, tail);
    pos += tail;
    buf[0] = (unsigned char)(SHUFFLE_TAG | coded << 4);
    /* Give memory back only when most of it went unused. Trimming the
     * usual ~17% costs more than it saves: the callers free the stream as
     * soon as they have copied it, and glibc raises its mmap threshold to
     * the size of the freed block, so a block freed shorter than the next
     * request sends every call to fresh, page-faulting mmap memory
     * (measured: 238 against 589 MB/s on Gaussian weights). */
    size_t cap = len + 1;
    unsigned char *shrunk = cap - pos > cap / 2 ? realloc(buf, pos) : NULL;
    *out = shrunk ? shrunk : buf;
    *out_len = pos;
    return SN_OK;
}

static const char *const lane_what[4] = {"shuffle lane 0", "shuffle lane 1", "shuffle lane 2",
                                         "shuffle lane 3"};

/* Inflates the coded lanes a chunk at a time, in step, and weaves each
 * chunk together with the raw lanes straight into dst: every float32 of
 * dst is written exactly once. */
static int weave_shuffle(const unsigned char *const lane[4], const size_t clen[4],
                         unsigned coded, size_t n, unsigned char *dst, sn_err *e)
{
    unsigned char chunk[4][WEAVE_CHUNK];
    z_stream z[4];
    int zrc[4] = {Z_OK, Z_OK, Z_OK, Z_OK}, rc = SN_OK;
    unsigned live = 0;
    for (unsigned k = 0; k < 4; k++) {
        if (!(coded >> k & 1u)) continue;
        memset(&z[k], 0, sizeof z[k]);
        int r = inflateInit2(&z[k], LANE_Z.window_bits);
        if (r != Z_OK) {
            rc = zlib_setup_error(e, r, "inflate");
            goto done;
        }
        live |= 1u << k;
        z[k].next_in = lane[k];
        z[k].avail_in = (uInt)clen[k];
    }
    for (size_t i = 0, m; i < n; i += m) {
        const unsigned char *p[4];
        m = n - i < WEAVE_CHUNK ? n - i : WEAVE_CHUNK;
        for (unsigned k = 0; k < 4; k++) {
            if (!(coded >> k & 1u)) {
                p[k] = lane[k] + i;
                continue;
            }
            z[k].next_out = chunk[k];
            z[k].avail_out = (uInt)m;
            zrc[k] = inflate(&z[k], Z_NO_FLUSH);
            if (z[k].avail_out != 0) {
                /* Z_OK without filling the chunk means the input ran out */
                rc = inflate_verdict(&z[k], zrc[k] == Z_OK ? Z_BUF_ERROR : zrc[k], n, lane_what[k], e);
                if (rc == SN_OK) /* cannot happen: total_out < n here */
                    rc = sn_fail(e, SN_ECORRUPT, "%s payload stops short", lane_what[k]);
                goto done;
            }
            p[k] = chunk[k];
        }
        weave_lanes(dst + 4 * i, p[0], p[1], p[2], p[3], m);
    }
    for (unsigned k = 0; k < 4; k++) {
        if (!(coded >> k & 1u)) continue;
        if (zrc[k] != Z_STREAM_END) {
            /* all n bytes are out but the stream is not over: one byte of
             * room tells a stream that is too long from one cut short */
            unsigned char spare;
            z[k].next_out = &spare;
            z[k].avail_out = 1;
            zrc[k] = inflate(&z[k], Z_FINISH);
        }
        rc = inflate_verdict(&z[k], zrc[k], n, lane_what[k], e);
        if (rc != SN_OK) goto done;
    }
done:
    for (unsigned k = 0; k < 4; k++)
        if (live >> k & 1u) inflateEnd(&z[k]);
    return rc;
}

static int decompress_shuffle(const unsigned char *src, size_t len, unsigned char *dst,
                              size_t raw_len, sn_err *e)
{
    if (len == 0) return sn_fail(e, SN_ECORRUPT, "shuffle payload is empty");
    unsigned head = src[0];
    if ((head & SHUFFLE_TAG_MASK) != SHUFFLE_TAG)
        return sn_fail(e, SN_ECORRUPT, "shuffle payload has unknown format tag 0x%x",
                       head & SHUFFLE_TAG_MASK);
    size_t n = raw_len / 4, tail = raw_len % 4, pos = 1;
    unsigned coded = head >> 4;
    if (coded && n == 0)
        return sn_fail(e, SN_ECORRUPT, "shuffle payload codes lanes of a %zu-byte value", raw_len);
    const unsigned char *lane[4];
    size_t clen[4] = {0, 0, 0, 0};
    for (unsigned k = 0; k < 4; k++) {
        if (coded >> k & 1u) {
            if (len - pos < 4)
                return sn_fail(e, SN_ECORRUPT, "shuffle payload is truncated at lane %u", k);
            uint32_t c = load32(src + pos); /* little-endian host */
            pos += 4;
            if (c > len - pos)
                return sn_fail(e, SN_ECORRUPT,
                               "shuffle lane %u claims %lu coded bytes, %zu are left", k,
                               (unsigned long)c, len - pos);
            lane[k] = src + pos;
            clen[k] = c;
            pos += c;
        } else {
            if (len - pos < n)
                return sn_fail(e, SN_ECORRUPT,
                               "shuffle payload is truncated in raw lane %u (%zu of %zu bytes)", k,
                               len - pos, n);
            lane[k] = src + pos;
            pos += n;
        }
    }
    if (len - pos != tail)
        return sn_fail(e, SN_ECORRUPT, "shuffle payload has %zu bytes after its lanes, expected %zu",
                       len - pos, tail);
    int rc = weave_shuffle(lane, clen, coded, n, dst, e);
    if (rc == SN_OK) memcpy(dst + 4 * n, src + pos, tail);
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
        return compress_shuffle(s, len, out, out_len, e);
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
        return decompress_shuffle(s, len, d, raw_len, e);
    case SN_CODEC_BF16: return decompress_bf16(s, len, d, raw_len, e);
    default: return sn_fail(e, SN_ECORRUPT, "unknown codec %d", (int)c);
    }
}
