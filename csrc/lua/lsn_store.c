/* synaptic.store: the Lua face of the storage engine. */
#include "lua/lsn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LSN_VIEW "synaptic.weights_view"

typedef struct lsn_store { sn_store *s; } lsn_store;

sn_store *lsn_check_store(lua_State *L, int idx)
{
    lsn_store *u = luaL_checkudata(L, idx, LSN_STORE);
    if (!u->s) luaL_error(L, "attempt to use a closed store");
    return u->s;
}

static const char *check_id(lua_State *L, int idx, size_t *len)
{
    return luaL_checklstring(L, idx, len);
}

/* ---- open / close -------------------------------------------------------- */

static int opt_field(lua_State *L, int idx, const char *name, int type)
{
    int t = lua_getfield(L, idx, name);
    if (t != LUA_TNIL && t != type)
        luaL_error(L, "open: option %s must be a %s, not a %s", name, lua_typename(L, type),
                   lua_typename(L, t));
    return t != LUA_TNIL;
}

static unsigned opt_uint(lua_State *L, int idx, const char *name, unsigned dflt, unsigned max)
{
    unsigned v = dflt;
    if (opt_field(L, idx, name, LUA_TNUMBER)) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
            lua_tointeger(L, -1) > (lua_Integer)max)
            luaL_error(L, "open: option %s must be an integer from 0 to %d", name, (int)max);
        v = (unsigned)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *name, int dflt)
{
    int v = dflt;
    if (opt_field(L, idx, name, LUA_TBOOLEAN)) v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static void read_opts(lua_State *L, int idx, sn_store_opts *o)
{
    static const char *const known[] = {
        "compression", "sync_writes", "write_buffer_mb", "cache_mb", "read_only",
        "max_weight_versions", "blob_files", "recover", NULL,
    };
    sn_store_default_opts(o);
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && known[i]; i++) ok |= strcmp(k, known[i]) == 0;
        if (!ok) luaL_error(L, "open: unknown option %s", k ? k : luaL_typename(L, -1));
    }
    int t = lua_getfield(L, idx, "compression");
    if (t == LUA_TBOOLEAN) {
        o->codec = lua_toboolean(L, -1) ? SN_CODEC_SHUFFLE : SN_CODEC_NONE;
    } else if (t == LUA_TSTRING) {
        if (sn_codec_from_name(lua_tostring(L, -1), &o->codec))
            luaL_error(L, "open: unknown codec '%s' (none, gzip, shuffle, bf16)", lua_tostring(L, -1));
    } else if (t != LUA_TNIL) {
        luaL_error(L, "open: option compression must be a boolean or a codec name");
    }
    lua_pop(L, 1);
    o->sync_writes = opt_bool(L, idx, "sync_writes", o->sync_writes);
    o->read_only = opt_bool(L, idx, "read_only", o->read_only);
    o->blob_files = opt_bool(L, idx, "blob_files", o->blob_files);
    o->write_buffer_mb = opt_uint(L, idx, "write_buffer_mb", o->write_buffer_mb, 4096);
    o->cache_mb = opt_uint(L, idx, "cache_mb", o->cache_mb, 65536);
    o->max_weight_versions = opt_uint(L, idx, "max_weight_versions", 0, 1000000);
    t = lua_getfield(L, idx, "recover");
    if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "point_in_time") == 0)
        o->recover = SN_RECOVER_POINT_IN_TIME;
    else if (t != LUA_TNIL && !(t == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
        luaL_error(L, "open: option recover must be \"point_in_time\"");
    lua_pop(L, 1);
}

/* What a recover open dropped, as a table. */
static void push_recovery(lua_State *L, const sn_wal_damage *d)
{
    lua_createtable(L, 0, 7);
    lua_pushstring(L, d->file);
    lua_setfield(L, -2, "wal");
    lua_pushinteger(L, (lua_Integer)d->offset);
    lua_setfield(L, -2, "offset");
    lua_pushstring(L, d->error);
    lua_setfield(L, -2, "error");
    lua_pushinteger(L, (lua_Integer)d->dropped_bytes);
    lua_setfield(L, -2, "dropped_bytes");
    lua_pushinteger(L, (lua_Integer)d->dropped_files);
    lua_setfield(L, -2, "dropped_files");
    lua_pushinteger(L, (lua_Integer)d->nwrites);
    lua_setfield(L, -2, "dropped_writes");
    lua_createtable(L, (int)d->nnames, 0);
    for (size_t i = 0; i < d->nnames; i++) {
        lua_pushstring(L, d->names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "dropped");
}

int lsn_store_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    sn_store_opts o;
    read_opts(L, 2, &o);
    /* userdata first, resource second: a memory error cannot leak a db */
    lsn_store *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->s = NULL;
    luaL_setmetatable(L, LSN_STORE);
    sn_err e;
    int rc = sn_store_open(path, &o, &u->s, &e);
    if (rc) return lsn_result(L, "open", rc, &e);
    const sn_wal_damage *d = sn_store_recovery(u->s);
    if (!d) return 1;
    push_recovery(L, d);
    return 2;
}

static int l_store_close(lua_State *L)
{
    lsn_store *u = luaL_checkudata(L, 1, LSN_STORE);
    if (u->s) {
        sn_store_close(u->s);
        u->s = NULL;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_store_tostring(lua_State *L)
{
    lsn_store *u = luaL_checkudata(L, 1, LSN_STORE);
    if (u->s) lua_pushfstring(L, "synaptic.store (%s)", sn_store_path(u->s));
    else lua_pushliteral(L, "synaptic.store (closed)");
    return 1;
}

static int l_store_path(lua_State *L)
{
    lua_pushstring(L, sn_store_path(lsn_check_store(L, 1)));
    return 1;
}

static int l_store_origin(lua_State *L)
{
    lua_pushstring(L, sn_store_origin(lsn_check_store(L, 1)));
    return 1;
}

/* ---- weights ---------------------------------------------------------------- */

static int64_t check_layer(lua_State *L, int idx)
{
    return (int64_t)luaL_checkinteger(L, idx);
}

static int l_put_weights(lua_State *L)
{
    lua_settop(L, 6);   /* tables converted to floats are pushed above the args */
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    sn_weights_in in;
    memset(&in, 0, sizeof in);
    in.expert = check_id(L, 2, &in.expert_len);
    in.layer = check_layer(L, 3);
    in.w = lsn_check_floats(L, 4, &in.nw);
    if (!lua_isnoneornil(L, 5)) in.b = lsn_check_floats(L, 5, &in.nb);
    int64_t shape[SN_MAX_SHAPE_DIMS];
    if (!lua_isnoneornil(L, 6)) {
        luaL_checktype(L, 6, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 6)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "shape") != 0)
                luaL_argerror(L, 6, "meta may only hold shape");
        }
        if (lua_getfield(L, 6, "shape") != LUA_TNIL) {
            luaL_argcheck(L, lua_istable(L, -1), 6, "shape must be a list of sizes");
            lua_Integer n = luaL_len(L, -1);
            luaL_argcheck(L, n >= 1 && n <= SN_MAX_SHAPE_DIMS, 6, "shape must have 1 to 8 sizes");
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, -1, i);
                luaL_argcheck(L, lua_isinteger(L, -1), 6, "shape sizes must be integers");
                shape[i - 1] = lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
            in.shape = shape;
            in.nshape = (size_t)n;
        }
        lua_pop(L, 1);
    }
    sn_err e;
    uint64_t version;
    int rc = sn_put_weights(s, b, &in, &version, &e);
    if (rc) return lsn_result(L, "put_weights", rc, &e);
    lua_pushinteger(L, (lua_Integer)version);
    return 1;
}

