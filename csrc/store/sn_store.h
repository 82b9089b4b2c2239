/* The storage engine: RocksDB with one column family per kind of record.
 *
 * Every write takes an optional batch; with NULL it commits on its own.
 * Functions return SN_OK, SN_NOTFOUND (absent data) or an error code with
 * e filled. Arguments are validated here, not only in the binding, so the
 * core is safe to drive from C (the fuzzers and the sync engine do). */
#ifndef SN_STORE_H
#define SN_STORE_H

#include "codec/sn_record.h"

typedef struct sn_store sn_store;
typedef struct sn_batch sn_batch;

typedef struct sn_store_opts {
    sn_codec codec;               /* payload codec for new weight records */
    int sync_writes;              /* fsync the WAL on every commit */
    int read_only;
    unsigned write_buffer_mb;     /* memtable size per column family */
    unsigned cache_mb;            /* shared LRU block cache */
    uint32_t max_weight_versions; /* 0 = keep every version */
    int blob_files;               /* large weight values in blob files */
    int recover;                  /* SN_RECOVER_*: what to do with a damaged WAL */
    int lenient;                  /* paranoid checks off: a table file RocksDB cannot
                                     load fails only the reads that need it (salvage) */
} sn_store_opts;

/* A WAL damaged before its end, or missing, loses acknowledged writes on
 * open. By default the open fails naming the file (RocksDB's
 * kTolerateCorruptedTailRecords: a record cut off by the end of the newest
 * WAL, as a crash leaves it, is no damage); SN_RECOVER_POINT_IN_TIME opens
 * up to the damage (kPointInTimeRecovery) and says what was dropped. */
enum { SN_RECOVER_NONE, SN_RECOVER_POINT_IN_TIME };

#define SN_WAL_MAX_NAMES 100
typedef struct sn_wal_damage {
    int found;
    int cut;                      /* cut short: what is gone cannot be counted */
    char file[64];                /* the WAL at fault, "000004.log" */
    uint64_t offset;              /* where its damage starts */
    char error[128];              /* "checksum mismatch", "missing", ... */
    uint64_t dropped_bytes;       /* WAL bytes from the damage on, later WALs included */
    unsigned dropped_files;       /* later WALs dropped whole */
    size_t nwrites;               /* readable writes in what is dropped */
    size_t ndamaged;              /* records in it that fail their checks (unnamed) */
    size_t nnames;                /* names of the first SN_WAL_MAX_NAMES of them */
    char *names[SN_WAL_MAX_NAMES];
} sn_wal_damage;

SN_HIDDEN void sn_store_default_opts(sn_store_opts *o);
SN_HIDDEN int sn_store_open(const char *path, const sn_store_opts *o, sn_store **out,
                            sn_err *e);
SN_HIDDEN void sn_store_close(sn_store *s);
SN_HIDDEN const char *sn_store_path(const sn_store *s);
SN_HIDDEN const char *sn_store_origin(const sn_store *s);
SN_HIDDEN sn_codec sn_store_codec(const sn_store *s);
/* What a recover open dropped; NULL when nothing was. */
SN_HIDDEN const sn_wal_damage *sn_store_recovery(const sn_store *s);

/* ---- batches ----------------------------------------------------------- */
SN_HIDDEN sn_batch *sn_batch_new(sn_store *s);
SN_HIDDEN int sn_batch_commit(sn_batch *b, sn_err *e);
SN_HIDDEN void sn_batch_free(sn_batch *b);

/* ---- weights ----------------------------------------------------------- */
typedef struct sn_weights_in {
    const char *expert;
    size_t expert_len;
    int64_t layer;
    const float *w;
    size_t nw;
    const float *b;
    size_t nb;
    const int64_t *shape;
    size_t nshape;
    /* when the current write is a derived merge, make it a real write and
     * write on top of it (sn_weights.c build_on_merge) */
    int build_on_merge;
} sn_weights_in;

typedef struct sn_weights_view {
    sn_record rec;                /* rec.fields: expert_id, layer, version, ... */
    uint64_t version;
    size_t nw, nb;
    size_t stored_bytes;          /* the whole stored value */
    /* private */
    unsigned char key[SN_MAX_ID_LEN + 5 + 44];   /* layer key + identity */
    size_t klen;
    void *pin;
    sn_codec_ctx *codec;          /* the store's codec state, NULL for a view from bytes */
    sn_arena arena;
} sn_weights_view;

SN_HIDDEN int sn_put_weights(sn_store *s, sn_batch *b, const sn_weights_in *in,
                             uint64_t *version, sn_err *e);
