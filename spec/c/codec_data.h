/* Test data for the codec test: seeded float32 arrays of several kinds
 * (random bytes, gaussian weights, zeros, pruned ...), the same on every run.
 * Included by test_compress.c only. */
#ifndef CODEC_DATA_H
#define CODEC_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(void)
{
    return (double)(rng() >> 11) * (1.0 / 9007199254740992.0);
}

static double gauss(double sigma)
{
    double u1 = unit(), u2 = unit();
    if (u1 < 1e-300) u1 = 1e-300;
    return sigma * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

enum { DATA_RANDOM, DATA_GAUSS, DATA_UNIFORM, DATA_ZERO, DATA_HALF_ZERO, DATA_PRUNED, DATA_KINDS };
static const char *const data_names[] = {"random bytes", "gaussian s=0.05", "uniform [-1,1]",
                                         "all zero",     "50% zero",        "pruned rows"};

static float make_float(int kind, size_t i)
{
    switch (kind) {
    case DATA_GAUSS: return (float)gauss(0.05);
    case DATA_UNIFORM: return (float)(2.0 * unit() - 1.0);
    case DATA_ZERO: return 0.0f;
    case DATA_HALF_ZERO: return unit() < 0.5 ? 0.0f : (float)gauss(0.05);
    default: /* pruned: rows of 64 weights, half of the rows all zero */
        return ((i / 64) * 0x9e3779b9u >> 7) & 1 ? 0.0f : (float)gauss(0.05);
    }
}

/* Floats fill whole float32s; a ragged tail gets random bytes. */
static unsigned char *make_data(int kind, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    if (!p) abort();
    size_t i = 0;
    for (; kind != DATA_RANDOM && i + 4 <= len; i += 4) {
        float f = make_float(kind, i / 4);
        memcpy(p + i, &f, 4);
    }
    for (; i < len; i++) p[i] = (unsigned char)rng();
    return p;
}

static uint32_t bits_of(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

static float float_of(uint32_t w)
{
    float f;
    memcpy(&f, &w, 4);
    return f;
}

#endif
