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
 * page faults on every call whenever malloc hands memory back to the OS. */
#define ZLIB_CONST
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec/sn_compress.h"

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

/* Stream format 3 of "shuffle", for n = raw_len / 4 whole float32s and
 * t = raw_len % 4 trailing bytes. Lane k (0..3) is byte k of every
 * little-endian float32: lanes 0-1 are the low mantissa bits, lane 2 the
 * high ones and the lowest exponent bit, lane 3 the sign and the other
 * seven exponent bits.
 *
 *   byte 0      header: bits 0-3 the format tag 0x7; bit 4 + k set when
 *               lane k is coded
 *   lanes 0..3  in lane order, each one of
 *                 coded: u32 little-endian clen, then clen bytes holding
 *                        exactly one zstd frame (RFC 8878; any parameters,
 *                        no dictionary) whose header declares a content
 *                        size of n and which decodes to those n bytes, with
 *                        nothing after the frame
 *                 raw:   the n lane bytes verbatim
 *   tail        the t trailing bytes verbatim
 *
 * and nothing after. No lane is coded when n == 0, so an empty payload is
 * the lone byte 0x07. The encoder codes a lane only when it ends up shorter
 * than storing it, so a stream is never longer than 1 + raw_len bytes.
 *
 * Any other tag is refused, including 0x6 (format 2, raw deflate lanes,
 * never shipped); a later format gets a new tag.
 *
 * Which lanes to code is decided from byte statistics of a fixed sample of
 * the payload (every stride-th block of SAMPLE_BLOCK float32s), and the
 * zstd parameters are fixed, so the same payload always gives the same
 * stream. */
#define SHUFFLE_TAG 0x7u
#define SHUFFLE_TAG_MASK 0x0fu

/* A coded lane: zstd level 1 (ZSTD_fast) with the smallest hash table.
 * Measured on the sign/exponent lane of 1 M Gaussian(0.05) float32s:
 *
 *   hashLog        6      8     default(13)  level 2   zlib Huffman-only
 *   lane ratio     0.3323 0.3332 0.3646      0.3933    0.3317
 *   compress MB/s  831    788    313         208       ~200
 *   decode MB/s    2637   2630   1559        1240      ~280
 *
 * The lane is near-random at ~2.6 bits/byte, so nearly every match a big
 * hash table finds is a short one that costs more than its literals; with
 * 64 slots zstd codes almost only Huffman literals (as fast as zstd's
 * Huffman goes) yet still finds the repeat-offset runs of zero-heavy data
 * (all-zero lane ~0.0000, pruned-rows exponent lane 0.183 against 0.180
 * for deflate Z_RLE). A larger minMatch changes nothing at this size; a
 * smaller one or a small window (which also shrinks the blocks) costs both
 * ratio and speed. No checksum: the record envelope has its own CRC. */
#define LANE_ZSTD_LEVEL 1
#define LANE_ZSTD_HASHLOG 6

/* The sample: every stride-th block of SAMPLE_BLOCK float32s (4 KiB of
 * payload), stride = blocks / SAMPLE_BLOCKS within 1..SAMPLE_STRIDE. Up to
 * 31 blocks everything is read; a 4 MiB payload is read at 1/16. */
#define SAMPLE_BLOCK 1024u
#define SAMPLE_BLOCKS 16u
#define SAMPLE_STRIDE 16u
#define LANE_MIN 64u        /* shorter lanes are stored: headers eat the gain */
/* Code a lane only below this many estimated bits per byte. At 7.97 (lane
 * 2 of Gaussian weights) an entropy coder saves nothing, for CPU time
 * spent on both sides; lane 3 is at 2.6. */
#define CODE_BELOW_BITS 7.5f
/* what one repeat match costs, length and offset codes together */
#define RUN_MATCH_BITS 10.0f

typedef struct {
    uint32_t all[4][256]; /* byte histogram of each lane */
    uint32_t run[4][256]; /* the bytes equal to the three before them */
    uint32_t runs[4];     /* how many stretches of such bytes start */
    uint32_t count;       /* float32s sampled */
} lane_stats;

/* A repeat match copies the previous byte, so a byte equal to the three
 * before it is (nearly) free inside a run. The first three of a block never
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
 * near -log2(p), but never under one bit. */
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

/* Returns the lanes worth coding, bit k for lane k: those whose estimated
 * size, as Huffman-coded literals or as literals plus repeat matches over
 * the runs, whichever is smaller, is under CODE_BELOW_BITS per byte. */
static unsigned plan_lanes(const unsigned char *src, size_t n)
{
    static const uint32_t none[256];
    unsigned plan = 0;
    if (n < LANE_MIN) return 0;
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
        float runs = huffman_bits(st.all[k], st.run[k]) + RUN_MATCH_BITS * (float)st.runs[k];
        float best = runs < huff ? runs : huff;
        if (best < CODE_BELOW_BITS * (float)st.count) plan |= 1u << k;
    }
    return plan;
}

static int zstd_fail(sn_err *e, size_t r, const char *what)
{
    if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation) return nomem(e);
    return sn_fail(e, SN_EIO, "zstd %s failed: %s (zstd %s)", what, ZSTD_getErrorName(r),
                   ZSTD_versionString());
}