/* version 0 = the latest. On SN_OK the view must be released. */
SN_HIDDEN int sn_get_weights(sn_store *s, const char *expert, size_t len, int64_t layer,
                             uint64_t version, sn_weights_view *v, sn_err *e);
/* The write of layer with identity (hlc, origin), e.g. a checkpoint pin's;
 * SN_NOTFOUND when this store does not hold it. */
SN_HIDDEN int sn_get_weights_at(sn_store *s, const char *expert, size_t len, int64_t layer,
                                uint64_t hlc, const char *origin, size_t olen,
                                sn_weights_view *v, sn_err *e);
/* The identity of the layer's current write (a derived merge's included)
 * without reading its record; SN_NOTFOUND when the layer has none. */
SN_HIDDEN int sn_current_identity(sn_store *s, const char *expert, size_t len, int64_t layer,
                                  uint64_t *hlc, char origin[37], sn_err *e);
/* A counter of commits that changed some layer's current write (local or
 * replicated), since the store was opened: a cheap "did anything change". */
SN_HIDDEN uint64_t sn_weights_epoch(const sn_store *s);
SN_HIDDEN int sn_weights_view_load(sn_weights_view *v, float *w, float *b, sn_err *e);
SN_HIDDEN void sn_weights_view_release(sn_weights_view *v);
/* The layers an expert has weights for, ascending: one seek per layer. */
SN_HIDDEN int sn_list_layers(sn_store *s, const char *expert, size_t len, sn_arena *a,
                             sn_value *out, sn_err *e);
SN_HIDDEN int sn_weight_versions(sn_store *s, const char *expert, size_t len, int64_t layer,
                                 sn_arena *a, sn_value *out, sn_err *e);

/* Every layer of the expert gets a tombstone write and its config goes, all
 * replicated; records a checkpoint pins stay (sn_delete.c). *found: whether
 * there was anything to delete. */
SN_HIDDEN int sn_delete_expert(sn_store *s, sn_batch *b, const char *expert, size_t len,
                               int *found, sn_err *e);

/* ---- configs, checkpoints, state, metrics ------------------------------- */
SN_HIDDEN int sn_put_config(sn_store *s, sn_batch *b, sn_value *cfg, sn_err *e);
SN_HIDDEN int sn_get_config(sn_store *s, const char *expert, size_t len, sn_arena *a,
                            sn_value *out, sn_err *e);
SN_HIDDEN int sn_list_experts(sn_store *s, sn_arena *a, sn_value *out, sn_err *e);

SN_HIDDEN int sn_create_checkpoint(sn_store *s, sn_batch *b, sn_value *cp, char id[37],
                                   sn_err *e);
SN_HIDDEN int sn_get_checkpoint(sn_store *s, const char *id, size_t len, sn_arena *a,
                                sn_value *out, sn_err *e);
SN_HIDDEN int sn_list_checkpoints(sn_store *s, sn_arena *a, sn_value *out, sn_err *e);
SN_HIDDEN int sn_restore_checkpoint(sn_store *s, const char *id, size_t len, sn_err *e);
SN_HIDDEN int sn_delete_checkpoint(sn_store *s, sn_batch *b, const char *id, size_t len,
                                   sn_err *e);

/* value NULL (or nil) deletes the key */
SN_HIDDEN int sn_put_state(sn_store *s, sn_batch *b, const char *key, size_t len,
                           const sn_value *value, sn_err *e);
SN_HIDDEN int sn_get_state(sn_store *s, const char *key, size_t len, sn_arena *a,
                           sn_value *out, sn_err *e);

/* The state keys, ascending (bytewise). */
SN_HIDDEN int sn_state_keys(sn_store *s, sn_arena *a, sn_value *out, sn_err *e);

SN_HIDDEN int sn_record_metric(sn_store *s, sn_batch *b, const char *name, size_t len,
                               double value, double timestamp, sn_err *e);
SN_HIDDEN int sn_metrics(sn_store *s, const char *name, size_t len, double from, double to,
                         sn_arena *a, sn_value *out, sn_err *e);
/* The number of points with from <= timestamp <= to, without decoding them. */
SN_HIDDEN int sn_metric_count(sn_store *s, const char *name, size_t len, double from, double to,
                              uint64_t *count, sn_err *e);
/* The metric names, ascending (bytewise): one seek per name. */
SN_HIDDEN int sn_metric_names(sn_store *s, sn_arena *a, sn_value *out, sn_err *e);
/* Deletes name's points with timestamp < before; *removed counts them. In
 * a batch, points recorded earlier in the same batch are not seen. */
SN_HIDDEN int sn_prune_metrics(sn_store *s, sn_batch *b, const char *name, size_t len,
                               double before, uint64_t *removed, sn_err *e);

