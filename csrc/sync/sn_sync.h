/* The transport-free sync engine: peers, heartbeats, anti-entropy rounds,
 * eager pushes of local writes, and the wire messages, all driven by the
 * caller's clock. It takes bytes in (sn_sync_receive) and leaves bytes out
 * (the outbox); a transport, or a simulation, carries them. No sockets, no
 * threads, no Lua. */
#ifndef SN_SYNC_H
#define SN_SYNC_H

#include "store/sn_replica.h"

#define SN_PROTO_VERSION 2   /* 2: weights entries name their write and carry parents */

/* Bounds of a config. The Lua front end checks configs against them
 * (synaptic.core.p2p_limits, read by lua/synaptic/p2p.lua); sn_sync_new
 * refuses what is below the lower ones. */
#define SN_SYNC_MIN_MESSAGE_BYTES 4096
#define SN_SYNC_MAX_MESSAGE_BYTES ((size_t)1 << 30)
#define SN_SYNC_CHUNK_OVERHEAD 1024    /* a one-entry message around a chunk, at most */
#define SN_SYNC_MIN_CHUNK_BYTES 1024
#define SN_SYNC_MAX_CHUNK_BYTES ((size_t)1 << 30)
#define SN_SYNC_MIN_REASSEMBLY_BYTES 1024
#define SN_SYNC_MAX_REASSEMBLY_BYTES ((size_t)4 << 30)
#define SN_SYNC_MAX_PEERS 4096
#define SN_SYNC_MAX_SECONDS 1e9        /* intervals and timeouts */
/* Discovery: a heartbeat carries at most this many peers (the sender
 * first, when it listens), each an id, a dialable endpoint and, under
 * CURVE, a Z85 public key. */
#define SN_SYNC_SAMPLE_PEERS 16
#define SN_SYNC_MAX_ENDPOINT 255
#define SN_SYNC_KEY_LEN 40

typedef struct sn_sync sn_sync;

typedef struct sn_sync_config {
    char node_id[SN_MAX_ID_LEN + 1];
    double sync_interval;         /* seconds between anti-entropy rounds */
    double heartbeat_interval;
    double peer_timeout;          /* silent this long: dead; half of it: suspect */
    unsigned max_peers;
    size_t max_message_bytes;
    int weights, configs, checkpoints;   /* enable_*_sync */
    double max_clock_offset_ms;   /* a record this far ahead of our clock is refused */
    size_t chunk_bytes;           /* a record larger than this travels in chunks */
    size_t max_reassembly_bytes;  /* chunk sets in flight from one peer, in bytes */
    double chunk_timeout;         /* an idle incomplete chunk set is dropped after this */
    int discovery;                /* dial the endpoints heartbeats name (sn_sync_next_dial) */
    int mode;                     /* SN_MODE_*: which way writes flow (Syncthing's folder types) */
    double max_send_rate;         /* bytes a second to each peer; 0: no limit */
    sn_resolver resolver;
} sn_sync_config;

/* SN_PEER_LEFT: it said it was closing (a leaving heartbeat); as dead for
 * what is sent to it, until it talks again. SN_PEER_REFUSED: it has no
 * slot for us (its max_peers; sn_peer_info.reason says so); as dead, but
 * our heartbeats go on, so a slot that frees up is taken. */
enum { SN_PEER_ALIVE, SN_PEER_SUSPECT, SN_PEER_DEAD, SN_PEER_LEFT, SN_PEER_REFUSED };
/* Refusals sent per heartbeat interval, at most (to anyone): a flood of
 * new ids is answered by at most this many small messages. */
#define SN_SYNC_MAX_REFUSALS 16
#define SN_SYNC_MAX_REASON 200   /* bytes of a refusal's reason kept */

/* Which way writes flow. send_only: this node's writes go out, peers'
 * writes are not taken (their entries are counted in stats.ignored) and it
 * asks for nothing. receive_only: peers' writes are taken; this node's own
 * writes are never pushed nor handed out in answers (others' writes still
 * are: it relays). */
enum { SN_MODE_BOTH, SN_MODE_SEND_ONLY, SN_MODE_RECEIVE_ONLY, SN_MODE_COUNT };
SN_HIDDEN const char *sn_sync_mode_name(int mode);
/* The mode named s, or -1. */
SN_HIDDEN int sn_sync_mode_find(const char *s);

typedef struct sn_peer_info {
    const char *id;
    int state;
    double last_seen;             /* engine time; -1 = never heard from */
    int is_static;                /* added by the caller: never forgotten */
    int learned;                  /* dialed because a heartbeat named it */
    int candidate;                /* learned, not yet answering as the id it claimed */
    const char *node;             /* the node id its messages carry; NULL until heard */
    const char *endpoint;         /* where it can be dialed; NULL when unknown */
    const char *pub;              /* its public key; NULL without */
    uint64_t bytes_sent, bytes_received;
    const char *reason;           /* SN_PEER_REFUSED: why, as the peer said; else NULL */
} sn_peer_info;

