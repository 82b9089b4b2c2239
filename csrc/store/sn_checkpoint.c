/* Checkpoints: a named, replicated record of every layer's current
 * version, and the pin index ('P' keys) that keeps those versions from
 * being trimmed while the checkpoint exists. */
#include "store/sn_batch.h"
#include "store/sn_clock.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"
#include "store/sn_weights_int.h"

#include <stdlib.h>
#include <string.h>

static size_t cp_key(unsigned char *k, const char *id, size_t len)
{
    k[0] = SN_CP_PREFIX;
    memcpy(k + 1, id, len);
    return len + 1;
}

static int add_pin(sn_vlist *pins, sn_arena *a, const unsigned char *lk, size_t lklen,
                   const sn_ident *id, uint64_t version, sn_err *e)
{
    sn_value pin;
    int rc = sn_record_map(&sn_schema_pin, a, &pin, e);
    const char *copy = rc ? NULL : sn_arena_strdup(a, (const char *)lk, lklen - 5);
    const char *origin = copy ? sn_arena_strdup(a, id->origin, SN_ORIGIN_LEN) : NULL;
    if (!rc && !origin) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (rc) return rc;
    sn_map_set(&pin, "expert_id", sn_str(copy, lklen - 5));
    sn_map_set(&pin, "layer", sn_int((int64_t)sn_get_be(lk + lklen - 4, 4)));
    sn_map_set(&pin, "version", sn_int((int64_t)version));
    sn_map_set(&pin, "hlc", sn_int((int64_t)id->hlc));
    sn_map_set(&pin, "origin", sn_str(origin, SN_ORIGIN_LEN));
    return sn_vlist_push(pins, pin, e);
}

/* The current write of every expert/layer, this batch's writes included,
 * by identity: the current markers, no weights read. */
static int current_pins(sn_store *s, sn_batch *b, sn_arena *a, sn_vlist *pins, sn_err *e)
{
    unsigned char p[2] = { 1, TAG_CURRENT };
    int rc = SN_OK;
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, 2, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, 2); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 2 || memcmp(k, p, 2) != 0) break;
        const unsigned char *lk = k + 2;
        size_t lklen = klen - 2;
        if (sn_pending_find(b, lk, lklen)) continue;   /* the batch's own write, below */
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_ident id;
        uint64_t version = 0;
        rc = vlen == SN_ID_LEN ? sn_ident_get((const unsigned char *)v, &id, e)
                               : sn_fail(e, SN_ECORRUPT, "current-write marker is malformed");
        sn_hist h;
        int known = rc ? rc : sn_hist_get(s, lk, lklen, &id, &h, e);
        if (known == SN_NOTFOUND) rc = sn_merge_materialize(s, b, lk, lklen, &id, e);
        else if (known) rc = known;
        if (!rc) rc = sn_version_of(s, lk, lklen, &id, &version, e);
        if (!rc) rc = add_pin(pins, a, lk, lklen, &id, version, e);
    }
    rc = sn_bound_end(bd, it, rc, "reading the current-write markers", e);
    for (sn_pending *q = b ? b->pending : NULL; !rc && q; q = q->next)
        rc = add_pin(pins, a, q->prefix, q->prefix_len, &q->id, q->version, e);
    return rc;
}

int sn_create_checkpoint(sn_store *s, sn_batch *given, sn_value *cp, char id[37], sn_err *e)
{
    int rc = sn_schema_check(&sn_schema_checkpoint, cp, 1, e);
    if (rc) return rc;
    sn_batch *b = sn_batch_or_temp(s, given, e);
    if (!b) return e->code;
    sn_arena a;
    sn_arena_init(&a);
    sn_vlist pins = {0};
    sn_value rec, pinlist;
    rc = current_pins(s, b, &a, &pins, e);
    if (!rc) rc = sn_vlist_finish(&pins, &a, &pinlist, e);
    if (!rc) rc = sn_record_map(&sn_schema_checkpoint, &a, &rec, e);
    if (!rc) {
        sn_uuid(id);
        sn_copy_fields(&rec, cp);
        sn_map_set(&rec, "id", sn_str(id, 36));
        sn_map_set(&rec, "created_at", sn_num(sn_now()));
        sn_map_set(&rec, "hlc", sn_int((int64_t)sn_next_hlc(s)));
        sn_map_set(&rec, "origin", sn_cstr(s->origin));
        sn_map_set(&rec, "pins", pinlist);
        b->has_checkpoint = 1;
        unsigned char k[1 + 36];
        rc = sn_batch_put_record(b, CF_CHECKPOINTS, k, cp_key(k, id, 36), SN_REC_CHECKPOINT,
                                 &rec, NULL, 0, SN_CODEC_NONE, e);
        if (!rc)
            rc = sn_replica_note(b, CF_CHECKPOINTS, k, 37, 0,
                                 (uint64_t)sn_map_get(&rec, "hlc")->u.i, 0, NULL, 0, e);
    }
    for (size_t i = 0; !rc && i < pinlist.u.a.n; i++) {
        unsigned char k[SN_PIN_KEY_MAX];
        size_t klen = sn_pin_key(k, &pinlist.u.a.items[i], id, 36);
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_CHECKPOINTS], (const char *)k, klen, "", 0);
    }
    free(pins.items);
    sn_arena_free(&a);
    return sn_batch_finish(b, given, rc, e);
}

