/* The ZeroMQ transport of a node: one ROUTER socket for peers that connect
 * to us (when listening), one DEALER per peer we connect to, and, under
 * CURVE, a ZAP handler. Everything happens inside sn_net_poll on the
 * caller's thread: ZeroMQ's I/O threads never call back into us, and the
 * ZAP handler is a socket polled with the others.
 *
 * Peer ids given to the engine: the endpoint string for a peer we
 * connected to; the remote's routing id (its node_id) for a peer that
 * connected to us. */
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
    size_t nauthorized;
} sn_net_config;

typedef struct sn_net_stats {
    uint64_t rejected;             /* bad frames, refused handshakes */
    uint64_t dropped;              /* outgoing messages a full queue refused */
    uint64_t zap_denied;
} sn_net_stats;

/* The defaults (exported with the sync engine's as
 * synaptic.core.p2p_defaults); listen NULL, no CURVE. */
SN_HIDDEN void sn_net_default_config(sn_net_config *c);
SN_HIDDEN int sn_net_new(const sn_net_config *c, const char *node_id, sn_net **out, sn_err *e);
SN_HIDDEN void sn_net_free(sn_net *n);
SN_HIDDEN const char *sn_net_address(const sn_net *n);   /* "" when not listening */
/* server_key: the peer's CURVE public key (required under CURVE). */
SN_HIDDEN int sn_net_connect(sn_net *n, const char *endpoint, const char *server_key, sn_err *e);
/* Wait up to timeout_ms for traffic, hand every message to the engine,
 * run its timers at the wall clock, and send its outbox. */
SN_HIDDEN int sn_net_poll(sn_net *n, sn_sync *y, int timeout_ms, sn_err *e);
SN_HIDDEN void sn_net_get_stats(const sn_net *n, sn_net_stats *out);
SN_HIDDEN int sn_keypair(char pub[SN_Z85_KEY_LEN + 1], char sec[SN_Z85_KEY_LEN + 1], sn_err *e);

#endif
