/* Every key of the store: where each lives, and how it is built, parsed
 * and printed (sn_keys.c), as LevelDB's dbformat keeps its keys.
 *
 * Column families and their keys (LK = the layer key, expert 0x00
 * layer(4 BE); ID = SN_ID_LEN bytes: hlc(8 BE) origin(36)):
 *   neural_weights  LK ID                       -> weights record (format 2)
 *                   expert 0x00 layer(4) version(8 BE)  (format 1, upgraded on open)
 *   expert_config   expert                      -> config record
 *   system_state    key                         -> state record
 *   checkpoints     'C' id                      -> checkpoint record
 *                   'P' weights-key id          -> "" (pin index)
 *   metrics         name 0x00 ts(8 BE) seq(8 BE) -> metric record
 *   default         01 'H' LK ID      -> history: flags, depth, parents (sn_history.h)
 *                   01 'T' LK ID      -> "" (a head)
 *                   01 'C' LK         -> ID of the current write
 *                   01 'L' origin(36) seq(8 BE)  -> replication log entry
 *                   01 'X' cf(1) klen(2 BE) key hlc(8 BE) origin(36) -> a conflict
 *                   01 'S' cf(1) klen(2 BE) key hlc(8 BE) origin(36) -> "" (superseded)
 *                   01 'K' origin(36) seq(8 BE)  -> "" (a logged skip, to fetch again)
 *                   "synaptic.origin", "synaptic.format" and the like: plain keys */
#ifndef SN_KEYS_H
#define SN_KEYS_H

#include "codec/sn_entry.h"
#include "store/sn_store.h"

enum { CF_DEFAULT, CF_WEIGHTS, CF_CONFIG, CF_STATE, CF_CHECKPOINTS, CF_METRICS, CF_COUNT };

extern SN_HIDDEN const char *const sn_cf_names[CF_COUNT];

/* Byte order: n bytes big-endian, so keys sort by number. */
SN_HIDDEN void sn_put_be(unsigned char *p, uint64_t v, int n);
SN_HIDDEN uint64_t sn_get_be(const unsigned char *p, int n);

/* Weights (store format 2): LK ID, so one expert's layers and one layer's
 * writes are each a contiguous range, in (hlc, origin) order (see
 * sn_history.h). Format 1 keyed them by version(8 BE) instead; sn_format.c
 * upgrades such stores on open. */
#define SN_WKEY_MAX (SN_MAX_ID_LEN + 1 + 4 + SN_ID_LEN)
#define SN_WKEY_V1_MAX (SN_MAX_ID_LEN + 1 + 4 + 8)
#define SN_LAYER_KEY_MAX (SN_MAX_ID_LEN + 1 + 4)
#define SN_HIST_KEY_MAX (2 + SN_LAYER_KEY_MAX + SN_ID_LEN)
SN_HIDDEN int sn_wkey_v1_parse(const unsigned char *k, size_t klen, const char **expert,
                               size_t *len, uint32_t *layer, uint64_t *version);
/* LK of expert/layer; the weights record key LK ID. */
SN_HIDDEN size_t sn_layer_key(unsigned char *k, const char *expert, size_t len, uint32_t layer);
SN_HIDDEN size_t sn_wkey_id(unsigned char *k, const unsigned char *lk, size_t lklen,
                            const sn_ident *id);
/* Split a weights record key into LK and identity. */
SN_HIDDEN int sn_wkey_split(const unsigned char *k, size_t klen, size_t *lklen, sn_ident *id,
                            sn_err *e);
/* The history key of (tag, LK, id); id NULL: the key without it. */
SN_HIDDEN size_t sn_hist_key(unsigned char *k, char tag, const unsigned char *lk, size_t lklen,
                             const sn_ident *id);

/* Checkpoints CF: 'C' id -> checkpoint; 'P' weight-key id -> "" (pin index). */
#define SN_PIN_PREFIX 'P'
#define SN_CP_PREFIX 'C'
#define SN_PIN_KEY_MAX (1 + SN_WKEY_MAX + SN_MAX_ID_LEN)
/* The pin index key of one pin (a sn_schema_pin map with hlc and origin)
 * of checkpoint id: 'P' weights-key id. */
SN_HIDDEN size_t sn_pin_key(unsigned char *k, const sn_value *pin, const void *id, size_t idlen);

/* Replication keys in the default CF (0x01 keeps them apart from the plain
 * "synaptic.origin" key). */
#define TAG_LOG 'L'
#define TAG_CONFLICT 'X'
#define TAG_SUPERSEDED 'S'
#define TAG_SKIPPED 'K'   /* 01 'K' origin seq -> "": a logged skip (kind not synced then) */
#define LOG_KEY_LEN (2 + SN_ORIGIN_LEN + 8)
#define IDKEY_MAX (5 + SN_REPL_KEY_MAX + 8 + SN_ORIGIN_LEN)
SN_HIDDEN size_t sn_log_key(unsigned char *k, const char *origin, uint64_t seq);
/* The common prefix of the conflict or superseded keys of one record key. */
SN_HIDDEN size_t sn_rec_prefix(unsigned char *k, char tag, int cf, const unsigned char *key,
                               size_t klen);
SN_HIDDEN size_t sn_ident_key(unsigned char *k, char tag, int cf, const unsigned char *key,
                              size_t klen, const sn_ident *id);
SN_HIDDEN int sn_same_ident(const sn_ident *a, const sn_ident *b);

/* Metrics: name 0x00 timestamp(8, ordered) seq(8 BE), so one metric's
 * points are one contiguous range in time order. The shortest key has a
 * 1-byte name: 1 + 1 + 8 + 8 = 18 bytes. */
#define SN_METRIC_KEY_MAX (SN_MAX_ID_LEN + 17)
/* The first key a point of name at timestamp ts could have (a seek target). */
SN_HIDDEN size_t sn_metric_seek_key(unsigned char *k, const char *name, size_t len, double ts);
SN_HIDDEN size_t sn_metric_key(unsigned char *k, const char *name, size_t len, double ts,
                               uint64_t seq);
/* The name length and timestamp of a metric key; 0 when it is not one. */
SN_HIDDEN int sn_metric_key_parse(const unsigned char *k, size_t klen, size_t *name_len, double *ts);

/* "neural_weights/coding/layer 2/v3" style names for error messages. */
SN_HIDDEN void sn_describe_key(int cf, const unsigned char *k, size_t klen, char *buf,
                               size_t cap);

#endif
