/* Versioned weight records in the neural_weights column family. */
#include "store/sn_store_int.h"

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

/* The newest version of one layer. A forward walk over the layer's keys
 * inside iterator bounds: stepping backwards (SeekForPrev) makes RocksDB
 * read the block before the layer, so one damaged record of another expert
 * would make this layer unreadable. With blob files the walk reads keys
 * and blob references only. */
static int newest_on_disk(sn_store *s, const unsigned char *prefix, size_t plen,
                          uint64_t *version, sn_err *e)
{
    unsigned char lo[SN_WKEY_MAX], hi[SN_WKEY_MAX];
    memcpy(lo, prefix, plen);
    memcpy(hi, prefix, plen);
    sn_put_be(hi + plen - 4, sn_get_be(prefix + plen - 4, 4) + 1, 4);  /* layer <= 1e6 */
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 1);
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, plen);
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, plen);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_WEIGHTS]);
    *version = 0;
    for (rocksdb_iter_seek(it, (const char *)lo, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen == plen + 8 && memcmp(key, prefix, plen) == 0)
            *version = sn_get_be((const unsigned char *)key + plen, 8);
    }
    int rc = sn_iter_end(it, SN_OK, "reading neural_weights", e);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int sn_latest_version(sn_store *s, sn_batch *b, const unsigned char *prefix, size_t plen,
                      uint64_t *version, sn_err *e)
{
    *version = 0;
    for (sn_pending *p = b ? b->pending : NULL; p; p = p->next)
        if (p->prefix_len == plen && memcmp(p->prefix, prefix, plen) == 0) {
            *version = p->version;
            return SN_OK;
        }
    return newest_on_disk(s, prefix, plen, version, e);
}

static int pinned(sn_store *s, const unsigned char *wkey, size_t klen, int *is_pinned, sn_err *e)
{
    unsigned char k[1 + SN_WKEY_MAX];
    k[0] = SN_PIN_PREFIX;
    memcpy(k + 1, wkey, klen);
    rocksdb_iterator_t *it = sn_iter(s, CF_CHECKPOINTS);
    rocksdb_iter_seek(it, (const char *)k, klen + 1);
    *is_pinned = 0;
    if (rocksdb_iter_valid(it)) {
        size_t n;
        const char *key = rocksdb_iter_key(it, &n);
        *is_pinned = n > klen + 1 && memcmp(key, k, klen + 1) == 0;
    }
    return sn_iter_end(it, SN_OK, "reading checkpoints", e);
}

/* Keep the newest max_weight_versions of one layer; older versions go
 * unless a checkpoint pins them. Versions written in this batch are newer
 * than anything on disk, so they count toward the kept ones. */
int sn_trim_versions(sn_store *s, sn_batch *b, const unsigned char *prefix, size_t plen,
                     sn_err *e)
{
    uint32_t keep = s->opts.max_weight_versions;
    if (!keep) return SN_OK;
    uint64_t latest;
    int rc = sn_latest_version(s, b, prefix, plen, &latest, e);
    if (rc || latest <= keep) return rc;
    uint64_t cutoff = latest - keep;   /* versions <= cutoff are candidates */

    rocksdb_iterator_t *it = sn_iter(s, CF_WEIGHTS);
    rocksdb_iter_seek(it, (const char *)prefix, plen);
    for (; rc == SN_OK && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *key = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + 8 || memcmp(key, prefix, plen) != 0) break;
        if (sn_get_be(key + plen, 8) > cutoff) break;
        int is_pinned;
        rc = pinned(s, key, klen, &is_pinned, e);
        if (!rc && !is_pinned)
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)key, klen);
    }
    rc = sn_iter_end(it, rc, "reading neural_weights", e);

    /* Versions written earlier in this same batch are not on disk yet.
     * A checkpoint created in the batch may pin them, and its pins are not
     * visible to pinned() either: then keep them all (the next write after
     * the commit trims what is no longer pinned). */
    for (sn_pending *p = b->pending; !rc && !b->has_checkpoint && p; p = p->next) {
        if (p->prefix_len != plen || memcmp(p->prefix, prefix, plen) != 0) continue;
        unsigned char k[SN_WKEY_MAX];
        memcpy(k, prefix, plen);
        for (uint64_t v = p->first; v <= cutoff; v++) {
            sn_put_be(k + plen, v, 8);
            rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)k, plen + 8);
        }
        if (p->first <= cutoff) p->first = cutoff + 1;
    }
    return rc;
}

