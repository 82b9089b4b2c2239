/* verify(): every record of every column family decoded and checked
 * against its key, pins against the weights they keep, and the replication
 * ranges (sn_replica_verify); RocksDB checks its own checksums meanwhile. */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_kinds.h"
#include "store/sn_record_io.h"
#include "store/sn_replica.h"
#include "store/sn_rocks.h"
#include "store/sn_scan.h"
#include "store/sn_wal.h"
#include "store/sn_weights_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROBLEMS 1000

/* The weights keys the walk met, in the order it met them (key order), and
 * whether each record checked out: pins are resolved against these, so a
 * checkpoint costs a lookup per pin rather than a read of the weights it
 * pins (a blob read, and a history walk for its number), and verify stays
 * linear in the store's size however many checkpoints pin what. */
typedef struct wkey { size_t off; uint32_t len; int bad; } wkey;
typedef struct keyset {
    unsigned char *bytes;
    size_t len, cap;
    wkey *keys;
    size_t n, kcap;
    int unusable;      /* out of memory, or met out of order: pins read records */
} keyset;

typedef struct verifier {
    sn_store *s;
    keyset seen;
    keyset cps;        /* the checkpoint records' keys met ('C' sorts before 'P') */
    sn_arena *a;
    sn_value *problems;
    size_t nproblems;
    uint64_t records;
    const sn_progress *progress;
    uint64_t total, reported;
    int stopped;
    int in_stretch;    /* reading a damaged stretch again, checksums off */
    char stretch[1800];   /* the stretch being read again: met again, it is not news */
} verifier;

/* Every 256 records: often enough for a progress bar, rare enough to cost
 * nothing; each count once. Sets v->stopped when the callback asks to stop. */
static int tick(verifier *v, int last)
{
    if (!v->progress || v->stopped) return v->stopped;
    if (!last && ((v->records & 255) != 0 || v->records == v->reported)) return 0;
    if (v->records > v->total || last) v->total = v->records;
    v->reported = v->records;
    v->stopped = v->progress->fn(v->progress->ud, v->records, v->total) != 0;
    return v->stopped;
}

static int problem(verifier *v, int cf, const unsigned char *k, size_t klen, const char *msg)
{
    if (v->nproblems >= MAX_PROBLEMS) return SN_OK;
    char where[600];
    if (k) sn_describe_key(cf, k, klen, where, sizeof where);
    else snprintf(where, sizeof where, "%s", sn_cf_names[cf]);
    sn_err e;
    if (sn_problem_value(v->a, where, msg, -1, &v->problems[v->nproblems], &e)) return SN_ENOMEM;
    v->nproblems++;
    return SN_OK;
}

static int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static void keyset_add(keyset *ks, const unsigned char *k, size_t klen, int bad)
{
    sn_err ignored;
    if (ks->unusable) return;
    if (ks->n) {
        const wkey *last = &ks->keys[ks->n - 1];
        int c = key_cmp(ks->bytes + last->off, last->len, k, klen);
        if (c == 0) { ks->keys[ks->n - 1].bad |= bad; return; }   /* read again in a stretch */
        if (c > 0) { ks->unusable = 1; return; }
    }
    while (ks->len + klen > ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 1 << 16;
        unsigned char *b = realloc(ks->bytes, cap);
        if (!b) { ks->unusable = 1; return; }
        ks->bytes = b;
        ks->cap = cap;
    }
    if (SN_GROW(ks->keys, ks->n, ks->kcap, 1024, &ignored)) { ks->unusable = 1; return; }
    memcpy(ks->bytes + ks->len, k, klen);
    ks->keys[ks->n++] = (wkey){ ks->len, (uint32_t)klen, bad };
    ks->len += klen;
}

