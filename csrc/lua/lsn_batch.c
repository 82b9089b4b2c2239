/* synaptic.batch: the write methods of a store, committed atomically when
 * the function given to store:batch returns. */
#include "lua/lsn.h"

typedef struct lsn_batch { sn_batch *b; } lsn_batch;

static int l_batch_gc(lua_State *L)
{
    lsn_batch *u = luaL_checkudata(L, 1, LSN_BATCH);
    sn_batch_free(u->b);
    u->b = NULL;
    return 0;
}

static int l_batch_tostring(lua_State *L)
{
    lsn_batch *u = luaL_checkudata(L, 1, LSN_BATCH);
    lua_pushstring(L, u->b ? "synaptic.batch (open)" : "synaptic.batch (closed)");
    return 1;
}

sn_store *lsn_write_target(lua_State *L, sn_batch **batch)
{
    lsn_batch *u = luaL_testudata(L, 1, LSN_BATCH);
    if (!u) {
        *batch = NULL;
        return lsn_check_store(L, 1);
    }
    if (!u->b) luaL_error(L, "attempt to use a batch after its function returned");
    lua_getiuservalue(L, 1, 1);          /* the batch keeps its store alive */
    sn_store *s = lsn_check_store(L, -1);
    lua_pop(L, 1);
    *batch = u->b;
    return s;
}

/* store:batch(fn). A store:batch inside fn raises: committing on its own
 * would outlive a failure of the outer one, and a write meant for the outer
 * batch belongs on its batch object. */
int lsn_batch_run(lua_State *L)
{
    lsn_store *su = luaL_checkudata(L, 1, LSN_STORE);
    lsn_check_store(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (su->in_batch) return luaL_error(L, "batch: already inside a batch (write through its batch object)");
    lsn_batch *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->b = NULL;
    luaL_setmetatable(L, LSN_BATCH);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    /* the allocations above may have run a finalizer that closed the store */
    u->b = sn_batch_new(lsn_check_store(L, 1));
    if (!u->b) return luaL_error(L, "batch: not enough memory");
    int bidx = lua_gettop(L);

    lua_pushvalue(L, 2);
    lua_pushvalue(L, bidx);
    su->in_batch = 1;   /* nothing raises between here and the reset */
    int status = lua_pcall(L, 1, 0, 0);
    su->in_batch = 0;
    if (status != LUA_OK) {
        /* nothing was written: drop the batch, pass the error on unchanged */
        sn_batch_free(u->b);
        u->b = NULL;
        return lua_error(L);
    }
    if (!su->s) {   /* the function closed the store: nothing can be written */
        sn_batch_free(u->b);
        u->b = NULL;
        return luaL_error(L, "attempt to use a closed store");
    }
    sn_err e;
    int rc = sn_batch_commit(u->b, &e);
    sn_batch_free(u->b);
    u->b = NULL;
    if (rc) return lsn_result(L, "batch", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

void lsn_batch_register(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__gc", l_batch_gc },
        { "__tostring", l_batch_tostring },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_BATCH, lsn_write_methods, meta);
    lsn_class_add_methods(L, LSN_BATCH, lsn_record_write_methods);
}
