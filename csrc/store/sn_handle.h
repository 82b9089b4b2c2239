/* The store handle and the batch: the structures every storage file
 * shares. What each field is for is said where it is used. */
#ifndef SN_HANDLE_H
#define SN_HANDLE_H

#include "base/sn_vec.h"
#include "codec/sn_entry.h"
#include "store/sn_keys.h"
#include "store/sn_store.h"

#include <rocksdb/c.h>

/* What a batch's commit and free run for the layers above the batch (the
 * replication log, sn_replica_log.c; the rank cache, sn_rank.c), set by
 * sn_store_open: the batch calls them through the store rather than by
 * name, so the bottom primitive does not depend on the files above it. */
typedef struct sn_batch_hooks {
    void (*precommit)(sn_batch *b, uint64_t *saved);      /* before rocksdb_write */
    void (*committed)(sn_batch *b, int ok);               /* right after it */
    void (*postcommit)(sn_batch *b, int ok, uint64_t saved);
    void (*freed[2])(sn_batch *b);                        /* at sn_batch_free */
} sn_batch_hooks;

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
    rocksdb_readoptions_t *weights_read_opts;
    char *path;
    char origin[37];
    sn_store_opts opts;
    uint64_t last_hlc;
    uint64_t metric_seq;
    uint64_t repl_seq;            /* last replication log seq of this origin */
    sn_wal_damage *recovery;      /* what a recover open dropped (sn_wal_damage.c) */
    char *view;                   /* a read-only handle's view beside a writer (sn_view.c) */
    uint64_t weights_epoch;       /* commits that changed a layer's current write (in memory) */
    struct sn_ranks *ranks;       /* history walks' results (sn_rank.c), or NULL */
    sn_codec_ctx *codec;          /* codec state reused by every record read and written */
    const sn_batch_hooks *hooks;  /* set by sn_store_open */
    char log_dir[96];             /* RocksDB's info LOG directory (sn_infolog.c), or "" */
    int has_remote;               /* the log holds another origin's writes (once true, for good) */
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
    const sn_batch_hooks *hooks;  /* the store's, copied: a batch may be freed after its store */
    rocksdb_writebatch_t *wb;
    sn_pending *pending;
    int has_checkpoint;    /* a checkpoint was created in this batch */
    int weights_changed;   /* a layer's current write changes at commit (weights_epoch) */
    struct sn_repl_note *repl;    /* log entries to append at commit (sn_replica_log.c) */
    struct sn_rank_touched *touched;   /* layers whose history changed (sn_rank.c) */
    int rank_local;    /* > 0 inside a local put or delete of a layer (sn_rank.c) */
};

#endif
