/* The storage side of replication: a change log, remote apply with
 * deterministic conflict resolution, and the conflict store.
 *
 * Every replicated write (weights, configs, checkpoints and checkpoint
 * deletions) appends one log entry keyed (origin, seq) in the default
 * column family, in the same RocksDB batch as the record itself. An entry
 * names its record by (cf, key) and identity (hlc, origin), and the identity
 * it replaced (prev): the causal predecessor the writer saw at that key.
 *
 * A node's digest is therefore a version vector {origin -> highest seq},
 * contiguous because entries of one origin are applied in seq order, and a
 * sync response is exactly the entries with a higher seq than the asker has.
 * Records travel as their stored bytes, so every node holds byte-identical
 * records.
 *
 * Merge rule, per key: the heads are the records at that key that no known
 * entry names as prev. A new entry removes its prev from the heads (and
 * remembers it as superseded, so a late copy of it never comes back), then
 * joins them. The winner among the heads (by the resolver) is the current
 * record; the other heads are conflicts, kept under their own key range and
 * readable with store:conflicts. The head set depends only on which entries
 * a node has seen, never on their order, so nodes that saw the same entries
 * hold the same records. */
#ifndef SN_REPLICA_H
#define SN_REPLICA_H

#include "codec/sn_entry.h"
#include "merge/sn_combine.h"
#include "store/sn_store.h"

/* A candidate for the current record at one key. */
typedef struct sn_head {
    sn_ident id;
    int cf;
    int local;              /* written by this store */
    uint64_t version;       /* weights: the length of its history (depth); 0 for other records */
    double timestamp;       /* the record's wall-clock time, if it has one */
    const unsigned char *bytes;
    size_t len;
    int where;              /* private: 0 new, 1 current, 2 conflict */
} sn_head;

typedef enum {
    SN_RESOLVE_LATEST = 0,      /* higher hlc; ties by origin */
    SN_RESOLVE_HIGHEST_VERSION, /* higher weights version, then latest */
    SN_RESOLVE_PREFER_LOCAL,    /* this store's own record, then latest: does not converge */
    SN_RESOLVE_CUSTOM,
    /* weights: concurrent heads of one shape are combined element-wise into
     * a new current write (sn_merge.c); other records: latest */
    SN_RESOLVE_MERGE
} sn_strategy;

typedef struct sn_resolver {
    sn_strategy strategy;
    /* CUSTOM: 1 when a beats b, 0 when b beats a, -1 when it failed
     * (latest decides). Heads are offered in a canonical order. */
    int (*fn)(void *ud, const sn_head *a, const sn_head *b);
    void *ud;
    /* MERGE: how heads combine (sn_combine.h); rule_fn (if set) picks per
     * expert/layer: a rule, or -1 for merge_rule. Called before any head is
     * loaded, so it may run Lua code. */
    sn_merge_rule merge_rule;
    int (*rule_fn)(void *ud, const char *expert, size_t len, uint32_t layer);
} sn_resolver;

/* The strategy table (sn_strategy.c): one row per conflict strategy, in the
 * order core.p2p_limits.conflict_strategies lists the named ones. picks:
 * 1 when head a beats b, 0 when b beats a, -1 to leave it to latest;
 * combines: weights heads of one shape are merged (sn_merge.c) by the
 * resolver's rule instead of picked. A new strategy is a new row. */
typedef struct sn_strategy_row {
    const char *name;       /* NULL: not chosen by name (a Lua function) */
    sn_strategy strategy;
    int (*picks)(const sn_resolver *r, const sn_head *a, const sn_head *b);
    int combines;
} sn_strategy_row;

SN_HIDDEN extern const sn_strategy_row sn_strategy_table[];
SN_HIDDEN extern const size_t sn_strategy_count;
/* The row of strategy s (latest_timestamp's for an unknown one). */
SN_HIDDEN const sn_strategy_row *sn_strategy_of(sn_strategy s);
/* The rule r merges the layer lk (expert 0x00 layer(4 BE)) by. */
SN_HIDDEN sn_merge_rule sn_resolver_rule(const sn_resolver *r, const unsigned char *lk, size_t lklen);

typedef struct sn_apply_result {
    int duplicate;          /* the entry was already in the log */
    int stored;             /* the record became a head */
    int conflicts;          /* conflict versions newly kept */
    int merged;             /* weights heads merged into a new write */
    int deferred;           /* weights: the current write is left to sn_replica_settle (layer, lklen) */
    size_t lklen;
    unsigned char layer[SN_MAX_ID_LEN + 1 + 4];   /* expert 0x00 layer(4 BE) */
    int collision;          /* another record was already logged under this (origin, seq) */
} sn_apply_result;

typedef struct sn_vv_item {
    char origin[SN_ORIGIN_LEN + 1];
    uint64_t seq;
} sn_vv_item;

typedef struct sn_vv {
    sn_vv_item *items;      /* malloc'd, sorted by origin; free() it */
    size_t n;
} sn_vv;

/* A kept conflict: its identity and its record, decoded and schema-checked
 * (into the arena given). A weights record's payload size agrees with its
 * counts; load it with sn_record_load. */
