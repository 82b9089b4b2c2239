/* The store's long operations and their progress callbacks: store:verify,
 * store:backup, synaptic.restore_backup, each taking opts.progress, a Lua
 * function called with (done, total).
 *
 * verify: the core walks the records and calls progress_hook every 256 of
 * them with RocksDB iterators open. The hook calls the Lua function under
 * lua_pcall (an error must not longjmp across the core's frames) and keeps
 * the error on the stack; the hook's non-zero return stops the walk, the
 * core releases its iterators, and only then is the error raised. The
 * store is pinned (lsn_pin) meanwhile; a close() from the callback is
 * deferred (close_pending): the walk stops, the store is closed once the
 * core has let go, and verify raises "the store was closed by the
 * progress callback".
 *
 * backup and restore: RocksDB's C API has no progress hook, and the C++
 * BackupEngine's progress_callback runs on its copying thread with no total
 * (and restore has none), which is no place to call Lua. So they report
 * (0, total) before and (total, total) after, total in bytes: the store's
 * files for a backup, the backup's size for a restore. */
#include "lua/lsn.h"

#include <stdint.h>
#include <string.h>

typedef struct hook {
    lua_State *L;
    int store;     /* stack index of the store */
    int fn;        /* stack index of the progress function */
    int err;       /* stack slot that receives an error from fn */
    int failed;
} hook;

/* opts.progress at idx (a table or nil): pushes the function, or nil. */
static void push_progress(lua_State *L, int idx, const char *fn)
{
    if (lua_isnoneornil(L, idx)) { lua_pushnil(L); return; }
    luaL_checktype(L, idx, LUA_TTABLE);
    int t = lua_getfield(L, idx, "progress");
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        luaL_error(L, "%s: opts.progress must be a function, not a %s", fn, lua_typename(L, t));
}

static int progress_hook(void *ud, uint64_t done, uint64_t total)
{
    hook *h = ud;
    lua_State *L = h->L;
    if (!lua_checkstack(L, 4)) {
        h->failed = 1;
        return 1;
    }
    lsn_store *u = lua_touserdata(L, h->store);
    lua_pushvalue(L, h->fn);
    lua_pushinteger(L, (lua_Integer)done);
    lua_pushinteger(L, (lua_Integer)total);
    u->close_deferrable = 1;   /* only the callback's own close waits */
    int rc = lua_pcall(L, 2, 0, 0);
    u->close_deferrable = 0;
    if (rc != LUA_OK) {
        lua_replace(L, h->err);
        h->failed = 1;
        return 1;
    }
    return u->close_pending;   /* closed: stop */
}

int lsn_store_verify(lua_State *L)
{
    lsn_check_store(L, 1);
    push_progress(L, 2, "verify");
    hook h = { L, 1, lua_gettop(L), 0, 0 };
    lua_pushnil(L);
    h.err = lua_gettop(L);
    sn_progress p = { progress_hook, &h };
    sn_arena *a = lsn_arena(L);
    sn_value report;
    int ok;
    sn_err e;
    sn_store *s = lsn_store_pin(L, 1);
    lsn_store *u = lua_touserdata(L, 1);
    int rc = sn_verify(s, a, &report, &ok, lua_isfunction(L, h.fn) ? &p : NULL, &e);
    if (u->close_pending) {   /* the core has let go: the callback's close happens now */
        u->close_pending = 0;
        sn_store_close(u->s);
        u->s = NULL;
        if (!h.failed) return luaL_error(L, "verify: the store was closed by the progress callback");
    }
    if (h.failed) {
        if (lua_isnil(L, h.err)) return luaL_error(L, "verify: no stack space for the progress callback");
        lua_pushvalue(L, h.err);
        return lua_error(L);   /* the callback's own error, unchanged */
    }
    return lsn_report_result(L, "verify", rc, &e, ok, &report);
}

/* fn(done, total) before or after the work; the core is not running, so
 * an error simply propagates. */
static void report_progress(lua_State *L, int fn, uint64_t done, uint64_t total)
{
    if (!lua_isfunction(L, fn)) return;
    lua_pushvalue(L, fn);
    lua_pushinteger(L, (lua_Integer)done);
    lua_pushinteger(L, (lua_Integer)total);
    lua_call(L, 2, 0);
}

