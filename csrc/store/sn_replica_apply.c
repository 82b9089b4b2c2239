/* Applying a peer's entry (see sn_replica.h, "Merge rule"): the heads at
 * its key, the resolver's winner, and the conflicts kept. */
#include "store/sn_keys.h"
#include "store/sn_replica.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

/* ---- applying a peer's entry --------------------------------------------------------- */

static int head_order(const void *x, const void *y)
{
    const sn_head *a = x, *b = y;
    if (a->id.hlc != b->id.hlc) return a->id.hlc < b->id.hlc ? -1 : 1;
    return strcmp(a->id.origin, b->id.origin);
}

typedef struct heads {
    sn_head *h;
    unsigned char **owned;   /* bytes to free, one per head */
    size_t n, cap;
} heads;

static int heads_push(heads *hs, const sn_head *h, unsigned char *owned, sn_err *e)
{
    if (hs->n == hs->cap) {
        /* two arrays in step: the capacity moves only when both have it */
        size_t cap = sn_next_cap(hs->cap, 4);
        if (SN_RESIZE(hs->h, cap, e) || SN_RESIZE(hs->owned, cap, e)) {
            free(owned);
            return e->code;
        }
        hs->cap = cap;
    }
    hs->h[hs->n] = *h;
    hs->owned[hs->n++] = owned;
    return SN_OK;
}

static void heads_free(heads *hs)
{
    for (size_t i = 0; i < hs->n; i++) free(hs->owned[i]);
    free(hs->h);
    free(hs->owned);
}

/* The current record and every kept conflict at one key. */
static int load_heads(sn_store *s, int cf, const unsigned char *key, size_t klen, heads *hs,
                      sn_err *e)
{
    sn_buf cur;
    int rc = sn_get_copy(s, cf, key, klen, &cur, e);
    if (rc == SN_OK) {
        sn_head h;
        rc = sn_record_head(cur.data, cur.len, cf, &h, e);
        h.local = strcmp(h.id.origin, s->origin) == 0;
        h.where = 1;
        if (rc) free(cur.data);
        else rc = heads_push(hs, &h, cur.data, e);
    } else if (rc == SN_NOTFOUND) {
        rc = SN_OK;
    }
    if (rc) return rc;
    unsigned char p[IDKEY_MAX];
    size_t plen = sn_rec_prefix(p, TAG_CONFLICT, cf, key, klen);
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, plen, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, plen); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t n, vlen;
        const char *k = rocksdb_iter_key(it, &n);
        if (n != plen + 8 + SN_ORIGIN_LEN || memcmp(k, p, plen) != 0) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        unsigned char *copy = malloc(vlen ? vlen : 1);
        if (!copy) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
        memcpy(copy, v, vlen);
        sn_head h;
        rc = sn_record_head(copy, vlen, cf, &h, e);
        /* the key names the identity even if the record lacks one */
        h.id.hlc = sn_get_be((const unsigned char *)k + plen, 8);
        memcpy(h.id.origin, k + plen + 8, SN_ORIGIN_LEN);
        h.id.origin[SN_ORIGIN_LEN] = 0;
        h.local = strcmp(h.id.origin, s->origin) == 0;
        h.where = 2;
        if (rc) free(copy);
        else rc = heads_push(hs, &h, copy, e);
    }
    return sn_bound_end(bd, it, rc, "reading the replication log", e);
}

/* Add or remove the pin index entries of a checkpoint record. */
static int checkpoint_pins(sn_batch *b, const unsigned char *key, size_t klen,
                           const unsigned char *bytes, size_t len, int add, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_record r;
    int rc = sn_record_decode(bytes, len, &a, &r, e);
    const sn_value *pins = rc ? NULL : sn_map_get(&r.fields, "pins");
    for (size_t i = 0; pins && pins->type == SN_ARRAY && i < pins->u.a.n; i++) {
        unsigned char k[SN_PIN_KEY_MAX];
        size_t n = sn_pin_key(k, &pins->u.a.items[i], key + 1, klen - 1);
        if (add)
            rocksdb_writebatch_put_cf(b->wb, b->s->cf[CF_CHECKPOINTS], (const char *)k, n, "", 0);
        else
            rocksdb_writebatch_delete_cf(b->wb, b->s->cf[CF_CHECKPOINTS], (const char *)k, n);
    }
    sn_arena_free(&a);
    return rc;
}

