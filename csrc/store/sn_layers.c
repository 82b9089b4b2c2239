/* Which experts and layers have weights, from the history index alone.
 *
 * A layer has weights when its history holds a write (SN_HIST_HELD: the
 * flag weight_versions lists by, kept true by puts, trimming, tombstones,
 * replica apply and salvage's reconcile). The history lives in the default
 * column family, in small values; the weights column family is never
 * positioned on, because RocksDB 7.8's iterator reads a blob value (a whole
 * weight payload) at every key it stops on, with no way to ask for keys
 * only. So list_experts and layers cost O(layers), not O(weight bytes). */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

/* Moves on to the first key >= target (len tlen): a few next()s first,
 * since the next layer is usually a step away, then a seek. */
static void advance(rocksdb_iterator_t *it, const unsigned char *target, size_t tlen)
{
    for (int i = 0; i < 4 && rocksdb_iter_valid(it); i++) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        int c = memcmp(k, target, klen < tlen ? klen : tlen);
        if (c > 0 || (c == 0 && klen >= tlen)) return;
        rocksdb_iter_next(it);
    }
    if (rocksdb_iter_valid(it)) rocksdb_iter_seek(it, (const char *)target, tlen);
}

/* Whether the history entry at it (of a layer whose key is hk, the
 * history key without an id, hlen) is held; SN_ECORRUPT if malformed. */
static int entry_held(rocksdb_iterator_t *it, size_t hlen, int *held, sn_err *e)
{
    size_t klen, vlen;
    rocksdb_iter_key(it, &klen);
    const char *v = rocksdb_iter_value(it, &vlen);
    sn_hist h;
    int rc = klen == hlen + SN_ID_LEN ? sn_hist_decode(v, vlen, &h, e)
                                      : sn_fail(e, SN_ECORRUPT, "history key is malformed");
    *held = !rc && (h.flags & SN_HIST_HELD);
    return rc;
}

/* The layer's newest entries first (its heads: held but for a delete), so
 * a layer whose oldest writes were trimmed is decided in a step or two;
 * only a deleted layer is walked further, to the pinned writes it kept.
 * next: the key where the next layer starts. */
static int held_from_newest(rocksdb_iterator_t *it, const unsigned char *hk, size_t hlen,
                            const unsigned char *next, size_t nlen, int *held, sn_err *e)
{
    int rc = SN_OK;
    *held = 0;
    for (rocksdb_iter_seek_for_prev(it, (const char *)next, nlen); !rc && !*held &&
         rocksdb_iter_valid(it); rocksdb_iter_prev(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < hlen || memcmp(k, hk, hlen) != 0) break;
        rc = entry_held(it, hlen, held, e);
    }
    return rc;
}

/* Where the layer after LK (or, per_expert, the expert after LK's) starts:
 * the history key of expert\0(layer + 1), or of expert\x01. */
static size_t next_key(unsigned char *k, const unsigned char *hk, size_t hlen, int per_expert)
{
    memcpy(k, hk, hlen);
    uint64_t layer = sn_get_be(hk + hlen - 4, 4);
    if (!per_expert && layer < UINT32_MAX) {
        sn_put_be(k + hlen - 4, layer + 1, 4);
        return hlen;
    }
    k[hlen - 5] = 1;
    return hlen - 4;
}

int sn_held_layers(sn_store *s, const char *prefix, size_t plen, int per_expert, sn_layer_fn fn,
                   void *ud, sn_err *e)
{
    unsigned char p[2 + SN_LAYER_KEY_MAX], hk[2 + SN_LAYER_KEY_MAX], next[2 + SN_LAYER_KEY_MAX];
    if (plen > SN_LAYER_KEY_MAX) return SN_OK;
    p[0] = 1;
    p[1] = TAG_HISTORY;
    if (plen) memcpy(p + 2, prefix, plen);   /* prefix may be NULL when plen is 0 */
    int rc = SN_OK;
    sn_bound *bd;
    rocksdb_iterator_t *it = sn_iter_prefix(s, CF_DEFAULT, p, plen + 2, &bd);
    rocksdb_iter_seek(it, (const char *)p, plen + 2);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < plen + 2 || memcmp(k, p, plen + 2) != 0) break;
        size_t hlen = klen - SN_ID_LEN;
        const unsigned char *nul = klen > SN_ID_LEN + 2 ? memchr(k + 2, 0, hlen - 2) : NULL;
        if (klen < 2 + 6 + SN_ID_LEN || hlen > sizeof hk || !nul || (size_t)(nul - k) != hlen - 5) {
            rc = sn_fail(e, SN_ECORRUPT, "history key is malformed");
            break;
        }
        memcpy(hk, k, hlen);
        size_t nlen = next_key(next, hk, hlen, 0);
        int held;
        rc = entry_held(it, hlen, &held, e);
        if (!rc && !held) rc = held_from_newest(it, hk, hlen, next, nlen, &held, e);
        if (!rc && held) rc = fn(ud, hk + 2, hlen - 2, e);
        if (!rc && held && per_expert) nlen = next_key(next, hk, hlen, 1);
        if (!rc && !held) rocksdb_iter_seek(it, (const char *)next, nlen);
        else if (!rc) advance(it, next, nlen);
    }
    return sn_bound_end(bd, it, rc, "reading the layers' history", e);
}
