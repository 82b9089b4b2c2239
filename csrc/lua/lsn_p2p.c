/* The P2P binding code the engine and node types share (see lsn_p2p.h). */
#include "lua/lsn_p2p.h"
#include "net/sn_net.h"

#include <string.h>

/* ---- the Lua resolver ------------------------------------------------------------ */

/* A Lua conflict_resolution function is called only from inside engine or
 * node methods, on the calling Lua thread, under lua_pcall: a failing
 * resolver falls back to latest_timestamp instead of unwinding through the
 * C core. */

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
    lua_pushstring(L, h->cf == SN_ENTRY_CF_WEIGHTS ? "weights"
                      : h->cf == SN_ENTRY_CF_CONFIG ? "config" : "checkpoint");
    lua_setfield(L, -2, "kind");
}

/* Under lua_pcall: the resolver (1), the two heads as light userdata (2, 3).
 * The head tables are built here, inside the pcall, because building them
 * can raise (memory) and a raise must not unwind through the C core. */
static int call_resolver(lua_State *L)
{
    push_head(L, lua_touserdata(L, 2));
    push_head(L, lua_touserdata(L, 3));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 5);
    lua_call(L, 2, 1);
    lua_pushinteger(L, lua_rawequal(L, -1, 4) ? 1 : lua_rawequal(L, -1, 5) ? 0 : -1);
    return 1;
}

/* The resolver may do anything, closing the store or this engine included:
 * lsn_sync_enter pinned both, so such a close raises inside the pcall and
 * counts as a resolver error. */
static int lua_resolver(void *ud, const sn_head *a, const sn_head *b)
{
    lsn_sync *u = ud;
    lua_State *L = u->L;
    if (!L || !lua_checkstack(L, 8)) return -1;
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_resolver);   /* a light function: no allocation */
    lua_getiuservalue(L, u->self, 2);
    if (!lua_isfunction(L, -1)) { lua_settop(L, top); return -1; }
    lua_pushlightuserdata(L, (void *)a);
    lua_pushlightuserdata(L, (void *)b);
    int w = -1;
    if (lua_pcall(L, 3, 1, 0) == LUA_OK) w = (int)lua_tointeger(L, -1);
    else u->resolver_errors++;
    lua_settop(L, top);
    return w;
}

/* ---- the merge rule per expert/layer -------------------------------------------------- */

/* Under lua_pcall: merge_rule (1), expert (2, light userdata), its length
 * (3), layer (4). A table is read raw, "expert/layer" before "expert"; a
 * function is called with (expert, layer). Returns the rule's name. */
static int call_rule(lua_State *L)
{
    const char *x = lua_touserdata(L, 2);
    size_t len = (size_t)lua_tointeger(L, 3);
    lua_Integer layer = lua_tointeger(L, 4);
    lua_pushlstring(L, x, len);   /* 5 */
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushfstring(L, "%s/%d", lua_tostring(L, 5), (int)layer);
        if (lua_rawget(L, 1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushvalue(L, 5);
            lua_rawget(L, 1);
        }
        return 1;
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 5);
    lua_pushinteger(L, layer);
    lua_call(L, 2, 1);
    return 1;
}

/* The rule for one layer, or -1 (the config's merge_rule string, or
 * normalized) when the table has no entry or the function failed. */
static int lua_rule(void *ud, const char *expert, size_t len, uint32_t layer)
{
    lsn_sync *u = ud;
    lua_State *L = u->L;
    if (!L || !lua_checkstack(L, 8)) return -1;
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_rule);
    lua_getiuservalue(L, u->self, 3);
    lua_pushlightuserdata(L, (void *)expert);
    lua_pushinteger(L, (lua_Integer)len);
    lua_pushinteger(L, (lua_Integer)layer);
    int rule = -1;
    if (lua_pcall(L, 4, 1, 0) == LUA_OK) {
        if (lua_type(L, -1) == LUA_TSTRING) rule = sn_merge_rule_find(lua_tostring(L, -1));
        if (rule < 0 && !lua_isnil(L, -1)) u->resolver_errors++;
    } else {
        u->resolver_errors++;
    }
    lua_settop(L, top);
    return rule;
}

