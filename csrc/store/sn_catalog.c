/* Configs, checkpoints (with their weight pins), system state and metrics. */
#include "store/sn_store_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copy a schema-checked map's fields onto a record map of the same
 * schema (the check guarantees every key is a field name under 64 bytes). */
static void copy_fields(sn_value *rec, const sn_value *src)
{
    for (size_t i = 0; i < src->u.a.n; i++) {
        const sn_value *k = &src->u.a.items[2 * i];
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)k->u.s.len, k->u.s.p);
        sn_map_set(rec, name, src->u.a.items[2 * i + 1]);
    }
}

/* ---- configs ------------------------------------------------------------- */

int sn_put_config(sn_store *s, sn_batch *given, sn_value *cfg, sn_err *e)
{
    int rc = sn_schema_check(&sn_schema_config, cfg, 1, e);
    if (rc) return rc;
    const sn_value *id = sn_map_get(cfg, "expert_id");
    sn_arena a;
    sn_arena_init(&a);
    sn_value old, rec;
    double now = sn_now();
    rc = sn_get_config(s, id->u.s.p, id->u.s.len, &a, &old, e);
    const sn_value *created = rc == SN_OK ? sn_map_get(&old, "created_at") : NULL;
    if (rc == SN_NOTFOUND) rc = SN_OK;
    if (!rc) rc = sn_record_map(&sn_schema_config, &a, &rec, e);
    if (!rc) {
        copy_fields(&rec, cfg);
        /* created_at survives every rewrite; updated_at is always now */
        sn_map_set(&rec, "created_at", created && created->type == SN_NUM ? *created : sn_num(now));
        sn_map_set(&rec, "updated_at", sn_num(now));
        sn_map_set(&rec, "hlc", sn_int((int64_t)sn_next_hlc(s)));
        sn_map_set(&rec, "origin", sn_cstr(s->origin));
    }
    sn_batch *b = rc ? NULL : sn_batch_or_temp(s, given, e);
    if (!rc && !b) rc = e->code;
    if (!rc) {
        rc = sn_batch_put_record(b, CF_CONFIG, id->u.s.p, id->u.s.len, SN_REC_CONFIG, &rec,
                                 NULL, 0, SN_CODEC_NONE, e);
        /* the config this write replaces is its causal predecessor */
        const sn_value *ph = created ? sn_map_get(&old, "hlc") : NULL;
        const sn_value *po = created ? sn_map_get(&old, "origin") : NULL;
        int has_prev = ph && ph->type == SN_INT && po && po->type == SN_STR;
        if (!rc)
            rc = sn_replica_note(b, CF_CONFIG, id->u.s.p, id->u.s.len, 0,
                                 (uint64_t)sn_map_get(&rec, "hlc")->u.i,
                                 has_prev ? (uint64_t)ph->u.i : 0, has_prev ? po->u.s.p : NULL,
                                 has_prev ? po->u.s.len : 0, e);
        rc = sn_batch_finish(b, given, rc, e);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_get_config(sn_store *s, const char *expert, size_t len, sn_arena *a, sn_value *out,
                  sn_err *e)
{
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (rc) return rc;
    return sn_get_record(s, CF_CONFIG, expert, len, SN_REC_CONFIG, a, out, e);
}

static int push_str(sn_vlist *l, sn_arena *a, const char *p, size_t n, sn_err *e)
{
    const char *copy = sn_arena_strdup(a, p, n);
    if (!copy) return sn_fail(e, SN_ENOMEM, "out of memory");
    return sn_vlist_push(l, sn_str(copy, n), e);
}

int sn_list_experts(sn_store *s, sn_arena *a, sn_value *out, sn_err *e)
{
    sn_vlist cfgs = {0}, all = {0};
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_CONFIG);
    for (rocksdb_iter_seek_to_first(it); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t n;
        const char *k = rocksdb_iter_key(it, &n);
        rc = push_str(&cfgs, a, k, n, e);
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_CONFIG], e);

    /* experts with weights but no config are experts too; merge the two
     * sorted lists. Seeking to expert+"\x01" skips all of one expert's keys. */
    it = sn_iter(s, CF_WEIGHTS);
    size_t ci = 0;
    rocksdb_iter_seek_to_first(it);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t n;
        const char *k = rocksdb_iter_key(it, &n);
        const char *z = memchr(k, 0, n);
        size_t elen = z ? (size_t)(z - k) : n;
        char next[SN_WKEY_MAX + 1];
        if (elen > SN_MAX_ID_LEN) elen = SN_MAX_ID_LEN;
        memcpy(next, k, elen);
        next[elen] = 1;
        while (!rc && ci < cfgs.n) {
            const sn_value *c = &cfgs.items[ci];
            size_t m = c->u.s.len < elen ? c->u.s.len : elen;
            int cmp = memcmp(c->u.s.p, k, m);
            if (cmp > 0 || (cmp == 0 && c->u.s.len >= elen)) break;
            rc = sn_vlist_push(&all, *c, e);
            ci++;
        }
        if (!rc && ci < cfgs.n && cfgs.items[ci].u.s.len == elen &&
            memcmp(cfgs.items[ci].u.s.p, k, elen) == 0)
            ci++;   /* same expert in both: listed once below */
        if (!rc) rc = push_str(&all, a, k, elen, e);
        rocksdb_iter_seek(it, next, elen + 1);
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_WEIGHTS], e);
    while (!rc && ci < cfgs.n) rc = sn_vlist_push(&all, cfgs.items[ci++], e);
    free(cfgs.items);
    if (rc) { free(all.items); return rc; }
    return sn_vlist_finish(&all, a, out, e);
}

