/* Opening and closing the store, batches, keys and record I/O helpers. */
#include "store/sn_history.h"
#include "store/sn_wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

const char *const sn_cf_names[CF_COUNT] = {
    "default", "neural_weights", "expert_config", "system_state", "checkpoints", "metrics",
};

double sn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void sn_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

/* Physical milliseconds in the high 48 bits, a logical counter in the low
 * 16: strictly increasing within a store even if the wall clock steps back. */
uint64_t sn_next_hlc(sn_store *s)
{
    uint64_t phys = (uint64_t)(sn_now() * 1000.0) << 16;
    s->last_hlc = phys > s->last_hlc ? phys : s->last_hlc + 1;
    return s->last_hlc;
}

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

int sn_record_err(sn_err *e, int rc, int cf, const unsigned char *k, size_t klen)
{
    char where[600], msg[sizeof e->msg];
    sn_describe_key(cf, k, klen, where, sizeof where);
    snprintf(msg, sizeof msg, "%s", e->msg);
    return sn_fail(e, rc, "record %s: %s", where, msg);
}

int sn_rocks_err(sn_err *e, char *err, const char *what)
{
    /* copy, then free: RocksDB owns err and it may contain '%' */
    int code = strstr(err, "Corruption") ? SN_ECORRUPT : SN_EIO;
    sn_fail(e, code, "%s: %s", what, err);
    rocksdb_free(err);
    return code;
}

int sn_check_id(const char *p, size_t len, const char *what, sn_err *e)
{
    if (len == 0) return sn_fail(e, SN_EARG, "%s must not be empty", what);
    if (len > SN_MAX_ID_LEN)
        return sn_fail(e, SN_EARG, "%s is longer than %u bytes", what, SN_MAX_ID_LEN);
    if (memchr(p, 0, len)) return sn_fail(e, SN_EARG, "%s contains a NUL byte", what);
    return SN_OK;
}

int sn_check_writable(sn_store *s, sn_err *e)
{
    if (s->opts.read_only) return sn_fail(e, SN_EARG, "store is open read-only");
    return SN_OK;
}

rocksdb_readoptions_t *sn_scan_options(void)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0);   /* a full scan must not evict the hot set */
    return ro;
}

int sn_key_exists(sn_store *s, int cf, const void *k, size_t klen, int *found, const char *what,
                  sn_err *e)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *p = rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[cf], k, klen, &err);
    if (err) return sn_rocks_err(e, err, what);
    *found = p != NULL;
    if (p) rocksdb_pinnableslice_destroy(p);
    return SN_OK;
}

rocksdb_iterator_t *sn_iter(sn_store *s, int cf)
{
    return rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[cf]);
}

char *sn_iter_close(rocksdb_iterator_t *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return err;
}

int sn_iter_end(rocksdb_iterator_t *it, int rc, const char *what, sn_err *e)
{
    char *err = sn_iter_close(it);
    if (err && !rc) return sn_rocks_err(e, err, what);
    if (err) rocksdb_free(err);
    return rc;
}

int sn_problem_value(sn_arena *a, const char *where, const char *error, int64_t backup,
                     sn_value *out, sn_err *e)
{
    size_t n = backup >= 0 ? 3 : 2;
    sn_value *items = sn_arena_alloc(a, 2 * n * sizeof *items);
    const char *w = sn_arena_strdup(a, where, strlen(where));
    const char *m = sn_arena_strdup(a, error, strlen(error));
    if (!items || !w || !m) return sn_fail(e, SN_ENOMEM, "out of memory");
    items[0] = sn_cstr("where");
    items[1] = sn_cstr(w);
    items[2] = sn_cstr("error");
    items[3] = sn_cstr(m);
    if (backup >= 0) {
        items[4] = sn_cstr("backup");
        items[5] = sn_int(backup);
    }
    *out = sn_nil();
    out->type = SN_MAP;
    out->u.a.items = items;
    out->u.a.n = n;
    return SN_OK;
}

int sn_vlist_push(sn_vlist *l, sn_value v, sn_err *e)
{
    if (SN_GROW(l->items, l->n, l->cap, 16, e)) return e->code;
    l->items[l->n++] = v;
    return SN_OK;
}

