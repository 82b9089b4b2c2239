/* The store handle's checks, shared by every file binding store methods
 * (lsn_store*.c, lsn_batch.c, the sync bindings): here, below all of them,
 * so none of those files calls back into another to check its argument. */
#include "lua/lsn.h"

/* Every method below takes its sn_store pointer after the last call that
 * can run Lua code (a metamethod of an argument, a finalizer run by an
 * allocation), or pins the store: such code may close the store, and a
 * pointer taken before it would then be freed memory. */

sn_store *lsn_check_store(lua_State *L, int idx)
{
    lsn_store *u = luaL_checkudata(L, idx, LSN_STORE);
    if (!u->s) luaL_error(L, "attempt to use a closed store");
    return u->s;
}

sn_store *lsn_store_pin(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lsn_store *u = luaL_checkudata(L, idx, LSN_STORE);
    lsn_pin(L, idx, &u->pins);
    return lsn_check_store(L, idx);   /* after the pin's allocation, not before */
}