static int l_view_gc(lua_State *L)
{
    sn_weights_view_release(luaL_checkudata(L, 1, LSN_VIEW));
    return 0;
}

static void set_num(lua_State *L, const char *k, lua_Number v) { lua_pushnumber(L, v); lua_setfield(L, -2, k); }
static void set_int(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }

static int l_get_weights(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t len;
    const char *expert = check_id(L, 2, &len);
    int64_t layer = check_layer(L, 3);
    lua_Integer version = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, version >= 0, 4, "version must not be negative");
    sn_weights_view *v = lua_newuserdatauv(L, sizeof *v, 0);
    memset(v, 0, sizeof *v);
    luaL_setmetatable(L, LSN_VIEW);
    sn_err e;
    int rc = sn_get_weights(s, expert, len, layer, (uint64_t)version, v, &e);
    if (rc == SN_NOTFOUND) { lua_pushnil(L); return 1; }
    if (rc) return lsn_result(L, "get_weights", rc, &e);
    lsn_floats *w = lsn_floats_new(L, v->nw);
    lsn_floats *bias = lsn_floats_new(L, v->nb);
    rc = sn_weights_view_load(v, w->data, bias->data, &e);
    if (rc) { sn_weights_view_release(v); return lsn_result(L, "get_weights", rc, &e); }
    const sn_value *f = &v->rec.fields;
    lua_createtable(L, 0, 10);
    set_int(L, "version", (lua_Integer)v->version);
    set_num(L, "timestamp", sn_map_get(f, "timestamp")->u.n);
    set_int(L, "hlc", sn_map_get(f, "hlc")->u.i);
    lsn_push_value(L, sn_map_get(f, "origin"));
    lua_setfield(L, -2, "origin");
    lsn_push_value(L, sn_map_get(f, "expert_id"));
    lua_setfield(L, -2, "expert_id");
    set_int(L, "layer", sn_map_get(f, "layer")->u.i);
    set_int(L, "raw_bytes", (lua_Integer)v->rec.raw_len);
    set_int(L, "stored_bytes", (lua_Integer)v->stored_bytes);
    lua_pushstring(L, sn_codec_name(v->rec.codec));
    lua_setfield(L, -2, "codec");
    if (sn_map_get(f, "shape")->type == SN_ARRAY) {
        lsn_push_value(L, sn_map_get(f, "shape"));
        lua_setfield(L, -2, "shape");
    }
    sn_weights_view_release(v);
    return 3;
}

