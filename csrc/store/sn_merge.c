/* The merge strategy: concurrent heads of one layer combined element-wise
 * into a new write, the base plus each origin's change since it, combined
 * by the merge rule (sn_combine.h: normalized, sum or mean), over their
 * deepest common ancestor (the mean of the heads when none is retained).
 * This file walks the history and loads the values; the arithmetic is
 * sn_combine.c's, which needs no store.
 *
 * A merge is derived, not replicated: each node computes it from the heads
 * it holds, stores it as the current write, and replaces it when the heads
 * change. Replicating merges made as heads trickle in would make every
 * node's intermediate merges new concurrent writes, merged again in turn:
 * a storm that never settles. The heads stay the writes people made until
 * a write on top of the merge (which names them as parents) supersedes
 * them; a checkpoint that pins a merge makes it a real write first.
 *
 * Every node that merges the same heads must build the same record, or
 * the merge would itself be a new conflict: the heads (and the changes,
 * by origin) are taken in ascending order and combined in double by one
 * function (sn_merge_combine), rounded to float once; the record's identity,
 * timestamp, codec and fields derive from the heads alone (hlc one past
 * the newest head, an origin that hashes the heads' identities); and a
 * node merges only once it knows the heads' whole ancestry, which is the
 * same everywhere. It reads no record below the merge window (a base or
 * change deeper than SN_MERGE_WINDOW under the deepest head makes it the
 * mean of the heads): which records a node trimmed there is its own, and
 * within the window a store that syncs trims none (sn_trim.c). */
#include "store/sn_ancestry.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_replica_int.h"
#include "store/sn_weights_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Internal results: the heads' ancestry is not all known here yet (the
 * merge waits, or two nodes knowing different parts would compute different
 * bytes under one identity), or a base record is not held. */
#define INCOMPLETE 2001
#define NO_BASE 2002
#define NO_COMMON 2003   /* the heads share no ancestor: their mean */
#define MAX_BASE_DEPTH 8

/* The maximal common ancestors of the group ids (n) and write last
 * (sn_anc_bases): criss-cross merges have several; their own merge is then
 * the base (as git's recursive merge does), so no change is counted twice. */
static int base_set(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                    size_t n, const sn_ident *last, const sn_hist *fresh, sn_ident **out,
                    size_t *nout, sn_err *e)
{
    sn_anc_status st;
    int rc = sn_anc_bases(s, lk, lklen, ids, n, last, fresh, out, nout, &st, e);
    if (!rc && st == SN_ANC_UNKNOWN) rc = INCOMPLETE;
    if (!rc && st != SN_ANC_DONE) rc = NO_BASE;
    return rc;
}

/* acc += scale * the values of write id (m floats: weights then biases). */
static int add_write(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                     sn_weights_view *given, double scale, size_t m, double *acc, float *tmp,
                     sn_err *e)
{
    sn_weights_view own, *v = given ? given : &own;
    int rc = given ? SN_OK : sn_get_weights_record(s, lk, lklen, id, &own, e);   /* no version: a rank walk */
    if (rc == SN_NOTFOUND) return NO_BASE;
    if (rc) return rc;
    if (v->nw + v->nb != m) rc = NO_BASE;   /* reshaped since */
    if (!rc) rc = sn_weights_view_load(v, tmp, tmp + v->nw, e);
    for (size_t j = 0; !rc && j < m; j++) acc[j] += scale * (double)tmp[j];
    if (!given) sn_weights_view_release(&own);
    return rc;
}

#define OUT_OF_WINDOW 2006   /* a record the merge needs lies below the merge window */

/* Whether write id (its depth read from its history entry) is above the
 * merge window's floor. */
static int in_window(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id, const sn_hist *fresh,
                     uint32_t floor, sn_err *e)
{
    sn_hist h;
    int rc = sn_hist_get_or(s, lk, lklen, id, fresh, &h, e);
    if (rc == SN_NOTFOUND) return INCOMPLETE;
    if (rc) return rc;
    return h.depth > floor ? SN_OK : OUT_OF_WINDOW;
}

/* acc = base + rule(a - base, b - base): the pairwise step of merge_value,
 * a and b in acc and y. */
