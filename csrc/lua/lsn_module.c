/* luaopen_synaptic_core: the only exported symbol. Every Lua type is
 * registered here, before any function that makes one is reachable. */
#include "base/sn_file.h"
#include "base/sn_signal.h"
#include "lua/lsn.h"
#include "lua/lsn_p2p.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SN_VERSION "0.1.0"

static int l_uuid(lua_State *L)
{
    char id[37];
    sn_uuid(id);
    lua_pushlstring(L, id, 36);
    return 1;
}

/* Test hook: blob values this thread has read (count, bytes). */
static int l_blob_reads(lua_State *L)
{
    uint64_t n, bytes;
    sn_blob_reads(&n, &bytes);
    lua_pushinteger(L, (lua_Integer)n);
    lua_pushinteger(L, (lua_Integer)bytes);
    return 2;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, sn_now());
    return 1;
}

static sn_codec check_codec(lua_State *L, int idx)
{
    sn_codec c;
    if (sn_codec_from_name(luaL_checkstring(L, idx), &c))
        luaL_argerror(L, idx, "unknown codec (none, gzip, shuffle, bf16)");
    return c;
}

/* bytes of a floats array or a string */
static const void *check_bytes(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
    const float *f = lsn_check_floats(L, idx, len);
    *len *= sizeof(float);
    return f;
}

/* The Lua state's codec state for synaptic.compress/decompress, made on
 * first use and kept in the registry (freed by its __gc): making zstd
 * contexts per call cost more than coding a small payload. One Lua state
 * runs on one thread at a time, as the state requires. */
static int codec_ctx_key;

static int codec_ctx_gc(lua_State *L)
{
    sn_codec_ctx **x = lua_touserdata(L, 1);
    sn_codec_ctx_free(*x);
    *x = NULL;
    return 0;
}

static sn_codec_ctx *codec_ctx(lua_State *L)
{
    sn_codec_ctx *x = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &codec_ctx_key) == LUA_TUSERDATA)
        x = *(sn_codec_ctx **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (x) return x;
    sn_codec_ctx **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, codec_ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *box = sn_codec_ctx_new();   /* NULL (out of memory): calls make their own */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &codec_ctx_key);
    return *box;
}

static int l_compress(lua_State *L)
{
    sn_codec c = check_codec(L, 1);
    size_t len;
    const void *src = check_bytes(L, 2, &len);
    if (c == SN_CODEC_BF16) luaL_argcheck(L, len % 4 == 0, 2, "bf16 needs whole float32 values");
    unsigned char *out;
    size_t out_len;
    sn_err e;
    sn_codec_ctx *x = codec_ctx(L);   /* before the pointers below are used: it can raise */
    src = check_bytes(L, 2, &len);
    int rc = sn_compress_ctx(x, c, src, len, &out, &out_len, &e);
    if (rc) return lsn_result(L, "compress", rc, &e);
    lua_pushlstring(L, (const char *)out, out_len);
    free(out);
    return 1;
}

static int l_decompress(lua_State *L)
{
    sn_codec c = check_codec(L, 1);
    size_t len;
    const char *src = luaL_checklstring(L, 2, &len);
    lua_Integer raw = luaL_checkinteger(L, 3);
    luaL_argcheck(L, raw >= 0 && raw <= SN_MAX_RECORD, 3, "raw length out of range");
    sn_codec_ctx *x = codec_ctx(L);
    luaL_Buffer b;
    char *dst = luaL_buffinitsize(L, &b, (size_t)raw);
    sn_err e;
    int rc = sn_decompress_ctx(x, c, src, len, dst, (size_t)raw, &e);
    if (rc) return lsn_result(L, "decompress", rc, &e);
    luaL_pushresultsize(&b, (size_t)raw);
    return 1;
}