static int note_pending(sn_batch *b, const unsigned char *prefix, size_t plen, uint64_t version,
                        sn_err *e)
{
    for (sn_pending *p = b->pending; p; p = p->next)
        if (p->prefix_len == plen && memcmp(p->prefix, prefix, plen) == 0) {
            p->version = version;
            return SN_OK;
        }
    sn_pending *p = malloc(sizeof *p + plen);
    if (!p) return sn_fail(e, SN_ENOMEM, "out of memory");
    p->version = p->first = version;
    p->prefix_len = plen;
    memcpy(p->prefix, prefix, plen);
    p->next = b->pending;
    b->pending = p;
    return SN_OK;
}

static int put_in_batch(sn_store *s, sn_batch *b, const sn_weights_in *in, uint64_t *version,
                        sn_err *e)
{
    unsigned char key[SN_WKEY_MAX];
    size_t plen = sn_wkey(key, in->expert, in->expert_len, (uint32_t)in->layer, 0) - 8;
    uint64_t latest;
    int rc = sn_latest_version(s, b, key, plen, &latest, e);
    if (rc) return rc;
    *version = latest + 1;
    size_t klen = sn_wkey(key, in->expert, in->expert_len, (uint32_t)in->layer, *version);

    sn_arena a;
    sn_arena_init(&a);
    sn_value map, shape = sn_nil();
    rc = sn_record_map(&sn_schema_weights, &a, &map, e);
    if (!rc && in->nshape) {
        shape.type = SN_ARRAY;
        shape.u.a.n = in->nshape;
        shape.u.a.items = sn_arena_alloc(&a, in->nshape * sizeof(sn_value));
        if (!shape.u.a.items) rc = sn_fail(e, SN_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < in->nshape; i++) shape.u.a.items[i] = sn_int(in->shape[i]);
    }
    if (!rc) {
        sn_map_set(&map, "expert_id", sn_str(in->expert, in->expert_len));
        sn_map_set(&map, "layer", sn_int(in->layer));
        sn_map_set(&map, "version", sn_int((int64_t)*version));
        sn_map_set(&map, "timestamp", sn_num(sn_now()));
        uint64_t hlc = sn_next_hlc(s);
        sn_map_set(&map, "hlc", sn_int((int64_t)hlc));
        sn_map_set(&map, "origin", sn_cstr(s->origin));
        sn_map_set(&map, "n_weights", sn_int((int64_t)in->nw));
        sn_map_set(&map, "n_biases", sn_int((int64_t)in->nb));
        sn_map_set(&map, "shape", shape);
        sn_part parts[2] = {
            { (void *)in->w, in->nw * sizeof(float) },
            { (void *)in->b, in->nb * sizeof(float) },
        };
        rc = sn_batch_put_record(b, CF_WEIGHTS, key, klen, SN_REC_WEIGHTS, &map, parts, 2,
                                 s->opts.codec, e);
        /* each version is a new key: nothing is replaced, so no prev */
        if (!rc) rc = sn_replica_note(b, CF_WEIGHTS, key, klen, 0, hlc, 0, NULL, 0, e);
    }
    sn_arena_free(&a);
    if (!rc) rc = note_pending(b, key, plen, *version, e);
    if (!rc) rc = sn_trim_versions(s, b, key, plen, e);
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
    rc = put_in_batch(s, b, in, version, e);
    return sn_batch_finish(b, given, rc, e);
}

/* ---- reading ----------------------------------------------------------------- */

static int view_decode(sn_weights_view *v, const char *val, size_t len, const unsigned char *key,
                       size_t klen, sn_err *e)
{
    int rc = sn_record_decode(val, len, &v->arena, &v->rec, e);
    if (!rc && v->rec.type != SN_REC_WEIGHTS)
        rc = sn_fail(e, SN_ECORRUPT, "not a weights record");
    if (!rc) {
        const sn_value *f = &v->rec.fields;
        v->version = (uint64_t)sn_map_get(f, "version")->u.i;
        v->nw = (size_t)sn_map_get(f, "n_weights")->u.i;
        v->nb = (size_t)sn_map_get(f, "n_biases")->u.i;
        v->stored_bytes = len;
        memcpy(v->key, key, klen);
        v->klen = klen;
        const char *expert;
        size_t elen;
        uint32_t layer;
        uint64_t version;
        sn_wkey_parse(key, klen, &expert, &elen, &layer, &version);
        const sn_value *id = sn_map_get(f, "expert_id");
        if (v->nw > SN_MAX_FLOATS || v->nb > SN_MAX_FLOATS ||
            (v->nw + v->nb) * sizeof(float) != v->rec.raw_len)
            rc = sn_fail(e, SN_ECORRUPT, "payload size disagrees with the weight counts");
        else if (version != v->version || id->u.s.len != elen ||
                 memcmp(id->u.s.p, expert, elen) != 0 ||
                 (uint64_t)sn_map_get(f, "layer")->u.i != layer)
            rc = sn_fail(e, SN_ECORRUPT, "record does not belong under its key");
    }
    return rc ? sn_record_err(e, rc, CF_WEIGHTS, key, klen) : SN_OK;
}

