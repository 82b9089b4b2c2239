/* synaptic.nats_node: a sync engine plus its NATS transport (nats/sn_nats.h).
 *
 * The same shape as synaptic.node (lsn_node.c): its engine in an lsn_sync
 * (the store in uservalue 1, a Lua resolver in uservalue 2), and every
 * message taken inside node:poll on the calling thread.
 *
 * A gateway: with `listen` it also has a ZeroMQ transport (net/sn_net.h)
 * over the same engine, so a LAN mesh and remote nodes share one history.
 * The ZeroMQ side's poll ticks the engine and sends its outbox, handing
 * what is for no ZeroMQ connection to NATS (sn_net_config.fallback); then
 * NATS takes what it holds. */
#include "base/sn_signal.h"
#include "lua/lsn_p2p.h"
#include "nats/sn_nats.h"
#include "net/sn_net.h"

#include <stdlib.h>
#include <string.h>

#define LSN_NATS "synaptic.nats_node"

typedef struct lsn_nats {
    lsn_sync sync;
    sn_nats *nats;         /* NULL: closed */
    sn_net *net;           /* a gateway's ZeroMQ side; NULL: none */
} lsn_nats;

static lsn_nats *check_nats(lua_State *L, int idx)
{
    lsn_nats *u = luaL_checkudata(L, idx, LSN_NATS);
    if (!u->nats) luaL_error(L, "attempt to use a closed node");
    lsn_sync_check(L, &u->sync, "node");
    return u;
}

static sn_sync *enter(lua_State *L, int self)
{
    lsn_nats *u = check_nats(L, self);
    sn_sync *y = lsn_sync_enter(L, &u->sync, self);
    if (!u->nats) luaL_error(L, "attempt to use a closed node");
    return y;
}

/* A string field of the table at t, left on the stack (NULL when absent). */
static const char *field(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    return lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
}

static void copy_key(lua_State *L, int idx, const char *name, char out[SN_SEAL_Z85_LEN + 1])
{
    size_t n = 0;
    lua_getfield(L, idx, name);
    const char *k = lua_tolstring(L, -1, &n);
    if (!k || n != SN_SEAL_Z85_LEN) luaL_error(L, "node: curve.%s must be a 40-character Z85 key", name);
    memcpy(out, k, n + 1);
    lua_pop(L, 1);
}

static void read_keys(lua_State *L, int cfg, sn_nats_config *c, const char **auth, const char **ids)
{
    if (lua_getfield(L, cfg, "curve") != LUA_TTABLE) return;
    int ci = lua_gettop(L);
    c->curve = 1;
    copy_key(L, ci, "public", c->public_key);
    copy_key(L, ci, "secret", c->secret_key);
    int named = lua_getfield(L, ci, "node_ids") == LUA_TTABLE ? lua_gettop(L) : 0;
    if (lua_getfield(L, ci, "authorized") != LUA_TTABLE) return;
    int list = lua_gettop(L);
    lua_Integer n = luaL_len(L, list);
    if (n > SN_NATS_MAX_AUTHORIZED)
        luaL_argerror(L, 2, lua_pushfstring(L, "at most %d authorized keys", SN_NATS_MAX_AUTHORIZED));
    luaL_checkstack(L, 2 * (int)n + 4, "authorized keys");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, list, i);
        auth[c->nauthorized] = lua_tostring(L, -1);   /* left on the stack */
        ids[c->nauthorized] = NULL;
        if (named && auth[c->nauthorized]) {
            lua_pushvalue(L, -1);
            lua_gettable(L, named);
            ids[c->nauthorized] = lua_tostring(L, -1);   /* left on the stack */
        }
        c->nauthorized++;
    }
    c->authorized = auth;
    c->authorized_ids = ids;
}

static int to_nats(void *ud, sn_sync *y, const char *to, const unsigned char *bytes, size_t len)
{
    return sn_nats_send_to(ud, y, to, bytes, len);
}

