#include "codec/sn_schema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define F(n, t, r) { n, t, r, SN_F_ANY, NULL }
#define LIST(n, t, r) { n, SN_F_LIST, r, t, NULL }
#define LIST_OF(n, s, r) { n, SN_F_LIST, r, SN_F_OBJ, &s }
#define OBJ(n, s, r) { n, SN_F_OBJ, r, SN_F_ANY, &s }
#define SCHEMA(var, label, fields) \
    const sn_schema var = { label, sizeof fields / sizeof fields[0], fields }

/* Every replicated record carries hlc (hybrid logical clock) and origin
 * (node id) so P2P sync can order and attribute it. */
static const sn_field weights_fields[] = {
    F("expert_id", SN_F_ID, 1),
    F("layer", SN_F_UINT, 1),
    F("version", SN_F_UINT, 1),
    F("timestamp", SN_F_NUM, 1),
    F("hlc", SN_F_UINT, 1),
    F("origin", SN_F_STR, 1),
    F("n_weights", SN_F_UINT, 1),
    F("n_biases", SN_F_UINT, 1),
    LIST("shape", SN_F_UINT, 0),
    /* a merged record: how it was made ("base" or "mean" of N heads) */
    F("merge", SN_F_STR, 0),
};
SCHEMA(sn_schema_weights, "weights", weights_fields);

static const sn_field config_fields[] = {
    F("expert_id", SN_F_ID, 1),
    F("domain", SN_F_STR, 1),
    F("parameter_count", SN_F_UINT, 1),
    F("learning_rate", SN_F_NUM, 1),
    F("architecture", SN_F_ANY, 1),
    F("created_at", SN_F_NUM, 0),
    F("updated_at", SN_F_NUM, 0),
    F("hlc", SN_F_UINT, 0),
    F("origin", SN_F_STR, 0),
};
SCHEMA(sn_schema_config, "config", config_fields);

static const sn_field expert_state_fields[] = {
    F("expert_id", SN_F_ID, 1),
    F("activation_count", SN_F_UINT, 0),
    F("success_rate", SN_F_NUM, 0),
    F("last_updated", SN_F_NUM, 0),
    F("memory_usage", SN_F_UINT, 0),
};
static SCHEMA(expert_state_schema, "expert_state", expert_state_fields);

static const sn_field global_metrics_fields[] = {
    F("total_requests", SN_F_UINT, 0),
    F("average_response_time", SN_F_NUM, 0),
    F("memory_usage", SN_F_UINT, 0),
    F("disk_usage", SN_F_UINT, 0),
    F("uptime", SN_F_NUM, 0),
};
static SCHEMA(global_metrics_schema, "global_metrics", global_metrics_fields);

/* A pin names the write that was current by identity (hlc, origin), so
 * it restores those bytes on any node; version is the number it had where
 * the checkpoint was made (format-1 pins have only that). */
static const sn_field pin_fields[] = {
    F("expert_id", SN_F_ID, 1),
    F("layer", SN_F_UINT, 1),
    F("version", SN_F_UINT, 1),
    F("hlc", SN_F_UINT, 0),
    F("origin", SN_F_STR, 0),
};
SCHEMA(sn_schema_pin, "pin", pin_fields);

static const sn_field checkpoint_fields[] = {
    F("id", SN_F_ID, 0),
    F("system_version", SN_F_STR, 0),
    LIST_OF("expert_states", expert_state_schema, 0),
    OBJ("global_metrics", global_metrics_schema, 0),
    F("metadata", SN_F_ANY, 0),
    F("created_at", SN_F_NUM, 0),
    F("hlc", SN_F_UINT, 0),
    F("origin", SN_F_STR, 0),
    LIST_OF("pins", sn_schema_pin, 0),
    /* the training step it was saved at (optional: older checkpoints have none) */
    F("step", SN_F_UINT, 0),
};
SCHEMA(sn_schema_checkpoint, "checkpoint", checkpoint_fields);

static const sn_field state_fields[] = {
    F("key", SN_F_ID, 1),
    F("value", SN_F_ANY, 0),
    F("updated_at", SN_F_NUM, 0),
    F("hlc", SN_F_UINT, 0),
    F("origin", SN_F_STR, 0),
};
SCHEMA(sn_schema_state, "state", state_fields);

