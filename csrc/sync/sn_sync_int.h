/* Internals shared by the sync engine's files; nothing outside csrc/sync
 * includes this.
 *
 *   sn_sync.c         lifecycle, config, stats, the timers (tick)
 *   sn_sync_peers.c   peers, and what each was sent lately
 *   sn_sync_discover.c  samples of peers in heartbeats, candidates to dial
 *   sn_sync_build.c   the outbox, and building messages (entries, chunks)
 *   sn_sync_chunks.c  reassembly of records that arrive in chunks
 *   sn_sync_digest.c  the digest of what a store holds (heartbeats carry it)
 *   sn_sync_send.c    heartbeats, requests, answers, eager pushes
 *   sn_sync_recv.c    decoding and applying what peers send
 *
 * Messages are record envelopes of the message types in sn_schema.h: the
 * fields are the message, the payload is the concatenated stored bytes of
 * the records its entries carry (entry.len bytes each, in order), and the
 * envelope's CRC covers both. Decoding goes through sn_record_decode, so a
 * message gets the same bounds pre-check and schema check as a record. */
#ifndef SN_SYNC_INT_H
#define SN_SYNC_INT_H

#include "base/sn_vec.h"
#include "sync/sn_sync.h"

#include <stdint.h>

/* Entries we put in one message: a receiver applies a message whole in one
 * poll, so this bounds that poll (256 small entries: a few ms). Receivers
 * take up to 4096 from older peers. */
#define MAX_ENTRIES_PER_MESSAGE 256
/* Local writes pushed eagerly per tick: a burst of 50,000 puts goes out
 * over many polls, each bounded, instead of in one. */
#define MAX_PUSH_PER_TICK 1024
#define ENTRY_OVERHEAD 160          /* bytes an entry's fields take, generously */
#define MESSAGE_OVERHEAD 4096
#define MAX_SETS_PER_PEER 16        /* chunk sets in flight from one peer */
#define MAX_SPANS 1024              /* disjoint received ranges of one chunk set */
#define MAX_SENT_ORIGINS 256        /* origins remembered per peer as sent lately */

/* What we sent a peer lately, per origin: a request that crossed our
 * answer (or push) in flight is not answered with the same entries again. */
typedef struct sent_item {
    char origin[SN_ORIGIN_LEN];
    uint64_t seq;
    double at;
} sent_item;

typedef struct peer {
    char *id;
    size_t len;
    int is_static, learned;
    int candidate;               /* learned, and not yet heard from as its claimed node id */
    double added, last_seen, last_heartbeat, last_request;
    sent_item *sent;
    size_t nsent, sent_cap;
    char *node;                  /* the "from" of its messages; NULL until heard */
    char *endpoint;              /* dialable; NULL: unknown or not listening */
    char pub[SN_SYNC_KEY_LEN + 1];
    uint64_t bytes_sent, bytes_received;
    uint64_t digest;             /* of its last heartbeat, when has_digest */
    int has_digest, has_vector;
    sn_vv vector;                /* its "have" at its last request */
    unsigned unsent;             /* UNSENT_*: what its connection never took (sn_sync_unsent) */
    int left;                    /* its last message said it was closing */
    char *refused;               /* its last message refused us: why (malloc'd); NULL: not */
    size_t queued;               /* bytes in the outbox for it */
    double tokens, refilled;     /* max_send_rate's bucket (sn_sync_build.c); refilled < 0: never */
} peer;

/* UNSENT_DATA: a push or answer it did not take (a full queue): no more
 * eager pushes to it until its connection takes messages again; what it
 * missed comes with the request sent then (backpressure, not drops). */
enum { UNSENT_HEARTBEAT = 1, UNSENT_REQUEST = 2, UNSENT_DATA = 4 };

/* A peer a heartbeat named, not dialed yet (sn_sync_next_dial). */
#define MAX_CANDIDATES 64
/* Learned endpoints dialed and not yet answering as the id they claim:
 * each holds a connection (file descriptors) and is not a peer, so a
 * forger naming many endpoints gets at most this many dials at once. */
