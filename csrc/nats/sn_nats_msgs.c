/* Taking messages off the subjects and putting the outbox on them (see
 * sn_nats.h for the identity rules). */
#include "nats/sn_nats_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- who may speak for which node id (sync/sn_idmap.h) -------------------------------- */

/* No inbound connections here: a node id is bound to a key only. */
static int conn_alive(void *ud, const void *conn, size_t len)
{
    (void)ud, (void)conn, (void)len;
    return 0;
}

/* A key's binding of an unnamed id holds while the engine keeps that node
 * as a peer (we bind with the node id as the "endpoint"). */
static int dialed(void *ud, const char *node)
{
    sn_nats *n = ud;
    return n->y && sn_sync_find_node(n->y, node) >= 0;
}

int sn_nats_ids_init(sn_nats *n, sn_err *e)
{
    sn_idmap_ops ops = { n, conn_alive, dialed };
    return sn_idmap_new(n->keys, &ops, &n->ids, e);
}

static void rejected(sn_nats *n, sn_sync *y)
{
    n->st.rejected++;
    sn_sync_count_rejected(y);
}

/* ---- receiving ------------------------------------------------------------------------ */

/* Opens a sealed message: SN_OK with *plain and key set, or *skip (sealed
 * to another node: a mesh message's other copies), or counted as rejected. */
static int open_sealed(sn_nats *n, sn_sync *y, const void *data, size_t len, int where, unsigned char **plain,
                       size_t *plen, char key[SN_SEAL_Z85_LEN + 1], int *skip, sn_err *e)
{
    unsigned char from[SN_SEAL_KEY_BYTES];
    int r = sn_seal_open(data, len, n->pub, n->sec, from, plain, plen);
    if (r < 0) return sn_fail(e, SN_ENOMEM, "out of memory");
    if (r == SN_SEAL_NOT_MINE && where != SN_NATS_OWN) {
        *skip = 1;
        return SN_OK;
    }
    if (r == SN_SEAL_OPENED) {
        sn_z85_encode_key(from, key);
        if (sn_idmap_authorized(n->ids, key)) return SN_OK;
        free(*plain);
        *plain = NULL;
    }
    *skip = 1;
    rejected(n, y);
    return SN_OK;
}

/* key: the sender's, under keys (NULL without). */
static int take_decoded(sn_nats *n, sn_sync *y, const sn_sync_msg *m, const char *key, int where, sn_err *e)
{
    char from[SN_MAX_ID_LEN + 1];
    sn_sync_msg_from(m, from);
    if (where == SN_NATS_REPLAY && !strcmp(from, n->node_id)) return SN_OK;   /* ours, from the stream */
    /* node:disconnect: its messages (a mesh heartbeat) do not make it a peer again */
    if (sn_sync_user_blocked(y, from)) return SN_OK;
    /* NoEcho keeps our own messages from us: one naming us is a forger's */
    if (!strcmp(from, n->node_id) || (key && !sn_idmap_key_may_speak(n->ids, from, key, from))) {
        n->st.forged++;
        rejected(n, y);
        return SN_OK;
    }
    int accepted;
    sn_err why;
    int rc = sn_sync_receive_msg(y, from, strlen(from), m, &accepted, &why);
    if (rc) *e = why;
    if (!rc && key) sn_sync_set_peer_address(y, from, strlen(from), NULL, key, &why);
    return rc;
}

static int receive(sn_nats *n, sn_sync *y, const void *data, size_t len, int where, sn_err *e)
{
    unsigned char *plain = NULL;
    char key[SN_SEAL_Z85_LEN + 1];
    int skip = 0, rc = SN_OK;
    if (n->cfg.curve) {
        rc = open_sealed(n, y, data, len, where, &plain, &len, key, &skip, e);
        if (rc || skip) return rc;
        data = plain;
    }
    sn_sync_msg *m = NULL;
    sn_err why;
    rc = sn_sync_decode(data, len, sn_sync_config_of(y)->max_message_bytes, &m, &why);
    if (rc == SN_ENOMEM) *e = why;
    if (rc && rc != SN_ENOMEM) {
        rc = SN_OK;
        rejected(n, y);
    }
    if (m) rc = take_decoded(n, y, m, n->cfg.curve ? key : NULL, where, e);
    sn_sync_msg_free(m);
    free(plain);
    return rc;
}

int sn_nats_take(sn_nats *n, sn_sync *y, natsMsg *m, int where, sn_err *e)
{
    n->st.received++;
    int len = natsMsg_GetDataLength(m);
    int rc = receive(n, y, natsMsg_GetData(m), len > 0 ? (size_t)len : 0, where, e);
    if (where == SN_NATS_REPLAY) {
        n->st.replayed++;
        /* not acknowledged after a store failure: the stream delivers it again */
        if (!rc) natsMsg_Ack(m, NULL);
    }
    natsMsg_Destroy(m);
    return rc;
}

