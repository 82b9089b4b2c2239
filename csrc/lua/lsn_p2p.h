/* What the P2P binding files (lsn_engine.c, lsn_node.c) share, in
 * lsn_p2p.c: reading a P2P config, the Lua conflict resolver, and the
 * tables both types return. Neither type calls into the other.
 *
 * Each of their userdata holds an lsn_sync, keeps its store in uservalue 1
 * (alive, and checked open on every call), a Lua conflict_resolution
 * function in uservalue 2 and a merge_rule table or function in 3. */
#ifndef LSN_P2P_H
#define LSN_P2P_H

#include "lua/lsn.h"
#include "sync/sn_sync.h"

#define LSN_SYNC_UVALUES 3   /* store, conflict_resolution function, merge_rule table/function */

typedef struct lsn_sync {
    sn_sync *y;
    lua_State *L;          /* the thread of the current call, for the resolver */
    int self;              /* stack index of the userdata in that call */
    unsigned resolver_errors;
    unsigned busy;         /* pins (lsn_pin): a call is using y; close() refuses */
} lsn_sync;

/* Makes u's engine over the store at store_idx from the config table at
 * cfg_idx (already validated by p2p.config); self is u's userdata, made
 * with LSN_SYNC_UVALUES uservalues. Raises on failure. */
SN_HIDDEN void lsn_sync_open(lua_State *L, lsn_sync *u, int self, int store_idx, int cfg_idx);
/* The engine, its store checked open, with the resolver bound to this call.
 * The resolver runs Lua code, so both the store and u are pinned (lsn_pin)
 * until the calling C function returns: nothing it does can free what the
 * engine is using. Raises if u is closed or already in a call. Call it last
 * before the core call: it leaves guards on the stack, which a lua_settop
 * below them would release early. */
SN_HIDDEN sn_sync *lsn_sync_enter(lua_State *L, lsn_sync *u, int self);
/* Raises if u is closed, or in a call of its own (its resolver calling it
 * back, or a finalizer run meanwhile): the engine is not reentrant. */
SN_HIDDEN void lsn_sync_check(lua_State *L, const lsn_sync *u, const char *what);
/* Whether u may be closed now; raises if a call of its own is running. */
SN_HIDDEN void lsn_sync_check_close(lua_State *L, const lsn_sync *u, const char *what);
SN_HIDDEN void lsn_sync_close(lsn_sync *u);

SN_HIDDEN int lsn_push_peers(lua_State *L, sn_sync *y);
SN_HIDDEN int lsn_push_stats(lua_State *L, sn_sync *y);

/* A P2P type: its userdata starts with an lsn_sync, and its transport (if
 * any) adds what these say. The methods every such type has — peers,
 * sync_now, stats, node_id, close, and __close/__gc — are written once
 * (lsn_p2p.c) and added to the type's metatable by lsn_sync_add_methods;
 * k must outlive the Lua state (a static). */
typedef struct lsn_sync_kind {
    const char *tname;                         /* the metatable's name */
    const char *what;                          /* "sync engine", "node": in messages */
    void (*close)(lsn_sync *u);                /* frees the transport part; NULL: none */
    void (*stats)(lua_State *L, lsn_sync *u);  /* adds to the stats table on top; NULL: none */
} lsn_sync_kind;
SN_HIDDEN void lsn_sync_add_methods(lua_State *L, const lsn_sync_kind *k);

/* Module entries (luaopen_synaptic_core registers the types and then sets
 * these in the module table on top). */
SN_HIDDEN void lsn_engine_register(lua_State *L);
SN_HIDDEN void lsn_engine_open(lua_State *L);
SN_HIDDEN void lsn_node_register(lua_State *L);
SN_HIDDEN void lsn_node_open(lua_State *L);
SN_HIDDEN void lsn_nats_register(lua_State *L);
SN_HIDDEN void lsn_nats_open(lua_State *L);
/* core.p2p_defaults and core.p2p_limits, from the core's own values. */
SN_HIDDEN void lsn_p2p_open(lua_State *L);

#endif