#define MAX_PROBING 4
#define MAX_REFUSED 256             /* names discovery refused lately; oldest forgotten */
typedef struct candidate {
    char id[SN_MAX_ID_LEN + 1];
    char endpoint[SN_SYNC_MAX_ENDPOINT + 1];
    char pub[SN_SYNC_KEY_LEN + 1];
    double first_seen, last_seen;
} candidate;

/* A record arriving in chunks from one peer: its entry, the bytes so far
 * (the whole record's size is reserved at the first chunk and charged to
 * the peer's cap), and the ranges received, sorted and merged. */
typedef struct span { size_t off, end; } span;

typedef struct partial {
    struct partial *next;
    char *peer;
    size_t plen;
    sn_entry en;
    size_t total, have;
    unsigned char *buf;
    span *spans;
    size_t nspans, cap;
    double touched;
} partial;

typedef struct out_msg {
    struct out_msg *next;
    char *to;
    unsigned char *bytes;
    size_t len;
    int kind;                    /* SN_MSG_HEARTBEAT or _SYNC_REQUEST; 0: anything else */
} out_msg;

struct sn_sync {
    sn_store *s;
    sn_sync_config cfg;
    peer *peers;
    size_t npeers, cap;
    out_msg *head, *tail;
    size_t nout;
    double now, last_round;
    double last_any_request;       /* our last SyncRequest still unanswered; -inf: none */
    int started;
    uint64_t pushed_seq;           /* local log entries already pushed eagerly */
    uint64_t rng;
    partial *parts;                /* chunk sets in flight */
    size_t chunk;                  /* effective chunk size */
    sn_sync_stats st;
    char *self_endpoint;           /* advertised in heartbeats; NULL: none */
    char self_pub[SN_SYNC_KEY_LEN + 1];
    candidate *cands;
    size_t ncands, cands_cap;
    candidate dialing;             /* the one sn_sync_next_dial handed out */
    double last_dial;              /* when the caller last dialed a candidate */
    /* names not to dial: blocked by the user (node:disconnect), kept until
     * unblocked, never pushed out by what peers say; refused by discovery
     * itself (a key not authorized, no answer, another id), a bounded ring */
    char **blocked;
    size_t nblocked, blocked_cap;
    char **refused;
    size_t nrefused;
    int handed_kind;               /* the kind of the message sn_sync_next_out handed out last */
    struct sn_deferred *deferring; /* while a message's entries are applied: layers to settle after */
    int settled;                   /* the first tick settled what a crash left (sn_replica_settle_all) */
    int skip_settle;               /* tests: as if the process died before settling */
    double refusals_since;         /* the window SN_SYNC_MAX_REFUSALS counts in */
    unsigned refusals_in_window;
};

/* The engine's xorshift64 step (peer and candidate picks). Inline here so
 * the files that pick do not call back into sn_sync.c. */
static inline uint64_t sn_next_rand(sn_sync *y)
{
    y->rng ^= y->rng << 13;
    y->rng ^= y->rng >> 7;
    y->rng ^= y->rng << 17;
    return y->rng;
}

/* A message under construction: fields in an arena, payload parts owned. */
typedef struct builder {
    sn_arena a;
    sn_value *entries;
    size_t n, cap;
    sn_part *parts;
    unsigned char **owned;
    size_t nparts;
    size_t bytes;          /* estimated encoded size */
} builder;

/* ---- peers (sn_sync_peers.c) ---- */
SN_HIDDEN peer *sn_peer_find(sn_sync *y, const char *id, size_t len);
SN_HIDDEN int sn_peer_state(const sn_sync *y, const peer *p);
/* A known peer is returned as is (made static if is_static); a new one
 * is added, or NULL with e set. */
SN_HIDDEN peer *sn_peer_learn(sn_sync *y, const char *id, size_t len, int is_static, sn_err *e);
SN_HIDDEN void sn_peer_drop(sn_sync *y, peer *p);
SN_HIDDEN void sn_peers_free(sn_sync *y);
/* Peers we learned of (not static) that stay dead are forgotten, so state
 * stays bounded; candidates that did not answer in time are dropped and
 * their names refused. */
