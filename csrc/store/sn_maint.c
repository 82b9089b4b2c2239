/* Maintenance: statistics, integrity checks, compaction, backups. */
#include "store/sn_store_int.h"
#include "store/sn_replica.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int walk(const char *dir, uint64_t *bytes, uint64_t *files, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    char p[4096];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) continue;   /* a file removed by compaction meanwhile */
        if (S_ISDIR(st.st_mode) && depth < 4) {
            walk(p, bytes, files, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            *bytes += (uint64_t)st.st_size;
            (*files)++;
        }
    }
    closedir(d);
    return 0;
}

int sn_size_info(sn_store *s, uint64_t *bytes, uint64_t *files, sn_err *e)
{
    *bytes = *files = 0;
    if (walk(s->path, bytes, files, 0))
        return sn_fail(e, SN_EIO, "cannot read '%s': %s", s->path, strerror(errno));
    return SN_OK;
}

int sn_stats_text(sn_store *s, char **out, sn_err *e)
{
    static const char *const props[] = {
        "rocksdb.estimate-num-keys", "rocksdb.total-sst-files-size",
        "rocksdb.total-blob-file-size", "rocksdb.cur-size-all-mem-tables",
        "rocksdb.block-cache-usage",
    };
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) return sn_fail(e, SN_ENOMEM, "out of memory");
    buf[0] = 0;
    char *db = rocksdb_property_value(s->db, "rocksdb.stats");
    for (int cf = 0; cf < CF_COUNT; cf++) {
        len += (size_t)snprintf(buf + len, cap - len, "** column family %s **\n", sn_cf_names[cf]);
        for (size_t i = 0; i < sizeof props / sizeof props[0] && len < cap; i++) {
            char *v = rocksdb_property_value_cf(s->db, s->cf[cf], props[i]);
            len += (size_t)snprintf(buf + len, cap - len, "%s: %s\n", props[i], v ? v : "n/a");
            rocksdb_free(v);
        }
    }
    if (db) {
        size_t need = len + strlen(db) + 1;
        if (need > cap && SN_RESIZE(buf, need, e)) {
            rocksdb_free(db);
            free(buf);
            return e->code;
        }
        memcpy(buf + len, db, strlen(db) + 1);
        rocksdb_free(db);
    }
    *out = buf;
    return SN_OK;
}

static rocksdb_readoptions_t *scan_options(void)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0);   /* a full scan must not evict the hot set */
    return ro;
}

int sn_storage_stats(sn_store *s, sn_storage_info *st, sn_err *e)
{
    memset(st, 0, sizeof *st);
    int rc = sn_size_info(s, &st->total_bytes, &st->file_count, e);
    if (rc) return rc;
    rocksdb_readoptions_t *ro = scan_options();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_WEIGHTS]);
    for (rocksdb_iter_seek_to_first(it); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_arena a;
        sn_arena_init(&a);
        sn_record r;
        rc = sn_record_decode(v, vlen, &a, &r, e);
        if (rc) sn_record_err(e, rc, CF_WEIGHTS, (const unsigned char *)k, klen);
        sn_arena_free(&a);
        st->weight_records++;
        st->raw_bytes += r.raw_len;
        st->stored_bytes += vlen;
    }
    rc = sn_iter_end(it, rc, "scanning the store", e);
    char prefix = SN_CP_PREFIX;
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_CHECKPOINTS]);
    for (rocksdb_iter_seek(it, &prefix, 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        if (rocksdb_iter_key(it, &klen)[0] != SN_CP_PREFIX) break;
        st->checkpoint_count++;
    }
    rc = sn_iter_end(it, rc, "scanning the store", e);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* ---- verify ----------------------------------------------------------------- */

#define MAX_PROBLEMS 1000

typedef struct verifier {
    sn_store *s;
    sn_arena *a;
    sn_value *problems;
    size_t nproblems;
    uint64_t records;
} verifier;

static int problem(verifier *v, int cf, const unsigned char *k, size_t klen, const char *msg)
{
    if (v->nproblems >= MAX_PROBLEMS) return SN_OK;
    char where[600];
    if (k) sn_describe_key(cf, k, klen, where, sizeof where);
    else snprintf(where, sizeof where, "%s", sn_cf_names[cf]);
    sn_value *items = sn_arena_alloc(v->a, 4 * sizeof *items);
    const char *w = sn_arena_strdup(v->a, where, strlen(where));
    const char *m = sn_arena_strdup(v->a, msg, strlen(msg));
    if (!items || !w || !m) return SN_ENOMEM;
    items[0] = sn_cstr("where");
    items[1] = sn_cstr(w);
    items[2] = sn_cstr("error");
    items[3] = sn_cstr(m);
    sn_value *p = &v->problems[v->nproblems++];
    *p = sn_nil();
    p->type = SN_MAP;
    p->u.a.items = items;
    p->u.a.n = 2;
    return SN_OK;
}

static int key_exists(sn_store *s, int cf, const unsigned char *k, size_t klen, sn_err *e)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[cf], (const char *)k, klen, &err);
    if (err) { sn_rocks_err(e, err, "lookup"); return -1; }
    if (p) rocksdb_pinnableslice_destroy(p);
    return p != NULL;
}

