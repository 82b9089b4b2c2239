/* The merge rules (sn_combine.h). Why "normalized" is the default: N nodes
 * training on the same data make nearly the same change, and summing them
 * is one node at N times the learning rate (the router's norm grew 2.4x
 * with 8 nodes and unrelated routings were lost); nodes training on
 * different data make near-orthogonal changes, and averaging them divides
 * each by N (34 rounds instead of 6 to learn 6 queries). The ratio
 * Σ‖δ_i‖² / ‖Σδ‖² is 1/N for N equal changes and 1 for orthogonal ones,
 * so one rule covers both; the clamp keeps anti-correlated changes (a
 * conflict, ratio above 1) at the plain sum. */
#include "merge/sn_combine.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[SN_MERGE_RULES] = { "normalized", "sum", "mean" };

const char *sn_merge_rule_name(sn_merge_rule r)
{
    return (unsigned)r < SN_MERGE_RULES ? names[r] : NULL;
}

int sn_merge_rule_find(const char *name)
{
    for (int i = 0; i < SN_MERGE_RULES; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* keep[i]: delta i is not byte-identical to an earlier one. Doubles are
 * compared as bytes: two nodes that computed one change from the same
 * records computed the same bits. */
static size_t distinct(const double *const *deltas, size_t n, size_t m, unsigned char *keep)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = 1;
        for (size_t k = 0; k < i && keep[i]; k++)
            if (keep[k] && memcmp(deltas[i], deltas[k], m * sizeof **deltas) == 0) keep[i] = 0;
        kept += keep[i];
    }
    return kept;
}

int sn_merge_combine(sn_merge_rule rule, const double *base, const double *const *deltas,
                     size_t n, size_t m, double *out, double *scale, sn_err *e)
{
    unsigned char *keep = malloc(n ? n : 1);
    if (!keep) return sn_fail(e, SN_ENOMEM, "out of memory");
    size_t kept = n;
    if (rule == SN_RULE_NORMALIZED) kept = distinct(deltas, n, m, keep);
    else memset(keep, 1, n);
    /* the norms, each element's squares in the same order for both */
    double num = 0, den = 0;
    for (size_t j = 0; j < m; j++) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++) {
            if (!keep[i]) continue;
            sum += deltas[i][j];
            sq += deltas[i][j] * deltas[i][j];
        }
        num += sq;
        den += sum * sum;
    }
    double s = 1;
    if (rule == SN_RULE_MEAN && n) s = 1.0 / (double)n;
    if (rule == SN_RULE_NORMALIZED && kept > 1 && den > 0) {
        s = num / den;
        if (s > 1) s = 1;
        if (s < 1.0 / (double)kept) s = 1.0 / (double)kept;
    }
    /* the sum again, in the same order (out may be base) */
    for (size_t j = 0; j < m; j++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            if (keep[i]) sum += deltas[i][j];
        out[j] = base[j] + (s == 1 ? sum : s * sum);
    }
    free(keep);
    *scale = s;
    return SN_OK;
}