/* The predecessor is replaced: it leaves the heads for good. Its bytes
 * stay alive in *removed, since the old current head may be that one. */
static void drop_prev(sn_batch *b, const sn_entry *en, heads *hs, unsigned char **removed)
{
    unsigned char k[IDKEY_MAX];
    rocksdb_column_family_handle_t *def = b->s->cf[CF_DEFAULT];
    rocksdb_writebatch_put_cf(b->wb, def, (const char *)k,
                              sn_ident_key(k, TAG_SUPERSEDED, en->cf, en->key, en->klen, &en->prev),
                              "", 0);
    for (size_t i = 0; i < hs->n; i++) {
        if (!sn_same_ident(&hs->h[i].id, &en->prev)) continue;
        if (hs->h[i].where == 2)
            rocksdb_writebatch_delete_cf(b->wb, def, (const char *)k,
                                         sn_ident_key(k, TAG_CONFLICT, en->cf, en->key, en->klen,
                                                      &hs->h[i].id));
        *removed = hs->owned[i];
        hs->h[i] = hs->h[hs->n - 1];
        hs->owned[i] = hs->owned[hs->n - 1];
        hs->n--;
        return;
    }
}

/* A put's record joins the heads unless it is one already or something
 * known has superseded it. */
static int add_head(sn_store *s, const sn_entry *en, const unsigned char *bytes, size_t len,
                    heads *hs, sn_apply_result *res, sn_err *e)
{
    sn_head h;
    int rc = sn_record_head(bytes, len, en->cf, &h, e);
    h.local = strcmp(en->origin, s->origin) == 0;
    h.where = 0;
    int known = 0, superseded = 0;
    for (size_t i = 0; !rc && i < hs->n; i++) known |= sn_same_ident(&hs->h[i].id, &h.id);
    unsigned char k[IDKEY_MAX];
    if (!rc && !known)
        rc = sn_key_exists(s, CF_DEFAULT, k,
                           sn_ident_key(k, TAG_SUPERSEDED, en->cf, en->key, en->klen, &h.id),
                           &superseded, "replication read", e);
    if (!rc && !known && !superseded) {
        rc = heads_push(hs, &h, NULL, e);
        res->stored = !rc;
    }
    return rc;
}

/* A canonical order, then a fold: the same heads give the same winner
 * whatever order they arrived in. */
static size_t pick_winner(heads *hs, const sn_resolver *r)
{
    sn_head *hv = hs->h;
    unsigned char **ov = hs->owned;
    for (size_t i = 1; i < hs->n; i++)   /* insertion sort keeps owned[] in step */
        for (size_t j = i; j > 0 && head_order(&hv[j - 1], &hv[j]) > 0; j--) {
            sn_head t = hv[j]; hv[j] = hv[j - 1]; hv[j - 1] = t;
            unsigned char *o = ov[j]; ov[j] = ov[j - 1]; ov[j - 1] = o;
        }
    size_t win = 0;
    for (size_t i = 1; i < hs->n; i++)
        if (sn_resolver_beats(r, &hv[i], &hv[win])) win = i;
    return win;
}

/* The winner becomes the current record (old: the current one before, if
 * any), and every other head is kept as a conflict. */
