/* synaptic.sync_engine: the transport-free sync engine, and store:conflicts.
 *
 * The engine keeps its store alive (uservalue 1) and checks on every call
 * that the store is still open. A Lua conflict_resolution function is kept
 * in uservalue 2 and called only from inside engine methods, on the calling
 * Lua thread, under lua_pcall: a failing resolver falls back to
 * latest_timestamp instead of unwinding through the C core. */
#include "lua/lsn_p2p.h"

#include <stdlib.h>

#include <string.h>

static lsn_engine *check_engine(lua_State *L, int idx)
{
    lsn_engine *u = luaL_checkudata(L, idx, LSN_ENGINE);
    if (!u->y) luaL_error(L, "attempt to use a closed sync engine");
    return u;
}

/* The engine's store, checked open; binds the resolver to this call. */
sn_sync *lsn_engine_enter(lua_State *L, lsn_engine *u, int self)
{
    lua_getiuservalue(L, self, 1);
    sn_store *s = lsn_check_store(L, -1);
    lua_pop(L, 1);
    sn_sync_set_store(u->y, s);
    u->L = L;
    u->self = lua_absindex(L, self);
    return u->y;
}

/* ---- the Lua resolver ------------------------------------------------------------ */

static void push_head(lua_State *L, const sn_head *h)
{
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)h->id.hlc);
    lua_setfield(L, -2, "hlc");
    lua_pushstring(L, h->id.origin);
    lua_setfield(L, -2, "origin");
    lua_pushinteger(L, (lua_Integer)h->version);
    lua_setfield(L, -2, "version");
    lua_pushnumber(L, h->timestamp);
    lua_setfield(L, -2, "timestamp");
    lua_pushboolean(L, h->local);
    lua_setfield(L, -2, "is_local");
    lua_pushstring(L, h->cf == sn_replica_cf_weights() ? "weights"
                      : h->cf == sn_replica_cf_config() ? "config" : "checkpoint");
    lua_setfield(L, -2, "kind");
}

static int lua_resolver(void *ud, const sn_head *a, const sn_head *b)
{
    lsn_engine *u = ud;
    lua_State *L = u->L;
    if (!L || !lua_checkstack(L, 8)) return -1;
    int top = lua_gettop(L);
    lua_getiuservalue(L, u->self, 2);
    if (!lua_isfunction(L, -1)) { lua_settop(L, top); return -1; }
    push_head(L, a);
    int ia = lua_gettop(L);
    push_head(L, b);
    int ib = lua_gettop(L);
    lua_pushvalue(L, ia - 1);   /* the function */
    lua_pushvalue(L, ia);
    lua_pushvalue(L, ib);
    int w = -1;
    if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
        if (lua_rawequal(L, -1, ia)) w = 1;
        else if (lua_rawequal(L, -1, ib)) w = 0;
    } else {
        u->resolver_errors++;
    }
    lua_settop(L, top);
    return w;
}

/* ---- construction --------------------------------------------------------------------- */

