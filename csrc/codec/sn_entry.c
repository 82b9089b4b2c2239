/* The replication log entry codec (see sn_entry.h). */
#include "codec/sn_entry.h"

#include <stdlib.h>
#include <string.h>

int sn_origin_ok(const void *p, size_t len)
{
    const unsigned char *o = p;
    for (size_t i = 0; i < len; i++)
        if (o[i] < 32 || o[i] > 126) return 0;
    return 1;
}

int sn_entry_cf_known(int64_t cf)
{
    return cf >= SN_ENTRY_CF_WEIGHTS && cf <= SN_ENTRY_CF_METRICS;
}

void sn_ident_put(unsigned char *p, const sn_ident *id)
{
    uint64_t h = id->hlc;
    for (int i = 7; i >= 0; i--, h >>= 8) p[i] = (unsigned char)h;
    memcpy(p + 8, id->origin, SN_ORIGIN_LEN);
}

int sn_ident_get(const unsigned char *p, sn_ident *id, sn_err *e)
{
    id->hlc = 0;
    for (int i = 0; i < 8; i++) id->hlc = id->hlc << 8 | p[i];
    if (!sn_origin_ok(p + 8, SN_ORIGIN_LEN)) return sn_fail(e, SN_ECORRUPT, "identity origin is not printable");
    memcpy(id->origin, p + 8, SN_ORIGIN_LEN);
    id->origin[SN_ORIGIN_LEN] = 0;
    return SN_OK;
}

int sn_ident_cmp(const sn_ident *a, const sn_ident *b)
{
    if (a->hlc != b->hlc) return a->hlc < b->hlc ? -1 : 1;
    return strcmp(a->origin, b->origin);
}

static int is_origin(const sn_value *v)
{
    return v->type == SN_STR && v->u.s.len == SN_ORIGIN_LEN && sn_origin_ok(v->u.s.p, v->u.s.len);
}

int sn_entry_map(const sn_entry *en, const sn_entry_wire *wire, sn_arena *a, sn_value *out,
                 sn_err *e)
{
    int rc = sn_record_map(&sn_schema_log_entry, a, out, e);
    if (rc) return rc;
    const char *key = sn_arena_strdup(a, (const char *)en->key, en->klen);
    const char *prev = en->prev.origin[0] ? sn_arena_strdup(a, en->prev.origin, SN_ORIGIN_LEN)
                                          : "";
    const char *origin = wire ? sn_arena_strdup(a, en->origin, SN_ORIGIN_LEN) : "";
    unsigned char *parents = en->nparents ? sn_arena_alloc(a, en->nparents * SN_ID_LEN) : NULL;
    if (!key || !prev || !origin || (en->nparents && !parents))
        return sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; i < en->nparents; i++) sn_ident_put(parents + i * SN_ID_LEN, &en->parents[i]);
    sn_map_set(out, "kind", sn_int(en->kind));
    sn_map_set(out, "cf", sn_int(en->cf));
    sn_map_set(out, "key", sn_str(key, en->klen));
    sn_map_set(out, "hlc", sn_int((int64_t)en->hlc));
    if (en->prev.origin[0]) {
        sn_map_set(out, "prev_hlc", sn_int((int64_t)en->prev.hlc));
        sn_map_set(out, "prev_origin", sn_str(prev, SN_ORIGIN_LEN));
    }
    if (en->nparents)
        sn_map_set(out, "parents", sn_str((const char *)parents, en->nparents * SN_ID_LEN));
    if (en->depth) sn_map_set(out, "depth", sn_int(en->depth));
    if (en->tomb) sn_map_set(out, "tomb", sn_int(1));
    if (!wire) return SN_OK;
    sn_map_set(out, "origin", sn_str(origin, SN_ORIGIN_LEN));
    sn_map_set(out, "seq", sn_int((int64_t)en->seq));
    sn_map_set(out, "len", sn_int((int64_t)wire->len));
    if (wire->total) {
        sn_map_set(out, "total", sn_int((int64_t)wire->total));
        sn_map_set(out, "off", sn_int((int64_t)wire->off));
    }
    return SN_OK;
}

/* A weights write's parents: whole identities, strictly ascending (so one
 * set has one encoding), at most SN_MAX_PARENTS; only weights have them. */
static int parse_parents(const sn_value *p, sn_entry *en, sn_err *e)
{
    en->nparents = 0;
    if (p->type == SN_NIL) return SN_OK;   /* format-1 entries have no such field */
    size_t n = p->u.s.len / SN_ID_LEN;
    if (en->cf != SN_ENTRY_CF_WEIGHTS || p->u.s.len % SN_ID_LEN || n == 0 || n > SN_MAX_PARENTS)
        return sn_fail(e, SN_ECORRUPT, "log entry parents are malformed");
    for (size_t i = 0; i < n; i++) {
        if (sn_ident_get((const unsigned char *)p->u.s.p + i * SN_ID_LEN, &en->parents[i], e))
            return sn_fail(e, SN_ECORRUPT, "log entry parent origin is not printable");
        if (i && sn_ident_cmp(&en->parents[i - 1], &en->parents[i]) >= 0)
            return sn_fail(e, SN_ECORRUPT, "log entry parents are not in order");
    }
    en->nparents = n;
    return SN_OK;
}

/* The fields both forms carry. An entry nested in a message is a map
 * whose optional fields may be absent: each is read with sn_map_field. */