static int combine_pair(sn_merge_rule rule, const double *base, double *acc, double *y, size_t m,
                        sn_err *e)
{
    for (size_t j = 0; j < m; j++) {
        acc[j] -= base[j];
        y[j] -= base[j];
    }
    const double *d[2] = { acc, y };
    double scale;
    return sn_merge_combine(rule, base, d, 2, m, acc, &scale, e);
}

/* acc = the merge of writes ids (ascending), in double, folded in order:
 * the merge of the first n - 1 and the last, over the base the two share
 * (base_set), by the rule. One base for all n heads would count twice
 * what some of them share and the others do not (three peers, two of
 * which had already merged each other). Returns SN_OK, or NO_COMMON when
 * two heads have no common ancestor (acc is then their sum, for the mean),
 * INCOMPLETE, NO_BASE (more than two: the caller takes the mean) or an
 * error. */
static int merge_value(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                       sn_weights_view *views, size_t n, const sn_hist *fresh, int depth, uint32_t floor,
                       sn_merge_rule rule, size_t m, double *acc, float *tmp, sn_err *e)
{
    int rc = n > 2 ? merge_value(s, lk, lklen, ids, views, n - 1, fresh, depth, floor, rule, m, acc, tmp, e)
                   : add_write(s, lk, lklen, &ids[0], views ? &views[0] : NULL, 1.0, m, acc, tmp, e);
    if (n > 2 && rc == NO_COMMON) rc = NO_BASE;
    sn_ident *bases = NULL;
    size_t nbases = 0;
    if (!rc) rc = base_set(s, lk, lklen, ids, n - 1, &ids[n - 1], fresh, &bases, &nbases, e);
    /* a base below the merge window: the mean, on every node alike */
    for (size_t i = 0; !rc && i < nbases; i++) {
        rc = in_window(s, lk, lklen, &bases[i], fresh, floor, e);
        if (rc == OUT_OF_WINDOW) rc = NO_BASE;
    }
    if (!rc && nbases == 0) {
        rc = n > 2 ? NO_BASE : add_write(s, lk, lklen, &ids[1], views ? &views[1] : NULL, 1.0, m, acc, tmp, e);
        free(bases);
        return rc ? rc : NO_COMMON;
    }
    double *b = rc ? NULL : calloc(2 * (m ? m : 1), sizeof *b), *y = b ? b + (m ? m : 1) : NULL;
    if (!rc && !b) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (!rc) rc = add_write(s, lk, lklen, &ids[n - 1], views ? &views[n - 1] : NULL, 1.0, m, y, tmp, e);
    if (!rc && nbases == 1) rc = add_write(s, lk, lklen, &bases[0], NULL, 1.0, m, b, tmp, e);
    if (!rc && nbases > 1) {
        rc = depth < MAX_BASE_DEPTH
                 ? merge_value(s, lk, lklen, bases, NULL, nbases, fresh, depth + 1, floor, rule, m, b, tmp, e)
                 : NO_BASE;
        if (rc == NO_COMMON) rc = NO_BASE;
    }
    if (!rc) rc = combine_pair(rule, b, acc, y, m, e);
    free(b);
    free(bases);
    return rc;
}

/* ---- the delta merge ----------------------------------------------------------
 * A write with one parent changed the layer by (write - parent); a merge
 * changes nothing of its own (under "sum"). So the sum of the heads is a common
 * ancestor B plus the own change of every write that B has not seen,
 * taken in ascending identity order. That needs no base of bases: peers
 * that keep training and merging each other (build_on_merge makes each
 * write's parent the merge it read) leave criss-crossed histories whose
 * recursive base (merge_value) deepens every round, until it is too deep
 * to rebuild and the merge falls back to the mean. Used first; a write
 * with several parents (one that wrote on a derived merge without making
 * it a write), a tombstone, a record not held or a walk cut short leave it
 * to merge_value. */
#define FALLBACK 2004
#define NOT_HELD 2005   /* the base is known, its record not held here */


/* The deepest common ancestor of the heads (ties: the lowest identity),
 * chosen from the history alone, so every node that knows the same history
 * picks the same one (held or not: one not held leaves it to merge_value). */
