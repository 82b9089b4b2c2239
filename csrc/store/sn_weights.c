/* Versioned weight records in the neural_weights column family. */
#include "store/sn_batch.h"
#include "store/sn_clock.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"
#include "store/sn_record_io.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"
#include "store/sn_weights_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_floats(const float *p, size_t n, const char *what, sn_err *e)
{
    if (n > SN_MAX_FLOATS)
        return sn_fail(e, SN_EARG, "%s: %zu values exceed the cap of %u", what, n, SN_MAX_FLOATS);
    /* a NaN stored now silently poisons every later forward pass */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return sn_fail(e, SN_EARG, "%s[%zu] is %s", what, i + 1,
                           isnan(p[i]) ? "NaN" : "infinite");
    return SN_OK;
}

static int check_layer(int64_t layer, sn_err *e)
{
    if (layer < 0) return sn_fail(e, SN_EARG, "layer must not be negative");
    if (layer > SN_MAX_LAYER) return sn_fail(e, SN_EARG, "layer must be at most %u", SN_MAX_LAYER);
    return SN_OK;
}

/* The layer key of (expert, layer) after checking both, as every reader of
 * one layer starts. */
static int checked_layer_key(const char *expert, size_t len, int64_t layer,
                             unsigned char lk[SN_LAYER_KEY_MAX], size_t *lklen, sn_err *e)
{
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (!rc) rc = check_layer(layer, e);
    if (!rc) *lklen = sn_layer_key(lk, expert, len, (uint32_t)layer);
    return rc;
}

/* The parents of a local write over heads (ascending, n of them): all of
 * them when a write can name them. Past SN_MAX_PARENTS it names the
 * deepest it can while leaving more than SN_MAX_PARENTS heads, so every
 * node resolves the layer the same way (the resolver's pick, sn_history.h)
 * and the write, deepest and newest, is that pick; heads fold by up to
 * SN_MAX_PARENTS - 1 a write down to SN_MAX_PARENTS + 1. */
static int fold_heads(const sn_ident *heads, const uint32_t *depth, size_t n, sn_hist *h)
{
    size_t k = n <= SN_MAX_PARENTS ? n : n - SN_MAX_PARENTS;
    if (k > SN_MAX_PARENTS) k = SN_MAX_PARENTS;
    if (k == 0) k = 1;
    /* the k deepest (newest on a tie), kept in ascending identity order */
    unsigned char pick[SN_MAX_HEADS] = { 0 };
    for (size_t got = 0; got < k; got++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!pick[i] && (best == n || depth[i] > depth[best] ||
                             (depth[i] == depth[best] && sn_ident_cmp(&heads[i], &heads[best]) > 0)))
                best = i;
        pick[best] = 1;
    }
    h->nparents = 0;
    for (size_t i = 0; i < n; i++) {
        if (!pick[i]) continue;
        h->parents[h->nparents++] = heads[i];
        if (depth[i] + 1 > h->depth) h->depth = depth[i] + 1;
    }
    return h->nparents < n;
}

/* What a new local write of the layer supersedes and which number it gets:
 * the heads (or the batch's own last write), their deepest history, and
 * how many writes the store knows. */
int sn_layer_before(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                        sn_hist *h, uint64_t *known, int *beside, sn_err *e)
{
    sn_pending *p = sn_pending_find(b, lk, lklen);
    h->depth = 1;
    if (p) {
        h->nparents = 1;
        h->parents[0] = p->id;
        h->depth = p->depth + 1;
        *known = p->version;
        return SN_OK;
    }
    *known = 0;
    sn_ident heads[SN_MAX_HEADS];
    uint32_t depth[SN_MAX_HEADS];
    size_t n;
    int rc = sn_heads_load(s, lk, lklen, heads, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        sn_hist ph;
        rc = sn_hist_get(s, lk, lklen, &heads[i], &ph, e);
        depth[i] = rc ? 0 : ph.depth;
    }
    if (!rc && fold_heads(heads, depth, n, h) && beside) *beside = 1;
    if (!rc) rc = sn_hist_count(s, lk, lklen, known, e);
    return rc;
}

