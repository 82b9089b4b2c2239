/* The conflict strategies, one row each (sn_replica.h): how a strategy
 * picks the current head among concurrent ones, and whether it combines
 * weights heads instead (by the merge rule, sn_combine.h). The binding
 * lists the named rows as core.p2p_limits.conflict_strategies, which the
 * config check, the CLI and the specs read: a new strategy is a row here,
 * its docs, and (if it combines) a rule in sn_combine.c with its C test. */
#include "store/sn_replica_int.h"

#include <string.h>

static int latest_beats(const sn_head *a, const sn_head *b)
{
    if (a->id.hlc != b->id.hlc) return a->id.hlc > b->id.hlc;
    return strcmp(a->id.origin, b->id.origin) > 0;
}

static int pick_none(const sn_resolver *r, const sn_head *a, const sn_head *b)
{
    (void)r, (void)a, (void)b;
    return -1;
}

static int pick_highest_version(const sn_resolver *r, const sn_head *a, const sn_head *b)
{
    (void)r;
    return a->version != b->version ? a->version > b->version : -1;
}

/* does not converge: each node keeps its own */
static int pick_local(const sn_resolver *r, const sn_head *a, const sn_head *b)
{
    (void)r;
    return a->local != b->local ? a->local : -1;
}

static int pick_custom(const sn_resolver *r, const sn_head *a, const sn_head *b)
{
    return r->fn ? r->fn(r->ud, a, b) : -1;
}

const sn_strategy_row sn_strategy_table[] = {
    { "latest_timestamp", SN_RESOLVE_LATEST, pick_none, 0 },
    { "merge", SN_RESOLVE_MERGE, pick_none, 1 },   /* other records, other shapes: latest */
    { "highest_version", SN_RESOLVE_HIGHEST_VERSION, pick_highest_version, 0 },
    { "prefer_local", SN_RESOLVE_PREFER_LOCAL, pick_local, 0 },
    { NULL, SN_RESOLVE_CUSTOM, pick_custom, 0 },
};
const size_t sn_strategy_count = sizeof sn_strategy_table / sizeof sn_strategy_table[0];

const sn_strategy_row *sn_strategy_of(sn_strategy s)
{
    for (size_t i = 0; i < sn_strategy_count; i++)
        if (sn_strategy_table[i].strategy == s) return &sn_strategy_table[i];
    return &sn_strategy_table[0];
}

int sn_resolver_beats(const sn_resolver *r, const sn_head *a, const sn_head *b)
{
    int w = r ? sn_strategy_of(r->strategy)->picks(r, a, b) : -1;
    return w >= 0 ? w : latest_beats(a, b);
}

sn_merge_rule sn_resolver_rule(const sn_resolver *r, const unsigned char *lk, size_t lklen)
{
    if (!r) return SN_RULE_NORMALIZED;
    int rule = -1;
    if (r->rule_fn && lklen >= 5)
        rule = r->rule_fn(r->ud, (const char *)lk, lklen - 5, (uint32_t)sn_get_be(lk + lklen - 4, 4));
    return rule >= 0 && rule < SN_MERGE_RULES ? (sn_merge_rule)rule : r->merge_rule;
}