static int delta_base(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                      size_t n, const sn_hist *fresh, sn_anc_write *out, sn_err *e)
{
    sn_anc_status st;
    int rc = sn_anc_deepest_common(s, lk, lklen, ids, n, fresh, out, &st, e);
    if (rc) return rc;
    if (st == SN_ANC_UNKNOWN) return INCOMPLETE;
    if (st != SN_ANC_DONE) return FALLBACK;
    return out->flags & SN_HIST_HELD && !(out->flags & SN_HIST_TOMBSTONE) ? SN_OK : NOT_HELD;
}

/* A peer's copy of a materialized merge does not carry the flag; its
 * origin (sn_merge_ident) says what it is: no store's origin starts so. */
static int is_merge(const sn_anc_write *w)
{
    return (w->flags & SN_HIST_MERGE) || strncmp(w->id.origin, "merge-", 6) == 0;
}

static sn_weights_view *head_view(const sn_ident *ids, sn_weights_view *views, size_t n,
                                  const sn_ident *id)
{
    for (size_t i = 0; views && i < n; i++)
        if (sn_same_ident(&ids[i], id)) return &views[i];
    return NULL;
}

/* A head's view, the applied write's (fresh), or NULL: read from disk. */
static sn_weights_view *view_of(const sn_ident *ids, sn_weights_view *views, size_t n,
                                const sn_hist *fresh, sn_weights_view *fresh_view, const sn_ident *id)
{
    sn_weights_view *v = head_view(ids, views, n, id);
    return v ? v : fresh_view && fresh && sn_same_ident(&fresh->id, id) ? fresh_view : NULL;
}

/* Each origin's change since the base, one row of m doubles per origin in
 * ascending origin order: the canonical order every node combines in. */
typedef struct changes {
    size_t n, cap, m;
    char (*origin)[SN_ORIGIN_LEN + 1];
    double **d;
} changes;

static void changes_free(changes *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->d[i]);
    free(c->origin);
    free(c->d);
}

/* The row of origin o, made (zeroed) when new. */
static double *change_of(changes *c, const char *o, sn_err *e)
{
    size_t at = 0;
    while (at < c->n && strcmp(c->origin[at], o) < 0) at++;
    if (at < c->n && strcmp(c->origin[at], o) == 0) return c->d[at];
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        void *x = realloc(c->origin, cap * sizeof *c->origin);
        if (x) c->origin = x;
        void *y = x ? realloc(c->d, cap * sizeof *c->d) : NULL;
        if (y) c->d = y;
        if (!x || !y) { sn_fail(e, SN_ENOMEM, "out of memory"); return NULL; }
        c->cap = cap;
    }
    double *row = calloc(c->m ? c->m : 1, sizeof *row);
    if (!row) { sn_fail(e, SN_ENOMEM, "out of memory"); return NULL; }
    memmove(&c->origin[at + 1], &c->origin[at], (c->n - at) * sizeof *c->origin);
    memmove(&c->d[at + 1], &c->d[at], (c->n - at) * sizeof *c->d);
    snprintf(c->origin[at], sizeof c->origin[at], "%s", o);
    c->d[at] = row;
    c->n++;
    return row;
}

/* acc = the base plus the rule's combination of each origin's change: the
 * own changes of the writes the base has not seen, summed per origin in
 * ascending identity order, so a change two heads share through a merge
 * is one origin's and counts once. *norigins: how many origins changed it.
 * fresh_view: the record of the write being applied (in the batch, not on
 * disk yet), when it is not a head.
 *
 * Under sum a record not held here leaves it to merge_value, which gives
 * the same sum another way. Under a scaled rule it would not (the pairwise
 * scales differ), so the merge waits (INCOMPLETE) until the record
 * arrives, as it waits for unknown ancestry: a node never computes other
 * bytes than a node that holds it. */
