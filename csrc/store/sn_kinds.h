/* The kinds of record the store keeps, one row each (sn_kinds.c): where a
 * kind lives, its record type (and so its schema, sn_schema_for), how its
 * key names it, whether it replicates, its timestamp field and the name
 * counts use. Verify, salvage, the replica check and the replication log
 * read this table; a new kind of record is a row here, its schema and its
 * docs.
 *
 * The record check is written once: sn_kind_check for a record of a kind,
 * which both a stored record (sn_record_check, from verify and salvage)
 * and a peer's (sn_replica_check) pass. */
#ifndef SN_KINDS_H
#define SN_KINDS_H

#include "store/sn_handle.h"

typedef struct sn_kind {
    int cf;                  /* its column family (CF_*) */
    const char *name;        /* "weights", "configs", ...: what counts call it */
    unsigned type;           /* SN_REC_*: the record type, and its schema */
    int replicated;          /* written to the replication log, taken from peers */
    const char *key_field;   /* the field that holds what the key names (NULL:
                              * weights, whose key sn_weights_verify checks) */
    const char *time_field;  /* the field that says when it was written, or NULL */
    /* The part of key k that key_field must hold, or the message of a
     * malformed key (NULL: any non-empty key is the name whole). */
    const char *(*key_name)(const unsigned char *k, size_t klen, const unsigned char **name,
                            size_t *len);
} sn_kind;

/* The row of column family cf; NULL for the default column family, which
 * holds no records of a kind (history, replication, markers). */
SN_HIDDEN const sn_kind *sn_kind_of(int cf);

/* The checks one record of kind kd under key k passes on its own: the key
 * parses, the record decodes whole (a weights record with its payload and
 * CRC), has the kind's type and no payload unless weights, and the key
 * names it. With fields (and arena a), the fields are left there; a
 * weights record is then decoded a second time for them. */
SN_HIDDEN int sn_kind_check(const sn_kind *kd, sn_codec_ctx *x, const unsigned char *k, size_t klen,
                            const char *val, size_t vlen, sn_arena *a, sn_value *fields,
                            sn_err *e);

/* A stored entry of column family cf (not the default): a record of its
 * kind (sn_kind_check), or an entry of the checkpoints' pin index. */
SN_HIDDEN int sn_record_check(sn_codec_ctx *x, int cf, const unsigned char *k, size_t klen,
                              const char *val, size_t vlen, sn_arena *a, sn_value *fields,
                              sn_err *e);

#endif
