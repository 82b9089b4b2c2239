/* Record schemas: one table per record type drives validation, encoding
 * and decoding, so adding a record type (or a P2P message) means adding a
 * table, not another pair of hand-written functions.
 *
 * In memory a record is an SN_MAP keyed by field name (what Lua sees);
 * on disk it is a msgpack array in schema order (names are not repeated in
 * every record, and an older reader can ignore trailing fields it does not
 * know). */
#ifndef SN_SCHEMA_H
#define SN_SCHEMA_H

#include "base/sn_value.h"

typedef enum {
    SN_F_UINT,   /* integer >= 0 */
    SN_F_INT,
    SN_F_NUM,    /* finite number */
    SN_F_STR,    /* any string (bounded only by the record cap) */
    SN_F_ID,     /* non-empty string, <= SN_MAX_ID_LEN bytes, no NUL */
    SN_F_BOOL,
    SN_F_ANY,    /* any value, depth-bounded */
    SN_F_LIST,   /* array of `elem` (or of `sub` objects when elem == SN_F_OBJ) */
    SN_F_OBJ     /* a nested record of schema `sub` */
} sn_ftype;

typedef struct sn_schema sn_schema;

typedef struct sn_field {
    const char *name;
    sn_ftype type;
    int required;
    sn_ftype elem;            /* for SN_F_LIST */
    const sn_schema *sub;     /* for SN_F_OBJ, or SN_F_LIST of SN_F_OBJ */
} sn_field;

struct sn_schema {
    const char *name;         /* used in error messages: "config", "checkpoint" */
    size_t nfields;
    const sn_field *fields;
};

/* Record types: the tag in every envelope and wire frame. Never renumber. */
typedef enum {
    SN_REC_WEIGHTS = 1,
    SN_REC_CONFIG = 2,
    SN_REC_CHECKPOINT = 3,
    SN_REC_STATE = 4,
    SN_REC_METRIC = 5,
    /* P2P (sn_entry.c; sync/sn_sync_build.c, sn_sync_recv.c): a replication log entry, then the wire
     * messages, which travel in the same envelope so they get the same
     * bounds checks, schema checks and CRC as records on disk. */
    SN_REC_LOG = 6,
    SN_MSG_WEIGHT_UPDATE = 7,
    SN_MSG_CONFIG_UPDATE = 8,
    SN_MSG_CHECKPOINT_BROADCAST = 9,
    SN_MSG_SYNC_REQUEST = 10,
    SN_MSG_SYNC_RESPONSE = 11,
    SN_MSG_HEARTBEAT = 12,
    SN_REC_COUNT
} sn_rectype;

SN_HIDDEN const sn_schema *sn_schema_for(unsigned type);

extern SN_HIDDEN const sn_schema sn_schema_weights;
extern SN_HIDDEN const sn_schema sn_schema_config;
extern SN_HIDDEN const sn_schema sn_schema_checkpoint;
extern SN_HIDDEN const sn_schema sn_schema_state;
extern SN_HIDDEN const sn_schema sn_schema_metric;
extern SN_HIDDEN const sn_schema sn_schema_pin;
extern SN_HIDDEN const sn_schema sn_schema_log_entry;

/* Validate map against schema: required fields present, types right,
 * unknown fields refused. Integral floats are accepted for integer fields
 * and normalised in place (the map is the caller's, built for this call).
 * Errors are SN_EARG when `from_user`, SN_ECORRUPT otherwise, and name the
 * field path ("checkpoint.expert_states[2].expert_id"). */
SN_HIDDEN int sn_schema_check(const sn_schema *s, sn_value *map, int from_user,
                              sn_err *e);

/* Field index by name, or -1. */
SN_HIDDEN int sn_schema_index(const sn_schema *s, const char *name);

/* Build a record map holding every field of s, each nil (nil = absent). */
SN_HIDDEN int sn_record_map(const sn_schema *s, sn_arena *a, sn_value *out,
                            sn_err *e);
/* Set a field of a map built by sn_record_map; 0, or -1 if not a field. */
SN_HIDDEN int sn_map_set(sn_value *map, const char *key, sn_value v);

#endif