static const sn_field metric_fields[] = {
    F("name", SN_F_ID, 1),
    F("timestamp", SN_F_NUM, 1),
    F("value", SN_F_NUM, 1),
    /* format 2: points replicate, each named by its writer */
    F("hlc", SN_F_UINT, 0),
    F("origin", SN_F_STR, 0),
};
SCHEMA(sn_schema_metric, "metric", metric_fields);

/* ---- P2P ------------------------------------------------------------------
 * One log entry names a replicated write: which record (cf, key), its
 * identity (hlc, origin), the identity it replaced (prev_*), and its kind
 * (0 put, 1 delete/superseded, 2 skipped). On disk origin and seq live in
 * the key; on the wire they are fields, and len says how many payload bytes
 * (the record's own stored bytes) follow for it. */
static const sn_field log_entry_fields[] = {
    F("kind", SN_F_UINT, 1),
    F("cf", SN_F_UINT, 1),
    F("key", SN_F_STR, 1),
    F("hlc", SN_F_UINT, 1),
    F("prev_hlc", SN_F_UINT, 0),
    F("prev_origin", SN_F_STR, 0),
    F("origin", SN_F_STR, 0),
    F("seq", SN_F_UINT, 0),
    F("len", SN_F_UINT, 0),
    F("total", SN_F_UINT, 0),
    F("off", SN_F_UINT, 0),
    /* format 2: a weights write's parents (fields only ever append) */
    F("parents", SN_F_STR, 0),
    F("depth", SN_F_UINT, 0),
    /* a weights delete that is a tombstone (delete_expert), not a trimmed write */
    F("tomb", SN_F_UINT, 0),
};
SCHEMA(sn_schema_log_entry, "log_entry", log_entry_fields);

static const sn_field update_fields[] = {
    F("proto", SN_F_UINT, 1),
    F("from", SN_F_ID, 1),
    LIST_OF("entries", sn_schema_log_entry, 1),
};
static SCHEMA(weight_update_schema, "WeightUpdate", update_fields);
static SCHEMA(config_update_schema, "ConfigUpdate", update_fields);
static SCHEMA(checkpoint_broadcast_schema, "CheckpointBroadcast", update_fields);

static const sn_field have_fields[] = {
    F("origin", SN_F_ID, 1),
    F("seq", SN_F_UINT, 1),
};
static SCHEMA(have_schema, "have", have_fields);

static const sn_field sync_request_fields[] = {
    F("proto", SN_F_UINT, 1),
    F("from", SN_F_ID, 1),
    LIST_OF("have", have_schema, 1),
    F("partial_origin", SN_F_STR, 0),
    F("partial_seq", SN_F_UINT, 0),
    F("partial_off", SN_F_UINT, 0),
    /* skips the asker logged while it did not sync their kind, wanted whole */
    LIST_OF("refetch", have_schema, 0),
};
static SCHEMA(sync_request_schema, "SyncRequest", sync_request_fields);

static const sn_field sync_response_fields[] = {
    F("proto", SN_F_UINT, 1),
    F("from", SN_F_ID, 1),
    LIST_OF("entries", sn_schema_log_entry, 1),
    F("more", SN_F_BOOL, 1),
};
static SCHEMA(sync_response_schema, "SyncResponse", sync_response_fields);

/* Discovery: a peer the heartbeat's sender knows (or the sender itself),
 * where to dial it, and its CURVE public key. The engine bounds the list
 * (sn_sync.h: SN_SYNC_SAMPLE_PEERS) and each string. */
static const sn_field sample_fields[] = {
    F("id", SN_F_ID, 1),
    F("endpoint", SN_F_STR, 1),
    F("public", SN_F_STR, 0),
};
static SCHEMA(sample_schema, "peer", sample_fields);