int sn_note_pending(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_hist *h,
                        uint64_t version, sn_err *e)
{
    sn_pending *p = sn_pending_find(b, lk, lklen);
    if (!p) {
        p = calloc(1, sizeof *p + lklen);
        if (!p) return sn_fail(e, SN_ENOMEM, "out of memory");
        p->prefix_len = lklen;
        memcpy(p->prefix, lk, lklen);
        p->next = b->pending;
        b->pending = p;
    }
    size_t cap = p->cap;
    if (SN_GROW(p->writes, p->nwrites, cap, 4, e) || SN_RESIZE(p->versions, cap, e)) return e->code;
    p->cap = cap;
    p->writes[p->nwrites] = *h;
    p->versions[p->nwrites++] = version;
    p->id = h->id;
    p->depth = h->depth;
    p->version = version;
    return SN_OK;
}

static int weights_map(sn_arena *a, const sn_weights_in *in, uint64_t version, const sn_ident *id,
                       sn_value *map, sn_err *e)
{
    sn_value shape = sn_nil();
    int rc = sn_record_map(&sn_schema_weights, a, map, e);
    if (!rc && in->nshape) {
        shape.type = SN_ARRAY;
        shape.u.a.n = in->nshape;
        shape.u.a.items = sn_arena_alloc(a, in->nshape * sizeof(sn_value));
        if (!shape.u.a.items) rc = sn_fail(e, SN_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < in->nshape; i++) shape.u.a.items[i] = sn_int(in->shape[i]);
    }
    const char *origin = rc ? NULL : sn_arena_strdup(a, id->origin, SN_ORIGIN_LEN);
    if (!rc && !origin) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (rc) return rc;
    sn_map_set(map, "expert_id", sn_str(in->expert, in->expert_len));
    sn_map_set(map, "layer", sn_int(in->layer));
    sn_map_set(map, "version", sn_int((int64_t)version));
    sn_map_set(map, "timestamp", sn_num(sn_now()));
    sn_map_set(map, "hlc", sn_int((int64_t)id->hlc));
    sn_map_set(map, "origin", sn_str(origin, SN_ORIGIN_LEN));
    sn_map_set(map, "n_weights", sn_int((int64_t)in->nw));
    sn_map_set(map, "n_biases", sn_int((int64_t)in->nb));
    sn_map_set(map, "shape", shape);
    return SN_OK;
}

/* build_on_merge: the writer read the current write and built on it, so
 * that write, not every head, is the new one's parent. A derived merge
 * (sn_merge.c) is made a real write first (as a checkpoint pin does): a
 * later merge of this write with a peer's concurrent one then sums each
 * write's own change since their common base (sn_merge.c delta_sum).
 * With the heads as parents instead, peers that keep training and merging
 * each other leave criss-crossed histories whose base is a merge of
 * merges, deeper every round, until it falls back to the mean; and a
 * current write picked among heads whose merge is waiting for ancestry
 * would supersede heads the writer never saw the weights of. The new write
 * is current: it is the newest, which is what the merge strategy shows
 * while it waits, and what latest_timestamp picks. *done: h holds the
 * parent and depth, *known how many writes the store knows (the merge
 * counted); BUILT_ON_MERGE or BUILT_BESIDE_HEADS (other heads stay, so
 * nothing may be trimmed: they are concurrent with the new write). Nothing
 * happens when the current write is the only head, or the batch already
 * wrote the layer. */
enum { BUILT_ON_MERGE = 1, BUILT_BESIDE_HEADS = 2 };

