/* Internals shared by the NATS transport's files; nothing outside
 * csrc/nats includes this.
 *
 *   sn_nats.c       connecting, subjects, the poll loop
 *   sn_nats_msgs.c  opening and taking messages (who may speak for which
 *                   node id), sealing and publishing the outbox, the mesh
 *                   heartbeat */
#ifndef SN_NATS_INT_H
#define SN_NATS_INT_H

#include "nats/sn_nats.h"
#include "sync/sn_idmap.h"

#include <nats/nats.h>

#define SN_NATS_MAX_RECV_PER_POLL 4096

struct sn_nats {
    natsConnection *nc;
    natsSubscription *own, *mesh;
    jsCtx *js;                               /* NULL without JetStream */
    natsSubscription *replay;                /* the durable consumer's pull subscription */
    sn_nats_config cfg;
    char *prefix;
    sn_keyset *keys;                         /* the authorized keys, and the ids they alone hold */
    unsigned char pub[SN_SEAL_KEY_BYTES], sec[SN_SEAL_KEY_BYTES];
    sn_idmap *ids;
    sn_sync *y;                              /* the engine, during a poll (for sn_idmap's liveness) */
    char node_id[SN_MAX_ID_LEN + 1];
    char subject[SN_NATS_MAX_SUBJECT];
    double last_announce;
    uint64_t reconnects;                     /* written on the client's thread (atomics) */
    sn_nats_stats st;
};

SN_HIDDEN int sn_nats_fail(sn_err *e, natsStatus s, const char *what);

/* Where a message came from: our subject, the mesh subject, or the
 * stream's replay (where our own messages and others' sealed to other
 * keys are passed over quietly). */
enum { SN_NATS_OWN, SN_NATS_MESH, SN_NATS_REPLAY };

/* sn_nats_msgs.c */
SN_HIDDEN int sn_nats_ids_init(sn_nats *n, sn_err *e);
/* One message off a subscription (destroyed here, acknowledged first when
 * from the stream and taken or refused, not when the store failed). */
SN_HIDDEN int sn_nats_take(sn_nats *n, sn_sync *y, natsMsg *m, int where, sn_err *e);
/* Everything queued on our subjects now, bounded per poll. */
SN_HIDDEN int sn_nats_drain(sn_nats *n, sn_sync *y, sn_err *e);
SN_HIDDEN int sn_nats_flush(sn_nats *n, sn_sync *y, sn_err *e);
/* Our heartbeat on the mesh subject, every heartbeat_interval. */
SN_HIDDEN int sn_nats_announce(sn_nats *n, sn_sync *y, sn_err *e);

/* sn_nats_js.c */
SN_HIDDEN int sn_nats_js_init(sn_nats *n, sn_err *e);
SN_HIDDEN void sn_nats_js_free(sn_nats *n);
/* What the stream holds for us now, bounded per poll. */
SN_HIDDEN int sn_nats_js_drain(sn_nats *n, sn_sync *y, sn_err *e);

#endif
