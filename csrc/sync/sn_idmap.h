/* Who may speak for which node id: the identity rules every transport
 * applies to a message before the engine takes it, kept here, beside the
 * engine and as free of sockets as it, so a new transport reuses them
 * (sn_net.h states the rules as the ZeroMQ node applies them).
 *
 *   - A node id is spoken for by one inbound connection at a time: the
 *     first whose messages carried it, while it lives (claims). The
 *     connection is the transport's handle, bytes compared as they are.
 *   - Under CURVE (or any transport with keys) an id belongs to a key: the
 *     key the config names with it, always, and that key speaks only as
 *     it; any other id to the first key that used it, while the holder (a
 *     live inbound claim, or our outbound connection to an endpoint) lives.
 *
 * Liveness is the transport's to tell (ops). The authorized keys are
 * borrowed (and may change): they must outlive the table. */
#ifndef SN_IDMAP_H
#define SN_IDMAP_H

#include "sync/sn_keyset.h"
#include "sync/sn_sync.h"

#define SN_IDMAP_MAX_CONN 255          /* bytes of a connection handle */
#define SN_IDMAP_KEY_LEN 40            /* a Z85 public key */
#define SN_IDMAP_MAX_KEY_BINDINGS 4096 /* past it, new ids are refused under keys */

typedef struct sn_idmap sn_idmap;

typedef struct sn_idmap_ops {
    void *ud;
    /* whether the inbound connection conn is still there */
    int (*conn_alive)(void *ud, const void *conn, size_t len);
    /* whether our outbound connection to endpoint is still there */
    int (*dialed)(void *ud, const char *endpoint);
} sn_idmap_ops;

/* keys: the authorized keys and the ids they alone hold (NULL: none, a
 * transport without keys). */
SN_HIDDEN int sn_idmap_new(const sn_keyset *keys, const sn_idmap_ops *ops, sn_idmap **out, sn_err *e);
SN_HIDDEN void sn_idmap_free(sn_idmap *t);
SN_HIDDEN int sn_idmap_authorized(const sn_idmap *t, const char *key);
/* Whether key may speak for node, over our outbound connection to
 * endpoint (NULL: inbound); binds the id to the key when it is free. */
SN_HIDDEN int sn_idmap_key_may_speak(sn_idmap *t, const char *node, const char *key,
                                     const char *endpoint);
/* Whether the inbound connection conn may speak for node; binds it when free. */
SN_HIDDEN int sn_idmap_conn_may_speak(sn_idmap *t, const char *node, const void *conn, size_t len);
/* The inbound connection that speaks for node: 1 and *conn, *len; else 0. */
SN_HIDDEN int sn_idmap_conn_of(const sn_idmap *t, const char *node, const void **conn, size_t *len);
/* node's connection is gone: the id is free for the next one. */
SN_HIDDEN void sn_idmap_release(sn_idmap *t, const char *node);
/* key is no longer authorized: the ids it held are free. */
SN_HIDDEN void sn_idmap_revoke(sn_idmap *t, const char *key);
/* Release the ids of nodes the engine no longer has as peers. */
SN_HIDDEN void sn_idmap_forget(sn_idmap *t, const sn_sync *y);

#endif