static const sn_field heartbeat_fields[] = {
    F("proto", SN_F_UINT, 1),
    F("from", SN_F_ID, 1),
    F("digest", SN_F_UINT, 1),
    F("entries", SN_F_UINT, 0),
    /* appended in proto 2: a proto-2 reader without it ignores it */
    LIST_OF("peers", sample_schema, 0),
    /* appended later: a node closing says so, and its peers mark it left at
     * once (older readers ignore a trailing field) */
    F("leaving", SN_F_BOOL, 0),
    /* appended later: a node with no slot left (max_peers) answers a new
     * node's heartbeat with one naming why, which that node reports */
    F("refused", SN_F_STR, 0),
};
static SCHEMA(heartbeat_schema, "Heartbeat", heartbeat_fields);

const sn_schema *sn_schema_for(unsigned type)
{
    switch (type) {
    case SN_REC_WEIGHTS: return &sn_schema_weights;
    case SN_REC_CONFIG: return &sn_schema_config;
    case SN_REC_CHECKPOINT: return &sn_schema_checkpoint;
    case SN_REC_STATE: return &sn_schema_state;
    case SN_REC_METRIC: return &sn_schema_metric;
    case SN_REC_LOG: return &sn_schema_log_entry;
    case SN_MSG_WEIGHT_UPDATE: return &weight_update_schema;
    case SN_MSG_CONFIG_UPDATE: return &config_update_schema;
    case SN_MSG_CHECKPOINT_BROADCAST: return &checkpoint_broadcast_schema;
    case SN_MSG_SYNC_REQUEST: return &sync_request_schema;
    case SN_MSG_SYNC_RESPONSE: return &sync_response_schema;
    case SN_MSG_HEARTBEAT: return &heartbeat_schema;
    default: return NULL;
    }
}

int sn_schema_index(const sn_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0) return (int)i;
    return -1;
}

int sn_record_map(const sn_schema *s, sn_arena *a, sn_value *out, sn_err *e)
{
    sn_value *items = sn_arena_alloc(a, 2 * s->nfields * sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->nfields; i++) items[2 * i] = sn_cstr(s->fields[i].name);
    *out = sn_nil();
    out->type = SN_MAP;
    out->u.a.items = items;
    out->u.a.n = s->nfields;
    return SN_OK;
}

int sn_map_set(sn_value *map, const char *key, sn_value v)
{
    sn_value *slot = (sn_value *)sn_map_get(map, key);
    if (!slot) return -1;
    *slot = v;
    return 0;
}

/* ---- validation ---------------------------------------------------------- */

typedef struct path {
    const struct path *up;
    const char *name;   /* field name, or NULL for a list index */
    size_t index;
} path;

static void path_format(const path *p, char *buf, size_t cap)
{
    if (!p) { buf[0] = '\0'; return; }
    path_format(p->up, buf, cap);
    size_t len = strlen(buf);
    if (p->name)
        snprintf(buf + len, cap - len, "%s%s", p->up ? "." : "", p->name);
    else
        snprintf(buf + len, cap - len, "[%zu]", p->index + 1);
}

static int bad(sn_err *e, int from_user, const path *p, const char *what)
{
    char where[256];
    path_format(p, where, sizeof where);
    return sn_fail(e, from_user ? SN_EARG : SN_ECORRUPT, "%s: %s", where, what);
}

static int check_any(const sn_value *v, int depth, int from_user, const path *p, sn_err *e)
{
    if (depth > SN_MAX_DEPTH) return bad(e, from_user, p, "nested too deeply");
    switch (v->type) {
    case SN_NUM:
        if (!isfinite(v->u.n)) return bad(e, from_user, p, "number is NaN or infinite");
        return SN_OK;
    case SN_ARRAY:
    case SN_MAP: {
        size_t n = v->type == SN_MAP ? 2 * v->u.a.n : v->u.a.n;
        for (size_t i = 0; i < n; i++) {
            if (v->type == SN_MAP && i % 2 == 0 && v->u.a.items[i].type == SN_NIL)
                return bad(e, from_user, p, "a table key is nil");
            int rc = check_any(&v->u.a.items[i], depth + 1, from_user, p, e);
            if (rc) return rc;
        }
        return SN_OK;
    }
    default:
        return SN_OK;
    }
}

static int check_obj(const sn_schema *s, sn_value *map, int from_user, const path *p,
                     sn_err *e);