static int expect_key(const sn_value *fields, const char *name, const char *k, size_t klen,
                      sn_err *e)
{
    const sn_value *f = sn_map_get(fields, name);
    if (!f || f->type != SN_STR || f->u.s.len != klen || memcmp(f->u.s.p, k, klen) != 0)
        return sn_fail(e, SN_ECORRUPT, "record does not belong under its key");
    return SN_OK;
}

static void check_checkpoint(verifier *v, const unsigned char *k, size_t klen,
                             const sn_value *cp, sn_err *e)
{
    const sn_value *pins = sn_map_get(cp, "pins");
    for (size_t i = 0; pins && pins->type == SN_ARRAY && i < pins->u.a.n; i++) {
        const sn_value *p = &pins->u.a.items[i];
        const sn_value *x = sn_map_get(p, "expert_id");
        unsigned char wk[SN_WKEY_MAX];
        size_t wlen = sn_wkey(wk, x->u.s.p, x->u.s.len, (uint32_t)sn_map_get(p, "layer")->u.i,
                              (uint64_t)sn_map_get(p, "version")->u.i);
        int found = key_exists(v->s, CF_WEIGHTS, wk, wlen, e);
        if (found != 1) {
            char msg[1200], where[600];
            sn_describe_key(CF_WEIGHTS, wk, wlen, where, sizeof where);
            snprintf(msg, sizeof msg, "pinned weights %s %s", where,
                     found < 0 ? e->msg : "are missing");
            problem(v, CF_CHECKPOINTS, k, klen, msg);
        }
    }
}

