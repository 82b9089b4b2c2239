/* Replication log, remote apply and conflict store (see sn_replica.h).
 *
 * Default column family key ranges (0x01 keeps them apart from the plain
 * "synaptic.origin" key):
 *   01 'L' origin(36) seq(8 BE)                     -> log entry record
 *   01 'X' cf(1) klen(2 BE) key hlc(8 BE) origin(36) -> a conflict: record bytes
 *   01 'S' cf(1) klen(2 BE) key hlc(8 BE) origin(36) -> "" (superseded identity) */
#include "store/sn_replica.h"
#include "store/sn_store_int.h"

#include <stdlib.h>
#include <string.h>

/* entries name the store's column families by index */
_Static_assert((int)CF_WEIGHTS == (int)SN_ENTRY_CF_WEIGHTS &&
                   (int)CF_CONFIG == (int)SN_ENTRY_CF_CONFIG &&
                   (int)CF_CHECKPOINTS == (int)SN_ENTRY_CF_CHECKPOINTS,
               "sn_entry.h's column families disagree with the store's");

#define TAG_LOG 'L'
#define TAG_CONFLICT 'X'
#define TAG_SUPERSEDED 'S'
#define LOG_KEY_LEN (2 + SN_ORIGIN_LEN + 8)
#define IDKEY_MAX (5 + SN_REPL_KEY_MAX + 8 + SN_ORIGIN_LEN)

struct sn_repl_note {
    struct sn_repl_note *next;
    size_t len;
    unsigned char val[];
};

int sn_replica_cf_weights(void) { return CF_WEIGHTS; }
int sn_replica_cf_config(void) { return CF_CONFIG; }
int sn_replica_cf_checkpoints(void) { return CF_CHECKPOINTS; }

size_t sn_replica_layer_prefix(unsigned char *k, const char *expert, size_t len, uint32_t layer)
{
    return sn_wkey(k, expert, len, layer, 0) - 8;
}

uint64_t sn_replica_local_seq(const sn_store *s) { return s->repl_seq; }

static size_t log_key(unsigned char *k, const char *origin, uint64_t seq)
{
    k[0] = 1;
    k[1] = TAG_LOG;
    memcpy(k + 2, origin, SN_ORIGIN_LEN);
    sn_put_be(k + 2 + SN_ORIGIN_LEN, seq, 8);
    return LOG_KEY_LEN;
}

static size_t rec_prefix(unsigned char *k, char tag, int cf, const unsigned char *key, size_t klen)
{
    k[0] = 1;
    k[1] = (unsigned char)tag;
    k[2] = (unsigned char)cf;
    sn_put_be(k + 3, klen, 2);
    memcpy(k + 5, key, klen);
    return 5 + klen;
}

static size_t ident_key(unsigned char *k, char tag, int cf, const unsigned char *key, size_t klen,
                        const sn_ident *id)
{
    size_t n = rec_prefix(k, tag, cf, key, klen);
    sn_put_be(k + n, id->hlc, 8);
    memcpy(k + n + 8, id->origin, SN_ORIGIN_LEN);
    return n + 8 + SN_ORIGIN_LEN;
}

static int same_ident(const sn_ident *a, const sn_ident *b)
{
    return a->hlc == b->hlc && strcmp(a->origin, b->origin) == 0;
}

/* Copy of the value at key, or SN_NOTFOUND. */
static int get_copy(sn_store *s, int cf, const unsigned char *k, size_t klen, sn_buf *out,
                    sn_err *e)
{
    char *err = NULL;
    out->data = NULL;
    out->len = 0;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[cf], (const char *)k, klen, &err);
    if (err) return sn_rocks_err(e, err, "replication read");
    if (!p) return SN_NOTFOUND;
    size_t n;
    const char *v = rocksdb_pinnableslice_value(p, &n);
    out->data = malloc(n ? n : 1);
    if (out->data) {
        memcpy(out->data, v, n);
        out->len = n;
    }
    rocksdb_pinnableslice_destroy(p);
    return out->data ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
}

static int key_exists(sn_store *s, const unsigned char *k, size_t klen, int *found, sn_err *e)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[CF_DEFAULT], (const char *)k, klen, &err);
    if (err) return sn_rocks_err(e, err, "replication read");
    *found = p != NULL;
    if (p) rocksdb_pinnableslice_destroy(p);
    return SN_OK;
}