/* A peer some heartbeat named that the engine would have the caller dial
 * (sn_sync_next_dial). The strings live in the engine until its next call. */
typedef struct sn_candidate {
    const char *id, *endpoint, *pub;   /* pub: "" when the sample had none */
} sn_candidate;

typedef struct sn_sync_stats {
    uint64_t weights_sent, weights_received, configs_sent, configs_received;
    uint64_t checkpoints_sent, checkpoints_received, conflicts, rejected;
    uint64_t bytes_sent, bytes_received, sync_rounds;
    uint64_t messages_sent, messages_received, duplicates, heartbeats_sent;
    uint64_t chunks_sent, chunks_received, chunk_sets_completed;
    uint64_t chunk_sets_dropped;   /* refused (over the cap), timed out, or made moot */
    uint64_t chunk_sets_rejected;  /* inconsistent or forged: also counted in rejected */
    uint64_t reassembly_bytes;     /* reserved by chunk sets in flight now */
    uint64_t collisions;           /* two different records met under one (origin, seq) */
    uint64_t states_sent, states_received, metrics_sent, metrics_received;
    uint64_t candidates_refused;   /* learned endpoints that never answered, or as another id */
    uint64_t ignored;              /* peers' entries a send_only node did not take */
    uint64_t refusals_sent;        /* new nodes told there is no slot for them (max_peers) */
} sn_sync_stats;

/* The defaults: the one home of the values p2p.config fills in
 * (synaptic.core.p2p_defaults). */
SN_HIDDEN void sn_sync_default_config(sn_sync_config *c);
SN_HIDDEN int sn_sync_new(sn_store *s, const sn_sync_config *c, sn_sync **out, sn_err *e);
SN_HIDDEN void sn_sync_free(sn_sync *y);
/* Tests only: on, a message's writes of a layer are applied and its
 * current write left unsettled, as when the process dies in between. */
SN_HIDDEN void sn_sync_test_skip_settle(sn_sync *y, int on);
/* The store may be re-pointed (the binding checks it is still open). */
SN_HIDDEN void sn_sync_set_store(sn_sync *y, sn_store *s);
SN_HIDDEN const sn_sync_config *sn_sync_config_of(const sn_sync *y);

/* SN_EIO when max_peers is reached; adding a known peer makes it static. */
SN_HIDDEN int sn_sync_add_peer(sn_sync *y, const char *id, size_t len, sn_err *e);
SN_HIDDEN int sn_sync_remove_peer(sn_sync *y, const char *id, size_t len);
SN_HIDDEN int sn_sync_tick(sn_sync *y, double now, sn_err *e);
/* One message from a peer. Bad bytes are counted in stats.rejected and are
 * not an error; only a failure of the store is. *accepted tells which. */
SN_HIDDEN int sn_sync_receive(sn_sync *y, const char *peer, size_t plen, const void *data,
                              size_t len, int *accepted, sn_err *e);
/* A heartbeat to no peer in particular (the caller free()s *bytes), for a
 * transport with a channel every node hears (NATS's mesh subject): how
 * nodes that know no one yet find each other, since a message from an
 * unknown node makes it a peer. */
SN_HIDDEN int sn_sync_broadcast_heartbeat(sn_sync *y, unsigned char **bytes, size_t *len, sn_err *e);
/* Queue a leaving heartbeat for every peer not dead: this node is closing
 * (the transport sends the outbox once more before it closes). Reads
 * nothing of the store, which may already be closed. */
SN_HIDDEN int sn_sync_leave(sn_sync *y, sn_err *e);
/* Ask one peer for what we lack right now. */
SN_HIDDEN int sn_sync_request(sn_sync *y, const char *peer, size_t plen, sn_err *e);
/* Ask every known peer (sync_now). */
SN_HIDDEN int sn_sync_request_all(sn_sync *y, sn_err *e);

/* Outbox: take the oldest message; returns 0 when empty. The caller
 * free()s *to and *bytes. */
SN_HIDDEN int sn_sync_next_out(sn_sync *y, char **to, unsigned char **bytes, size_t *len);
SN_HIDDEN size_t sn_sync_outbox_len(const sn_sync *y);
/* The message sn_sync_next_out handed out last (to peer `to`) was never
 * sent: its peer's connection is not up yet, or its queue is full. A
 * heartbeat or request goes again when the connection comes up, and the
 * request does not count against "one request per 2 x heartbeat". */
SN_HIDDEN void sn_sync_unsent(sn_sync *y, const char *to);
/* A connection to peer came up (or takes messages again after refusing
 * them): exchange digests and ask for what we lack now, not at the next
 * interval. */
SN_HIDDEN int sn_sync_connected(sn_sync *y, const char *peer, size_t plen, sn_err *e);

