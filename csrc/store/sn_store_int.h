/* Internals shared by the storage files, the .c files of csrc/store: the
 * only files in the tree that talk to RocksDB. sn_store (open/close,
 * batches, keys, the shared helpers below), sn_format (store format and
 * the upgrade of format-1 stores, store identity), sn_inuse (stores open in
 * this process, RocksDB's LOCK), sn_view (read-only views beside a writer);
 * weights: sn_weights, sn_history (causal history per layer), sn_merge,
 * sn_trim, sn_delete (tombstones); sn_config, sn_checkpoint, sn_state (state and metrics);
 * sn_replica_* (replication log, apply (weights: sn_replica_weights),
 * checks, conflicts; their own internals in sn_replica_int.h); sn_verify,
 * sn_stats, sn_progress, sn_backup; sn_wal and sn_wal_log (RocksDB's own
 * WAL, MANIFEST and blob formats, read for what the API cannot say),
 * sn_scan (a walk that goes on past damage), sn_salvage. */
#ifndef SN_STORE_INT_H
#define SN_STORE_INT_H

#include "base/sn_vec.h"
#include "codec/sn_entry.h"
#include "store/sn_store.h"

#include <rocksdb/c.h>

enum { CF_DEFAULT, CF_WEIGHTS, CF_CONFIG, CF_STATE, CF_CHECKPOINTS, CF_METRICS, CF_COUNT };

extern SN_HIDDEN const char *const sn_cf_names[CF_COUNT];

struct sn_store {
    rocksdb_t *db;
    rocksdb_options_t *db_opts;
    rocksdb_options_t *cf_opts[CF_COUNT];
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
    /* Weight payloads skip RocksDB's checksum on reads: every record's own
     * CRC32 already covers it end to end, and Debian's build computes the
     * blob files' CRC32c in software, which cost most of a get. verify()
     * still has RocksDB check everything. */
    rocksdb_readoptions_t *wropts;
    char *path;
    char origin[37];
    sn_store_opts opts;
    uint64_t last_hlc;
    uint64_t metric_seq;
    uint64_t repl_seq;            /* last replication log seq of this origin */
    sn_wal_damage *recovery;      /* what a recover open dropped (sn_wal.c) */
    char *view;                   /* a read-only handle's view beside a writer (sn_view.c) */
    uint64_t weights_epoch;       /* commits that changed a layer's current write (in memory) */
    struct sn_ranks *ranks;       /* history walks' results (sn_rank.c), or NULL */
    sn_codec_ctx *codec;          /* codec state reused by every record read and written */
    char log_dir[96];             /* RocksDB's info LOG directory (sn_infolog.c), or "" */
};

/* The weights writes a batch made to one layer, so a second write to it in
 * the same batch has the first as its parent and the next number, and
 * trimming can reach writes that are not on disk yet. */
typedef struct sn_pending {
    struct sn_pending *next;
    sn_ident id;                  /* the last write */
    uint32_t depth;
    uint64_t version;
    struct sn_hist *writes;       /* every write, in order (malloc'd) */
    uint64_t *versions;
    size_t nwrites, cap, trimmed; /* writes[0..trimmed) are trimmed already */
    int beside_heads;             /* a write left other heads (build_on_merge): no trimming */
    int has_floor;                /* after this batch's trimming, no write older than */
    sn_ident floor;               /* floor (of number floor_rank) is held: the next */
    uint64_t floor_rank;          /* trim walks from there (sn_trim.c, sn_rank.c) */
    size_t prefix_len;
    unsigned char prefix[];       /* the layer key */
} sn_pending;

struct sn_batch {
    sn_store *s;
    rocksdb_writebatch_t *wb;
    sn_pending *pending;
    int has_checkpoint;    /* a checkpoint was created in this batch */
    int weights_changed;   /* a layer's current write changes at commit (weights_epoch) */
    struct sn_repl_note *repl;    /* log entries to append at commit (sn_replica_log.c) */
    struct sn_rank_touched *touched;   /* layers whose history changed (sn_rank.c) */
    int rank_local;    /* > 0 inside a local put or delete of a layer (sn_rank.c) */
};

/* Keys. Weights (store format 2): expert 0x00 layer(4 BE) identity(44), so
 * one expert's layers and one layer's writes are each a contiguous range,
 * in (hlc, origin) order (see sn_history.h). Format 1 keyed them by
 * version(8 BE) instead; sn_format.c upgrades such stores on open. */
