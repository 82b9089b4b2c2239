/* wyrand: the generator Rust's fastrand uses (the seed's weights came from
 * it), small enough to inline. Integer-only, so a seed gives the same
 * stream on every machine and compiler; floats are derived from the top
 * bits with exact scaling, so they are reproducible too. */
#ifndef SN_RAND_H
#define SN_RAND_H

#include <stdint.h>

typedef struct sn_rand {
    uint64_t state;
} sn_rand;

static inline uint64_t sn_rand_next(sn_rand *r)
{
    r->state += UINT64_C(0xa0761d6478bd642f);
    __uint128_t t = (__uint128_t)r->state * (r->state ^ UINT64_C(0xe7037ed1a0b428db));
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

/* The seed is mixed through one round of the generator rather than used as
 * the state: wyrand's state advances by a constant, so seeds s and s + that
 * constant would otherwise give the same stream shifted by one. */
static inline void sn_rand_seed(sn_rand *r, uint64_t seed)
{
    r->state = seed;
    r->state = sn_rand_next(r);
}

/* Uniform in [0, 1) with 53 random bits: the product is exact. */
static inline double sn_rand_double(sn_rand *r)
{
    return (double)(sn_rand_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [-limit, limit), rounded once to float32. */
static inline float sn_rand_symmetric(sn_rand *r, double limit)
{
    return (float)((2.0 * sn_rand_double(r) - 1.0) * limit);
}

#endif