/* A gateway's ZeroMQ side: the same keys as its NATS side (c). */
static int make_net(lua_State *L, lsn_nats *u, int cfg, const sn_nats_config *c, const char *listen, sn_err *e)
{
    sn_net_config nc;
    sn_net_default_config(&nc);
    nc.listen = listen;
    if (lua_getfield(L, cfg, "max_message_bytes") == LUA_TNUMBER && lua_isinteger(L, -1))
        nc.max_message_bytes = (size_t)lua_tointeger(L, -1);
    if (lua_getfield(L, cfg, "send_hwm") == LUA_TNUMBER && lua_isinteger(L, -1)) nc.send_hwm = (int)lua_tointeger(L, -1);
    if (lua_getfield(L, cfg, "recv_hwm") == LUA_TNUMBER && lua_isinteger(L, -1)) nc.recv_hwm = (int)lua_tointeger(L, -1);
    nc.curve = c->curve;
    memcpy(nc.public_key, c->public_key, sizeof nc.public_key);
    memcpy(nc.secret_key, c->secret_key, sizeof nc.secret_key);
    nc.authorized = c->authorized;
    nc.authorized_ids = c->authorized_ids;
    nc.nauthorized = c->nauthorized;
    nc.fallback = to_nats;
    nc.fallback_ud = u->nats;
    return sn_net_new(&nc, sn_sync_config_of(u->sync.y)->node_id, &u->net, e);
}

/* The transport from the config at cfg (validated by p2p.config). The
 * strings read stay on the stack until sn_nats_new has copied them. */
static int make_nats(lua_State *L, lsn_nats *u, int cfg, sn_err *e)
{
    int top = lua_gettop(L);
    sn_nats_config c;
    sn_nats_default_config(&c);
    luaL_checkstack(L, 32, "nats config");
    if (lua_getfield(L, cfg, "nats") != LUA_TTABLE) luaL_error(L, "node: transport nats needs a nats table");
    int t = lua_gettop(L);
    if (field(L, t, "url")) c.url = lua_tostring(L, -1);
    if (field(L, t, "subject_prefix")) c.subject_prefix = lua_tostring(L, -1);
    c.user = field(L, t, "user");
    c.password = field(L, t, "password");
    c.token = field(L, t, "token");
    c.credentials = field(L, t, "credentials");
    if (lua_getfield(L, t, "nkey") == LUA_TTABLE) {
        int k = lua_gettop(L);
        c.nkey_public = field(L, k, "public");
        c.nkey_seed_file = field(L, k, "seed_file");
    }
    int tls = lua_getfield(L, t, "tls");
    if (tls == LUA_TTABLE) {
        int k = lua_gettop(L);
        c.tls = 1;
        c.tls_ca = field(L, k, "ca");
        c.tls_cert = field(L, k, "cert");
        c.tls_key = field(L, k, "key");
    } else {
        c.tls = lua_toboolean(L, -1);
    }
    if (lua_getfield(L, t, "jetstream") == LUA_TTABLE) {
        int k = lua_gettop(L);
        c.jetstream = 1;
        if (lua_getfield(L, k, "max_age_seconds") == LUA_TNUMBER) c.js_max_age = lua_tonumber(L, -1);
        if (lua_getfield(L, k, "max_bytes") == LUA_TNUMBER) c.js_max_bytes = (int64_t)lua_tonumber(L, -1);
    }
    const char *auth[SN_NATS_MAX_AUTHORIZED], *ids[SN_NATS_MAX_AUTHORIZED];
    read_keys(L, cfg, &c, auth, ids);
    const char *node_id = sn_sync_config_of(u->sync.y)->node_id;
    int rc = sn_nats_new(&c, node_id, &u->nats, e);
    const char *listen = lua_getfield(L, cfg, "listen") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!rc && listen) rc = make_net(L, u, cfg, &c, listen, e);
    lua_settop(L, top);
    return rc;
}

/* The engine's messages must fit the server's max_payload once sealed:
 * the engine's sizes are fixed at its making, so a config over it is
 * refused here, naming the figure to use. */
