/* The ZeroMQ transport of a node: one ROUTER socket for peers that connect
 * to us (when listening), one DEALER per peer we connect to, and, under
 * CURVE, a ZAP handler. Everything happens inside sn_net_poll on the
 * caller's thread: ZeroMQ's I/O threads never call back into us, and the
 * ZAP handler is a socket polled with the others.
 *
 * Peer ids given to the engine: the endpoint string for a peer we
 * connected to; the node id its messages carry ("from") for a peer that
 * connected to us.
 *
 * Identity: our DEALERs connect with a random, connection-unique routing
 * id, never the node id, and the ROUTER keeps ZeroMQ's default of refusing
 * a second connection under a routing id in use (no ROUTER_HANDOVER). The
 * node id of an inbound peer is bound to the first live connection whose
 * messages carried it; another connection claiming it while that one lives
 * gets nothing and is counted (stats.forged, and the engine's rejected).
 * Under CURVE a node id belongs to a key: the one the config names with it
 * (authorized_ids), always; else the key of the first connection that used
 * it, for as long as a connection of that key speaks for it (ZAP's
 * User-Id), so a squatter holds an unnamed id only while it stays. */
#ifndef SN_NET_H
#define SN_NET_H

#include "sync/sn_sync.h"

#define SN_Z85_KEY_LEN 40
#define SN_NET_MAX_NODE_ID 255         /* a node_id is a ZeroMQ routing id */
#define SN_NET_MAX_HWM 1000000
#define SN_NET_MAX_AUTHORIZED 256      /* CURVE keys ZAP admits */

typedef struct sn_net sn_net;

typedef struct sn_net_config {
    const char *listen;            /* NULL: connect-only */
    size_t max_message_bytes;
    int send_hwm, recv_hwm;
    int curve;
    char public_key[SN_Z85_KEY_LEN + 1], secret_key[SN_Z85_KEY_LEN + 1];
    const char *const *authorized; /* Z85 public keys admitted by ZAP */
    const char *const *authorized_ids;   /* NULL, or per key the node id it alone holds (or NULL) */
    size_t nauthorized;
    /* A gateway's other transport (csrc/nats): a message for a peer we have
     * no connection to is offered to it (1: taken) before it counts as
     * dropped. NULL: none. */
    int (*fallback)(void *ud, sn_sync *y, const char *to, const unsigned char *bytes, size_t len);
    void *fallback_ud;
} sn_net_config;

typedef struct sn_net_stats {
    uint64_t rejected;             /* bad frames, refused handshakes */
    uint64_t dropped;              /* outgoing messages a full queue refused */
    uint64_t zap_denied;
    uint64_t forged;               /* messages claiming a node id held by another connection or key */
    uint64_t learned;              /* peers dialed because a heartbeat named them */
} sn_net_stats;

/* The defaults (exported with the sync engine's as
 * synaptic.core.p2p_defaults); listen NULL, no CURVE. */
SN_HIDDEN void sn_net_default_config(sn_net_config *c);
SN_HIDDEN int sn_net_new(const sn_net_config *c, const char *node_id, sn_net **out, sn_err *e);
SN_HIDDEN void sn_net_free(sn_net *n);
/* Before a close: a leaving heartbeat to every live peer, sent now, and a
 * short linger so it leaves before the sockets close (memberlist's leave:
 * peers mark this node left at once instead of after their timeout). */
SN_HIDDEN void sn_net_leave(sn_net *n, sn_sync *y);
SN_HIDDEN const char *sn_net_address(const sn_net *n);   /* "" when not listening */
/* Tells the engine what to advertise of this node (its bound address and
 * public key): call once, after sn_net_new. */
SN_HIDDEN int sn_net_attach(sn_net *n, sn_sync *y, sn_err *e);
/* Connect to endpoint and add it to the engine as a static peer (an
 * explicit connect also lifts a disconnect's block on the endpoint).
 * server_key: the peer's CURVE public key (required under CURVE). */
SN_HIDDEN int sn_net_add_peer(sn_net *n, sn_sync *y, const char *endpoint, const char *server_key,
                              sn_err *e);
/* Drop the peer whose engine id or node id is id: close our connection to
 * it, forget its binding and the engine's peer, and keep discovery from
 * dialing it again (sn_sync_block). 1 when there was such a peer, 0 when
 * not, -1 with e set on failure. */
SN_HIDDEN int sn_net_disconnect(sn_net *n, sn_sync *y, const char *id, sn_err *e);
/* Admit key (Z85) from now on, naming id (NULL: none) as the node id it
 * alone holds; SN_EARG without CURVE, for a bad key or id, or past
 * SN_NET_MAX_AUTHORIZED keys. */
SN_HIDDEN int sn_net_authorize(sn_net *n, const char *key, const char *id, sn_err *e);
/* Admit key no more: its handshakes are refused, what its connections
 * still carry is dropped (stats.zap_denied), our connections to it close
 * and its peers are forgotten. 1 when it was authorized, 0 when not, -1
 * with e set on failure. */
SN_HIDDEN int sn_net_revoke(sn_net *n, sn_sync *y, const char *key, sn_err *e);
/* Wait up to timeout_ms for traffic, hand every message to the engine,
 * run its timers at the wall clock, dial the peers discovery learned, and
 * send its outbox. *interrupted is set when a signal cut the wait short
 * (EINTR): the caller returns to its own caller then. */
SN_HIDDEN int sn_net_poll(sn_net *n, sn_sync *y, int timeout_ms, int *interrupted, sn_err *e);
/* Tests only: the routing id our next DEALERs connect with (a forger's). */
SN_HIDDEN int sn_net_force_routing_id(sn_net *n, const char *id, sn_err *e);
/* Tests only: bytes as they are, on our connection to endpoint (a forger's
 * messages). */
SN_HIDDEN int sn_net_send_raw(sn_net *n, const char *endpoint, const void *bytes, size_t len,
                              sn_err *e);
SN_HIDDEN void sn_net_get_stats(const sn_net *n, sn_net_stats *out);
SN_HIDDEN int sn_keypair(char pub[SN_Z85_KEY_LEN + 1], char sec[SN_Z85_KEY_LEN + 1], sn_err *e);

#endif
