/* The conflict store: the heads that lost, readable by key range. */
#include "store/sn_replica_int.h"

#include <string.h>

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