static int delta_merge(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                       sn_weights_view *views, size_t n, const sn_hist *fresh,
                       sn_weights_view *fresh_view, uint32_t floor, sn_merge_rule rule, size_t m, double *acc,
                       float *tmp, double *scale, size_t *norigins, sn_err *e)
{
    changes ch = { .m = m };
    sn_anc_write b, *unseen = NULL;
    size_t nunseen = 0;
    sn_anc_status st = SN_ANC_DONE;
    int rc = delta_base(s, lk, lklen, ids, n, fresh, &b, e);
    /* every record read (the base, each change and its parent) within the
     * window, or none: what a node may have let go (sn_trim.c) is decided
     * by depth alone, the same on every node */
    if ((!rc || rc == NOT_HELD) && b.depth <= floor) rc = OUT_OF_WINDOW;
    if (!rc) rc = sn_anc_unseen(s, lk, lklen, ids, n, &b.id, fresh, &unseen, &nunseen, &st, e);
    if (!rc && st == SN_ANC_UNKNOWN) rc = INCOMPLETE;
    if (!rc && st != SN_ANC_DONE) rc = FALLBACK;
    for (size_t i = 0; !rc && i < nunseen; i++)
        if (!is_merge(&unseen[i]) && unseen[i].nparents == 1 && !(unseen[i].flags & SN_HIST_TOMBSTONE)) {
            rc = unseen[i].depth > floor ? SN_OK : OUT_OF_WINDOW;
            if (!rc) rc = in_window(s, lk, lklen, &unseen[i].parent, fresh, floor, e);
        }
    if (!rc) rc = add_write(s, lk, lklen, &b.id, view_of(ids, views, n, fresh, fresh_view, &b.id), 1.0, m, acc, tmp, e);
    for (size_t i = 0; !rc && i < nunseen; i++) {
        const sn_anc_write *w = &unseen[i];
        if (is_merge(w)) continue;
        if (w->nparents != 1 || w->flags & SN_HIST_TOMBSTONE) { rc = FALLBACK; break; }
        double *d = change_of(&ch, w->id.origin, e);
        if (!d) rc = e->code;
        if (!rc) rc = add_write(s, lk, lklen, &w->id, view_of(ids, views, n, fresh, fresh_view, &w->id), 1.0, m, d, tmp, e);
        if (!rc) rc = add_write(s, lk, lklen, &w->parent, view_of(ids, views, n, fresh, fresh_view, &w->parent),
                                -1.0, m, d, tmp, e);
    }
    if (!rc) rc = sn_merge_combine(rule, acc, (const double *const *)ch.d, ch.n, m, acc, scale, e);
    *norigins = ch.n;
    changes_free(&ch);
    free(unseen);
    if (rc == NO_BASE || rc == SN_NOTFOUND || rc == NOT_HELD)
        rc = rule == SN_RULE_SUM ? FALLBACK : INCOMPLETE;
    return rc;
}

/* The merge's identity: one past the newest head, and an origin that is a
 * hash of the heads' identities (two 64-bit FNV-1a, in hex). */
void sn_merge_ident(const sn_ident *heads, size_t n, sn_ident *out)
{
    uint64_t h1 = 14695981039346656037ull, h2 = 1099511628211ull * 31;
    out->hlc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b[SN_ID_LEN];
        sn_ident_put(b, &heads[i]);
        for (size_t j = 0; j < SN_ID_LEN; j++) {
            h1 = (h1 ^ b[j]) * 1099511628211ull;
            h2 = (h2 ^ b[j] ^ 0x5a) * 1099511628211ull;
        }
        if (heads[i].hlc > out->hlc) out->hlc = heads[i].hlc;
    }
    out->hlc++;
    snprintf(out->origin, sizeof out->origin, "merge-%015llx%015llx",
             (unsigned long long)(h1 >> 4), (unsigned long long)(h2 >> 4));
}

/* The heads can be merged when their weights, biases and shapes agree. */
int sn_merge_compatible(const sn_weights_view *v, size_t n)
{
    const sn_value *s0 = sn_map_get(&v[0].rec.fields, "shape");
    for (size_t i = 1; i < n; i++) {
        const sn_value *si = sn_map_get(&v[i].rec.fields, "shape");
        if (v[i].nw != v[0].nw || v[i].nb != v[0].nb || si->type != s0->type) return 0;
        if (si->type == SN_ARRAY) {
            if (si->u.a.n != s0->u.a.n) return 0;
            for (size_t d = 0; d < si->u.a.n; d++)
                if (si->u.a.items[d].u.i != s0->u.a.items[d].u.i) return 0;
        }
    }
    return 1;
}

