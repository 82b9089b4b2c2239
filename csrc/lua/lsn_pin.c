/* Pins: a count on a Lua-owned object that its close() will not pass (see
 * lsn.h). The guard is a to-be-closed stack slot, so the count comes down on
 * every way out of the C function, a raise included, with no unpin call to
 * forget. */
#include "lua/lsn.h"

#define LSN_PIN "synaptic.pin"

typedef struct lsn_pin_guard { unsigned *count; } lsn_pin_guard;

static int l_pin_release(lua_State *L)
{
    lsn_pin_guard *g = luaL_checkudata(L, 1, LSN_PIN);
    if (g->count) (*g->count)--;
    g->count = NULL;
    return 0;
}

void lsn_pin(lua_State *L, int owner, unsigned *count)
{
    owner = lua_absindex(L, owner);
    lsn_pin_guard *g = lua_newuserdatauv(L, sizeof *g, 1);
    g->count = NULL;
    luaL_setmetatable(L, LSN_PIN);
    lua_pushvalue(L, owner);          /* the count lives in the owner: keep it */
    lua_setiuservalue(L, -2, 1);
    lua_toclose(L, -1);
    /* counted only once nothing can raise before the guard would undo it */
    g->count = count;
    (*count)++;
}

void lsn_pin_register(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__close", l_pin_release },
        { "__gc", l_pin_release },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_PIN, NULL, meta);
}
