/* The replication log (see sn_replica.h): its keys, the entries a local
 * write notes in its batch, the digest (version vector), and reading an
 * entry back with its record for a peer. */
#include "store/sn_keys.h"
#include "store/sn_kinds.h"
#include "store/sn_replica.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

/* entries name the store's column families by index */
_Static_assert((int)CF_WEIGHTS == (int)SN_ENTRY_CF_WEIGHTS &&
                   (int)CF_CONFIG == (int)SN_ENTRY_CF_CONFIG &&
                   (int)CF_CHECKPOINTS == (int)SN_ENTRY_CF_CHECKPOINTS &&
                   (int)CF_STATE == (int)SN_ENTRY_CF_STATE && (int)CF_METRICS == (int)SN_ENTRY_CF_METRICS,
               "sn_entry.h's column families disagree with the store's");

struct sn_repl_note {
    struct sn_repl_note *next;
    size_t len;
    unsigned char val[];
};

uint64_t sn_replica_local_seq(const sn_store *s) { return s->repl_seq; }

/* ---- local writes: notes in the batch, appended at commit ---------------------- */

/* Queue an entry in the batch; it gets its seq at commit. */
static int note_entry(sn_batch *b, const sn_entry *en, sn_err *e)
{
    sn_buf v;
    int rc = sn_entry_encode(en, &v, e);
    if (rc) return rc;
    struct sn_repl_note *n = malloc(sizeof *n + v.len);
    if (!n) { free(v.data); return sn_fail(e, SN_ENOMEM, "out of memory"); }
    n->next = NULL;
    n->len = v.len;
    memcpy(n->val, v.data, v.len);
    free(v.data);
    struct sn_repl_note **tail = &b->repl;   /* keep write order: seqs follow it */
    while (*tail) tail = &(*tail)->next;
    *tail = n;
    return SN_OK;
}

static int entry_for(sn_entry *en, int cf, const void *key, size_t klen, unsigned kind,
                     uint64_t hlc, sn_err *e)
{
    memset(en, 0, sizeof *en);
    if (klen > SN_REPL_KEY_MAX) return sn_fail(e, SN_EARG, "replicated key too long");
    en->kind = kind;
    en->cf = cf;
    memcpy(en->key, key, klen);
    en->klen = klen;
    en->hlc = hlc;
    return SN_OK;
}

int sn_replica_note(sn_batch *b, int cf, const void *key, size_t klen, unsigned kind,
                    uint64_t hlc, uint64_t prev_hlc, const char *prev_origin, size_t prev_len,
                    sn_err *e)
{
    sn_entry en;
    int rc = entry_for(&en, cf, key, klen, kind, hlc, e);
    if (rc) return rc;
    /* a predecessor from a store without origins (none yet) is no predecessor */
    if (prev_origin && prev_len == SN_ORIGIN_LEN) {
        en.prev.hlc = prev_hlc;
        memcpy(en.prev.origin, prev_origin, SN_ORIGIN_LEN);
    }
    return note_entry(b, &en, e);
}

static int note_weights(sn_batch *b, const void *key, size_t klen, uint64_t hlc, int tomb,
                        const sn_ident *parents, size_t nparents, uint32_t depth, sn_err *e)
{
    sn_entry en;
    int rc = entry_for(&en, CF_WEIGHTS, key, klen, tomb ? SN_KIND_DEL : SN_KIND_PUT, hlc, e);
    if (rc) return rc;
    if (nparents > SN_MAX_PARENTS) return sn_fail(e, SN_EIO, "too many parents");
    en.nparents = nparents;
    en.depth = depth;
    en.tomb = tomb;
    memcpy(en.parents, parents, nparents * sizeof *parents);
    return note_entry(b, &en, e);
}

int sn_replica_note_parents(sn_batch *b, const void *key, size_t klen, uint64_t hlc,
                            const sn_ident *parents, size_t nparents, uint32_t depth, sn_err *e)
{
    return note_weights(b, key, klen, hlc, 0, parents, nparents, depth, e);
}

int sn_replica_note_tomb(sn_batch *b, const void *key, size_t klen, uint64_t hlc,
                         const sn_ident *parents, size_t nparents, uint32_t depth, sn_err *e)
{
    return note_weights(b, key, klen, hlc, 1, parents, nparents, depth, e);
}

void sn_replica_precommit(sn_batch *b, uint64_t *saved_seq)
{
    *saved_seq = b->s->repl_seq;
    if (!b->repl) return;
    rocksdb_writebatch_set_save_point(b->wb);
    unsigned char k[LOG_KEY_LEN];
    for (struct sn_repl_note *n = b->repl; n; n = n->next)
        rocksdb_writebatch_put_cf(b->wb, b->s->cf[CF_DEFAULT], (const char *)k,
                                  sn_log_key(k, b->s->origin, ++b->s->repl_seq),
                                  (const char *)n->val, n->len);
}