static int push_value_result(lua_State *L, const char *fn, int rc, const sn_err *e,
                             const sn_value *v)
{
    if (rc == SN_NOTFOUND) { lua_pushnil(L); return 1; }
    if (rc) return lsn_result(L, fn, rc, e);
    lsn_push_value(L, v);
    return 1;
}

static int l_weight_versions(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t len;
    const char *expert = check_id(L, 2, &len);
    int64_t layer = check_layer(L, 3);
    sn_arena *a = lsn_arena(L);
    sn_value out;
    sn_err e;
    int rc = sn_weight_versions(s, expert, len, layer, a, &out, &e);
    return push_value_result(L, "weight_versions", rc, &e, &out);
}


/* ---- records ---------------------------------------------------------------- */

/* Reads that take an id and return a value: one shape, one function. */
typedef int (*keyed_read)(sn_store *, const char *, size_t, sn_arena *, sn_value *, sn_err *);
typedef int (*whole_read)(sn_store *, sn_arena *, sn_value *, sn_err *);

static int read_keyed(lua_State *L, const char *fn, keyed_read read)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_arena *a = lsn_arena(L);
    sn_value out;
    sn_err e;
    int rc = read(s, id, len, a, &out, &e);
    return push_value_result(L, fn, rc, &e, &out);
}

static int read_whole(lua_State *L, const char *fn, whole_read read)
{
    sn_store *s = lsn_check_store(L, 1);
    sn_arena *a = lsn_arena(L);
    sn_value out;
    sn_err e;
    int rc = read(s, a, &out, &e);
    return push_value_result(L, fn, rc, &e, &out);
}

static int l_get_config(lua_State *L) { return read_keyed(L, "get_config", sn_get_config); }
static int l_get_checkpoint(lua_State *L) { return read_keyed(L, "get_checkpoint", sn_get_checkpoint); }
static int l_get_state(lua_State *L) { return read_keyed(L, "get_state", sn_get_state); }
static int l_layers(lua_State *L) { return read_keyed(L, "layers", sn_list_layers); }
static int l_list_experts(lua_State *L) { return read_whole(L, "list_experts", sn_list_experts); }
static int l_list_checkpoints(lua_State *L) { return read_whole(L, "list_checkpoints", sn_list_checkpoints); }