/* ---- local writes: notes in the batch, appended at commit ---------------------- */

int sn_replica_note(sn_batch *b, int cf, const void *key, size_t klen, unsigned kind,
                    uint64_t hlc, uint64_t prev_hlc, const char *prev_origin, size_t prev_len,
                    sn_err *e)
{
    sn_entry en;
    memset(&en, 0, sizeof en);
    if (klen > SN_REPL_KEY_MAX) return sn_fail(e, SN_EARG, "replicated key too long");
    en.kind = kind;
    en.cf = cf;
    memcpy(en.key, key, klen);
    en.klen = klen;
    en.hlc = hlc;
    /* a predecessor from a store without origins (none yet) is no predecessor */
    if (prev_origin && prev_len == SN_ORIGIN_LEN) {
        en.prev.hlc = prev_hlc;
        memcpy(en.prev.origin, prev_origin, SN_ORIGIN_LEN);
    }
    sn_buf v;
    int rc = sn_entry_encode(&en, &v, e);
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

void sn_replica_precommit(sn_batch *b, uint64_t *saved_seq)
{
    *saved_seq = b->s->repl_seq;
    if (!b->repl) return;
    rocksdb_writebatch_set_save_point(b->wb);
    unsigned char k[LOG_KEY_LEN];
    for (struct sn_repl_note *n = b->repl; n; n = n->next)
        rocksdb_writebatch_put_cf(b->wb, b->s->cf[CF_DEFAULT], (const char *)k,
                                  log_key(k, b->s->origin, ++b->s->repl_seq),
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
    log_key(k, s->origin, UINT64_MAX);
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
    log_key(k, origin, UINT64_MAX);
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
int sn_replica_vector(sn_store *s, sn_vv *out, sn_err *e)
{
    out->items = NULL;
    out->n = 0;
    size_t cap = 0;
    int rc = SN_OK;
    unsigned char k[LOG_KEY_LEN] = { 1, TAG_LOG };
    rocksdb_iterator_t *it = sn_iter(s, CF_DEFAULT);
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
    rc = sn_iter_end(it, rc, "reading the replication log", e);
    if (rc) { free(out->items); out->items = NULL; out->n = 0; }
    return rc;
}

/* ---- reading entries --------------------------------------------------------------- */

/* Identity (and, for heads, version and timestamp) of a stored record. */
static int record_head(const unsigned char *bytes, size_t len, int cf, sn_head *h, sn_err *e)
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
        const char *tf = cf == CF_WEIGHTS ? "timestamp" : cf == CF_CONFIG ? "updated_at" : "created_at";
        const sn_value *t = sn_map_get(&r.fields, tf);
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
    int rc = get_copy(s, cf, key, klen, out, e);
    if (rc == SN_OK) {
        sn_head h;
        sn_err ignored;
        if (record_head(out->data, out->len, cf, &h, &ignored) == SN_OK && same_ident(&h.id, id))
            return SN_OK;
        free(out->data);
        out->data = NULL;
    } else if (rc != SN_NOTFOUND) {
        return rc;
    }
    unsigned char k[IDKEY_MAX];
    return get_copy(s, CF_DEFAULT, k, ident_key(k, TAG_CONFLICT, cf, key, klen, id), out, e);
}

int sn_replica_read(sn_store *s, const char *origin, uint64_t seq, sn_entry *en, sn_buf *bytes,
                    sn_err *e)
{
    bytes->data = NULL;
    bytes->len = 0;
    unsigned char k[LOG_KEY_LEN];
    sn_buf v;
    int rc = get_copy(s, CF_DEFAULT, k, log_key(k, origin, seq), &v, e);
    if (rc) return rc;
    rc = sn_entry_decode((const char *)v.data, v.len, en, e);
    free(v.data);
    if (rc) return rc;
    memcpy(en->origin, origin, SN_ORIGIN_LEN);
    en->seq = seq;
    if (en->kind != SN_KIND_PUT) return SN_OK;
    sn_ident id = { en->hlc, "" };
    memcpy(id.origin, origin, SN_ORIGIN_LEN);
    rc = find_record(s, en->cf, en->key, en->klen, &id, bytes, e);
    if (rc == SN_NOTFOUND) {
        /* replaced by something this store knows (whose entry the asker
         * will get too), or trimmed: pass on only what it superseded */
        en->kind = SN_KIND_DEL;
        rc = SN_OK;
    }
    return rc;
}

/* ---- checking a peer's record ----------------------------------------------------- */

static int expect_str(const sn_value *f, const char *name, const unsigned char *p, size_t len,
                      sn_err *e)
{
    const sn_value *v = sn_map_get(f, name);
    if (!v || v->type != SN_STR || v->u.s.len != len || memcmp(v->u.s.p, p, len) != 0)
        return sn_fail(e, SN_ECORRUPT, "record does not belong under its key");
    return SN_OK;
}

int sn_replica_check(const sn_entry *en, const unsigned char *bytes, size_t len, sn_err *e)
{
    static const unsigned types[CF_COUNT] = { 0, SN_REC_WEIGHTS, SN_REC_CONFIG, 0,
                                              SN_REC_CHECKPOINT, 0 };
    if (en->cf < 0 || en->cf >= CF_COUNT || !types[en->cf])
        return sn_fail(e, SN_ECORRUPT, "entry names a column family that is not replicated");
    if (en->cf == CF_WEIGHTS) {
        /* the whole payload is decoded and its CRC checked, not only the meta */
        int rc = sn_weights_verify(en->key, en->klen, (const char *)bytes, len, e);
        if (rc) return rc;
    }
    sn_arena a;
    sn_arena_init(&a);
    sn_record r;
    int rc = sn_record_decode(bytes, len, &a, &r, e);
    if (!rc && r.type != types[en->cf]) rc = sn_fail(e, SN_ECORRUPT, "record has the wrong type");
    if (!rc && en->cf != CF_WEIGHTS && r.raw_len)
        rc = sn_fail(e, SN_ECORRUPT, "unexpected payload");
    if (!rc && en->cf == CF_CONFIG) rc = expect_str(&r.fields, "expert_id", en->key, en->klen, e);
    if (!rc && en->cf == CF_CHECKPOINTS)
        rc = en->klen < 2 || en->key[0] != SN_CP_PREFIX
                 ? sn_fail(e, SN_ECORRUPT, "malformed checkpoint key")
                 : expect_str(&r.fields, "id", en->key + 1, en->klen - 1, e);
    if (!rc) {
        const sn_value *hlc = sn_map_get(&r.fields, "hlc"), *o = sn_map_get(&r.fields, "origin");
        if (!hlc || hlc->type != SN_INT || (uint64_t)hlc->u.i != en->hlc)
            rc = sn_fail(e, SN_ECORRUPT, "record hlc disagrees with its entry");
        else if (!o || o->type != SN_STR || o->u.s.len != SN_ORIGIN_LEN ||
                 memcmp(o->u.s.p, en->origin, SN_ORIGIN_LEN) != 0)
            rc = sn_fail(e, SN_ECORRUPT, "record origin disagrees with its entry");
    }
    sn_arena_free(&a);
    return rc;
}

/* ---- applying a peer's entry --------------------------------------------------------- */

static int latest_beats(const sn_head *a, const sn_head *b)
{
    if (a->id.hlc != b->id.hlc) return a->id.hlc > b->id.hlc;
    return strcmp(a->id.origin, b->id.origin) > 0;
}

static int beats(const sn_resolver *r, const sn_head *a, const sn_head *b)
{
    switch (r ? r->strategy : SN_RESOLVE_LATEST) {
    case SN_RESOLVE_HIGHEST_VERSION:
        if (a->version != b->version) return a->version > b->version;
        break;
    case SN_RESOLVE_PREFER_LOCAL:
        if (a->local != b->local) return a->local;
        break;
    case SN_RESOLVE_CUSTOM: {
        int w = r->fn ? r->fn(r->ud, a, b) : -1;
        if (w >= 0) return w;
        break;
    }
    default:
        break;
    }
    return latest_beats(a, b);
}

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
    int rc = get_copy(s, cf, key, klen, &cur, e);
    if (rc == SN_OK) {
        sn_head h;
        rc = record_head(cur.data, cur.len, cf, &h, e);
        h.local = strcmp(h.id.origin, s->origin) == 0;
        h.where = 1;
        if (rc) free(cur.data);
        else rc = heads_push(hs, &h, cur.data, e);
    } else if (rc == SN_NOTFOUND) {
        rc = SN_OK;
    }
    if (rc) return rc;
    unsigned char p[IDKEY_MAX];
    size_t plen = rec_prefix(p, TAG_CONFLICT, cf, key, klen);
    rocksdb_iterator_t *it = sn_iter(s, CF_DEFAULT);
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
        rc = record_head(copy, vlen, cf, &h, e);
        /* the key names the identity even if the record lacks one */
        h.id.hlc = sn_get_be((const unsigned char *)k + plen, 8);
        memcpy(h.id.origin, k + plen + 8, SN_ORIGIN_LEN);
        h.id.origin[SN_ORIGIN_LEN] = 0;
        h.local = strcmp(h.id.origin, s->origin) == 0;
        h.where = 2;
        if (rc) free(copy);
        else rc = heads_push(hs, &h, copy, e);
    }
    return sn_iter_end(it, rc, "reading the replication log", e);
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

static int merge(sn_store *s, sn_batch *b, const sn_entry *en, const unsigned char *bytes,
                 size_t len, const sn_resolver *r, sn_apply_result *res, sn_err *e)
{
    heads hs = { 0 };
    unsigned char k[IDKEY_MAX];
    int rc = load_heads(s, en->cf, en->key, en->klen, &hs, e);
    const sn_head *old_current = NULL;
    for (size_t i = 0; !rc && i < hs.n; i++)
        if (hs.h[i].where == 1) old_current = &hs.h[i];
    sn_head old_cur = old_current ? *old_current : (sn_head){ 0 };
    int had_current = old_current != NULL;
    unsigned char *removed = NULL;

    /* the predecessor is replaced: it leaves the heads for good */
    if (!rc && en->prev.origin[0]) {
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                  ident_key(k, TAG_SUPERSEDED, en->cf, en->key, en->klen, &en->prev),
                                  "", 0);
        for (size_t i = 0; i < hs.n; i++) {
            if (!same_ident(&hs.h[i].id, &en->prev)) continue;
            if (hs.h[i].where == 2)
                rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                             ident_key(k, TAG_CONFLICT, en->cf, en->key, en->klen,
                                                       &hs.h[i].id));
            removed = hs.owned[i];   /* old_cur may still point at it */
            hs.h[i] = hs.h[hs.n - 1];
            hs.owned[i] = hs.owned[hs.n - 1];
            hs.n--;
            break;
        }
    }
    if (!rc && en->kind == SN_KIND_PUT) {
        sn_head h;
        rc = record_head(bytes, len, en->cf, &h, e);
        h.local = strcmp(en->origin, s->origin) == 0;
        h.where = 0;
        int known = 0, superseded = 0;
        for (size_t i = 0; !rc && i < hs.n; i++) known |= same_ident(&hs.h[i].id, &h.id);
        if (!rc && !known)
            rc = key_exists(s, k, ident_key(k, TAG_SUPERSEDED, en->cf, en->key, en->klen, &h.id),
                            &superseded, e);
        if (!rc && !known && !superseded) {
            rc = heads_push(&hs, &h, NULL, e);
            res->stored = !rc;
        }
    }
    if (rc) { heads_free(&hs); free(removed); return rc; }

    /* a canonical order, then a fold: the same heads give the same winner
     * whatever order they arrived in */
    sn_head *hv = hs.h;
    unsigned char **ov = hs.owned;
    for (size_t i = 1; i < hs.n; i++)   /* insertion sort keeps owned[] in step */
        for (size_t j = i; j > 0 && head_order(&hv[j - 1], &hv[j]) > 0; j--) {
            sn_head t = hv[j]; hv[j] = hv[j - 1]; hv[j - 1] = t;
            unsigned char *o = ov[j]; ov[j] = ov[j - 1]; ov[j - 1] = o;
        }
    size_t win = 0;
    for (size_t i = 1; i < hs.n; i++)
        if (beats(r, &hv[i], &hv[win])) win = i;

    if (hs.n == 0) {
        if (had_current) {
            rocksdb_writebatch_delete_cf(b->wb, s->cf[en->cf], (const char *)en->key, en->klen);
            if (en->cf == CF_CHECKPOINTS)
                rc = checkpoint_pins(b, en->key, en->klen, old_cur.bytes, old_cur.len, 0, e);
        }
    } else if (hv[win].where != 1) {
        if (had_current && en->cf == CF_CHECKPOINTS)
            rc = checkpoint_pins(b, en->key, en->klen, old_cur.bytes, old_cur.len, 0, e);
        rocksdb_writebatch_put_cf(b->wb, s->cf[en->cf], (const char *)en->key, en->klen,
                                  (const char *)hv[win].bytes, hv[win].len);
        if (!rc && en->cf == CF_CHECKPOINTS)
            rc = checkpoint_pins(b, en->key, en->klen, hv[win].bytes, hv[win].len, 1, e);
        if (hv[win].where == 2)
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                         ident_key(k, TAG_CONFLICT, en->cf, en->key, en->klen,
                                                   &hv[win].id));
    }
    for (size_t i = 0; !rc && i < hs.n; i++) {
        if (i == win || hv[i].where == 2) continue;
        /* a head that lost: kept, never dropped */
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                  ident_key(k, TAG_CONFLICT, en->cf, en->key, en->klen, &hv[i].id),
                                  (const char *)hv[i].bytes, hv[i].len);
        res->conflicts++;
    }
    heads_free(&hs);
    free(removed);
    return rc;
}

