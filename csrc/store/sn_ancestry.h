/* Ancestry queries for merges (sn_merge.c), answered by walking a layer's
 * history from the writes asked about toward the root, deepest first, and
 * stopping as soon as the answer is known: their cost follows what changed
 * since the writes' common base, not the length of the history (issue 17;
 * walking every ancestor to the root made a merge 150 ms at 8k versions).
 *
 * A write's depth is 1 + its deepest parent's (its writer's count, the same
 * on every node), so taking the deepest undone write first means every
 * descendant of a write in the walk was taken before it: what a write is
 * reachable from is final when it is taken. This is git's merge-base walk
 * with the generation number as the key, which makes it exact. Ties are
 * taken in ascending identity order, so every node that knows the same
 * history walks it the same way and gets the same answer. */
#ifndef SN_ANCESTRY_H
#define SN_ANCESTRY_H

#include "store/sn_history.h"

typedef enum sn_anc_status {
    SN_ANC_DONE = 0,        /* answered */
    SN_ANC_NONE,            /* no such write (the heads share no ancestor) */
    SN_ANC_UNKNOWN,         /* the walk reached a write this store never heard of */
    SN_ANC_TOO_LONG,        /* the walk passed SN_ANC_MAX_WRITES, or depths are
                             * inconsistent (a parent not shallower than its child) */
} sn_anc_status;

/* Writes a walk may visit: past it the answer would cost more than it is worth. */
#define SN_ANC_MAX_WRITES 65536

/* A write the walk took, with what its history entry says. */
typedef struct sn_anc_write {
    sn_ident id;
    unsigned flags;              /* SN_HIST_* */
    uint32_t depth;
    size_t nparents;
    sn_ident parent;             /* the first parent (when nparents > 0) */
} sn_anc_write;

/* The deepest common strict ancestor of writes ids (n >= 2, at most
 * SN_MAX_PARENTS; ties: the lowest identity), in *out. fresh: a write not
 * on disk yet (or NULL). */
SN_HIDDEN int sn_anc_deepest_common(sn_store *s, const unsigned char *lk, size_t lklen,
                                    const sn_ident *ids, size_t n, const sn_hist *fresh,
                                    sn_anc_write *out, sn_anc_status *st, sn_err *e);

/* The writes ids (n of them) and their ancestors that base has not seen
 * (base and its ancestors left out), ascending by identity, in *out (*nout
 * of them; free with free()). */
SN_HIDDEN int sn_anc_unseen(sn_store *s, const unsigned char *lk, size_t lklen,
                            const sn_ident *ids, size_t n, const sn_ident *base,
                            const sn_hist *fresh, sn_anc_write **out, size_t *nout,
                            sn_anc_status *st, sn_err *e);

/* The maximal common ancestors of the group ids (n writes, with everything
 * they have seen: the group itself counts) and write last (its strict
 * ancestors): common ones no other common one descends from, ascending by
 * identity, in *out (*nout; free with free()). None: SN_ANC_DONE, *nout 0. */
SN_HIDDEN int sn_anc_bases(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                           size_t n, const sn_ident *last, const sn_hist *fresh, sn_ident **out,
                           size_t *nout, sn_anc_status *st, sn_err *e);

#endif
