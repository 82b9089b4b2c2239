/* Helpers over RocksDB's C API shared by the storage files (sn_rocks.c). */
#ifndef SN_ROCKS_H
#define SN_ROCKS_H

#include "store/sn_handle.h"

SN_HIDDEN int sn_rocks_err(sn_err *e, char *err, const char *what);

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
SN_HIDDEN int sn_check_writable(sn_store *s, sn_err *e);
/* A problem report entry { where, error } (and backup = id when id >= 0),
 * its strings copied into a. */
SN_HIDDEN int sn_problem_value(sn_arena *a, const char *where, const char *error, int64_t backup,
                               sn_value *out, sn_err *e);
/* A malloc'd copy of the value at key, or SN_NOTFOUND. */
SN_HIDDEN int sn_get_copy(sn_store *s, int cf, const unsigned char *k, size_t klen, sn_buf *out,
                          sn_err *e);

#endif