void sn_replica_postcommit(sn_batch *b, int ok, uint64_t saved_seq)
{
    if (!b->repl) return;
    if (ok) {
        sn_replica_batch_free(b);
        return;
    }
    /* nothing was written: the seqs are free again and the batch is as before */
    b->s->repl_seq = saved_seq;
    char *err = NULL;
    rocksdb_writebatch_rollback_to_save_point(b->wb, &err);
    if (err) rocksdb_free(err);
}

void sn_replica_batch_free(sn_batch *b)
{
    while (b->repl) {
        struct sn_repl_note *n = b->repl->next;
        free(b->repl);
        b->repl = n;
    }
}

int sn_replica_open(sn_store *s, sn_err *e)
{
    unsigned char k[LOG_KEY_LEN];
    sn_log_key(k, s->origin, UINT64_MAX);
    rocksdb_iterator_t *it = sn_iter(s, CF_DEFAULT);
    rocksdb_iter_seek_for_prev(it, (const char *)k, LOG_KEY_LEN);
    int rc = SN_OK;
    if (rocksdb_iter_valid(it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen == LOG_KEY_LEN && memcmp(key, k, LOG_KEY_LEN - 8) == 0) {
            s->repl_seq = sn_get_be((const unsigned char *)key + LOG_KEY_LEN - 8, 8);
            /* the HLC must never repeat one of ours, even if the clock
             * stepped back across a restart */
            sn_entry en;
            const char *v = rocksdb_iter_value(it, &vlen);
            rc = sn_entry_decode(v, vlen, &en, e);
            if (!rc && en.hlc > s->last_hlc) s->last_hlc = en.hlc;
        }
    }
    return sn_iter_end(it, rc, "reading the replication log", e);
}

/* ---- digests ------------------------------------------------------------------- */

int sn_replica_have(sn_store *s, const char *origin, uint64_t *seq, sn_err *e)
{
    unsigned char k[LOG_KEY_LEN];
    sn_log_key(k, origin, UINT64_MAX);
    *seq = 0;
    rocksdb_iterator_t *it = sn_iter(s, CF_DEFAULT);
    rocksdb_iter_seek_for_prev(it, (const char *)k, LOG_KEY_LEN);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen == LOG_KEY_LEN && memcmp(key, k, LOG_KEY_LEN - 8) == 0)
            *seq = sn_get_be((const unsigned char *)key + LOG_KEY_LEN - 8, 8);
    }
    return sn_iter_end(it, SN_OK, "reading the replication log", e);
}

/* One seek per origin, not a walk over the log. */
int sn_replica_has_remote(sn_store *s)
{
    if (s->has_remote) return 1;
    sn_vv vv;
    sn_err e;
    if (sn_replica_vector(s, &vv, &e)) return 1;   /* unknown: as if it syncs (keeps more) */
    s->has_remote = vv.n > 1 || (vv.n == 1 && strcmp(vv.items[0].origin, s->origin) != 0);
    free(vv.items);
    return s->has_remote;
}

int sn_replica_vector(sn_store *s, sn_vv *out, sn_err *e)
{
    out->items = NULL;
    out->n = 0;
    size_t cap = 0;
    int rc = SN_OK;
    unsigned char k[LOG_KEY_LEN] = { 1, TAG_LOG };
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, k, 2, &bd);
    rocksdb_iter_seek(it, (const char *)k, 2);
    while (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen != LOG_KEY_LEN || key[0] != 1 || key[1] != TAG_LOG) break;
        memcpy(k, key, LOG_KEY_LEN - 8);
        memset(k + LOG_KEY_LEN - 8, 0xff, 8);
        rocksdb_iter_seek_for_prev(it, (const char *)k, LOG_KEY_LEN);
        if (!rocksdb_iter_valid(it)) break;
        key = rocksdb_iter_key(it, &klen);
        if ((rc = SN_GROW(out->items, out->n, cap, 8, e))) break;
        sn_vv_item *item = &out->items[out->n++];
        memcpy(item->origin, key + 2, SN_ORIGIN_LEN);
        item->origin[SN_ORIGIN_LEN] = 0;
        item->seq = sn_get_be((const unsigned char *)key + LOG_KEY_LEN - 8, 8);
        rocksdb_iter_next(it);
    }
    rc = sn_bound_end(bd, it, rc, "reading the replication log", e);
    if (rc) { free(out->items); out->items = NULL; out->n = 0; }
    return rc;
}

/* ---- reading entries --------------------------------------------------------------- */

/* Identity (and, for heads, version and timestamp) of a stored record. */
int sn_record_head(const unsigned char *bytes, size_t len, int cf, sn_head *h, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_record r;
    int rc = sn_record_decode(bytes, len, &a, &r, e);
    memset(&h->id, 0, sizeof h->id);
    h->version = 0;
    h->timestamp = 0;
    if (!rc) {
        const sn_value *hlc = sn_map_get(&r.fields, "hlc"), *o = sn_map_get(&r.fields, "origin");
        if (hlc && hlc->type == SN_INT) h->id.hlc = (uint64_t)hlc->u.i;
        if (o && o->type == SN_STR && o->u.s.len == SN_ORIGIN_LEN)
            memcpy(h->id.origin, o->u.s.p, SN_ORIGIN_LEN);
        const sn_value *v = sn_map_get(&r.fields, "version");
        if (cf == CF_WEIGHTS && v && v->type == SN_INT) h->version = (uint64_t)v->u.i;
        const sn_kind *kd = sn_kind_of(cf);
        const sn_value *t = kd && kd->time_field ? sn_map_get(&r.fields, kd->time_field) : NULL;
        if (t && t->type == SN_NUM) h->timestamp = t->u.n;
    }
    sn_arena_free(&a);
    h->cf = cf;
    h->bytes = bytes;
    h->len = len;
    return rc;
}

