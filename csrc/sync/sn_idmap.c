/* Who may speak for which node id (see sn_idmap.h). */
#include "sync/sn_idmap.h"

#include "base/sn_vec.h"

#include <stdlib.h>
#include <string.h>

typedef struct claim {
    char *node;
    unsigned char conn[SN_IDMAP_MAX_CONN];
    size_t connlen;
} claim;

/* A node id bound to the key that used it first; held while its holder
 * lives: our outbound connection to endpoint, or (endpoint NULL) the
 * node's inbound claim. */
typedef struct keybind {
    char *node;
    char key[SN_IDMAP_KEY_LEN + 1];
    char *endpoint;
} keybind;

struct sn_idmap {
    const sn_keyset *keys;
    sn_idmap_ops ops;
    claim *claims;
    size_t nclaims, claims_cap;
    keybind *keys_bound;
    size_t nbound, bound_cap;
};

int sn_idmap_new(const sn_keyset *keys, const sn_idmap_ops *ops, sn_idmap **out, sn_err *e)
{
    sn_idmap *t = calloc(1, sizeof *t);
    if (!t) return sn_fail(e, SN_ENOMEM, "out of memory");
    t->keys = keys;
    t->ops = *ops;
    *out = t;
    return SN_OK;
}

void sn_idmap_free(sn_idmap *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nclaims; i++) free(t->claims[i].node);
    free(t->claims);
    for (size_t i = 0; i < t->nbound; i++) {
        free(t->keys_bound[i].node);
        free(t->keys_bound[i].endpoint);
    }
    free(t->keys_bound);
    free(t);
}

int sn_idmap_authorized(const sn_idmap *t, const char *key)
{
    return t->keys && sn_keyset_has(t->keys, key);
}

/* ---- inbound connections --------------------------------------------------------- */

static claim *claim_of_node(const sn_idmap *t, const char *node)
{
    for (size_t i = 0; i < t->nclaims; i++)
        if (!strcmp(t->claims[i].node, node)) return &t->claims[i];
    return NULL;
}

static claim *claim_of_conn(const sn_idmap *t, const void *conn, size_t len)
{
    for (size_t i = 0; i < t->nclaims; i++)
        if (t->claims[i].connlen == len && !memcmp(t->claims[i].conn, conn, len)) return &t->claims[i];
    return NULL;
}

static void drop_claim(sn_idmap *t, claim *c)
{
    free(c->node);
    *c = t->claims[--t->nclaims];
}

static int claim_alive(const sn_idmap *t, const claim *c)
{
    return t->ops.conn_alive(t->ops.ud, c->conn, c->connlen);
}

int sn_idmap_conn_may_speak(sn_idmap *t, const char *node, const void *conn, size_t len)
{
    if (len > SN_IDMAP_MAX_CONN) return 0;
    claim *mine = claim_of_conn(t, conn, len);
    if (mine) return !strcmp(mine->node, node);   /* one connection, one node */
    claim *c = claim_of_node(t, node);
    if (c && claim_alive(t, c)) return 0;
    if (!c) {
        sn_err e;
        char *copy = strdup(node);
        if (!copy || SN_GROW(t->claims, t->nclaims, t->claims_cap, 8, &e)) { free(copy); return 0; }
        c = &t->claims[t->nclaims++];
        c->node = copy;
    }
    memcpy(c->conn, conn, len);
    c->connlen = len;
    return 1;
}

int sn_idmap_conn_of(const sn_idmap *t, const char *node, const void **conn, size_t *len)
{
    const claim *c = claim_of_node(t, node);
    if (!c) return 0;
    *conn = c->conn;
    *len = c->connlen;
    return 1;
}

void sn_idmap_release(sn_idmap *t, const char *node)
{
    claim *c = claim_of_node(t, node);
    if (c) drop_claim(t, c);
}

void sn_idmap_forget(sn_idmap *t, const sn_sync *y)
{
    for (size_t i = 0; i < t->nclaims;) {
        if (sn_sync_find_node(y, t->claims[i].node) < 0) drop_claim(t, &t->claims[i]);
        else i++;
    }
}

/* ---- keys -------------------------------------------------------------------------- */

/* The node id the config gives key alone, or NULL. */
static const char *named_id(const sn_idmap *t, const char *key)
{
    return t->keys ? sn_keyset_id_of(t->keys, key) : NULL;
}

/* Whether the config names node with another key than key. */
static int named_for_other(const sn_idmap *t, const char *node, const char *key)
{
    const char *holder = t->keys ? sn_keyset_key_for(t->keys, node) : NULL;
    return holder && strcmp(holder, key);
}

static int binding_held(const sn_idmap *t, const keybind *k)
{
    if (k->endpoint) return t->ops.dialed(t->ops.ud, k->endpoint);
    const claim *c = claim_of_node(t, k->node);
    return c && claim_alive(t, c);
}

int sn_idmap_key_may_speak(sn_idmap *t, const char *node, const char *key, const char *endpoint)
{
    if (!key || strlen(key) != SN_IDMAP_KEY_LEN) return 0;
    const char *named = named_id(t, key);
    if (named) return !strcmp(named, node);
    if (named_for_other(t, node, key)) return 0;
    keybind *k = NULL;
    for (size_t i = 0; i < t->nbound && !k; i++)
        if (!strcmp(t->keys_bound[i].node, node)) k = &t->keys_bound[i];
    if (k && !strcmp(k->key, key)) return 1;
    if (k && binding_held(t, k)) return 0;
    sn_err e;
    char *ep = endpoint ? strdup(endpoint) : NULL;
    if (endpoint && !ep) return 0;
    if (!k) {
        char *copy = strdup(node);
        if (!copy || t->nbound >= SN_IDMAP_MAX_KEY_BINDINGS ||
            SN_GROW(t->keys_bound, t->nbound, t->bound_cap, 8, &e)) {
            free(copy);
            free(ep);
            return 0;
        }
        k = &t->keys_bound[t->nbound++];
        k->node = copy;
        k->endpoint = NULL;
    }
    memcpy(k->key, key, SN_IDMAP_KEY_LEN + 1);
    free(k->endpoint);
    k->endpoint = ep;
    return 1;
}

void sn_idmap_revoke(sn_idmap *t, const char *key)
{
    for (size_t i = 0; i < t->nbound;) {
        keybind *k = &t->keys_bound[i];
        if (strcmp(k->key, key)) { i++; continue; }
        free(k->node);
        free(k->endpoint);
        *k = t->keys_bound[--t->nbound];
    }
}