/* out = the merge of the heads, or their mean when they share no ancestor
 * or a base record is not held (*how says which); INCOMPLETE when the
 * heads' ancestry is not all known yet. */
static int combine(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                   sn_weights_view *v, size_t n, const sn_hist *fresh, sn_weights_view *fresh_view,
                   uint32_t floor, sn_merge_rule rule, float *out, char *how, size_t howlen, sn_err *e)
{
    size_t m = v[0].nw + v[0].nb, origins = 0;
    double *acc = calloc(m ? m : 1, sizeof *acc), scale = 1;
    float *tmp = malloc((m ? m : 1) * sizeof *tmp);
    int rc = acc && tmp ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    if (!rc) rc = delta_merge(s, lk, lklen, ids, v, n, fresh, fresh_view, floor, rule, m, acc, tmp, &scale, &origins, e);
    int out_of_window = rc == OUT_OF_WINDOW;
    if (out_of_window) rc = NO_BASE;   /* the mean of the heads, whose records every node holds */
    int pairwise = rc == FALLBACK;
    if (pairwise) {
        memset(acc, 0, m * sizeof *acc);
        rc = merge_value(s, lk, lklen, ids, v, n, fresh, 0, floor, rule, m, acc, tmp, e);
    }
    int mean = rc == NO_COMMON || rc == NO_BASE;
    if (rc == NO_BASE) {
        memset(acc, 0, m * sizeof *acc);
        rc = SN_OK;
        for (size_t i = 0; !rc && i < n; i++) rc = add_write(s, lk, lklen, &ids[i], &v[i], 1.0, m, acc, tmp, e);
    }
    if (rc == NO_COMMON) rc = SN_OK;
    for (size_t j = 0; !rc && j < m; j++) out[j] = (float)(mean ? acc[j] / (double)n : acc[j]);
    /* the record's "merge" field: part of its bytes, so only what every
     * node computes alike */
    const char *r = sn_merge_rule_name(rule);
    if (mean && out_of_window)
        snprintf(how, howlen, "mean of %zu heads (their base is %d or more writes deep)", n, SN_MERGE_WINDOW);
    else if (mean) snprintf(how, howlen, "mean of %zu heads (no common ancestor retained)", n);
    else if (pairwise) snprintf(how, howlen, "base + %zu heads, %s, pairwise", n, r);
    else snprintf(how, howlen, "base + %zu heads, %s over %zu origins (scale %.6g)", n, r, origins, scale);
    free(acc);
    free(tmp);
    return rc;
}

static int merged_map(sn_arena *a, const unsigned char *lk, size_t lklen, const sn_weights_view *v,
                      size_t n, const sn_ident *id, uint32_t depth, const char *how, sn_value *map,
                      sn_err *e)
{
    int rc = sn_record_map(&sn_schema_weights, a, map, e);
    const char *origin = rc ? NULL : sn_arena_strdup(a, id->origin, SN_ORIGIN_LEN);
    const char *info = origin ? sn_arena_strdup(a, how, strlen(how)) : NULL;
    if (!rc && !info) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (rc) return rc;
    double ts = 0;
    for (size_t i = 0; i < n; i++) {
        double t = sn_map_get(&v[i].rec.fields, "timestamp")->u.n;
        if (t > ts) ts = t;
    }
    sn_map_set(map, "expert_id", sn_str((const char *)lk, lklen - 5));
    sn_map_set(map, "layer", sn_int((int64_t)sn_get_be(lk + lklen - 4, 4)));
    sn_map_set(map, "version", sn_int(depth));
    sn_map_set(map, "timestamp", sn_num(ts));
    sn_map_set(map, "hlc", sn_int((int64_t)id->hlc));
    sn_map_set(map, "origin", sn_str(origin, SN_ORIGIN_LEN));
    sn_map_set(map, "n_weights", sn_int((int64_t)v[0].nw));
    sn_map_set(map, "n_biases", sn_int((int64_t)v[0].nb));
    sn_map_set(map, "shape", *sn_map_get(&v[0].rec.fields, "shape"));
    sn_map_set(map, "merge", sn_str(info, strlen(info)));
    return SN_OK;
}

