/* synaptic.store: the Lua face of the storage engine. */
#include "lua/lsn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LSN_VIEW "synaptic.weights_view"
#define LSN_STORE_STATS "synaptic.store_stats"

/* The handle's checks (lsn_check_store, lsn_store_pin): lsn_store_handle.c. */

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
    lua_createtable(L, 0, 8);
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
    /* a cut WAL's lost writes cannot be counted: no count rather than 0 */
    if (!d->cut) {
        lua_pushinteger(L, (lua_Integer)d->nwrites);
        lua_setfield(L, -2, "dropped_writes");
    }
    lua_pushinteger(L, (lua_Integer)d->ndamaged);
    lua_setfield(L, -2, "damaged_records");
    lua_createtable(L, (int)d->nnames, 0);
    for (size_t i = 0; i < d->nnames; i++) {
        lua_pushstring(L, d->names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "dropped");
}

int lsn_store_open(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);   /* a number is a mistake, not a path */
    const char *path = lua_tostring(L, 1);
    sn_store_opts o;
    read_opts(L, 2, &o);
    /* userdata first, resource second: a memory error cannot leak a db */
    lsn_store *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->s = NULL;
    u->pins = 0;
    u->in_batch = 0;
    u->close_deferrable = u->close_pending = 0;
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
    if (u->s && u->pins && u->close_deferrable) {
        u->close_pending = 1;   /* the running call closes it once it has let go */
        lua_pushboolean(L, 1);
        return 1;
    }
    if (u->s && u->pins)
        return luaL_error(L, "close: the store is in use by a running call "
                             "(from its metamethod, finalizer or conflict resolver); "
                             "close it after that call returns");
    if (u->s) {
        sn_store_close(u->s);
        u->s = NULL;
    }
    u->s = NULL;
    lua_pushboolean(L, 1);
    return 1;
}

/* A pinned store is reachable from its pin, so it is collected only at
 * lua_close in the middle of a call (os.exit from a metamethod): that call
 * never resumes, and closing under it is what must not happen. */
static int l_store_gc(lua_State *L)
{
    lsn_store *u = luaL_checkudata(L, 1, LSN_STORE);
    if (u->s && !u->pins) sn_store_close(u->s);
    u->s = NULL;
    return 0;
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
    lsn_write_target(L, &b);   /* a closed store is reported first */
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
            if (lua_type(L, -1) != LUA_TSTRING || (strcmp(lua_tostring(L, -1), "shape") != 0 &&
                                                   strcmp(lua_tostring(L, -1), "build_on_merge") != 0))
                luaL_argerror(L, 6, "meta may only hold shape and build_on_merge");
        }
        lua_pushliteral(L, "build_on_merge");   /* raw: no metamethod runs (lsn_pin.c) */
        int t = lua_rawget(L, 6);
        luaL_argcheck(L, t == LUA_TNIL || t == LUA_TBOOLEAN, 6, "build_on_merge must be a boolean");
        in.build_on_merge = lua_toboolean(L, -1);
        lua_pop(L, 1);
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
    /* the weights, bias and shape tables may have run Lua code */
    sn_store *s = lsn_write_target(L, &b);
    sn_err e;
    uint64_t version;
    int rc = sn_put_weights(s, b, &in, &version, &e);
    if (rc) return lsn_result(L, "put_weights", rc, &e);
    lua_pushinteger(L, (lua_Integer)version);
    return 1;
}

static int l_view_release(lua_State *L)
{
    sn_weights_view_release(luaL_checkudata(L, 1, LSN_VIEW));
    return 0;
}

static void set_num(lua_State *L, const char *k, lua_Number v) { lua_pushnumber(L, v); lua_setfield(L, -2, k); }
static void set_int(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }

/* The view pins RocksDB memory between the get and the load, and the
 * floats allocated in between can run finalizers: the store stays pinned
 * open, and the view is a to-be-closed slot, released (before the pin) on
 * any raise rather than at a later collection, after the store is gone. */
