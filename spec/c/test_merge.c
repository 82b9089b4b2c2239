/* The merge rules without RocksDB: only csrc/merge/ and csrc/base/ are
 * linked, as the sync engine is tested without sockets.
 *
 *   cc -std=c11 -Icsrc spec/c/test_merge.c csrc/merge/sn_combine.c csrc/base/sn_err.c -lm
 *
 * Heads are given as full arrays, as the store holds them; each origin's
 * change is its head minus the base. Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge/sn_combine.h"

static int failures;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            failures++;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                           \
            fputc('\n', stderr);                                    \
        }                                                           \
    } while (0)

#define MAXH 64
#define MAXM 64

/* out (float, as the record stores it) = the merge of heads over base. */
static double merge(sn_merge_rule rule, const float *base, const float heads[][MAXM], size_t n,
                    size_t m, float *out)
{
    static double b[MAXM], d[MAXH][MAXM], o[MAXM];
    const double *dp[MAXH];
    for (size_t j = 0; j < m; j++) b[j] = base[j];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < m; j++) d[i][j] = (double)heads[i][j] - (double)base[j];
        dp[i] = d[i];
    }
    double scale = -1;
    sn_err e;
    int rc = sn_merge_combine(rule, b, dp, n, m, o, &scale, &e);
    CHECK(rc == SN_OK, "combine failed: %d", rc);
    for (size_t j = 0; j < m; j++) out[j] = (float)o[j];
    return scale;
}

static int same_bytes(const float *a, const float *b, size_t m)
{
    return memcmp(a, b, m * sizeof *a) == 0;
}

static unsigned long long lcg = 88172645463325252ull;
static float rnd(void)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(lcg >> 11) / 9007199254740992.0 * 2 - 1);
}

static void test_names(void)
{
    CHECK(strcmp(sn_merge_rule_name(SN_RULE_NORMALIZED), "normalized") == 0, "default rule name");
    CHECK(sn_merge_rule_find("sum") == SN_RULE_SUM, "find sum");
    CHECK(sn_merge_rule_find("mean") == SN_RULE_MEAN, "find mean");
    CHECK(sn_merge_rule_find("median") == -1, "unknown rule");
    CHECK(sn_merge_rule_name(SN_MERGE_RULES) == NULL, "no name past the end");
}

/* Two nodes restore one checkpoint (1) over a later write (5): the
 * normalized merge is the checkpoint's bytes; the sum, today's rule,
 * applies the rollback twice (-3). */
static void test_identical_changes(void)
{
    float base[4] = { 5, 5, -2.5f, 0.1f }, heads[2][MAXM], out[4];
    float cp[4] = { 1, 1.0e-3f, 3.75f, 0.3f };
    for (int i = 0; i < 2; i++) memcpy(heads[i], cp, sizeof cp);
    merge(SN_RULE_NORMALIZED, base, heads, 2, 4, out);
    CHECK(same_bytes(out, cp, 4), "normalized: identical changes give the checkpoint's bytes");
    merge(SN_RULE_MEAN, base, heads, 2, 4, out);
    CHECK(same_bytes(out, cp, 4), "mean: identical changes give the checkpoint's bytes");
    merge(SN_RULE_SUM, base, heads, 2, 4, out);
    CHECK(out[0] == -3, "sum: the rollback twice (%g)", out[0]);
    /* many copies of one random change, beside nothing else: once */
    float b2[MAXM], h2[MAXH][MAXM], o2[MAXM];
    for (size_t j = 0; j < MAXM; j++) b2[j] = rnd();
    for (size_t j = 0; j < MAXM; j++) h2[0][j] = b2[j] + rnd() * 0.01f;
    for (size_t i = 1; i < MAXH; i++) memcpy(h2[i], h2[0], sizeof h2[0]);
    double s = merge(SN_RULE_NORMALIZED, b2, h2, MAXH, MAXM, o2);
    CHECK(same_bytes(o2, h2[0], MAXM), "64 identical heads give that head");
    CHECK(s == 1, "one distinct change is taken whole (scale %g)", s);
}

/* Changes to different elements (different data) sum exactly. */
static void test_disjoint_changes(void)
{
    float base[MAXM], heads[8][MAXM], want[MAXM], out[MAXM];
    for (size_t j = 0; j < MAXM; j++) want[j] = base[j] = rnd();
    for (size_t i = 0; i < 8; i++) {
        memcpy(heads[i], base, sizeof base);
        for (size_t j = i; j < MAXM; j += 8) {
            heads[i][j] = base[j] + rnd();
            want[j] = (float)((double)base[j] + ((double)heads[i][j] - (double)base[j]));
        }
    }
    double s = merge(SN_RULE_NORMALIZED, base, heads, 8, MAXM, out);
    CHECK(s == 1, "disjoint: scale exactly 1 (%.17g)", s);
    CHECK(same_bytes(out, want, MAXM), "disjoint: normalized is the exact sum");
    float sum[MAXM];
    merge(SN_RULE_SUM, base, heads, 8, MAXM, sum);
    CHECK(same_bytes(out, sum, MAXM), "disjoint: normalized and sum agree byte for byte");
}

