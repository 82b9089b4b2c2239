/* Batches (sn_batch.c): a temporary batch when the caller gave none, and
 * the layers' pending writes a batch holds. */
#ifndef SN_BATCH_H
#define SN_BATCH_H

#include "store/sn_handle.h"

SN_HIDDEN sn_batch *sn_batch_or_temp(sn_store *s, sn_batch *b, sn_err *e);
SN_HIDDEN int sn_batch_finish(sn_batch *b, sn_batch *given, int rc, sn_err *e);
/* The layer's last write in batch b, or NULL. */
SN_HIDDEN sn_pending *sn_pending_find(sn_batch *b, const unsigned char *lk, size_t lklen);

#endif
