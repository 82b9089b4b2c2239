/* Byte-lane kernels: a float32 array split into byte lanes and back. */
#include "codec/sn_compress_int.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The kernels stay out of line (noinline also under LTO): GCC drops
 * restrict when it inlines, and without it these loops need an alias check
 * that its -O2 cost model will not pay for, so they would not vectorize. */

static inline unsigned char lane_byte(const unsigned char *src, size_t i, unsigned shift)
{
    return (unsigned char)(load32(src + 4 * i) >> shift);
}

static inline unsigned char bf16_lane_byte(const unsigned char *src, size_t i, unsigned shift)
{
    return (unsigned char)(bf16_round(load32(src + 4 * i)) >> shift);
}

/* dst[i] = byte (shift / 8) of the i-th float32 at src */
__attribute__((noinline))
void sn_get_lane(unsigned char *restrict dst, const unsigned char *restrict src, size_t m,
                 unsigned shift)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) dst[i + j] = lane_byte(src, i + j, shift);
    for (; i < m; i++) dst[i] = lane_byte(src, i, shift);
}

/* the same after rounding each value to bfloat16 */
__attribute__((noinline))
void sn_get_bf16_lane(unsigned char *restrict dst, const unsigned char *restrict src, size_t m,
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
__attribute__((noinline))
void sn_put_lane(unsigned char *restrict dst, const unsigned char *restrict src, size_t m,
                 unsigned shift)
{
    size_t i = 0;
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) put_one(dst, src, i + j, shift);
    for (; i < m; i++) put_one(dst, src, i, shift);
}

__attribute__((noinline))
void sn_or_lane(unsigned char *restrict dst, const unsigned char *restrict src, size_t m,
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
 * written once. With SSE2 (every x86-64) 16 float32s per step by byte and
 * word interleaves: GCC's -O2 does not vectorize the scalar loop, which was
 * a fifth of a 64 KiB get. */
__attribute__((noinline))
void sn_weave_lanes(unsigned char *restrict dst, const unsigned char *restrict l0,
                    const unsigned char *restrict l1, const unsigned char *restrict l2,
                    const unsigned char *restrict l3, size_t m)
{
    size_t i = 0;
#ifdef __SSE2__
    for (; i + 16 <= m; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(l0 + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(l1 + i));
        __m128i c = _mm_loadu_si128((const __m128i *)(l2 + i));
        __m128i d = _mm_loadu_si128((const __m128i *)(l3 + i));
        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
        unsigned char *o = dst + 4 * i;
        _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(o + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
        _mm_storeu_si128((__m128i *)(o + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
        _mm_storeu_si128((__m128i *)(o + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
#endif
    for (; i + BLOCK <= m; i += BLOCK)
        for (size_t j = 0; j < BLOCK; j++) weave_one(dst, l0, l1, l2, l3, i + j);
    for (; i < m; i++) weave_one(dst, l0, l1, l2, l3, i);
}