static double num_field(lua_State *L, int idx, const char *k, double dflt)
{
    double v = dflt;
    if (lua_getfield(L, idx, k) == LUA_TNUMBER) v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int bool_field(lua_State *L, int idx, const char *k, int dflt)
{
    int v = dflt;
    if (lua_getfield(L, idx, k) == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* cfg is a table already validated by synaptic.p2p_config (lua/synaptic/p2p.lua);
 * this only reads it, with the C defaults for anything absent. */
void lsn_read_sync_config(lua_State *L, int idx, sn_sync_config *c, int *custom)
{
    sn_sync_default_config(c);
    *custom = 0;
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "node_id") == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        luaL_argcheck(L, n > 0 && n <= SN_MAX_ID_LEN && !memchr(s, 0, n), idx,
                      "node_id must be 1 to 256 bytes");
        memcpy(c->node_id, s, n);
        c->node_id[n] = 0;
    }
    lua_pop(L, 1);
    c->sync_interval = num_field(L, idx, "sync_interval_seconds", c->sync_interval);
    c->heartbeat_interval = num_field(L, idx, "heartbeat_interval_seconds", c->heartbeat_interval);
    c->peer_timeout = num_field(L, idx, "peer_timeout_seconds", c->peer_timeout);
    c->max_peers = (unsigned)num_field(L, idx, "max_peers", c->max_peers);
    c->max_message_bytes = (size_t)num_field(L, idx, "max_message_bytes", (double)c->max_message_bytes);
    c->max_clock_offset_ms = num_field(L, idx, "max_clock_offset_ms", c->max_clock_offset_ms);
    c->chunk_bytes = (size_t)num_field(L, idx, "chunk_bytes", (double)c->chunk_bytes);
    c->max_reassembly_bytes =
        (size_t)num_field(L, idx, "max_reassembly_bytes", (double)c->max_reassembly_bytes);
    c->chunk_timeout = num_field(L, idx, "chunk_timeout_seconds", c->chunk_timeout);
    c->weights = bool_field(L, idx, "enable_weight_sync", 1);
    c->configs = bool_field(L, idx, "enable_config_sync", 1);
    c->checkpoints = bool_field(L, idx, "enable_checkpoint_sync", 1);
    int t = lua_getfield(L, idx, "conflict_resolution");
    if (t == LUA_TFUNCTION) {
        c->resolver.strategy = SN_RESOLVE_CUSTOM;
        *custom = 1;
    } else if (t == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (!strcmp(s, "latest_timestamp")) c->resolver.strategy = SN_RESOLVE_LATEST;
        else if (!strcmp(s, "highest_version")) c->resolver.strategy = SN_RESOLVE_HIGHEST_VERSION;
        else if (!strcmp(s, "prefer_local")) c->resolver.strategy = SN_RESOLVE_PREFER_LOCAL;
        else luaL_argerror(L, idx, "unknown conflict_resolution");
    }
    lua_pop(L, 1);
}

/* Pushes a new engine on the store at store_idx. Used by nodes too. */
lsn_engine *lsn_engine_new(lua_State *L, int store_idx, int cfg_idx, const char *meta)
{
    store_idx = lua_absindex(L, store_idx);
    cfg_idx = lua_absindex(L, cfg_idx);
    sn_store *s = lsn_check_store(L, store_idx);
    sn_sync_config c;
    int custom;
    lsn_read_sync_config(L, cfg_idx, &c, &custom);
    lsn_engine *u = lua_newuserdatauv(L, sizeof *u, 2);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, meta);
    lua_pushvalue(L, store_idx);
    lua_setiuservalue(L, -2, 1);
    if (custom) {
        lua_getfield(L, cfg_idx, "conflict_resolution");
        lua_setiuservalue(L, -2, 2);
        c.resolver.fn = lua_resolver;
        c.resolver.ud = u;
    }
    sn_err e;
    int rc = sn_sync_new(s, &c, &u->y, &e);
    if (rc) luaL_error(L, "sync_engine: %s", rc == SN_ENOMEM ? "not enough memory" : e.msg);
    return u;
}

static int l_sync_engine(lua_State *L)
{
    lsn_check_store(L, 1);
    lsn_engine_new(L, 1, 2, LSN_ENGINE);
    return 1;
}

/* ---- methods shared with nodes (self at 1) ----------------------------------------------- */