static int build_on_merge(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                          sn_hist *h, uint64_t *known, int *done, sn_err *e)
{
    *done = 0;
    if (sn_pending_find(b, lk, lklen)) return SN_OK;
    sn_ident cur, heads[SN_MAX_HEADS];
    sn_hist ch;
    size_t n;
    int rc = sn_current_get(s, lk, lklen, &cur, e);
    if (rc == SN_NOTFOUND) return SN_OK;
    if (!rc) rc = sn_hist_get(s, lk, lklen, &cur, &ch, e);
    if (rc == SN_OK) {   /* a real write: its own parent when other heads wait */
        rc = sn_heads_load(s, lk, lklen, heads, &n, e);
        if (rc || n < 2) return rc;
        rc = sn_hist_count(s, lk, lklen, known, e);
        h->nparents = 1;
        h->parents[0] = cur;
        h->depth = ch.depth + 1;
        *done = rc ? 0 : BUILT_BESIDE_HEADS;
        return rc;
    }
    if (rc != SN_NOTFOUND) return rc;
    uint32_t depth = 1;   /* the merge's, as sn_merge_materialize counts it */
    rc = sn_heads_load(s, lk, lklen, heads, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = sn_hist_get(s, lk, lklen, &heads[i], &ch, e);
        if (!rc && ch.depth + 1 > depth) depth = ch.depth + 1;
    }
    if (!rc) rc = sn_merge_materialize(s, b, lk, lklen, &cur, e);
    if (!rc) rc = sn_hist_count(s, lk, lklen, known, e);
    if (rc) return rc;
    (*known)++;
    h->nparents = 1;
    h->parents[0] = cur;
    h->depth = depth + 1;
    *done = BUILT_ON_MERGE;
    return SN_OK;
}

/* A local write supersedes every head it saw, so it is the one head after
 * it and current under every strategy. */
static int put_in_batch(sn_store *s, sn_batch *b, const sn_weights_in *in, uint64_t *version,
                        sn_err *e)
{
    unsigned char lk[SN_LAYER_KEY_MAX], key[SN_WKEY_MAX];
    size_t lklen = sn_layer_key(lk, in->expert, in->expert_len, (uint32_t)in->layer);
    sn_hist h;
    memset(&h, 0, sizeof h);
    uint64_t known;
    int on_merge = 0;
    int rc = in->build_on_merge ? build_on_merge(s, b, lk, lklen, &h, &known, &on_merge, e) : SN_OK;
    int beside = 0;
    if (!rc && !on_merge) rc = sn_layer_before(s, b, lk, lklen, &h, &known, &beside, e);
    if (rc) return rc;
    h.id.hlc = sn_next_hlc(s);
    memcpy(h.id.origin, s->origin, SN_ORIGIN_LEN + 1);
    h.flags = SN_HIST_HELD;
    *version = known + 1;
    size_t klen = sn_wkey_id(key, lk, lklen, &h.id);
    sn_arena a;
    sn_arena_init(&a);
    sn_value map;
    rc = weights_map(&a, in, *version, &h.id, &map, e);
    if (!rc) {
        sn_part parts[2] = {
            { (void *)in->w, in->nw * sizeof(float) },
            { (void *)in->b, in->nb * sizeof(float) },
        };
        rc = sn_batch_put_record(b, CF_WEIGHTS, key, klen, SN_REC_WEIGHTS, &map, parts, 2,
                                 s->opts.codec, e);
    }
    sn_arena_free(&a);
    sn_ident heads[SN_MAX_HEADS];
    size_t nheads = h.nparents;
    memcpy(heads, h.parents, nheads * sizeof *heads);
    if (!rc) rc = sn_hist_add(s, b, lk, lklen, &h, heads, &nheads, e);
    /* sn_current_set would take the merge just made a write (not on disk
     * yet) for a derived one and delete its record */
    if (!rc && on_merge) sn_current_put(b, lk, lklen, &h.id);
    else if (!rc) rc = sn_current_set(s, b, lk, lklen, &h.id, e);
    if (!rc) rc = sn_replica_note_parents(b, key, klen, h.id.hlc, h.parents, h.nparents, h.depth, e);
    if (!rc) rc = sn_note_pending(b, lk, lklen, &h, *version, e);
    sn_pending *p = rc ? NULL : sn_pending_find(b, lk, lklen);
    if (p && (on_merge == BUILT_BESIDE_HEADS || beside)) {
        p->beside_heads = 1;
        /* the rank cache takes a local write for the one head after it */
        sn_rank_taint(b, lk, lklen);
    }
    /* trimming assumes the batch's writes superseded every head on disk */
    if (p && !p->beside_heads) rc = sn_trim_versions(s, b, lk, lklen, e);
    return rc;
}