static int parse_common(const sn_value *m, sn_entry *en, sn_err *e)
{
    const sn_value *key = sn_map_field(m, "key");
    const sn_value *ph = sn_map_field(m, "prev_hlc"), *po = sn_map_field(m, "prev_origin");
    int64_t kind = sn_map_field(m, "kind")->u.i, cf = sn_map_field(m, "cf")->u.i;
    if (kind > SN_KIND_SKIP) return sn_fail(e, SN_ECORRUPT, "log entry of an unknown kind");
    if (!sn_entry_cf_known(cf))
        return sn_fail(e, SN_ECORRUPT, "log entry names a column family that is not replicated");
    if (key->u.s.len == 0 || key->u.s.len > SN_REPL_KEY_MAX)
        return sn_fail(e, SN_ECORRUPT, "log entry key has a bad length");
    if ((ph->type == SN_NIL) != (po->type == SN_NIL) || (po->type != SN_NIL && !is_origin(po)))
        return sn_fail(e, SN_ECORRUPT, "log entry predecessor is malformed");
    en->kind = (unsigned)kind;
    en->cf = (int)cf;
    memcpy(en->key, key->u.s.p, key->u.s.len);
    en->klen = key->u.s.len;
    en->hlc = (uint64_t)sn_map_field(m, "hlc")->u.i;
    if (po->type == SN_STR) {
        en->prev.hlc = (uint64_t)ph->u.i;
        memcpy(en->prev.origin, po->u.s.p, SN_ORIGIN_LEN);
    }
    const sn_value *d = sn_map_field(m, "depth");
    if (d->type == SN_INT) {
        /* its writer's view of its history's length; a deeper history than
         * any store can hold is a forged one */
        if (en->cf != SN_ENTRY_CF_WEIGHTS || d->u.i < 1 || d->u.i > UINT32_MAX)
            return sn_fail(e, SN_ECORRUPT, "log entry depth is malformed");
        en->depth = (uint32_t)d->u.i;
    }
    const sn_value *t = sn_map_field(m, "tomb");
    if (t->type == SN_INT) {
        if (en->cf != SN_ENTRY_CF_WEIGHTS || en->kind != SN_KIND_DEL || t->u.i != 1)
            return sn_fail(e, SN_ECORRUPT, "log entry tombstone is malformed");
        en->tomb = 1;
    }
    return parse_parents(sn_map_field(m, "parents"), en, e);
}

static int parse_wire(const sn_value *m, sn_entry *en, sn_entry_wire *wire, sn_err *e)
{
    const sn_value *t = sn_map_field(m, "total"), *o = sn_map_field(m, "off");
    const sn_value *origin = sn_map_field(m, "origin"), *seq = sn_map_field(m, "seq");
    const sn_value *l = sn_map_field(m, "len");
    if ((t->type == SN_NIL) != (o->type == SN_NIL))
        return sn_fail(e, SN_ECORRUPT, "chunk entry lacks total or off");
    if (t->type == SN_INT && t->u.i == 0)
        return sn_fail(e, SN_ECORRUPT, "chunk of an empty record");
    if (!is_origin(origin) || seq->type != SN_INT || seq->u.i < 1 || l->type != SN_INT)
        return sn_fail(e, SN_ECORRUPT, "log entry lacks origin, seq or len");
    if ((en->kind == SN_KIND_PUT) != (l->u.i > 0))
        return sn_fail(e, SN_ECORRUPT, "log entry payload disagrees with its kind");
    memcpy(en->origin, origin->u.s.p, SN_ORIGIN_LEN);
    en->seq = (uint64_t)seq->u.i;
    wire->len = (size_t)l->u.i;
    wire->total = t->type == SN_INT ? (size_t)t->u.i : 0;
    wire->off = o->type == SN_INT ? (size_t)o->u.i : 0;
    return SN_OK;
}

int sn_entry_parse(const sn_value *m, sn_entry *en, sn_entry_wire *wire, sn_err *e)
{
    memset(en, 0, sizeof *en);
    if (wire) memset(wire, 0, sizeof *wire);
    int rc = parse_common(m, en, e);
    if (rc || wire) return rc ? rc : parse_wire(m, en, wire, e);
    static const char *const wire_only[] = { "origin", "seq", "len", "total", "off" };
    for (size_t i = 0; i < sizeof wire_only / sizeof wire_only[0]; i++)
        if (sn_map_field(m, wire_only[i])->type != SN_NIL)
            return sn_fail(e, SN_ECORRUPT, "log entry carries wire fields");
    return SN_OK;
}

int sn_entry_encode(const sn_entry *en, sn_buf *out, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value m;
    int rc = sn_entry_map(en, NULL, &a, &m, e);
    if (!rc) rc = sn_record_encode(SN_REC_LOG, &m, NULL, 0, SN_CODEC_NONE, out, e);
    sn_arena_free(&a);
    return rc;
}

int sn_entry_decode(const void *data, size_t len, sn_entry *en, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_record r;
    int rc = sn_record_decode(data, len, &a, &r, e);
    if (!rc && r.type != SN_REC_LOG) rc = sn_fail(e, SN_ECORRUPT, "not a replication log entry");
    if (!rc && r.raw_len) rc = sn_fail(e, SN_ECORRUPT, "log entry with a payload");
    if (!rc) rc = sn_entry_parse(&r.fields, en, NULL, e);
    else memset(en, 0, sizeof *en);
    sn_arena_free(&a);
    return rc;
}