static int l_get_weights(lua_State *L)
{
    lsn_check_store(L, 1);
    size_t len, olen = 0;
    const char *expert = check_id(L, 2, &len);
    int64_t layer = check_layer(L, 3);
    /* a version number, or a write's identity { hlc =, origin = } (a pin) */
    lua_Integer version = 0, hlc = 0;
    const char *origin = NULL;
    if (lua_type(L, 4) == LUA_TTABLE) {
        lua_getfield(L, 4, "hlc");
        lua_getfield(L, 4, "origin");
        luaL_argcheck(L, lua_isinteger(L, -2) && lua_type(L, -1) == LUA_TSTRING, 4,
                      "an identity needs an integer hlc and a string origin");
        hlc = lua_tointeger(L, -2);
        origin = lua_tolstring(L, -1, &olen);   /* kept alive on the stack below */
    } else if (!lua_isnoneornil(L, 4)) {
        /* named here: luaL_argerror says '?' when the method is called as a
         * plain function (pcall(store.get_weights, ...)); counted as a method */
        int isint = 0;
        version = lua_type(L, 4) == LUA_TNUMBER ? lua_tointegerx(L, 4, &isint) : 0;
        if (!isint)
            return luaL_error(L, "bad argument #3 to 'get_weights' (version must be an integer, got %s)",
                              lua_type(L, 4) == LUA_TNUMBER ? "a fraction" : luaL_typename(L, 4));
        if (version < 0)
            return luaL_error(L, "bad argument #3 to 'get_weights' (version must not be negative)");
        if (version == 0) { lua_pushnil(L); return 1; }   /* versions count from 1: none is 0 */
    }
    sn_store *s = lsn_store_pin(L, 1);
    sn_weights_view *v = lua_newuserdatauv(L, sizeof *v, 0);
    memset(v, 0, sizeof *v);
    luaL_setmetatable(L, LSN_VIEW);
    lua_toclose(L, -1);
    sn_err e;
    int rc = origin ? sn_get_weights_at(s, expert, len, layer, (uint64_t)hlc, origin, olen, v, &e)
                    : sn_get_weights(s, expert, len, layer, (uint64_t)version, v, &e);
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
    if (sn_map_get(f, "merge")->type == SN_STR) {   /* a merge of concurrent heads: how */
        lsn_push_value(L, sn_map_get(f, "merge"));
        lua_setfield(L, -2, "merge");
    }
    sn_weights_view_release(v);
    return 3;
}

/* hlc, origin of the layer's current write, without reading its record */
static int l_current_identity(lua_State *L)
{
    lsn_check_store(L, 1);
    size_t len;
    const char *expert = check_id(L, 2, &len);
    int64_t layer = check_layer(L, 3);
    sn_store *s = lsn_check_store(L, 1);
    uint64_t hlc;
    char origin[37];
    sn_err e;
    int rc = sn_current_identity(s, expert, len, layer, &hlc, origin, &e);
    if (rc == SN_NOTFOUND) { lua_pushnil(L); return 1; }
    if (rc) return lsn_result(L, "current_identity", rc, &e);
    lua_pushinteger(L, (lua_Integer)hlc);
    lua_pushstring(L, origin);
    return 2;
}

static int l_weights_epoch(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sn_weights_epoch(lsn_check_store(L, 1)));
    return 1;
}

static int l_layers(lua_State *L)
{
    lsn_check_store(L, 1);
    size_t len;
    const char *expert = check_id(L, 2, &len);
    sn_arena *a = lsn_arena(L);
    sn_store *s = lsn_check_store(L, 1);
    sn_value out;
    sn_err e;
    int rc = sn_list_layers(s, expert, len, a, &out, &e);
    return lsn_value_result(L, "layers", rc, &e, &out);
}

