/* The NATS transport of a node, for nodes that cannot dial each other but
 * can all reach a NATS server (laptops behind NAT, separate clusters).
 *
 * Subjects: each node receives on <prefix>.node.<hex of its node id> (hex:
 * a node id may hold any byte but NUL; a subject token may not hold '.',
 * '*', '>' or spaces); every node hears <prefix>.mesh, where each
 * announces itself with a heartbeat every heartbeat_interval (a message
 * from an unknown node makes it a peer, so nodes find each other there).
 * The engine's peer ids are node ids; its outbox to a peer goes to that
 * peer's subject. The engine is the same as over ZeroMQ: only the sizes
 * change, since a message must fit the server's max_payload
 * (sn_nats_max_message, which the binding gives the engine).
 *
 * Threads: the client library reads the socket on its own thread, but we
 * take messages only from synchronous subscriptions inside sn_nats_poll,
 * on the caller's thread: nothing else touches the engine or the store.
 *
 * Keys (curve): every message is sealed to the recipient's key
 * (nats/sn_seal.h); a mesh heartbeat is sealed once per authorized key.
 * What does not open, or comes from a key not authorized, is counted in
 * rejected and dropped. A node id belongs to a key as on ZeroMQ
 * (sync/sn_idmap.h): the key the config names with it, else the first key
 * that spoke for it while the engine keeps it as a peer. Without keys
 * anyone who may publish on the server may speak as any node id.
 *
 * JetStream (optional): a stream per mesh, SYNAPTIC_<prefix>, keeps what
 * is published on <prefix>.node.> (limits by age and bytes), and each node
 * reads it through a durable pull consumer of its own, acknowledging a
 * message once the engine took it. A node that was offline replays what
 * nodes sent each other meanwhile (pushes and answers carry the records),
 * so it catches up with no writer online. Under keys it can open only
 * what was sealed to it. */
#ifndef SN_NATS_H
#define SN_NATS_H

#include "nats/sn_seal.h"
#include "sync/sn_sync.h"

#define SN_NATS_MAX_AUTHORIZED 256
#define SN_NATS_MAX_SUBJECT 600
#define SN_NATS_DEFAULT_MAX_PAYLOAD 1048576   /* nats-server's default: the default size of our messages */

typedef struct sn_nats sn_nats;

typedef struct sn_nats_config {
    const char *url;                        /* "nats://127.0.0.1:4222"; a list with commas */
    const char *subject_prefix;             /* "synaptic.default" */
    const char *user, *password, *token;
    const char *credentials;                /* a .creds file (JWT and nkey seed) */
    const char *nkey_public, *nkey_seed_file;
    int tls;                                /* TLS to the server; the files below optional */
    const char *tls_ca, *tls_cert, *tls_key;
    int curve;
    char public_key[SN_SEAL_Z85_LEN + 1], secret_key[SN_SEAL_Z85_LEN + 1];
    const char *const *authorized;          /* Z85 keys we accept and seal mesh messages to */
    const char *const *authorized_ids;      /* NULL, or per key the node id it alone holds */
    size_t nauthorized;
    /* JetStream: a stream per mesh keeps the messages between nodes, and a
     * durable consumer per node replays what it missed; 0: core NATS only */
    int jetstream;
    double js_max_age;                      /* seconds; 0: no limit */
    int64_t js_max_bytes;                   /* 0: no limit */
} sn_nats_config;

typedef struct sn_nats_stats {
    uint64_t rejected;      /* did not open, not a message, a key not authorized */
    uint64_t forged;        /* a node id held by another key */
    uint64_t dropped;       /* outgoing messages the client refused, or with no key to seal to */
    uint64_t published, received;
    uint64_t reconnects;
    uint64_t replayed;      /* messages taken from the JetStream stream */
} sn_nats_stats;

SN_HIDDEN void sn_nats_default_config(sn_nats_config *c);
/* Connects and subscribes; SN_EIO with the server's or client's reason
 * when the server cannot be reached. */
SN_HIDDEN int sn_nats_new(const sn_nats_config *c, const char *node_id, sn_nats **out, sn_err *e);
SN_HIDDEN void sn_nats_free(sn_nats *n);
/* When no node is alive: tear libnats down and wait (up to 2 s) for its
 * threads, so nothing of it outlives an unload of the core. Nothing when
 * no node was made since the last call. */
SN_HIDDEN void sn_nats_library_close(void);
/* Before a close: a leaving heartbeat to every live peer, published now
 * (sn_nats_free flushes the connection), so peers mark this node left. */
SN_HIDDEN void sn_nats_leave(sn_nats *n, sn_sync *y);
/* The largest engine message that fits the server's max_payload once sealed. */
SN_HIDDEN size_t sn_nats_max_message(const sn_nats *n);
SN_HIDDEN const char *sn_nats_subject(const sn_nats *n);   /* where this node receives */
SN_HIDDEN const char *sn_nats_url(const sn_nats *n);       /* the server connected to */
/* Tells the engine our public key (it advertises no endpoint): call once. */
SN_HIDDEN int sn_nats_attach(sn_nats *n, sn_sync *y, sn_err *e);
/* Adds node_id as a static peer (and its key, under keys). */
SN_HIDDEN int sn_nats_add_peer(sn_nats *n, sn_sync *y, const char *node_id, const char *pub, sn_err *e);
SN_HIDDEN int sn_nats_disconnect(sn_nats *n, sn_sync *y, const char *id, sn_err *e);
/* As sn_net_authorize and sn_net_revoke: the keys whose sealed messages
 * are opened, and that mesh heartbeats are sealed to. */
SN_HIDDEN int sn_nats_authorize(sn_nats *n, const char *key, const char *id, sn_err *e);
SN_HIDDEN int sn_nats_revoke(sn_nats *n, sn_sync *y, const char *key, sn_err *e);
/* Wait up to timeout_ms for messages, hand them to the engine, run its
 * timers at the wall clock, announce on the mesh when due, and send its
 * outbox. *interrupted: a trapped signal cut the wait short. */
SN_HIDDEN int sn_nats_poll(sn_nats *n, sn_sync *y, int timeout_ms, int *interrupted, sn_err *e);
/* A gateway (a node that also listens on ZeroMQ, csrc/net): the ZeroMQ
 * side's poll ticks the engine and sends its outbox, offering what is for
 * no ZeroMQ connection to sn_nats_send_to (1: taken; 0: not a NATS peer,
 * an endpoint); sn_nats_take_all then takes what NATS holds now and
 * announces us on the mesh, without waiting. */
SN_HIDDEN int sn_nats_send_to(sn_nats *n, sn_sync *y, const char *to, const unsigned char *bytes, size_t len);
SN_HIDDEN int sn_nats_take_all(sn_nats *n, sn_sync *y, sn_err *e);
/* Tests only: bytes as they are on a subject (a forger's). */
SN_HIDDEN int sn_nats_send_raw(sn_nats *n, const char *subject, const void *bytes, size_t len, sn_err *e);
/* Tests only: bytes sealed from this node's keys to the key to (Z85), as
 * its outbox would be (a forger's raw material). */
SN_HIDDEN int sn_nats_seal_to(const sn_nats *n, const char *to, const void *bytes, size_t len,
                              unsigned char **out, size_t *outlen, sn_err *e);
SN_HIDDEN void sn_nats_get_stats(const sn_nats *n, sn_nats_stats *out);
/* The subject a node receives on, under prefix. */
SN_HIDDEN int sn_nats_node_subject(const char *prefix, const char *node_id, char out[SN_NATS_MAX_SUBJECT],
                                   sn_err *e);

#endif
