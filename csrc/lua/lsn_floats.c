/* synaptic.floats: a contiguous float32 array, the one weights type. */
#include "lua/lsn.h"

#include <stdio.h>
#include <string.h>

lsn_floats *lsn_floats_new(lua_State *L, size_t n)
{
    if (n > SN_MAX_FLOATS)
        luaL_error(L, "floats: %I values exceed the cap of %I", (lua_Integer)n, (lua_Integer)SN_MAX_FLOATS);
    lsn_floats *f = lua_newuserdatauv(L, sizeof *f + n * sizeof(float), 0);
    f->n = n;
    luaL_setmetatable(L, LSN_FLOATS);
    return f;
}

static lsn_floats *check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LSN_FLOATS);
}

/* A bad element is an argument error: the message names the function and
 * the argument ("bad argument #3 to 'put_weights' (element 2 is a ...)"). */
static void fill_from_table(lua_State *L, int idx, lsn_floats *f)
{
    for (size_t i = 0; i < f->n; i++) {
        int t = lua_geti(L, idx, (lua_Integer)i + 1);
        if (t != LUA_TNUMBER) {
            lua_pop(L, 1);
            luaL_argerror(L, idx, lua_pushfstring(L, "element %d is a %s, not a number", (int)(i + 1),
                                                  lua_typename(L, t)));
        }
        f->data[i] = (float)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
}

const float *lsn_check_floats(lua_State *L, int idx, size_t *n)
{
    idx = lua_absindex(L, idx);
    lsn_floats *f = luaL_testudata(L, idx, LSN_FLOATS);
    if (!f) {
        if (!lua_istable(L, idx)) {
            luaL_typeerror(L, idx, "floats or table of numbers");
            return NULL;
        }
        f = lsn_floats_new(L, (size_t)luaL_len(L, idx));
        fill_from_table(L, idx, f);
    }
    *n = f->n;
    return f->data;
}

static int l_floats_new(lua_State *L)
{
    switch (lua_type(L, 1)) {
    case LUA_TNUMBER: {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 0 && n <= SN_MAX_FLOATS, 1, "size out of range");
        lsn_floats *f = lsn_floats_new(L, (size_t)n);
        memset(f->data, 0, f->n * sizeof(float));
        return 1;
    }
    case LUA_TTABLE: {
        size_t n;
        lsn_check_floats(L, 1, &n);
        return 1;
    }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        luaL_argcheck(L, len % sizeof(float) == 0, 1, "byte length is not a multiple of 4");
        lsn_floats *f = lsn_floats_new(L, len / sizeof(float));
        memcpy(f->data, s, len);   /* little-endian host: the wire order */
        return 1;
    }
    default:
        return luaL_typeerror(L, 1, "size, table or string");
    }
}

static size_t check_index(lua_State *L, lsn_floats *f)
{
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || (lua_Unsigned)i > f->n)
        luaL_error(L, "floats index %I out of range (1..%I)", i, (lua_Integer)f->n);
    return (size_t)i - 1;
}

static int l_floats_index(lua_State *L)
{
    lsn_floats *f = check(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {   /* a method */
        luaL_getmetafield(L, 1, "__methods");
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        return 1;
    }
    /* one past the end reads as nil so that ipairs stops there; writes and
     * every other index stay bounds-checked */
    if (lua_isinteger(L, 2) && (lua_Unsigned)lua_tointeger(L, 2) == (lua_Unsigned)f->n + 1) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, f->data[check_index(L, f)]);
    return 1;
}

static int l_floats_newindex(lua_State *L)
{
    lsn_floats *f = check(L, 1);
    size_t i = check_index(L, f);
    f->data[i] = (float)luaL_checknumber(L, 3);
    return 0;
}

static int l_floats_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check(L, 1)->n);
    return 1;
}

static int l_floats_tostring(lua_State *L)
{
    lsn_floats *f = check(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "synaptic.floats(%I)", (lua_Integer)f->n);
    luaL_addvalue(&b);
    size_t show = f->n < 6 ? f->n : 6;
    luaL_addstring(&b, " {");
    for (size_t i = 0; i < show; i++) {
        char num[32];
        snprintf(num, sizeof num, "%s%.6g", i ? ", " : "", (double)f->data[i]);
        luaL_addstring(&b, num);
    }
    luaL_addstring(&b, f->n > show ? ", ...}" : "}");
    luaL_pushresult(&b);
    return 1;
}

static int l_floats_totable(lua_State *L)
{
    lsn_floats *f = check(L, 1);
    lua_createtable(L, (int)f->n, 0);
    for (size_t i = 0; i < f->n; i++) {
        lua_pushnumber(L, f->data[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_floats_tobytes(lua_State *L)
{
    lsn_floats *f = check(L, 1);
    lua_pushlstring(L, (const char *)f->data, f->n * sizeof(float));
    return 1;
}

static int l_floats_eq(lua_State *L)
{
    lsn_floats *a = check(L, 1), *b = check(L, 2);
    lua_pushboolean(L, a->n == b->n && memcmp(a->data, b->data, a->n * sizeof(float)) == 0);
    return 1;
}

void lsn_floats_register(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__index", l_floats_index },   { "__newindex", l_floats_newindex },
        { "__len", l_floats_len },       { "__tostring", l_floats_tostring },
        { "__eq", l_floats_eq },         { NULL, NULL },
    };
    static const luaL_Reg methods[] = {
        { "totable", l_floats_totable }, { "tobytes", l_floats_tobytes }, { NULL, NULL },
    };
    lsn_newclass(L, LSN_FLOATS, methods, meta);
}

int lsn_floats_open(lua_State *L)
{
    lua_pushcfunction(L, l_floats_new);
    return 1;
}
