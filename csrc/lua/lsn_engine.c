/* synaptic.sync_engine: the transport-free sync engine.
 *
 * The engine keeps its store alive (uservalue 1) and checks on every call
 * that the store is still open; its conflict resolver is lsn_p2p.c's. */
#include "lua/lsn_p2p.h"

#include <stdlib.h>
#include <string.h>

#define LSN_ENGINE "synaptic.sync_engine"

typedef lsn_sync lsn_engine;

static lsn_engine *check_engine(lua_State *L, int idx)
{
    lsn_engine *u = luaL_checkudata(L, idx, LSN_ENGINE);
    lsn_sync_check(L, u, "sync engine");
    return u;
}

/* For methods that read the engine while pushing tables (allocations, so
 * finalizers): the engine pinned open for the rest of the call. */
static sn_sync *pinned(lua_State *L, int idx)
{
    lsn_engine *u = check_engine(L, idx);
    lsn_pin(L, idx, &u->busy);
    if (!u->y) luaL_error(L, "attempt to use a closed sync engine");
    return u->y;
}

static int l_sync_engine(lua_State *L)
{
    lsn_check_store(L, 1);
    lsn_engine *u = lua_newuserdatauv(L, sizeof *u, LSN_SYNC_UVALUES);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, LSN_ENGINE);
    lsn_sync_open(L, u, -1, 1, 2);
    return 1;
}

static int l_engine_add_peer(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    sn_sync *y = lsn_sync_enter(L, u, 1);
    sn_err e;
    int rc = sn_sync_add_peer(y, id, n, &e);
    if (rc) return lsn_result(L, "add_peer", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* engine:advertise([endpoint [, public]]): what heartbeats say of this
 * engine (a node sets its own from its bound address). */
static int l_engine_advertise(lua_State *L)
{
    check_engine(L, 1);
    size_t eplen = 0, publen = 0;
    const char *ep = luaL_optlstring(L, 2, NULL, &eplen);
    const char *pub = luaL_optlstring(L, 3, NULL, &publen);
    luaL_argcheck(L, !ep || (eplen > 0 && eplen <= SN_SYNC_MAX_ENDPOINT && strlen(ep) == eplen), 2,
                  "endpoint must be 1 to 255 bytes without NUL");
    luaL_argcheck(L, !pub || (publen == SN_SYNC_KEY_LEN && strlen(pub) == publen), 3,
                  "public key must be 40 Z85 characters");
    lsn_engine *u = check_engine(L, 1);   /* again: the conversions allocate */
    sn_err e;
    int rc = sn_sync_set_self(u->y, ep, pub, &e);
    if (rc) return lsn_result(L, "advertise", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_engine_remove_peer(lua_State *L)
{
    check_engine(L, 1);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    lsn_engine *u = check_engine(L, 1);   /* again: the conversion allocates */
    lua_pushboolean(L, sn_sync_remove_peer(u->y, id, n));
    return 1;
}

static int l_engine_tick(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    lua_Number now = luaL_checknumber(L, 2);
    luaL_argcheck(L, now == now, 2, "time is NaN");
    sn_sync *y = lsn_sync_enter(L, u, 1);
    sn_err e;
    int rc = sn_sync_tick(y, now, &e);
    if (rc) return lsn_result(L, "tick", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_engine_receive(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    size_t n, len;
    const char *id = luaL_checklstring(L, 2, &n);
    const char *bytes = luaL_checklstring(L, 3, &len);
    sn_sync *y = lsn_sync_enter(L, u, 1);
    sn_err e;
    int accepted;
    int rc = sn_sync_receive(y, id, n, bytes, len, &accepted, &e);
    if (rc) return lsn_result(L, "receive", rc, &e);
    if (!accepted) {
        luaL_pushfail(L);
        lua_pushfstring(L, "rejected: %s", e.msg);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Tests only (SYNAPTIC_TEST_HOOKS): engine:_skip_settle(on) */
static int l_engine_skip_settle(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    int on = lua_toboolean(L, 2);
    sn_sync_test_skip_settle(lsn_sync_enter(L, u, 1), on);
    return 0;
}

static int push_outbox(lua_State *L, sn_sync *y)
{
    lua_createtable(L, (int)sn_sync_outbox_len(y), 0);
    char *to;
    unsigned char *bytes;
    size_t len;
    lua_Integer i = 0;
    /* strings are pushed before the C buffers are freed; a memory error
     * mid-way leaks at most the one message being pushed */
    while (sn_sync_next_out(y, &to, &bytes, &len)) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, to);
        lua_setfield(L, -2, "to");
        lua_pushlstring(L, (const char *)bytes, len);
        lua_setfield(L, -2, "bytes");
        free(to);
        free(bytes);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

static int l_engine_outbox(lua_State *L)
{
    return push_outbox(L, pinned(L, 1));
}

static int l_engine_digest(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    lsn_sync_enter(L, u, 1);   /* pins the store too */
    lua_getiuservalue(L, 1, 1);
    sn_store *s = lsn_check_store(L, -1);
    uint64_t d;
    sn_err e;
    int rc = sn_sync_digest(s, &d, &e);
    if (rc) return lsn_result(L, "digest", rc, &e);
    lua_pushinteger(L, (lua_Integer)d);
    return 1;
}

static int l_engine_tostring(lua_State *L)
{
    lsn_engine *u = luaL_checkudata(L, 1, LSN_ENGINE);
    if (u->y) lua_pushfstring(L, "synaptic.sync_engine (%s)", sn_sync_config_of(u->y)->node_id);
    else lua_pushliteral(L, "synaptic.sync_engine (closed)");
    return 1;
}

/* core._replication_raw(store, key, value|nil): tests only (see
 * sn_replica_raw); not part of the API. */
static int l_replication_raw(lua_State *L)
{
    lsn_check_store(L, 1);
    size_t klen, vlen = 0;
    const char *k = luaL_checklstring(L, 2, &klen);
    const char *v = luaL_optlstring(L, 3, NULL, &vlen);
    sn_store *s = lsn_check_store(L, 1);
    sn_err e;
    int rc = sn_replica_raw(s, (const unsigned char *)k, klen, v, vlen, &e);
    if (rc) return lsn_result(L, "_replication_raw", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

void lsn_engine_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "add_peer", l_engine_add_peer },
        { "remove_peer", l_engine_remove_peer },
        { "advertise", l_engine_advertise },
        { "tick", l_engine_tick },
        { "receive", l_engine_receive },
        { "outbox", l_engine_outbox },
        { "digest", l_engine_digest },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__tostring", l_engine_tostring },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_ENGINE, methods, meta);
    static const lsn_sync_kind kind = { LSN_ENGINE, "sync engine", NULL, NULL };
    lsn_sync_add_methods(L, &kind);
    if (getenv("SYNAPTIC_TEST_HOOKS")) {
        static const luaL_Reg hooks[] = { { "_skip_settle", l_engine_skip_settle }, { NULL, NULL } };
        lsn_class_add_methods(L, LSN_ENGINE, hooks);
    }
}

void lsn_engine_open(lua_State *L)
{
    lua_pushcfunction(L, l_sync_engine);
    lua_setfield(L, -2, "sync_engine");
    /* a raw write into the replication ranges can damage a store: only
     * the test suite, which asks for it by name, gets it */
    if (getenv("SYNAPTIC_TEST_HOOKS")) {
        lua_pushcfunction(L, l_replication_raw);
        lua_setfield(L, -2, "_replication_raw");
    }
}