static int done(lua_State *L, const char *fn, int rc, const sn_err *e)
{
    if (rc) return lsn_result(L, fn, rc, e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_put_config(lua_State *L)
{
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    luaL_checktype(L, 2, LUA_TTABLE);
    sn_arena *a = lsn_arena(L);
    sn_value cfg;
    lsn_to_value(L, 2, a, &cfg, "put_config");
    sn_err e;
    return done(L, "put_config", sn_put_config(s, b, &cfg, &e), &e);
}



static int l_create_checkpoint(lua_State *L)
{
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    lua_settop(L, 2);   /* the arena goes above the arguments */
    sn_arena *a = lsn_arena(L);
    sn_value cp;
    if (lua_isnil(L, 2)) {
        cp = sn_nil();
        cp.type = SN_MAP;
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        lsn_to_value(L, 2, a, &cp, "create_checkpoint");
        if (cp.type == SN_ARRAY && cp.u.a.n == 0) cp.type = SN_MAP;
    }
    char id[37];
    sn_err e;
    int rc = sn_create_checkpoint(s, b, &cp, id, &e);
    if (rc) return lsn_result(L, "create_checkpoint", rc, &e);
    lua_pushlstring(L, id, 36);
    return 1;
}



static int not_found(lua_State *L, const char *fn, const char *id)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: no checkpoint '%s'", fn, id);
    return 2;
}

static int l_restore_checkpoint(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_err e;
    int rc = sn_restore_checkpoint(s, id, len, &e);
    if (rc == SN_NOTFOUND) return not_found(L, "restore_checkpoint", id);
    return done(L, "restore_checkpoint", rc, &e);
}

static int l_delete_checkpoint(lua_State *L)
{
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_err e;
    int rc = sn_delete_checkpoint(s, b, id, len, &e);
    if (rc == SN_NOTFOUND) return not_found(L, "delete_checkpoint", id);
    return done(L, "delete_checkpoint", rc, &e);
}

static int l_put_state(lua_State *L)
{
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    size_t len;
    const char *key = check_id(L, 2, &len);
    luaL_checkany(L, 3);
    sn_arena *a = lsn_arena(L);
    sn_value v;
    lsn_to_value(L, 3, a, &v, "put_state");
    sn_err e;
    return done(L, "put_state", sn_put_state(s, b, key, len, &v, &e), &e);
}


static int l_record_metric(lua_State *L)
{
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    size_t len;
    const char *name = check_id(L, 2, &len);
    double value = luaL_checknumber(L, 3);
    double ts = luaL_optnumber(L, 4, sn_now());
    sn_err e;
    return done(L, "record_metric", sn_record_metric(s, b, name, len, value, ts, &e), &e);
}

static int l_metrics(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t len;
    const char *name = check_id(L, 2, &len);
    double from = luaL_optnumber(L, 3, -HUGE_VAL);
    double to = luaL_optnumber(L, 4, HUGE_VAL);
    sn_arena *a = lsn_arena(L);
    sn_value out;
    sn_err e;
    int rc = sn_metrics(s, name, len, from, to, a, &out, &e);
    return push_value_result(L, "metrics", rc, &e, &out);
}

/* ---- maintenance ----------------------------------------------------------------- */

static void human_size(char *buf, size_t cap, double bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    while (bytes >= 1024 && u < 4) { bytes /= 1024; u++; }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
}

static int l_stats(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    char *text;
    sn_err e;
    int rc = sn_stats_text(s, &text, &e);
    if (rc) return lsn_result(L, "stats", rc, &e);
    lua_pushstring(L, text);
    free(text);
    return 1;
}

static int l_storage_stats(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    sn_storage_info st;
    sn_err e;
    int rc = sn_storage_stats(s, &st, &e);
    if (rc) return lsn_result(L, "storage_stats", rc, &e);
    lua_createtable(L, 0, 8);
    set_int(L, "total_bytes", (lua_Integer)st.total_bytes);
    set_int(L, "file_count", (lua_Integer)st.file_count);
    set_int(L, "checkpoint_count", (lua_Integer)st.checkpoint_count);
    set_int(L, "weight_records", (lua_Integer)st.weight_records);
    set_int(L, "raw_bytes", (lua_Integer)st.raw_bytes);
    set_int(L, "stored_bytes", (lua_Integer)st.stored_bytes);
    set_num(L, "compression_ratio", st.raw_bytes ? (double)st.stored_bytes / (double)st.raw_bytes : 1.0);
    char hs[32];
    human_size(hs, sizeof hs, (double)st.total_bytes);
    lua_pushstring(L, hs);
    lua_setfield(L, -2, "human_size");
    return 1;
}

static int l_size_info(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    uint64_t bytes, files;
    sn_err e;
    int rc = sn_size_info(s, &bytes, &files, &e);
    if (rc) return lsn_result(L, "size_info", rc, &e);
    lua_pushinteger(L, (lua_Integer)bytes);
    lua_pushinteger(L, (lua_Integer)files);
    return 2;
}

static int l_verify(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    sn_arena *a = lsn_arena(L);
    sn_value report;
    int ok;
    sn_err e;
    int rc = sn_verify(s, a, &report, &ok, &e);
    if (rc) return lsn_result(L, "verify", rc, &e);
    lua_pushboolean(L, ok);
    lsn_push_value(L, &report);
    return 2;
}

static int l_compact(lua_State *L)
{
    sn_err e;
    return done(L, "compact", sn_compact(lsn_check_store(L, 1), &e), &e);
}

static int l_backup(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    const char *dir = luaL_checkstring(L, 2);
    uint32_t id;
    sn_err e;
    int rc = sn_backup(s, dir, &id, &e);
    if (rc) return lsn_result(L, "backup", rc, &e);
    lua_pushinteger(L, id);
    return 1;
}

int lsn_list_backups(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    sn_arena *a = lsn_arena(L);
    sn_value out;
    sn_err e;
    int rc = sn_list_backups(dir, a, &out, &e);
    return push_value_result(L, "list_backups", rc, &e, &out);
}

int lsn_restore_backup(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    const char *db = luaL_checkstring(L, 2);
    lua_Integer id = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, id >= 0 && id <= (lua_Integer)UINT32_MAX, 3, "backup id out of range");
    sn_err e;
    return done(L, "restore_backup", sn_restore_backup(dir, db, (uint32_t)id, &e), &e);
}