#define SN_WKEY_MAX (SN_MAX_ID_LEN + 1 + 4 + SN_ID_LEN)
#define SN_WKEY_V1_MAX (SN_MAX_ID_LEN + 1 + 4 + 8)
SN_HIDDEN int sn_wkey_v1_parse(const unsigned char *k, size_t klen, const char **expert,
                               size_t *len, uint32_t *layer, uint64_t *version);
SN_HIDDEN void sn_put_be(unsigned char *p, uint64_t v, int n);
SN_HIDDEN uint64_t sn_get_be(const unsigned char *p, int n);

/* Checkpoints CF: 'C' id -> checkpoint; 'P' weight-key id -> "" (pin index). */
#define SN_PIN_PREFIX 'P'
#define SN_CP_PREFIX 'C'
#define SN_PIN_KEY_MAX (1 + SN_WKEY_MAX + SN_MAX_ID_LEN)
/* The pin index key of one pin (a sn_schema_pin map with hlc and origin)
 * of checkpoint id: 'P' weights-key id. */
SN_HIDDEN size_t sn_pin_key(unsigned char *k, const sn_value *pin, const void *id, size_t idlen);

SN_HIDDEN int sn_rocks_err(sn_err *e, char *err, const char *what);

/* In use (sn_inuse.c). The stores open in this process, by directory. */
SN_HIDDEN int sn_inuse_add(const sn_store *s, sn_err *e);
SN_HIDDEN void sn_inuse_remove(const sn_store *s);
/* SN_OK if no store is open at path, here or in another process, and then,
 * when *lockfd >= 0, this process holds path's LOCK until sn_inuse_release
 * (other processes' opens fail meanwhile). Otherwise SN_EIO, e saying which
 * ("open in this process", "in use by another process (pid N)"). */
SN_HIDDEN int sn_inuse_claim(const char *path, int *lockfd, sn_err *e);
SN_HIDDEN void sn_inuse_release(int lockfd);
/* A failed open's RocksDB error err (freed here) as a message naming path;
 * a lock held elsewhere reads "store is already open (by this or another
 * process)" rather than RocksDB's own text. */
SN_HIDDEN int sn_open_err(sn_err *e, char *err, const char *path);
/* Read options for a full scan: checksums verified, the block cache left
 * alone (a scan must not evict the hot set). The caller destroys them. */
SN_HIDDEN rocksdb_readoptions_t *sn_scan_options(void);
/* Whether key k exists in cf (a pinned get: no copy); what names a
 * failure. */
SN_HIDDEN int sn_key_exists(sn_store *s, int cf, const void *k, size_t klen, int *found,
                            const char *what, sn_err *e);

/* An iterator over cf with the store's read options. Every iteration loop
 * ends in sn_iter_close or sn_iter_end, because RocksDB reports a failed
 * read (a bad block, an I/O error) only through the iterator, after the
 * loop. Both destroy it; sn_iter_close returns its error (the caller
 * rocksdb_free()s it) or NULL. */
SN_HIDDEN rocksdb_iterator_t *sn_iter(sn_store *s, int cf);
SN_HIDDEN char *sn_iter_close(rocksdb_iterator_t *it);
/* The same as a status: rc when the loop already failed (the iterator's
 * error is then dropped), else the iterator's error prefixed with what. */
SN_HIDDEN int sn_iter_end(rocksdb_iterator_t *it, int rc, const char *what, sn_err *e);
/* The same over the keys that start with prefix only (sn_bound.c): the
 * scan ends at the prefix's end, not at the next live key after it. End
 * it with sn_bound_end, which also frees b (NULL when no bound was set). */
typedef struct sn_bound sn_bound;
SN_HIDDEN rocksdb_iterator_t *sn_iter_prefix(sn_store *s, int cf, const void *prefix, size_t plen,
                                             sn_bound **b);
SN_HIDDEN int sn_bound_end(sn_bound *b, rocksdb_iterator_t *it, int rc, const char *what, sn_err *e);

/* A growable list of values, copied into the arena when done. */
typedef struct sn_vlist { sn_value *items; size_t n, cap; } sn_vlist;
SN_HIDDEN int sn_vlist_push(sn_vlist *l, sn_value v, sn_err *e);
/* out = the list as an SN_ARRAY in a; frees the list either way. */
SN_HIDDEN int sn_vlist_finish(sn_vlist *l, sn_arena *a, sn_value *out, sn_err *e);
SN_HIDDEN int sn_check_id(const char *p, size_t len, const char *what, sn_err *e);
SN_HIDDEN uint64_t sn_next_hlc(sn_store *s);
SN_HIDDEN sn_batch *sn_batch_or_temp(sn_store *s, sn_batch *b, sn_err *e);
SN_HIDDEN int sn_batch_finish(sn_batch *b, sn_batch *given, int rc, sn_err *e);
SN_HIDDEN int sn_check_writable(sn_store *s, sn_err *e);

