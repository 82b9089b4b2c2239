/* A replication log entry: one encoder and one decoder for both places an
 * entry lives, so the log on disk and the P2P wire cannot drift apart.
 *
 * An entry names a record by (cf, key) and identity (hlc, origin), and the
 * identity it replaced (prev): the causal predecessor its writer saw. The
 * map is a record of schema sn_schema_log_entry in two forms:
 *
 *   disk  kind cf key hlc [prev_hlc prev_origin] [parents]
 *         (the entry's origin and seq are its log key, never repeated;
 *         parents: a weights write's causal predecessors, SN_ID_LEN bytes
 *         each, ascending) [tomb]
 *         (tomb: 1 on a weights DEL that is a tombstone; a trimmed write
 *         read back as a DEL has none, so the two are never confused)
 *   wire  the disk fields + origin seq len [total off]
 *         len: bytes of the record this entry brings in the message's
 *         payload; total/off: the entry is one chunk, at byte off of a
 *         record of total bytes.
 *
 * The decoder holds every rule any reader had: known kind, a replicated
 * column family, a key of 1..SN_REPL_KEY_MAX bytes, a predecessor given
 * whole or not at all, origins of exactly SN_ORIGIN_LEN printable bytes, no
 * wire fields on disk, and on the wire seq >= 1, total and off together, a
 * payload exactly for puts. Bytes from disk and from peers alike fail with
 * SN_ECORRUPT. */
#ifndef SN_ENTRY_H
#define SN_ENTRY_H

#include "codec/sn_record.h"

enum { SN_KIND_PUT = 0, SN_KIND_DEL = 1, SN_KIND_SKIP = 2 };

/* The column families an entry may name. They are the store's column
 * family indexes and part of the format (peers exchange them); the store
 * asserts that its indexes agree. */
enum {
    SN_ENTRY_CF_WEIGHTS = 1, SN_ENTRY_CF_CONFIG = 2, SN_ENTRY_CF_STATE = 3,
    SN_ENTRY_CF_CHECKPOINTS = 4, SN_ENTRY_CF_METRICS = 5
};

#define SN_ORIGIN_LEN 36
#define SN_ID_LEN (8 + SN_ORIGIN_LEN)       /* an identity as bytes: hlc (BE), origin */
/* the longest record key: weights, expert 0x00 layer(4) identity */
#define SN_REPL_KEY_MAX (SN_MAX_ID_LEN + 1 + 4 + SN_ID_LEN)
/* The most writes one weights write can supersede: the heads its writer
 * saw. A layer with more concurrent heads is merged or written first. */
#define SN_MAX_PARENTS 32

typedef struct sn_ident {
    uint64_t hlc;
    char origin[SN_ORIGIN_LEN + 1];   /* "" = none */
} sn_ident;

/* An identity as SN_ID_LEN bytes, so that byte order is (hlc, origin)
 * order; and back (SN_ECORRUPT unless the origin is printable). */
SN_HIDDEN void sn_ident_put(unsigned char *p, const sn_ident *id);
SN_HIDDEN int sn_ident_get(const unsigned char *p, sn_ident *id, sn_err *e);
/* (hlc, origin) order: <0, 0, >0. */
SN_HIDDEN int sn_ident_cmp(const sn_ident *a, const sn_ident *b);

typedef struct sn_entry {
    char origin[SN_ORIGIN_LEN + 1];
    uint64_t seq;
    unsigned kind;
    int cf;                            /* one of SN_ENTRY_CF_* */
    unsigned char key[SN_REPL_KEY_MAX];
    size_t klen;
    uint64_t hlc;
    sn_ident prev;                     /* configs, checkpoints: the record replaced */
    size_t nparents;                   /* weights: the layer's writes this one supersedes */
    uint32_t depth;                    /* weights: 1 + the deepest parent's (0: not given) */
    sn_ident parents[SN_MAX_PARENTS];
    int tomb;                          /* weights, kind DEL: a tombstone (delete_expert) */
} sn_entry;

/* What only the wire form carries besides origin and seq. */
typedef struct sn_entry_wire {
    size_t len;     /* record bytes in the payload: 0 unless a put */
    size_t total;   /* 0: len is the whole record; else a chunk of total bytes */
    size_t off;     /* a chunk's offset in its record */
} sn_entry_wire;

/* 1 when p holds len bytes that are all printable ASCII. */
SN_HIDDEN int sn_origin_ok(const void *p, size_t len);

/* 1 when cf is one of SN_ENTRY_CF_*. */
SN_HIDDEN int sn_entry_cf_known(int64_t cf);

/* The entry as a record map in a (key and origins copied into a, so en
 * need not outlive it). wire NULL: the disk form; else the wire form. */
SN_HIDDEN int sn_entry_map(const sn_entry *en, const sn_entry_wire *wire, sn_arena *a,
                           sn_value *out, sn_err *e);

/* Check a schema-checked entry map (as sn_record_decode leaves it, also
 * inside a message's entry list) and fill en. wire NULL: the disk form,
 * en->origin and en->seq left empty for the caller to take from the log
 * key; else the wire form, its extra fields in *wire. */
SN_HIDDEN int sn_entry_parse(const sn_value *m, sn_entry *en, sn_entry_wire *wire, sn_err *e);

/* The disk form as a whole record (SN_REC_LOG, no payload) and back. */
SN_HIDDEN int sn_entry_encode(const sn_entry *en, sn_buf *out, sn_err *e);
SN_HIDDEN int sn_entry_decode(const void *data, size_t len, sn_entry *en, sn_err *e);

#endif