static int check_field(sn_ftype type, const sn_field *f, sn_value *v, int from_user,
                       const path *p, sn_err *e)
{
    switch (type) {
    case SN_F_UINT:
    case SN_F_INT:
        if (v->type == SN_NUM && v->u.n == floor(v->u.n) && fabs(v->u.n) < 9007199254740992.0) {
            int64_t i = (int64_t)v->u.n;
            *v = sn_int(i);
        }
        if (v->type != SN_INT) return bad(e, from_user, p, "integer expected");
        if (type == SN_F_UINT && v->u.i < 0) return bad(e, from_user, p, "must not be negative");
        return SN_OK;
    case SN_F_NUM:
        if (v->type == SN_INT) *v = sn_num((double)v->u.i);
        if (v->type != SN_NUM) return bad(e, from_user, p, "number expected");
        if (!isfinite(v->u.n)) return bad(e, from_user, p, "number is NaN or infinite");
        return SN_OK;
    case SN_F_STR:
        if (v->type != SN_STR) return bad(e, from_user, p, "string expected");
        return SN_OK;
    case SN_F_ID:
        if (v->type != SN_STR) return bad(e, from_user, p, "string expected");
        if (v->u.s.len == 0) return bad(e, from_user, p, "must not be empty");
        if (v->u.s.len > SN_MAX_ID_LEN) return bad(e, from_user, p, "longer than 256 bytes");
        if (memchr(v->u.s.p, '\0', v->u.s.len)) return bad(e, from_user, p, "contains a NUL byte");
        return SN_OK;
    case SN_F_BOOL:
        if (v->type != SN_BOOL) return bad(e, from_user, p, "boolean expected");
        return SN_OK;
    case SN_F_ANY:
        return check_any(v, 0, from_user, p, e);
    case SN_F_OBJ:
        if (v->type == SN_ARRAY && v->u.a.n == 0) v->type = SN_MAP;   /* {} is both */
        if (v->type != SN_MAP) return bad(e, from_user, p, "table expected");
        return check_obj(f->sub, v, from_user, p, e);
    case SN_F_LIST:
        if (v->type == SN_MAP && v->u.a.n == 0) v->type = SN_ARRAY;
        if (v->type != SN_ARRAY) return bad(e, from_user, p, "list expected");
        for (size_t i = 0; i < v->u.a.n; i++) {
            path ip = { p, NULL, i };
            int rc = check_field(f->elem, f, &v->u.a.items[i], from_user, &ip, e);
            if (rc) return rc;
        }
        return SN_OK;
    }
    return bad(e, from_user, p, "unknown field type");
}

static int check_obj(const sn_schema *s, sn_value *map, int from_user, const path *p,
                     sn_err *e)
{
    if (map->type != SN_MAP) return bad(e, from_user, p, "table expected");
    for (size_t i = 0; i < map->u.a.n; i++) {
        const sn_value *k = &map->u.a.items[2 * i];
        if (k->type != SN_STR) return bad(e, from_user, p, "field names must be strings");
        char name[64];
        size_t len = k->u.s.len < sizeof name - 1 ? k->u.s.len : sizeof name - 1;
        memcpy(name, k->u.s.p, len);
        name[len] = '\0';
        if (len != k->u.s.len || sn_schema_index(s, name) < 0) {
            path fp = { p, name, 0 };
            return bad(e, from_user, &fp, "unknown field");
        }
    }
    for (size_t i = 0; i < s->nfields; i++) {
        const sn_field *f = &s->fields[i];
        path fp = { p, f->name, 0 };
        sn_value *v = (sn_value *)sn_map_get(map, f->name);
        if (!v || v->type == SN_NIL) {
            if (f->required) return bad(e, from_user, &fp, "missing");
            continue;
        }
        int rc = check_field(f->type, f, v, from_user, &fp, e);
        if (rc) return rc;
    }
    return SN_OK;
}

int sn_schema_check(const sn_schema *s, sn_value *map, int from_user, sn_err *e)
{
    path root = { NULL, s->name, 0 };
    return check_obj(s, map, from_user, &root, e);
}
