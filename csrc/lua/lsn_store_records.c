/* The record methods of synaptic.store (and of batches, for the writes):
 * configs, checkpoints, system state and metrics. lsn_store.c registers
 * the type and keeps weights and maintenance. */
#include "lua/lsn.h"

#include <math.h>

static const char *check_id(lua_State *L, int idx, size_t *len)
{
    return luaL_checklstring(L, idx, len);
}

/* ---- configs and checkpoints --------------------------------------------- */

/* Reads that take an id and return a value: one shape, one function. */
typedef int (*keyed_read)(sn_store *, const char *, size_t, sn_arena *, sn_value *, sn_err *);
typedef int (*whole_read)(sn_store *, sn_arena *, sn_value *, sn_err *);

/* The store is taken last: making the arena can run a collection, and so
 * finalizers that might close it. */
static int read_keyed(lua_State *L, const char *fn, keyed_read read)
{
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_arena *a = lsn_arena(L);
    sn_store *s = lsn_check_store(L, 1);
    sn_value out;
    sn_err e;
    int rc = read(s, id, len, a, &out, &e);
    return lsn_value_result(L, fn, rc, &e, &out);
}

static int read_whole(lua_State *L, const char *fn, whole_read read)
{
    sn_arena *a = lsn_arena(L);
    sn_store *s = lsn_check_store(L, 1);
    sn_value out;
    sn_err e;
    int rc = read(s, a, &out, &e);
    return lsn_value_result(L, fn, rc, &e, &out);
}

static int l_get_config(lua_State *L) { return read_keyed(L, "get_config", sn_get_config); }
static int l_get_checkpoint(lua_State *L) { return read_keyed(L, "get_checkpoint", sn_get_checkpoint); }
static int l_get_state(lua_State *L) { return read_keyed(L, "get_state", sn_get_state); }
static int l_list_experts(lua_State *L) { return read_whole(L, "list_experts", sn_list_experts); }
static int l_list_checkpoints(lua_State *L) { return read_whole(L, "list_checkpoints", sn_list_checkpoints); }

static int l_put_config(lua_State *L)
{
    sn_batch *b;
    lsn_write_target(L, &b);
    luaL_checktype(L, 2, LUA_TTABLE);
    sn_arena *a = lsn_arena(L);
    sn_value cfg;
    lsn_to_value(L, 2, a, &cfg, "put_config");
    sn_store *s = lsn_write_target(L, &b);   /* after the calls that can run Lua code */
    sn_err e;
    return lsn_done(L, "put_config", sn_put_config(s, b, &cfg, &e), &e);
}

static int l_create_checkpoint(lua_State *L)
{
    sn_batch *b;
    lsn_write_target(L, &b);
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
    sn_store *s = lsn_write_target(L, &b);   /* after the calls that can run Lua code */
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
    lsn_check_store(L, 1);
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_store *s = lsn_check_store(L, 1);   /* after the calls that can run Lua code */
    sn_err e;
    int rc = sn_restore_checkpoint(s, id, len, &e);
    if (rc == SN_NOTFOUND) return not_found(L, "restore_checkpoint", id);
    return lsn_done(L, "restore_checkpoint", rc, &e);
}

static int l_delete_checkpoint(lua_State *L)
{
    sn_batch *b;
    lsn_write_target(L, &b);
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_store *s = lsn_write_target(L, &b);   /* after the calls that can run Lua code */
    sn_err e;
    int rc = sn_delete_checkpoint(s, b, id, len, &e);
    if (rc == SN_NOTFOUND) return not_found(L, "delete_checkpoint", id);
    return lsn_done(L, "delete_checkpoint", rc, &e);
}

/* true when there was something to delete, false when the expert had
 * nothing (deleting twice is no mistake: a peer may have deleted it first) */
static int l_delete_expert(lua_State *L)
{
    sn_batch *b;
    lsn_write_target(L, &b);
    size_t len;
    const char *id = check_id(L, 2, &len);
    sn_store *s = lsn_write_target(L, &b);   /* after the calls that can run Lua code */
    sn_err e;
    int found;
    int rc = sn_delete_expert(s, b, id, len, &found, &e);
    if (rc) return lsn_done(L, "delete_expert", rc, &e);
    lua_pushboolean(L, found);
    return 1;
}

