/* Shared by the Lua binding files (lsn_*.c). No RocksDB or msgpack here:
 * bindings speak sn_value and the sn_* core API only. */
#ifndef LSN_H
#define LSN_H

#include <lauxlib.h>
#include <lua.h>

#include "store/sn_store.h"

#define LSN_FLOATS "synaptic.floats"
#define LSN_STORE "synaptic.store"
#define LSN_BATCH "synaptic.batch"
#define LSN_MLP "synaptic.mlp"

typedef struct lsn_floats {
    size_t n;
    float data[];
} lsn_floats;

/* Lua types (lsn_class.c). lsn_newclass registers the metatable `name`
 * with the metamethods in meta and an __index table of methods (either may
 * be NULL); nothing is left on the stack. lsn_class_add_methods adds more
 * methods to a registered type's __index. */
SN_HIDDEN void lsn_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                            const luaL_Reg *meta);
SN_HIDDEN void lsn_class_add_methods(lua_State *L, const char *name, const luaL_Reg *methods);

/* floats */
SN_HIDDEN lsn_floats *lsn_floats_new(lua_State *L, size_t n);
/* A floats userdata or a table of finite-or-not numbers at idx; tables are
 * converted into a new floats userdata pushed on the stack (so it stays
 * alive for the call). Returns data and count. */
SN_HIDDEN const float *lsn_check_floats(lua_State *L, int idx, size_t *n);
SN_HIDDEN int lsn_floats_open(lua_State *L);   /* pushes the constructor */
SN_HIDDEN void lsn_floats_register(lua_State *L);

/* values */
/* An arena owned by a userdata pushed on the stack: freed by __gc even if
 * a Lua error unwinds past the C code that uses it. */
SN_HIDDEN sn_arena *lsn_arena(lua_State *L);
SN_HIDDEN void lsn_to_value(lua_State *L, int idx, sn_arena *a, sn_value *out, const char *what);
SN_HIDDEN void lsn_push_value(lua_State *L, const sn_value *v);
SN_HIDDEN void lsn_value_register(lua_State *L);

/* Pins (lsn_pin.c). A binding that must go on using a core pointer across
 * Lua code (a metamethod, a finalizer that an allocation runs, the conflict
 * resolver) pins the userdata that owns it: lsn_pin raises *count and pushes
 * a to-be-closed guard that lowers it again when the C function returns or
 * raises. The owner's close() refuses while *count is not zero. A binding
 * that needs no pin takes its core pointer after the last call that can run
 * Lua code instead. */
SN_HIDDEN void lsn_pin(lua_State *L, int owner, unsigned *count);
SN_HIDDEN void lsn_pin_register(lua_State *L);

/* errors: SN_EARG raises "fn: message", outside failures push nil, message
 * (returns 2) */
SN_HIDDEN int lsn_result(lua_State *L, const char *fn, int rc, const sn_err *e);
/* The same for a read: SN_NOTFOUND pushes nil, success pushes v. */
/* ok, report (verify, verify_backup, salvage), or the failure as lsn_result */
SN_HIDDEN int lsn_report_result(lua_State *L, const char *fn, int rc, const sn_err *e, int ok,
                                const sn_value *report);
SN_HIDDEN int lsn_value_result(lua_State *L, const char *fn, int rc, const sn_err *e,
                               const sn_value *v);
/* The same for a method with no natural result: success pushes true. */
SN_HIDDEN int lsn_done(lua_State *L, const char *fn, int rc, const sn_err *e);

/* store and batch */
typedef struct lsn_store {
    sn_store *s;           /* NULL: closed */
    unsigned pins;         /* calls using s across Lua code (lsn_pin) */
    int in_batch;          /* store:batch's function is running */
    int close_deferrable;  /* a close() now waits for the running call (verify) */
    int close_pending;     /* ... and one was asked for */
} lsn_store;

SN_HIDDEN void lsn_store_register(lua_State *L);
SN_HIDDEN void lsn_batch_register(lua_State *L);
SN_HIDDEN int lsn_store_open(lua_State *L);
/* Store (and batch, when the target is one) for a write method's self. */
SN_HIDDEN sn_store *lsn_write_target(lua_State *L, sn_batch **batch);
SN_HIDDEN sn_store *lsn_check_store(lua_State *L, int idx);
/* The open store at idx, pinned (see lsn_pin) for the rest of the call. */
SN_HIDDEN sn_store *lsn_store_pin(lua_State *L, int idx);
SN_HIDDEN int lsn_batch_run(lua_State *L);   /* store:batch(fn) */
SN_HIDDEN int lsn_store_conflicts(lua_State *L);   /* store:conflicts (lsn_store_conflicts.c) */
/* store:verify, store:backup, synaptic.restore_backup: the long
 * operations, with progress callbacks (lsn_store_long.c) */
SN_HIDDEN int lsn_store_verify(lua_State *L);
SN_HIDDEN int lsn_store_backup(lua_State *L);
/* Methods of a store that a batch has too: weights (lsn_store.c) and
 * records (lsn_store_records.c); the record reads are the store's only. */
SN_HIDDEN extern const luaL_Reg lsn_write_methods[];
SN_HIDDEN extern const luaL_Reg lsn_record_write_methods[];
SN_HIDDEN extern const luaL_Reg lsn_record_methods[];

/* module-level functions */
SN_HIDDEN void lsn_codec_register(lua_State *L);
SN_HIDDEN int lsn_list_backups(lua_State *L);
SN_HIDDEN int lsn_restore_backup(lua_State *L);
SN_HIDDEN int lsn_verify_backup(lua_State *L);
SN_HIDDEN int lsn_delete_backup(lua_State *L);
SN_HIDDEN int lsn_purge_old_backups(lua_State *L);

/* mlp (lsn_mlp.c): synaptic.mlp, features, cue_scores */
struct sn_mlp;
SN_HIDDEN void lsn_mlp_register(lua_State *L);
SN_HIDDEN int lsn_mlp_new(lua_State *L);      /* synaptic.mlp(sizes, seed) */
SN_HIDDEN int lsn_features(lua_State *L);     /* synaptic.features(text, n) */
SN_HIDDEN int lsn_cue_scores(lua_State *L);   /* synaptic.cue_scores(text) */
SN_HIDDEN struct sn_mlp *lsn_check_mlp(lua_State *L, int idx);

#endif
