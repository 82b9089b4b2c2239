/* The replication checks: a peer's record against the entry that carries
 * it, verify() over the replication key ranges, and the tests' raw hook. */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_kinds.h"
#include "store/sn_rank.h"
#include "store/sn_record_io.h"
#include "store/sn_replica.h"
#include "store/sn_rocks.h"
#include "store/sn_weights_int.h"

#include <string.h>

/* ---- checking a peer's record ----------------------------------------------------- */

/* A merge travels in the log of whichever node made it: its identity must
 * be the one its parents give, so no peer can pass a write off as another's. */
static int is_merge_of(const sn_entry *en, const sn_value *origin)
{
    if (en->cf != CF_WEIGHTS || en->nparents < 2) return 0;
    sn_ident m;
    sn_merge_ident(en->parents, en->nparents, &m);
    return m.hlc == en->hlc && memcmp(m.origin, origin->u.s.p, SN_ORIGIN_LEN) == 0;
}

int sn_replica_check(sn_store *s, const sn_entry *en, const unsigned char *bytes, size_t len,
                     sn_err *e)
{
    const sn_kind *kd = en->cf >= 0 && en->cf < CF_COUNT ? sn_kind_of(en->cf) : NULL;
    if (!kd || !kd->replicated)
        return sn_fail(e, SN_ECORRUPT, "entry names a column family that is not replicated");
    sn_arena a;
    sn_arena_init(&a);
    sn_value f;
    int rc = sn_kind_check(kd, s ? s->codec : NULL, en->key, en->klen, (const char *)bytes, len,
                           &a, &f, e);
    if (!rc) {
        const sn_value *hlc = sn_map_get(&f, "hlc"), *o = sn_map_get(&f, "origin");
        if (!hlc || hlc->type != SN_INT || (uint64_t)hlc->u.i != en->hlc)
            rc = sn_fail(e, SN_ECORRUPT, "record hlc disagrees with its entry");
        else if (!o || o->type != SN_STR || o->u.s.len != SN_ORIGIN_LEN ||
                 (memcmp(o->u.s.p, en->origin, SN_ORIGIN_LEN) != 0 && !is_merge_of(en, o)))
            rc = sn_fail(e, SN_ECORRUPT, "record origin disagrees with its entry");
    }
    sn_arena_free(&a);
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
    return sn_replica_check(NULL, &en, (const unsigned char *)val, vlen, e);
}

/* A layer key: expert (1..SN_MAX_ID_LEN bytes, no NUL), 0, layer(4). */
static int layer_key_ok(const unsigned char *lk, size_t lklen)
{
    if (lklen < 6 || lklen > SN_LAYER_KEY_MAX || lk[lklen - 5] != 0) return 0;
    return memchr(lk, 0, lklen - 5) == NULL;
}

/* History ('H'), head ('T') and current ('C') keys of a layer's causal
 * history (sn_history.h). */
static int verify_history_key(const unsigned char *k, size_t klen, const char *val, size_t vlen,
                              sn_err *e)
{
    sn_ident id;
    if (k[1] == TAG_CURRENT) {
        if (!layer_key_ok(k + 2, klen - 2) || vlen != SN_ID_LEN)
            return sn_fail(e, SN_ECORRUPT, "malformed current-write marker");
        return sn_ident_get((const unsigned char *)val, &id, e);
    }
    if (klen < 2 + SN_ID_LEN || !layer_key_ok(k + 2, klen - 2 - SN_ID_LEN) ||
        sn_ident_get(k + klen - SN_ID_LEN, &id, e))
        return sn_fail(e, SN_ECORRUPT, "malformed history key");
    if (k[1] == TAG_HEAD) return vlen ? sn_fail(e, SN_ECORRUPT, "head marker with a value") : SN_OK;
    sn_hist h;
    return sn_hist_decode(val, vlen, &h, e);
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
    case TAG_SKIPPED:
        if (klen != LOG_KEY_LEN || !sn_origin_ok(k + 2, SN_ORIGIN_LEN) || vlen)
            return sn_fail(e, SN_ECORRUPT, "malformed skip marker");
        return SN_OK;
    case TAG_HISTORY:
    case TAG_HEAD:
    case TAG_CURRENT: return verify_history_key(k, klen, val, vlen, e);
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
    sn_rank_clear(s);   /* it may have rewritten a history */
    return err ? sn_rocks_err(e, err, "raw replication write") : SN_OK;
}
