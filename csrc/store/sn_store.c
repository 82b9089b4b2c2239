/* Opening and closing the store: options, the directory checks, the
 * open-time steps of the other files in order, and the handle's accessors. */
#include "store/sn_format.h"
#include "store/sn_infolog.h"
#include "store/sn_inuse.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"
#include "store/sn_replica_int.h"
#include "store/sn_rocks.h"
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
            /* blob garbage: the older half of the blob files is
             * collected as compactions pass, and a compaction is forced
             * once those are half garbage, so a layer rewritten for ever
             * (a training mesh) keeps about twice its live payloads, not
             * every payload it ever wrote */
            snprintf(spec, sizeof spec, "compression=kNoCompression;%s",
                     o->blob_files ? "enable_blob_files=true;min_blob_size=4096;"
                                     "blob_file_size=268435456;"
                                     "enable_blob_garbage_collection=true;"
                                     "blob_garbage_collection_age_cutoff=0.5;"
                                     "blob_garbage_collection_force_threshold=0.5"
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
    s->weights_read_opts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->weights_read_opts, 0);
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

/* The replication log and the rank cache sit above the batch; it reaches
 * them only through these. */
static const sn_batch_hooks batch_hooks = {
    .precommit = sn_replica_precommit,
    .committed = sn_rank_commit,
    .postcommit = sn_replica_postcommit,
    .freed = { sn_replica_batch_free, sn_rank_batch_free },
};

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
    s->hooks = &batch_hooks;
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
    if (s->weights_read_opts) rocksdb_readoptions_destroy(s->weights_read_opts);
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
