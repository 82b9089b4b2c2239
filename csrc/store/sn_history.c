/* The causal history of each layer's weights (see sn_history.h). */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

#define HIST_VALUE_MAX (1 + 4 + 1 + SN_MAX_PARENTS * SN_ID_LEN)

/* flags(1) depth(4 BE) n(1) n x identity */
static size_t hist_encode(const sn_hist *h, unsigned char *v)
{
    v[0] = (unsigned char)h->flags;
    sn_put_be(v + 1, h->depth, 4);
    v[5] = (unsigned char)h->nparents;
    for (size_t i = 0; i < h->nparents; i++) sn_ident_put(v + 6 + i * SN_ID_LEN, &h->parents[i]);
    return 6 + h->nparents * SN_ID_LEN;
}

int sn_hist_decode(const void *val, size_t len, sn_hist *h, sn_err *e)
{
    const unsigned char *v = val;
    if (len < 6 || v[5] > SN_MAX_PARENTS || len != 6 + (size_t)v[5] * SN_ID_LEN || v[0] > 7 ||
        (v[0] & SN_HIST_TOMBSTONE && v[0] & (SN_HIST_HELD | SN_HIST_MERGE)))
        return sn_fail(e, SN_ECORRUPT, "history entry is malformed");
    h->flags = v[0];
    h->depth = (uint32_t)sn_get_be(v + 1, 4);
    h->nparents = v[5];
    for (size_t i = 0; i < h->nparents; i++) {
        if (sn_ident_get(v + 6 + i * SN_ID_LEN, &h->parents[i], e)) return e->code;
        if (i && sn_ident_cmp(&h->parents[i - 1], &h->parents[i]) >= 0)
            return sn_fail(e, SN_ECORRUPT, "history entry parents are not in order");
    }
    return SN_OK;
}

int sn_hist_get(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                sn_hist *h, sn_err *e)
{
    unsigned char k[SN_HIST_KEY_MAX];
    sn_buf v;
    int rc = sn_get_copy(s, CF_DEFAULT, k, sn_hist_key(k, TAG_HISTORY, lk, lklen, id), &v, e);
    if (rc) return rc;
    rc = sn_hist_decode(v.data, v.len, h, e);
    free(v.data);
    h->id = *id;
    return rc;
}

int sn_hist_get_or(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                   const sn_hist *fresh, sn_hist *h, sn_err *e)
{
    if (fresh && sn_same_ident(&fresh->id, id)) {
        *h = *fresh;
        return SN_OK;
    }
    return sn_hist_get(s, lk, lklen, id, h, e);
}

void sn_hist_put(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_hist *h)
{
    unsigned char k[SN_HIST_KEY_MAX], v[HIST_VALUE_MAX];
    sn_rank_touch(b, lk, lklen);
    rocksdb_writebatch_put_cf(b->wb, b->s->cf[CF_DEFAULT], (const char *)k,
                              sn_hist_key(k, TAG_HISTORY, lk, lklen, &h->id), (const char *)v,
                              hist_encode(h, v));
}

int sn_heads_load(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *heads, size_t *n,
                  sn_err *e)
{
    if (sn_rank_heads(s, lk, lklen, heads, n)) return SN_OK;
    unsigned char p[SN_HIST_KEY_MAX];
    size_t plen = sn_hist_key(p, TAG_HEAD, lk, lklen, NULL);
    *n = 0;
    int rc = SN_OK;
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, plen, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, plen); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + SN_ID_LEN || memcmp(k, p, plen) != 0) break;
        if (*n == SN_MAX_HEADS) {
            rc = sn_fail(e, SN_EIO, "a layer has more than %d concurrent heads", SN_MAX_HEADS);
            break;
        }
        rc = sn_ident_get(k + plen, &heads[(*n)++], e);
    }
    rc = sn_bound_end(bd, it, rc, "reading the layer's heads", e);
    if (!rc) sn_rank_note_heads(s, lk, lklen, heads, *n);
    return rc;
}