static int l_weight_versions(lua_State *L)
{
    lsn_check_store(L, 1);
    size_t len;
    const char *expert = check_id(L, 2, &len);
    int64_t layer = check_layer(L, 3);
    sn_arena *a = lsn_arena(L);
    sn_store *s = lsn_check_store(L, 1);
    sn_value out;
    sn_err e;
    int rc = sn_weight_versions(s, expert, len, layer, a, &out, &e);
    return lsn_value_result(L, "weight_versions", rc, &e, &out);
}


/* ---- maintenance ----------------------------------------------------------------- */

static void human_size(char *buf, size_t cap, double bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    while (bytes >= 1024 && u < 4) { bytes /= 1024; u++; }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
}

static int l_rocks_text(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    char *text;
    sn_err e;
    int rc = sn_stats_text(s, &text, &e);
    if (rc) return lsn_result(L, "rocksdb_stats", rc, &e);
    lua_pushstring(L, text);
    free(text);
    return 1;
}

/* storage_stats' table; the store is taken after it is made, as making it
 * can run finalizers. */
static int push_storage(lua_State *L, const char *fn, sn_storage_info *st)
{
    lua_createtable(L, 0, 16);
    sn_err e;
    int rc = sn_storage_stats(lsn_check_store(L, 1), st, &e);
    if (rc) return lsn_result(L, fn, rc, &e);
    set_int(L, "total_bytes", (lua_Integer)st->total_bytes);
    set_int(L, "file_count", (lua_Integer)st->file_count);
    set_int(L, "checkpoint_count", (lua_Integer)st->checkpoint_count);
    set_int(L, "weight_records", (lua_Integer)st->weight_records);
    set_int(L, "raw_bytes", (lua_Integer)st->raw_bytes);
    set_int(L, "stored_bytes", (lua_Integer)st->stored_bytes);
    set_num(L, "compression_ratio",
            st->raw_bytes ? (double)st->stored_bytes / (double)st->raw_bytes : 1.0);
    char hs[32];
    human_size(hs, sizeof hs, (double)st->total_bytes);
    lua_pushstring(L, hs);
    lua_setfield(L, -2, "human_size");
    return 1;
}

static int l_storage_stats(lua_State *L)
{
    sn_storage_info st;
    return push_storage(L, "storage_stats", &st);
}

/* storage_stats plus RocksDB's per column family estimates, in a table
 * that prints itself (synaptic.store_stats). */
static int l_stats(lua_State *L)
{
    sn_storage_info st;
    if (push_storage(L, "stats", &st) != 1) return 2;
    lua_createtable(L, SN_CF_COUNT, 0);
    sn_cf_info cf[SN_CF_COUNT];
    uint64_t cache, keys = 0, memtables = 0;
    sn_cf_stats(lsn_check_store(L, 1), cf, &cache);
    for (int i = 0; i < SN_CF_COUNT; i++) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, cf[i].name);
        lua_setfield(L, -2, "name");
        set_int(L, "keys", (lua_Integer)cf[i].keys);
        set_int(L, "sst_bytes", (lua_Integer)cf[i].sst_bytes);
        set_int(L, "blob_bytes", (lua_Integer)cf[i].blob_bytes);
        set_int(L, "memtable_bytes", (lua_Integer)cf[i].memtable_bytes);
        lua_rawseti(L, -2, i + 1);
        keys += cf[i].keys;
        memtables += cf[i].memtable_bytes;
    }
    lua_setfield(L, -2, "column_families");
    set_int(L, "keys", (lua_Integer)keys);
    set_int(L, "memtable_bytes", (lua_Integer)memtables);
    set_int(L, "block_cache_bytes", (lua_Integer)cache);
    lua_pushstring(L, sn_store_path(lsn_check_store(L, 1)));
    lua_setfield(L, -2, "path");
    luaL_setmetatable(L, LSN_STORE_STATS);
    return 1;
}

/* Reads back what l_stats stored; a field the user changed to a
 * non-number prints as 0 rather than raising inside tostring. */
static lua_Integer int_field(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    lua_Integer v = lua_tointegerx(L, -1, NULL);
    lua_pop(L, 1);
    return v;
}