/* The stored bytes of the record with identity id at (cf, key), current or
 * kept as a conflict; SN_NOTFOUND when this store no longer holds it. */
static int find_record(sn_store *s, int cf, const unsigned char *key, size_t klen,
                       const sn_ident *id, sn_buf *out, sn_err *e)
{
    int rc = sn_get_copy(s, cf, key, klen, out, e);
    if (rc == SN_OK) {
        sn_head h;
        sn_err ignored;
        if (sn_record_head(out->data, out->len, cf, &h, &ignored) == SN_OK && sn_same_ident(&h.id, id))
            return SN_OK;
        free(out->data);
        out->data = NULL;
    } else if (rc != SN_NOTFOUND) {
        return rc;
    }
    unsigned char k[IDKEY_MAX];
    return sn_get_copy(s, CF_DEFAULT, k, sn_ident_key(k, TAG_CONFLICT, cf, key, klen, id), out, e);
}

int sn_replica_read(sn_store *s, const char *origin, uint64_t seq, sn_entry *en, sn_buf *bytes,
                    sn_err *e)
{
    bytes->data = NULL;
    bytes->len = 0;
    unsigned char k[LOG_KEY_LEN];
    sn_buf v;
    int rc = sn_get_copy(s, CF_DEFAULT, k, sn_log_key(k, origin, seq), &v, e);
    if (rc) return rc;
    rc = sn_entry_decode((const char *)v.data, v.len, en, e);
    free(v.data);
    if (rc) return rc;
    memcpy(en->origin, origin, SN_ORIGIN_LEN);
    en->seq = seq;
    if (en->kind != SN_KIND_PUT) return SN_OK;
    sn_ident id = { en->hlc, "" };
    memcpy(id.origin, origin, SN_ORIGIN_LEN);
    size_t lklen;
    /* a weights key names its write (a merge's identity is not its logger's) */
    if (en->cf == CF_WEIGHTS && (rc = sn_wkey_split(en->key, en->klen, &lklen, &id, e))) return rc;
    rc = find_record(s, en->cf, en->key, en->klen, &id, bytes, e);
    if (rc == SN_NOTFOUND) {
        /* replaced by something this store knows (whose entry the asker
         * will get too), or trimmed: pass on only what it superseded */
        en->kind = SN_KIND_DEL;
        rc = SN_OK;
    }
    return rc;
}

/* ---- gaps (salvage) ------------------------------------------------------------------ */

/* Entries lost from the middle of an origin's log (a salvaged copy) leave a
 * gap no sync would fill, since a vector says "up to seq". Each missing seq
 * becomes a skip with a refetch marker: a placeholder that keeps the log
 * contiguous, and that the next sync asks peers to fill whole. */
int sn_replica_fill_gaps(sn_store *s, uint64_t *filled, sn_err *e)
{
    unsigned char p[2] = { 1, TAG_LOG };
    char origin[SN_ORIGIN_LEN + 1] = "";
    uint64_t last = 0;
    int rc = SN_OK;
    *filled = 0;
    sn_entry ph;
    memset(&ph, 0, sizeof ph);
    ph.kind = SN_KIND_SKIP;
    ph.cf = CF_WEIGHTS;
    ph.key[0] = '?';
    ph.klen = 1;
    sn_buf v;
    rc = sn_entry_encode(&ph, &v, e);
    if (rc) return rc;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, 2, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != LOG_KEY_LEN || memcmp(k, p, 2) != 0) break;
        uint64_t seq = sn_get_be(k + 2 + SN_ORIGIN_LEN, 8);
        if (memcmp(origin, k + 2, SN_ORIGIN_LEN) != 0) {
            memcpy(origin, k + 2, SN_ORIGIN_LEN);
            last = 0;
        }
        for (uint64_t q = last + 1; q < seq; q++, (*filled)++) {
            unsigned char lk[LOG_KEY_LEN];
            sn_log_key(lk, origin, q);
            rocksdb_writebatch_put_cf(wb, s->cf[CF_DEFAULT], (const char *)lk, LOG_KEY_LEN,
                                      (const char *)v.data, v.len);
            lk[1] = TAG_SKIPPED;
            rocksdb_writebatch_put_cf(wb, s->cf[CF_DEFAULT], (const char *)lk, LOG_KEY_LEN, "", 0);
        }
        last = seq;
    }
    free(v.data);
    rc = sn_bound_end(bd, it, rc, "reading the replication log", e);
    char *err = NULL;
    if (!rc && *filled) rocksdb_write(s->db, s->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    return err ? sn_rocks_err(e, err, "filling the replication log") : rc;
}