static int write_heads(sn_batch *b, const sn_entry *en, const heads *hs, size_t win,
                       const sn_head *old, sn_apply_result *res, sn_err *e)
{
    sn_store *s = b->s;
    const sn_head *hv = hs->h;
    int cp = en->cf == CF_CHECKPOINTS, rc = SN_OK;
    unsigned char k[IDKEY_MAX];
    if (hs->n == 0) {
        if (old) {
            rocksdb_writebatch_delete_cf(b->wb, s->cf[en->cf], (const char *)en->key, en->klen);
            if (cp) rc = checkpoint_pins(b, en->key, en->klen, old->bytes, old->len, 0, e);
        }
    } else if (hv[win].where != 1) {
        if (old && cp) rc = checkpoint_pins(b, en->key, en->klen, old->bytes, old->len, 0, e);
        rocksdb_writebatch_put_cf(b->wb, s->cf[en->cf], (const char *)en->key, en->klen,
                                  (const char *)hv[win].bytes, hv[win].len);
        if (!rc && cp) rc = checkpoint_pins(b, en->key, en->klen, hv[win].bytes, hv[win].len, 1, e);
        if (hv[win].where == 2)
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                         sn_ident_key(k, TAG_CONFLICT, en->cf, en->key, en->klen,
                                                      &hv[win].id));
    }
    for (size_t i = 0; !rc && i < hs->n; i++) {
        if (i == win || hv[i].where == 2) continue;
        /* a head that lost: kept, never dropped */
        size_t n = sn_ident_key(k, TAG_CONFLICT, en->cf, en->key, en->klen, &hv[i].id);
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k, n,
                                  (const char *)hv[i].bytes, hv[i].len);
        res->conflicts++;
    }
    return rc;
}

static int merge(sn_store *s, sn_batch *b, const sn_entry *en, const unsigned char *bytes,
                 size_t len, const sn_resolver *r, sn_apply_result *res, sn_err *e)
{
    heads hs = { 0 };
    int rc = load_heads(s, en->cf, en->key, en->klen, &hs, e);
    const sn_head *old_current = NULL;
    for (size_t i = 0; !rc && i < hs.n; i++)
        if (hs.h[i].where == 1) old_current = &hs.h[i];
    /* a copy: the heads move (and the old current may leave them) below */
    sn_head old_cur = old_current ? *old_current : (sn_head){ 0 };
    unsigned char *removed = NULL;
    if (!rc && en->prev.origin[0]) drop_prev(b, en, &hs, &removed);
    if (!rc && en->kind == SN_KIND_PUT) rc = add_head(s, en, bytes, len, &hs, res, e);
    if (!rc) {
        size_t win = pick_winner(&hs, r);
        rc = write_heads(b, en, &hs, win, old_current ? &old_cur : NULL, res, e);
    }
    heads_free(&hs);
    free(removed);
    return rc;
}

/* An entry already logged under (origin, seq): the same one (a duplicate);
 * a skip this store logged while it did not sync that kind, now brought
 * whole (a fill); or a different record under the same name, which only
 * two stores sharing one origin can produce (a copied directory before it
 * took its own origin). A fill or a collision is applied, so nothing is
 * lost; a collision is counted. */
static int logged_before(sn_store *s, const sn_entry *en, int *found, int *fill, int *collision,
                         sn_err *e)
{
    unsigned char k[LOG_KEY_LEN];
    sn_buf v;
    *found = *fill = *collision = 0;
    int rc = sn_get_copy(s, CF_DEFAULT, k, sn_log_key(k, en->origin, en->seq), &v, e);
    if (rc == SN_NOTFOUND) return SN_OK;
    if (rc) return rc;
    *found = 1;
    sn_entry old;
    sn_err ignored;
    if (sn_entry_decode(v.data, v.len, &old, &ignored) == SN_OK) {
        *fill = old.kind == SN_KIND_SKIP && en->kind != SN_KIND_SKIP;
        *collision = old.kind != SN_KIND_SKIP && en->kind != SN_KIND_SKIP &&
                     (old.hlc != en->hlc || old.klen != en->klen || memcmp(old.key, en->key, en->klen));
    }
    free(v.data);
    return SN_OK;
}

/* The skip marker of a logged skip: 01 'K' origin seq. */
static size_t skip_key(unsigned char *k, const char *origin, uint64_t seq)
{
    sn_log_key(k, origin, seq);
    k[1] = TAG_SKIPPED;
    return LOG_KEY_LEN;
}