/* Encode a record and add it to a batch. */
SN_HIDDEN int sn_batch_put_record(sn_batch *b, int cf, const void *key, size_t klen,
                                  unsigned type, const sn_value *map, const sn_part *parts,
                                  size_t nparts, sn_codec codec, sn_err *e);
/* Copy a schema-checked map's fields onto a record map of the same schema
 * (the check guarantees every key is a field name under 64 bytes). */
SN_HIDDEN void sn_copy_fields(sn_value *rec, const sn_value *src);
/* SN_ECORRUPT unless field name of a record is the string p (its key). */
SN_HIDDEN int sn_expect_field(const sn_value *fields, const char *name, const void *p, size_t len,
                              sn_err *e);
/* Point-read and decode a non-payload record; SN_NOTFOUND when absent. */
SN_HIDDEN int sn_get_record(sn_store *s, int cf, const void *key, size_t klen,
                            unsigned type, sn_arena *a, sn_value *out, sn_err *e);
/* Prefix e's message with the record's name; returns rc. */
SN_HIDDEN int sn_record_err(sn_err *e, int rc, int cf, const unsigned char *k, size_t klen);
/* "neural_weights/coding/layer 2/v3" style names for error messages. */
SN_HIDDEN void sn_describe_key(int cf, const unsigned char *k, size_t klen, char *buf,
                               size_t cap);

/* Keep the newest max_weight_versions records of a layer (layer key lk);
 * never a head, a pinned write, or the base the heads' merge needs. */
SN_HIDDEN int sn_trim_versions(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                               sn_err *e);
/* The record of write id of layer lk (SN_NOTFOUND when not held), with
 * its version number; release the view. */
SN_HIDDEN int sn_get_weights_by_id(sn_store *s, const unsigned char *lk, size_t lklen,
                                   const sn_ident *id, sn_weights_view *v, sn_err *e);
/* The same without its version number (left 0), so without a walk of the
 * layer's history: for callers that need the record only (applying a
 * peer's write compares heads by depth). */
SN_HIDDEN int sn_get_weights_record(sn_store *s, const unsigned char *lk, size_t lklen,
                                    const sn_ident *id, sn_weights_view *v, sn_err *e);
/* A view of a weights record held in memory (bytes must outlive it; the
 * version is left 0); release it. */
SN_HIDDEN int sn_weights_view_from(sn_weights_view *v, const void *bytes, size_t len,
                                   const unsigned char *key, size_t klen, sn_err *e);
/* The info LOG directory of a handle on the store at path ("" to leave the LOG
 * beside the data), and its release at close: the last LOG copied into the
 * store when keep_copy, the directory emptied (sn_infolog.c). */
SN_HIDDEN void sn_infolog_dir(const char *store_path, int read_only, char *buf, size_t cap);
SN_HIDDEN void sn_infolog_release(const char *dir, const char *store_path, int keep_copy);
/* Copy a file's bytes (0, or -1 on any failure); sn_view.c. */
SN_HIDDEN int sn_copy_file(const char *from, const char *to);
/* A problem report entry { where, error } (and backup = id when id >= 0),
 * its strings copied into a. */
SN_HIDDEN int sn_problem_value(sn_arena *a, const char *where, const char *error, int64_t backup,
                               sn_value *out, sn_err *e);
/* Pin index entries whose checkpoint is gone are dropped (salvage). */
SN_HIDDEN int sn_checkpoint_reconcile(sn_store *s, sn_err *e);
/* The record a checkpoint pin (a sn_schema_pin map) names; release it. */
SN_HIDDEN int sn_pinned_weights(sn_store *s, const sn_value *pin, sn_weights_view *v, sn_err *e);
/* The layer's last write in batch b, or NULL. */
SN_HIDDEN sn_pending *sn_pending_find(sn_batch *b, const unsigned char *lk, size_t lklen);

/* Replication hooks (sn_replica_log.c). A local write of a replicated record
 * notes a log entry in its batch; the entry gets its sequence number and
 * joins the batch at commit, so the log and the data never disagree and a
 * dropped batch leaves no gap in the log. prev_origin NULL = no predecessor. */