static void head_mark(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_ident *id, int on)
{
    unsigned char k[SN_HIST_KEY_MAX];
    size_t klen = sn_hist_key(k, TAG_HEAD, lk, lklen, id);
    sn_rank_touch(b, lk, lklen);
    if (on) rocksdb_writebatch_put_cf(b->wb, b->s->cf[CF_DEFAULT], (const char *)k, klen, "", 0);
    else rocksdb_writebatch_delete_cf(b->wb, b->s->cf[CF_DEFAULT], (const char *)k, klen);
}

int sn_hist_add(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen, const sn_hist *h,
                sn_ident *heads, size_t *n, sn_err *e)
{
    unsigned char k[IDKEY_MAX];
    for (size_t i = 0; i < h->nparents; i++) {
        const sn_ident *p = &h->parents[i];
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                  sn_ident_key(k, TAG_SUPERSEDED, CF_WEIGHTS, lk, lklen, p), "", 0);
        for (size_t j = 0; j < *n; j++)
            if (sn_same_ident(&heads[j], p)) {
                head_mark(b, lk, lklen, p, 0);
                memmove(&heads[j], &heads[j + 1], (*n - j - 1) * sizeof *heads);
                (*n)--;
                break;
            }
    }
    sn_hist_put(b, lk, lklen, h);
    /* a write some known write already names as its parent is history, not a head */
    int superseded;
    int rc = sn_key_exists(s, CF_DEFAULT, k, sn_ident_key(k, TAG_SUPERSEDED, CF_WEIGHTS, lk, lklen, &h->id),
                           &superseded, "reading the replication log", e);
    if (!rc && superseded) sn_rank_heads_after(b, lk, lklen, heads, *n, &h->id);
    if (rc || superseded) return rc;
    if (*n == SN_MAX_HEADS)
        return sn_fail(e, SN_EIO, "a layer has more than %d concurrent heads", SN_MAX_HEADS);
    size_t at = 0;
    while (at < *n && sn_ident_cmp(&heads[at], &h->id) < 0) at++;
    memmove(&heads[at + 1], &heads[at], (*n - at) * sizeof *heads);
    heads[at] = h->id;
    (*n)++;
    head_mark(b, lk, lklen, &h->id, 1);
    sn_rank_heads_after(b, lk, lklen, heads, *n, &h->id);
    return SN_OK;
}

int sn_current_get(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *id, sn_err *e)
{
    unsigned char k[SN_HIST_KEY_MAX];
    sn_buf v;
    int rc = sn_get_copy(s, CF_DEFAULT, k, sn_hist_key(k, TAG_CURRENT, lk, lklen, NULL), &v, e);
    if (rc) return rc;
    rc = v.len == SN_ID_LEN ? sn_ident_get(v.data, id, e)
                            : sn_fail(e, SN_ECORRUPT, "current-write marker is malformed");
    free(v.data);
    return rc;
}

void sn_current_put(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_ident *id)
{
    unsigned char k[SN_HIST_KEY_MAX], v[SN_ID_LEN];
    sn_rank_touch(b, lk, lklen);
    sn_ident_put(v, id);
    b->weights_changed = 1;
    rocksdb_writebatch_put_cf(b->wb, b->s->cf[CF_DEFAULT], (const char *)k,
                              sn_hist_key(k, TAG_CURRENT, lk, lklen, NULL), (const char *)v,
                              SN_ID_LEN);
}

int sn_hist_each_from(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *from,
                      uint64_t from_rank, sn_hist_fn fn, void *ud, sn_err *e)
{
    unsigned char p[SN_HIST_KEY_MAX], start[SN_HIST_KEY_MAX];
    size_t plen = sn_hist_key(p, TAG_HISTORY, lk, lklen, NULL);
    size_t slen = from ? sn_hist_key(start, TAG_HISTORY, lk, lklen, from) : 0;
    int rc = SN_OK;
    uint64_t rank = from ? from_rank - 1 : 0;
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, plen, &bd);
    for (rocksdb_iter_seek(it, (const char *)(from ? start : p), from ? slen : plen);
         !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + SN_ID_LEN || memcmp(k, p, plen) != 0) break;
        sn_hist h;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = sn_hist_decode(v, vlen, &h, e);
        if (!rc) rc = sn_ident_get(k + plen, &h.id, e);
        if (!rc) rc = fn(ud, ++rank, &h, e);
    }
    return sn_bound_end(bd, it, rc, "reading the layer's history", e);
}