static int lane_cctx(ZSTD_CCtx **out, sn_err *e)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c) return nomem(e);
    size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, LANE_ZSTD_LEVEL);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, LANE_ZSTD_HASHLOG);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
    if (ZSTD_isError(r)) {
        ZSTD_freeCCtx(c);
        return zstd_fail(e, r, "setup");
    }
    *out = c;
    return SN_OK;
}

/* Each coded lane is gathered into one lane-sized buffer (a quarter of the
 * payload) and compressed in one shot straight into the stream: zstd's
 * streaming API would buffer as much internally, and one-shot skips its
 * copy. */
static int compress_shuffle(const unsigned char *src, size_t len, unsigned char **out,
                            size_t *out_len, sn_err *e)
{
    size_t n = len / 4, tail = len % 4, pos = 1;
    unsigned plan = plan_lanes(src, n), coded = 0;
    int rc = SN_OK;
    unsigned char *buf = malloc(len + 1), *lane = NULL;
    ZSTD_CCtx *cctx = NULL;
    if (!buf) return nomem(e);
    if (plan) {
        lane = malloc(n);
        if (!lane) rc = nomem(e);
        if (rc == SN_OK) rc = lane_cctx(&cctx, e);
    }
    for (unsigned k = 0; k < 4 && rc == SN_OK; k++) {
        if (plan >> k & 1u) {
            get_lane(lane, src, n, 8u * k);
            /* worth it only when 4 + clen < n; LANE_MIN keeps n - 5 positive */
            size_t r = ZSTD_compress2(cctx, buf + pos + 4, n - 5, lane, n);
            if (!ZSTD_isError(r)) {
                store32(buf + pos, (uint32_t)r); /* little-endian host */
                pos += 4 + r;
                coded |= 1u << k;
                continue;
            }
            if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall) {
                rc = zstd_fail(e, r, "compression");
                break;
            }
            /* did not fit: the estimate was wrong, store the lane */
            memcpy(buf + pos, lane, n);
        } else {
            get_lane(buf + pos, src, n, 8u * k);
        }
        pos += n;
    }
    ZSTD_freeCCtx(cctx);
    free(lane);
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

/* Decodes the zstd frame of lane k (clen bytes at src) into exactly n
 * bytes at dst. The frame must declare n as its content size, end exactly
 * at clen and decode to n bytes; zstd never writes past the capacity it is
 * given nor reads past clen. */
static int unzstd_lane(ZSTD_DCtx *d, unsigned k, const unsigned char *src, size_t clen,
                       unsigned char *dst, size_t n, sn_err *e)
{
    unsigned long long declared = ZSTD_getFrameContentSize(src, clen);
    if (declared == ZSTD_CONTENTSIZE_ERROR)
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u is not a zstd frame", k);
    if (declared == ZSTD_CONTENTSIZE_UNKNOWN)
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u: zstd frame does not declare its size", k);
    if (declared != n)
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u: zstd frame declares %llu bytes, expected %zu",
                       k, declared, n);
    size_t fl = ZSTD_findFrameCompressedSize(src, clen);
    if (ZSTD_isError(fl))
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u: zstd frame is malformed or truncated: %s", k,
                       ZSTD_getErrorName(fl));
    if (fl != clen)
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u has %zu bytes after its zstd frame", k,
                       clen - fl);
    size_t r = ZSTD_decompressDCtx(d, dst, n, src, clen);
    if (ZSTD_isError(r)) {
        if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation) return nomem(e);
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u: zstd frame is malformed: %s", k,
                       ZSTD_getErrorName(r));
    }
    if (r != n)
        return sn_fail(e, SN_ECORRUPT, "shuffle lane %u decodes to %zu bytes, expected %zu", k, r, n);
    return SN_OK;
}

/* Decodes each coded lane whole into one buffer of (coded lanes) * n bytes,
 * then weaves all four lanes into dst in one pass: every float32 of dst is
 * written exactly once, and the raw lanes are read where they lie in src.
 * Not zstd's streaming decoder into small stack chunks woven as they come:
 * the encoder's frames are single-segment (window = lane size), so a
 * streaming decoder would buffer the whole lane inside zstd anyway, plus
 * one more copy per byte; the one-shot decoder writes the lane once. */
static int weave_shuffle(const unsigned char *const lane[4], const size_t clen[4],
                         unsigned coded, size_t n, unsigned char *dst, sn_err *e)
{
    const unsigned char *p[4];
    unsigned count = 0;
    for (unsigned k = 0; k < 4; k++) count += coded >> k & 1u;
    unsigned char *lanes = NULL;
    ZSTD_DCtx *d = NULL;
    int rc = SN_OK;
    if (count) {
        lanes = malloc(count * n);
        d = ZSTD_createDCtx();
        if (!lanes || !d) rc = nomem(e);
    }
    for (unsigned k = 0, slot = 0; k < 4 && rc == SN_OK; k++) {
        if (!(coded >> k & 1u)) {
            p[k] = lane[k];
            continue;
        }
        unsigned char *at = lanes + (size_t)slot++ * n;
        rc = unzstd_lane(d, k, lane[k], clen[k], at, n, e);
        p[k] = at;
    }
    if (rc == SN_OK) weave_lanes(dst, p[0], p[1], p[2], p[3], n);
    ZSTD_freeDCtx(d);
    free(lanes);
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