int sn_vlist_finish(sn_vlist *l, sn_arena *a, sn_value *out, sn_err *e)
{
    *out = sn_nil();
    out->type = SN_ARRAY;
    out->u.a.n = l->n;
    out->u.a.items = sn_arena_alloc(a, (l->n ? l->n : 1) * sizeof(sn_value));
    int rc = out->u.a.items ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    if (!rc && l->n) memcpy(out->u.a.items, l->items, l->n * sizeof(sn_value));
    free(l->items);
    l->items = NULL;
    return rc;
}

/* ---- open / close --------------------------------------------------------- */

void sn_store_default_opts(sn_store_opts *o)
{
    memset(o, 0, sizeof *o);
    o->codec = SN_CODEC_SHUFFLE;
    o->write_buffer_mb = 128;
    o->cache_mb = 64;
    o->blob_files = 1;
}

/* A directory with files but no CURRENT is a damaged database (or not one):
 * RocksDB would happily create a fresh, empty database there and the user
 * would think their data vanished. Refuse instead. */
static int check_dir(const char *path, int read_only, sn_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT && !read_only) return SN_OK;
        return sn_fail(e, SN_EIO, "cannot open store at '%s': %s", path,
                       errno == ENOENT ? "no such directory" : strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return sn_fail(e, SN_EIO, "cannot open store at '%s': not a directory", path);
    char cur[4096];
    snprintf(cur, sizeof cur, "%s/CURRENT", path);
    if (stat(cur, &st) == 0) return SN_OK;
    DIR *d = opendir(path);
    if (!d) return sn_fail(e, SN_EIO, "cannot open store at '%s': %s", path, strerror(errno));
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) files++;
    closedir(d);
    if (files)
        return sn_fail(e, SN_ECORRUPT,
                       "'%s' holds files but no CURRENT: not a store, or a damaged one "
                       "(refusing to create a new database over it)", path);
    if (read_only) return sn_fail(e, SN_EIO, "cannot open store at '%s': it is empty", path);
    return SN_OK;
}

static rocksdb_options_t *opts_from(rocksdb_options_t *base, const char *spec, sn_err *e)
{
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_get_options_from_string(base, spec, o, &err);
    if (err) {
        rocksdb_options_destroy(o);
        sn_rocks_err(e, err, "bad RocksDB options");
        return NULL;
    }
    return o;
}

/* Bytes of WAL past which RocksDB flushes: the bound on a store's WAL,
 * and with the MANIFEST's 4 MiB what a small open store takes (<= 16 MiB). */
#define SN_MAX_TOTAL_WAL (10ull << 20)