static int l_codecs(lua_State *L)
{
    lua_createtable(L, SN_CODEC_COUNT, 0);
    for (int i = 0; i < SN_CODEC_COUNT; i++) {
        lua_pushstring(L, sn_codec_name((sn_codec)i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* synaptic.salvage(path, out_path) -> ok, report */
static int l_salvage(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *out = luaL_checkstring(L, 2);
    sn_arena *a = lsn_arena(L);
    sn_value report;
    int ok;
    sn_err e;
    int rc = sn_salvage(path, out, a, &report, &ok, &e);
    return lsn_report_result(L, "salvage", rc, &e, ok, &report);
}

/* core.trap_signals() -> true: SIGINT, SIGTERM and SIGHUP only set a flag from now
 * on (and node:poll/run return "interrupted"); clears the flag. */
static int l_trap_signals(lua_State *L)
{
    sn_err e;
    int rc = sn_signal_trap(&e);
    if (rc) return lsn_result(L, "trap_signals", rc, &e);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.interrupted() -> "SIGINT" | "SIGTERM" | "SIGHUP" | false */
static int l_interrupted(lua_State *L)
{
    const char *name = sn_signal_name(sn_signal_caught());
    if (name) lua_pushstring(L, name);
    else lua_pushboolean(L, 0);
    return 1;
}

/* core.take_hangup() -> whether a SIGHUP came since the last trap or
 * take; forgets it (a SIGINT or SIGTERM stays). */
static int l_take_hangup(lua_State *L)
{
    lua_pushboolean(L, sn_signal_take_hangup());
    return 1;
}

/* A Lua file handle's closer, as liolib's for files io.open made. */
static int temp_fclose(lua_State *L)
{
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    errno = 0;
    return luaL_fileresult(L, fclose(p->f) == 0, NULL);
}

/* core.temp_file(path [, mode]) -> file, tmp_path | nil, message: a new
 * file "<path>.tmp-XXXXXX" created exclusively (sn_temp_beside), open for
 * binary writing as a Lua file handle, for a write that ends in
 * os.rename(tmp_path, path). mode: permissions, default 0644. */
static int l_temp_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0644);
    luaL_argcheck(L, mode >= 0 && mode <= 0777, 2, "mode must be from 0 to 0777");
    /* the handle first, closed (no file yet), so a memory error leaks nothing */
    luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof *p, 0);
    p->f = NULL;
    p->closef = NULL;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    char *tmp;
    int fd;
    sn_err e;
    int rc = sn_temp_beside(path, (unsigned)mode, &tmp, &fd, &e);
    if (rc) return lsn_result(L, "temp_file", rc, &e);
    if (!lua_checkstack(L, 1) || !(p->f = fdopen(fd, "wb"))) {
        close(fd);
        unlink(tmp);
        free(tmp);
        lua_pushnil(L);
        lua_pushstring(L, "temp_file: out of memory");
        return 2;
    }
    p->closef = temp_fclose;
    lua_pushstring(L, tmp);
    free(tmp);
    return 2;
}

__attribute__((visibility("default"))) int luaopen_synaptic_core(lua_State *L);

int luaopen_synaptic_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "mlp", lsn_mlp_new },
        { "features", lsn_features },
        { "cue_scores", lsn_cue_scores },
        { "trap_signals", l_trap_signals },
        { "take_hangup", l_take_hangup },
        { "interrupted", l_interrupted },
        { "temp_file", l_temp_file },
        { NULL, NULL },
    };
    /* The functions the front end (init.lua) re-exports as synaptic.<name>.
     * luaL_argerror names a function by searching package.loaded, raw and
     * two levels deep, and takes the first hit in hash order: one reachable
     * as both synaptic.floats and synaptic.core.floats was named either way
     * at random. Reached through the core table's __index, they are named
     * only as the front end (and the docs) spell them. */
    static const luaL_Reg shared[] = {
        { "open", lsn_store_open },
        { "uuid", l_uuid },
        { "now", l_now },
        { "list_backups", lsn_list_backups },
        { "restore_backup", lsn_restore_backup },
        { "verify_backup", lsn_verify_backup },
        { "delete_backup", lsn_delete_backup },
        { "purge_old_backups", lsn_purge_old_backups },
        { "salvage", l_salvage },
        { "compress", l_compress },
        { "decompress", l_decompress },
        { "codecs", l_codecs },
        { NULL, NULL },
    };
    lsn_value_register(L);
    lsn_pin_register(L);
    lsn_floats_register(L);
    lsn_store_register(L);
    lsn_batch_register(L);
    lsn_engine_register(L);
    lsn_node_register(L);
    lsn_nats_register(L);
    lsn_mlp_register(L);
    luaL_newlib(L, funcs);
    lsn_engine_open(L);
    lsn_node_open(L);
    lsn_nats_open(L);
    lsn_p2p_open(L);
    if (getenv("SYNAPTIC_TEST_HOOKS")) {
        lua_pushcfunction(L, l_blob_reads);
        lua_setfield(L, -2, "_blob_reads");
    }
    lua_pushliteral(L, SN_VERSION);
    lua_setfield(L, -2, "version");
    lua_createtable(L, 0, 1);
    luaL_newlib(L, shared);
    lsn_floats_open(L);
    lua_setfield(L, -2, "floats");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}
