/* The public keys a node admits (its authorized list), shared by every
 * transport with keys (ZeroMQ's CURVE, NATS's sealing) and by the identity
 * rules (sn_idmap.h). Each key may name the one node id it alone holds.
 * The set changes while a node runs (node:authorize, node:revoke): a
 * transport asks it on every handshake or message, never a copy. */
#ifndef SN_KEYSET_H
#define SN_KEYSET_H

#include "base/sn_z85.h"

typedef struct sn_keyset sn_keyset;

/* An empty set of at most max keys. */
SN_HIDDEN int sn_keyset_new(size_t max, sn_keyset **out, sn_err *e);
SN_HIDDEN void sn_keyset_free(sn_keyset *k);
/* Admit key (40 Z85 characters), naming id (NULL: none) as the node id it
 * alone holds; a key already there gets id as its new name. SN_EARG for a
 * malformed key or id, an id another key holds, or a full set. */
SN_HIDDEN int sn_keyset_add(sn_keyset *k, const char *key, const char *id, sn_err *e);
/* 1 when key was there (and is gone), 0 when not. */
SN_HIDDEN int sn_keyset_remove(sn_keyset *k, const char *key);
SN_HIDDEN int sn_keyset_has(const sn_keyset *k, const char *key);
/* The node id key alone holds, or NULL. */
SN_HIDDEN const char *sn_keyset_id_of(const sn_keyset *k, const char *key);
/* The key that alone holds node id, or NULL. */
SN_HIDDEN const char *sn_keyset_key_for(const sn_keyset *k, const char *id);
SN_HIDDEN size_t sn_keyset_count(const sn_keyset *k);
/* The i-th key, as text and as its 32 bytes (i < count). */
SN_HIDDEN const char *sn_keyset_key(const sn_keyset *k, size_t i);
SN_HIDDEN const unsigned char *sn_keyset_bytes(const sn_keyset *k, size_t i);

#endif