static void add_size(luaL_Buffer *b, lua_Integer bytes, const char *fmt)
{
    char hs[32], line[64];
    human_size(hs, sizeof hs, (double)bytes);
    snprintf(line, sizeof line, fmt, hs);
    luaL_addstring(b, line);
}

static int l_stats_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_getfield(L, 1, "path");
    lua_pushfstring(L, "synaptic.store stats (%s)\n", luaL_optstring(L, -1, "?"));
    lua_remove(L, -2);
    luaL_addvalue(&b);
    add_size(&b, int_field(L, 1, "total_bytes"), "  size         %s");
    lua_pushfstring(L, " in %I files\n  weights      %I records, ", int_field(L, 1, "file_count"),
                    int_field(L, 1, "weight_records"));
    luaL_addvalue(&b);
    add_size(&b, int_field(L, 1, "raw_bytes"), "%s raw, ");
    add_size(&b, int_field(L, 1, "stored_bytes"), "%s stored\n");
    lua_pushfstring(L, "  checkpoints  %I\n", int_field(L, 1, "checkpoint_count"));
    luaL_addvalue(&b);
    add_size(&b, int_field(L, 1, "block_cache_bytes"), "  block cache  %s\n");
    luaL_addstring(&b, "  column family       keys        sst       blob   memtable");
    lua_getfield(L, 1, "column_families");
    for (lua_Integer i = 1; lua_istable(L, -1) && lua_geti(L, -1, i) == LUA_TTABLE; i++) {
        int cf = lua_gettop(L);
        char line[160], sizes[3][32];
        human_size(sizes[0], sizeof sizes[0], (double)int_field(L, cf, "sst_bytes"));
        human_size(sizes[1], sizeof sizes[1], (double)int_field(L, cf, "blob_bytes"));
        human_size(sizes[2], sizeof sizes[2], (double)int_field(L, cf, "memtable_bytes"));
        lua_getfield(L, cf, "name");
        snprintf(line, sizeof line, "\n  %-16s %7lld %10s %10s %10s", luaL_optstring(L, -1, "?"),
                 (long long)int_field(L, cf, "keys"), sizes[0], sizes[1], sizes[2]);
        lua_pop(L, 2);
        luaL_addstring(&b, line);
    }
    lua_pop(L, 2);
    luaL_pushresult(&b);
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

static int l_compact(lua_State *L)
{
    sn_err e;
    return lsn_done(L, "compact", sn_compact(lsn_check_store(L, 1), &e), &e);
}

const luaL_Reg lsn_write_methods[] = {
    { "put_weights", l_put_weights },
    { NULL, NULL },
};

void lsn_store_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "get_weights", l_get_weights },
        { "weight_versions", l_weight_versions },
        { "layers", l_layers },
        { "current_identity", l_current_identity },
        { "weights_epoch", l_weights_epoch },
        { "conflicts", lsn_store_conflicts },
        { "batch", lsn_batch_run },
        { "stats", l_stats },
        { "rocksdb_stats", l_rocks_text },
        { "storage_stats", l_storage_stats },
        { "size_info", l_size_info },
        { "verify", lsn_store_verify },
        { "compact", l_compact },
        { "backup", lsn_store_backup },
        { "path", l_store_path },
        { "origin", l_store_origin },
        { "close", l_store_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_store_gc },
        { "__close", l_store_close },
        { "__tostring", l_store_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg view_meta[] = {
        { "__gc", l_view_release },
        { "__close", l_view_release },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_STORE, methods, meta);
    /* a store writes as a batch does: one list serves both */
    lsn_class_add_methods(L, LSN_STORE, lsn_write_methods);
    lsn_class_add_methods(L, LSN_STORE, lsn_record_methods);
    lsn_class_add_methods(L, LSN_STORE, lsn_record_write_methods);
    lsn_newclass(L, LSN_VIEW, NULL, view_meta);
    static const luaL_Reg stats_meta[] = {
        { "__tostring", l_stats_tostring },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_STORE_STATS, NULL, stats_meta);
}