/* 1: held and sound, 0: absent, -1: held but damaged. */
static int keyset_find(const keyset *ks, const unsigned char *k, size_t klen)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(ks->bytes + ks->keys[mid].off, ks->keys[mid].len, k, klen);
        if (c == 0) return ks->keys[mid].bad ? -1 : 1;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* A pin with an identity, resolved against the keys the walk met (SN_OK,
 * SN_NOTFOUND, or SN_ECORRUPT for a damaged record); SN_EARG when the walk
 * cannot tell (a format-1 pin, or no key set). */
static int pin_in_keyset(const verifier *v, const sn_value *p, sn_err *e)
{
    const sn_value *x = sn_map_get(p, "expert_id"), *o = sn_map_get(p, "origin"), *h = sn_map_get(p, "hlc");
    if (v->seen.unusable || !o || o->type != SN_STR || o->u.s.len != SN_ORIGIN_LEN || !h ||
        h->type != SN_INT)
        return SN_EARG;
    unsigned char lk[SN_LAYER_KEY_MAX], key[SN_WKEY_MAX];
    size_t lklen = sn_layer_key(lk, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(p, "layer")->u.i);
    sn_ident id = { (uint64_t)h->u.i, "" };
    memcpy(id.origin, o->u.s.p, SN_ORIGIN_LEN);
    int found = keyset_find(&v->seen, key, sn_wkey_id(key, lk, lklen, &id));
    if (found > 0) return SN_OK;
    if (found == 0) return SN_NOTFOUND;
    return sn_fail(e, SN_ECORRUPT, "are damaged (the record fails its checks)");
}

/* Whether this store's history knows the pinned write (it should then hold it). */
static int pin_known(sn_store *s, const sn_value *p)
{
    const sn_value *x = sn_map_get(p, "expert_id"), *o = sn_map_get(p, "origin"), *h = sn_map_get(p, "hlc");
    if (!o || o->type != SN_STR || o->u.s.len != SN_ORIGIN_LEN || !h || h->type != SN_INT) return 1;
    unsigned char lk[SN_LAYER_KEY_MAX];
    size_t lklen = sn_layer_key(lk, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(p, "layer")->u.i);
    sn_ident id = { (uint64_t)h->u.i, "" };
    memcpy(id.origin, o->u.s.p, SN_ORIGIN_LEN);
    sn_hist hist;
    sn_err ignored;
    return sn_hist_get(s, lk, lklen, &id, &hist, &ignored) != SN_NOTFOUND;
}

static void check_checkpoint(verifier *v, const unsigned char *k, size_t klen,
                             const sn_value *cp, sn_err *e)
{
    const sn_value *pins = sn_map_get(cp, "pins");
    for (size_t i = 0; pins && pins->type == SN_ARRAY && i < pins->u.a.n; i++) {
        const sn_value *p = &pins->u.a.items[i];
        sn_weights_view w;
        int rc = pin_in_keyset(v, p, e);
        if (rc == SN_EARG) {
            rc = sn_pinned_weights(v->s, p, &w, e);
            if (rc == SN_OK) sn_weights_view_release(&w);
        }
        if (rc == SN_OK) continue;
        /* a pin of weights this store never received (weight sync off, or
         * not arrived yet) is remote, not damage */
        if (rc == SN_NOTFOUND && !pin_known(v->s, p)) continue;
        const sn_value *x = sn_map_get(p, "expert_id");
        char msg[1200];
        snprintf(msg, sizeof msg, "pinned weights %.*s layer %lld v%lld %s", (int)x->u.s.len,
                 x->u.s.p, (long long)sn_map_get(p, "layer")->u.i,
                 (long long)sn_map_get(p, "version")->u.i, rc == SN_NOTFOUND ? "are missing" : e->msg);
        problem(v, CF_CHECKPOINTS, k, klen, msg);
    }
}

/* The record's own checks, then what verify adds: a pin entry's
 * checkpoint exists, a checkpoint's pins resolve. */
