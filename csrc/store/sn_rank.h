/* The rank cache (sn_rank.c). */
#ifndef SN_RANK_H
#define SN_RANK_H

#include "store/sn_handle.h"

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
/* The heads sn_hist_add left lk with in a batch of a peer's writes, and
 * the write it added: when it was the batch's one change of lk's heads,
 * commit keeps them, so a catch-up of one layer does not walk its deleted
 * head markers per write; the count and a cached version are kept up to
 * date from the writes added (sn_rank.c). */
SN_HIDDEN void sn_rank_heads_after(sn_batch *b, const unsigned char *lk, size_t lklen,
                                   const sn_ident *heads, size_t n, const sn_ident *added);
/* A trim of a peer's batch left the first write held at floor (of number
 * rank, counted before the batch): kept at commit while every write the
 * batch added sorts after it (so the number still holds). */
SN_HIDDEN void sn_rank_floor_after(sn_batch *b, const unsigned char *lk, size_t lklen,
                                   const sn_ident *floor, uint64_t rank);
/* A local write of lk that failed half-way: its slot goes at commit. */
SN_HIDDEN void sn_rank_taint(sn_batch *b, const unsigned char *lk, size_t lklen);
SN_HIDDEN void sn_rank_commit(sn_batch *b, int ok);
SN_HIDDEN void sn_rank_batch_free(sn_batch *b);
SN_HIDDEN void sn_rank_clear(sn_store *s);

#endif