static int make_options(sn_store *s, sn_err *e)
{
    const sn_store_opts *o = &s->opts;
    char spec[1024];
    sn_infolog_dir(s->path, o->read_only, s->log_dir, sizeof s->log_dir);   /* sn_infolog.c: why */
    rocksdb_options_t *base = rocksdb_options_create();
    /* Large values: more memtables so a put never waits for a flush of the
     * previous one (Debian's build computes CRC32c in software, so a flush
     * of 128 MiB takes long enough to stall at the default of 2). */
    snprintf(spec, sizeof spec,
             "create_if_missing=true;create_missing_column_families=true;"
             "paranoid_checks=%s;max_background_jobs=2;"
             "write_buffer_size=%llu;max_write_buffer_number=4;"
             "min_write_buffer_number_to_merge=1;level_compaction_dynamic_level_bytes=true;"
             /* disk follows live data: the WALs that column families which
              * rarely flush pin are bounded (past this total RocksDB flushes
              * the families holding the oldest one), and so is the space a
              * new WAL is preallocated, which RocksDB caps at this total
              * (1.1x the write buffer, 145 MiB for a store of 3 floats,
              * without it). Preallocation stays on: the 4 MiB a MANIFEST
              * holds in reserve is what lets a store on a full disk reopen
              * once a little space is freed (spec 46). */
             "max_total_wal_size=%llu;"
             "compression=kSnappyCompression;keep_log_file_num=3;"
             "max_log_file_size=1048576;info_log_level=WARN_LEVEL;db_log_dir=%s;"
             "wal_recovery_mode=%s;"
             /* each new table and blob file gets its CRC32C in the MANIFEST,
              * which the backup engine then takes as is instead of reading
              * every unchanged blob file again to name it (sn_backup.c) */
             "file_checksum_gen_factory=FileChecksumGenCrc32cFactory",
             o->lenient ? "false" : "true", (unsigned long long)o->write_buffer_mb << 20,
             (unsigned long long)SN_MAX_TOTAL_WAL, s->log_dir,
             /* a record cut off at the end of the newest WAL is what a crash
              * leaves: tolerated; damage before the end fails the open */
             o->recover == SN_RECOVER_POINT_IN_TIME ? "kPointInTimeRecovery"
                                                    : "kTolerateCorruptedTailRecords");
    s->db_opts = opts_from(base, spec, e);
    if (!s->db_opts) { rocksdb_options_destroy(base); return e->code; }

    s->cache = rocksdb_cache_create_lru((size_t)(o->cache_mb ? o->cache_mb : 1) << 20);
    s->table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table_opts, s->cache);
    rocksdb_block_based_options_set_format_version(s->table_opts, 5);
    rocksdb_options_set_block_based_table_factory(s->db_opts, s->table_opts);

    for (int i = 0; i < CF_COUNT; i++) {
        if (i == CF_WEIGHTS) {
            /* payloads are compressed by our codecs: RocksDB must not
             * spend time compressing them again */
            snprintf(spec, sizeof spec, "compression=kNoCompression;%s",
                     o->blob_files ? "enable_blob_files=true;min_blob_size=4096;"
                                     "blob_file_size=268435456;"
                                     "enable_blob_garbage_collection=true"
                                   : "enable_blob_files=false");
        } else {
            snprintf(spec, sizeof spec, "compression=kSnappyCompression");
        }
        s->cf_opts[i] = opts_from(s->db_opts, spec, e);
        if (!s->cf_opts[i]) { rocksdb_options_destroy(base); return e->code; }
        rocksdb_options_set_block_based_table_factory(s->cf_opts[i], s->table_opts);
    }
    rocksdb_options_destroy(base);

    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, (unsigned char)(o->sync_writes != 0));
    s->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->ropts, 1);
    s->wropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->wropts, 0);
    return SN_OK;
}

static int load_origin(sn_store *s, sn_err *e)
{
    static const char key[] = "synaptic.origin";
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[CF_DEFAULT], key, sizeof key - 1, &len, &err);
    if (err) return sn_rocks_err(e, err, "reading the store id");
    if (v && len == 36) {
        memcpy(s->origin, v, 36);
        s->origin[36] = 0;
        rocksdb_free(v);
        return SN_OK;
    }
    if (v) rocksdb_free(v);
    sn_uuid(s->origin);
    if (s->opts.read_only) return SN_OK;
    rocksdb_put_cf(s->db, s->wopts, s->cf[CF_DEFAULT], key, sizeof key - 1, s->origin, 36, &err);
    if (err) return sn_rocks_err(e, err, "writing the store id");
    return SN_OK;
}

/* Whether another process holds the store's LOCK (RocksDB takes an fcntl
 * lock on it for a read-write open). A read-only open reads the MANIFEST,
 * then opens the table files it lists; a writer beside it may compact some
 * away in between, which RocksDB reports as "Corruption: ... No such file
 * ... in file MANIFEST". Beside a writer that is a race to retry, not
 * damage. */
#define READ_ONLY_ATTEMPTS 100   /* ~5 s of retries, 50 ms apart at most */

static int held_by_other(const char *path)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/LOCK", path);
    int fd = open(file, O_RDONLY);
    if (fd < 0) return 0;
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
    int held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    return held;
}

/* RocksDB's open, read-write or read-only; a failure names the store and,
 * when RocksDB does not, the file at fault. */