int sn_get_checkpoint(sn_store *s, const char *id, size_t len, sn_arena *a, sn_value *out,
                      sn_err *e)
{
    int rc = sn_check_id(id, len, "checkpoint id", e);
    if (rc) return rc;
    unsigned char k[1 + SN_MAX_ID_LEN];
    return sn_get_record(s, CF_CHECKPOINTS, k, cp_key(k, id, len), SN_REC_CHECKPOINT, a, out, e);
}

typedef struct cp_order { double created; int64_t hlc; sn_value id; } cp_order;

static int cp_cmp(const void *x, const void *y)
{
    const cp_order *a = x, *b = y;
    if (a->created != b->created) return a->created < b->created ? -1 : 1;
    return (a->hlc > b->hlc) - (a->hlc < b->hlc);
}

int sn_list_checkpoints(sn_store *s, sn_arena *a, sn_value *out, sn_err *e)
{
    cp_order *order = NULL;
    size_t n = 0, cap = 0;
    int rc = SN_OK;
    char prefix = SN_CP_PREFIX;
    rocksdb_iterator_t *it = sn_iter(s, CF_CHECKPOINTS);
    for (rocksdb_iter_seek(it, &prefix, 1); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (k[0] != SN_CP_PREFIX) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_record r;
        rc = sn_record_decode(v, vlen, a, &r, e);
        if (!rc && r.type != SN_REC_CHECKPOINT) rc = sn_fail(e, SN_ECORRUPT, "wrong record type");
        if (rc) { sn_record_err(e, rc, CF_CHECKPOINTS, (const unsigned char *)k, klen); break; }
        if ((rc = SN_GROW(order, n, cap, 16, e))) break;
        const sn_value *created = sn_map_get(&r.fields, "created_at");
        const sn_value *hlc = sn_map_get(&r.fields, "hlc");
        order[n].created = created->type == SN_NUM ? created->u.n : 0;
        order[n].hlc = hlc->type == SN_INT ? hlc->u.i : 0;
        order[n].id = *sn_map_get(&r.fields, "id");
        n++;
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_CHECKPOINTS], e);
    sn_vlist l = {0};
    if (!rc && n) qsort(order, n, sizeof *order, cp_cmp);
    for (size_t i = 0; !rc && i < n; i++) rc = sn_vlist_push(&l, order[i].id, e);
    free(order);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}

static uint64_t pin_hlc(const sn_value *p)
{
    const sn_value *h = sn_map_get(p, "hlc");
    return h && h->type == SN_INT ? (uint64_t)h->u.i : 0;
}

static const char *pin_origin(const sn_value *p)
{
    const sn_value *o = sn_map_get(p, "origin");
    return o && o->type == SN_STR ? o->u.s.p : "?";
}

/* The pinned write's record: by identity (a format-1 pin, without one, by
 * its version number). */
int sn_pinned_weights(sn_store *s, const sn_value *p, sn_weights_view *v, sn_err *e)
{
    const sn_value *x = sn_map_get(p, "expert_id"), *o = sn_map_get(p, "origin");
    uint32_t layer = (uint32_t)sn_map_get(p, "layer")->u.i;
    if (!o || o->type != SN_STR)
        return sn_get_weights(s, x->u.s.p, x->u.s.len, layer,
                              (uint64_t)sn_map_get(p, "version")->u.i, v, e);
    if (o->u.s.len != SN_ORIGIN_LEN) return sn_fail(e, SN_ECORRUPT, "pin origin is malformed");
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen = sn_layer_key(lk, x->u.s.p, x->u.s.len, layer);
    sn_ident id = { pin_hlc(p), "" };
    memcpy(id.origin, o->u.s.p, SN_ORIGIN_LEN);
    return sn_get_weights_by_id(s, lk, lklen, &id, v, e);
}

/* Checkpoint id and its pins, for a write that follows (restore, delete):
 * decoded into a, which the caller frees whatever the result. */
static int checkpoint_for_write(sn_store *s, const char *id, size_t len, sn_arena *a,
                                sn_value *cp, const sn_value **pins, sn_err *e)
{
    *pins = NULL;
    int rc = sn_check_writable(s, e);
    if (!rc) rc = sn_get_checkpoint(s, id, len, a, cp, e);
    if (!rc) *pins = sn_map_get(cp, "pins");
    return rc;
}

