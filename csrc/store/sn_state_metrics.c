/* System state (key -> value) and metrics (name, time -> value). Both
 * replicate (store format 2): a state key is last writer wins by HLC, the
 * losers kept; metric points are append-only, each named by its writer, so
 * every node ends with the union. prune_metrics deletes locally only. */
#include "store/sn_batch.h"
#include "store/sn_clock.h"
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sn_put_state(sn_store *s, sn_batch *given, const char *key, size_t len,
                 const sn_value *value, sn_err *e)
{
    int rc = sn_check_id(key, len, "state key", e);
    if (rc) return rc;
    sn_arena a;
    sn_arena_init(&a);
    sn_value rec, old;
    /* the record this write replaces is its causal predecessor (last writer
     * wins by HLC across nodes; a concurrent loser is kept): its identity is
     * in the record's fields, never in the user's value */
    int got = sn_get_record(s, CF_STATE, key, len, SN_REC_STATE, &a, &old, e);   /* SN_OK: there is one */
    rc = got == SN_NOTFOUND ? SN_OK : got;
    if (!rc) rc = sn_record_map(&sn_schema_state, &a, &rec, e);
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
        const sn_value *ph = got ? NULL : sn_map_get(&old, "hlc");
        const sn_value *po = got ? NULL : sn_map_get(&old, "origin");
        int prev = ph && ph->type == SN_INT && po && po->type == SN_STR;
        if (!rc && (!del || prev))
            rc = sn_replica_note(b, CF_STATE, key, len, del ? SN_KIND_DEL : SN_KIND_PUT,
                                 del ? sn_next_hlc(s) : (uint64_t)sn_map_get(&rec, "hlc")->u.i,
                                 prev ? (uint64_t)ph->u.i : 0, prev ? po->u.s.p : NULL,
                                 prev ? po->u.s.len : 0, e);
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

int sn_state_keys(sn_store *s, sn_arena *a, sn_value *out, sn_err *e)
{
    sn_vlist l = {0};
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_STATE);
    for (rocksdb_iter_seek_to_first(it); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t n;
        const char *k = rocksdb_iter_key(it, &n);
        const char *copy = sn_arena_strdup(a, k, n);
        rc = copy ? sn_vlist_push(&l, sn_str(copy, n), e) : sn_fail(e, SN_ENOMEM, "out of memory");
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_STATE], e);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}

/* Calls visit for each point of name with from <= timestamp <= to (< to
 * when below), in time order; stops at the first failure. */
typedef int (*metric_visit)(void *ctx, const unsigned char *k, size_t klen, const char *v,
                            size_t vlen, sn_err *e);

static int metric_scan(sn_store *s, const char *name, size_t len, double from, double to,
                       int below, metric_visit visit, void *ctx, sn_err *e)
{
    int rc = sn_check_id(name, len, "metric name", e);
    if (rc) return rc;
    if (isnan(from) || isnan(to)) return sn_fail(e, SN_EARG, "metric range bound is NaN");
    unsigned char k[SN_METRIC_KEY_MAX];
    size_t n = sn_metric_seek_key(k, name, len, from);
    rocksdb_iterator_t *it = sn_iter(s, CF_METRICS);
    for (rocksdb_iter_seek(it, (const char *)k, n); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen, nlen;
        double ts;
        const unsigned char *key = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (!sn_metric_key_parse(key, klen, &nlen, &ts) || nlen != len || memcmp(key, name, len))
            break;
        if (below ? ts >= to : ts > to) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = visit(ctx, key, klen, v, vlen, e);
    }
    return sn_iter_end(it, rc, sn_cf_names[CF_METRICS], e);
}

/* ---- metrics ---------------------------------------------------------------------- */

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
        uint64_t hlc = sn_next_hlc(s);
        sn_map_set(&rec, "name", sn_str(name, len));
        sn_map_set(&rec, "timestamp", sn_num(timestamp));
        sn_map_set(&rec, "value", sn_num(value));
        sn_map_set(&rec, "hlc", sn_int((int64_t)hlc));
        sn_map_set(&rec, "origin", sn_cstr(s->origin));
        /* a sequence suffix keeps two samples with one timestamp apart (its
         * high bits are random per process, so nodes' points do not collide) */
        unsigned char k[SN_METRIC_KEY_MAX];
        size_t klen = sn_metric_key(k, name, len, timestamp, ++s->metric_seq);
        rc = sn_batch_put_record(b, CF_METRICS, k, klen, SN_REC_METRIC, &rec, NULL, 0,
                                 SN_CODEC_NONE, e);
        /* points are append-only: every node ends with every node's points */
        if (!rc) rc = sn_replica_note(b, CF_METRICS, k, klen, SN_KIND_PUT, hlc, 0, NULL, 0, e);
        rc = sn_batch_finish(b, given, rc, e);
    }
    sn_arena_free(&a);
    return rc;
}