int sn_put_weights(sn_store *s, sn_batch *given, const sn_weights_in *in, uint64_t *version,
                   sn_err *e)
{
    int rc = sn_check_id(in->expert, in->expert_len, "expert_id", e);
    if (!rc) rc = check_layer(in->layer, e);
    if (!rc && in->nw == 0) rc = sn_fail(e, SN_EARG, "weights must not be empty");
    if (!rc) rc = check_floats(in->w, in->nw, "weights", e);
    if (!rc) rc = check_floats(in->b, in->nb, "biases", e);
    if (!rc && in->nshape > SN_MAX_SHAPE_DIMS)
        rc = sn_fail(e, SN_EARG, "shape has more than %u dimensions", SN_MAX_SHAPE_DIMS);
    if (!rc && in->nshape) {
        uint64_t prod = 1;
        for (size_t i = 0; i < in->nshape && !rc; i++) {
            if (in->shape[i] <= 0 || in->shape[i] > SN_MAX_FLOATS)
                rc = sn_fail(e, SN_EARG, "shape[%zu] must be a positive size", i + 1);
            else
                prod *= (uint64_t)in->shape[i];
            if (prod > SN_MAX_FLOATS) rc = sn_fail(e, SN_EARG, "shape is too large");
        }
        if (!rc && prod != in->nw)
            rc = sn_fail(e, SN_EARG, "shape describes %llu weights but %zu were given",
                         (unsigned long long)prod, in->nw);
    }
    if (rc) return rc;
    sn_batch *b = sn_batch_or_temp(s, given, e);
    if (!b) return e->code;
    b->rank_local++;
    rc = put_in_batch(s, b, in, version, e);
    b->rank_local--;
    if (rc) {
        unsigned char lk[SN_LAYER_KEY_MAX];
        sn_rank_taint(b, lk, sn_layer_key(lk, in->expert, in->expert_len, (uint32_t)in->layer));
    }
    return sn_batch_finish(b, given, rc, e);
}

/* ---- reading ----------------------------------------------------------------- */

/* The record of write id of the layer lk, pinned (no copy). */
static int view_load(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                     sn_weights_view *v, sn_err *e)
{
    unsigned char key[SN_WKEY_MAX];
    size_t klen = sn_wkey_id(key, lk, lklen, id);
    char *err = NULL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->weights_read_opts, s->cf[CF_WEIGHTS], (const char *)key, klen, &err);
    if (err) return sn_rocks_err(e, err, "reading neural_weights");
    if (!p) return SN_NOTFOUND;
    v->pin = p;
    v->codec = s->codec;
    size_t vlen;
    const char *val = rocksdb_pinnableslice_value(p, &vlen);
    int rc = sn_weights_view_decode(v, val, vlen, key, klen, e);
    if (rc) sn_weights_view_release(v);
    return rc;
}

int sn_get_weights(sn_store *s, const char *expert, size_t len, int64_t layer, uint64_t version,
                   sn_weights_view *v, sn_err *e)
{
    memset(v, 0, sizeof *v);
    sn_arena_init(&v->arena);
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen;
    int rc = checked_layer_key(expert, len, layer, lk, &lklen, e);
    if (rc) return rc;
    sn_hist h;
    uint64_t cv = 0;
    if (version) rc = sn_hist_nth(s, lk, lklen, version, &h, e);
    if (!version || rc == SN_NOTFOUND) {
        /* the current write, or asked by number: the derived merge past the last */
        int r2 = sn_current_get(s, lk, lklen, &h.id, e);
        if (!r2) r2 = sn_version_of(s, lk, lklen, &h.id, &cv, e);
        if (!version || (r2 == SN_OK && cv == version)) { rc = r2; version = cv; }
    }
    if (!rc) rc = view_load(s, lk, lklen, &h.id, v, e);
    if (!rc) v->version = version;
    return rc;
}

int sn_current_identity(sn_store *s, const char *expert, size_t len, int64_t layer,
                        uint64_t *hlc, char origin[37], sn_err *e)
{
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen;
    int rc = checked_layer_key(expert, len, layer, lk, &lklen, e);
    if (rc) return rc;
    sn_ident id;
    rc = sn_current_get(s, lk, lklen, &id, e);
    if (rc) return rc;
    *hlc = id.hlc;
    memcpy(origin, id.origin, SN_ORIGIN_LEN);
    origin[SN_ORIGIN_LEN] = 0;
    return SN_OK;
}