/* ---- state and metrics --------------------------------------------------- */

static int l_put_state(lua_State *L)
{
    sn_batch *b;
    lsn_write_target(L, &b);
    size_t len;
    const char *key = check_id(L, 2, &len);
    luaL_checkany(L, 3);
    sn_arena *a = lsn_arena(L);
    sn_value v;
    lsn_to_value(L, 3, a, &v, "put_state");
    sn_store *s = lsn_write_target(L, &b);   /* after the calls that can run Lua code */
    sn_err e;
    return lsn_done(L, "put_state", sn_put_state(s, b, key, len, &v, &e), &e);
}

static int l_record_metric(lua_State *L)
{
    sn_batch *b;
    lsn_write_target(L, &b);
    size_t len;
    const char *name = check_id(L, 2, &len);
    double value = luaL_checknumber(L, 3);
    double ts = luaL_optnumber(L, 4, sn_now());
    sn_store *s = lsn_write_target(L, &b);   /* after the calls that can run Lua code */
    sn_err e;
    return lsn_done(L, "record_metric", sn_record_metric(s, b, name, len, value, ts, &e), &e);
}

static int l_metrics(lua_State *L)
{
    lsn_check_store(L, 1);
    size_t len;
    const char *name = check_id(L, 2, &len);
    double from = luaL_optnumber(L, 3, -HUGE_VAL);
    double to = luaL_optnumber(L, 4, HUGE_VAL);
    sn_arena *a = lsn_arena(L);
    sn_store *s = lsn_check_store(L, 1);   /* after the calls that can run Lua code */
    sn_value out;
    sn_err e;
    int rc = sn_metrics(s, name, len, from, to, a, &out, &e);
    return lsn_value_result(L, "metrics", rc, &e, &out);
}

static int l_state_keys(lua_State *L) { return read_whole(L, "state_keys", sn_state_keys); }
static int l_metric_names(lua_State *L) { return read_whole(L, "metric_names", sn_metric_names); }

static int l_metric_count(lua_State *L)
{
    size_t len;
    const char *name = check_id(L, 2, &len);
    double from = luaL_optnumber(L, 3, -HUGE_VAL), to = luaL_optnumber(L, 4, HUGE_VAL);
    sn_store *s = lsn_check_store(L, 1);
    uint64_t n;
    sn_err e;
    int rc = sn_metric_count(s, name, len, from, to, &n, &e);
    if (rc) return lsn_result(L, "metric_count", rc, &e);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int l_prune_metrics(lua_State *L)
{
    size_t len;
    const char *name = check_id(L, 2, &len);
    double before = luaL_checknumber(L, 3);
    sn_batch *b;
    sn_store *s = lsn_write_target(L, &b);
    uint64_t n;
    sn_err e;
    int rc = sn_prune_metrics(s, b, name, len, before, &n, &e);
    if (rc) return lsn_result(L, "prune_metrics", rc, &e);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

const luaL_Reg lsn_record_methods[] = {
    { "get_config", l_get_config },
    { "list_experts", l_list_experts },
    { "get_checkpoint", l_get_checkpoint },
    { "list_checkpoints", l_list_checkpoints },
    { "restore_checkpoint", l_restore_checkpoint },
    { "get_state", l_get_state },
    { "state_keys", l_state_keys },
    { "metrics", l_metrics },
    { "metric_names", l_metric_names },
    { "metric_count", l_metric_count },
    { NULL, NULL },
};

const luaL_Reg lsn_record_write_methods[] = {
    { "put_config", l_put_config },
    { "delete_expert", l_delete_expert },
    { "create_checkpoint", l_create_checkpoint },
    { "delete_checkpoint", l_delete_checkpoint },
    { "put_state", l_put_state },
    { "record_metric", l_record_metric },
    { "prune_metrics", l_prune_metrics },
    { NULL, NULL },
};