typedef struct points_ctx { sn_arena *a; sn_vlist l; } points_ctx;

static int push_point(void *ctx, const unsigned char *k, size_t klen, const char *v, size_t vlen,
                      sn_err *e)
{
    points_ctx *c = ctx;
    sn_record r;
    int rc = sn_record_decode(v, vlen, c->a, &r, e);
    if (!rc && r.type != SN_REC_METRIC) rc = sn_fail(e, SN_ECORRUPT, "wrong record type");
    if (rc) return sn_record_err(e, rc, CF_METRICS, k, klen);
    sn_value m;
    rc = sn_record_map(&sn_schema_metric, c->a, &m, e);
    if (rc) return rc;
    /* the caller asked for this name: return timestamp and value */
    m.u.a.n = 0;
    m.u.a.items[2 * m.u.a.n] = sn_cstr("timestamp");
    m.u.a.items[2 * m.u.a.n++ + 1] = *sn_map_get(&r.fields, "timestamp");
    m.u.a.items[2 * m.u.a.n] = sn_cstr("value");
    m.u.a.items[2 * m.u.a.n++ + 1] = *sn_map_get(&r.fields, "value");
    const sn_value *o = sn_map_get(&r.fields, "origin");
    if (o && o->type == SN_STR) {   /* the node that recorded it (format 1: none) */
        m.u.a.items[2 * m.u.a.n] = sn_cstr("origin");
        m.u.a.items[2 * m.u.a.n++ + 1] = *o;
    }
    return sn_vlist_push(&c->l, m, e);
}

int sn_metrics(sn_store *s, const char *name, size_t len, double from, double to, sn_arena *a,
               sn_value *out, sn_err *e)
{
    points_ctx c = { a, { 0 } };
    int rc = metric_scan(s, name, len, from, to, 0, push_point, &c, e);
    if (rc) { free(c.l.items); return rc; }
    return sn_vlist_finish(&c.l, a, out, e);
}

static int count_point(void *ctx, const unsigned char *k, size_t klen, const char *v, size_t vlen,
                       sn_err *e)
{
    (void)k, (void)klen, (void)v, (void)vlen, (void)e;
    ++*(uint64_t *)ctx;
    return SN_OK;
}

int sn_metric_count(sn_store *s, const char *name, size_t len, double from, double to,
                    uint64_t *count, sn_err *e)
{
    *count = 0;
    return metric_scan(s, name, len, from, to, 0, count_point, count, e);
}

typedef struct prune_ctx { sn_store *s; sn_batch *b; uint64_t n; } prune_ctx;

static int delete_point(void *ctx, const unsigned char *k, size_t klen, const char *v, size_t vlen,
                        sn_err *e)
{
    (void)v, (void)vlen, (void)e;
    prune_ctx *c = ctx;
    rocksdb_writebatch_delete_cf(c->b->wb, c->s->cf[CF_METRICS], (const char *)k, klen);
    c->n++;
    return SN_OK;
}

int sn_prune_metrics(sn_store *s, sn_batch *given, const char *name, size_t len, double before,
                     uint64_t *removed, sn_err *e)
{
    *removed = 0;
    int rc = sn_check_id(name, len, "metric name", e);
    if (rc) return rc;
    if (isnan(before)) return sn_fail(e, SN_EARG, "before_timestamp is NaN");
    prune_ctx c = { s, sn_batch_or_temp(s, given, e), 0 };
    if (!c.b) return e->code;
    rc = metric_scan(s, name, len, -HUGE_VAL, before, 1, delete_point, &c, e);
    rc = sn_batch_finish(c.b, given, rc, e);
    if (!rc) *removed = c.n;
    return rc;
}

/* One seek per name: after a name's first key, the next name starts at or
 * after name 0x01, since no name holds a NUL byte. */
int sn_metric_names(sn_store *s, sn_arena *a, sn_value *out, sn_err *e)
{
    sn_vlist l = {0};
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_METRICS);
    rocksdb_iter_seek_to_first(it);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t klen, nlen;
        double ts;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (!sn_metric_key_parse(k, klen, &nlen, &ts)) {
            rc = sn_record_err(e, sn_fail(e, SN_ECORRUPT, "malformed metric key"), CF_METRICS, k,
                               klen);
            break;
        }
        char next[SN_MAX_ID_LEN + 1];
        memcpy(next, k, nlen);
        next[nlen] = 1;
        const char *copy = sn_arena_strdup(a, next, nlen);
        rc = copy ? sn_vlist_push(&l, sn_str(copy, nlen), e) : sn_fail(e, SN_ENOMEM, "out of memory");
        if (!rc) rocksdb_iter_seek(it, next, nlen + 1);
    }
    rc = sn_iter_end(it, rc, sn_cf_names[CF_METRICS], e);
    if (rc) { free(l.items); return rc; }
    return sn_vlist_finish(&l, a, out, e);
}
