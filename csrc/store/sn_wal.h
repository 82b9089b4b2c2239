/* Reading RocksDB's own files beside the C API, for what the API cannot
 * say: which WAL is damaged or missing, and what a point-in-time recovery
 * would drop. The formats are RocksDB's log format (db/log_format.h: 32 KiB
 * blocks of checksummed fragments), the MANIFEST's version edits
 * (db/version_edit.h) and write batches (db/write_batch.cc), all stable on
 * disk since RocksDB 6. Only the store's open path uses this (sn_store.c,
 * sn_wal_damage.c, sn_log_format.c). */
#ifndef SN_WAL_H
#define SN_WAL_H

#include "store/sn_handle.h"

#include <stdio.h>

/* ---- the log format (sn_log_format.c) ------------------------------------ */
#define SN_LOG_BLOCK 32768

typedef struct sn_logr {
    FILE *f;
    uint64_t size;               /* file size when opened */
    unsigned char block[SN_LOG_BLOCK];
    size_t blen, pos;            /* bytes in block, read position */
    uint64_t block_off;          /* file offset of block */
    unsigned char *rec;          /* the logical record read last */
    size_t rlen, rcap;
    int in_frag;
    uint64_t rec_off;
    /* the first damage: a fragment that fails its checks before the end of
     * the file (a record cut off by the end of the file is a torn tail,
     * not damage, as RocksDB's kTolerateCorruptedTailRecords sees it) */
    int damaged;
    uint64_t bad_off;
    const char *why;
    size_t damaged_records;      /* fragments that failed their checks */
} sn_logr;

/* 0 on success; the reader must then be closed. */
SN_HIDDEN int sn_logr_open(sn_logr *r, const char *file);
SN_HIDDEN void sn_logr_close(sn_logr *r);
/* 1: r->rec holds a record; 0: end of file (clean or torn tail). On damage
 * r->damaged is set and reading goes on at the next block, so the caller
 * can still see what lies beyond it. */
SN_HIDDEN int sn_logr_next(sn_logr *r);
SN_HIDDEN uint32_t sn_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- write batches ----------------------------------------------------- */
/* Calls fn for each put or delete of a WAL record (a write batch); stops
 * quietly at anything it does not know. */
typedef void (*sn_wal_batch_entry_fn)(void *ctx, uint32_t cf_id, const unsigned char *k, size_t klen,
                                  int is_delete);
SN_HIDDEN void sn_wal_batch_entries(const unsigned char *p, size_t n, sn_wal_batch_entry_fn fn, void *ctx);

/* ---- blob files ------------------------------------------------------------ */
/* Calls fn for every record of a blob file whose header passes its CRC
 * (the value is the caller's to check); -1 when the file cannot be read. */
typedef void (*sn_blob_record_fn)(void *ctx, const unsigned char *k, size_t klen,
                                  const unsigned char *v, size_t vlen);
SN_HIDDEN int sn_blob_records(const char *file, sn_blob_record_fn fn, void *ctx);

/* ---- the MANIFEST ------------------------------------------------------ */
#define SN_MAX_CFS 64
typedef struct sn_manifest {
    size_t ncf;
    struct { uint32_t id; int live; uint64_t log; char name[64]; } cf[SN_MAX_CFS];
} sn_manifest;

/* Column families with their WAL log numbers, from the MANIFEST that
 * CURRENT names. SN_ECORRUPT when it cannot be read this way. */
SN_HIDDEN int sn_manifest_read(const char *path, sn_manifest *m, sn_err *e);

/* The table and blob files in path that the MANIFEST CURRENT names never
 * mentions, added or deleted: how many, and the first by name; removed too
 * when remove (salvage's repaired scratch copy, whose blob files RocksDB's
 * repair does not list). -1 when the MANIFEST cannot be read this way
 * (left to RocksDB). */
SN_HIDDEN int sn_manifest_unlisted(const char *path, size_t *count, char *first, size_t cap,
                                   int remove);
/* SN_ECORRUPT, naming them and the MANIFEST, when a store closed cleanly
 * holds table or blob files its MANIFEST does not list (a read-write open
 * would delete them); SN_OK otherwise. */
SN_HIDDEN int sn_wal_unlisted(const char *path, sn_err *e);

/* ---- checks on open (sn_wal_damage.c) ------------------------------------------- */
/* Present in the store directory while a read-write handle has it open
 * (created after RocksDB's open, removed after its close): a store that
 * has it on open was not closed, so its newest WAL must still be there. */
#define SN_OPEN_MARKER "SYNAPTIC-OPEN"
SN_HIDDEN int sn_open_marker(const char *path, int present, sn_err *e);
/* fsync of the directory holding path: a rename into it made durable. */
SN_HIDDEN void sn_sync_parent(const char *path);
/* Puts the directory from at to: renamed there when to does not exist,
 * else swapped with it in one step (what was at to is then at from).
 * 0, or -1 with errno. */
SN_HIDDEN int sn_swap_into(const char *from, const char *to);
/* After a flush of every column family succeeded, at a clean close: the
 * WALs older than the newest (the one RocksDB writes) hold only flushed
 * writes; removes them. */
SN_HIDDEN void sn_wal_drop_flushed(const char *path);
/* d->found when the store was not closed and its newest WAL is gone. */
SN_HIDDEN int sn_wal_missing(const char *path, sn_wal_damage *d, sn_err *e);
/* d->found when a live WAL is damaged before its end; then d also counts
 * and names what lies beyond the damage (what a point-in-time recovery
 * drops). A MANIFEST this cannot read is left to RocksDB. */
SN_HIDDEN int sn_wal_scan(const char *path, sn_wal_damage *d, sn_err *e);
SN_HIDDEN void sn_wal_damage_free(sn_wal_damage *d);
/* Before a read-write open of an existing store: a missing WAL fails the
 * open unless recover; with recover, *out (malloc'ed, NULL when nothing is
 * wrong) tells what the point-in-time recovery drops. */
SN_HIDDEN int sn_wal_before_open(const char *path, int recover, sn_wal_damage **out, sn_err *e);
/* After RocksDB refused to open with a corruption: name the damaged WAL in
 * e, when that is what it was. */
SN_HIDDEN void sn_wal_explain(const char *path, sn_err *e);
/* After RocksDB refused to open, blaming the MANIFEST for a table file it
 * could not load: name the table file in e. */
SN_HIDDEN void sn_table_explain(const char *path, sn_err *e);

/* ---- a read-only view beside a writer (sn_view.c) ------------------------- */
/* A directory inside the store with hard links to its table and blob files
 * and copies of its MANIFEST and WALs, consistent as of the copy; NULL when
 * one cannot be made (not writable, or the writer raced it: try again).
 * sn_view_remove deletes it and frees the name. */
SN_HIDDEN char *sn_view_make(const char *path);
SN_HIDDEN void sn_view_remove(char *view);
/* Copy a file's bytes (0, or -1 on any failure); sn_view.c. */
SN_HIDDEN int sn_copy_file(const char *from, const char *to);

#endif
