/* store:conflicts: the kept conflict versions of a layer or of a config,
 * as the core decoded them. A method of synaptic.store, in its own file
 * because it is the store's one view of replication. */
#include "lua/lsn.h"
#include "store/sn_replica.h"

#include <string.h>

static void set_identity(lua_State *L, const sn_conflict *c)
{
    lua_pushinteger(L, (lua_Integer)c->id.hlc);
    lua_setfield(L, -2, "hlc");
    lua_pushstring(L, c->id.origin);
    lua_setfield(L, -2, "origin");
}

static int push_weights_conflict(lua_State *L, const sn_conflict *c)
{
    const sn_value *f = &c->rec.fields;
    size_t nw = (size_t)sn_map_get(f, "n_weights")->u.i, nb = (size_t)sn_map_get(f, "n_biases")->u.i;
    lua_createtable(L, 0, 6);
    lsn_floats *w = lsn_floats_new(L, nw);
    lua_setfield(L, -2, "weights");
    lsn_floats *b = lsn_floats_new(L, nb);
    lua_setfield(L, -2, "biases");
    sn_part parts[2] = { { w->data, nw * sizeof(float) }, { b->data, nb * sizeof(float) } };
    sn_err e;
    int rc = sn_record_load(&c->rec, parts, 2, &e);
    if (rc) return lsn_result(L, "conflicts", rc, &e);
    lua_pushinteger(L, sn_map_get(f, "version")->u.i);
    lua_setfield(L, -2, "version");
    lua_pushnumber(L, sn_map_get(f, "timestamp")->u.n);
    lua_setfield(L, -2, "timestamp");
    set_identity(L, c);
    return 1;
}

static int push_config_conflict(lua_State *L, const sn_conflict *c)
{
    lua_createtable(L, 0, 3);
    lsn_push_value(L, &c->rec.fields);
    lua_setfield(L, -2, "config");
    set_identity(L, c);
    return 1;
}

/* store:conflicts(expert_id, layer) -> the losing weight versions of a layer;
 * store:conflicts(expert_id) -> the losing versions of its config. */
int lsn_store_conflicts(lua_State *L)
{
    size_t len;
    const char *expert = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, len > 0 && len <= SN_MAX_ID_LEN && !memchr(expert, 0, len), 2,
                  "expert_id must be 1 to 256 bytes without NUL");
    int weights = !lua_isnoneornil(L, 3);
    lua_Integer layer = weights ? luaL_checkinteger(L, 3) : 0;
    luaL_argcheck(L, layer >= 0 && layer <= SN_MAX_LAYER, 3, "layer out of range");
    sn_arena *a = lsn_arena(L);
    /* the store last: nothing after this runs Lua code before the core call */
    sn_store *s = lsn_check_store(L, 1);
    sn_conflict *list;
    size_t n;
    sn_err e;
    int rc = weights ? sn_weight_conflicts(s, expert, len, layer, a, &list, &n, &e)
                     : sn_config_conflicts(s, expert, len, a, &list, &n, &e);
    if (rc) return lsn_result(L, "conflicts", rc, &e);
    lua_createtable(L, (int)n, 0);
    int t = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        int r = weights ? push_weights_conflict(L, &list[i]) : push_config_conflict(L, &list[i]);
        if (r != 1) return r;   /* nil, message */
        lua_rawseti(L, t, (lua_Integer)i + 1);
    }
    return 1;
}
