/* Internals shared by the replication files (sn_replica_log.c,
 * sn_replica_apply.c, sn_replica_verify.c, sn_replica_conflicts.c).
 *
 * Default column family key ranges (0x01 keeps them apart from the plain
 * "synaptic.origin" key):
 *   01 'L' origin(36) seq(8 BE)                     -> log entry record
 *   01 'X' cf(1) klen(2 BE) key hlc(8 BE) origin(36) -> a conflict: record bytes
 *   01 'S' cf(1) klen(2 BE) key hlc(8 BE) origin(36) -> "" (superseded identity)
 *   01 'K' origin(36) seq(8 BE)                     -> "" (a logged skip, to fetch again)
 * and a layer's history, heads and current write ('H', 'T', 'C': sn_history.h). */
#ifndef SN_REPLICA_INT_H
#define SN_REPLICA_INT_H

#include "store/sn_replica.h"
#include "store/sn_store_int.h"

#define TAG_LOG 'L'
#define TAG_CONFLICT 'X'
#define TAG_SUPERSEDED 'S'
#define TAG_SKIPPED 'K'   /* 01 'K' origin seq -> "": a logged skip (kind not synced then) */
#define LOG_KEY_LEN (2 + SN_ORIGIN_LEN + 8)
#define IDKEY_MAX (5 + SN_REPL_KEY_MAX + 8 + SN_ORIGIN_LEN)

SN_HIDDEN size_t sn_log_key(unsigned char *k, const char *origin, uint64_t seq);
/* The common prefix of the conflict or superseded keys of one record key. */
SN_HIDDEN size_t sn_rec_prefix(unsigned char *k, char tag, int cf, const unsigned char *key,
                               size_t klen);
SN_HIDDEN size_t sn_ident_key(unsigned char *k, char tag, int cf, const unsigned char *key,
                              size_t klen, const sn_ident *id);
SN_HIDDEN int sn_same_ident(const sn_ident *a, const sn_ident *b);

/* A malloc'd copy of the value at key, or SN_NOTFOUND. */
SN_HIDDEN int sn_repl_get(sn_store *s, int cf, const unsigned char *k, size_t klen, sn_buf *out,
                          sn_err *e);
/* Identity (and, for heads, version and timestamp) of a stored record;
 * h points into bytes. */
SN_HIDDEN int sn_record_head(const unsigned char *bytes, size_t len, int cf, sn_head *h,
                             sn_err *e);

/* 1 when head a beats b under r (ties and failures: latest hlc, then origin). */
SN_HIDDEN int sn_resolver_beats(const sn_resolver *r, const sn_head *a, const sn_head *b);
/* Apply a peer's weights entry in batch b (sn_replica_weights.c). */
SN_HIDDEN int sn_apply_weights(sn_store *s, sn_batch *b, const sn_entry *en,
                               const unsigned char *bytes, size_t len, const sn_resolver *r,
                               sn_apply_result *res, sn_err *e);

#endif
