/* A small dynamic value tree, the common currency between the Lua binding
 * and the record codec: the binding builds one from a Lua table, the codec
 * turns it into msgpack and back, so neither side knows the other's API.
 *
 * All memory of a tree lives in one arena, freed at once. Strings are
 * borrowed when built from Lua (the Lua stack keeps them alive for the
 * duration of a call) and copied into the arena when decoded. */
#ifndef SN_VALUE_H
#define SN_VALUE_H

#include "base/sn_types.h"

typedef enum {
    SN_NIL = 0, SN_BOOL, SN_INT, SN_NUM, SN_STR, SN_ARRAY, SN_MAP
} sn_vtype;

typedef struct sn_value {
    sn_vtype type;
    union {
        int b;
        int64_t i;
        double n;
        struct { const char *p; size_t len; } s;
        /* a map stores 2*n items: key, value, key, value... */
        struct { struct sn_value *items; size_t n; } a;
    } u;
} sn_value;

typedef struct sn_arena_chunk sn_arena_chunk;
typedef struct sn_arena { sn_arena_chunk *head; } sn_arena;

SN_HIDDEN void sn_arena_init(sn_arena *a);
SN_HIDDEN void sn_arena_free(sn_arena *a);
/* Returns NULL on allocation failure; memory is zeroed. */
SN_HIDDEN void *sn_arena_alloc(sn_arena *a, size_t size);
SN_HIDDEN const char *sn_arena_strdup(sn_arena *a, const char *p, size_t len);

SN_HIDDEN sn_value sn_nil(void);
SN_HIDDEN sn_value sn_int(int64_t i);
SN_HIDDEN sn_value sn_num(double n);
SN_HIDDEN sn_value sn_str(const char *p, size_t len);
SN_HIDDEN sn_value sn_cstr(const char *p);

/* Map lookup by key string; NULL when absent or not a map. */
SN_HIDDEN const sn_value *sn_map_get(const sn_value *map, const char *key);
/* As sn_map_get, but an absent key reads as a nil value, never NULL: for
 * maps decoded from bytes, whose optional fields the schema lets be absent
 * (a map nested in a record, unlike its positional top level). */
SN_HIDDEN const sn_value *sn_map_field(const sn_value *map, const char *key);

#endif