static int check_value(verifier *v, int cf, const unsigned char *k, size_t klen, const char *val,
                       size_t vlen, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value fields;
    /* the fields only of what verify looks into: not a weights record again */
    int rc = sn_record_check(v->s->codec, cf, k, klen, val, vlen, &a,
                             cf == CF_WEIGHTS ? NULL : &fields, e);
    if (!rc && cf == CF_CHECKPOINTS && k[0] == SN_PIN_PREFIX) {
        /* sn_record_check made sure the key ends in a 36-byte id */
        unsigned char ck[37];
        ck[0] = SN_CP_PREFIX;
        memcpy(ck + 1, k + klen - 36, 36);
        /* met already (a lookup per pin entry was most of what checkpoints
         * added to a verify), or else asked of RocksDB */
        int found = !v->cps.unusable && keyset_find(&v->cps, ck, 37) != 0;
        if (!found) rc = sn_key_exists(v->s, CF_CHECKPOINTS, ck, 37, &found, "lookup", e);
        if (!rc && !found) rc = sn_fail(e, SN_ECORRUPT, "pin of a checkpoint that is gone");
    } else if (cf == CF_CHECKPOINTS && klen > 0 && k[0] == SN_CP_PREFIX) {
        keyset_add(&v->cps, k, klen, 0);
        if (!rc) check_checkpoint(v, k, klen, &fields, e);
    }
    sn_arena_free(&a);
    return rc;
}

/* what verify_record returns to stop the scan when the progress callback asks */
#define STOPPED SN_STOP_CANCELLED

static int verify_record(void *ctx, int cf, const unsigned char *k, size_t klen, const char *val,
                         size_t vlen, sn_err *e)
{
    verifier *v = ctx;
    v->records++;
    sn_err pe = { 0, "" };
    int bad = check_value(v, cf, k, klen, val, vlen, &pe);
    if (cf == CF_WEIGHTS) keyset_add(&v->seen, k, klen, bad);
    int rc = bad ? problem(v, cf, k, klen, pe.msg) : SN_OK;
    (void)e;
    return rc ? rc : tick(v, 0) ? STOPPED : SN_OK;
}

/* A record the walk could not reach, in a blob file RocksDB cannot read;
 * one the walk met again with checksums off was named (or passed) there. */
static void name_lost(void *ctx, const char *file, const unsigned char *k, size_t klen, const char *error)
{
    verifier *v = ctx;
    if (keyset_find(&v->seen, k, klen) != 0) return;
    char msg[1200];
    snprintf(msg, sizeof msg, "lost: its value is in %s, which RocksDB cannot read (%s)", file, error);
    problem(v, CF_WEIGHTS, k, klen, msg);
}

/* In a stretch of weights RocksDB could not read, each record is read
 * again without RocksDB's checksums: a record whose own CRC holds is
 * intact (the damage was elsewhere), one whose CRC fails is named. */
static int verify_stretch(void *ctx, int cf, const unsigned char *after, size_t alen,
                          const unsigned char *resume, size_t rlen, const char *error, sn_err *e)
{
    verifier *v = ctx;
    char msg[1800];
    sn_stretch_text(cf, after, alen, resume, rlen, error, msg, sizeof msg);
    if (v->in_stretch && !strcmp(msg, v->stretch)) return SN_OK;
    int rc = problem(v, cf, NULL, 0, msg);
    if (rc || v->in_stretch) return rc;
    sn_scan_cb cb = { v, verify_record, verify_stretch };
    v->in_stretch = 1;
    snprintf(v->stretch, sizeof v->stretch, "%s", msg);
    rc = sn_scan_blob_stretch(v->s, cf, after, alen, resume, rlen, error, &cb, e);
    v->in_stretch = 0;
    if (!rc && cf == CF_WEIGHTS && strstr(error, "lob"))
        rc = sn_blob_lost(v->s, after, alen, resume, rlen, name_lost, v);
    return rc;
}