int sn_merge_heads(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                   const sn_ident *ids, sn_weights_view *v, const uint32_t *depths, size_t n,
                   const sn_hist *fresh, sn_weights_view *fresh_view, sn_merge_rule rule,
                   sn_ident *out, sn_err *e)
{
    sn_hist h;
    memset(&h, 0, sizeof h);
    sn_merge_ident(ids, n, &h.id);
    h.flags = SN_HIST_HELD | SN_HIST_MERGE;
    h.nparents = n;
    for (size_t i = 0; i < n; i++) {
        h.parents[i] = ids[i];
        if (depths[i] + 1 > h.depth) h.depth = depths[i] + 1;
    }
    size_t m = v[0].nw + v[0].nb;
    float *w = malloc((m ? m : 1) * sizeof *w);
    char how[128];
    int rc = w ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    /* the merge window's floor: the deepest head's depth (the merge's, less
     * one) less SN_MERGE_WINDOW (sn_history.h) */
    uint32_t top = h.depth - 1, floor = top > SN_MERGE_WINDOW ? top - SN_MERGE_WINDOW : 0;
    if (!rc) rc = combine(s, lk, lklen, ids, v, n, fresh, fresh_view, floor, rule, w, how, sizeof how, e);
    if (rc == INCOMPLETE) rc = SN_NOTFOUND;   /* not yet: the caller picks a current meanwhile */
    if (rc) { free(w); return rc; }
    /* the newest head's codec, so every node encodes the same bytes */
    sn_codec codec = v[n - 1].rec.codec;
    unsigned char key[SN_WKEY_MAX];
    size_t klen = sn_wkey_id(key, lk, lklen, &h.id);
    sn_arena a;
    sn_arena_init(&a);
    sn_value map;
    rc = merged_map(&a, lk, lklen, v, n, &h.id, h.depth, how, &map, e);
    sn_part parts[2] = { { w, v[0].nw * sizeof(float) }, { w + v[0].nw, v[0].nb * sizeof(float) } };
    if (!rc) rc = sn_batch_put_record(b, CF_WEIGHTS, key, klen, SN_REC_WEIGHTS, &map, parts, 2, codec, e);
    sn_arena_free(&a);
    free(w);
    if (!rc && h.id.hlc > s->last_hlc) s->last_hlc = h.id.hlc;
    if (!rc) *out = h.id;
    return rc;
}

int sn_merge_materialize(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                         const sn_ident *id, sn_err *e)
{
    sn_hist h;
    memset(&h, 0, sizeof h);
    h.id = *id;
    h.flags = SN_HIST_HELD | SN_HIST_MERGE;
    h.depth = 1;
    /* the derived merge is always the merge of the layer's current heads,
     * which are never more than a merge names (sn_history.h) */
    sn_ident heads[SN_MAX_HEADS];
    size_t n;
    int rc = sn_heads_load(s, lk, lklen, heads, &n, e);
    if (!rc && n > SN_MAX_PARENTS)
        rc = sn_fail(e, SN_EIO, "a merge of more than %d heads", SN_MAX_PARENTS);
    h.nparents = rc ? 0 : n;
    if (!rc) memcpy(h.parents, heads, n * sizeof *heads);
    for (size_t i = 0; !rc && i < h.nparents; i++) {
        sn_hist p;
        rc = sn_hist_get(s, lk, lklen, &h.parents[i], &p, e);
        if (!rc && p.depth + 1 > h.depth) h.depth = p.depth + 1;
    }
    unsigned char key[SN_WKEY_MAX];
    size_t klen = sn_wkey_id(key, lk, lklen, id);
    if (!rc) rc = sn_hist_add(s, b, lk, lklen, &h, heads, &n, e);
    if (!rc) rc = sn_replica_note_parents(b, key, klen, id->hlc, h.parents, h.nparents, h.depth, e);
    return rc;
}