int sn_replica_apply(sn_store *s, const sn_entry *en, const unsigned char *bytes, size_t len,
                     const sn_resolver *r, sn_apply_result *res, sn_err *e)
{
    memset(res, 0, sizeof *res);
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    if (strlen(en->origin) != SN_ORIGIN_LEN || en->klen == 0 || en->klen > SN_REPL_KEY_MAX ||
        en->kind > SN_KIND_SKIP || en->seq == 0)
        return sn_fail(e, SN_ECORRUPT, "malformed log entry");
    if (en->kind == SN_KIND_PUT && !bytes)
        return sn_fail(e, SN_ECORRUPT, "a put entry without its record");
    unsigned char k[LOG_KEY_LEN];
    int found;
    rc = key_exists(s, k, log_key(k, en->origin, en->seq), &found, e);
    if (rc) return rc;
    if (found) { res->duplicate = 1; return SN_OK; }

    sn_batch *b = sn_batch_new(s);
    if (!b) return sn_fail(e, SN_ENOMEM, "out of memory");
    sn_buf v;
    rc = sn_entry_encode(en, &v, e);
    if (!rc) {
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                  log_key(k, en->origin, en->seq), (const char *)v.data, v.len);
        free(v.data);
    }
    if (!rc && en->kind != SN_KIND_SKIP) rc = merge(s, b, en, bytes, len, r, res, e);
    if (!rc) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    /* HLC receive rule: our next write orders after what we have seen */
    if (!rc && en->hlc > s->last_hlc) s->last_hlc = en->hlc;
    return rc;
}

