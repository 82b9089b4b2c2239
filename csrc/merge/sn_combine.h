/* The merge arithmetic, store-free: how concurrent changes to one layer
 * combine into one array. The store walks the history and hands over the
 * values (sn_merge.c); this file sees only floats, so the rules are tested
 * without RocksDB (spec/c/test_merge.c), as the sync engine is tested
 * without sockets.
 *
 * Inputs: the common base B (m values) and n changes δ_i (each origin's
 * change since B, m values each), in a canonical order the caller fixes
 * (ascending origin), so every node runs the same float operations in the
 * same order and writes the same bytes. Everything is summed in double and
 * rounded to float once, by the caller. */
#ifndef SN_COMBINE_H
#define SN_COMBINE_H

#include "base/sn_types.h"

/* The rules, in the order core.p2p_limits.merge_rules lists them; the
 * first is the default (a zeroed config selects it). */
typedef enum sn_merge_rule {
    SN_RULE_NORMALIZED = 0,   /* B + s·Σδ, s = clamp(Σ‖δ_i‖² / ‖Σδ‖², 1/N, 1); equal δ once */
    SN_RULE_SUM,              /* B + Σδ: every change fully, a shared one too */
    SN_RULE_MEAN,             /* B + Σδ / n (FedAvg) */
    SN_MERGE_RULES
} sn_merge_rule;

/* The rule's name; -1 from find for an unknown name. */
SN_HIDDEN const char *sn_merge_rule_name(sn_merge_rule r);
SN_HIDDEN int sn_merge_rule_find(const char *name);

/* out[j] = base[j] + the rule's combination of deltas[0..n)[j] (each m
 * doubles). out may be base. *scale: the factor applied to the sum of the
 * distinct changes (1 for sum, 1/n for mean). Under "normalized" a change
 * byte-identical to an earlier one is left out (two nodes that made the
 * same change, e.g. restored one checkpoint, count it once), and changes
 * with disjoint support give s = 1 exactly (the same squares are summed
 * in the same order for both norms). SN_ENOMEM or SN_OK. */
SN_HIDDEN int sn_merge_combine(sn_merge_rule rule, const double *base, const double *const *deltas,
                               size_t n, size_t m, double *out, double *scale, sn_err *e);

#endif
