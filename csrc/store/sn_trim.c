/* max_weight_versions: the oldest records of a layer go, their history
 * entries stay (so version numbers never shift and peers still learn what
 * superseded what). Never trimmed: a head, a pinned write, while a layer
 * has several heads anything their merge may need as its base, and in a
 * store that syncs, the merge window: a write less than SN_MERGE_WINDOW
 * levels of depth below the newest (sn_history.h), which any merge this
 * node will make may read; records deeper than that no merge reads, on
 * any node, so a synced store keeps max_weight_versions plus the window
 * however long it runs. */
#include "store/sn_batch.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"
#include "store/sn_replica.h"
#include "store/sn_rocks.h"
#include "store/sn_weights_int.h"

#include <stdint.h>
#include <string.h>

typedef struct trim_walk {
    sn_store *s;
    sn_batch *b;
    const unsigned char *lk;
    size_t lklen;
    uint64_t cutoff;              /* writes of rank <= cutoff may go */
    uint32_t depth_floor;         /* ... and of depth <= depth_floor (the merge window; UINT32_MAX: none) */
    const sn_ident *heads;
    size_t nheads;
    int has_floor;                /* the first write the walk left held, or where it stopped */
    sn_ident floor;
    uint64_t floor_rank;
} trim_walk;

static int floor_at(trim_walk *w, uint64_t rank, const sn_hist *h)
{
    if (!w->has_floor) {
        w->has_floor = 1;
        w->floor = h->id;
        w->floor_rank = rank;
    }
    return SN_OK;
}

int sn_write_pinned(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                    int *is_pinned, sn_err *e)
{
    unsigned char k[1 + SN_WKEY_MAX];
    k[0] = SN_PIN_PREFIX;
    size_t klen = 1 + sn_wkey_id(k + 1, lk, lklen, id);
    rocksdb_iterator_t *it = sn_iter(s, CF_CHECKPOINTS);
    rocksdb_iter_seek(it, (const char *)k, klen);
    *is_pinned = 0;
    if (rocksdb_iter_valid(it)) {
        size_t n;
        const char *key = rocksdb_iter_key(it, &n);
        *is_pinned = n > klen && memcmp(key, k, klen) == 0;
    }
    return sn_iter_end(it, SN_OK, "reading checkpoints", e);
}

static int trim_step(void *ud, uint64_t rank, const sn_hist *h, sn_err *e)
{
    trim_walk *w = ud;
    /* done: stops the walk (a write in the window keeps what follows it
     * too, until the window moves past it) */
    if (rank > w->cutoff || h->depth > w->depth_floor) { floor_at(w, rank, h); return 1; }
    if (!(h->flags & SN_HIST_HELD)) return SN_OK;
    for (size_t i = 0; i < w->nheads; i++)
        if (sn_same_ident(&w->heads[i], &h->id)) return floor_at(w, rank, h);
    int is_pinned;
    int rc = sn_write_pinned(w->s, w->lk, w->lklen, &h->id, &is_pinned, e);
    if (rc || is_pinned) return rc ? rc : floor_at(w, rank, h);
    unsigned char key[SN_WKEY_MAX];
    rocksdb_writebatch_delete_cf(w->b->wb, w->s->cf[CF_WEIGHTS], (const char *)key,
                                 sn_wkey_id(key, w->lk, w->lklen, &h->id));
    sn_hist t = *h;
    t.flags &= ~(unsigned)SN_HIST_HELD;
    sn_hist_put(w->b, w->lk, w->lklen, &t);
    return SN_OK;
}

/* Writes of this batch old enough to go: deleting a key put earlier in the
 * same batch undoes the put. */
static void trim_pending(sn_batch *b, sn_pending *p, uint64_t cutoff, uint32_t floor)
{
    while (p->trimmed < p->nwrites && p->versions[p->trimmed] <= cutoff &&
           p->writes[p->trimmed].depth <= floor) {
        sn_hist t = p->writes[p->trimmed++];
        unsigned char key[SN_WKEY_MAX];
        rocksdb_writebatch_delete_cf(b->wb, b->s->cf[CF_WEIGHTS], (const char *)key,
                                     sn_wkey_id(key, p->prefix, p->prefix_len, &t.id));
        t.flags &= ~(unsigned)SN_HIST_HELD;
        sn_hist_put(b, p->prefix, p->prefix_len, &t);
    }
}

