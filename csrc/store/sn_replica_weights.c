/* Applying a peer's weights entry: the write joins the layer's causal
 * history (sn_history.h), and the current write is chosen again from the
 * heads: by the resolver, or by merging them (SN_RESOLVE_MERGE). */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"
#include "store/sn_replica.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"
#include "store/sn_weights_int.h"

#include <stdlib.h>
#include <string.h>

/* The heads whose records this store holds, as the resolver sees them:
 * version is the head's depth (its history's length), timestamp the
 * record's. Views stay loaded for a merge; release with release_heads. */
typedef struct cands {
    sn_ident *id;
    sn_head *h;
    uint32_t *depth;
    sn_weights_view *v;
    size_t n;
} cands;

/* Room for n heads in one block (a layer may have up to SN_MAX_HEADS). */
static cands *cands_new(size_t n)
{
    if (!n) n = 1;
    size_t each = sizeof(sn_ident) + sizeof(sn_head) + sizeof(uint32_t) + sizeof(sn_weights_view);
    cands *c = malloc(sizeof *c + n * each + 16);
    if (!c) return NULL;
    /* the widest-aligned arrays first */
    c->v = (sn_weights_view *)(void *)(c + 1);
    c->h = (sn_head *)(void *)(c->v + n);
    c->id = (sn_ident *)(void *)(c->h + n);
    c->depth = (uint32_t *)(void *)(c->id + n);
    c->n = 0;
    return c;
}

static void release_heads(cands *c)
{
    for (size_t i = 0; i < c->n; i++) sn_weights_view_release(&c->v[i]);
    c->n = 0;
}

/* The write this apply adds is in the batch, not on disk yet: fresh holds
 * its history entry and record bytes (NULL when it brought none). */
typedef struct fresh_write {
    const sn_hist *h;
    const unsigned char *key, *bytes;
    size_t klen, len;
} fresh_write;

static int load_view(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                     const fresh_write *f, sn_weights_view *v, sn_err *e)
{
    if (f->h && sn_same_ident(&f->h->id, id)) {
        if (!f->bytes) return SN_NOTFOUND;
        int rc = sn_weights_view_from(v, f->bytes, f->len, f->key, f->klen, e);
        v->codec = s->codec;
        return rc;
    }
    /* the record only: heads are compared by depth, not version number */
    return sn_get_weights_record(s, lk, lklen, id, v, e);
}

static int load_heads(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *heads,
                      size_t n, const fresh_write *f, cands *c, sn_err *e)
{
    c->n = 0;
    for (size_t i = 0; i < n; i++) {
        sn_hist h;
        sn_weights_view *v = &c->v[c->n];
        int rc = sn_hist_get_or(s, lk, lklen, &heads[i], f->h, &h, e);
        if (!rc) rc = load_view(s, lk, lklen, &heads[i], f, v, e);
        if (rc == SN_NOTFOUND) continue;   /* heard of, not held: it cannot be current */
        if (rc) { release_heads(c); return rc; }
        sn_head *x = &c->h[c->n];
        memset(x, 0, sizeof *x);
        x->id = heads[i];
        x->cf = CF_WEIGHTS;
        x->local = strcmp(heads[i].origin, s->origin) == 0;
        x->version = h.depth;
        x->timestamp = sn_map_get(&v->rec.fields, "timestamp")->u.n;
        c->id[c->n] = heads[i];
        c->depth[c->n] = h.depth;
        c->n++;
    }
    return SN_OK;
}

/* The current write among the heads after a change: merged, or the
 * resolver's pick (heads in ascending identity order, so the fold gives one
 * winner whatever order they arrived in). */
