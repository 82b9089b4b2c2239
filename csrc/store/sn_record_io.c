/* Reading and writing one record (sn_record.h's envelope) under its key. */
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_rocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sn_record_err(sn_err *e, int rc, int cf, const unsigned char *k, size_t klen)
{
    char where[600], msg[sizeof e->msg];
    sn_describe_key(cf, k, klen, where, sizeof where);
    snprintf(msg, sizeof msg, "%s", e->msg);
    return sn_fail(e, rc, "record %s: %s", where, msg);
}

int sn_batch_put_record(sn_batch *b, int cf, const void *key, size_t klen, unsigned type,
                        const sn_value *map, const sn_part *parts, size_t nparts,
                        sn_codec codec, sn_err *e)
{
    sn_buf buf;
    int rc = sn_record_encode_ctx(b->s->codec, type, map, parts, nparts, codec, &buf, e);
    if (rc) return rc;
    rocksdb_writebatch_put_cf(b->wb, b->s->cf[cf], key, klen, (const char *)buf.data, buf.len);
    free(buf.data);
    return SN_OK;
}

void sn_copy_fields(sn_value *rec, const sn_value *src)
{
    for (size_t i = 0; i < src->u.a.n; i++) {
        const sn_value *k = &src->u.a.items[2 * i];
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)k->u.s.len, k->u.s.p);
        sn_map_set(rec, name, src->u.a.items[2 * i + 1]);
    }
}

int sn_expect_field(const sn_value *fields, const char *name, const void *p, size_t len,
                    sn_err *e)
{
    const sn_value *f = sn_map_get(fields, name);
    if (!f || f->type != SN_STR || f->u.s.len != len || memcmp(f->u.s.p, p, len) != 0)
        return sn_fail(e, SN_ECORRUPT, "record does not belong under its key");
    return SN_OK;
}

int sn_get_record(sn_store *s, int cf, const void *key, size_t klen, unsigned type,
                  sn_arena *a, sn_value *out, sn_err *e)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *p = rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[cf], key, klen, &err);
    if (err) {
        char where[600];
        sn_describe_key(cf, key, klen, where, sizeof where);
        return sn_rocks_err(e, err, where);
    }
    if (!p) return SN_NOTFOUND;
    size_t len;
    const char *v = rocksdb_pinnableslice_value(p, &len);
    sn_record r;
    int rc = sn_record_decode(v, len, a, &r, e);
    if (!rc && r.type != type) rc = sn_fail(e, SN_ECORRUPT, "record has the wrong type");
    if (!rc && r.raw_len) rc = sn_fail(e, SN_ECORRUPT, "unexpected payload");
    if (rc) sn_record_err(e, rc, cf, key, klen);
    else *out = r.fields;
    rocksdb_pinnableslice_destroy(p);
    return rc;
}