/* ---- checkpoints ------------------------------------------------------------ */

static size_t cp_key(unsigned char *k, const char *id, size_t len)
{
    k[0] = SN_CP_PREFIX;
    memcpy(k + 1, id, len);
    return len + 1;
}

static int add_pin(sn_vlist *pins, sn_arena *a, const char *expert, size_t elen, uint32_t layer,
                   uint64_t version, sn_err *e)
{
    sn_value pin;
    int rc = sn_record_map(&sn_schema_pin, a, &pin, e);
    const char *copy = rc ? NULL : sn_arena_strdup(a, expert, elen);
    if (!rc && !copy) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (rc) return rc;
    sn_map_set(&pin, "expert_id", sn_str(copy, elen));
    sn_map_set(&pin, "layer", sn_int(layer));
    sn_map_set(&pin, "version", sn_int((int64_t)version));
    return sn_vlist_push(pins, pin, e);
}

/* The current version of every expert/layer, this batch's writes included:
 * one seek per layer, not a walk over every version. */
static int current_pins(sn_store *s, sn_batch *b, sn_arena *a, sn_vlist *pins, sn_err *e)
{
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_WEIGHTS);
    rocksdb_iter_seek_to_first(it);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        const char *expert;
        size_t elen;
        uint32_t layer;
        uint64_t version;
        if (sn_wkey_parse(k, klen, &expert, &elen, &layer, &version)) {
            sn_fail(e, SN_ECORRUPT, "malformed key");
            rc = sn_record_err(e, SN_ECORRUPT, CF_WEIGHTS, k, klen);
            break;
        }
        unsigned char prefix[SN_WKEY_MAX];
        size_t plen = sn_wkey(prefix, expert, elen, layer, 0) - 8;
        rc = sn_latest_version(s, b, prefix, plen, &version, e);
        if (!rc) rc = add_pin(pins, a, expert, elen, layer, version, e);
        sn_put_be(prefix + plen - 4, (uint64_t)layer + 1, 4);
        rocksdb_iter_seek(it, (const char *)prefix, plen);
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_WEIGHTS], e);
    /* layers that exist only in this batch so far */
    for (sn_pending *p = b ? b->pending : NULL; !rc && p; p = p->next) {
        unsigned char k[SN_WKEY_MAX];
        memcpy(k, p->prefix, p->prefix_len);
        memset(k + p->prefix_len, 0, 8);
        const char *expert;
        size_t elen;
        uint32_t layer;
        uint64_t v;
        sn_wkey_parse(k, p->prefix_len + 8, &expert, &elen, &layer, &v);
        int seen = 0;
        for (size_t i = 0; i < pins->n && !seen; i++) {
            const sn_value *id = sn_map_get(&pins->items[i], "expert_id");
            seen = id->u.s.len == elen && memcmp(id->u.s.p, expert, elen) == 0 &&
                   sn_map_get(&pins->items[i], "layer")->u.i == layer;
        }
        if (!seen) rc = add_pin(pins, a, expert, elen, layer, p->version, e);
    }
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
        copy_fields(&rec, cp);
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

