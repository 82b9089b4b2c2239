/* The "shuffle" codec: byte lanes, the compressible ones as zstd frames. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec/sn_compress_int.h"

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

/* The histograms come in two sets, even and odd float32s, summed before
 * use: a lane of few distinct bytes (the exponents) increments the same
 * counter again and again, and each increment waited for the one before
 * it (store-to-load forwarding); alternating sets halves that chain. Same
 * sums, same plan: measured 2x faster sampling, most of a small payload's
 * compression time. */
typedef struct {
    uint32_t all[2][4][256]; /* byte histogram of each lane */
    uint32_t run[2][4][256]; /* the bytes equal to the three before them */
    uint32_t runs[4];        /* how many stretches of such bytes start */
    uint32_t count;          /* float32s sampled */
} lane_stats;

/* Counts byte k of w in set h; returns bit k set when it is in a run. */
static inline unsigned count_lane(lane_stats *st, unsigned h, unsigned k, uint32_t w, uint32_t d,
                                  unsigned before)
{
    unsigned b = (w >> 8 * k) & 255u, in = ((d >> 8 * k) & 255u) == 0;
    st->all[h][k][b]++;
    st->run[h][k][b] += in;
    st->runs[k] += in & ~(before >> k) & 1u;
    return in << k;
}

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
        unsigned h = (unsigned)(i & 1u);
        before = count_lane(st, h, 0, w, d, before) | count_lane(st, h, 1, w, d, before) |
                 count_lane(st, h, 2, w, d, before) | count_lane(st, h, 3, w, d, before);
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
        uint32_t all[256], run[256];
        for (unsigned b = 0; b < 256; b++) {
            all[b] = st.all[0][k][b] + st.all[1][k][b];
            run[b] = st.run[0][k][b] + st.run[1][k][b];
        }
        float huff = huffman_bits(all, none);
        /* no run started: run[] is all zero and the estimate is huff's
         * (the usual case for mantissa lanes; saves a pass over 256 counts) */
        float runs = st.runs[k] ? huffman_bits(all, run) + RUN_MATCH_BITS * (float)st.runs[k]
                                : huff;
        float best = runs < huff ? runs : huff;
        if (best < CODE_BELOW_BITS * (float)st.count) plan |= 1u << k;
    }
    return plan;
}

static int zstd_fail(sn_err *e, size_t r, const char *what)
{
    if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation) return sn_codec_nomem(e);
    return sn_fail(e, SN_EIO, "zstd %s failed: %s (zstd %s)", what, ZSTD_getErrorName(r),
                   ZSTD_versionString());
}

static int lane_cctx(ZSTD_CCtx **out, sn_err *e)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c) return sn_codec_nomem(e);
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

/* ---- reusable state (sn_codec_ctx) --------------------------------------- */

/* Scratch memory a context keeps between calls, at most this much per
 * buffer: enough for a 4 MiB payload; a larger one gets its own, freed
 * after the call, so a store does not hold on to a huge buffer. Kept
 * memory is the point: a fresh block of this size comes from mmap, and
 * its first touch page-faults (a quarter of a 1 MiB record's check). */
#define SCRATCH_KEEP ((size_t)4 << 20)

typedef struct scratch_buf {
    unsigned char *p;
    size_t cap;
} scratch_buf;

struct sn_codec_ctx {
    ZSTD_CCtx *cctx;         /* with the lane parameters set, made on first use */
    ZSTD_DCtx *dctx;
    scratch_buf lanes;       /* lanes being coded or decoded */
    scratch_buf out;         /* the caller's (sn_codec_ctx_out) */
};

sn_codec_ctx *sn_codec_ctx_new(void)
{
    return calloc(1, sizeof(sn_codec_ctx));
}

void sn_codec_ctx_free(sn_codec_ctx *x)
{
    if (!x) return;
    ZSTD_freeCCtx(x->cctx);
    ZSTD_freeDCtx(x->dctx);
    free(x->lanes.p);
    free(x->out.p);
    free(x);
}

/* n bytes of b (grown when short), or (b NULL, or n over SCRATCH_KEEP) a
 * fresh block in *owned that the caller frees. NULL when out of memory. */
