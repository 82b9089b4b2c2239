/* Deleting an expert (store:delete_expert) and the tombstones that carry
 * the delete to peers.
 *
 * A layer is deleted by a tombstone: a write in its causal history like any
 * other (parents: the heads its writer saw), flagged SN_HIST_TOMBSTONE and
 * with no record. So a delete and a write that did not see each other are
 * concurrent heads like two writes, and the write wins: only held heads can
 * be current (sn_replica_weights.c), and a layer whose every head is a
 * tombstone has no current write. History stays (version numbers never
 * shift and a late write still finds what it superseded); the records of
 * the tombstone's ancestors go, except those a checkpoint pins, so
 * restoring that checkpoint brings the expert back.
 *
 * Convergence: which records a store keeps must not depend on arrival
 * order. A tombstone drops its ancestors' records wherever it lands, and a
 * write that arrives after a tombstone that descends from it is not kept
 * (sn_tomb_buries), so every store ends holding the same records. */
#include "store/sn_batch.h"
#include "store/sn_clock.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"
#include "store/sn_replica.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

/* ---- a layer's history in memory ---------------------------------------------- */

typedef struct hist_list {
    sn_hist *h;   /* ascending identity (rank) order */
    size_t n, cap;
} hist_list;

static int collect_step(void *ud, uint64_t rank, const sn_hist *h, sn_err *e)
{
    (void)rank;
    hist_list *l = ud;
    if (SN_GROW(l->h, l->n, l->cap, 16, e)) return e->code;
    l->h[l->n++] = *h;
    return SN_OK;
}

/* Index of id in l, or l->n. */
static size_t find(const hist_list *l, const sn_ident *id)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = sn_ident_cmp(&l->h[mid].id, id);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return l->n;
}

/* Write h's record goes unless a checkpoint pins it; its history entry
 * stays, not held (as trimming leaves it). */
static int drop_record(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                       const sn_hist *h, sn_err *e)
{
    int is_pinned;
    int rc = sn_write_pinned(s, lk, lklen, &h->id, &is_pinned, e);
    if (rc || is_pinned) return rc;
    unsigned char key[SN_WKEY_MAX];
    rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)key,
                                 sn_wkey_id(key, lk, lklen, &h->id));
    sn_hist t = *h;
    t.flags &= ~(unsigned)SN_HIST_HELD;
    sn_hist_put(b, lk, lklen, &t);
    return SN_OK;
}

/* The layer has no current write any more; a derived merge that was current
 * (in no history) has nothing left to derive from, so its record goes. */
static int clear_current(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen, sn_err *e)
{
    sn_ident cur;
    sn_hist h;
    int rc = sn_current_get(s, lk, lklen, &cur, e);
    if (rc == SN_NOTFOUND) return SN_OK;
    if (!rc) rc = sn_hist_get(s, lk, lklen, &cur, &h, e);
    unsigned char k[SN_WKEY_MAX > SN_HIST_KEY_MAX ? SN_WKEY_MAX : SN_HIST_KEY_MAX];
    if (rc == SN_NOTFOUND) {
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)k,
                                     sn_wkey_id(k, lk, lklen, &cur));
        rc = SN_OK;
    }
    if (!rc) {
        b->weights_changed = 1;
        sn_rank_touch(b, lk, lklen);
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                     sn_hist_key(k, TAG_CURRENT, lk, lklen, NULL));
    }
    return rc;
}

/* ---- peers' tombstones ------------------------------------------------------------ */

int sn_tomb_settle(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                   const sn_hist *t, const sn_ident *heads, size_t n, sn_err *e)
{
    int rc = SN_OK, all = n > 0;
    for (size_t i = 0; !rc && all && i < n; i++) {
        sn_hist h;
        rc = sn_hist_get_or(s, lk, lklen, &heads[i], t, &h, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; all = 0; }
        else if (!rc) all = (h.flags & SN_HIST_TOMBSTONE) != 0;
    }
    if (!rc && all) rc = clear_current(s, b, lk, lklen, e);
    /* t's ancestors, newest first: a parent always sorts before its child */
    hist_list l = { 0 };
    if (!rc) rc = sn_hist_each(s, lk, lklen, collect_step, &l, e);
    unsigned char *anc = rc ? NULL : calloc(l.n + 1, 1);
    if (!rc && !anc) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < t->nparents; i++) anc[find(&l, &t->parents[i])] = 1;
    for (size_t i = l.n; !rc && i-- > 0;) {
        if (!anc[i]) continue;
        for (size_t j = 0; j < l.h[i].nparents; j++) anc[find(&l, &l.h[i].parents[j])] = 1;
        if (l.h[i].flags & SN_HIST_HELD) rc = drop_record(s, b, lk, lklen, &l.h[i], e);
    }
    free(anc);
    free(l.h);
    return rc;
}