const luaL_Reg lsn_write_methods[] = {
    { "put_weights", l_put_weights },
    { "put_config", l_put_config },
    { "create_checkpoint", l_create_checkpoint },
    { "delete_checkpoint", l_delete_checkpoint },
    { "put_state", l_put_state },
    { "record_metric", l_record_metric },
    { NULL, NULL },
};

void lsn_store_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "get_weights", l_get_weights },
        { "weight_versions", l_weight_versions },
        { "layers", l_layers },
        { "conflicts", lsn_store_conflicts },
        { "get_config", l_get_config },
        { "list_experts", l_list_experts },
        { "get_checkpoint", l_get_checkpoint },
        { "list_checkpoints", l_list_checkpoints },
        { "restore_checkpoint", l_restore_checkpoint },
        { "get_state", l_get_state },
        { "metrics", l_metrics },
        { "batch", lsn_batch_run },
        { "stats", l_stats },
        { "storage_stats", l_storage_stats },
        { "size_info", l_size_info },
        { "verify", l_verify },
        { "compact", l_compact },
        { "backup", l_backup },
        { "path", l_store_path },
        { "origin", l_store_origin },
        { "close", l_store_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_store_close },
        { "__close", l_store_close },
        { "__tostring", l_store_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg view_meta[] = {
        { "__gc", l_view_gc },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_STORE, methods, meta);
    /* a store writes as a batch does: one list serves both */
    lsn_class_add_methods(L, LSN_STORE, lsn_write_methods);
    lsn_newclass(L, LSN_VIEW, NULL, view_meta);
}