static unsigned char *scratch_get(scratch_buf *b, size_t n, unsigned char **owned)
{
    *owned = NULL;
    if (!b || n > SCRATCH_KEEP) return *owned = malloc(n ? n : 1);
    if (b->cap < n) {
        free(b->p);   /* nothing in it is kept: no realloc copy */
        b->cap = 0;
        b->p = malloc(n);
        if (!b->p) return NULL;
        b->cap = n;
    }
    return b->p;
}

static unsigned char *scratch(sn_codec_ctx *x, size_t n, unsigned char **owned)
{
    return scratch_get(x ? &x->lanes : NULL, n, owned);
}

void *sn_codec_ctx_out(sn_codec_ctx *x, size_t n, unsigned char **owned)
{
    return scratch_get(x ? &x->out : NULL, n, owned);
}

/* The lane compressor: x's (made once), or a fresh one in *owned. */
static int get_cctx(sn_codec_ctx *x, ZSTD_CCtx **c, ZSTD_CCtx **owned, sn_err *e)
{
    *owned = NULL;
    if (!x) {
        int rc = lane_cctx(owned, e);
        *c = *owned;
        return rc;
    }
    int rc = x->cctx ? SN_OK : lane_cctx(&x->cctx, e);
    *c = x->cctx;
    return rc;
}

/* The decompressor: x's, or a fresh one in *owned; NULL when out of memory.
 * ZSTD_decompressDCtx starts every frame afresh, so one that failed
 * leaves nothing behind for the next. */
static ZSTD_DCtx *get_dctx(sn_codec_ctx *x, ZSTD_DCtx **owned)
{
    *owned = NULL;
    if (!x) return *owned = ZSTD_createDCtx();
    if (!x->dctx) x->dctx = ZSTD_createDCtx();
    return x->dctx;
}

/* Each coded lane is gathered into one lane-sized buffer (a quarter of the
 * payload) and compressed in one shot straight into the stream: zstd's
 * streaming API would buffer as much internally, and one-shot skips its
 * copy. */
int sn_compress_shuffle(sn_codec_ctx *x, const unsigned char *src, size_t len,
                        unsigned char **out, size_t *out_len, sn_err *e)
{
    size_t n = len / 4, tail = len % 4, pos = 1;
    unsigned plan = plan_lanes(src, n), coded = 0;
    int rc = SN_OK;
    unsigned char *buf = malloc(len + 1), *lane = NULL, *own_lane = NULL;
    ZSTD_CCtx *cctx = NULL, *own_cctx = NULL;
    if (!buf) return sn_codec_nomem(e);
    if (plan) {
        lane = scratch(x, n, &own_lane);
        if (!lane) rc = sn_codec_nomem(e);
        if (rc == SN_OK) rc = get_cctx(x, &cctx, &own_cctx, e);
    }
    for (unsigned k = 0; k < 4 && rc == SN_OK; k++) {
        if (plan >> k & 1u) {
            sn_get_lane(lane, src, n, 8u * k);
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
            sn_get_lane(buf + pos, src, n, 8u * k);
        }
        pos += n;
    }
    ZSTD_freeCCtx(own_cctx);
    free(own_lane);
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
        if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation) return sn_codec_nomem(e);
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
static int weave_shuffle(sn_codec_ctx *x, const unsigned char *const lane[4],
                         const size_t clen[4], unsigned coded, size_t n, unsigned char *dst,
                         sn_err *e)
{
    const unsigned char *p[4];
    unsigned count = 0;
    for (unsigned k = 0; k < 4; k++) count += coded >> k & 1u;
    unsigned char *lanes = NULL, *own_lanes = NULL;
    ZSTD_DCtx *d = NULL, *own_d = NULL;
    int rc = SN_OK;
    if (count) {
        lanes = scratch(x, count * n, &own_lanes);
        d = get_dctx(x, &own_d);
        if (!lanes || !d) rc = sn_codec_nomem(e);
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
    if (rc == SN_OK) sn_weave_lanes(dst, p[0], p[1], p[2], p[3], n);
    ZSTD_freeDCtx(own_d);
    free(own_lanes);
    return rc;
}

int sn_decompress_shuffle(sn_codec_ctx *x, const unsigned char *src, size_t len,
                          unsigned char *dst, size_t raw_len, sn_err *e)
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
    int rc = weave_shuffle(x, lane, clen, coded, n, dst, e);
    if (rc == SN_OK) memcpy(dst + 4 * n, src + pos, tail);
    return rc;
}