static int check_fit(lsn_nats *u, sn_err *e)
{
    size_t room = sn_nats_max_message(u->nats);
    size_t mine = sn_sync_config_of(u->sync.y)->max_message_bytes;
    if (mine > room)
        return sn_fail(e, SN_EIO, "max_message_bytes %zu is over what the NATS server takes (max_payload less "
                       "sealing: %zu)", mine, room);
    return SN_OK;
}

static int connect_peers(lua_State *L, lsn_nats *u, int self, int cfg)
{
    lua_getfield(L, cfg, "peers");
    lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : 0;
    if (n > SN_SYNC_MAX_PEERS) luaL_argerror(L, 2, "too many peers");
    int list = lua_gettop(L);
    luaL_checkstack(L, 2 * (int)n + 4, "peers");
    for (lua_Integer i = 1; i <= n; i++) {
        int p = lua_gettop(L) + 1;
        lua_geti(L, list, i);
        lua_getfield(L, p, "node_id");
        lua_getfield(L, p, "public");
        lua_remove(L, p);
        lua_tostring(L, -2);
        lua_tostring(L, -1);
    }
    sn_sync *y = enter(L, self);
    sn_err e;
    int rc = check_fit(u, &e);
    /* a gateway advertises its ZeroMQ address (LAN nodes dial it) */
    if (!rc) rc = u->net ? sn_net_attach(u->net, y, &e) : sn_nats_attach(u->nats, y, &e);
    for (lua_Integer i = 0; !rc && i < n; i++) {
        int at = list + 1 + 2 * (int)i;
        const char *id = lua_type(L, at) == LUA_TSTRING ? lua_tostring(L, at) : NULL;
        const char *pub = lua_type(L, at + 1) == LUA_TSTRING ? lua_tostring(L, at + 1) : NULL;
        if (id) rc = sn_nats_add_peer(u->nats, y, id, pub, &e);
    }
    if (rc) return lsn_result(L, "node", rc, &e);
    lua_pushvalue(L, self);
    return 1;
}

static int l_nats_new(lua_State *L)
{
    lsn_check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lsn_nats *u = lua_newuserdatauv(L, sizeof *u, LSN_SYNC_UVALUES);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, LSN_NATS);
    int self = lua_gettop(L);
    lsn_sync_open(L, &u->sync, self, 1, 2);
    sn_err e;
    int rc = make_nats(L, u, 2, &e);
    if (rc) return lsn_result(L, "node", rc, &e);
    return connect_peers(L, u, self, 2);
}

static int poll_result(lua_State *L, int interrupted)
{
    lua_pushboolean(L, 1);
    if (!interrupted) return 1;
    lua_pushliteral(L, "interrupted");
    return 2;
}

/* One poll of both sides of a gateway, or of NATS alone. */
static int poll_once(lsn_nats *u, sn_sync *y, int ms, int *interrupted, sn_err *e)
{
    if (!u->net) return sn_nats_poll(u->nats, y, ms, interrupted, e);
    int rc = sn_net_poll(u->net, y, ms, interrupted, e);
    return rc ? rc : sn_nats_take_all(u->nats, y, e);
}

static int l_nats_poll(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    lua_Integer ms = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, ms >= 0 && ms <= 3600000, 2, "timeout must be 0 to 3600000 ms");
    sn_sync *y = enter(L, 1);
    if (sn_signal_caught()) return poll_result(L, 1);
    sn_err e;
    int interrupted;
    int rc = poll_once(u, y, (int)ms, &interrupted, &e);
    if (rc) return lsn_result(L, "poll", rc, &e);
    return poll_result(L, interrupted || sn_signal_caught());
}

static int l_nats_run(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
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
        int rc = poll_once(u, y, left > 50 ? 50 : left > 0 ? (int)left : 0, &interrupted, &e);
        if (rc) return lsn_result(L, "run", rc, &e);
    } while (!interrupted && sn_now() < end);
    return poll_result(L, interrupted || sn_signal_caught());
}

