/* Internals shared by the payload codec files: sn_compress.c (names,
 * entry points, the bf16 stream), sn_lanes.c (byte-lane kernels),
 * sn_deflate.c (zlib) and sn_shuffle.c (zstd lanes). */
#ifndef SN_COMPRESS_INT_H
#define SN_COMPRESS_INT_H

#include <limits.h>
#include <string.h>

#include "codec/sn_compress.h"

/* The lane order is defined by byte order in memory, and the bit tricks
 * read a float32 as the uint32 a little-endian host stores. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the payload codecs support little-endian hosts only"
#endif

_Static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");
_Static_assert(SN_MAX_RECORD <= UINT_MAX / 2, "zlib counts bytes in uInt");

/* Deflate expands incompressible input by a few bytes per block at most;
 * a longer stream cannot belong to a payload under the record cap. */
#define MAX_PACKED ((size_t)SN_MAX_RECORD + SN_MAX_RECORD / 64u + 4096u)

/* Inner loops run a fixed BLOCK iterations so the compiler vectorizes them
 * at -O2 without needing a runtime trip-count epilogue. */
#define BLOCK 32

/* Stream bytes per zlib call: enough to amortise the call, small enough for
 * L1 and the stack. */
#define CHUNK 16384

static inline int sn_codec_nomem(sn_err *e)
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

/* ---- lane kernels (sn_lanes.c) ---------------------------------------- */

/* dst[i] = byte (shift / 8) of the i-th float32 at src, */
SN_HIDDEN void sn_get_lane(unsigned char *restrict dst, const unsigned char *restrict src,
                           size_t m, unsigned shift);
/* ... the same after rounding each value to bfloat16 */
SN_HIDDEN void sn_get_bf16_lane(unsigned char *restrict dst, const unsigned char *restrict src,
                                size_t m, unsigned shift);
/* the lane back: put sets whole float32s, or ORs into them */
SN_HIDDEN void sn_put_lane(unsigned char *restrict dst, const unsigned char *restrict src,
                           size_t m, unsigned shift);
SN_HIDDEN void sn_or_lane(unsigned char *restrict dst, const unsigned char *restrict src,
                          size_t m, unsigned shift);
/* dst[4i + k] = lk[i] */
SN_HIDDEN void sn_weave_lanes(unsigned char *restrict dst, const unsigned char *restrict l0,
                              const unsigned char *restrict l1, const unsigned char *restrict l2,
                              const unsigned char *restrict l3, size_t m);

/* ---- zlib (sn_deflate.c) ---------------------------------------------- */

/* A codec's stream is a function of its raw bytes. gather writes stream
 * bytes [off, off + m) from the raw payload; scatter writes them back. The
 * span may cross lane boundaries, so both walk it lane segment by segment. */
typedef void (*gather_fn)(unsigned char *dst, const unsigned char *raw, size_t raw_len,
                          size_t off, size_t m);
typedef void (*scatter_fn)(unsigned char *raw, size_t raw_len, size_t off,
                           const unsigned char *src, size_t m);

typedef struct {
    int level, window_bits, mem_level, strategy;
} zparams;

/* Deflate the stream_len bytes gather derives from raw (raw itself when
 * gather is NULL) into a fresh malloc'd buffer. */
SN_HIDDEN int sn_z_compress(const zparams *p, gather_fn gather, const unsigned char *raw,
                            size_t raw_len, size_t stream_len, unsigned char **out,
                            size_t *out_len, sn_err *e);
/* Inflate src into exactly stream_len stream bytes, written to raw through
 * scatter (or straight into raw when scatter is NULL); what names the codec
 * in errors. */
SN_HIDDEN int sn_z_decompress(int window_bits, scatter_fn scatter, const unsigned char *src,
                              size_t len, unsigned char *raw, size_t raw_len, size_t stream_len,
                              const char *what, sn_err *e);

/* ---- shuffle (sn_shuffle.c) ------------------------------------------- */

/* x may be NULL: contexts and scratch made and freed within the call. */
SN_HIDDEN int sn_compress_shuffle(sn_codec_ctx *x, const unsigned char *src, size_t len,
                                  unsigned char **out, size_t *out_len, sn_err *e);
SN_HIDDEN int sn_decompress_shuffle(sn_codec_ctx *x, const unsigned char *src, size_t len,
                                    unsigned char *dst, size_t raw_len, sn_err *e);

#endif