uint64_t sn_weights_epoch(const sn_store *s)
{
    return s->weights_epoch;
}

int sn_get_weights_at(sn_store *s, const char *expert, size_t len, int64_t layer, uint64_t hlc,
                      const char *origin, size_t olen, sn_weights_view *v, sn_err *e)
{
    memset(v, 0, sizeof *v);
    sn_arena_init(&v->arena);
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen;
    int rc = checked_layer_key(expert, len, layer, lk, &lklen, e);
    if (!rc && (olen != SN_ORIGIN_LEN || !sn_origin_ok(origin, olen)))
        rc = sn_fail(e, SN_EARG, "origin must be a store origin (36 printable bytes)");
    if (rc) return rc;
    sn_ident id = { hlc, "" };
    memcpy(id.origin, origin, SN_ORIGIN_LEN);
    return sn_get_weights_by_id(s, lk, lklen, &id, v, e);
}

int sn_get_weights_by_id(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                         sn_weights_view *v, sn_err *e)
{
    memset(v, 0, sizeof *v);
    sn_arena_init(&v->arena);
    int rc = view_load(s, lk, lklen, id, v, e);
    if (rc) return rc;
    rc = sn_version_of(s, lk, lklen, id, &v->version, e);
    if (rc) sn_weights_view_release(v);
    return rc;
}

int sn_get_weights_record(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                          sn_weights_view *v, sn_err *e)
{
    memset(v, 0, sizeof *v);
    sn_arena_init(&v->arena);
    return view_load(s, lk, lklen, id, v, e);
}

/* The held ranks of one walk, how many entries it saw, and whether the
 * current write was among them. */
typedef struct held_list {
    sn_vlist l;
    const sn_ident *cur;
    uint64_t total;
    int cur_seen;
} held_list;

static int held_step(void *ud, uint64_t rank, const sn_hist *h, sn_err *e)
{
    held_list *w = ud;
    w->total = rank;
    if (w->cur && sn_same_ident(&h->id, w->cur)) w->cur_seen = 1;
    return h->flags & SN_HIST_HELD ? sn_vlist_push(&w->l, sn_int((int64_t)rank), e) : SN_OK;
}

/* The numbers of the writes this store holds the records of, ascending. */
int sn_weight_versions(sn_store *s, const char *expert, size_t len, int64_t layer, sn_arena *a,
                       sn_value *out, sn_err *e)
{
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen;
    int rc = checked_layer_key(expert, len, layer, lk, &lklen, e);
    if (rc) return rc;
    sn_ident cur;
    rc = sn_current_get(s, lk, lklen, &cur, e);
    held_list w = { { 0 }, rc == SN_OK ? &cur : NULL, 0, 0 };
    if (rc == SN_NOTFOUND) rc = SN_OK;
    if (!rc) rc = sn_hist_each(s, lk, lklen, held_step, &w, e);
    /* a derived merge is current: listed with its number, one past the last */
    if (!rc && w.cur && !w.cur_seen) rc = sn_vlist_push(&w.l, sn_int((int64_t)w.total + 1), e);
    if (rc) { free(w.l.items); return rc; }
    return sn_vlist_finish(&w.l, a, out, e);
}

static int layer_step(void *ud, const unsigned char *lk, size_t lklen, sn_err *e)
{
    return sn_vlist_push(ud, sn_int((int64_t)sn_get_be(lk + lklen - 4, 4)), e);
}

/* The layers with weights, from the history index (sn_layers.c). */
int sn_list_layers(sn_store *s, const char *expert, size_t len, sn_arena *a, sn_value *out,
                   sn_err *e)
{
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (rc) return rc;
    char k[SN_MAX_ID_LEN + 1];
    memcpy(k, expert, len);
    k[len] = 0;
    sn_vlist l = { 0 };
    rc = sn_held_layers(s, k, len + 1, 0, layer_step, &l, e);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}