int sn_hist_each(sn_store *s, const unsigned char *lk, size_t lklen, sn_hist_fn fn, void *ud,
                 sn_err *e)
{
    return sn_hist_each_from(s, lk, lklen, NULL, 0, fn, ud, e);
}

/* rank and nth stop the walk early with this (not an error) */
#define FOUND SN_STOP_FOUND

/* want: the write to find, or v: the rank to find (0: none, a count);
 * total: how many entries the walk saw. */
typedef struct rank_walk {
    const sn_ident *want;
    uint64_t v, rank, total;
    sn_hist *out;
    int to_end;    /* walk on past the write found, to count them all */
} rank_walk;

static int rank_step(void *ud, uint64_t rank, const sn_hist *h, sn_err *e)
{
    (void)e;
    rank_walk *w = ud;
    w->total = rank;
    if (!w->rank && ((w->want && sn_same_ident(&h->id, w->want)) || (!w->want && rank == w->v))) {
        w->rank = rank;
        if (w->out) *w->out = *h;
        return w->to_end ? SN_OK : FOUND;
    }
    return SN_OK;
}

int sn_hist_rank(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                 uint64_t *rank, sn_err *e)
{
    rank_walk w = { id, 0, 0, 0, NULL, 0 };
    int rc = sn_hist_each(s, lk, lklen, rank_step, &w, e);
    *rank = w.rank;
    return rc == FOUND ? SN_OK : rc ? rc : SN_NOTFOUND;
}

int sn_hist_count(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t *n, sn_err *e)
{
    if (sn_rank_count(s, lk, lklen, n)) return SN_OK;
    rank_walk w = { NULL, 0, 0, 0, NULL, 0 };
    int rc = sn_hist_each(s, lk, lklen, rank_step, &w, e);
    *n = w.total;
    if (!rc) sn_rank_note(s, lk, lklen, w.total, NULL, 0);
    return rc;
}

int sn_hist_nth(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t v, sn_hist *h,
                sn_err *e)
{
    rank_walk w = { NULL, v, 0, 0, h, 0 };
    int rc = v ? sn_hist_each(s, lk, lklen, rank_step, &w, e) : SN_OK;
    return rc == FOUND ? SN_OK : rc ? rc : SN_NOTFOUND;
}

int sn_current_set(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                   const sn_ident *id, sn_err *e)
{
    sn_ident old;
    sn_hist h;
    int rc = sn_current_get(s, lk, lklen, &old, e);
    if (rc == SN_OK && !sn_same_ident(&old, id)) {
        rc = sn_hist_get(s, lk, lklen, &old, &h, e);
        if (rc == SN_NOTFOUND) {   /* a derived merge, superseded by this */
            unsigned char key[SN_WKEY_MAX];
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)key,
                                         sn_wkey_id(key, lk, lklen, &old));
            rc = SN_OK;
        }
    } else if (rc == SN_NOTFOUND) {
        rc = SN_OK;
    }
    if (!rc) sn_current_put(b, lk, lklen, id);
    return rc;
}

int sn_version_of(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                  uint64_t *version, sn_err *e)
{
    /* one walk to the end: the write's rank (or one past the last entry,
     * for a derived merge) and the count, both kept in the rank cache */
    if (sn_rank_version(s, lk, lklen, id, version)) return SN_OK;
    /* a derived merge (no history entry) is one past the last write: the
     * count, which the cache keeps across a peer's writes, is enough (a
     * training mesh reads its current merge every step; walking the
     * history for it made a step cost what the history had grown to) */
    sn_hist h;
    int rc = sn_hist_get(s, lk, lklen, id, &h, e);
    if (rc && rc != SN_NOTFOUND) return rc;
    uint64_t n;
    if (rc == SN_NOTFOUND && sn_rank_count(s, lk, lklen, &n)) {
        *version = n + 1;
        return SN_OK;
    }
    rank_walk w = { id, 0, 0, 0, NULL, 1 };
    rc = sn_hist_each(s, lk, lklen, rank_step, &w, e);
    *version = w.rank ? w.rank : w.total + 1;
    if (!rc) sn_rank_note(s, lk, lklen, w.total, id, *version);
    return rc;
}

/* A layer whose every head is a tombstone (delete_expert) has no current
 * write on purpose: the pinned records it kept must not come back. */