SN_HIDDEN size_t sn_sync_peer_count(const sn_sync *y);
SN_HIDDEN void sn_sync_peer(const sn_sync *y, size_t i, sn_peer_info *out);
SN_HIDDEN const char *sn_sync_peer_state_name(int state);
SN_HIDDEN void sn_sync_get_stats(const sn_sync *y, sn_sync_stats *out);
SN_HIDDEN void sn_sync_count_rejected(sn_sync *y);

/* ---- discovery (sn_sync_peers.c) ----
 * What this engine advertises of itself in heartbeats: the endpoint peers
 * can dial (NULL: none, it does not listen) and its public key (or NULL). */
SN_HIDDEN int sn_sync_set_self(sn_sync *y, const char *endpoint, const char *pub, sn_err *e);
/* The endpoint and public key of a known peer (either may be NULL: kept). */
SN_HIDDEN int sn_sync_set_peer_address(sn_sync *y, const char *id, size_t len,
                                       const char *endpoint, const char *pub, sn_err *e);
/* A peer the caller dialed from a candidate: its id is its endpoint. It is
 * a candidate, not holding a slot of max_peers and sent only heartbeats,
 * until a message from it carries the node id it was named with. */
SN_HIDDEN int sn_sync_add_learned(sn_sync *y, const sn_candidate *c, sn_err *e);
/* The next learned peer to dial now, if any: 1 and *out (removed from the
 * candidates), else 0. Never ourselves, a peer we have (by id, node id or
 * endpoint), a blocked or refused name, past max_peers, past MAX_PROBING
 * candidates at once, or sooner than heartbeat_interval / MAX_PROBING after
 * the last dial; never when config.discovery is off. When both sides could
 * dial (we listen too), the smaller node id dials first; the other waits
 * three heartbeats for it, so two nodes rarely dial each other at once. */
SN_HIDDEN int sn_sync_next_dial(sn_sync *y, sn_candidate *out);
/* A node id or endpoint the user dropped (node:disconnect): never dialed
 * by discovery until unblocked (an explicit connect). Not bounded by what
 * peers say: only the caller adds to it. */
SN_HIDDEN int sn_sync_block(sn_sync *y, const char *name, sn_err *e);
SN_HIDDEN void sn_sync_unblock(sn_sync *y, const char *name);
/* Whether the user blocked name (a transport where anyone may reach us,
 * such as NATS's mesh, drops a blocked node's messages itself). */
SN_HIDDEN int sn_sync_user_blocked(const sn_sync *y, const char *name);
/* A name discovery itself refuses for a while (a key the transport does not
 * authorize, an endpoint it cannot dial, ourselves); bounded, oldest
 * forgotten first, so it never displaces a user's block. */
SN_HIDDEN void sn_sync_refuse(sn_sync *y, const char *name);
/* Whether the learned peer at endpoint turned out to be node, which we
 * reach another way: its connection is to be dropped then. When two nodes
 * dialed each other at once, each sees the other's inbound connection;
 * only the larger id gives its own up, so one connection of the two
 * survives. A transport asks this of every message on a learned
 * connection. */
SN_HIDDEN int sn_sync_learned_duplicate(const sn_sync *y, const char *endpoint, const char *node);
/* The index of the peer whose id or node id is node; -1 when none. */
SN_HIDDEN long sn_sync_find_node(const sn_sync *y, const char *node);
/* Log entries peer i has that we lack (*here) and we have that it lacks
 * (*there): both 0 when its last heartbeat's digest is ours, else from the
 * version vector of its last request. SN_NOTFOUND when unknown. */
SN_HIDDEN int sn_sync_peer_missing(sn_sync *y, size_t i, uint64_t *here, uint64_t *there,
                                   sn_err *e);

/* Receiving in two steps, for a transport that must read the sender's
 * node id ("from") to bind it to a connection before the engine takes the
 * message: decode once (envelope, bounds, schema, CRC, a heartbeat's
 * sample: a failure is bad bytes, but SN_ENOMEM), read "from", then hand
 * the decoded message over (as sn_sync_receive would the bytes, which must
 * outlive it: the entries' records are read where they lie). */
typedef struct sn_sync_msg sn_sync_msg;
SN_HIDDEN int sn_sync_decode(const void *data, size_t len, size_t max_bytes, sn_sync_msg **out,
                             sn_err *e);
SN_HIDDEN void sn_sync_msg_from(const sn_sync_msg *m, char from[SN_MAX_ID_LEN + 1]);
SN_HIDDEN int sn_sync_receive_msg(sn_sync *y, const char *peer, size_t plen, const sn_sync_msg *m,
                                  int *accepted, sn_err *e);
SN_HIDDEN void sn_sync_msg_free(sn_sync_msg *m);

/* The digest a heartbeat carries: a hash of the version vector. */
SN_HIDDEN int sn_sync_digest(sn_store *s, uint64_t *digest, sn_err *e);

#endif