int sn_restore_checkpoint(sn_store *s, const char *id, size_t len, sn_err *e)
{
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    sn_arena a;
    sn_arena_init(&a);
    sn_value cp;
    rc = sn_get_checkpoint(s, id, len, &a, &cp, e);
    const sn_value *pins = rc ? NULL : sn_map_get(&cp, "pins");
    sn_batch *b = rc ? NULL : sn_batch_new(s);
    if (!rc && !b) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    /* Restoring writes each pinned version again as a new version: history
     * stays append-only, and peers see the restore as ordinary writes. */
    for (size_t i = 0; !rc && pins && pins->type == SN_ARRAY && i < pins->u.a.n; i++) {
        const sn_value *p = &pins->u.a.items[i];
        const sn_value *x = sn_map_get(p, "expert_id");
        int64_t layer = sn_map_get(p, "layer")->u.i;
        uint64_t version = (uint64_t)sn_map_get(p, "version")->u.i;
        sn_weights_view v;
        rc = sn_get_weights(s, x->u.s.p, x->u.s.len, layer, version, &v, e);
        if (rc == SN_NOTFOUND)
            rc = sn_fail(e, SN_ECORRUPT, "checkpoint pins %.*s layer %lld v%llu, which is missing",
                         (int)x->u.s.len, x->u.s.p, (long long)layer, (unsigned long long)version);
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
                                 dims, nd };
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
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    sn_arena a;
    sn_arena_init(&a);
    sn_value cp;
    rc = sn_get_checkpoint(s, id, len, &a, &cp, e);
    const sn_value *pins = rc ? NULL : sn_map_get(&cp, "pins");
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
            unsigned char prefix[SN_WKEY_MAX];
            size_t plen = sn_wkey(prefix, x->u.s.p, x->u.s.len,
                                  (uint32_t)sn_map_get(p, "layer")->u.i, 0) - 8;
            rc = sn_trim_versions(s, b, prefix, plen, e);
        }
        if (b) rc = sn_batch_finish(b, NULL, rc, e);
    }
    sn_arena_free(&a);
    return rc;
}

/* ---- system state -------------------------------------------------------------- */

int sn_put_state(sn_store *s, sn_batch *given, const char *key, size_t len,
                 const sn_value *value, sn_err *e)
{
    int rc = sn_check_id(key, len, "state key", e);
    if (rc) return rc;
    sn_arena a;
    sn_arena_init(&a);
    sn_value rec;
    rc = sn_record_map(&sn_schema_state, &a, &rec, e);
    int del = !value || value->type == SN_NIL;
    if (!rc && !del) {
        sn_map_set(&rec, "key", sn_str(key, len));
        sn_map_set(&rec, "value", *value);
        sn_map_set(&rec, "updated_at", sn_num(sn_now()));
        sn_map_set(&rec, "hlc", sn_int((int64_t)sn_next_hlc(s)));
        sn_map_set(&rec, "origin", sn_cstr(s->origin));
        rc = sn_schema_check(&sn_schema_state, &rec, 1, e);
    }
    sn_batch *b = rc ? NULL : sn_batch_or_temp(s, given, e);
    if (!rc && !b) rc = e->code;
    if (!rc) {
        if (del)
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_STATE], key, len);
        else
            rc = sn_batch_put_record(b, CF_STATE, key, len, SN_REC_STATE, &rec, NULL, 0,
                                     SN_CODEC_NONE, e);
        rc = sn_batch_finish(b, given, rc, e);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_get_state(sn_store *s, const char *key, size_t len, sn_arena *a, sn_value *out, sn_err *e)
{
    int rc = sn_check_id(key, len, "state key", e);
    if (rc) return rc;
    sn_value rec;
    rc = sn_get_record(s, CF_STATE, key, len, SN_REC_STATE, a, &rec, e);
    if (!rc) *out = *sn_map_get(&rec, "value");
    return rc;
}