/* ---- construction ------------------------------------------------------------------ */

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
static void read_sync_config(lua_State *L, int idx, sn_sync_config *c, int *custom)
{
    sn_sync_default_config(c);
    *custom = 0;
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "node_id") == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n == 0 || n > SN_MAX_ID_LEN || memchr(s, 0, n))
            luaL_argerror(L, idx, lua_pushfstring(L, "node_id must be 1 to %d bytes", (int)SN_MAX_ID_LEN));
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
    c->max_send_rate = num_field(L, idx, "max_send_bytes_per_second", c->max_send_rate);
    c->weights = bool_field(L, idx, "enable_weight_sync", 1);
    c->configs = bool_field(L, idx, "enable_config_sync", 1);
    c->checkpoints = bool_field(L, idx, "enable_checkpoint_sync", 1);
    c->discovery = bool_field(L, idx, "discovery", 0);
    if (lua_getfield(L, idx, "mode") == LUA_TSTRING) {
        c->mode = sn_sync_mode_find(lua_tostring(L, -1));
        if (c->mode < 0) luaL_argerror(L, idx, "mode must be both, send_only or receive_only");
    }
    lua_pop(L, 1);
    int t = lua_getfield(L, idx, "conflict_resolution");
    if (t == LUA_TFUNCTION) {
        c->resolver.strategy = SN_RESOLVE_CUSTOM;
        *custom = 1;
    } else if (t == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        size_t i = 0;
        while (i < sn_strategy_count && !(sn_strategy_table[i].name && !strcmp(s, sn_strategy_table[i].name))) i++;
        if (i == sn_strategy_count) luaL_argerror(L, idx, "unknown conflict_resolution");
        c->resolver.strategy = sn_strategy_table[i].strategy;
    }
    lua_pop(L, 1);
    t = lua_getfield(L, idx, "merge_rule");
    if (t == LUA_TSTRING) {
        int rule = sn_merge_rule_find(lua_tostring(L, -1));
        if (rule < 0) luaL_argerror(L, idx, "unknown merge_rule");
        c->resolver.merge_rule = (sn_merge_rule)rule;
    } else if (t == LUA_TTABLE || t == LUA_TFUNCTION) {
        *custom |= 2;
    }
    lua_pop(L, 1);
}

void lsn_sync_open(lua_State *L, lsn_sync *u, int self, int store_idx, int cfg_idx)
{
    self = lua_absindex(L, self);
    store_idx = lua_absindex(L, store_idx);
    cfg_idx = lua_absindex(L, cfg_idx);
    lsn_check_store(L, store_idx);
    sn_sync_config c;
    int custom;
    read_sync_config(L, cfg_idx, &c, &custom);
    lua_pushvalue(L, store_idx);
    lua_setiuservalue(L, self, 1);
    if (custom & 1) {
        lua_getfield(L, cfg_idx, "conflict_resolution");
        lua_setiuservalue(L, self, 2);
        c.resolver.fn = lua_resolver;
    }
    if (custom & 2) {
        lua_getfield(L, cfg_idx, "merge_rule");
        lua_setiuservalue(L, self, 3);
        c.resolver.rule_fn = lua_rule;
    }
    c.resolver.ud = u;
    /* the config's fields may have run Lua code that closed the store */
    sn_store *s = lsn_check_store(L, store_idx);
    sn_err e;
    int rc = sn_sync_new(s, &c, &u->y, &e);
    if (rc) luaL_error(L, "sync_engine: %s", rc == SN_ENOMEM ? "not enough memory" : e.msg);
}

void lsn_sync_check(lua_State *L, const lsn_sync *u, const char *what)
{
    if (!u->y) luaL_error(L, "attempt to use a closed %s", what);
    if (u->busy) luaL_error(L, "%s: called from inside one of its own calls (its conflict resolver "
                               "or a finalizer); call it after that call returns", what);
}

