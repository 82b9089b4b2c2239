/* The record kinds table and the one record check (see sn_kinds.h). */
#include "store/sn_kinds.h"
#include "store/sn_record_io.h"
#include "store/sn_weights_int.h"

#include <string.h>

static const char *checkpoint_name(const unsigned char *k, size_t klen, const unsigned char **name,
                                   size_t *len)
{
    if (klen < 2 || k[0] != SN_CP_PREFIX) return "malformed checkpoint key";
    *name = k + 1;
    *len = klen - 1;
    return NULL;
}

static const char *metric_name(const unsigned char *k, size_t klen, const unsigned char **name,
                               size_t *len)
{
    double ts;
    if (!sn_metric_key_parse(k, klen, len, &ts)) return "malformed metric key";
    *name = k;
    return NULL;
}

static const sn_kind kinds[CF_COUNT] = {
    [CF_WEIGHTS] = { CF_WEIGHTS, "weights", SN_REC_WEIGHTS, 1, NULL, "timestamp", NULL },
    [CF_CONFIG] = { CF_CONFIG, "configs", SN_REC_CONFIG, 1, "expert_id", "updated_at", NULL },
    /* state and metric heads carry no time: the old lookup asked them for a
     * "created_at" they do not have. State records do have "updated_at";
     * reading it would change which state a resolver keeps, so it waits
     * for its own change. */
    [CF_STATE] = { CF_STATE, "state", SN_REC_STATE, 1, "key", NULL, NULL },
    [CF_CHECKPOINTS] = { CF_CHECKPOINTS, "checkpoints", SN_REC_CHECKPOINT, 1, "id", "created_at",
                         checkpoint_name },
    [CF_METRICS] = { CF_METRICS, "metrics", SN_REC_METRIC, 1, "name", NULL, metric_name },
};

const sn_kind *sn_kind_of(int cf)
{
    return cf > CF_DEFAULT && cf < CF_COUNT ? &kinds[cf] : NULL;
}

int sn_kind_check(const sn_kind *kd, sn_codec_ctx *x, const unsigned char *k, size_t klen,
                  const char *val, size_t vlen, sn_arena *a, sn_value *fields, sn_err *e)
{
    if (fields) *fields = sn_nil();
    if (klen == 0) return sn_fail(e, SN_ECORRUPT, "empty key");
    const unsigned char *name = k;
    size_t nlen = klen;
    const char *bad = kd->key_name ? kd->key_name(k, klen, &name, &nlen) : NULL;
    if (bad) return sn_fail(e, SN_ECORRUPT, "%s", bad);
    if (kd->cf == CF_WEIGHTS) {
        /* the whole payload is decoded and its CRC checked, not only the meta */
        int rc = sn_weights_verify(x, k, klen, val, vlen, e);
        if (rc || !fields) return rc;
    }
    sn_record r;
    int rc = sn_record_decode(val, vlen, a, &r, e);
    if (!rc && r.type != kd->type) rc = sn_fail(e, SN_ECORRUPT, "record has the wrong type");
    if (!rc && kd->cf != CF_WEIGHTS && r.raw_len) rc = sn_fail(e, SN_ECORRUPT, "unexpected payload");
    if (!rc && kd->key_field) rc = sn_expect_field(&r.fields, kd->key_field, name, nlen, e);
    if (!rc && fields) *fields = r.fields;
    return rc;
}

int sn_record_check(sn_codec_ctx *x, int cf, const unsigned char *k, size_t klen,
                    const char *val, size_t vlen, sn_arena *a, sn_value *fields, sn_err *e)
{
    if (fields) *fields = sn_nil();
    if (klen == 0) return sn_fail(e, SN_ECORRUPT, "empty key");
    if (cf == CF_CHECKPOINTS && klen > 0 && k[0] == SN_PIN_PREFIX)
        return klen < 1 + 6 + SN_ID_LEN + 36 || vlen != 0
                   ? sn_fail(e, SN_ECORRUPT, "malformed pin entry") : SN_OK;
    const sn_kind *kd = sn_kind_of(cf);
    if (!kd) return sn_fail(e, SN_ECORRUPT, "no kind of record lives in %s", sn_cf_names[cf]);
    return sn_kind_check(kd, x, k, klen, val, vlen, a, fields, e);
}