typedef struct sn_conflict {
    sn_ident id;
    sn_record rec;
} sn_conflict;

SN_HIDDEN uint64_t sn_replica_local_seq(const sn_store *s);
SN_HIDDEN int sn_replica_vector(sn_store *s, sn_vv *out, sn_err *e);
/* Whether the log holds writes of another origin than this store's: it
 * syncs, so its merges may need a layer's recent records (sn_trim.c keeps
 * the merge window then). */
SN_HIDDEN int sn_replica_has_remote(sn_store *s);
SN_HIDDEN int sn_replica_have(sn_store *s, const char *origin, uint64_t *seq, sn_err *e);

/* Entry (origin, seq) and its record's stored bytes (malloc'd, or NULL).
 * A put whose record this store no longer holds (replaced, trimmed) comes
 * back as a delete: the entry still carries its prev. SN_NOTFOUND if absent. */
SN_HIDDEN int sn_replica_read(sn_store *s, const char *origin, uint64_t seq, sn_entry *en,
                              sn_buf *bytes, sn_err *e);

/* Check a peer's record bytes against the entry that carries them: decodes
 * the record fully (CRC included) and checks it belongs under the key and
 * has the entry's identity. SN_ECORRUPT when not. s (may be NULL) lends its
 * codec state. */
SN_HIDDEN int sn_replica_check(sn_store *s, const sn_entry *en, const unsigned char *bytes,
                               size_t len, sn_err *e);

/* Skips this store logged (up to max) whose column family is in the bit
 * set cfs (1 << cf): entries to fetch again once their kind is synced. */
SN_HIDDEN int sn_replica_skipped(sn_store *s, unsigned cfs, sn_vv_item *out, size_t max, size_t *n,
                                 sn_err *e);
/* Missing seqs in the middle of an origin's log become skips marked for
 * refetch, so peers fill them (a salvaged copy); *filled: how many. */
SN_HIDDEN int sn_replica_fill_gaps(sn_store *s, uint64_t *filled, sn_err *e);
/* The logged entry (origin, seq), without its record; SN_NOTFOUND if absent. */
SN_HIDDEN int sn_replica_logged(sn_store *s, const char *origin, uint64_t seq, sn_entry *en,
                                sn_err *e);

/* Apply a peer's entry (already checked) in one atomic batch. A skip is
 * logged with a marker; the same entry brought whole later fills it. */
SN_HIDDEN int sn_replica_apply(sn_store *s, const sn_entry *en, const unsigned char *bytes,
                               size_t len, const sn_resolver *r, sn_apply_result *res,
                               sn_err *e);
/* As sn_replica_apply, but a weights write leaves its layer's current
 * write as it was (res->deferred, res->layer): a catch-up that brings many
 * writes of one layer merges its heads once, at sn_replica_settle, not
 * once per write. Until then the layer's current write is the one before
 * the batch; after a crash in between, sn_replica_settle_all puts it right. */
SN_HIDDEN int sn_replica_apply_deferred(sn_store *s, const sn_entry *en, const unsigned char *bytes,
                                        size_t len, const sn_resolver *r, sn_apply_result *res,
                                        sn_err *e);
/* The layer's current write from its heads now (merged, or the resolver's
 * pick), in one batch. The resolver may run Lua code. */
SN_HIDDEN int sn_replica_settle(sn_store *s, const unsigned char *lk, size_t lklen, const sn_resolver *r,
                                sn_err *e);
/* sn_replica_settle every layer with several heads, or whose current write
 * is not its one head: what a crash between a deferred apply and its
 * settle left. */
SN_HIDDEN int sn_replica_settle_all(sn_store *s, const sn_resolver *r, sn_err *e);

/* The conflict versions kept for one layer's weights, and for one
 * expert's config, in key then identity order. */
SN_HIDDEN int sn_weight_conflicts(sn_store *s, const char *expert, size_t len, int64_t layer,
                                  sn_arena *a, sn_conflict **out, size_t *n, sn_err *e);
SN_HIDDEN int sn_config_conflicts(sn_store *s, const char *expert, size_t len, sn_arena *a,
                                  sn_conflict **out, size_t *n, sn_err *e);

/* verify(): check one key of the default column family. Keys outside the
 * replication ranges are left alone (*mine = 0). Log entries must decode,
 * name a replicated column family and a sane key, and each origin's seqs
 * must run 1, 2, 3... without a gap (the state carries the walk, in key
 * order); conflict records must decode as their column family's record
 * with the identity in their key; superseded markers must be empty. */
typedef struct sn_replica_walk {
    char origin[SN_ORIGIN_LEN];
    uint64_t seq;
    int started;
} sn_replica_walk;

SN_HIDDEN int sn_replica_verify(const unsigned char *k, size_t klen, const char *val, size_t vlen,
                                sn_replica_walk *w, int *mine, sn_err *e);

/* Tests only: write (or delete, when val is NULL) a raw key of the
 * replication ranges (keys starting with 0x01), to check that verify()
 * catches what a bug or a bad disk could leave there. */
SN_HIDDEN int sn_replica_raw(sn_store *s, const unsigned char *k, size_t klen, const char *val,
                             size_t vlen, sn_err *e);


#endif
