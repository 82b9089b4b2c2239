/* The merge strategy: concurrent heads of one layer combined element-wise
 * into a new write, base + sum(head - base), over their nearest common
 * ancestor (the mean of the heads when none is retained).
 *
 * Every node that merges the same heads must build the same record, or
 * the merge would itself be a new conflict: the heads are taken in
 * ascending identity order and summed in double; the record's identity,
 * timestamp, codec and fields derive from the heads alone (hlc one past
 * the newest head, an origin that hashes the heads' identities). */
#include "store/sn_history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Walking back further than this finds no base worth its cost. */
#define MAX_ANCESTORS 4096

typedef struct idset { sn_ident *v; size_t n, cap; } idset;

static int idset_find(const idset *s, const sn_ident *id, size_t *at)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = sn_ident_cmp(&s->v[mid], id);
        if (c == 0) { *at = mid; return 1; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    *at = lo;
    return 0;
}

static int idset_add(idset *s, const sn_ident *id, int *added, sn_err *e)
{
    size_t at;
    *added = 0;
    if (idset_find(s, id, &at)) return SN_OK;
    if (SN_GROW(s->v, s->n, s->cap, 64, e)) return e->code;
    memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof *s->v);
    s->v[at] = *id;
    s->n++;
    *added = 1;
    return SN_OK;
}

/* Every ancestor of head that the history names (bounded). */
static int ancestors(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *head,
                     const sn_hist *fresh, idset *out, sn_err *e)
{
    idset todo = { 0 };
    int added, rc = idset_add(&todo, head, &added, e);
    while (!rc && todo.n && out->n < MAX_ANCESTORS) {
        sn_ident id = todo.v[--todo.n];
        sn_hist h;
        rc = sn_hist_get_or(s, lk, lklen, &id, fresh, &h, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; continue; }
        for (size_t i = 0; !rc && i < h.nparents; i++) {
            rc = idset_add(out, &h.parents[i], &added, e);
            if (!rc && added) rc = idset_add(&todo, &h.parents[i], &added, e);
        }
    }
    free(todo.v);
    return rc;
}

/* The newest ancestor common to every head whose record is held; found = 0
 * when there is none. */
static int find_base(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *heads,
                     size_t n, const sn_hist *fresh, sn_ident *base, int *found, sn_err *e)
{
    idset common = { 0 };
    *found = 0;
    int rc = ancestors(s, lk, lklen, &heads[0], fresh, &common, e);
    for (size_t k = 1; !rc && k < n && common.n; k++) {
        idset other = { 0 };
        rc = ancestors(s, lk, lklen, &heads[k], fresh, &other, e);
        size_t kept = 0, at;
        for (size_t i = 0; !rc && i < common.n; i++)
            if (idset_find(&other, &common.v[i], &at)) common.v[kept++] = common.v[i];
        common.n = kept;
        free(other.v);
    }
    for (size_t i = common.n; !rc && i-- > 0 && !*found;) {
        sn_hist h;
        int r = sn_hist_get(s, lk, lklen, &common.v[i], &h, e);
        if (r && r != SN_NOTFOUND) rc = r;
        else if (!r && (h.flags & SN_HIST_HELD)) { *base = common.v[i]; *found = 1; }
    }
    free(common.v);
    return rc;
}

/* The merge's identity: one past the newest head, and an origin that is a
 * hash of the heads' identities (two 64-bit FNV-1a, in hex). */
static void merge_ident(const sn_ident *heads, size_t n, sn_ident *out)
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

/* acc = base + sum(head - base) (or the mean of the heads), in double. */
static int combine(sn_store *s, const unsigned char *lk, size_t lklen, sn_weights_view *v, size_t n,
                   const sn_ident *base, int have_base, float *out, sn_err *e)
{
    size_t m = v[0].nw + v[0].nb;
    double *acc = calloc(m ? m : 1, sizeof *acc);
    float *tmp = malloc((m ? m : 1) * sizeof *tmp);
    int rc = acc && tmp ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    if (!rc && have_base) {
        sn_weights_view bv;
        rc = sn_get_weights_by_id(s, lk, lklen, base, &bv, e);
        if (rc == SN_OK) {
            if (bv.nw == v[0].nw && bv.nb == v[0].nb) {   /* not reshaped since */
                rc = sn_weights_view_load(&bv, tmp, tmp + bv.nw, e);
                for (size_t j = 0; !rc && j < m; j++) acc[j] = (1.0 - (double)n) * tmp[j];
            } else {
                have_base = 0;
            }
            sn_weights_view_release(&bv);
        } else if (rc == SN_NOTFOUND) {
            have_base = 0;
            rc = SN_OK;
        }
    }
    for (size_t i = 0; !rc && i < n; i++) {
        rc = sn_weights_view_load(&v[i], tmp, tmp + v[i].nw, e);
        for (size_t j = 0; !rc && j < m; j++) acc[j] += tmp[j];
    }
    for (size_t j = 0; !rc && j < m; j++) out[j] = (float)(have_base ? acc[j] : acc[j] / (double)n);
    free(acc);
    free(tmp);
    return rc ? rc : have_base ? 1 : 0;
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
                   const sn_hist *fresh, sn_ident *heads, size_t *nheads, sn_ident *out, sn_err *e)
{
    sn_hist h;
    memset(&h, 0, sizeof h);
    merge_ident(ids, n, &h.id);
    h.flags = SN_HIST_HELD | SN_HIST_MERGE;
    h.nparents = n;
    for (size_t i = 0; i < n; i++) {
        h.parents[i] = ids[i];
        if (depths[i] + 1 > h.depth) h.depth = depths[i] + 1;
    }
    sn_ident base;
    int have_base;
    int rc = find_base(s, lk, lklen, ids, n, fresh, &base, &have_base, e);
    size_t m = v[0].nw + v[0].nb;
    float *w = rc ? NULL : malloc((m ? m : 1) * sizeof *w);
    if (!rc && !w) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (!rc) rc = combine(s, lk, lklen, v, n, &base, have_base, w, e);
    if (rc < 0 || rc > 1) { free(w); return rc; }
    char how[128];
    if (rc == 1)
        snprintf(how, sizeof how, "base %.8s@%llu + %zu heads", base.origin,
                 (unsigned long long)base.hlc, n);
    else
        snprintf(how, sizeof how, "mean of %zu heads (no common ancestor retained)", n);
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
    if (!rc) rc = sn_hist_add(s, b, lk, lklen, &h, heads, nheads, e);
    if (!rc) rc = sn_replica_note_parents(b, key, klen, h.id.hlc, h.parents, h.nparents, e);
    if (!rc && h.id.hlc > s->last_hlc) s->last_hlc = h.id.hlc;
    if (!rc) *out = h.id;
    return rc;
}