SN_HIDDEN void sn_peers_forget_dead(sn_sync *y);
/* Peers holding a slot of max_peers: all but candidates. */
SN_HIDDEN size_t sn_peers_in_slots(const sn_sync *y);
SN_HIDDEN size_t sn_peers_probing(const sn_sync *y);
/* A candidate's message: whether it is from the node id it claimed and
 * there is a slot for it. It becomes a peer then; otherwise it is dropped
 * (p is gone) and its names refused. */
SN_HIDDEN int sn_candidate_answered(sn_sync *y, peer *p, const char *from, size_t len);
/* The last seq of origin sent to p within the sent memory; 0: none. */
SN_HIDDEN uint64_t sn_sent_lately(const sn_sync *y, const peer *p, const char *origin);
SN_HIDDEN void sn_sent_note(sn_sync *y, peer *p, const char *origin, uint64_t seq);

/* ---- discovery (sn_sync_discover.c) ---- */
SN_HIDDEN void sn_discovery_free(sn_sync *y);
/* A decoded heartbeat's "peers" (nil allowed): bounded and well-formed? */
SN_HIDDEN int sn_sample_check(const sn_value *list, sn_err *e);
/* Take in a checked sample from p: its own entry gives p's address, the
 * others become candidates. */
SN_HIDDEN int sn_sample_take(sn_sync *y, peer *p, const sn_value *list, sn_err *e);
/* The sample a heartbeat to p carries, into map's "peers". */
SN_HIDDEN int sn_sample_put(sn_sync *y, const peer *p, sn_arena *a, sn_value *map, sn_err *e);

/* ---- the outbox and building messages (sn_sync_build.c) ---- */
/* Takes msg->data, also on failure. */
SN_HIDDEN int sn_outbox_add(sn_sync *y, const peer *p, sn_buf *msg, sn_err *e);
/* A heartbeat that says only "refused: reason" to id, a node we have no
 * slot for; at most SN_SYNC_MAX_REFUSALS per heartbeat interval. */
SN_HIDDEN int sn_send_refusal(sn_sync *y, const char *id, size_t len, const char *reason, sn_err *e);
SN_HIDDEN void sn_outbox_clear(sn_sync *y);
SN_HIDDEN void sn_builder_init(builder *b);
SN_HIDDEN void sn_builder_free(builder *b);
SN_HIDDEN int sn_builder_add(builder *b, const sn_entry *en, unsigned char *bytes, size_t len,
                             sn_err *e);
SN_HIDDEN int sn_msg_header(sn_sync *y, sn_value *map, sn_err *e);
SN_HIDDEN void sn_count_sent(sn_sync *y, const sn_entry *en);
SN_HIDDEN int sn_send_entries(sn_sync *y, const peer *p, unsigned type, builder *b, int more,
                              sn_err *e);
SN_HIDDEN int sn_send_chunks(sn_sync *y, const peer *p, unsigned type, const sn_entry *en,
                             const unsigned char *bytes, size_t len, size_t from, size_t budget,
                             int more_after, size_t *next, sn_err *e);

/* ---- reassembly (sn_sync_chunks.c) ---- */
SN_HIDDEN void sn_partials_free(sn_sync *y);
SN_HIDDEN void sn_partial_drop(sn_sync *y, partial *q);
SN_HIDDEN void sn_partials_expire(sn_sync *y);
/* How much of the record is held from its start on. */
SN_HIDDEN size_t sn_partial_prefix(const partial *q);
SN_HIDDEN int sn_chunk_add(sn_sync *y, const peer *p, const sn_entry *en, size_t total, size_t off,
                           const unsigned char *bytes, size_t len, partial **out, sn_err *e);

/* ---- what we send (sn_sync_send.c) ---- */
SN_HIDDEN int sn_kind_enabled(const sn_sync *y, int cf);
SN_HIDDEN int sn_send_heartbeat(sn_sync *y, peer *p, sn_err *e);
SN_HIDDEN int sn_send_request(sn_sync *y, peer *p, sn_err *e);
SN_HIDDEN int sn_push_local(sn_sync *y, sn_err *e);
/* fields: a decoded SyncRequest's. */
SN_HIDDEN int sn_answer_request(sn_sync *y, peer *p, const sn_value *fields, sn_err *e);

#endif