static int choose_current(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                          const fresh_write *f, sn_ident *heads, size_t *nheads,
                          const sn_resolver *r, sn_apply_result *res, sn_err *e)
{
    /* the rule first: it may run Lua code, which must not find heads loaded */
    int merges = r && sn_strategy_of(r->strategy)->combines;
    sn_merge_rule rule = merges && *nheads >= 2 ? sn_resolver_rule(r, lk, lklen) : SN_RULE_NORMALIZED;
    cands *c = cands_new(*nheads);
    if (!c) return sn_fail(e, SN_ENOMEM, "out of memory");
    int rc = load_heads(s, lk, lklen, heads, *nheads, f, c, e);
    sn_ident cur;
    int have = 0;
    /* a merge record names its inputs as parents: past SN_MAX_PARENTS heads
     * the resolver picks, the same on every node that holds them */
    if (!rc && c->n >= 2 && c->n <= SN_MAX_PARENTS && merges && sn_merge_compatible(c->v, c->n)) {
        /* the applied write, when it is not a head, may still be a change
         * the merge sums: its record is in b, not on disk */
        sn_weights_view fv, *fvp = NULL;
        int fresh_head = 0;
        for (size_t i = 0; f->h && i < c->n; i++) fresh_head |= sn_same_ident(&c->id[i], &f->h->id);
        if (f->h && f->bytes && !fresh_head && load_view(s, lk, lklen, &f->h->id, f, &fv, e) == SN_OK) fvp = &fv;
        rc = sn_merge_heads(s, b, lk, lklen, c->id, c->v, c->depth, c->n, f->h, fvp, rule, &cur, e);
        if (fvp) sn_weights_view_release(fvp);
        have = res->merged = !rc;
        if (rc == SN_NOTFOUND) rc = SN_OK;   /* ancestry still arriving: latest until then */
    }
    if (!rc && !have && c->n) {
        size_t win = 0;
        for (size_t i = 1; i < c->n; i++)
            if (sn_resolver_beats(r, &c->h[i], &c->h[win])) win = i;
        cur = c->id[win];
        have = 1;
    }
    release_heads(c);
    free(c);
    if (!rc && have) rc = sn_current_set(s, b, lk, lklen, &cur, e);
    return rc;
}

int sn_apply_weights(sn_store *s, sn_batch *b, const sn_entry *en, const unsigned char *bytes,
                     size_t len, const sn_resolver *r, sn_apply_result *res, int defer, sn_err *e)
{
    size_t lklen;
    sn_hist h;
    memset(&h, 0, sizeof h);
    int rc = sn_wkey_split(en->key, en->klen, &lklen, &h.id, e);
    if (rc) return rc;
    if (h.id.hlc != en->hlc) return sn_fail(e, SN_ECORRUPT, "weights entry names another write");
    const unsigned char *lk = en->key;
    sn_hist known;
    rc = sn_hist_get(s, lk, lklen, &h.id, &known, e);
    if (rc && rc != SN_NOTFOUND) return rc;
    int is_new = rc == SN_NOTFOUND, fill = !is_new && !(known.flags & SN_HIST_HELD);
    int store = en->kind == SN_KIND_PUT && (is_new || fill) && !(fill && known.flags & SN_HIST_TOMBSTONE);
    int tomb = en->kind == SN_KIND_DEL && en->tomb, buried = 0;
    /* a write a known tombstone descends from was deleted by its writer:
     * keeping it here would leave this store holding what others do not */
    rc = store ? sn_tomb_buries(s, lk, lklen, &h.id, &buried, e) : SN_OK;
    if (rc) return rc;
    if (buried) store = 0;
    if (!is_new && !store) return SN_OK;   /* a write this store has: nothing changes */
    if (store) {
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)en->key, en->klen,
                                  (const char *)bytes, len);
        res->stored = 1;
    }
    sn_ident heads[SN_MAX_HEADS];
    size_t n, before;
    rc = sn_heads_load(s, lk, lklen, heads, &n, e);
    before = n;
    if (!rc && is_new) {
        h.flags = store ? SN_HIST_HELD : tomb ? SN_HIST_TOMBSTONE : 0;
        h.nparents = en->nparents;
        memcpy(h.parents, en->parents, en->nparents * sizeof *h.parents);
        /* the writer's depth: it knew every parent, a receiver may not yet,
         * and highest_version must pick the same head everywhere */
        h.depth = en->depth ? en->depth : 1;
        for (size_t i = 0; !rc && !en->depth && i < h.nparents; i++) {
            sn_hist p;
            int r2 = sn_hist_get(s, lk, lklen, &h.parents[i], &p, e);
            if (r2 && r2 != SN_NOTFOUND) rc = r2;
            else if (!r2 && p.depth + 1 > h.depth) h.depth = p.depth + 1;
        }
        if (!rc) rc = sn_hist_add(s, b, lk, lklen, &h, heads, &n, e);
    } else if (!rc) {
        known.flags |= SN_HIST_HELD;
        sn_hist_put(b, lk, lklen, &known);
        sn_rank_taint(b, lk, lklen);   /* held again: it may be older than the trim floor */
        h = known;
    }
    fresh_write f = { &h, en->key, store ? bytes : NULL, en->klen, len };
    /* a tombstone settles its layer at once (sn_tomb_settle reads current) */
    if (defer && !tomb && lklen <= sizeof res->layer) {
        res->deferred = 1;
        res->lklen = lklen;
        memcpy(res->layer, lk, lklen);
    } else if (!rc) {
        rc = choose_current(s, b, lk, lklen, &f, heads, &n, r, res, e);
    }
    if (!rc && is_new && tomb) rc = sn_tomb_settle(s, b, lk, lklen, &h, heads, n, e);
    /* what no merge here will read again goes (sn_trim.c) */
    if (!rc && is_new && store) rc = sn_trim_received(s, b, lk, lklen, heads, n, &h, e);
    /* a conflict is a head beside others, not the first write of a layer */
    if (!rc && n > before && n > 1) res->conflicts = (int)(n - before);
    return rc;
}