int lsn_engine_push_peers(lua_State *L, sn_sync *y)
{
    size_t n = sn_sync_peer_count(y);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        sn_peer_info p;
        sn_sync_peer(y, i, &p);
        lua_createtable(L, 0, 4);
        lua_pushstring(L, p.id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, sn_sync_peer_state_name(p.state));
        lua_setfield(L, -2, "state");
        if (p.last_seen >= 0) {
            lua_pushnumber(L, p.last_seen);
            lua_setfield(L, -2, "last_seen");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

int lsn_engine_push_stats(lua_State *L, sn_sync *y)
{
    sn_sync_stats st;
    sn_sync_get_stats(y, &st);
    lua_createtable(L, 0, 24);
#define S(f) (lua_pushinteger(L, (lua_Integer)st.f), lua_setfield(L, -2, #f))
    S(weights_sent); S(weights_received); S(configs_sent); S(configs_received);
    S(checkpoints_sent); S(checkpoints_received); S(conflicts); S(rejected);
    S(bytes_sent); S(bytes_received); S(sync_rounds); S(messages_sent);
    S(messages_received); S(duplicates); S(heartbeats_sent);
    S(chunks_sent); S(chunks_received); S(chunk_sets_completed); S(chunk_sets_dropped);
    S(chunk_sets_rejected); S(reassembly_bytes);
#undef S
    return 1;
}

static int l_engine_add_peer(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    sn_sync *y = lsn_engine_enter(L, u, 1);
    sn_err e;
    int rc = sn_sync_add_peer(y, id, n, &e);
    if (rc) return lsn_result(L, "add_peer", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_engine_remove_peer(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    size_t n;
    const char *id = luaL_checklstring(L, 2, &n);
    lua_pushboolean(L, sn_sync_remove_peer(u->y, id, n));
    return 1;
}

static int l_engine_tick(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    lua_Number now = luaL_checknumber(L, 2);
    luaL_argcheck(L, now == now, 2, "time is NaN");
    sn_sync *y = lsn_engine_enter(L, u, 1);
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
    sn_sync *y = lsn_engine_enter(L, u, 1);
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

int lsn_engine_push_outbox(lua_State *L, sn_sync *y)
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
    lsn_engine *u = check_engine(L, 1);
    return lsn_engine_push_outbox(L, u->y);
}

static int l_engine_peers(lua_State *L)
{
    return lsn_engine_push_peers(L, check_engine(L, 1)->y);
}

static int l_engine_stats(lua_State *L)
{
    return lsn_engine_push_stats(L, check_engine(L, 1)->y);
}

static int l_engine_sync_now(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    sn_sync *y = lsn_engine_enter(L, u, 1);
    sn_err e;
    int rc = sn_sync_request_all(y, &e);
    if (rc) return lsn_result(L, "sync_now", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_engine_digest(lua_State *L)
{
    lsn_engine *u = check_engine(L, 1);
    sn_sync *y = lsn_engine_enter(L, u, 1);
    lua_getiuservalue(L, 1, 1);
    sn_store *s = lsn_check_store(L, -1);
    (void)y;
    uint64_t d;
    sn_err e;
    int rc = sn_sync_digest(s, &d, &e);
    if (rc) return lsn_result(L, "digest", rc, &e);
    lua_pushinteger(L, (lua_Integer)d);
    return 1;
}

static int l_engine_node_id(lua_State *L)
{
    lua_pushstring(L, sn_sync_config_of(check_engine(L, 1)->y)->node_id);
    return 1;
}

static int l_engine_close(lua_State *L)
{
    lsn_engine *u = luaL_checkudata(L, 1, LSN_ENGINE);
    sn_sync_free(u->y);
    u->y = NULL;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_engine_tostring(lua_State *L)
{
    lsn_engine *u = luaL_checkudata(L, 1, LSN_ENGINE);
    if (u->y) lua_pushfstring(L, "synaptic.sync_engine (%s)", sn_sync_config_of(u->y)->node_id);
    else lua_pushliteral(L, "synaptic.sync_engine (closed)");
    return 1;
}

/* ---- store:conflicts ------------------------------------------------------------------- */

static int push_weights_conflict(lua_State *L, const sn_conflict *c, sn_arena *a)
{
    sn_record r;
    sn_err e;
    int rc = sn_record_decode(c->bytes, c->len, a, &r, &e);
    if (rc) return lsn_result(L, "conflicts", rc, &e);
    const sn_value *f = &r.fields;
    size_t nw = (size_t)sn_map_get(f, "n_weights")->u.i, nb = (size_t)sn_map_get(f, "n_biases")->u.i;
    if ((nw + nb) * sizeof(float) != r.raw_len) {
        sn_fail(&e, SN_ECORRUPT, "conflict record payload size disagrees with its counts");
        return lsn_result(L, "conflicts", SN_ECORRUPT, &e);
    }
    lua_createtable(L, 0, 8);
    lsn_floats *w = lsn_floats_new(L, nw);
    lua_setfield(L, -2, "weights");
    lsn_floats *b = lsn_floats_new(L, nb);
    lua_setfield(L, -2, "biases");
    sn_part parts[2] = { { w->data, nw * sizeof(float) }, { b->data, nb * sizeof(float) } };
    rc = sn_record_load(&r, parts, 2, &e);
    if (rc) return lsn_result(L, "conflicts", rc, &e);
    lua_pushinteger(L, sn_map_get(f, "version")->u.i);
    lua_setfield(L, -2, "version");
    lua_pushnumber(L, sn_map_get(f, "timestamp")->u.n);
    lua_setfield(L, -2, "timestamp");
    lua_pushinteger(L, (lua_Integer)c->id.hlc);
    lua_setfield(L, -2, "hlc");
    lua_pushstring(L, c->id.origin);
    lua_setfield(L, -2, "origin");
    return 1;
}

static int push_config_conflict(lua_State *L, const sn_conflict *c, sn_arena *a)
{
    sn_record r;
    sn_err e;
    int rc = sn_record_decode(c->bytes, c->len, a, &r, &e);
    if (rc) return lsn_result(L, "conflicts", rc, &e);
    lua_createtable(L, 0, 3);
    lsn_push_value(L, &r.fields);
    lua_setfield(L, -2, "config");
    lua_pushinteger(L, (lua_Integer)c->id.hlc);
    lua_setfield(L, -2, "hlc");
    lua_pushstring(L, c->id.origin);
    lua_setfield(L, -2, "origin");
    return 1;
}

/* store:conflicts(expert_id, layer) -> the losing weight versions of a layer;
 * store:conflicts(expert_id) -> the losing versions of its config. */
static int l_store_conflicts(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t len;
    const char *expert = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, len > 0 && len <= SN_MAX_ID_LEN && !memchr(expert, 0, len), 2,
                  "expert_id must be 1 to 256 bytes without NUL");
    int weights = !lua_isnoneornil(L, 3);
    unsigned char prefix[SN_REPL_KEY_MAX];
    size_t plen, klen;
    int cf;
    if (weights) {
        lua_Integer layer = luaL_checkinteger(L, 3);
        luaL_argcheck(L, layer >= 0 && layer <= SN_MAX_LAYER, 3, "layer out of range");
        plen = sn_replica_layer_prefix(prefix, expert, len, (uint32_t)layer);
        klen = plen + 8;
        cf = sn_replica_cf_weights();
    } else {
        memcpy(prefix, expert, len);
        plen = klen = len;
        cf = sn_replica_cf_config();
    }
    sn_arena *a = lsn_arena(L);
    sn_conflict *list;
    size_t n;
    sn_err e;
    int rc = sn_replica_conflicts(s, cf, prefix, plen, klen, a, &list, &n, &e);
    if (rc) return lsn_result(L, "conflicts", rc, &e);
    lua_createtable(L, (int)n, 0);
    int t = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        int r = weights ? push_weights_conflict(L, &list[i], a) : push_config_conflict(L, &list[i], a);
        if (r != 1) return r;   /* nil, message */
        lua_rawseti(L, t, (lua_Integer)i + 1);
    }
    return 1;
}

/* core._replication_raw(store, key, value|nil): tests only (see
 * sn_replica_raw); not part of the API. */
static int l_replication_raw(lua_State *L)
{
    sn_store *s = lsn_check_store(L, 1);
    size_t klen, vlen = 0;
    const char *k = luaL_checklstring(L, 2, &klen);
    const char *v = luaL_optlstring(L, 3, NULL, &vlen);
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
        { "tick", l_engine_tick },
        { "receive", l_engine_receive },
        { "outbox", l_engine_outbox },
        { "peers", l_engine_peers },
        { "stats", l_engine_stats },
        { "sync_now", l_engine_sync_now },
        { "digest", l_engine_digest },
        { "node_id", l_engine_node_id },
        { "close", l_engine_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_engine_close },
        { "__close", l_engine_close },
        { "__tostring", l_engine_tostring },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_ENGINE, methods, meta);

    /* conflicts is a store method; it lives here with the rest of replication */
    luaL_getmetatable(L, LSN_STORE);
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, l_store_conflicts);
    lua_setfield(L, -2, "conflicts");
    lua_pop(L, 2);
    lsn_node_register(L);
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
    lsn_node_open(L);
}