int sn_nats_drain(sn_nats *n, sn_sync *y, sn_err *e)
{
    int rc = SN_OK;
    natsSubscription *subs[2] = { n->own, n->mesh };
    for (int s = 0; s < 2 && !rc; s++)
        for (int budget = SN_NATS_MAX_RECV_PER_POLL; !rc && budget > 0; budget--) {
            natsMsg *m = NULL;
            /* a zero timeout: what is queued already, no wait */
            if (natsSubscription_NextMsg(&m, subs[s], 0) != NATS_OK || !m) break;
            rc = sn_nats_take(n, y, m, s == 1 ? SN_NATS_MESH : SN_NATS_OWN, e);
        }
    return rc;
}

/* ---- sending -------------------------------------------------------------------------- */

/* The public key to seal to for node: the engine's record of it (the key
 * its messages opened under), else the one the config names with it. */
static const char *key_of(sn_nats *n, sn_sync *y, const char *node)
{
    long i = sn_sync_find_node(y, node);
    if (i >= 0) {
        sn_peer_info p;
        sn_sync_peer(y, (size_t)i, &p);
        if (p.pub) return p.pub;
    }
    return sn_keyset_key_for(n->keys, node);
}

static int publish(sn_nats *n, const char *subject, const unsigned char *to, const void *bytes, size_t len,
                   sn_err *e)
{
    unsigned char *env = NULL;
    if (to) {
        sn_err why;
        int rc = sn_seal(to, n->pub, n->sec, bytes, len, &env, &len, &why);
        if (rc == SN_ENOMEM) { *e = why; return rc; }
        if (rc) { n->st.dropped++; return SN_OK; }
        bytes = env;
    }
    /* while reconnecting the client buffers (its reconnect buffer); past
     * that, or over max_payload, the message is dropped: anti-entropy
     * fetches it again */
    natsStatus s = natsConnection_Publish(n->nc, subject, bytes, (int)len);
    if (s == NATS_OK) n->st.published++;
    else n->st.dropped++;
    free(env);
    return SN_OK;
}

/* One engine message to node to: published, or counted as dropped. */
static int send_one(sn_nats *n, sn_sync *y, const char *to, const unsigned char *bytes, size_t len, sn_err *e)
{
    char subject[SN_NATS_MAX_SUBJECT];
    sn_err why;
    unsigned char key[SN_SEAL_KEY_BYTES];
    const char *z = n->cfg.curve ? key_of(n, y, to) : NULL;
    if (sn_nats_node_subject(n->prefix, to, subject, &why) || (n->cfg.curve && (!z || sn_z85_key(z, key, &why)))) {
        n->st.dropped++;   /* no subject for it, or no key to seal to */
        return SN_OK;
    }
    return publish(n, subject, n->cfg.curve ? key : NULL, bytes, len, e);
}

int sn_nats_flush(sn_nats *n, sn_sync *y, sn_err *e)
{
    char *to;
    unsigned char *bytes;
    size_t len;
    int rc = SN_OK;
    while (!rc && sn_sync_next_out(y, &to, &bytes, &len)) {
        rc = send_one(n, y, to, bytes, len, e);
        free(to);
        free(bytes);
    }
    return rc;
}

int sn_nats_send_to(sn_nats *n, sn_sync *y, const char *to, const unsigned char *bytes, size_t len)
{
    /* a ZeroMQ peer whose connection is gone is not a node id on the mesh */
    if (strstr(to, "://")) return 0;
    sn_err e;
    return send_one(n, y, to, bytes, len, &e) == SN_OK;
}

int sn_nats_announce(sn_nats *n, sn_sync *y, sn_err *e)
{
    double now = sn_now();
    if (now - n->last_announce < sn_sync_config_of(y)->heartbeat_interval) return SN_OK;
    n->last_announce = now;
    unsigned char *bytes;
    size_t len;
    int rc = sn_sync_broadcast_heartbeat(y, &bytes, &len, e);
    if (rc) return rc;
    char mesh[SN_NATS_MAX_SUBJECT];
    snprintf(mesh, sizeof mesh, "%s.mesh", n->prefix);
    if (!n->cfg.curve) {
        rc = publish(n, mesh, NULL, bytes, len, e);
    } else {
        /* one copy per authorized key: the server learns nothing it could
         * replay as another node's, and a node opens only its own copy */
        for (size_t k = 0; !rc && k < sn_keyset_count(n->keys); k++)
            if (memcmp(sn_keyset_bytes(n->keys, k), n->pub, SN_SEAL_KEY_BYTES))
                rc = publish(n, mesh, sn_keyset_bytes(n->keys, k), bytes, len, e);
    }
    free(bytes);
    return rc;
}