/* ---- verify ------------------------------------------------------------------------ */

static int verify_log(const unsigned char *k, size_t klen, const char *val, size_t vlen,
                      sn_replica_walk *w, sn_err *e)
{
    if (klen != LOG_KEY_LEN || !sn_origin_ok(k + 2, SN_ORIGIN_LEN))
        return sn_fail(e, SN_ECORRUPT, "malformed replication log key");
    uint64_t seq = sn_get_be(k + 2 + SN_ORIGIN_LEN, 8);
    int same = w->started && memcmp(w->origin, k + 2, SN_ORIGIN_LEN) == 0;
    uint64_t want = same ? w->seq + 1 : 1;
    memcpy(w->origin, k + 2, SN_ORIGIN_LEN);
    w->seq = seq;
    w->started = 1;
    if (seq != want)
        return sn_fail(e, SN_ECORRUPT, "replication log of %.36s has seq %llu where %llu was due",
                       (const char *)k + 2, (unsigned long long)seq, (unsigned long long)want);
    sn_entry en;
    return sn_entry_decode(val, vlen, &en, e);
}

static int verify_ident_key(const unsigned char *k, size_t klen, const char *val, size_t vlen,
                            sn_err *e)
{
    if (klen < 5 || !sn_entry_cf_known(k[2]))
        return sn_fail(e, SN_ECORRUPT, "malformed conflict key");
    size_t rklen = (size_t)sn_get_be(k + 3, 2);
    if (rklen == 0 || rklen > SN_REPL_KEY_MAX || klen != 5 + rklen + 8 + SN_ORIGIN_LEN ||
        !sn_origin_ok(k + 5 + rklen + 8, SN_ORIGIN_LEN))
        return sn_fail(e, SN_ECORRUPT, "malformed conflict key");
    if (k[1] == TAG_SUPERSEDED)
        return vlen ? sn_fail(e, SN_ECORRUPT, "superseded marker with a value") : SN_OK;
    sn_entry en;
    memset(&en, 0, sizeof en);
    en.kind = SN_KIND_PUT;
    en.cf = k[2];
    memcpy(en.key, k + 5, rklen);
    en.klen = rklen;
    en.hlc = sn_get_be(k + 5 + rklen, 8);
    memcpy(en.origin, k + 5 + rklen + 8, SN_ORIGIN_LEN);
    return sn_replica_check(&en, (const unsigned char *)val, vlen, e);
}