int sn_restore_checkpoint(sn_store *s, const char *id, size_t len, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value cp;
    const sn_value *pins;
    int rc = checkpoint_for_write(s, id, len, &a, &cp, &pins, e);
    sn_batch *b = rc ? NULL : sn_batch_new(s);
    if (!rc && !b) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    /* Restoring writes each pinned version again as a new version: history
     * stays append-only, and peers see the restore as ordinary writes. */
    for (size_t i = 0; !rc && pins && pins->type == SN_ARRAY && i < pins->u.a.n; i++) {
        const sn_value *p = &pins->u.a.items[i];
        const sn_value *x = sn_map_get(p, "expert_id");
        int64_t layer = sn_map_get(p, "layer")->u.i;
        sn_weights_view v;
        rc = sn_pinned_weights(s, p, &v, e);
        if (rc == SN_NOTFOUND)
            rc = sn_fail(e, SN_EIO, "checkpoint pins %.*s layer %lld (%.8s@%llu), which this store "
                         "does not hold", (int)x->u.s.len, x->u.s.p, (long long)layer,
                         pin_origin(p), (unsigned long long)pin_hlc(p));
        if (rc) break;
        float *buf = malloc((v.nw + v.nb + 1) * sizeof(float));
        if (!buf) rc = sn_fail(e, SN_ENOMEM, "out of memory");
        if (!rc) rc = sn_weights_view_load(&v, buf, buf + v.nw, e);
        if (!rc) {
            const sn_value *shape = sn_map_get(&v.rec.fields, "shape");
            int64_t dims[SN_MAX_SHAPE_DIMS];
            size_t nd = shape->type == SN_ARRAY ? shape->u.a.n : 0;
            if (nd > SN_MAX_SHAPE_DIMS) nd = 0;
            for (size_t d = 0; d < nd; d++) dims[d] = shape->u.a.items[d].u.i;
            sn_weights_in in = { x->u.s.p, x->u.s.len, layer, buf, v.nw, buf + v.nw, v.nb,
                                 dims, nd, 0 };
            uint64_t nv;
            rc = sn_put_weights(s, b, &in, &nv, e);
        }
        free(buf);
        sn_weights_view_release(&v);
    }
    if (b) {
        if (!rc) rc = sn_batch_commit(b, e);
        sn_batch_free(b);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_delete_checkpoint(sn_store *s, sn_batch *given, const char *id, size_t len, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value cp;
    const sn_value *pins;
    int rc = checkpoint_for_write(s, id, len, &a, &cp, &pins, e);
    size_t npins = pins && pins->type == SN_ARRAY ? pins->u.a.n : 0;
    sn_batch *b = rc ? NULL : sn_batch_or_temp(s, given, e);
    if (!rc && !b) rc = e->code;
    if (!rc) {
        unsigned char k[SN_PIN_KEY_MAX];
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_CHECKPOINTS], (const char *)k,
                                     cp_key(k, id, len));
        for (size_t i = 0; i < npins; i++)
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_CHECKPOINTS], (const char *)k,
                                         sn_pin_key(k, &pins->u.a.items[i], id, len));
        /* replicated as a delete entry whose prev is the checkpoint removed */
        const sn_value *ph = sn_map_get(&cp, "hlc"), *po = sn_map_get(&cp, "origin");
        if (ph && ph->type == SN_INT && po && po->type == SN_STR)
            rc = sn_replica_note(b, CF_CHECKPOINTS, k, cp_key(k, id, len), 1,
                                 sn_next_hlc(s), (uint64_t)ph->u.i, po->u.s.p, po->u.s.len, e);
        rc = sn_batch_finish(b, given, rc, e);
    }
    /* Versions this checkpoint alone kept alive can go now. Inside a
     * caller's batch the pins are not gone yet; the next put collects them. */
    if (!rc && !given && s->opts.max_weight_versions) {
        b = sn_batch_new(s);
        if (!b) rc = sn_fail(e, SN_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < npins; i++) {
            const sn_value *p = &pins->u.a.items[i];
            const sn_value *x = sn_map_get(p, "expert_id");
            unsigned char lk[SN_LAYER_KEY_MAX];
            size_t lklen = sn_layer_key(lk, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(p, "layer")->u.i);
            rc = sn_trim_versions(s, b, lk, lklen, e);
        }
        if (b) rc = sn_batch_finish(b, NULL, rc, e);
    }
    sn_arena_free(&a);
    return rc;
}

/* After records were lost wholesale (salvage): pin index entries of a
 * checkpoint that did not make it go too, so nothing pins for no one. */
int sn_checkpoint_reconcile(sn_store *s, sn_err *e)
{
    char p = SN_PIN_PREFIX;
    int rc = SN_OK;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_iterator_t *it = sn_iter(s, CF_CHECKPOINTS);
    for (rocksdb_iter_seek(it, &p, 1); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 37 || k[0] != SN_PIN_PREFIX) break;
        unsigned char ck[37];
        int found;
        rc = sn_key_exists(s, CF_CHECKPOINTS, ck, cp_key(ck, (const char *)k + klen - 36, 36), &found,
                           "reading checkpoints", e);
        if (!rc && !found) rocksdb_writebatch_delete_cf(wb, s->cf[CF_CHECKPOINTS], (const char *)k, klen);
    }
    rc = sn_iter_end(it, rc, "reading checkpoints", e);
    char *err = NULL;
    if (!rc) rocksdb_write(s->db, s->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    return err ? sn_rocks_err(e, err, "writing checkpoints") : rc;
}
