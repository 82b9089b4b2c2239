/* The one way a Lua type is made (as liolib's createmeta and LuaSocket's
 * auxiliar_newclass): every binding file registers its type through it,
 * called from luaopen_synaptic_core. */
#include "lua/lsn.h"

void lsn_newclass(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, name);   /* also sets __name, which error messages use */
    if (meta) luaL_setfuncs(L, meta, 0);
    if (methods) {
        /* a type whose __index is a function (floats: numeric keys) finds
         * its methods in __methods instead */
        int own_index = lua_getfield(L, -1, "__index") != LUA_TNIL;
        lua_pop(L, 1);
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, own_index ? "__methods" : "__index");
    }
    lua_pop(L, 1);
}

void lsn_class_add_methods(lua_State *L, const char *name, const luaL_Reg *methods)
{
    luaL_getmetatable(L, name);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
}