static int open_db(sn_store *s, const char *path, sn_err *e)
{
    char *err = NULL;
    const rocksdb_options_t *cfo[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++) cfo[i] = s->cf_opts[i];
    if (s->opts.read_only) {
        /* every table file opened now and kept open */
        rocksdb_options_set_max_open_files(s->db_opts, -1);
        for (int attempt = 0;; attempt++) {
            /* beside a writer: a view of hard links the writer cannot
             * take files from (sn_view.c); the store itself if none */
            int busy = held_by_other(path);
            if (busy) {
                sn_view_remove(s->view);
                s->view = sn_view_make(path);
            }
            const char *at = s->view ? s->view : path;
            s->db = rocksdb_open_for_read_only_column_families(
                s->db_opts, at, CF_COUNT, (const char *const *)sn_cf_names, cfo, s->cf, 0, &err);
            if (!err || !strstr(err, "No such file") || !busy) break;
            if (attempt == READ_ONLY_ATTEMPTS) {
                rocksdb_free(err);
                return sn_fail(e, SN_EIO, "cannot open store at '%s' read-only: it is in use by "
                               "another process, whose writes kept replacing its files while "
                               "this open read them (%d tries); try again", path, attempt + 1);
            }
            rocksdb_free(err);
            err = NULL;
            long ms = attempt < 10 ? attempt + 1 : 10;
            nanosleep(&(struct timespec){ 0, ms * 5 * 1000 * 1000 }, NULL);
        }
    } else
        s->db = rocksdb_open_column_families(s->db_opts, path, CF_COUNT,
                                             (const char *const *)sn_cf_names, cfo, s->cf, &err);
    if (!err) return SN_OK;
    int rc = sn_open_err(e, err, path);   /* a locked store says so in plain words */
    s->db = NULL;
    /* opening for writing replays the WAL into a new file */
    if (!s->opts.read_only && strstr(e->msg, "No space left")) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        sn_fail(e, rc, "%s (a store on a full disk opens with read_only = true)", msg);
    }
    if (rc == SN_ECORRUPT) sn_table_explain(path, e);
    if (rc == SN_ECORRUPT) sn_wal_explain(path, e);
    return rc;
}

int sn_store_open(const char *path, const sn_store_opts *o, sn_store **out, sn_err *e)
{
    *out = NULL;
    if (!path || !*path) return sn_fail(e, SN_EARG, "store path must not be empty");
    if (o->write_buffer_mb < 1 || o->write_buffer_mb > 4096)
        return sn_fail(e, SN_EARG, "write_buffer_mb must be between 1 and 4096");
    if (o->cache_mb > 65536) return sn_fail(e, SN_EARG, "cache_mb must be at most 65536");
    int rc = check_dir(path, o->read_only, e);
    if (rc) return rc;

    sn_store *s = calloc(1, sizeof *s);
    if (!s) return sn_fail(e, SN_ENOMEM, "out of memory");
    s->opts = *o;
    s->path = strdup(path);
    /* random high bits: two processes logging the same metric at the same
     * timestamp must not produce the same key and overwrite each other */
    uuid_t seed;
    uuid_generate_random(seed);
    memcpy(&s->metric_seq, seed, sizeof s->metric_seq);
    s->metric_seq &= ~(uint64_t)0xffffffffu;
    s->codec = sn_codec_ctx_new();
    if (!s->path || !s->codec) {
        sn_codec_ctx_free(s->codec);
        free(s->path);
        free(s);
        return sn_fail(e, SN_ENOMEM, "out of memory");
    }
    if (!o->read_only) rc = sn_wal_before_open(path, o->recover, &s->recovery, e);
    if (!rc) rc = make_options(s, e);
    if (!rc) rc = open_db(s, path, e);
    if (!rc && !o->read_only) rc = sn_open_marker(path, 1, e);
    if (!rc) rc = load_origin(s, e);
    if (!rc) rc = sn_replica_open(s, e);
    if (!rc) rc = sn_format_open(s, e);
    if (!rc) rc = sn_identity_open(s, e);
    if (!rc) rc = sn_inuse_add(s, e);
    if (rc) { sn_store_close(s); return rc; }
    *out = s;
    return SN_OK;
}

/* A clean close leaves a store that is its live data: every memtable
 * flushed, so the WAL holds nothing needed (RocksDB then deletes the old
 * ones) and a closed store's latest writes are in its tables. Best effort:
 * a flush that fails (a full disk) leaves those writes in the WAL, which
 * the next open replays. */
static int flush_all(sn_store *s)
{
    int ok = 1;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < CF_COUNT; i++) {
        char *err = NULL;
        if (s->cf[i]) rocksdb_flush_cf(s->db, fo, s->cf[i], &err);
        else ok = 0;
        if (err) { ok = 0; rocksdb_free(err); }
    }
    rocksdb_flushoptions_destroy(fo);
    return ok;
}