/* ---- maintenance --------------------------------------------------------- */
typedef struct sn_storage_info {
    uint64_t total_bytes, file_count, checkpoint_count, weight_records;
    uint64_t raw_bytes, stored_bytes;
} sn_storage_info;

/* RocksDB's own estimates for one column family (cheap: no scan). */
typedef struct sn_cf_info {
    const char *name;             /* static */
    uint64_t keys;                /* rocksdb.estimate-num-keys */
    uint64_t sst_bytes, blob_bytes, memtable_bytes;
} sn_cf_info;
#define SN_CF_COUNT 6             /* default plus the five named in SPEC */

SN_HIDDEN int sn_stats_text(sn_store *s, char **out, sn_err *e);   /* free() it */
/* cf: one entry per column family, default first; *cache_bytes: the shared
 * block cache's usage. */
SN_HIDDEN void sn_cf_stats(sn_store *s, sn_cf_info cf[SN_CF_COUNT], uint64_t *cache_bytes);
SN_HIDDEN int sn_size_info(sn_store *s, uint64_t *bytes, uint64_t *files, sn_err *e);
SN_HIDDEN int sn_storage_stats(sn_store *s, sn_storage_info *st, sn_err *e);
/* Progress of a long operation: fn(ud, done, total) now and then, in the
 * operation's unit (records for verify). total is an estimate, raised to
 * done when the work turns out larger; the last call has done == total.
 * A non-zero return stops the operation, which releases what it holds and
 * fails with SN_EIO. fn may read and write the store; it must not close
 * it (the Lua binding defers a close until the operation has returned). */
typedef struct sn_progress {
    int (*fn)(void *ud, uint64_t done, uint64_t total);
    void *ud;
} sn_progress;

/* RocksDB's estimate of the keys in every column family: a total for
 * progress, never a count to rely on. */
SN_HIDDEN uint64_t sn_estimate_records(sn_store *s);

/* *ok tells whether everything checked out; report is a map:
 * records (count), problems (list of {where=, error=}). progress may be
 * NULL. */
SN_HIDDEN int sn_verify(sn_store *s, sn_arena *a, sn_value *report, int *ok,
                        const sn_progress *progress, sn_err *e);
SN_HIDDEN int sn_compact(sn_store *s, sn_err *e);
/* Copies every readable record of the store at path that passes its own
 * checks into a new store at out_path (sn_salvage.c). report: recovered
 * (records per column family), lost (list of {where=, error=}), unreadable
 * (stretches, as verify names them), repaired (a scratch copy had to be
 * repaired before it would open), wal (what a damaged WAL dropped).
 * *ok: nothing was lost. */
SN_HIDDEN int sn_salvage(const char *path, const char *out_path, sn_arena *a, sn_value *report,
                         int *ok, sn_err *e);
SN_HIDDEN int sn_backup(sn_store *s, const char *dir, uint32_t *id, sn_err *e);
SN_HIDDEN int sn_list_backups(const char *dir, sn_arena *a, sn_value *out, sn_err *e);
/* Restores backup id (0: the newest, damaged or not) from dir into db_path.
 * Refuses a db_path that is a store open in this or another process, and
 * one that holds anything unless force; fails naming the backup, and the
 * file, when the backup does not verify (nothing at db_path is touched
 * then). Never falls back to another backup. */
SN_HIDDEN int sn_restore_backup(const char *dir, const char *db_path, uint32_t id, int force,
                                sn_err *e);
/* Checks backup id (0: every backup) in dir without restoring it: RocksDB's
 * check (the meta file, every file there with its size) and each file's
 * CRC32C against the meta file. report: map backups (ids checked), files,
 * bytes, problems (list of {backup=, where=, error=}); *ok = no problems. */
SN_HIDDEN int sn_verify_backup(const char *dir, uint32_t id, sn_arena *a, sn_value *report,
                               int *ok, sn_err *e);
/* Deletes backup id from dir, and the files only it used (sn_backup_prune.c;
 * fails naming the id when there is no such backup). */
SN_HIDDEN int sn_delete_backup(const char *dir, uint32_t id, sn_err *e);
/* Deletes all but the newest keep backups in dir; *deleted: how many. */
SN_HIDDEN int sn_purge_old_backups(const char *dir, uint32_t keep, uint32_t *deleted, sn_err *e);

/* How many blob values (weight payloads) this thread has read, and their
 * bytes, since its first call (which starts the count): a test hook. */
SN_HIDDEN void sn_blob_reads(uint64_t *count, uint64_t *bytes);

SN_HIDDEN double sn_now(void);      /* Unix seconds, sub-second precision */
SN_HIDDEN void sn_uuid(char out[37]);

#endif
