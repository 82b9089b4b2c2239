/* Store format: "synaptic.format" in the default column family says how
 * weights are kept. Format 1 (the first release) keyed them by version
 * number and kept no causal links; format 2 keys them by identity with a
 * causal history per layer (sn_history.h). A format-1 store is upgraded
 * when first opened for writing:
 *   1. checkpoint pins gain the identity of the write they pinned;
 *   2. each layer's writes (records, kept conflicts, and log entries whose
 *      records were trimmed) become one history in (hlc, origin) order: a
 *      chain, since format 1 recorded no causal links, so the newest write
 *      is current and the rest is history;
 *   3. weights log entries are rewritten to name their write and parent;
 *   4. the marker is written last.
 * Each step is one batch per layer or per checkpoint, and finds only what is
 * still in format 1, so an upgrade cut short by a crash resumes. */
#include "store/sn_format.h"
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_replica.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char FORMAT_KEY[] = "synaptic.format";

/* One format-1 write of a layer: where its record or log entry is. */
typedef struct old_write {
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen;
    sn_ident id;
    int cf;                           /* CF_WEIGHTS (a v1 key), CF_DEFAULT (a conflict), -1 (log only) */
    unsigned char key[IDKEY_MAX];     /* the record's key in cf */
    size_t klen;
} old_write;

typedef struct old_list { old_write *v; size_t n, cap; } old_list;

static int old_cmp(const void *x, const void *y)
{
    const old_write *a = x, *b = y;
    if (a->lklen != b->lklen || memcmp(a->lk, b->lk, a->lklen))
        return a->lklen != b->lklen ? (a->lklen < b->lklen ? -1 : 1) : memcmp(a->lk, b->lk, a->lklen);
    int c = sn_ident_cmp(&a->id, &b->id);
    return c ? c : b->cf - a->cf;   /* a held record first */
}

static int add_old(old_list *l, const unsigned char *v1key, size_t v1len, const sn_ident *id, int cf,
                   const unsigned char *key, size_t klen, sn_err *e)
{
    if (SN_GROW(l->v, l->n, l->cap, 64, e)) return e->code;
    old_write *w = &l->v[l->n++];
    w->lklen = v1len - 8;
    memcpy(w->lk, v1key, w->lklen);
    w->id = *id;
    w->cf = cf;
    memcpy(w->key, key, klen);
    w->klen = klen;
    return SN_OK;
}

static int is_v1_weights_key(const unsigned char *k, size_t klen)
{
    const char *x;
    size_t len;
    uint32_t layer;
    uint64_t version;
    return sn_wkey_v1_parse(k, klen, &x, &len, &layer, &version) == 0;
}

/* Format-1 weight records and conflicts, with their identities. */
static int collect_records(sn_store *s, old_list *l, sn_err *e)
{
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_WEIGHTS);
    for (rocksdb_iter_seek_to_first(it); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (!is_v1_weights_key(k, klen)) continue;
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_head h;
        rc = sn_record_head((const unsigned char *)v, vlen, CF_WEIGHTS, &h, e);
        if (!rc) rc = add_old(l, k, klen, &h.id, CF_WEIGHTS, k, klen, e);
    }
    rc = sn_iter_end(it, rc, "reading format-1 weights", e);
    unsigned char p[3] = { 1, TAG_CONFLICT, CF_WEIGHTS };
    it = sn_iter(s, CF_DEFAULT);
    for (rocksdb_iter_seek(it, (const char *)p, 3); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 5 || memcmp(k, p, 3) != 0) break;
        size_t rklen = (size_t)sn_get_be(k + 3, 2);
        if (klen != 5 + rklen + SN_ID_LEN || !is_v1_weights_key(k + 5, rklen)) continue;
        sn_ident id;
        rc = sn_ident_get(k + 5 + rklen, &id, e);
        if (!rc) rc = add_old(l, k + 5, rklen, &id, CF_DEFAULT, k, klen, e);
    }
    return sn_iter_end(it, rc, "reading format-1 conflicts", e);
}

/* Format-1 weights log entries (their identity is the entry's). */
static int collect_log(sn_store *s, old_list *l, sn_err *e)
{
    unsigned char p[2] = { 1, TAG_LOG };
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_DEFAULT);
    for (rocksdb_iter_seek(it, (const char *)p, 2); !rc && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen != LOG_KEY_LEN || memcmp(k, p, 2) != 0) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_entry en;
        rc = sn_entry_decode(v, vlen, &en, e);
        if (rc || en.cf != CF_WEIGHTS || !is_v1_weights_key(en.key, en.klen)) continue;
        sn_ident id = { en.hlc, "" };
        memcpy(id.origin, k + 2, SN_ORIGIN_LEN);
        rc = add_old(l, en.key, en.klen, &id, -1, k, klen, e);
    }
    return sn_iter_end(it, rc, "reading the replication log", e);
}