void sn_store_close(sn_store *s)
{
    if (!s) return;
    sn_inuse_remove(s);
    /* the WALs the flush emptied go while the LOCK is still held, so a
     * reader in another process opens through a view (sn_view.c) and
     * never sees one vanish half-way through its open */
    if (s->db && !s->opts.read_only && flush_all(s)) sn_wal_drop_flushed(s->path);
    /* Debian's RocksDB asserts if a column family handle outlives the db */
    for (int i = 0; i < CF_COUNT; i++)
        if (s->cf[i]) rocksdb_column_family_handle_destroy(s->cf[i]);
    if (s->db) {
        /* the marker goes first: a crash during the close (a flush, then
         * RocksDB deleting the WAL) must not pass for a lost WAL later; a
         * crash there leaves the WAL in place until its flush is done */
        if (!s->opts.read_only) sn_open_marker(s->path, 0, NULL);
        rocksdb_close(s->db);
    }
    /* after the close: RocksDB logs until then */
    sn_infolog_release(s->log_dir, s->path, s->db && !s->opts.read_only);
    sn_view_remove(s->view);
    sn_rank_clear(s);
    for (int i = 0; i < CF_COUNT; i++)
        if (s->cf_opts[i]) rocksdb_options_destroy(s->cf_opts[i]);
    if (s->db_opts) rocksdb_options_destroy(s->db_opts);
    if (s->table_opts) rocksdb_block_based_options_destroy(s->table_opts);
    if (s->cache) rocksdb_cache_destroy(s->cache);
    if (s->wopts) rocksdb_writeoptions_destroy(s->wopts);
    if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
    if (s->wropts) rocksdb_readoptions_destroy(s->wropts);
    if (s->recovery) sn_wal_damage_free(s->recovery);
    free(s->recovery);
    sn_codec_ctx_free(s->codec);
    free(s->path);
    free(s);
}

const char *sn_store_path(const sn_store *s) { return s->path; }
const char *sn_store_origin(const sn_store *s) { return s->origin; }
sn_codec sn_store_codec(const sn_store *s) { return s->opts.codec; }
const sn_wal_damage *sn_store_recovery(const sn_store *s) { return s->recovery; }

/* ---- batches --------------------------------------------------------------- */

sn_batch *sn_batch_new(sn_store *s)
{
    sn_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->s = s;
    b->wb = rocksdb_writebatch_create();
    return b;
}

void sn_batch_free(sn_batch *b)
{
    if (!b) return;
    sn_replica_batch_free(b);
    sn_rank_batch_free(b);
    while (b->pending) {
        sn_pending *n = b->pending->next;
        free(b->pending->writes);
        free(b->pending->versions);
        free(b->pending);
        b->pending = n;
    }
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

int sn_batch_commit(sn_batch *b, sn_err *e)
{
    int rc = sn_check_writable(b->s, e);
    if (rc) return rc;
    char *err = NULL;
    uint64_t saved_seq;
    sn_replica_precommit(b, &saved_seq);
    rocksdb_write(b->s->db, b->s->wopts, b->wb, &err);
    sn_rank_commit(b, !err);
    sn_replica_postcommit(b, !err, saved_seq);
    if (err) return sn_rocks_err(e, err, "write failed");
    if (b->weights_changed) b->s->weights_epoch++;
    b->weights_changed = 0;
    rocksdb_writebatch_clear(b->wb);
    return SN_OK;
}

sn_batch *sn_batch_or_temp(sn_store *s, sn_batch *b, sn_err *e)
{
    if (sn_check_writable(s, e)) return NULL;
    if (b) return b;
    b = sn_batch_new(s);
    if (!b) sn_fail(e, SN_ENOMEM, "out of memory");
    return b;
}

/* Commit and free a temporary batch; leave a caller's batch alone. */
int sn_batch_finish(sn_batch *b, sn_batch *given, int rc, sn_err *e)
{
    if (b == given) return rc;
    if (!rc) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    return rc;
}

/* ---- records ----------------------------------------------------------------- */

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
