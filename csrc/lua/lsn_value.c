/* Lua values <-> sn_value trees, arenas that Lua errors cannot leak, and
 * the one place that turns a core status into raise-or-nil,message. */
#include "lua/lsn.h"

#include <string.h>

#define LSN_ARENA "synaptic.arena"

static int l_arena_gc(lua_State *L)
{
    sn_arena_free(luaL_checkudata(L, 1, LSN_ARENA));
    return 0;
}

sn_arena *lsn_arena(lua_State *L)
{
    sn_arena *a = lua_newuserdatauv(L, sizeof *a, 0);
    sn_arena_init(a);
    luaL_setmetatable(L, LSN_ARENA);
    return a;
}

void lsn_value_register(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__gc", l_arena_gc },
        { "__close", l_arena_gc },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_ARENA, NULL, meta);
}

int lsn_result(lua_State *L, const char *fn, int rc, const sn_err *e)
{
    if (rc == SN_EARG) return luaL_error(L, "%s: %s", fn, e->msg);
    if (rc == SN_ENOMEM) return luaL_error(L, "not enough memory");
    luaL_pushfail(L);
    lua_pushstring(L, e->msg);
    return 2;
}

int lsn_value_result(lua_State *L, const char *fn, int rc, const sn_err *e, const sn_value *v)
{
    if (rc == SN_NOTFOUND) { lua_pushnil(L); return 1; }
    if (rc) return lsn_result(L, fn, rc, e);
    lsn_push_value(L, v);
    return 1;
}

int lsn_report_result(lua_State *L, const char *fn, int rc, const sn_err *e, int ok,
                      const sn_value *report)
{
    if (rc) return lsn_result(L, fn, rc, e);
    lua_pushboolean(L, ok);
    lsn_push_value(L, report);
    return 2;
}

int lsn_done(lua_State *L, const char *fn, int rc, const sn_err *e)
{
    if (rc) return lsn_result(L, fn, rc, e);
    lua_pushboolean(L, 1);
    return 1;
}

static void *alloc(lua_State *L, sn_arena *a, size_t size)
{
    void *p = sn_arena_alloc(a, size);
    if (!p) luaL_error(L, "not enough memory");
    return p;
}

/* 1..n with nothing else: a list. An empty table is a list too; schemas
 * accept an empty list where they want an object. */
static int is_list(lua_State *L, int idx, size_t *n)
{
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) { lua_pop(L, 1); return 0; }
        lua_Integer k = lua_tointeger(L, -1);
        if (k < 1 || k > len) { lua_pop(L, 1); return 0; }
        count++;
    }
    *n = (size_t)count;
    return count == len;
}

static void to_value(lua_State *L, int idx, sn_arena *a, sn_value *out, const char *what,
                     int depth)
{
    idx = lua_absindex(L, idx);
    *out = sn_nil();
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return;
    case LUA_TBOOLEAN: out->type = SN_BOOL; out->u.b = lua_toboolean(L, idx); return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) *out = sn_int(lua_tointeger(L, idx));
        else *out = sn_num(lua_tonumber(L, idx));
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);   /* stays alive: it is in the table */
        *out = sn_str(s, len);
        return;
    }
    case LUA_TTABLE: {
        if (depth >= SN_MAX_DEPTH) luaL_error(L, "%s: nested too deeply", what);
        luaL_checkstack(L, 4, "nested table");
        size_t n;
        if (is_list(L, idx, &n)) {
            if (n > SN_MAX_ITEMS) luaL_error(L, "%s: list too long", what);
            out->type = SN_ARRAY;
            out->u.a.n = n;
            out->u.a.items = alloc(L, a, (n ? n : 1) * sizeof(sn_value));
            for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, idx, (lua_Integer)i + 1);
                to_value(L, -1, a, &out->u.a.items[i], what, depth + 1);
                lua_pop(L, 1);
            }
            return;
        }
        n = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) { lua_pop(L, 1); n++; }
        if (n > SN_MAX_ITEMS) luaL_error(L, "%s: table too large", what);
        out->type = SN_MAP;
        out->u.a.items = alloc(L, a, 2 * n * sizeof(sn_value));
        size_t i = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            to_value(L, -2, a, &out->u.a.items[2 * i], what, depth + 1);
            to_value(L, -1, a, &out->u.a.items[2 * i + 1], what, depth + 1);
            lua_pop(L, 1);
            i++;
        }
        out->u.a.n = i;
        return;
    }
    default:
        luaL_error(L, "%s: cannot store a %s", what, luaL_typename(L, idx));
    }
}

void lsn_to_value(lua_State *L, int idx, sn_arena *a, sn_value *out, const char *what)
{
    to_value(L, idx, a, out, what, 0);
}

void lsn_push_value(lua_State *L, const sn_value *v)
{
    luaL_checkstack(L, 4, "nested value");
    switch (v->type) {
    case SN_NIL: lua_pushnil(L); return;
    case SN_BOOL: lua_pushboolean(L, v->u.b); return;
    case SN_INT: lua_pushinteger(L, v->u.i); return;
    case SN_NUM: lua_pushnumber(L, v->u.n); return;
    case SN_STR: lua_pushlstring(L, v->u.s.p, v->u.s.len); return;
    case SN_ARRAY:
        lua_createtable(L, (int)v->u.a.n, 0);
        for (size_t i = 0; i < v->u.a.n; i++) {
            lsn_push_value(L, &v->u.a.items[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    case SN_MAP:
        lua_createtable(L, 0, (int)v->u.a.n);
        for (size_t i = 0; i < v->u.a.n; i++) {
            if (v->u.a.items[2 * i].type == SN_NIL) continue;   /* no nil keys in Lua */
            lsn_push_value(L, &v->u.a.items[2 * i]);
            lsn_push_value(L, &v->u.a.items[2 * i + 1]);
            lua_rawset(L, -3);
        }
        return;
    }
    lua_pushnil(L);
}
