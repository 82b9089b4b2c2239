/* Shared by the P2P binding files (lsn_engine.c, lsn_node.c). */
#ifndef LSN_P2P_H
#define LSN_P2P_H

#include "lua/lsn.h"
#include "sync/sn_sync.h"

#include <stdlib.h>

#define LSN_ENGINE "synaptic.sync_engine"
#define LSN_NODE "synaptic.node"

typedef struct lsn_engine {
    sn_sync *y;
    lua_State *L;          /* the thread of the current call, for the resolver */
    int self;              /* stack index of the userdata in that call */
    unsigned resolver_errors;
} lsn_engine;

SN_HIDDEN void lsn_read_sync_config(lua_State *L, int idx, sn_sync_config *c, int *custom);
SN_HIDDEN lsn_engine *lsn_engine_new(lua_State *L, int store_idx, int cfg_idx, const char *meta);
SN_HIDDEN sn_sync *lsn_engine_enter(lua_State *L, lsn_engine *u, int self);
SN_HIDDEN int lsn_engine_push_peers(lua_State *L, sn_sync *y);
SN_HIDDEN int lsn_engine_push_stats(lua_State *L, sn_sync *y);
SN_HIDDEN int lsn_engine_push_outbox(lua_State *L, sn_sync *y);
SN_HIDDEN void lsn_engine_register(lua_State *L);
SN_HIDDEN void lsn_engine_open(lua_State *L);   /* sets fields in the table on top */
SN_HIDDEN void lsn_node_register(lua_State *L);
SN_HIDDEN void lsn_node_open(lua_State *L);

#endif
