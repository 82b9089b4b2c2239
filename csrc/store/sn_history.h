/* The causal history of each expert/layer's weights (store format 2).
 *
 * Every weights write has an identity (hlc, origin) and parents: the
 * layer's heads its writer had seen (written locally or received). A
 * write supersedes its parents; writes that did not see each other are
 * concurrent, however many versions each side wrote. A layer's heads are
 * the writes nothing known supersedes; its current write is the head the
 * resolver picks (or the merge of the heads). The head set depends only on
 * which writes a store has seen, never on their order, so stores that saw
 * the same writes agree.
 *
 * Version numbers are what users see: a write's rank in (hlc, origin)
 * order among every write of the layer the store knows, trimmed ones
 * included. The HLC orders a write after everything its writer had seen,
 * so ranks follow causality; a late concurrent write with an older HLC
 * shifts the numbers after it, and stores that know the same writes
 * number them the same.
 *
 * Keys (the weights record LK ID; history 01 'H' LK ID, heads 01 'T' LK ID,
 * the current write 01 'C' LK; LK = expert 0x00 layer(4 BE)): sn_keys.h. */
#ifndef SN_HISTORY_H
#define SN_HISTORY_H

#include "merge/sn_combine.h"
#include "store/sn_handle.h"

/* Concurrent heads a layer may have. A write names at most SN_MAX_PARENTS
 * parents (the wire's bound), but the heads are every write nothing known
 * supersedes: forty writers of one layer at once leave forty, and refusing
 * the thirty-third would stall its origin's log for good. Past
 * SN_MAX_PARENTS heads the current write is the resolver's pick (a merge
 * record names at most SN_MAX_PARENTS inputs), and a local write folds the
 * deepest heads it can name into its parents (sn_layer_before). */
#define SN_MAX_HEADS 512

/* The merge window (issue 17): a merge reads the records of writes less
 * than this many levels of depth below its deepest head, never deeper
 * (a base further down makes it the mean of the heads, on every node
 * alike), so a store that syncs may let a layer's records deeper than the
 * window below its newest write go (sn_trim.c) without two nodes ever
 * merging the same heads into different bytes. 128 levels: a mesh step
 * and its merge are about two, so a node some sixty steps behind still
 * merges exactly. Not less: a merge out of the window is the mean, and a
 * write built on it keeps that for good, so the window must pass what
 * loss and delay leave behind in a busy mesh (32 did not: four writers
 * building on their merges under 10% loss lost changes, spec 62). A
 * protocol constant: nodes with different windows would merge apart. */
#define SN_MERGE_WINDOW 128

enum {
    SN_HIST_HELD = 1,    /* this store holds the record (not trimmed, not only heard of) */
    SN_HIST_MERGE = 2,   /* a merge of concurrent heads */
    SN_HIST_TOMBSTONE = 4,   /* a delete of the layer (delete_expert): never has a record */
};

typedef struct sn_hist {
    sn_ident id;
    unsigned flags;
    uint32_t depth;                    /* 1 + the deepest parent's: the length of its history */
    size_t nparents;
    sn_ident parents[SN_MAX_PARENTS];  /* ascending */
} sn_hist;

/* History entries. get: SN_NOTFOUND when the store never heard of id. */
SN_HIDDEN int sn_hist_get(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                          sn_hist *h, sn_err *e);
SN_HIDDEN void sn_hist_put(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_hist *h);
SN_HIDDEN int sn_hist_decode(const void *v, size_t len, sn_hist *h, sn_err *e);

/* The layer's heads on disk, ascending (at most SN_MAX_HEADS). */
SN_HIDDEN int sn_heads_load(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *heads,
                            size_t *n, sn_err *e);

/* Add write h to the history in batch b: it supersedes its parents, and
 * becomes a head unless something known already superseded it. heads/n:
 * the layer's heads before (as loaded, or as the batch left them), updated
 * to the heads after. */
SN_HIDDEN int sn_hist_add(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                          const sn_hist *h, sn_ident *heads, size_t *n, sn_err *e);

/* The current write; SN_NOTFOUND when the layer has none. */
SN_HIDDEN int sn_current_get(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *id,
                             sn_err *e);
SN_HIDDEN void sn_current_put(sn_batch *b, const unsigned char *lk, size_t lklen,
                              const sn_ident *id);
/* Set the current write in b; a derived merge it replaces is deleted. */
SN_HIDDEN int sn_current_set(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                             const sn_ident *id, sn_err *e);
/* A write's version number: its rank, or for the derived current merge
 * (in no history) one past the last write. */
SN_HIDDEN int sn_version_of(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                            uint64_t *version, sn_err *e);

/* Version numbers: the rank of id (1-based); the write of rank v
 * (SN_NOTFOUND past the end); the number of writes. */
