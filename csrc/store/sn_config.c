/* Expert configs (replicated) and the list of experts. */
#include "store/sn_batch.h"
#include "store/sn_clock.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

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
        sn_copy_fields(&rec, cfg);
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

/* Experts with weights (sorted, one each) merged into the sorted configs. */
typedef struct expert_merge {
    sn_vlist *cfgs, *all;
    size_t ci;
    sn_arena *a;
} expert_merge;

static int expert_step(void *ud, const unsigned char *lk, size_t lklen, sn_err *e)
{
    expert_merge *m = ud;
    const char *k = (const char *)lk;
    size_t elen = lklen - 5;
    int rc = SN_OK;
    while (!rc && m->ci < m->cfgs->n) {
        const sn_value *c = &m->cfgs->items[m->ci];
        size_t n = c->u.s.len < elen ? c->u.s.len : elen;
        int cmp = memcmp(c->u.s.p, k, n);
        if (cmp > 0 || (cmp == 0 && c->u.s.len >= elen)) break;
        rc = sn_vlist_push(m->all, *c, e);
        m->ci++;
    }
    if (!rc && m->ci < m->cfgs->n && m->cfgs->items[m->ci].u.s.len == elen &&
        memcmp(m->cfgs->items[m->ci].u.s.p, k, elen) == 0)
        m->ci++;   /* same expert in both: listed once below */
    return rc ? rc : push_str(m->all, m->a, k, elen, e);
}

/* The configs, then the experts with weights from the history index
 * (sn_layers.c): no weight payload is read. */
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
    expert_merge m = { &cfgs, &all, 0, a };
    if (!rc) rc = sn_held_layers(s, NULL, 0, 1, expert_step, &m, e);
    while (!rc && m.ci < cfgs.n) rc = sn_vlist_push(&all, cfgs.items[m.ci++], e);
    free(cfgs.items);
    if (rc) { free(all.items); return rc; }
    return sn_vlist_finish(&all, a, out, e);
}
