/* Weights records shared inside the store: reads by identity, trimming,
 * pins, and the full decode verify uses. */
#ifndef SN_WEIGHTS_INT_H
#define SN_WEIGHTS_INT_H

#include "store/sn_handle.h"

/* Keep the newest max_weight_versions records of a layer (layer key lk);
 * never a head, a pinned write, or the base the heads' merge needs. */
/* A peer's write (fresh, in the batch) applied to lk left it with heads
 * (n): records of depth at or below the merge window under the deepest
 * head, and past max_weight_versions, go (a node that only receives a
 * layer keeps what merges read, not all it was sent). */
SN_HIDDEN int sn_trim_received(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                               const sn_ident *heads, size_t n, const struct sn_hist *fresh, sn_err *e);
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
/* Decode the weights record val under key into v (its arena set up by the
 * caller): SN_ECORRUPT, naming the record, unless it is the write its key
 * names. */
SN_HIDDEN int sn_weights_view_decode(sn_weights_view *v, const char *val, size_t len,
                                     const unsigned char *key, size_t klen, sn_err *e);
/* A view of a weights record held in memory (bytes must outlive it; the
 * version is left 0); release it. */
SN_HIDDEN int sn_weights_view_from(sn_weights_view *v, const void *bytes, size_t len,
                                   const unsigned char *key, size_t klen, sn_err *e);
/* Pin index entries whose checkpoint is gone are dropped (salvage). */
SN_HIDDEN int sn_checkpoint_reconcile(sn_store *s, sn_err *e);
/* The record a checkpoint pin (a sn_schema_pin map) names; release it. */
SN_HIDDEN int sn_pinned_weights(sn_store *s, const sn_value *pin, sn_weights_view *v, sn_err *e);
/* Decode one stored weight value fully (payload and checksum included),
 * with codec state x (NULL: made for the call). */
SN_HIDDEN int sn_weights_verify(sn_codec_ctx *x, const unsigned char *key, size_t klen,
                                const char *val, size_t vlen, sn_err *e);

#endif