/* The subject this node receives on (its address on the server), and a
 * gateway's bound ZeroMQ endpoint. */
static int l_nats_address(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    lua_pushstring(L, sn_nats_subject(u->nats));
    if (!u->net) return 1;
    lua_pushstring(L, sn_net_address(u->net));
    return 2;
}

static int l_nats_connect(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    const char *id = luaL_checkstring(L, 2);
    const char *pub = luaL_optstring(L, 3, NULL);
    sn_sync *y = enter(L, 1);
    sn_err e;
    /* an endpoint: the gateway's ZeroMQ side dials it */
    int rc = u->net && strstr(id, "://") ? sn_net_add_peer(u->net, y, id, pub, &e)
                                         : sn_nats_add_peer(u->nats, y, id, pub, &e);
    if (rc == SN_EARG) return luaL_error(L, "connect: %s", e.msg);
    if (rc) return lsn_result(L, "connect", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_nats_disconnect(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    const char *id = luaL_checkstring(L, 2);
    sn_sync *y = enter(L, 1);
    sn_err e;
    int r = u->net ? sn_net_disconnect(u->net, y, id, &e) : sn_nats_disconnect(u->nats, y, id, &e);
    if (r < 0) return lsn_result(L, "disconnect", e.code, &e);
    lua_pushboolean(L, r);
    return 1;
}

/* node:authorize(public [, node_id]): on a gateway, for both transports */
static int l_nats_authorize(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    const char *key = luaL_checkstring(L, 2);
    const char *id = luaL_optstring(L, 3, NULL);
    sn_err e;
    int rc = sn_nats_authorize(u->nats, key, id, &e);
    if (!rc && u->net) rc = sn_net_authorize(u->net, key, id, &e);
    if (rc) return lsn_result(L, "authorize", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_nats_revoke(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    const char *key = luaL_checkstring(L, 2);
    sn_sync *y = enter(L, 1);
    sn_err e;
    int r = sn_nats_revoke(u->nats, y, key, &e);
    int r2 = r < 0 || !u->net ? 0 : sn_net_revoke(u->net, y, key, &e);
    if (r < 0 || r2 < 0) return lsn_result(L, "revoke", e.code, &e);
    lua_pushboolean(L, r || r2);
    return 1;
}

/* Tests only (SYNAPTIC_TEST_HOOKS): bytes as they are on a subject, to
 * play a forger or a tampering server. */
static int l_nats_send_raw(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    const char *subject = luaL_checkstring(L, 2);
    size_t len;
    const char *bytes = luaL_checklstring(L, 3, &len);
    sn_err e;
    int rc = sn_nats_send_raw(u->nats, subject, bytes, len, &e);
    if (rc) return lsn_result(L, "_send_raw", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* Tests only (SYNAPTIC_TEST_HOOKS): bytes sealed with this node's keys to
 * a public key, to make tampered or replayed envelopes. */
static int l_nats_seal(lua_State *L)
{
    lsn_nats *u = check_nats(L, 1);
    const char *to = luaL_checkstring(L, 2);
    size_t len;
    const char *bytes = luaL_checklstring(L, 3, &len);
    unsigned char *env;
    size_t envlen;
    sn_err e;
    int rc = sn_nats_seal_to(u->nats, to, bytes, len, &env, &envlen, &e);
    if (rc == SN_EARG) return luaL_error(L, "_seal: %s", e.msg);
    if (rc) return lsn_result(L, "_seal", rc, &e);
    lua_pushlstring(L, (const char *)env, envlen);   /* raises only on memory: env leaks then, tests only */
    free(env);
    return 1;
}

static void nats_close(lsn_sync *s)
{
    lsn_nats *u = (lsn_nats *)s;   /* the lsn_sync is its first member */
    /* a leaving heartbeat to every live peer, through the gateway's ZeroMQ
     * side (which hands NATS the rest) or NATS alone; sn_nats_free flushes
     * the connection */
    if (s->y && u->net) sn_net_leave(u->net, s->y);
    else if (s->y && u->nats) sn_nats_leave(u->nats, s->y);
    sn_net_free(u->net);   /* first: its fallback points into nats */
    u->net = NULL;
    sn_nats_free(u->nats);
    u->nats = NULL;
}

static void nats_stats(lua_State *L, lsn_sync *s)
{
    lsn_nats *u = (lsn_nats *)s;
    sn_nats_stats st;
    sn_nats_get_stats(u->nats, &st);
    sn_net_stats ns = { 0 };
    if (u->net) sn_net_get_stats(u->net, &ns);
    if (u->net) {
        lua_getfield(L, -1, "rejected");
        lua_Integer r = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushinteger(L, r + (lua_Integer)ns.zap_denied);
        lua_setfield(L, -2, "rejected");
        lua_pushinteger(L, (lua_Integer)ns.zap_denied);
        lua_setfield(L, -2, "unauthorized");
    }
    st.dropped += ns.dropped;
    st.forged += ns.forged;
    lua_pushinteger(L, (lua_Integer)st.dropped);
    lua_setfield(L, -2, "dropped");
    lua_pushinteger(L, (lua_Integer)st.forged);
    lua_setfield(L, -2, "forged");
    lua_pushinteger(L, (lua_Integer)st.published);
    lua_setfield(L, -2, "published");
    lua_pushinteger(L, (lua_Integer)st.received);
    lua_setfield(L, -2, "received");
    lua_pushinteger(L, (lua_Integer)st.reconnects);
    lua_setfield(L, -2, "reconnects");
    lua_pushinteger(L, (lua_Integer)st.replayed);
    lua_setfield(L, -2, "replayed");
}

static int l_nats_tostring(lua_State *L)
{
    lsn_nats *u = luaL_checkudata(L, 1, LSN_NATS);
    if (!u->nats) { lua_pushliteral(L, "synaptic.nats_node (closed)"); return 1; }
    lua_pushfstring(L, "synaptic.nats_node (%s on %s)", sn_nats_subject(u->nats), sn_nats_url(u->nats));
    return 1;
}

/* The module's sentinel: made when the module loads, so lua_close finalizes
 * it after every node (finalizers run in reverse order of creation). */
static int l_nats_library_gc(lua_State *L)
{
    (void)L;
    sn_nats_library_close();
    return 0;
}

void lsn_nats_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "poll", l_nats_poll },
        { "run", l_nats_run },
        { "address", l_nats_address },
        { "connect", l_nats_connect },
        { "disconnect", l_nats_disconnect },
        { "authorize", l_nats_authorize },
        { "revoke", l_nats_revoke },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__tostring", l_nats_tostring },
        { NULL, NULL },
    };
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_nats_library_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "synaptic.nats_library");
    lsn_newclass(L, LSN_NATS, methods, meta);
    static const lsn_sync_kind kind = { LSN_NATS, "node", nats_close, nats_stats };
    lsn_sync_add_methods(L, &kind);
    if (getenv("SYNAPTIC_TEST_HOOKS")) {
        static const luaL_Reg hooks[] = { { "_send_raw", l_nats_send_raw }, { "_seal", l_nats_seal },
                                          { NULL, NULL } };
        lsn_class_add_methods(L, LSN_NATS, hooks);
    }
}

void lsn_nats_open(lua_State *L)
{
    lua_pushcfunction(L, l_nats_new);
    lua_setfield(L, -2, "nats_node");
    sn_nats_config c;
    sn_nats_default_config(&c);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)(SN_NATS_DEFAULT_MAX_PAYLOAD - SN_SEAL_OVERHEAD));
    lua_setfield(L, -2, "max_message_bytes");
    lua_pushstring(L, c.subject_prefix);
    lua_setfield(L, -2, "subject_prefix");
    lua_pushstring(L, c.url);
    lua_setfield(L, -2, "url");
    lua_setfield(L, -2, "nats_defaults");
}