SN_HIDDEN int sn_replica_open(sn_store *s, sn_err *e);
/* The store format: upgrade a format-1 store opened for writing, mark a
 * new one (sn_format.c). */
SN_HIDDEN int sn_format_open(sn_store *s, sn_err *e);
/* A copied or restored store directory takes a new origin (sn_format.c);
 * mark_new_origin asks for one at the next writable open (a restore). */
SN_HIDDEN int sn_identity_open(sn_store *s, sn_err *e);
SN_HIDDEN int sn_mark_new_origin(const char *path, sn_err *e);
SN_HIDDEN int sn_replica_note(sn_batch *b, int cf, const void *key, size_t klen, unsigned kind,
                              uint64_t hlc, uint64_t prev_hlc, const char *prev_origin,
                              size_t prev_len, sn_err *e);
/* A weights write: its record key and the writes it supersedes. */
SN_HIDDEN int sn_replica_note_parents(sn_batch *b, const void *key, size_t klen, uint64_t hlc,
                                      const sn_ident *parents, size_t nparents, uint32_t depth,
                                      sn_err *e);
/* A weights tombstone (delete_expert): a DEL entry that carries its parents
 * and the tomb mark, so a peer tells it from a trimmed write. */
SN_HIDDEN int sn_replica_note_tomb(sn_batch *b, const void *key, size_t klen, uint64_t hlc,
                                   const sn_ident *parents, size_t nparents, uint32_t depth,
                                   sn_err *e);
/* The rank cache (sn_rank.c): a layer's history size, and one write's
 * version number, as the last walk found them (1: found). touch: batch b
 * changes lk's history (inside b->rank_local: by a local put or delete,
 * which sn_pending records); commit sets the slots of layers only local
 * writes touched from sn_pending and drops the rest; clear drops all
 * (after a raw write of histories, and at close). */
SN_HIDDEN int sn_rank_count(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t *count);
SN_HIDDEN int sn_rank_version(sn_store *s, const unsigned char *lk, size_t lklen,
                              const sn_ident *id, uint64_t *version);
SN_HIDDEN void sn_rank_note(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t count,
                            const sn_ident *id, uint64_t version);
SN_HIDDEN int sn_rank_heads(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *heads,
                            size_t *n);
SN_HIDDEN void sn_rank_note_heads(sn_store *s, const unsigned char *lk, size_t lklen,
                                  const sn_ident *heads, size_t n);
/* Where the layer's last trim walk found the oldest write it kept held. */
SN_HIDDEN int sn_rank_floor(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *id,
                            uint64_t *rank);
SN_HIDDEN void sn_rank_touch(sn_batch *b, const unsigned char *lk, size_t lklen);
/* The heads sn_hist_add left lk with in a batch of a peer's writes: when
 * it was the batch's one change of lk's heads, commit keeps them, so a
 * catch-up of one layer does not walk its deleted head markers per write. */
SN_HIDDEN void sn_rank_heads_after(sn_batch *b, const unsigned char *lk, size_t lklen,
                                   const sn_ident *heads, size_t n);
/* A local write of lk that failed half-way: its slot goes at commit. */
SN_HIDDEN void sn_rank_taint(sn_batch *b, const unsigned char *lk, size_t lklen);
SN_HIDDEN void sn_rank_commit(sn_batch *b, int ok);
SN_HIDDEN void sn_rank_batch_free(sn_batch *b);
SN_HIDDEN void sn_rank_clear(sn_store *s);

/* Called by sn_batch_commit around rocksdb_write. */
SN_HIDDEN void sn_replica_precommit(sn_batch *b, uint64_t *saved_seq);
SN_HIDDEN void sn_replica_postcommit(sn_batch *b, int ok, uint64_t saved_seq);
SN_HIDDEN void sn_replica_batch_free(sn_batch *b);

/* The checks one stored record passes on its own (sn_verify.c): decoded
 * whole, its CRC, its type, its fields against its key. With a, the fields
 * of a non-weights record are left in *fields. */
SN_HIDDEN int sn_record_check(sn_codec_ctx *x, int cf, const unsigned char *k, size_t klen,
                              const char *val, size_t vlen, sn_arena *a, sn_value *fields,
                              sn_err *e);

/* Decode one stored weight value fully (payload and checksum included),
 * with codec state x (NULL: made for the call). */
SN_HIDDEN int sn_weights_verify(sn_codec_ctx *x, const unsigned char *key, size_t klen,
                                const char *val, size_t vlen, sn_err *e);

#endif