int sn_tomb_buries(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                   int *buried, sn_err *e)
{
    *buried = 0;
    /* only a write something known superseded can have a tombstone after it:
     * one key read spares the walk for writes arriving in order */
    unsigned char k[IDKEY_MAX];
    int superseded;
    int rc = sn_key_exists(s, CF_DEFAULT, k, sn_ident_key(k, TAG_SUPERSEDED, CF_WEIGHTS, lk, lklen, id),
                           &superseded, "reading the replication log", e);
    if (rc || !superseded) return rc;
    hist_list l = { 0 };
    rc = sn_hist_each(s, lk, lklen, collect_step, &l, e);
    unsigned char *desc = rc ? NULL : calloc(l.n + 1, 1);
    if (!rc && !desc) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    /* id's descendants, oldest first: a child always sorts after its parents */
    for (size_t i = 0; !rc && !*buried && i < l.n; i++) {
        if (sn_ident_cmp(&l.h[i].id, id) <= 0) continue;
        for (size_t j = 0; !desc[i] && j < l.h[i].nparents; j++) {
            const sn_ident *p = &l.h[i].parents[j];
            desc[i] = sn_same_ident(p, id) || desc[find(&l, p)];
        }
        *buried = desc[i] && (l.h[i].flags & SN_HIST_TOMBSTONE);
    }
    free(desc);
    free(l.h);
    int is_pinned = 0;
    if (!rc && *buried) rc = sn_write_pinned(s, lk, lklen, id, &is_pinned, e);
    if (is_pinned) *buried = 0;
    return rc;
}

/* ---- the local delete -------------------------------------------------------------- */

/* Every layer of the expert the history knows, and those first written in
 * this batch: one seek per layer. */
static int expert_layers(sn_store *s, sn_batch *b, const char *expert, size_t len, uint32_t **out,
                         size_t *n, sn_err *e)
{
    unsigned char p[2 + SN_LAYER_KEY_MAX];
    size_t plen = sn_hist_key(p, TAG_HISTORY, (const unsigned char *)expert, len, NULL);
    p[plen++] = 0;
    size_t cap = 0;
    int rc = SN_OK;
    *out = NULL;
    *n = 0;
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, plen, &bd);
    rocksdb_iter_seek(it, (const char *)p, plen);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + 4 + SN_ID_LEN || memcmp(k, p, plen) != 0) break;
        uint32_t layer = (uint32_t)sn_get_be(k + plen, 4);
        if (!(rc = SN_GROW(*out, *n, cap, 8, e))) (*out)[(*n)++] = layer;
        unsigned char next[2 + SN_LAYER_KEY_MAX];
        memcpy(next, p, plen);
        sn_put_be(next + plen, (uint64_t)layer + 1, 4);
        if (layer == UINT32_MAX) break;
        rocksdb_iter_seek(it, (const char *)next, plen + 4);
    }
    rc = sn_bound_end(bd, it, rc, "reading the layers' history", e);
    for (sn_pending *q = b->pending; !rc && q; q = q->next) {
        if (q->prefix_len != len + 5 || memcmp(q->prefix, expert, len + 1) != 0) continue;
        uint32_t layer = (uint32_t)sn_get_be(q->prefix + len + 1, 4);
        int seen = 0;
        for (size_t i = 0; i < *n; i++) seen |= (*out)[i] == layer;
        if (!seen && !(rc = SN_GROW(*out, *n, cap, 8, e))) (*out)[(*n)++] = layer;
    }
    if (rc) { free(*out); *out = NULL; *n = 0; }
    return rc;
}

typedef struct drop_walk { sn_store *s; sn_batch *b; const unsigned char *lk; size_t lklen; } drop_walk;

static int drop_step(void *ud, uint64_t rank, const sn_hist *h, sn_err *e)
{
    (void)rank;
    drop_walk *w = ud;
    return h->flags & SN_HIST_HELD ? drop_record(w->s, w->b, w->lk, w->lklen, h, e) : SN_OK;
}

/* Whether the layer's last write (in the batch, else every head) is a
 * tombstone already: deleting twice adds nothing. */
static int deleted_already(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                           const sn_hist *t, int *yes, sn_err *e)
{
    sn_pending *p = sn_pending_find(b, lk, lklen);
    *yes = 1;   /* a layer with no writes at all has nothing to delete either */
    if (p) { *yes = (p->writes[p->nwrites - 1].flags & SN_HIST_TOMBSTONE) != 0; return SN_OK; }
    for (size_t i = 0; *yes && i < t->nparents; i++) {
        sn_hist h;
        int rc = sn_hist_get(s, lk, lklen, &t->parents[i], &h, e);
        if (rc) return rc;
        *yes = (h.flags & SN_HIST_TOMBSTONE) != 0;
    }
    return SN_OK;
}

/* A local write supersedes every head it saw: the tombstone is the layer's
 * one head, and every record the store holds of it is its ancestor's. */
