/* The conflict store: the heads that lost, readable by key range and
 * returned decoded, so no caller parses stored bytes itself. */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_replica.h"
#include "store/sn_rocks.h"

#include <stdlib.h>

#include <string.h>

/* A conflict's record, decoded into the arena and checked to be what its
 * column family holds. */
static int decode_conflict(sn_conflict *c, int cf, const char *v, size_t vlen, sn_arena *a,
                           sn_err *e)
{
    unsigned char *copy = sn_arena_alloc(a, vlen + 1);
    if (!copy) return sn_fail(e, SN_ENOMEM, "out of memory");
    memcpy(copy, v, vlen);
    int rc = sn_record_decode(copy, vlen, a, &c->rec, e);
    if (rc) return rc;
    unsigned want = cf == CF_WEIGHTS ? SN_REC_WEIGHTS : SN_REC_CONFIG;
    if (c->rec.type != want)
        return sn_fail(e, SN_ECORRUPT, "conflict record of %s is of the wrong type", c->id.origin);
    if (cf == CF_WEIGHTS) {
        const sn_value *f = &c->rec.fields;
        uint64_t nw = (uint64_t)sn_map_get(f, "n_weights")->u.i;
        uint64_t nb = (uint64_t)sn_map_get(f, "n_biases")->u.i;
        if ((nw + nb) * sizeof(float) != c->rec.raw_len)
            return sn_fail(e, SN_ECORRUPT, "conflict record payload size disagrees with its counts");
    }
    return SN_OK;
}

/* The conflicts of record keys of length key_len that start with prefix. */
static int conflicts_in(sn_store *s, int cf, const void *prefix, size_t plen, size_t key_len,
                        sn_arena *a, sn_conflict **out, size_t *n, sn_err *e)
{
    *out = NULL;
    *n = 0;
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
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, 5 + plen, &bd);
    for (rocksdb_iter_seek(it, (const char *)p, 5 + plen); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 5 + plen || memcmp(k, p, 5 + plen) != 0) break;
        if (klen != 5 + key_len + 8 + SN_ORIGIN_LEN) continue;
        if (*n == cap) {
            /* the list lives in the arena: grow by copying, the old block stays until the arena goes */
            size_t ncap = sn_next_cap(cap, 8);
            sn_conflict *q = sn_arena_alloc(a, ncap * sizeof *q);
            if (!q) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
            if (*n) memcpy(q, *out, *n * sizeof *q);
            *out = q;
            cap = ncap;
        }
        sn_conflict *c = &(*out)[*n];
        c->id.hlc = sn_get_be(k + 5 + key_len, 8);
        memcpy(c->id.origin, k + 5 + key_len + 8, SN_ORIGIN_LEN);
        c->id.origin[SN_ORIGIN_LEN] = 0;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = decode_conflict(c, cf, v, vlen, a, e);
        if (!rc) (*n)++;
    }
    return sn_bound_end(bd, it, rc, "reading the replication log", e);
}

static int push_conflict(sn_arena *a, sn_conflict **out, size_t *n, size_t *cap, sn_err *e)
{
    if (*n < *cap) return SN_OK;
    /* the list lives in the arena: grow by copying, the old block stays until the arena goes */
    size_t ncap = sn_next_cap(*cap, 8);
    sn_conflict *q = sn_arena_alloc(a, ncap * sizeof *q);
    if (!q) return sn_fail(e, SN_ENOMEM, "out of memory");
    if (*n) memcpy(q, *out, *n * sizeof *q);
    *out = q;
    *cap = ncap;
    return SN_OK;
}

/* A layer's conflicts are its heads other than the current write (the
 * heads this store holds the records of). */
int sn_weight_conflicts(sn_store *s, const char *expert, size_t len, int64_t layer, sn_arena *a,
                        sn_conflict **out, size_t *n, sn_err *e)
{
    *out = NULL;
    *n = 0;
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (rc) return rc;
    if (layer < 0 || layer > SN_MAX_LAYER) return sn_fail(e, SN_EARG, "layer out of range");
    unsigned char lk[SN_LAYER_KEY_MAX], key[SN_WKEY_MAX];
    size_t lklen = sn_layer_key(lk, expert, len, (uint32_t)layer), cap = 0, nh;
    sn_ident heads[SN_MAX_HEADS], cur;
    rc = sn_heads_load(s, lk, lklen, heads, &nh, e);
    if (!rc) rc = sn_current_get(s, lk, lklen, &cur, e);
    sn_hist h;
    /* a derived merge is current: the heads are its inputs, not conflicts */
    if (!rc) rc = sn_hist_get(s, lk, lklen, &cur, &h, e);
    if (rc == SN_NOTFOUND) return SN_OK;
    for (size_t i = 0; !rc && i < nh; i++) {
        if (sn_same_ident(&heads[i], &cur)) continue;
        sn_buf v;
        rc = sn_get_copy(s, CF_WEIGHTS, key, sn_wkey_id(key, lk, lklen, &heads[i]), &v, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; continue; }
        if (!rc) rc = push_conflict(a, out, n, &cap, e);
        if (!rc) {
            sn_conflict *c = &(*out)[*n];
            c->id = heads[i];
            rc = decode_conflict(c, CF_WEIGHTS, (const char *)v.data, v.len, a, e);
            if (!rc) (*n)++;
        }
        free(v.data);
    }
    return rc;
}

int sn_config_conflicts(sn_store *s, const char *expert, size_t len, sn_arena *a,
                        sn_conflict **out, size_t *n, sn_err *e)
{
    int rc = sn_check_id(expert, len, "expert_id", e);
    if (rc) return rc;
    return conflicts_in(s, CF_CONFIG, expert, len, len, a, out, n, e);
}