SN_HIDDEN int sn_hist_rank(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                           uint64_t *rank, sn_err *e);
SN_HIDDEN int sn_hist_count(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t *n,
                           sn_err *e);
SN_HIDDEN int sn_hist_nth(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t v,
                          sn_hist *h, sn_err *e);

/* Every history entry of a layer in rank order: fn returns non-zero to stop
 * (that value is returned). */
typedef int (*sn_hist_fn)(void *ud, uint64_t rank, const sn_hist *h, sn_err *e);
SN_HIDDEN int sn_hist_each(sn_store *s, const unsigned char *lk, size_t lklen, sn_hist_fn fn,
                           void *ud, sn_err *e);
/* The same from write from (whose rank is from_rank) on. */
SN_HIDDEN int sn_hist_each_from(sn_store *s, const unsigned char *lk, size_t lklen,
                                const sn_ident *from, uint64_t from_rank, sn_hist_fn fn, void *ud,
                                sn_err *e);

/* Merges (sn_merge.c). compatible: the views' weights, biases and shapes
 * agree. merge_heads: the merge of heads ids (ascending; their views v and
 * depths) written in batch b as a new write; heads/nheads updated; its
 * identity in out. */
SN_HIDDEN int sn_merge_compatible(const sn_weights_view *v, size_t n);
/* The identity a merge of heads (ascending) has, wherever it is made. */
SN_HIDDEN void sn_merge_ident(const sn_ident *heads, size_t n, sn_ident *out);
/* The merge record written in b (not in the history: derived, see
 * sn_merge.c). fresh: a write added in b, not on disk yet (or NULL), and
 * fresh_view its record when it is not one of the heads (or NULL).
 * SN_NOTFOUND when the heads' ancestry is not all known here yet: merging
 * then could give bytes another node would not, so the merge waits. */
SN_HIDDEN int sn_merge_heads(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                             const sn_ident *ids, sn_weights_view *v, const uint32_t *depths,
                             size_t n, const sn_hist *fresh, sn_weights_view *fresh_view,
                             sn_merge_rule rule, sn_ident *out, sn_err *e);
/* Make the layer's derived current merge (id) a replicated write in b: it
 * supersedes the heads it merged (a checkpoint pins it). */
SN_HIDDEN int sn_merge_materialize(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                                   const sn_ident *id, sn_err *e);
/* sn_hist_get, but fresh (if given) first. */
SN_HIDDEN int sn_hist_get_or(sn_store *s, const unsigned char *lk, size_t lklen,
                             const sn_ident *id, const sn_hist *fresh, sn_hist *h, sn_err *e);

/* After records were copied or lost wholesale (salvage): history flags
 * follow the records held, and a layer whose current write is gone makes its
 * newest held write current. */
SN_HIDDEN int sn_history_reconcile(sn_store *s, sn_err *e);

/* A new local write of the layer (sn_weights.c): its parents (the heads, or
 * the batch's own last write) and depth in h, and how many writes the store
 * knows; note_pending records it as the batch's last write of the layer.
 * *beside (may be NULL) is set when the write leaves other heads (more
 * than SN_MAX_PARENTS: it names only some). */
SN_HIDDEN int sn_layer_before(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                              sn_hist *h, uint64_t *known, int *beside, sn_err *e);
SN_HIDDEN int sn_note_pending(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_hist *h,
                              uint64_t version, sn_err *e);
/* Whether a checkpoint pins write id (the 'P' index, sn_trim.c). */
SN_HIDDEN int sn_write_pinned(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                              int *is_pinned, sn_err *e);

/* Tombstones (sn_delete.c). settle: after tombstone t joined the layer's
 * history (heads: the heads after), a layer whose every head is a tombstone
 * loses its current write, and the held, unpinned records of t's ancestors
 * go. buried: whether a write arriving late (id, not in the history yet) is
 * an ancestor of a known tombstone, so its record is not to be kept. */
SN_HIDDEN int sn_tomb_settle(sn_store *s, sn_batch *b, const unsigned char *lk, size_t lklen,
                             const sn_hist *t, const sn_ident *heads, size_t n, sn_err *e);
SN_HIDDEN int sn_tomb_buries(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                             int *buried, sn_err *e);

/* Every layer (LK) with weights this store holds, in key order, among the
 * layers whose LK starts with prefix (plen bytes; 0: all); per_expert: only
 * the first such layer of each expert. From the history index, never a
 * weight payload (sn_layers.c). fn returns non-zero to stop (returned). */
typedef int (*sn_layer_fn)(void *ud, const unsigned char *lk, size_t lklen, sn_err *e);
SN_HIDDEN int sn_held_layers(sn_store *s, const char *prefix, size_t plen, int per_expert,
                             sn_layer_fn fn, void *ud, sn_err *e);

#define TAG_HISTORY 'H'
#define TAG_HEAD 'T'
#define TAG_CURRENT 'C'

#endif