/* N heads that made the same kind of change (close, not identical): about
 * the mean, never the sum; the scale stays within [1/N, 1]. */
static void test_same_data(void)
{
    float base[MAXM], heads[MAXH][MAXM], out[MAXM], mean[MAXM];
    for (size_t j = 0; j < MAXM; j++) base[j] = rnd();
    for (size_t n = 2; n <= MAXH; n *= 2) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < MAXM; j++) heads[i][j] = base[j] + 0.1f * (float)((j % 5) + 1) + 0.001f * rnd();
        double s = merge(SN_RULE_NORMALIZED, base, heads, n, MAXM, out);
        merge(SN_RULE_MEAN, base, heads, n, MAXM, mean);
        CHECK(s >= 1.0 / (double)n && s < 1.02 / (double)n, "n=%zu: scale %g, about 1/n", n, s);
        double worst = 0;
        for (size_t j = 0; j < MAXM; j++) worst = fmax(worst, fabs((double)out[j] - mean[j]));
        CHECK(worst < 1e-4, "n=%zu: normalized within 1e-4 of the mean (%g)", n, worst);
    }
}

/* Opposed changes (a conflict): the ratio is above 1, clamped to the sum. */
static void test_opposed(void)
{
    float base[4] = { 0, 0, 0, 0 }, heads[2][MAXM] = { { 1, 2, 3, 4 }, { -1, -2, -3, -3 } }, out[4];
    double s = merge(SN_RULE_NORMALIZED, base, heads, 2, 4, out);
    CHECK(s == 1, "opposed: scale clamped to 1 (%g)", s);
    CHECK(out[0] == 0 && out[3] == 1, "opposed: the sum (%g %g)", out[0], out[3]);
}

/* Heads that changed nothing, one head, no heads: the base. */
static void test_degenerate(void)
{
    float base[3] = { 1, 2, 3 }, heads[3][MAXM], out[3];
    for (int i = 0; i < 3; i++) memcpy(heads[i], base, sizeof base);
    for (int r = 0; r < SN_MERGE_RULES; r++) {
        merge((sn_merge_rule)r, base, heads, 3, 3, out);
        CHECK(same_bytes(out, base, 3), "%s: unchanged heads give the base", sn_merge_rule_name(r));
        merge((sn_merge_rule)r, base, heads, 0, 3, out);
        CHECK(same_bytes(out, base, 3), "%s: no heads give the base", sn_merge_rule_name(r));
    }
    float one[1][MAXM] = { { 4, 5, 6 } };
    merge(SN_RULE_NORMALIZED, base, one, 1, 3, out);
    CHECK(out[0] == 4 && out[2] == 6, "one head: that head");
}

/* A change shared by two heads of three, beside a different one: the
 * shared one counts once, the other fully. */
static void test_shared_and_different(void)
{
    float base[4] = { 0, 0, 0, 0 }, heads[3][MAXM] = { { 1, 0, 0, 0 }, { 1, 0, 0, 0 }, { 0, 0, 2, 0 } };
    float out[4];
    double s = merge(SN_RULE_NORMALIZED, base, heads, 3, 4, out);
    CHECK(s == 1 && out[0] == 1 && out[2] == 2, "shared once, different fully (%g: %g %g)", s, out[0], out[2]);
    merge(SN_RULE_MEAN, base, heads, 3, 4, out);
    CHECK(fabsf(out[0] - 2.0f / 3) < 1e-7 && fabsf(out[2] - 2.0f / 3) < 1e-7, "mean: %g %g", out[0], out[2]);
}

/* The same inputs give the same bytes, whatever ran before (no state). */
static void test_deterministic(void)
{
    float base[MAXM], heads[5][MAXM], a[MAXM], b[MAXM];
    for (size_t j = 0; j < MAXM; j++) base[j] = rnd();
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < MAXM; j++) heads[i][j] = base[j] + rnd() * 0.5f;
    for (int r = 0; r < SN_MERGE_RULES; r++) {
        merge((sn_merge_rule)r, base, heads, 5, MAXM, a);
        test_opposed();
        merge((sn_merge_rule)r, base, heads, 5, MAXM, b);
        CHECK(same_bytes(a, b, MAXM), "%s: same bytes twice", sn_merge_rule_name(r));
    }
}

int main(void)
{
    test_names();
    test_identical_changes();
    test_disjoint_changes();
    test_same_data();
    test_opposed();
    test_degenerate();
    test_shared_and_different();
    test_deterministic();
    if (failures) {
        fprintf(stderr, "test_merge: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_merge: all passed\n");
    return 0;
}