/* ---- 1. checkpoint pins ------------------------------------------------------- */

/* The identity of format-1 version `version` of a layer (its v1 record). */
static int v1_identity(sn_store *s, const sn_value *pin, sn_ident *id, int *found, sn_err *e)
{
    const sn_value *x = sn_map_get(pin, "expert_id");
    unsigned char k[SN_WKEY_V1_MAX];
    size_t lklen = sn_layer_key(k, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(pin, "layer")->u.i);
    sn_put_be(k + lklen, (uint64_t)sn_map_get(pin, "version")->u.i, 8);
    sn_buf v;
    *found = 0;
    int rc = sn_get_copy(s, CF_WEIGHTS, k, lklen + 8, &v, e);
    if (rc == SN_NOTFOUND) return SN_OK;
    if (rc) return rc;
    sn_head h;
    rc = sn_record_head(v.data, v.len, CF_WEIGHTS, &h, e);
    free(v.data);
    if (!rc) { *id = h.id; *found = 1; }
    return rc;
}

/* One checkpoint's pins with identities; the pin index follows. */
static int upgrade_checkpoint(sn_store *s, const unsigned char *ck, size_t cklen, const char *val,
                              size_t vlen, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_record r;
    int rc = sn_record_decode(val, vlen, &a, &r, e), changed = 0;
    const sn_value *pins = rc ? NULL : sn_map_get(&r.fields, "pins");
    sn_batch *b = rc ? NULL : sn_batch_new(s);
    if (!rc && !b) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && pins && pins->type == SN_ARRAY && i < pins->u.a.n; i++) {
        sn_value *p = &pins->u.a.items[i];
        const sn_value *o = sn_map_get(p, "origin");
        if (o && o->type == SN_STR) continue;
        sn_ident id;
        int found;
        rc = v1_identity(s, p, &id, &found, e);
        if (rc || !found) continue;
        unsigned char k[SN_PIN_KEY_MAX];
        k[0] = SN_PIN_PREFIX;
        const sn_value *x = sn_map_get(p, "expert_id");
        size_t n = 1 + sn_layer_key(k + 1, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(p, "layer")->u.i);
        sn_put_be(k + n, (uint64_t)sn_map_get(p, "version")->u.i, 8);
        memcpy(k + n + 8, ck + 1, cklen - 1);
        rocksdb_writebatch_delete_cf(b->wb, s->cf[CF_CHECKPOINTS], (const char *)k, n + 8 + cklen - 1);
        sn_value np;
        const char *origin = sn_arena_strdup(&a, id.origin, SN_ORIGIN_LEN);
        rc = origin ? sn_record_map(&sn_schema_pin, &a, &np, e) : sn_fail(e, SN_ENOMEM, "out of memory");
        if (rc) break;
        sn_map_set(&np, "expert_id", *x);
        sn_map_set(&np, "layer", *sn_map_get(p, "layer"));
        sn_map_set(&np, "version", *sn_map_get(p, "version"));
        sn_map_set(&np, "hlc", sn_int((int64_t)id.hlc));
        sn_map_set(&np, "origin", sn_str(origin, SN_ORIGIN_LEN));
        *p = np;
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_CHECKPOINTS], (const char *)k,
                                  sn_pin_key(k, p, ck + 1, cklen - 1), "", 0);
        changed = 1;
    }
    if (!rc && changed)
        rc = sn_batch_put_record(b, CF_CHECKPOINTS, ck, cklen, SN_REC_CHECKPOINT, &r.fields, NULL, 0,
                                 SN_CODEC_NONE, e);
    if (!rc && changed) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    sn_arena_free(&a);
    return rc;
}

static int upgrade_checkpoints(sn_store *s, sn_err *e)
{
    char p = SN_CP_PREFIX;
    int rc = SN_OK;
    rocksdb_iterator_t *it = sn_iter(s, CF_CHECKPOINTS);
    for (rocksdb_iter_seek(it, &p, 1); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (k[0] != SN_CP_PREFIX) break;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = upgrade_checkpoint(s, k, klen, v, vlen, e);
    }
    return sn_iter_end(it, rc, "reading checkpoints", e);
}

/* ---- 2, 3. layers and their log entries ---------------------------------------- */

