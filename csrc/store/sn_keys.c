/* Every key of the store in one place: byte order, the column families'
 * names, and each key's builder, parser and printed name (the key map is
 * in sn_keys.h). */
#include "store/sn_handle.h"
#include "store/sn_keys.h"

#include <stdio.h>
#include <string.h>

const char *const sn_cf_names[CF_COUNT] = {
    "default", "neural_weights", "expert_config", "system_state", "checkpoints", "metrics",
};

void sn_put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) { p[i] = (unsigned char)v; v >>= 8; }
}

uint64_t sn_get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

int sn_wkey_v1_parse(const unsigned char *k, size_t klen, const char **expert, size_t *len,
                     uint32_t *layer, uint64_t *version)
{
    if (klen < 14 || klen > SN_WKEY_V1_MAX || k[klen - 13] != 0) return -1;
    *expert = (const char *)k;
    *len = klen - 13;
    if (memchr(k, 0, *len)) return -1;
    *layer = (uint32_t)sn_get_be(k + klen - 12, 4);
    *version = sn_get_be(k + klen - 8, 8);
    return 0;
}

size_t sn_pin_key(unsigned char *k, const sn_value *pin, const void *id, size_t idlen)
{
    const sn_value *x = sn_map_get(pin, "expert_id"), *o = sn_map_get(pin, "origin");
    const sn_value *h = sn_map_get(pin, "hlc");
    sn_ident w = { h && h->type == SN_INT ? (uint64_t)h->u.i : 0, "" };
    if (o && o->type == SN_STR && o->u.s.len == SN_ORIGIN_LEN) memcpy(w.origin, o->u.s.p, SN_ORIGIN_LEN);
    else memset(w.origin, ' ', SN_ORIGIN_LEN);   /* a pin without identity pins nothing */
    k[0] = SN_PIN_PREFIX;
    size_t lklen = sn_layer_key(k + 1, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(pin, "layer")->u.i);
    size_t n = 1 + sn_wkey_id(k + 1, k + 1, lklen, &w);
    memcpy(k + n, id, idlen);
    return n + idlen;
}

void sn_describe_key(int cf, const unsigned char *k, size_t klen, char *buf, size_t cap)
{
    size_t lklen;
    sn_ident id;
    sn_err ignored;
    if (cf == CF_WEIGHTS && sn_wkey_split(k, klen, &lklen, &id, &ignored) == 0) {
        snprintf(buf, cap, "%s/%.*s/layer %u/%.8s@%llu", sn_cf_names[cf], (int)(lklen - 5),
                 (const char *)k, (unsigned)sn_get_be(k + lklen - 4, 4), id.origin,
                 (unsigned long long)id.hlc);
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "%s/", sn_cf_names[cf]);
    for (size_t i = 0; i < klen && n + 5 < cap; i++) {
        unsigned char c = k[i];
        n += (size_t)snprintf(buf + n, cap - n, c >= 32 && c < 127 ? "%c" : "\\x%02x", c);
    }
}

size_t sn_layer_key(unsigned char *k, const char *expert, size_t len, uint32_t layer)
{
    memcpy(k, expert, len);
    k[len] = 0;
    sn_put_be(k + len + 1, layer, 4);
    return len + 5;
}

size_t sn_wkey_id(unsigned char *k, const unsigned char *lk, size_t lklen, const sn_ident *id)
{
    memmove(k, lk, lklen);
    sn_ident_put(k + lklen, id);
    return lklen + SN_ID_LEN;
}

int sn_wkey_split(const unsigned char *k, size_t klen, size_t *lklen, sn_ident *id, sn_err *e)
{
    const unsigned char *nul = klen > SN_ID_LEN ? memchr(k, 0, klen - SN_ID_LEN) : NULL;
    if (!nul || nul == k || (size_t)(nul - k) > SN_MAX_ID_LEN ||
        klen != (size_t)(nul - k) + 5 + SN_ID_LEN)
        return sn_fail(e, SN_ECORRUPT, "malformed weights key");
    *lklen = klen - SN_ID_LEN;
    return sn_ident_get(k + *lklen, id, e);
}

size_t sn_hist_key(unsigned char *k, char tag, const unsigned char *lk, size_t lklen,
                   const sn_ident *id)
{
    k[0] = 1;
    k[1] = (unsigned char)tag;
    memcpy(k + 2, lk, lklen);
    if (!id) return 2 + lklen;
    sn_ident_put(k + 2 + lklen, id);
    return 2 + lklen + SN_ID_LEN;
}

size_t sn_log_key(unsigned char *k, const char *origin, uint64_t seq)
{
    k[0] = 1;
    k[1] = TAG_LOG;
    memcpy(k + 2, origin, SN_ORIGIN_LEN);
    sn_put_be(k + 2 + SN_ORIGIN_LEN, seq, 8);
    return LOG_KEY_LEN;
}

size_t sn_rec_prefix(unsigned char *k, char tag, int cf, const unsigned char *key, size_t klen)
{
    k[0] = 1;
    k[1] = (unsigned char)tag;
    k[2] = (unsigned char)cf;
    sn_put_be(k + 3, klen, 2);
    memcpy(k + 5, key, klen);
    return 5 + klen;
}

size_t sn_ident_key(unsigned char *k, char tag, int cf, const unsigned char *key, size_t klen,
                        const sn_ident *id)
{
    size_t n = sn_rec_prefix(k, tag, cf, key, klen);
    sn_put_be(k + n, id->hlc, 8);
    memcpy(k + n + 8, id->origin, SN_ORIGIN_LEN);
    return n + 8 + SN_ORIGIN_LEN;
}

int sn_same_ident(const sn_ident *a, const sn_ident *b)
{
    return a->hlc == b->hlc && strcmp(a->origin, b->origin) == 0;
}

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

size_t sn_metric_seek_key(unsigned char *k, const char *name, size_t len, double ts)
{
    memcpy(k, name, len);
    k[len] = 0;
    put_ordered_double(k + len + 1, ts);
    return len + 9;
}

size_t sn_metric_key(unsigned char *k, const char *name, size_t len, double ts, uint64_t seq)
{
    size_t n = sn_metric_seek_key(k, name, len, ts);
    sn_put_be(k + n, seq, 8);
    return n + 8;
}

int sn_metric_key_parse(const unsigned char *k, size_t klen, size_t *name_len, double *ts)
{
    if (klen < 18 || klen - 17 > SN_MAX_ID_LEN || k[klen - 17] != 0) return 0;
    *name_len = klen - 17;
    *ts = get_ordered_double(k + klen - 16);
    return 1;
}
