/* The authorized keys of a node (see sn_keyset.h). A few hundred keys at
 * most (the transports' caps), looked up by a scan: simpler than a hash,
 * and far below the cost of the handshake or message that asks. */
#include "sync/sn_keyset.h"

#include "base/sn_vec.h"

#include <stdlib.h>
#include <string.h>

typedef struct key_item {
    char key[SN_Z85_KEY_CHARS + 1];
    unsigned char bytes[SN_Z85_KEY_BYTES];
    char *id;                       /* malloc'd, or NULL */
} key_item;

struct sn_keyset {
    key_item *items;
    size_t n, cap, max;
};

int sn_keyset_new(size_t max, sn_keyset **out, sn_err *e)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return sn_fail(e, SN_ENOMEM, "out of memory");
    (*out)->max = max;
    return SN_OK;
}

void sn_keyset_free(sn_keyset *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->n; i++) free(k->items[i].id);
    free(k->items);
    free(k);
}

static key_item *find(const sn_keyset *k, const char *key)
{
    for (size_t i = 0; key && i < k->n; i++)
        if (!strcmp(k->items[i].key, key)) return &k->items[i];
    return NULL;
}

int sn_keyset_add(sn_keyset *k, const char *key, const char *id, sn_err *e)
{
    unsigned char bytes[SN_Z85_KEY_BYTES];
    if (sn_z85_key(key, bytes, e)) return sn_fail(e, SN_EARG, "'%s' is not a 40-character Z85 public key",
                                                  key ? key : "(null)");
    if (id && (!*id || strlen(id) > SN_MAX_ID_LEN))
        return sn_fail(e, SN_EARG, "a key's node_id must be 1 to %u bytes", SN_MAX_ID_LEN);
    const char *holder = id ? sn_keyset_key_for(k, id) : NULL;
    if (holder && strcmp(holder, key))
        return sn_fail(e, SN_EARG, "node id '%s' is held by another authorized key", id);
    char *copy = id ? strdup(id) : NULL;
    if (id && !copy) return sn_fail(e, SN_ENOMEM, "out of memory");
    key_item *it = find(k, key);
    if (!it) {
        if (k->n >= k->max) {
            free(copy);
            return sn_fail(e, SN_EARG, "at most %zu authorized keys", k->max);
        }
        if (SN_GROW(k->items, k->n, k->cap, 8, e)) { free(copy); return e->code; }
        it = &k->items[k->n++];
        memcpy(it->key, key, SN_Z85_KEY_CHARS + 1);
        memcpy(it->bytes, bytes, sizeof bytes);
        it->id = NULL;
    }
    free(it->id);
    it->id = copy;
    return SN_OK;
}

int sn_keyset_remove(sn_keyset *k, const char *key)
{
    key_item *it = find(k, key);
    if (!it) return 0;
    free(it->id);
    size_t i = (size_t)(it - k->items);
    memmove(it, it + 1, (k->n - i - 1) * sizeof *it);
    k->n--;
    return 1;
}

int sn_keyset_has(const sn_keyset *k, const char *key) { return find(k, key) != NULL; }

const char *sn_keyset_id_of(const sn_keyset *k, const char *key)
{
    const key_item *it = find(k, key);
    return it ? it->id : NULL;
}

const char *sn_keyset_key_for(const sn_keyset *k, const char *id)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->items[i].id && !strcmp(k->items[i].id, id)) return k->items[i].key;
    return NULL;
}

size_t sn_keyset_count(const sn_keyset *k) { return k->n; }
const char *sn_keyset_key(const sn_keyset *k, size_t i) { return k->items[i].key; }
const unsigned char *sn_keyset_bytes(const sn_keyset *k, size_t i) { return k->items[i].bytes; }