static int rewrite_log_entry(sn_store *s, sn_batch *b, const old_write *w, const unsigned char *nkey,
                             size_t nklen, const sn_ident *parent, uint32_t depth, sn_err *e)
{
    sn_buf v;
    int rc = sn_get_copy(s, CF_DEFAULT, w->key, w->klen, &v, e);
    if (rc) return rc;
    sn_entry en;
    rc = sn_entry_decode(v.data, v.len, &en, e);
    free(v.data);
    if (rc) return rc;
    memcpy(en.key, nkey, nklen);
    en.klen = nklen;
    en.nparents = parent ? 1 : 0;
    en.depth = depth;
    if (parent) en.parents[0] = *parent;
    rc = sn_entry_encode(&en, &v, e);
    if (rc) return rc;
    rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)w->key, w->klen,
                              (const char *)v.data, v.len);
    free(v.data);
    return SN_OK;
}

/* Writes w[0..n) of one layer (sorted, an identity's held record first):
 * one chain in (hlc, origin) order, in one batch. */
static int upgrade_layer(sn_store *s, const old_write *w, size_t n, sn_err *e)
{
    sn_batch *b = sn_batch_new(s);
    if (!b) return sn_fail(e, SN_ENOMEM, "out of memory");
    const unsigned char *lk = w[0].lk;
    size_t lklen = w[0].lklen;
    sn_ident prev, held;
    int have_prev = 0, have_held = 0, rc = SN_OK;
    uint32_t depth = 0;
    unsigned char nkey[SN_WKEY_MAX], k[IDKEY_MAX];
    for (size_t i = 0; !rc && i < n;) {
        size_t j = i;
        while (j < n && sn_same_ident(&w[j].id, &w[i].id)) j++;
        sn_hist h;
        memset(&h, 0, sizeof h);
        h.id = w[i].id;
        h.depth = ++depth;
        h.nparents = have_prev;
        if (have_prev) h.parents[0] = prev;
        size_t nklen = sn_wkey_id(nkey, lk, lklen, &h.id);
        if (w[i].cf >= 0) {   /* the record: moved under its identity */
            sn_buf v;
            rc = sn_get_copy(s, w[i].cf, w[i].key, w[i].klen, &v, e);
            if (!rc) {
                rocksdb_writebatch_put_cf(b->wb, s->cf[CF_WEIGHTS], (const char *)nkey, nklen,
                                          (const char *)v.data, v.len);
                free(v.data);
                h.flags = SN_HIST_HELD;
                held = h.id;
                have_held = 1;
            } else if (rc == SN_NOTFOUND) {
                rc = SN_OK;
            }
        }
        for (size_t x = i; !rc && x < j; x++) {
            if (w[x].cf >= 0)
                rocksdb_writebatch_delete_cf(b->wb, s->cf[w[x].cf], (const char *)w[x].key, w[x].klen);
            else
                rc = rewrite_log_entry(s, b, &w[x], nkey, nklen, have_prev ? &prev : NULL, h.depth, e);
        }
        sn_hist_put(b, lk, lklen, &h);
        if (have_prev)
            rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                      sn_ident_key(k, TAG_SUPERSEDED, CF_WEIGHTS, lk, lklen, &prev),
                                      "", 0);
        prev = h.id;
        have_prev = 1;
        i = j;
    }
    if (!rc && have_prev) {
        rocksdb_writebatch_put_cf(b->wb, s->cf[CF_DEFAULT], (const char *)k,
                                  sn_hist_key(k, TAG_HEAD, lk, lklen, &prev), "", 0);
        if (have_held) sn_current_put(b, lk, lklen, &held);
    }
    if (!rc) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    return rc;
}

static int upgrade_layers(sn_store *s, sn_err *e)
{
    old_list l = { 0 };
    int rc = collect_records(s, &l, e);
    if (!rc) rc = collect_log(s, &l, e);
    if (!rc && l.n) qsort(l.v, l.n, sizeof *l.v, old_cmp);
    for (size_t i = 0; !rc && i < l.n;) {
        size_t j = i;
        while (j < l.n && l.v[j].lklen == l.v[i].lklen && !memcmp(l.v[j].lk, l.v[i].lk, l.v[i].lklen)) j++;
        rc = upgrade_layer(s, &l.v[i], j - i, e);
        i = j;
    }
    free(l.v);
    return rc;
}

/* ---- open ------------------------------------------------------------------------- */

/* Whether the store keeps its weights in format 1: its first weights key
 * has that shape (a store keeps all of them in one format). 1 yes, 0 no,
 * -code when they cannot be read. */
static int v1_weights(sn_store *s, sn_err *e)
{
    rocksdb_iterator_t *it = sn_iter(s, CF_WEIGHTS);
    rocksdb_iter_seek_to_first(it);
    int v1 = 0;
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        v1 = is_v1_weights_key(k, klen);
    }
    int rc = sn_iter_end(it, SN_OK, sn_cf_names[CF_WEIGHTS], e);
    return rc ? -rc : v1;
}