static int deleted_layer(sn_store *s, const unsigned char *lk, size_t lklen, int *yes, sn_err *e)
{
    sn_ident heads[SN_MAX_HEADS];
    size_t n;
    int rc = sn_heads_load(s, lk, lklen, heads, &n, e);
    *yes = !rc && n > 0;
    for (size_t i = 0; !rc && *yes && i < n; i++) {
        sn_hist h;
        rc = sn_hist_get(s, lk, lklen, &heads[i], &h, e);
        *yes = !rc && (h.flags & SN_HIST_TOMBSTONE);
    }
    return rc == SN_NOTFOUND ? SN_OK : rc;
}

/* The current write of layer lk after a reconcile: kept when its record is
 * held, else the newest held write (none: no current). */
static int reconcile_current(sn_store *s, rocksdb_writebatch_t *wb, const unsigned char *lk,
                             size_t lklen, const sn_ident *newest, int have, sn_err *e)
{
    sn_ident cur;
    unsigned char k[SN_HIST_KEY_MAX], w[SN_WKEY_MAX], v[SN_ID_LEN];
    int found = 0, rc = sn_current_get(s, lk, lklen, &cur, e);
    if (rc == SN_OK)
        rc = sn_key_exists(s, CF_WEIGHTS, w, sn_wkey_id(w, lk, lklen, &cur), &found, "reading neural_weights", e);
    else if (rc == SN_NOTFOUND)
        rc = deleted_layer(s, lk, lklen, &found, e);
    if (rc || found) return rc;
    size_t klen = sn_hist_key(k, TAG_CURRENT, lk, lklen, NULL);
    if (!have) {
        rocksdb_writebatch_delete_cf(wb, s->cf[CF_DEFAULT], (const char *)k, klen);
        return SN_OK;
    }
    sn_ident_put(v, newest);
    rocksdb_writebatch_put_cf(wb, s->cf[CF_DEFAULT], (const char *)k, klen, (const char *)v, SN_ID_LEN);
    return SN_OK;
}

int sn_history_reconcile(sn_store *s, sn_err *e)
{
    unsigned char p[2] = { 1, TAG_HISTORY }, lk[SN_LAYER_KEY_MAX], w[SN_WKEY_MAX];
    size_t lklen = 0;
    sn_ident newest;
    int have = 0, rc = SN_OK;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, 2, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, 2); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 2 + SN_ID_LEN + 6 || memcmp(k, p, 2) != 0) break;
        size_t l = klen - 2 - SN_ID_LEN;
        if (l > SN_LAYER_KEY_MAX) continue;
        if (lklen && (l != lklen || memcmp(lk, k + 2, l))) {
            rc = reconcile_current(s, wb, lk, lklen, &newest, have, e);
            have = 0;
        }
        memcpy(lk, k + 2, l);
        lklen = l;
        sn_hist h;
        const char *v = rocksdb_iter_value(it, &vlen);
        if (!rc) rc = sn_hist_decode(v, vlen, &h, e);
        if (!rc) rc = sn_ident_get(k + 2 + l, &h.id, e);
        int held = 0;
        if (!rc) rc = sn_key_exists(s, CF_WEIGHTS, w, sn_wkey_id(w, lk, lklen, &h.id), &held, "reading neural_weights", e);
        if (!rc && held != !!(h.flags & SN_HIST_HELD)) {
            unsigned char val[6 + SN_MAX_PARENTS * SN_ID_LEN];
            h.flags = held ? h.flags | SN_HIST_HELD : h.flags & ~(unsigned)SN_HIST_HELD;
            rocksdb_writebatch_put_cf(wb, s->cf[CF_DEFAULT], (const char *)k, klen, (const char *)val,
                                      hist_encode(&h, val));
        }
        if (!rc && held) { newest = h.id; have = 1; }
    }
    rc = sn_bound_end(bd, it, rc, "reading the layers' history", e);
    if (!rc && lklen) rc = reconcile_current(s, wb, lk, lklen, &newest, have, e);
    char *err = NULL;
    if (!rc) rocksdb_write(s->db, s->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    sn_rank_clear(s);
    return err ? sn_rocks_err(e, err, "writing the layers' history") : rc;
}