/* ---- metrics ---------------------------------------------------------------------- */

/* Doubles as big-endian keys that sort like the numbers they encode. */
static void put_ordered_double(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    u = (u >> 63) ? ~u : u | (1ull << 63);
    sn_put_be(p, u, 8);
}

static double get_ordered_double(const unsigned char *p)
{
    uint64_t u = sn_get_be(p, 8);
    u = (u >> 63) ? u & ~(1ull << 63) : ~u;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

int sn_record_metric(sn_store *s, sn_batch *given, const char *name, size_t len, double value,
                     double timestamp, sn_err *e)
{
    int rc = sn_check_id(name, len, "metric name", e);
    if (rc) return rc;
    if (!isfinite(value)) return sn_fail(e, SN_EARG, "metric value is NaN or infinite");
    if (!isfinite(timestamp)) return sn_fail(e, SN_EARG, "metric timestamp is NaN or infinite");
    sn_arena a;
    sn_arena_init(&a);
    sn_value rec;
    rc = sn_record_map(&sn_schema_metric, &a, &rec, e);
    sn_batch *b = rc ? NULL : sn_batch_or_temp(s, given, e);
    if (!rc && !b) rc = e->code;
    if (!rc) {
        sn_map_set(&rec, "name", sn_str(name, len));
        sn_map_set(&rec, "timestamp", sn_num(timestamp));
        sn_map_set(&rec, "value", sn_num(value));
        /* a sequence suffix keeps two samples with one timestamp apart */
        unsigned char k[SN_MAX_ID_LEN + 17];
        memcpy(k, name, len);
        k[len] = 0;
        put_ordered_double(k + len + 1, timestamp);
        sn_put_be(k + len + 9, ++s->metric_seq, 8);
        rc = sn_batch_put_record(b, CF_METRICS, k, len + 17, SN_REC_METRIC, &rec, NULL, 0,
                                 SN_CODEC_NONE, e);
        rc = sn_batch_finish(b, given, rc, e);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_metrics(sn_store *s, const char *name, size_t len, double from, double to, sn_arena *a,
               sn_value *out, sn_err *e)
{
    int rc = sn_check_id(name, len, "metric name", e);
    if (rc) return rc;
    if (isnan(from) || isnan(to)) return sn_fail(e, SN_EARG, "metric range bound is NaN");
    unsigned char k[SN_MAX_ID_LEN + 9];
    memcpy(k, name, len);
    k[len] = 0;
    put_ordered_double(k + len + 1, from);
    sn_vlist l = {0};
    rocksdb_iterator_t *it = sn_iter(s, CF_METRICS);
    for (rocksdb_iter_seek(it, (const char *)k, len + 9); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *key = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != len + 17 || memcmp(key, k, len + 1) != 0) break;
        if (get_ordered_double(key + len + 1) > to) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_record r;
        rc = sn_record_decode(v, vlen, a, &r, e);
        if (!rc && r.type != SN_REC_METRIC) rc = sn_fail(e, SN_ECORRUPT, "wrong record type");
        if (rc) { sn_record_err(e, rc, CF_METRICS, key, klen); break; }
        sn_value m;
        rc = sn_record_map(&sn_schema_metric, a, &m, e);
        if (!rc) {
            /* the caller asked for this name: return timestamp and value */
            m.u.a.n = 0;
            m.u.a.items[2 * m.u.a.n] = sn_cstr("timestamp");
            m.u.a.items[2 * m.u.a.n++ + 1] = *sn_map_get(&r.fields, "timestamp");
            m.u.a.items[2 * m.u.a.n] = sn_cstr("value");
            m.u.a.items[2 * m.u.a.n++ + 1] = *sn_map_get(&r.fields, "value");
            rc = sn_vlist_push(&l, m, e);
        }
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_METRICS], e);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}