void lsn_sync_check_close(lua_State *L, const lsn_sync *u, const char *what)
{
    if (u->y && u->busy)
        luaL_error(L, "close: the %s is in use by a running call (from its conflict resolver or "
                      "a finalizer); close it after that call returns", what);
}

sn_sync *lsn_sync_enter(lua_State *L, lsn_sync *u, int self)
{
    self = lua_absindex(L, self);
    lsn_pin(L, self, &u->busy);
    lua_getiuservalue(L, self, 1);
    sn_store *s = lsn_store_pin(L, -1);
    /* the pins allocate, and a finalizer may have closed u before its pin */
    if (!u->y) luaL_error(L, "attempt to use a closed sync engine");
    sn_sync_set_store(u->y, s);
    u->L = L;
    u->self = self;
    return u->y;
}

void lsn_sync_close(lsn_sync *u)
{
    sn_sync_free(u->y);
    u->y = NULL;
}

/* ---- tables both types return ----------------------------------------------------------- */

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* Every string is pushed as soon as it is read: pushing allocates, and
 * nothing here runs Lua code that could touch the engine meanwhile (the
 * caller pinned it), but the next core call may move what they point to. */
int lsn_push_peers(lua_State *L, sn_sync *y)
{
    size_t n = sn_sync_peer_count(y);
    lua_Integer k = 0;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        sn_peer_info p;
        sn_sync_peer(y, i, &p);
        if (p.candidate) continue;   /* not a peer until it answers as itself */
        lua_createtable(L, 0, 12);
        set_str(L, "id", p.id);
        set_str(L, "node_id", p.node);
        set_str(L, "endpoint", p.endpoint);
        set_str(L, "public", p.pub);
        set_str(L, "state", sn_sync_peer_state_name(p.state));
        set_str(L, "reason", p.reason);
        if (p.last_seen >= 0) {
            lua_pushnumber(L, p.last_seen);
            lua_setfield(L, -2, "last_seen");
        }
        lua_pushboolean(L, p.learned);
        lua_setfield(L, -2, "learned");
        lua_pushinteger(L, (lua_Integer)p.bytes_sent);
        lua_setfield(L, -2, "bytes_sent");
        lua_pushinteger(L, (lua_Integer)p.bytes_received);
        lua_setfield(L, -2, "bytes_received");
        uint64_t here, there;
        sn_err e;
        int rc = sn_sync_peer_missing(y, i, &here, &there, &e);
        if (rc && rc != SN_NOTFOUND) return lsn_result(L, "peers", rc, &e);
        if (!rc) {
            lua_pushinteger(L, (lua_Integer)here);
            lua_setfield(L, -2, "missing_here");
            lua_pushinteger(L, (lua_Integer)there);
            lua_setfield(L, -2, "missing_there");
        }
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

int lsn_push_stats(lua_State *L, sn_sync *y)
{
    sn_sync_stats st;
    sn_sync_get_stats(y, &st);
    lua_createtable(L, 0, 29);
#define S(f) (lua_pushinteger(L, (lua_Integer)st.f), lua_setfield(L, -2, #f))
    S(weights_sent); S(weights_received); S(configs_sent); S(configs_received);
    S(checkpoints_sent); S(checkpoints_received); S(conflicts); S(rejected);
    S(bytes_sent); S(bytes_received); S(sync_rounds); S(messages_sent);
    S(messages_received); S(ignored); S(duplicates); S(collisions); S(heartbeats_sent);
    S(chunks_sent); S(chunks_received); S(chunk_sets_completed); S(chunk_sets_dropped);
    S(chunk_sets_rejected); S(reassembly_bytes); S(candidates_refused);
    S(states_sent); S(states_received); S(metrics_sent); S(metrics_received);
    S(refusals_sent);
#undef S
    return 1;
}

/* ---- methods every P2P type has, written once ---------------------------------------------- */

static const lsn_sync_kind *kind_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static lsn_sync *self_of(lua_State *L)
{
    const lsn_sync_kind *k = kind_of(L);
    lsn_sync *u = luaL_checkudata(L, 1, k->tname);
    lsn_sync_check(L, u, k->what);
    return u;
}

static int m_peers(lua_State *L)
{
    lsn_sync *u = self_of(L);
    return lsn_push_peers(L, lsn_sync_enter(L, u, 1));
}

static int m_sync_now(lua_State *L)
{
    lsn_sync *u = self_of(L);
    sn_sync *y = lsn_sync_enter(L, u, 1);
    sn_err e;
    int rc = sn_sync_request_all(y, &e);
    if (rc) return lsn_result(L, "sync_now", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_stats(lua_State *L)
{
    const lsn_sync_kind *k = kind_of(L);
    lsn_sync *u = self_of(L);
    lsn_push_stats(L, lsn_sync_enter(L, u, 1));
    if (k->stats) k->stats(L, u);
    return 1;
}

static int m_node_id(lua_State *L)
{
    lua_pushstring(L, sn_sync_config_of(self_of(L)->y)->node_id);
    return 1;
}

static int m_close(lua_State *L)
{
    const lsn_sync_kind *k = kind_of(L);
    lsn_sync *u = luaL_checkudata(L, 1, k->tname);
    lsn_sync_check_close(L, u, k->what);
    if (k->close) k->close(u);
    lsn_sync_close(u);
    lua_pushboolean(L, 1);
    return 1;
}

/* A busy one is reachable from its pin: collected only by lua_close in the
 * middle of a call that never resumes, where freeing it is what must not
 * happen. */
static int m_gc(lua_State *L)
{
    const lsn_sync_kind *k = kind_of(L);
    lsn_sync *u = luaL_checkudata(L, 1, k->tname);
    if (u->busy) return 0;
    if (k->close) k->close(u);
    lsn_sync_close(u);
    return 0;
}

void lsn_sync_add_methods(lua_State *L, const lsn_sync_kind *k)
{
    static const luaL_Reg methods[] = {
        { "peers", m_peers }, { "sync_now", m_sync_now }, { "stats", m_stats },
        { "node_id", m_node_id }, { "close", m_close }, { NULL, NULL },
    };
    static const luaL_Reg meta[] = { { "__close", m_close }, { "__gc", m_gc }, { NULL, NULL } };
    luaL_getmetatable(L, k->tname);
    lua_pushlightuserdata(L, (void *)k);
    luaL_setfuncs(L, meta, 1);
    lua_getfield(L, -1, "__index");
    lua_pushlightuserdata(L, (void *)k);
    luaL_setfuncs(L, methods, 1);
    lua_pop(L, 2);
}

/* ---- defaults and limits ------------------------------------------------------------ */

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* Whole numbers as integers, as a literal 30 in a Lua config would be. */
static void set_num(lua_State *L, const char *k, lua_Number v)
{
    lua_Integer i;
    if (lua_numbertointeger(v, &i) && (lua_Number)i == v) lua_pushinteger(L, i);
    else lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

static void set_range(lua_State *L, const char *k, lua_Integer lo, lua_Integer hi)
{
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, lo);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, hi);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, k);
}


/* core.p2p_defaults: each P2P config field the core defaults, as p2p.config
 * names it. */
static void push_defaults(lua_State *L)
{
    sn_sync_config c;
    sn_net_config n;
    sn_sync_default_config(&c);
    sn_net_default_config(&n);
    lua_createtable(L, 0, 16);
    set_num(L, "sync_interval_seconds", c.sync_interval);
    set_num(L, "heartbeat_interval_seconds", c.heartbeat_interval);
    set_num(L, "peer_timeout_seconds", c.peer_timeout);
    set_int(L, "max_peers", c.max_peers);
    set_int(L, "max_message_bytes", (lua_Integer)c.max_message_bytes);
    set_int(L, "chunk_bytes", (lua_Integer)c.chunk_bytes);
    set_int(L, "max_reassembly_bytes", (lua_Integer)c.max_reassembly_bytes);
    set_num(L, "chunk_timeout_seconds", c.chunk_timeout);
    set_num(L, "max_send_bytes_per_second", c.max_send_rate);
    set_num(L, "max_clock_offset_ms", c.max_clock_offset_ms);
    set_bool(L, "enable_weight_sync", c.weights);
    set_bool(L, "enable_config_sync", c.configs);
    set_bool(L, "enable_checkpoint_sync", c.checkpoints);
    set_bool(L, "discovery", c.discovery);   /* without CURVE; p2p.config turns it on with */
    lua_pushstring(L, sn_sync_mode_name(c.mode));
    lua_setfield(L, -2, "mode");
    lua_pushstring(L, sn_strategy_of(c.resolver.strategy)->name);
    lua_setfield(L, -2, "conflict_resolution");
    lua_pushstring(L, sn_merge_rule_name(c.resolver.merge_rule));
    lua_setfield(L, -2, "merge_rule");
    set_int(L, "send_hwm", n.send_hwm);
    set_int(L, "recv_hwm", n.recv_hwm);
    lua_pushliteral(L, "zeromq");   /* transport = "nats": lsn_nats.c */
    lua_setfield(L, -2, "transport");
}

/* core.p2p_limits: what p2p.config checks a config against. */
static void push_limits(lua_State *L)
{
    lua_createtable(L, 0, 8);
    /* a config may serve a node, whose node_id is a routing id */
    set_int(L, "node_id_bytes", SN_NET_MAX_NODE_ID < SN_MAX_ID_LEN ? SN_NET_MAX_NODE_ID : SN_MAX_ID_LEN);
    set_int(L, "chunk_overhead_bytes", SN_SYNC_CHUNK_OVERHEAD);
    set_num(L, "max_seconds", SN_SYNC_MAX_SECONDS);
    set_int(L, "curve_key_bytes", SN_Z85_KEY_LEN);
    /* the strategy table's named rows, and the merge rules */
    lua_createtable(L, (int)sn_strategy_count, 0);
    for (size_t i = 0, k = 0; i < sn_strategy_count; i++) {
        if (!sn_strategy_table[i].name) continue;
        lua_pushstring(L, sn_strategy_table[i].name);
        lua_rawseti(L, -2, (lua_Integer)++k);
    }
    lua_setfield(L, -2, "conflict_strategies");
    lua_createtable(L, SN_MERGE_RULES, 0);
    for (int i = 0; i < SN_MERGE_RULES; i++) {
        lua_pushstring(L, sn_merge_rule_name((sn_merge_rule)i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "merge_rules");
    lua_createtable(L, SN_MODE_COUNT, 0);
    for (int i = 0; i < SN_MODE_COUNT; i++) {
        lua_pushstring(L, sn_sync_mode_name(i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "modes");
    /* inclusive {min, max} of the integer fields */
    lua_createtable(L, 0, 6);
    set_range(L, "max_peers", 1, SN_SYNC_MAX_PEERS);
    set_range(L, "max_message_bytes", SN_SYNC_MIN_MESSAGE_BYTES, (lua_Integer)SN_SYNC_MAX_MESSAGE_BYTES);
    set_range(L, "chunk_bytes", SN_SYNC_MIN_CHUNK_BYTES, (lua_Integer)SN_SYNC_MAX_CHUNK_BYTES);
    set_range(L, "max_reassembly_bytes", SN_SYNC_MIN_REASSEMBLY_BYTES,
              (lua_Integer)SN_SYNC_MAX_REASSEMBLY_BYTES);
    set_range(L, "send_hwm", 1, SN_NET_MAX_HWM);
    set_range(L, "recv_hwm", 1, SN_NET_MAX_HWM);
    lua_setfield(L, -2, "ranges");
}

void lsn_p2p_open(lua_State *L)
{
    push_defaults(L);
    lua_setfield(L, -2, "p2p_defaults");
    push_limits(L);
    lua_setfield(L, -2, "p2p_limits");
}