int sn_replica_verify(const unsigned char *k, size_t klen, const char *val, size_t vlen,
                      sn_replica_walk *w, int *mine, sn_err *e)
{
    *mine = klen >= 2 && k[0] == 1;
    if (!*mine) return SN_OK;
    switch (k[1]) {
    case TAG_LOG: return verify_log(k, klen, val, vlen, w, e);
    case TAG_CONFLICT:
    case TAG_SUPERSEDED: return verify_ident_key(k, klen, val, vlen, e);
    default: return sn_fail(e, SN_ECORRUPT, "unknown replication key");
    }
}

int sn_replica_raw(sn_store *s, const unsigned char *k, size_t klen, const char *val, size_t vlen,
                   sn_err *e)
{
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    if (klen < 2 || k[0] != 1) return sn_fail(e, SN_EARG, "not a replication key");
    char *err = NULL;
    if (val)
        rocksdb_put_cf(s->db, s->wopts, s->cf[CF_DEFAULT], (const char *)k, klen, val, vlen, &err);
    else
        rocksdb_delete_cf(s->db, s->wopts, s->cf[CF_DEFAULT], (const char *)k, klen, &err);
    return err ? sn_rocks_err(e, err, "raw replication write") : SN_OK;
}

/* ---- the conflict store ------------------------------------------------------------- */

