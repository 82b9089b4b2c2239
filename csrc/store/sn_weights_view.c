/* One weights record as a view: decoded under its key (which it must
 * belong to), its floats loaded, released; and the full decode verify and
 * the replica check run. Below the weights reads and writes (sn_weights.c),
 * the merge and the record check, which all use it. */
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_weights_int.h"

#include <stdlib.h>
#include <string.h>

/* The record must be the write its key names: expert, layer and identity. */
int sn_weights_view_decode(sn_weights_view *v, const char *val, size_t len,
                           const unsigned char *key, size_t klen, sn_err *e)
{
    int rc = sn_record_decode(val, len, &v->arena, &v->rec, e);
    if (!rc && v->rec.type != SN_REC_WEIGHTS)
        rc = sn_fail(e, SN_ECORRUPT, "not a weights record");
    size_t lklen = 0;
    sn_ident id;
    if (!rc) rc = sn_wkey_split(key, klen, &lklen, &id, e);
    if (!rc) {
        const sn_value *f = &v->rec.fields;
        v->nw = (size_t)sn_map_get(f, "n_weights")->u.i;
        v->nb = (size_t)sn_map_get(f, "n_biases")->u.i;
        v->stored_bytes = len;
        memcpy(v->key, key, klen);
        v->klen = klen;
        const sn_value *x = sn_map_get(f, "expert_id"), *o = sn_map_get(f, "origin");
        if (v->nw > SN_MAX_FLOATS || v->nb > SN_MAX_FLOATS ||
            (v->nw + v->nb) * sizeof(float) != v->rec.raw_len)
            rc = sn_fail(e, SN_ECORRUPT, "payload size disagrees with the weight counts");
        else if (x->u.s.len != lklen - 5 || memcmp(x->u.s.p, key, lklen - 5) != 0 ||
                 (uint64_t)sn_map_get(f, "layer")->u.i != sn_get_be(key + lklen - 4, 4) ||
                 (uint64_t)sn_map_get(f, "hlc")->u.i != id.hlc || o->u.s.len != SN_ORIGIN_LEN ||
                 memcmp(o->u.s.p, id.origin, SN_ORIGIN_LEN) != 0)
            rc = sn_fail(e, SN_ECORRUPT, "record does not belong under its key");
    }
    return rc ? sn_record_err(e, rc, CF_WEIGHTS, key, klen) : SN_OK;
}

int sn_weights_view_from(sn_weights_view *v, const void *bytes, size_t len,
                         const unsigned char *key, size_t klen, sn_err *e)
{
    memset(v, 0, sizeof *v);
    sn_arena_init(&v->arena);
    int rc = sn_weights_view_decode(v, bytes, len, key, klen, e);
    if (rc) sn_arena_free(&v->arena);
    return rc;
}

int sn_weights_view_load(sn_weights_view *v, float *w, float *b, sn_err *e)
{
    sn_part parts[2] = { { w, v->nw * sizeof(float) }, { b, v->nb * sizeof(float) } };
    int rc = sn_record_load_ctx(v->codec, &v->rec, parts, 2, e);
    return rc ? sn_record_err(e, rc, CF_WEIGHTS, v->key, v->klen) : SN_OK;
}

void sn_weights_view_release(sn_weights_view *v)
{
    if (v->pin) rocksdb_pinnableslice_destroy(v->pin);
    v->pin = NULL;
    sn_arena_free(&v->arena);
}

int sn_weights_verify(sn_codec_ctx *x, const unsigned char *key, size_t klen, const char *val,
                      size_t vlen, sn_err *e)
{
    sn_weights_view v;
    memset(&v, 0, sizeof v);
    sn_arena_init(&v.arena);
    v.codec = x;
    int rc = sn_weights_view_decode(&v, val, vlen, key, klen, e);
    unsigned char *owned = NULL;
    if (!rc) {
        /* the store's memory, not a fresh block per record (sn_compress.h) */
        float *buf = sn_codec_ctx_out(x, (v.nw + v.nb + 1) * sizeof(float), &owned);
        rc = buf ? sn_weights_view_load(&v, buf, buf + v.nw, e)
                 : sn_fail(e, SN_ENOMEM, "out of memory");
    }
    free(owned);
    sn_arena_free(&v.arena);
    return rc;
}
