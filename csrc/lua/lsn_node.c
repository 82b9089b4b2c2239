/* synaptic.node: a sync engine plus its ZeroMQ transport.
 *
 * The node holds its own engine (lsn_p2p.h: the store in uservalue 1, a Lua
 * resolver in uservalue 2); all socket work happens inside node:poll on the
 * calling thread. */
#include "base/sn_signal.h"
#include "lua/lsn_p2p.h"
#include "net/sn_net.h"

#include <stdlib.h>
#include <string.h>

#define LSN_NODE "synaptic.node"

typedef struct lsn_node {
    lsn_sync sync;
    sn_net *net;           /* NULL: closed */
} lsn_node;

static lsn_node *check_node(lua_State *L, int idx)
{
    lsn_node *u = luaL_checkudata(L, idx, LSN_NODE);
    if (!u->net) luaL_error(L, "attempt to use a closed node");
    lsn_sync_check(L, &u->sync, "node");
    return u;
}

/* The node's engine, bound to this call, the node and its store pinned
 * (lsn_sync_enter): call it after the last argument conversion. */
static sn_sync *enter(lua_State *L, int self)
{
    lsn_node *u = check_node(L, self);
    sn_sync *y = lsn_sync_enter(L, &u->sync, self);
    if (!u->net) luaL_error(L, "attempt to use a closed node");   /* closed before the pin */
    return y;
}

static void copy_key(lua_State *L, int idx, const char *field, char out[SN_Z85_KEY_LEN + 1])
{
    lua_getfield(L, idx, field);
    size_t n = 0;
    const char *k = lua_tolstring(L, -1, &n);
    if (!k || n != SN_Z85_KEY_LEN) luaL_error(L, "node: curve.%s must be a 40-character Z85 key", field);
    memcpy(out, k, n + 1);
    lua_pop(L, 1);
}

/* The transport from the config at cfg. Every string read from the config
 * stays on the stack until sn_net_new has copied it: a field may come from
 * an __index function, held by nothing else. */
static int make_net(lua_State *L, lsn_node *u, int cfg, sn_err *e)
{
    int top = lua_gettop(L);
    sn_net_config c;
    sn_net_default_config(&c);
    lua_getfield(L, cfg, "listen");
    c.listen = lua_tostring(L, -1);
    if (lua_getfield(L, cfg, "max_message_bytes") == LUA_TNUMBER && lua_isinteger(L, -1))
        c.max_message_bytes = (size_t)lua_tointeger(L, -1);
    if (lua_getfield(L, cfg, "send_hwm") == LUA_TNUMBER && lua_isinteger(L, -1))
        c.send_hwm = (int)lua_tointeger(L, -1);
    if (lua_getfield(L, cfg, "recv_hwm") == LUA_TNUMBER && lua_isinteger(L, -1))
        c.recv_hwm = (int)lua_tointeger(L, -1);
    const char *auth[SN_NET_MAX_AUTHORIZED], *ids[SN_NET_MAX_AUTHORIZED];
    if (lua_getfield(L, cfg, "curve") == LUA_TTABLE) {
        int ci = lua_gettop(L);
        c.curve = 1;
        copy_key(L, ci, "public", c.public_key);
        copy_key(L, ci, "secret", c.secret_key);
        int named = lua_getfield(L, ci, "node_ids") == LUA_TTABLE ? lua_gettop(L) : 0;
        if (lua_getfield(L, ci, "authorized") == LUA_TTABLE) {
            int list = lua_gettop(L);
            lua_Integer n = luaL_len(L, list);
            if (n > SN_NET_MAX_AUTHORIZED)
                luaL_argerror(L, 2, lua_pushfstring(L, "at most %d authorized keys", SN_NET_MAX_AUTHORIZED));
            luaL_checkstack(L, 2 * (int)n, "authorized keys");
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, list, i);
                auth[c.nauthorized] = lua_tostring(L, -1);   /* left on the stack */
                ids[c.nauthorized] = NULL;
                if (named && auth[c.nauthorized]) {
                    lua_pushvalue(L, -1);
                    lua_gettable(L, named);
                    ids[c.nauthorized] = lua_tostring(L, -1);   /* left on the stack */
                }
                c.nauthorized++;
            }
        }
        c.authorized = auth;
        c.authorized_ids = ids;
    }
    int rc = sn_net_new(&c, sn_sync_config_of(u->sync.y)->node_id, &u->net, e);
    lua_settop(L, top);
    return rc;
}

/* Connects to the config's peers. Their endpoints and keys are all read
 * (and kept on the stack) first: the engine is entered only after the last
 * call that can run Lua code. */