static int tomb_layer(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen, int *did,
                      sn_err *e)
{
    sn_hist t;
    memset(&t, 0, sizeof t);
    uint64_t known;
    int done;
    int rc = sn_layer_before(s, b, lk, lklen, &t, &known, NULL, e);
    if (!rc) rc = deleted_already(s, b, lk, lklen, &t, &done, e);
    if (rc || done) return rc;
    *did = 1;
    t.id.hlc = sn_next_hlc(s);
    memcpy(t.id.origin, s->origin, SN_ORIGIN_LEN + 1);
    t.flags = SN_HIST_TOMBSTONE;
    sn_ident heads[SN_MAX_HEADS];
    size_t nheads = t.nparents;
    memcpy(heads, t.parents, nheads * sizeof *heads);
    drop_walk w = { s, b, lk, lklen };
    rc = sn_hist_each(s, lk, lklen, drop_step, &w, e);
    /* writes of this batch: no checkpoint in it pins them (refused above) */
    sn_pending *p = sn_pending_find(b, lk, lklen);
    for (; !rc && p && p->trimmed < p->nwrites; p->trimmed++) {
        sn_hist x = p->writes[p->trimmed];
        if (!(x.flags & SN_HIST_HELD)) continue;
        unsigned char key[SN_WKEY_MAX];
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)key,
                                     sn_wkey_id(key, lk, lklen, &x.id));
        x.flags &= ~(unsigned)SN_HIST_HELD;
        sn_hist_put(b, lk, lklen, &x);
    }
    if (!rc) rc = clear_current(s, b, lk, lklen, e);
    if (!rc) rc = sn_hist_add(s, b, lk, lklen, &t, heads, &nheads, e);
    unsigned char key[SN_WKEY_MAX];
    size_t klen = sn_wkey_id(key, lk, lklen, &t.id);
    if (!rc) rc = sn_replica_note_tomb(b, key, klen, t.id.hlc, t.parents, t.nparents, t.depth, e);
    if (!rc) rc = sn_note_pending(b, lk, lklen, &t, known + 1, e);
    return rc;
}

/* The config and every kept conflict of it: one replicated delete each,
 * whose prev is the record removed (as delete_checkpoint does), so a peer
 * drops exactly these and nothing written after. */
static int delete_config(sn_store *s, sn_batch *b, const char *expert, size_t len, int *did,
                         sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value cfg;
    sn_conflict *cs = NULL;
    size_t nc = 0;
    int rc = sn_get_config(s, expert, len, &a, &cfg, e);
    if (rc == SN_OK) {
        const sn_value *ph = sn_map_get(&cfg, "hlc"), *po = sn_map_get(&cfg, "origin");
        int has = ph && ph->type == SN_INT && po && po->type == SN_STR;
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_CONFIG], expert, len);
        *did = 1;
        rc = sn_replica_note(b, CF_CONFIG, expert, len, SN_KIND_DEL, sn_next_hlc(s),
                             has ? (uint64_t)ph->u.i : 0, has ? po->u.s.p : NULL,
                             has ? po->u.s.len : 0, e);
    } else if (rc == SN_NOTFOUND) {
        rc = SN_OK;
    }
    if (!rc) rc = sn_config_conflicts(s, expert, len, &a, &cs, &nc, e);
    for (size_t i = 0; !rc && i < nc; i++) {
        unsigned char k[IDKEY_MAX];
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                     sn_ident_key(k, TAG_CONFLICT, CF_CONFIG,
                                                  (const unsigned char *)expert, len, &cs[i].id));
        *did = 1;
        rc = sn_replica_note(b, CF_CONFIG, expert, len, SN_KIND_DEL, sn_next_hlc(s), cs[i].id.hlc,
                             cs[i].id.origin, SN_ORIGIN_LEN, e);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_delete_expert(sn_store *s, sn_batch *given, const char *expert, size_t len, int *found,
                     sn_err *e)
{
    *found = 0;
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (rc) return rc;
    /* a checkpoint made earlier in the batch pins records whose pins are
     * not readable yet: deleting now could drop what it pins */
    if (given && given->has_checkpoint)
        return sn_fail(e, SN_EARG, "delete_expert after create_checkpoint in the same batch");
    sn_batch *b = sn_batch_or_temp(s, given, e);
    if (!b) return e->code;
    uint32_t *layers = NULL;
    size_t n = 0;
    rc = expert_layers(s, b, expert, len, &layers, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        unsigned char lk[SN_LAYER_KEY_MAX];
        size_t lklen = sn_layer_key(lk, expert, len, layers[i]);
        b->rank_local++;
        rc = tomb_layer(s, b, lk, lklen, found, e);
        b->rank_local--;
        if (rc) sn_rank_taint(b, lk, lklen);
    }
    free(layers);
    if (!rc) rc = delete_config(s, b, expert, len, found, e);
    return sn_batch_finish(b, given, rc, e);
}