/* The walk, from where the layer's last one left the first write held
 * (sn_rank.c), to the first write it must keep. */
static int walk_from_floor(trim_walk *w, sn_err *e)
{
    sn_ident from;
    uint64_t from_rank;
    int have_from = sn_rank_floor(w->s, w->lk, w->lklen, &from, &from_rank) && from_rank <= w->cutoff + 1;
    int rc = sn_hist_each_from(w->s, w->lk, w->lklen, have_from ? &from : NULL, have_from ? from_rank : 0,
                               trim_step, w, e);
    return rc == 1 ? SN_OK : rc;
}

int sn_trim_versions(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen, sn_err *e)
{
    uint32_t keep = s->opts.max_weight_versions;
    /* a checkpoint made earlier in this batch may pin what is on disk, and
     * its pins are not visible yet: the next write trims */
    if (!keep || b->has_checkpoint) return SN_OK;
    uint64_t known;
    int rc = sn_hist_count(s, lk, lklen, &known, e);
    if (rc) return rc;
    sn_pending *p = sn_pending_find(b, lk, lklen);
    uint64_t total = p && p->version > known ? p->version : known;
    if (total <= keep) return SN_OK;
    uint64_t cutoff = total - keep;
    sn_ident heads[SN_MAX_HEADS];
    size_t n = 0;
    uint32_t top = p ? p->depth : 0, floor = UINT32_MAX;
    int syncs = sn_replica_has_remote(s);
    /* a write in this batch superseded every head on disk; without one the
     * heads stay, and several heads keep their whole history for the merge */
    if (!p) {
        rc = sn_heads_load(s, lk, lklen, heads, &n, e);
        if (rc || n > 1) return rc;
        sn_hist h;
        if (n == 1 && syncs) {
            rc = sn_hist_get(s, lk, lklen, &heads[0], &h, e);
            if (rc) return rc;
            top = h.depth;
        }
    }
    if (syncs) floor = top > SN_MERGE_WINDOW ? top - SN_MERGE_WINDOW : 0;
    /* the newest write of the batch is the head; it is never <= cutoff */
    if (p) trim_pending(b, p, cutoff, floor);
    trim_walk w = { s, b, lk, lklen, cutoff, floor, heads, n, 0, { 0, "" }, 0 };
    rc = walk_from_floor(&w, e);
    if (!rc && p && w.has_floor) {
        p->has_floor = 1;
        p->floor = w.floor;
        p->floor_rank = w.floor_rank;
    }
    return rc;
}

int sn_trim_received(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                     const sn_ident *heads, size_t n, const sn_hist *fresh, sn_err *e)
{
    uint32_t keep = s->opts.max_weight_versions;
    if (!keep || b->has_checkpoint || !n || sn_pending_find(b, lk, lklen)) return SN_OK;
    /* the deepest head: no merge this node makes from now on reads deeper
     * than the window below it (its deepest head only ever goes deeper) */
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) {
        sn_hist h;
        int rc = sn_hist_get_or(s, lk, lklen, &heads[i], fresh, &h, e);
        if (rc == SN_NOTFOUND) continue;   /* another write of this batch */
        if (rc) return rc;
        if (h.depth > top) top = h.depth;
    }
    if (top <= SN_MERGE_WINDOW) return SN_OK;
    uint64_t known;
    int rc = sn_hist_count(s, lk, lklen, &known, e);   /* on disk: this batch's writes not counted */
    if (rc || known <= keep) return rc;
    trim_walk w = { s, b, lk, lklen, known - keep, top - SN_MERGE_WINDOW, heads, n, 0, { 0, "" }, 0 };
    rc = walk_from_floor(&w, e);
    if (!rc && w.has_floor) sn_rank_floor_after(b, lk, lklen, &w.floor, w.floor_rank);
    return rc;
}