static int connect_peers(lua_State *L, lsn_node *u, int self, int cfg)
{
    lua_getfield(L, cfg, "peers");
    lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
    if (n > SN_SYNC_MAX_PEERS) luaL_argerror(L, 2, "too many peers");
    int list = lua_gettop(L);
    luaL_checkstack(L, 2 * (int)n + 4, "peers");
    for (lua_Integer i = 1; i <= n; i++) {
        int p = lua_gettop(L) + 1;
        lua_geti(L, list, i);
        lua_getfield(L, p, "endpoint");
        lua_getfield(L, p, "public");
        lua_remove(L, p);
        /* convert now (a number becomes a string, which allocates), not later */
        lua_tostring(L, -2);
        lua_tostring(L, -1);
    }
    sn_sync *y = enter(L, self);
    sn_err e;
    int rc = sn_net_attach(u->net, y, &e);
    if (rc) return lsn_result(L, "node", rc, &e);
    for (lua_Integer i = 0; i < n; i++) {
        int at = list + 1 + 2 * (int)i;
        const char *ep = lua_type(L, at) == LUA_TSTRING ? lua_tostring(L, at) : NULL;
        const char *pub = lua_type(L, at + 1) == LUA_TSTRING ? lua_tostring(L, at + 1) : NULL;
        rc = ep ? sn_net_add_peer(u->net, y, ep, pub, &e) : SN_OK;
        if (rc) return lsn_result(L, "node", rc, &e);
    }
    lua_pushvalue(L, self);
    return 1;
}

static int l_node_new(lua_State *L)
{
    lsn_check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lsn_node *u = lua_newuserdatauv(L, sizeof *u, LSN_SYNC_UVALUES);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, LSN_NODE);
    int self = lua_gettop(L);
    lsn_sync_open(L, &u->sync, self, 1, 2);
    sn_err e;
    int rc = make_net(L, u, 2, &e);
    if (rc) return lsn_result(L, "node", rc, &e);
    return connect_peers(L, u, self, 2);
}

/* true, plus "interrupted" when a signal cut the wait short or a trapped
 * one (core.trap_signals) is pending: the caller's loop sees it at once. */
static int poll_result(lua_State *L, int interrupted)
{
    lua_pushboolean(L, 1);
    if (!interrupted) return 1;
    lua_pushliteral(L, "interrupted");
    return 2;
}

static int l_node_poll(lua_State *L)
{
    lsn_node *u = check_node(L, 1);   /* the userdata stays; its net is read after enter */
    lua_Integer ms = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, ms >= 0 && ms <= 3600000, 2, "timeout must be 0 to 3600000 ms");
    sn_sync *y = enter(L, 1);
    if (sn_signal_caught()) return poll_result(L, 1);
    sn_err e;
    int interrupted;
    int rc = sn_net_poll(u->net, y, (int)ms, &interrupted, &e);
    if (rc) return lsn_result(L, "poll", rc, &e);
    return poll_result(L, interrupted || sn_signal_caught());
}

static int l_node_run(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    lua_Number secs = luaL_checknumber(L, 2);
    luaL_argcheck(L, secs >= 0 && secs <= 1e7, 2, "seconds must be 0 to 1e7");
    sn_sync *y = enter(L, 1);
    double end = sn_now() + secs;
    sn_err e;
    int interrupted = 0;
    /* an untrapped SIGINT reaches Lua's own handler, which sets a hook to
     * raise "interrupted!" at the next Lua instruction: a signal that
     * lands between two waits (no EINTR) shows as that hook */
    lua_Hook hook = lua_gethook(L);
    do {
        if (sn_signal_caught() || lua_gethook(L) != hook) return poll_result(L, 1);
        double left = (end - sn_now()) * 1000;
        int rc = sn_net_poll(u->net, y, left > 50 ? 50 : left > 0 ? (int)left : 0, &interrupted, &e);
        if (rc) return lsn_result(L, "run", rc, &e);
    } while (!interrupted && sn_now() < end);
    return poll_result(L, interrupted || sn_signal_caught());
}

static int l_node_address(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *a = sn_net_address(u->net);
    if (*a) lua_pushstring(L, a);   /* copied before anything can run */
    else lua_pushnil(L);
    return 1;
}