static int check_value(verifier *v, int cf, const unsigned char *k, size_t klen, const char *val,
                       size_t vlen, sn_err *e)
{
    if (cf == CF_WEIGHTS) return sn_weights_verify(k, klen, val, vlen, e);
    if (cf == CF_CHECKPOINTS && klen > 0 && k[0] == SN_PIN_PREFIX) {
        /* a pin index entry: its checkpoint must exist */
        if (klen < 1 + 14 + 36 || vlen != 0)
            return sn_fail(e, SN_ECORRUPT, "malformed pin entry");
        unsigned char ck[37];
        ck[0] = SN_CP_PREFIX;
        memcpy(ck + 1, k + klen - 36, 36);
        int found = key_exists(v->s, CF_CHECKPOINTS, ck, 37, e);
        if (found < 0) return e->code;
        return found ? SN_OK : sn_fail(e, SN_ECORRUPT, "pin of a checkpoint that is gone");
    }
    sn_arena a;
    sn_arena_init(&a);
    sn_record r;
    static const unsigned types[CF_COUNT] = {
        0, SN_REC_WEIGHTS, SN_REC_CONFIG, SN_REC_STATE, SN_REC_CHECKPOINT, SN_REC_METRIC,
    };
    int rc = sn_record_decode(val, vlen, &a, &r, e);
    if (!rc && r.type != types[cf]) rc = sn_fail(e, SN_ECORRUPT, "wrong record type");
    if (!rc && r.raw_len) rc = sn_fail(e, SN_ECORRUPT, "unexpected payload");
    if (!rc && cf == CF_CONFIG) rc = expect_key(&r.fields, "expert_id", (const char *)k, klen, e);
    if (!rc && cf == CF_STATE) rc = expect_key(&r.fields, "key", (const char *)k, klen, e);
    if (!rc && cf == CF_METRICS)
        rc = klen < 17 ? sn_fail(e, SN_ECORRUPT, "malformed metric key")
                       : expect_key(&r.fields, "name", (const char *)k, klen - 17, e);
    if (!rc && cf == CF_CHECKPOINTS) {
        rc = expect_key(&r.fields, "id", (const char *)k + 1, klen - 1, e);
        if (!rc) check_checkpoint(v, k, klen, &r.fields, e);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_verify(sn_store *s, sn_arena *a, sn_value *report, int *ok, sn_err *e)
{
    verifier v = { s, a, NULL, 0, 0 };
    v.problems = sn_arena_alloc(a, MAX_PROBLEMS * sizeof(sn_value));
    if (!v.problems) return sn_fail(e, SN_ENOMEM, "out of memory");
    rocksdb_readoptions_t *ro = scan_options();
    for (int cf = CF_WEIGHTS; cf < CF_COUNT; cf++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
            const char *val = rocksdb_iter_value(it, &vlen);
            v.records++;
            sn_err pe = { 0, "" };
            if (check_value(&v, cf, k, klen, val, vlen, &pe)) problem(&v, cf, k, klen, pe.msg);
        }
        /* RocksDB block and blob checksum failures surface here */
        char *err = sn_iter_close(it);
        if (err) {
            problem(&v, cf, NULL, 0, err);
            rocksdb_free(err);
        }
    }
    /* the replication log, conflict versions and superseded markers
     * (sn_replica.c): the 0x01 range of the default column family */
    {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_DEFAULT]);
        sn_replica_walk w = { { 0 }, 0, 0 };
        for (rocksdb_iter_seek(it, "\x01", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
            const char *val = rocksdb_iter_value(it, &vlen);
            sn_err pe = { 0, "" };
            int mine;
            int bad = sn_replica_verify(k, klen, val, vlen, &w, &mine, &pe);
            if (!mine) break;
            v.records++;
            if (bad) problem(&v, CF_DEFAULT, k, klen, pe.msg);
        }
        char *err = sn_iter_close(it);
        if (err) {
            problem(&v, CF_DEFAULT, NULL, 0, err);
            rocksdb_free(err);
        }
    }
    rocksdb_readoptions_destroy(ro);
    sn_value *items = sn_arena_alloc(a, 4 * sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    items[0] = sn_cstr("records");
    items[1] = sn_int((int64_t)v.records);
    items[2] = sn_cstr("problems");
    items[3] = sn_nil();
    items[3].type = SN_ARRAY;
    items[3].u.a.items = v.problems;
    items[3].u.a.n = v.nproblems;
    *report = sn_nil();
    report->type = SN_MAP;
    report->u.a.items = items;
    report->u.a.n = 2;
    *ok = v.nproblems == 0;
    return SN_OK;
}

int sn_compact(sn_store *s, sn_err *e)
{
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    for (int cf = 0; cf < CF_COUNT; cf++)
        rocksdb_compact_range_cf(s->db, s->cf[cf], NULL, 0, NULL, 0);
    return SN_OK;
}

/* ---- backups ---------------------------------------------------------------------- */

static rocksdb_backup_engine_t *open_engine(const char *dir, int must_exist, sn_err *e)
{
    struct stat st;
    if (!dir || !*dir) { sn_fail(e, SN_EARG, "backup directory must not be empty"); return NULL; }
    if (stat(dir, &st) != 0) {
        if (must_exist) { sn_fail(e, SN_EIO, "no backups at '%s': %s", dir, strerror(errno)); return NULL; }
        if (mkdir(dir, 0755) != 0) {
            sn_fail(e, SN_EIO, "cannot create backup directory '%s': %s", dir, strerror(errno));
            return NULL;
        }
    }
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_backup_engine_t *be = rocksdb_backup_engine_open(o, dir, &err);
    rocksdb_options_destroy(o);
    if (err) {
        char what[4200];
        snprintf(what, sizeof what, "cannot open backups at '%s'", dir);
        sn_rocks_err(e, err, what);
        return NULL;
    }
    return be;
}

int sn_backup(sn_store *s, const char *dir, uint32_t *id, sn_err *e)
{
    rocksdb_backup_engine_t *be = open_engine(dir, 0, e);
    if (!be) return e->code;
    char *err = NULL;
    /* flush first so the backup holds everything acknowledged so far */
    rocksdb_backup_engine_create_new_backup_flush(be, s->db, 1, &err);
    int rc = err ? sn_rocks_err(e, err, "backup failed") : SN_OK;
    if (!rc) {
        const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
        int n = rocksdb_backup_engine_info_count(info);
        *id = n > 0 ? rocksdb_backup_engine_info_backup_id(info, n - 1) : 0;
        rocksdb_backup_engine_info_destroy(info);
        rocksdb_backup_engine_verify_backup(be, *id, &err);
        if (err) rc = sn_rocks_err(e, err, "backup does not verify");
    }
    rocksdb_backup_engine_close(be);
    return rc;
}

int sn_list_backups(const char *dir, sn_arena *a, sn_value *out, sn_err *e)
{
    rocksdb_backup_engine_t *be = open_engine(dir, 1, e);
    if (!be) return e->code;
    const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
    int n = rocksdb_backup_engine_info_count(info);
    int rc = SN_OK;
    sn_value *list = sn_arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof *list);
    if (!list) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        sn_value *items = sn_arena_alloc(a, 8 * sizeof *items);
        if (!items) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
        items[0] = sn_cstr("id");
        items[1] = sn_int(rocksdb_backup_engine_info_backup_id(info, i));
        items[2] = sn_cstr("timestamp");
        items[3] = sn_int(rocksdb_backup_engine_info_timestamp(info, i));
        items[4] = sn_cstr("size");
        items[5] = sn_int((int64_t)rocksdb_backup_engine_info_size(info, i));
        items[6] = sn_cstr("files");
        items[7] = sn_int(rocksdb_backup_engine_info_number_files(info, i));
        list[i] = sn_nil();
        list[i].type = SN_MAP;
        list[i].u.a.items = items;
        list[i].u.a.n = 4;
    }
    rocksdb_backup_engine_info_destroy(info);
    rocksdb_backup_engine_close(be);
    if (rc) return rc;
    *out = sn_nil();
    out->type = SN_ARRAY;
    out->u.a.items = list;
    out->u.a.n = (size_t)(n > 0 ? n : 0);
    return SN_OK;
}

int sn_restore_backup(const char *dir, const char *db_path, uint32_t id, sn_err *e)
{
    if (!db_path || !*db_path) return sn_fail(e, SN_EARG, "store path must not be empty");
    rocksdb_backup_engine_t *be = open_engine(dir, 1, e);
    if (!be) return e->code;
    char *err = NULL;
    rocksdb_restore_options_t *ro = rocksdb_restore_options_create();
    if (id)
        rocksdb_backup_engine_restore_db_from_backup(be, db_path, db_path, ro, id, &err);
    else
        rocksdb_backup_engine_restore_db_from_latest_backup(be, db_path, db_path, ro, &err);
    rocksdb_restore_options_destroy(ro);
    rocksdb_backup_engine_close(be);
    return err ? sn_rocks_err(e, err, "restore failed") : SN_OK;
}