int sn_replica_skipped(sn_store *s, unsigned cfs, sn_vv_item *out, size_t max, size_t *n, sn_err *e)
{
    unsigned char p[2] = { 1, TAG_SKIPPED };
    *n = 0;
    int rc = SN_OK;
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, 2, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, 2); !rc && *n < max && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != LOG_KEY_LEN || memcmp(k, p, 2) != 0) break;
        sn_vv_item *x = &out[*n];
        memcpy(x->origin, k + 2, SN_ORIGIN_LEN);
        x->origin[SN_ORIGIN_LEN] = 0;
        x->seq = sn_get_be(k + 2 + SN_ORIGIN_LEN, 8);
        unsigned char lk[LOG_KEY_LEN];
        sn_buf v;
        rc = sn_get_copy(s, CF_DEFAULT, lk, sn_log_key(lk, x->origin, x->seq), &v, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; continue; }
        sn_entry en;
        if (!rc) {
            rc = sn_entry_decode(v.data, v.len, &en, e);
            free(v.data);
        }
        if (!rc && (cfs >> en.cf & 1u)) (*n)++;
    }
    return sn_bound_end(bd, it, rc, "reading the skipped entries", e);
}

int sn_replica_logged(sn_store *s, const char *origin, uint64_t seq, sn_entry *en, sn_err *e)
{
    unsigned char k[LOG_KEY_LEN];
    sn_buf v;
    int rc = sn_get_copy(s, CF_DEFAULT, k, sn_log_key(k, origin, seq), &v, e);
    if (rc) return rc;
    rc = sn_entry_decode(v.data, v.len, en, e);
    free(v.data);
    memcpy(en->origin, origin, SN_ORIGIN_LEN);
    en->origin[SN_ORIGIN_LEN] = 0;
    en->seq = seq;
    return rc;
}

static int apply(sn_store *s, const sn_entry *en, const unsigned char *bytes, size_t len,
                 const sn_resolver *r, int defer, sn_apply_result *res, sn_err *e)
{
    memset(res, 0, sizeof *res);
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    if (strlen(en->origin) != SN_ORIGIN_LEN || en->klen == 0 || en->klen > SN_REPL_KEY_MAX ||
        en->kind > SN_KIND_SKIP || en->seq == 0)
        return sn_fail(e, SN_ECORRUPT, "malformed log entry");
    if (en->kind == SN_KIND_PUT && !bytes)
        return sn_fail(e, SN_ECORRUPT, "a put entry without its record");
    int found, fill, collision;
    rc = logged_before(s, en, &found, &fill, &collision, e);
    if (rc) return rc;
    if (found && !fill && !collision) { res->duplicate = 1; return SN_OK; }
    res->collision = collision;

    sn_batch *b = sn_batch_new(s);
    if (!b) return sn_fail(e, SN_ENOMEM, "out of memory");
    sn_buf v;
    unsigned char k[LOG_KEY_LEN];
    /* the log keeps the first record under a name; a fill replaces the skip */
    rc = found && !fill ? SN_OK : sn_entry_encode(en, &v, e);
    if (!rc && (!found || fill)) {
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                  sn_log_key(k, en->origin, en->seq), (const char *)v.data, v.len);
        free(v.data);
        skip_key(k, en->origin, en->seq);
        if (en->kind == SN_KIND_SKIP)
            rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k, LOG_KEY_LEN, "", 0);
        else if (fill)
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k, LOG_KEY_LEN);
    }
    if (!rc && en->kind != SN_KIND_SKIP)
        rc = en->cf == CF_WEIGHTS ? sn_apply_weights(s, b, en, bytes, len, r, res, defer, e)
                                  : merge(s, b, en, bytes, len, r, res, e);
    if (!rc) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    /* HLC receive rule: our next write orders after what we have seen */
    if (!rc && en->hlc > s->last_hlc) s->last_hlc = en->hlc;
    return rc;
}

int sn_replica_apply(sn_store *s, const sn_entry *en, const unsigned char *bytes, size_t len,
                     const sn_resolver *r, sn_apply_result *res, sn_err *e)
{
    return apply(s, en, bytes, len, r, 0, res, e);
}

int sn_replica_apply_deferred(sn_store *s, const sn_entry *en, const unsigned char *bytes, size_t len,
                              const sn_resolver *r, sn_apply_result *res, sn_err *e)
{
    return apply(s, en, bytes, len, r, 1, res, e);
}