static int l_node_connect(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *ep = luaL_checkstring(L, 2);
    const char *pub = luaL_optstring(L, 3, NULL);
    sn_sync *y = enter(L, 1);
    sn_err e;
    int rc = sn_net_add_peer(u->net, y, ep, pub, &e);
    if (rc) return lsn_result(L, "connect", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_node_disconnect(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *id = luaL_checkstring(L, 2);
    sn_sync *y = enter(L, 1);
    sn_err e;
    int r = sn_net_disconnect(u->net, y, id, &e);
    if (r < 0) return lsn_result(L, "disconnect", e.code, &e);
    lua_pushboolean(L, r);
    return 1;
}

/* node:authorize(public [, node_id]) -> true */
static int l_node_authorize(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *key = luaL_checkstring(L, 2);
    const char *id = luaL_optstring(L, 3, NULL);
    sn_err e;
    int rc = sn_net_authorize(u->net, key, id, &e);
    if (rc) return lsn_result(L, "authorize", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* node:revoke(public) -> whether it was authorized */
static int l_node_revoke(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *key = luaL_checkstring(L, 2);
    sn_sync *y = enter(L, 1);
    sn_err e;
    int r = sn_net_revoke(u->net, y, key, &e);
    if (r < 0) return lsn_result(L, "revoke", e.code, &e);
    lua_pushboolean(L, r);
    return 1;
}

/* Tests only (SYNAPTIC_TEST_HOOKS): the routing id later connections
 * claim, to play a forger. */
static int l_node_force_routing_id(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *id = luaL_checkstring(L, 2);
    sn_err e;
    int rc = sn_net_force_routing_id(u->net, id, &e);
    if (rc) return lsn_result(L, "_force_routing_id", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* Tests only (SYNAPTIC_TEST_HOOKS): bytes sent as they are on our
 * connection to an endpoint, to play a forger. */
static int l_node_send_raw(lua_State *L)
{
    lsn_node *u = check_node(L, 1);
    const char *ep = luaL_checkstring(L, 2);
    size_t len;
    const char *bytes = luaL_checklstring(L, 3, &len);
    sn_err e;
    int rc = sn_net_send_raw(u->net, ep, bytes, len, &e);
    if (rc) return lsn_result(L, "_send_raw", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* The transport's part of a node: closed with it, and its counters. */
static void node_close_net(lsn_sync *s)
{
    lsn_node *u = (lsn_node *)s;   /* the lsn_sync is its first member */
    if (u->net && s->y) sn_net_leave(u->net, s->y);
    sn_net_free(u->net);
    u->net = NULL;
}

static void node_stats(lua_State *L, lsn_sync *s)
{
    lsn_node *u = (lsn_node *)s;
    sn_net_stats st;
    sn_net_get_stats(u->net, &st);
    /* transport rejections are counted into the engine's as they happen;
     * refused handshakes never reach it, so add them here */
    lua_getfield(L, -1, "rejected");
    lua_Integer r = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, r + (lua_Integer)st.zap_denied);
    lua_setfield(L, -2, "rejected");
    lua_pushinteger(L, (lua_Integer)st.dropped);
    lua_setfield(L, -2, "dropped");
    lua_pushinteger(L, (lua_Integer)st.zap_denied);
    lua_setfield(L, -2, "unauthorized");
    lua_pushinteger(L, (lua_Integer)st.forged);
    lua_setfield(L, -2, "forged");
    lua_pushinteger(L, (lua_Integer)st.learned);
    lua_setfield(L, -2, "learned");
}

static int l_node_tostring(lua_State *L)
{
    lsn_node *u = luaL_checkudata(L, 1, LSN_NODE);
    if (!u->net) { lua_pushliteral(L, "synaptic.node (closed)"); return 1; }
    const char *a = sn_net_address(u->net);
    lua_pushfstring(L, "synaptic.node (%s)", *a ? a : "not listening");
    return 1;
}

static int l_keypair(lua_State *L)
{
    char pub[SN_Z85_KEY_LEN + 1], sec[SN_Z85_KEY_LEN + 1];
    sn_err e;
    int rc = sn_keypair(pub, sec, &e);
    if (rc) return lsn_result(L, "keypair", rc, &e);
    lua_pushstring(L, pub);
    lua_pushstring(L, sec);
    return 2;
}

void lsn_node_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "poll", l_node_poll },
        { "run", l_node_run },
        { "address", l_node_address },
        { "connect", l_node_connect },
        { "disconnect", l_node_disconnect },
        { "authorize", l_node_authorize },
        { "revoke", l_node_revoke },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__tostring", l_node_tostring },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_NODE, methods, meta);
    static const lsn_sync_kind kind = { LSN_NODE, "node", node_close_net, node_stats };
    lsn_sync_add_methods(L, &kind);
    if (getenv("SYNAPTIC_TEST_HOOKS")) {
        static const luaL_Reg hooks[] = { { "_force_routing_id", l_node_force_routing_id },
                                              { "_send_raw", l_node_send_raw }, { NULL, NULL } };
        lsn_class_add_methods(L, LSN_NODE, hooks);
    }
}

void lsn_node_open(lua_State *L)
{
    lua_pushcfunction(L, l_node_new);
    lua_setfield(L, -2, "node");
    lua_pushcfunction(L, l_keypair);
    lua_setfield(L, -2, "keypair");
}
