/* Sizes, statistics and compaction. */
#include "store/sn_keys.h"
#include "store/sn_record_io.h"
#include "store/sn_rocks.h"

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

_Static_assert(SN_CF_COUNT == CF_COUNT, "SN_CF_COUNT must match the column families");

/* An integer property, 0 when RocksDB does not know it (e.g. blob sizes
 * without blob files): these are estimates, never an error. */
static uint64_t int_property(sn_store *s, int cf, const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int_cf(s->db, s->cf[cf], name, &v) != 0) v = 0;
    return v;
}

void sn_cf_stats(sn_store *s, sn_cf_info cf[SN_CF_COUNT], uint64_t *cache_bytes)
{
    for (int i = 0; i < CF_COUNT; i++) {
        cf[i].name = sn_cf_names[i];
        cf[i].keys = int_property(s, i, "rocksdb.estimate-num-keys");
        cf[i].sst_bytes = int_property(s, i, "rocksdb.total-sst-files-size");
        cf[i].blob_bytes = int_property(s, i, "rocksdb.total-blob-file-size");
        cf[i].memtable_bytes = int_property(s, i, "rocksdb.cur-size-all-mem-tables");
    }
    /* the cache is shared by every column family: any handle reports it */
    *cache_bytes = int_property(s, CF_DEFAULT, "rocksdb.block-cache-usage");
}

int sn_storage_stats(sn_store *s, sn_storage_info *st, sn_err *e)
{
    memset(st, 0, sizeof *st);
    int rc = sn_size_info(s, &st->total_bytes, &st->file_count, e);
    if (rc) return rc;
    rocksdb_readoptions_t *ro = sn_scan_options();
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

int sn_compact(sn_store *s, sn_err *e)
{
    int rc = sn_check_writable(s, e);
    if (rc) return rc;
    for (int cf = 0; cf < CF_COUNT; cf++)
        rocksdb_compact_range_cf(s->db, s->cf[cf], NULL, 0, NULL, 0);
    return SN_OK;
}
