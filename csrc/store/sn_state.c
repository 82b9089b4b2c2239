/* System state (key -> value) and metrics (name, time -> value): local
 * records, never replicated. */
#include "store/sn_store_int.h"

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