int sn_get_weights(sn_store *s, const char *expert, size_t len, int64_t layer, uint64_t version,
                   sn_weights_view *v, sn_err *e)
{
    memset(v, 0, sizeof *v);
    sn_arena_init(&v->arena);
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (!rc) rc = check_layer(layer, e);
    if (rc) return rc;
    unsigned char key[SN_WKEY_MAX];
    size_t klen = sn_wkey(key, expert, len, (uint32_t)layer, version);
    const char *val = NULL;
    size_t vlen = 0;
    char *err = NULL;

    if (!version) {
        rc = newest_on_disk(s, key, klen - 8, &version, e);
        if (rc) return rc;
        if (!version) return SN_NOTFOUND;
        sn_put_be(key + klen - 8, version, 8);
    }
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->wropts, s->cf[CF_WEIGHTS], (const char *)key, klen, &err);
    if (err) return sn_rocks_err(e, err, "reading neural_weights");
    if (!p) return SN_NOTFOUND;
    v->pin = p;
    val = rocksdb_pinnableslice_value(p, &vlen);
    rc = view_decode(v, val, vlen, key, klen, e);
    if (rc) sn_weights_view_release(v);
    return rc;
}

int sn_weights_view_load(sn_weights_view *v, float *w, float *b, sn_err *e)
{
    sn_part parts[2] = { { w, v->nw * sizeof(float) }, { b, v->nb * sizeof(float) } };
    int rc = sn_record_load(&v->rec, parts, 2, e);
    return rc ? sn_record_err(e, rc, CF_WEIGHTS, v->key, v->klen) : SN_OK;
}

void sn_weights_view_release(sn_weights_view *v)
{
    if (v->pin) rocksdb_pinnableslice_destroy(v->pin);
    v->pin = NULL;
    sn_arena_free(&v->arena);
}

int sn_weight_versions(sn_store *s, const char *expert, size_t len, int64_t layer, sn_arena *a,
                       sn_value *out, sn_err *e)
{
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (!rc) rc = check_layer(layer, e);
    if (rc) return rc;
    unsigned char prefix[SN_WKEY_MAX];
    size_t plen = sn_wkey(prefix, expert, len, (uint32_t)layer, 0) - 8;
    sn_vlist l = { 0 };
    rocksdb_iterator_t *it = sn_iter(s, CF_WEIGHTS);
    for (rocksdb_iter_seek(it, (const char *)prefix, plen); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + 8 || memcmp(k, prefix, plen) != 0) break;
        rc = sn_vlist_push(&l, sn_int((int64_t)sn_get_be(k + plen, 8)), e);
    }
    rc = sn_iter_end(it, rc, "reading neural_weights", e);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}

int sn_weights_verify(const unsigned char *key, size_t klen, const char *val, size_t vlen,
                      sn_err *e)
{
    sn_weights_view v;
    memset(&v, 0, sizeof v);
    sn_arena_init(&v.arena);
    int rc = view_decode(&v, val, vlen, key, klen, e);
    float *buf = NULL;
    if (!rc) {
        buf = malloc((v.nw + v.nb + 1) * sizeof(float));
        rc = buf ? sn_weights_view_load(&v, buf, buf + v.nw, e)
                 : sn_fail(e, SN_ENOMEM, "out of memory");
    }
    free(buf);
    sn_arena_free(&v.arena);
    return rc;
}

int sn_list_layers(sn_store *s, const char *expert, size_t len, sn_arena *a, sn_value *out,
                   sn_err *e)
{
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (rc) return rc;
    unsigned char k[SN_WKEY_MAX];
    size_t plen = len + 1;
    memcpy(k, expert, len);
    k[len] = 0;
    sn_vlist l = { 0 };
    rocksdb_iterator_t *it = sn_iter(s, CF_WEIGHTS);
    rocksdb_iter_seek(it, (const char *)k, plen);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *key = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != plen + 12 || memcmp(key, k, plen) != 0) break;
        uint32_t layer = (uint32_t)sn_get_be(key + plen, 4);
        rc = sn_vlist_push(&l, sn_int(layer), e);
        sn_put_be(k + plen, (uint64_t)layer + 1, 4);   /* skip this layer's versions */
        rocksdb_iter_seek(it, (const char *)k, plen + 4);
    }
    rc = sn_iter_end(it, rc, "reading neural_weights", e);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}