int sn_replica_settle(sn_store *s, const unsigned char *lk, size_t lklen, const sn_resolver *r, sn_err *e)
{
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    sn_ident heads[SN_MAX_HEADS];
    size_t n;
    rc = sn_heads_load(s, lk, lklen, heads, &n, e);
    if (rc || n == 0) return rc;
    sn_batch *b = sn_batch_new(s);
    if (!b) return sn_fail(e, SN_ENOMEM, "out of memory");
    fresh_write f = { NULL, NULL, NULL, 0, 0 };
    sn_apply_result res;
    memset(&res, 0, sizeof res);
    rc = choose_current(s, b, lk, lklen, &f, heads, &n, r, &res, e);
    if (!rc) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    return rc;
}

/* One layer whose current write may lag its heads. */
typedef struct layer_ref {
    size_t lklen;
    unsigned char lk[SN_LAYER_KEY_MAX];
} layer_ref;

int sn_replica_settle_all(sn_store *s, const sn_resolver *r, sn_err *e)
{
    sn_err ro;
    if (sn_check_writable(s, &ro)) return SN_OK;   /* read-only: nothing was deferred here */
    /* first the layers to settle, from the head markers (01 'T' lk id):
     * a layer with several heads, or whose current write is missing or not
     * its one head; then each settled, none while the iterator is open */
    layer_ref *todo = NULL;
    size_t n = 0, cap = 0;
    unsigned char p[2] = { 1, TAG_HEAD };
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, 2, &bd);
    int rc = SN_OK;
    for (rocksdb_iter_seek(it, (const char *)p, 2); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 2 || k[0] != 1 || k[1] != TAG_HEAD) break;
        if (klen < 3 + SN_ID_LEN || klen - 2 - SN_ID_LEN > SN_LAYER_KEY_MAX) continue;   /* verify's to report */
        size_t lklen = klen - 2 - SN_ID_LEN;
        if (n && todo[n - 1].lklen == lklen && memcmp(todo[n - 1].lk, k + 2, lklen) == 0) continue;
        sn_ident cur, heads[SN_MAX_HEADS];
        size_t nh;
        rc = sn_heads_load(s, k + 2, lklen, heads, &nh, e);
        int has_cur = 0;
        if (!rc) {
            rc = sn_current_get(s, k + 2, lklen, &cur, e);
            has_cur = rc == SN_OK;
            if (rc == SN_NOTFOUND) rc = SN_OK;
        }
        if (rc || (nh == 1 && has_cur && sn_same_ident(&heads[0], &cur))) continue;
        if ((rc = SN_GROW(todo, n, cap, 8, e))) break;
        todo[n].lklen = lklen;
        memcpy(todo[n].lk, k + 2, lklen);
        n++;
    }
    rc = sn_bound_end(bd, it, rc, "reading heads", e);
    for (size_t i = 0; !rc && i < n; i++) rc = sn_replica_settle(s, todo[i].lk, todo[i].lklen, r, e);
    free(todo);
    return rc;
}
