/* Internals shared by the replication files (sn_replica_log.c,
 * sn_replica_apply.c, sn_replica_verify.c, sn_replica_conflicts.c).
 *
 * Their keys (01 'L', 'X', 'S', 'K' in the default column family) are
 * built and parsed in sn_keys.c. */
#ifndef SN_REPLICA_INT_H
#define SN_REPLICA_INT_H

#include "store/sn_replica.h"
#include "store/sn_handle.h"

/* Replication hooks (sn_replica_log.c). A local write of a replicated record
 * notes a log entry in its batch; the entry gets its sequence number and
 * joins the batch at commit, so the log and the data never disagree and a
 * dropped batch leaves no gap in the log. prev_origin NULL = no predecessor. */
SN_HIDDEN int sn_replica_open(sn_store *s, sn_err *e);
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
/* Called by sn_batch_commit around rocksdb_write. */
SN_HIDDEN void sn_replica_precommit(sn_batch *b, uint64_t *saved_seq);
SN_HIDDEN void sn_replica_postcommit(sn_batch *b, int ok, uint64_t saved_seq);
SN_HIDDEN void sn_replica_batch_free(sn_batch *b);


/* Identity (and, for heads, version and timestamp) of a stored record;
 * h points into bytes. */
SN_HIDDEN int sn_record_head(const unsigned char *bytes, size_t len, int cf, sn_head *h,
                             sn_err *e);

/* 1 when head a beats b under r (ties and failures: latest hlc, then origin). */
SN_HIDDEN int sn_resolver_beats(const sn_resolver *r, const sn_head *a, const sn_head *b);
/* Apply a peer's weights entry in batch b (sn_replica_weights.c). */
SN_HIDDEN int sn_apply_weights(sn_store *s, sn_batch *b, const sn_entry *en,
                               const unsigned char *bytes, size_t len, const sn_resolver *r,
                               sn_apply_result *res, int defer, sn_err *e);

#endif
