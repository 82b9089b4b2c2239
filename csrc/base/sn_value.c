#include "base/sn_value.h"

#include <stdlib.h>
#include <string.h>

struct sn_arena_chunk {
    sn_arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

#define SN_ARENA_CHUNK 4096u

void sn_arena_init(sn_arena *a) { a->head = NULL; }

void sn_arena_free(sn_arena *a)
{
    sn_arena_chunk *c = a->head;
    while (c) {
        sn_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

void *sn_arena_alloc(sn_arena *a, size_t size)
{
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0) size = align;
    sn_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > SN_ARENA_CHUNK ? size : SN_ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

const char *sn_arena_strdup(sn_arena *a, const char *p, size_t len)
{
    char *s = sn_arena_alloc(a, len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

sn_value sn_nil(void) { sn_value v; memset(&v, 0, sizeof v); return v; }
sn_value sn_int(int64_t i) { sn_value v = sn_nil(); v.type = SN_INT; v.u.i = i; return v; }
sn_value sn_num(double n) { sn_value v = sn_nil(); v.type = SN_NUM; v.u.n = n; return v; }

sn_value sn_str(const char *p, size_t len)
{
    sn_value v = sn_nil();
    v.type = SN_STR;
    v.u.s.p = p;
    v.u.s.len = len;
    return v;
}

sn_value sn_cstr(const char *p) { return sn_str(p, strlen(p)); }

const sn_value *sn_map_get(const sn_value *map, const char *key)
{
    if (!map || map->type != SN_MAP) return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->u.a.n; i++) {
        const sn_value *k = &map->u.a.items[2 * i];
        if (k->type == SN_STR && k->u.s.len == klen && memcmp(k->u.s.p, key, klen) == 0)
            return &map->u.a.items[2 * i + 1];
    }
    return NULL;
}

const sn_value *sn_map_field(const sn_value *map, const char *key)
{
    static const sn_value nil;   /* SN_NIL is 0 */
    const sn_value *v = sn_map_get(map, key);
    return v ? v : &nil;
}