int sn_format_open(sn_store *s, sn_err *e)
{
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[CF_DEFAULT], FORMAT_KEY, sizeof FORMAT_KEY - 1,
                             &len, &err);
    if (err) {
        /* a damaged store still opens read-only: its reads report the damage */
        if (s->opts.read_only) { rocksdb_free(err); return SN_OK; }
        return sn_rocks_err(e, err, "reading the store format");
    }
    int format = v && len == 1 ? v[0] - '0' : v ? -1 : 1;
    if (v) rocksdb_free(v);
    if (format == 2) return SN_OK;
    if (format != 1)
        return sn_fail(e, SN_ECORRUPT, "store format marker is not one this build reads (1 or 2)");
    /* weights that cannot be read (a damaged store, opened to salvage or
     * to look at) decide nothing: no upgrade and no marker, asked again at
     * the next open */
    sn_err ignored;
    int v1 = v1_weights(s, &ignored);
    if (v1 < 0) return SN_OK;
    if (v1 && s->opts.read_only)
        return sn_fail(e, SN_EIO, "store '%s' is in format 1 (the first release): open it once "
                       "for writing to upgrade it", s->path);
    if (s->opts.read_only) return SN_OK;
    int rc = v1 ? upgrade_checkpoints(s, e) : SN_OK;
    if (!rc && v1) rc = upgrade_layers(s, e);
    if (rc) return rc;
    rocksdb_put_cf(s->db, s->wopts, s->cf[CF_DEFAULT], FORMAT_KEY, sizeof FORMAT_KEY - 1, "2", 1, &err);
    return err ? sn_rocks_err(e, err, "writing the store format") : SN_OK;
}

/* ---- identity ------------------------------------------------------------------------ */

/* A store's origin names its writes in every peer's log, so two stores must
 * never share one. A copied directory (or a restored backup) carries its
 * original's origin: the directory's device and inode, kept beside the
 * origin, tell. A store that finds itself in another directory than the one
 * its origin was made in takes a new origin before its first write (a
 * rename keeps the inode, so a moved store stays itself). Its next HLC
 * still orders after everything in its log. */
static const char INSTANCE_KEY[] = "synaptic.instance";
/* a file a restore leaves: the next writable open takes a new origin */
#define NEW_ORIGIN_FILE "SYNAPTIC-NEW-ORIGIN"

int sn_mark_new_origin(const char *path, sn_err *e)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/" NEW_ORIGIN_FILE, path);
    FILE *f = fopen(file, "w");
    if (!f || fclose(f)) return sn_fail(e, SN_EIO, "cannot write '%s'", file);
    return SN_OK;
}

static int max_logged_hlc(sn_store *s, uint64_t *hlc, sn_err *e)
{
    sn_vv vv;
    int rc = sn_replica_vector(s, &vv, e);
    for (size_t i = 0; !rc && i < vv.n; i++) {
        sn_entry en;
        sn_buf b;
        rc = sn_replica_read(s, vv.items[i].origin, vv.items[i].seq, &en, &b, e);
        free(b.data);
        if (!rc && en.hlc > *hlc) *hlc = en.hlc;
    }
    free(vv.items);
    return rc;
}

int sn_identity_open(sn_store *s, sn_err *e)
{
    if (s->opts.read_only) return SN_OK;
    struct stat st;
    if (stat(s->path, &st)) return sn_fail(e, SN_EIO, "cannot stat '%s'", s->path);
    char here[64];
    int n = snprintf(here, sizeof here, "%llu:%llu", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino);
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[CF_DEFAULT], INSTANCE_KEY, sizeof INSTANCE_KEY - 1,
                             &len, &err);
    if (err) return sn_rocks_err(e, err, "reading the store instance");
    char marker[4200];
    snprintf(marker, sizeof marker, "%s/" NEW_ORIGIN_FILE, s->path);
    int restored = access(marker, F_OK) == 0;
    int moved = restored || (v && (len != (size_t)n || memcmp(v, here, len) != 0));
    if (v) rocksdb_free(v);
    if (v && !moved) return SN_OK;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    if (moved) {
        uint64_t hlc = s->last_hlc;
        int rc = max_logged_hlc(s, &hlc, e);
        if (rc) { rocksdb_writebatch_destroy(wb); return rc; }
        s->last_hlc = hlc;
        sn_uuid(s->origin);
        rocksdb_writebatch_put_cf(wb, s->cf[CF_DEFAULT], "synaptic.origin", 15, s->origin, 36);
        s->repl_seq = 0;
    }
    rocksdb_writebatch_put_cf(wb, s->cf[CF_DEFAULT], INSTANCE_KEY, sizeof INSTANCE_KEY - 1, here,
                              (size_t)n);
    rocksdb_write(s->db, s->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err) return sn_rocks_err(e, err, "writing the store identity");
    if (restored) unlink(marker);   /* after the new origin is written */
    return SN_OK;
}