int sn_replica_conflicts(sn_store *s, int cf, const void *prefix, size_t plen, size_t key_len,
                         sn_arena *a, sn_conflict **out, size_t *n, sn_err *e)
{
    *out = NULL;
    *n = 0;
    if (plen > key_len || key_len > SN_REPL_KEY_MAX) return sn_fail(e, SN_EARG, "key too long");
    /* conflict keys carry the record key's length before the key, so one
     * length and a prefix make one contiguous range */
    unsigned char p[IDKEY_MAX];
    p[0] = 1;
    p[1] = TAG_CONFLICT;
    p[2] = (unsigned char)cf;
    sn_put_be(p + 3, key_len, 2);
    memcpy(p + 5, prefix, plen);
    size_t cap = 0;
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_DEFAULT);
    for (rocksdb_iter_seek(it, (const char *)p, 5 + plen); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 5 + plen || memcmp(k, p, 5 + plen) != 0) break;
        size_t rlen = key_len;
        if (klen != 5 + rlen + 8 + SN_ORIGIN_LEN) continue;
        const char *v = rocksdb_iter_value(it, &vlen);
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            sn_conflict *q = sn_arena_alloc(a, ncap * sizeof *q);
            if (!q) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
            if (*n) memcpy(q, *out, *n * sizeof *q);
            *out = q;
            cap = ncap;
        }
        sn_conflict *c = &(*out)[(*n)++];
        unsigned char *kc = sn_arena_alloc(a, rlen + 1), *vc = sn_arena_alloc(a, vlen + 1);
        if (!kc || !vc) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
        memcpy(kc, k + 5, rlen);
        memcpy(vc, v, vlen);
        c->key = kc;
        c->klen = rlen;
        c->bytes = vc;
        c->len = vlen;
        c->id.hlc = sn_get_be(k + 5 + rlen, 8);
        memcpy(c->id.origin, k + 5 + rlen + 8, SN_ORIGIN_LEN);
        c->id.origin[SN_ORIGIN_LEN] = 0;
    }
    return sn_iter_end(it, rc, "reading the replication log", e);
}
