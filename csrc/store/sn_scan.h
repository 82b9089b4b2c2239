/* A walk over one column family that goes on past damage (sn_scan.c), for
 * verify and salvage. Store-internal. */
#ifndef SN_SCAN_H
#define SN_SCAN_H

#include "codec/sn_entry.h"
#include "store/sn_handle.h"

typedef struct sn_scan_cb {
    void *ctx;
    /* each readable record, in key order; non-zero stops the walk */
    int (*record)(void *ctx, int cf, const unsigned char *k, size_t klen, const char *v,
                  size_t vlen, sn_err *e);
    /* an unreadable stretch: after the key after (NULL: from the start),
     * up to the next readable key (NULL: to the end); what lies between
     * is lost. error is RocksDB's message. */
    int (*damage)(void *ctx, int cf, const unsigned char *after, size_t alen,
                  const unsigned char *next, size_t nlen, const char *error, sn_err *e);
} sn_scan_cb;

/* Walks cf from `from` (NULL: the start) to before `to` (NULL: the end),
 * with RocksDB's block and blob checksums on or off. With them off the
 * walk reaches blobs that fail RocksDB's CRC; every weight record carries
 * its own CRC, which the caller checks. */
SN_HIDDEN int sn_scan_cf(sn_store *s, int cf, int checksums, const unsigned char *from,
                         size_t from_len, const unsigned char *to, size_t to_len,
                         const sn_scan_cb *cb, sn_err *e);

/* "records between <after> and <next> are unreadable: <error>" in buf. */
SN_HIDDEN void sn_stretch_text(int cf, const unsigned char *after, size_t alen,
                               const unsigned char *next, size_t nlen, const char *error,
                               char *buf, size_t cap);

/* A stretch of weights that failed on a blob is walked again with
 * checksums off (each record has its own CRC, checked by cb); any other
 * stretch is left alone: a table block that failed its checksum must not
 * be parsed (RocksDB asserts on some corrupt blocks instead of reporting
 * them). */
SN_HIDDEN int sn_scan_blob_stretch(sn_store *s, int cf, const unsigned char *after, size_t alen,
                                   const unsigned char *next, size_t nlen, const char *error,
                                   const sn_scan_cb *cb, sn_err *e);

/* For a stretch of weights lost to a blob file RocksDB cannot read: calls
 * fn for every live record in (after, next) that a point read cannot
 * return, with the blob file (name only) that holds it and RocksDB's error
 * (sn_blob_lost.c). A NULL bound is open. */
typedef void (*sn_blob_lost_fn)(void *ctx, const char *file, const unsigned char *k, size_t klen,
                                const char *error);
SN_HIDDEN int sn_blob_lost(sn_store *s, const unsigned char *after, size_t alen,
                           const unsigned char *next, size_t nlen, sn_blob_lost_fn fn, void *ctx);

#endif