int lsn_store_backup(lua_State *L)
{
    lsn_check_store(L, 1);
    const char *dir = luaL_checkstring(L, 2);
    push_progress(L, 3, "backup");
    int fn = lua_gettop(L);
    uint64_t total = 0, files;
    sn_err e;
    sn_store *s = lsn_check_store(L, 1);
    if (lua_isfunction(L, fn) && sn_size_info(s, &total, &files, &e)) total = 0;
    report_progress(L, fn, 0, total);
    s = lsn_check_store(L, 1);   /* the callback may have closed it */
    uint32_t id;
    int rc = sn_backup(s, dir, &id, &e);
    if (rc) return lsn_result(L, "backup", rc, &e);
    report_progress(L, fn, total, total);
    lua_pushinteger(L, id);
    return 1;
}

/* The size of backup id (0: the latest) in dir, or 0 when it cannot be
 * listed (the restore then reports why). */
static uint64_t backup_size(lua_State *L, const char *dir, uint32_t id)
{
    sn_arena *a = lsn_arena(L);
    sn_value list;
    sn_err e;
    uint64_t size = 0;
    if (sn_list_backups(dir, a, &list, &e) == SN_OK) {
        for (size_t i = 0; i < list.u.a.n; i++) {
            const sn_value *b = &list.u.a.items[i];
            if (!id || (uint32_t)sn_map_get(b, "id")->u.i == id) size = (uint64_t)sn_map_get(b, "size")->u.i;
        }
    }
    lua_pop(L, 1);
    return size;
}

static uint32_t opt_backup_id(lua_State *L, int idx)
{
    lua_Integer id = luaL_optinteger(L, idx, 0);
    luaL_argcheck(L, id >= 0 && id <= (lua_Integer)UINT32_MAX, idx, "backup id out of range");
    return (uint32_t)id;
}

/* opts.force of restore_backup (opts at idx, a table or nil); only force
 * and progress are options. */
static int opt_force(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(k, "force") != 0 && strcmp(k, "progress") != 0)
            luaL_argerror(L, idx, "the options are force and progress");
    }
    lua_getfield(L, idx, "force");
    luaL_argcheck(L, lua_isnil(L, -1) || lua_isboolean(L, -1), idx, "force must be a boolean");
    int force = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return force;
}

/* synaptic.restore_backup(dir, db_path [, backup_id] [, opts]) */
int lsn_restore_backup(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    const char *db = luaL_checkstring(L, 2);
    /* (dir, db [, id] [, opts]): a table third is opts */
    int opts = lua_istable(L, 3) ? 3 : 4;
    uint32_t id = opts == 3 ? 0 : opt_backup_id(L, 3);
    int force = opt_force(L, opts);
    push_progress(L, opts, "restore_backup");
    int fn = lua_gettop(L);
    uint64_t total = lua_isfunction(L, fn) ? backup_size(L, dir, id) : 0;
    report_progress(L, fn, 0, total);
    sn_err e;
    int rc = sn_restore_backup(dir, db, id, force, &e);
    if (rc) return lsn_result(L, "restore_backup", rc, &e);
    report_progress(L, fn, total, total);
    lua_pushboolean(L, 1);
    return 1;
}

/* synaptic.verify_backup(dir [, backup_id]) -> ok, report */
int lsn_verify_backup(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    uint32_t id = opt_backup_id(L, 2);
    sn_arena *a = lsn_arena(L);
    sn_value report;
    int ok;
    sn_err e;
    int rc = sn_verify_backup(dir, id, a, &report, &ok, &e);
    return lsn_report_result(L, "verify_backup", rc, &e, ok, &report);
}

/* synaptic.delete_backup(dir, backup_id) -> true */
int lsn_delete_backup(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    luaL_argcheck(L, id >= 1 && id <= (lua_Integer)UINT32_MAX, 2, "backup id out of range");
    sn_err e;
    return lsn_done(L, "delete_backup", sn_delete_backup(dir, (uint32_t)id, &e), &e);
}

/* synaptic.purge_old_backups(dir, keep) -> number of backups deleted */
int lsn_purge_old_backups(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer keep = luaL_checkinteger(L, 2);
    luaL_argcheck(L, keep >= 0 && keep <= (lua_Integer)UINT32_MAX, 2, "keep must be >= 0");
    uint32_t deleted = 0;
    sn_err e;
    int rc = sn_purge_old_backups(dir, (uint32_t)keep, &deleted, &e);
    if (rc) return lsn_result(L, "purge_old_backups", rc, &e);
    lua_pushinteger(L, (lua_Integer)deleted);
    return 1;
}

/* synaptic.list_backups(dir) */
int lsn_list_backups(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    sn_arena *a = lsn_arena(L);
    sn_value out;
    sn_err e;
    int rc = sn_list_backups(dir, a, &out, &e);
    return lsn_value_result(L, "list_backups", rc, &e, &out);
}