static int verify_all(verifier *v, sn_value *report, int *ok, sn_err *e)
{
    sn_store *s = v->s;
    sn_arena *a = v->a;
    v->problems = sn_arena_alloc(a, MAX_PROBLEMS * sizeof(sn_value));
    if (!v->problems) return sn_fail(e, SN_ENOMEM, "out of memory");
    sn_scan_cb cb = { v, verify_record, verify_stretch };
    tick(v, 0);   /* (0, total) before the walk */
    for (int cf = CF_WEIGHTS; cf < CF_COUNT && !v->stopped; cf++) {
        int rc = sn_scan_cf(s, cf, 1, NULL, 0, NULL, 0, &cb, e);
        if (rc == STOPPED) break;
        if (rc) return rc == SN_ENOMEM ? sn_fail(e, rc, "out of memory") : rc;
    }
    rocksdb_readoptions_t *ro = sn_scan_options();
    /* the replication log, conflict versions and superseded markers
     * (sn_replica_verify.c): the 0x01 range of the default column family */
    if (!v->stopped) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_DEFAULT]);
        sn_replica_walk w = { { 0 }, 0, 0 };
        for (rocksdb_iter_seek(it, "\x01", 1); rocksdb_iter_valid(it) && !tick(v, 0);
             rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
            const char *val = rocksdb_iter_value(it, &vlen);
            sn_err pe = { 0, "" };
            int mine;
            int bad = sn_replica_verify(k, klen, val, vlen, &w, &mine, &pe);
            if (!mine) break;
            v->records++;
            if (bad) problem(v, CF_DEFAULT, k, klen, pe.msg);
        }
        char *err = sn_iter_close(it);
        if (err) {
            problem(v, CF_DEFAULT, NULL, 0, err);
            rocksdb_free(err);
        }
    }
    rocksdb_readoptions_destroy(ro);
    /* files a cut MANIFEST no longer lists hold data no read here sees
     * (a read-only handle: a read-write open has refused such a store) */
    sn_err ue;
    if (!v->stopped && s->opts.read_only && v->nproblems < MAX_PROBLEMS &&
        sn_wal_unlisted(s->path, &ue)) {
        if (sn_problem_value(a, "MANIFEST", ue.msg, -1, &v->problems[v->nproblems], e))
            return e->code;
        v->nproblems++;
    }
    /* a crashed store's newest WAL gone or cut short: its writes are not
     * in what was read (a read-write open refuses such a store) */
    sn_wal_damage wd;
    memset(&wd, 0, sizeof wd);
    if (!v->stopped && s->opts.read_only && v->nproblems < MAX_PROBLEMS &&
        sn_wal_missing(s->path, &wd, &ue) == SN_OK && wd.found) {
        char msg[300];
        snprintf(msg, sizeof msg, "WAL %s is %s", wd.file, wd.error);
        sn_wal_damage_free(&wd);
        if (sn_problem_value(a, "WAL", msg, -1, &v->problems[v->nproblems], e)) return e->code;
        v->nproblems++;
    }
    sn_wal_damage_free(&wd);
    if (v->stopped || tick(v, 1)) return sn_fail(e, SN_EIO, "verify stopped by its progress callback");
    sn_value *items = sn_arena_alloc(a, 4 * sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    items[0] = sn_cstr("records");
    items[1] = sn_int((int64_t)v->records);
    items[2] = sn_cstr("problems");
    items[3] = sn_nil();
    items[3].type = SN_ARRAY;
    items[3].u.a.items = v->problems;
    items[3].u.a.n = v->nproblems;
    *report = sn_nil();
    report->type = SN_MAP;
    report->u.a.items = items;
    report->u.a.n = 2;
    *ok = v->nproblems == 0;
    return SN_OK;
}

int sn_verify(sn_store *s, sn_arena *a, sn_value *report, int *ok,
              const sn_progress *progress, sn_err *e)
{
    verifier v = { s, { 0 }, { 0 }, a, NULL, 0, 0, progress,
                   progress ? sn_estimate_records(s) : 0, UINT64_MAX, 0, 0, "" };
    int rc = verify_all(&v, report, ok, e);
    free(v.seen.bytes);
    free(v.seen.keys);
    free(v.cps.bytes);
    free(v.cps.keys);
    return rc;
}
