/* Who may speak for which node id, moving messages, dialing learned peers,
 * and dropping peers (see sn_net.h for the identity rules).
 *
 * Why bind node ids ourselves: a ROUTER names an inbound connection by the
 * routing id the connecting side chose, so any local process could connect
 * under a peer's id and, with ROUTER_HANDOVER, take its pipe over. Our
 * DEALERs now choose random ids and the node id is read from each message
 * ("from"), bound to the first live connection (and, under CURVE, key)
 * that used it; under CURVE an id the config names with a key is that
 * key's alone (sn_net.h). */
#include "base/sn_vec.h"
#include "net/sn_net_int.h"
#include "sync/sn_idmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ---- liveness, as the identity rules (sync/sn_idmap.h) ask it ----------------------------- */

/* Whether the inbound connection conn is still there. ROUTER_MANDATORY
 * makes a send to a gone one fail at its first frame; a live one gets an
 * empty frame, which our DEALERs ignore. */
static int conn_alive(void *ud, const void *conn, size_t len)
{
    sn_net *n = ud;
    if (zmq_send(n->router, conn, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return zmq_errno() != EHOSTUNREACH;
    zmq_send(n->router, "", 0, ZMQ_DONTWAIT);
    return 1;
}

static int dialed(void *ud, const char *endpoint)
{
    sn_net *n = ud;
    for (size_t d = 0; d < n->ndealers; d++)
        if (!strcmp(n->dealers[d].endpoint, endpoint)) return 1;
    return 0;
}

int sn_net_peers_init(sn_net *n, sn_err *e)
{
    sn_idmap_ops ops = { n, conn_alive, dialed };
    return sn_idmap_new(n->keys, &ops, &n->ids, e);
}

void sn_net_peers_free(sn_net *n)
{
    sn_idmap_free(n->ids);
}

static void forged(sn_net *n, sn_sync *y)
{
    n->st.forged++;
    n->st.rejected++;
    sn_sync_count_rejected(y);
}

static void rejected(sn_net *n, sn_sync *y)
{
    n->st.rejected++;
    sn_sync_count_rejected(y);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static int deliver(sn_sync *y, const char *peer, const sn_sync_msg *m, sn_err *e)
{
    int accepted;
    sn_err why;
    int rc = sn_sync_receive_msg(y, peer, strlen(peer), m, &accepted, &why);
    if (rc) *e = why;
    return rc;
}

/* The message in body, decoded once (the engine takes it as it is), and
 * its sender's node id; NULL when it is bad bytes (counted) or, with *rc
 * set, on a memory failure. */
static sn_sync_msg *decode(sn_net *n, sn_sync *y, zmq_msg_t *body, char from[SN_MAX_ID_LEN + 1],
                           int *rc, sn_err *e)
{
    sn_sync_msg *m;
    sn_err why;
    *rc = sn_sync_decode(zmq_msg_data(body), zmq_msg_size(body), n->cfg.max_message_bytes, &m, &why);
    if (*rc == SN_ENOMEM) { *e = why; return NULL; }
    if (*rc) {
        *rc = SN_OK;
        rejected(n, y);
        return NULL;
    }
    sn_sync_msg_from(m, from);
    return m;
}

/* A node listening on a wildcard address advertises it as bound
 * ("tcp://0.0.0.0:7000"): dial the address its connection came from. */
static void fix_wildcard(sn_sync *y, const char *node, zmq_msg_t *m)
{
    long i = sn_sync_find_node(y, node);
    if (i < 0) return;
    sn_peer_info p;
    sn_sync_peer(y, (size_t)i, &p);
    const char *port = NULL;
    if (p.endpoint && (!strncmp(p.endpoint, "tcp://0.0.0.0:", 14) || !strncmp(p.endpoint, "tcp://*:", 8)))
        port = strrchr(p.endpoint, ':');
    const char *addr = port ? zmq_msg_gets(m, "Peer-Address") : NULL;
    if (!addr || strchr(addr, ':')) return;   /* IPv4 only */
    char ep[SN_SYNC_MAX_ENDPOINT + 1];
    sn_err e;
    if (snprintf(ep, sizeof ep, "tcp://%s%s", addr, port) < (int)sizeof ep)
        sn_sync_set_peer_address(y, p.id, strlen(p.id), ep, NULL, &e);
}

static int from_router(sn_net *n, sn_sync *y, zmq_msg_t *conn, zmq_msg_t *body, sn_err *e)
{
    char from[SN_MAX_ID_LEN + 1];
    sn_err why;
    if (zmq_msg_size(body) == 0 || zmq_msg_size(conn) > MAX_ROUTING_ID) {
        rejected(n, y);
        return SN_OK;
    }
    int rc;
    sn_sync_msg *m = decode(n, y, body, from, &rc, e);
    if (!m) return rc;
    const char *key = n->cfg.curve ? zmq_msg_gets(body, "User-Id") : NULL;
    if (n->cfg.curve && (!key || !sn_net_authorized(n, key))) {
        /* a connection ZAP admitted under a key revoked since */
        sn_sync_msg_free(m);
        n->st.zap_denied++;
        rejected(n, y);
        return SN_OK;
    }
    if (!strcmp(from, n->node_id) || (n->cfg.curve && !sn_idmap_key_may_speak(n->ids, from, key, NULL)) ||
        !sn_idmap_conn_may_speak(n->ids, from, zmq_msg_data(conn), zmq_msg_size(conn))) {
        sn_sync_msg_free(m);
        forged(n, y);
        return SN_OK;
    }
    rc = deliver(y, from, m, e);
    sn_sync_msg_free(m);
    if (!rc && key) sn_sync_set_peer_address(y, from, strlen(from), NULL, key, &why);
    if (!rc) fix_wildcard(y, from, body);
    return rc;
}

static int from_dealer_decoded(sn_net *n, sn_sync *y, size_t d, const sn_sync_msg *m,
                               const char *from, int *gone, sn_err *e);

/* *gone: the dealer was closed (it reached ourselves, or a node we have). */
static int from_dealer(sn_net *n, sn_sync *y, size_t d, zmq_msg_t *body, int *gone, sn_err *e)
{
    *gone = 0;
    if (zmq_msg_size(body) == 0) return SN_OK;   /* a liveness probe (conn_alive) */
    char from[SN_MAX_ID_LEN + 1];
    int rc;
    sn_sync_msg *m = decode(n, y, body, from, &rc, e);
    if (!m) return rc;
    rc = from_dealer_decoded(n, y, d, m, from, gone, e);
    sn_sync_msg_free(m);
    return rc;
}

static int from_dealer_decoded(sn_net *n, sn_sync *y, size_t d, const sn_sync_msg *m,
                               const char *from, int *gone, sn_err *e)
{
    const char *ep = n->dealers[d].endpoint;
    if (sn_sync_find_node(y, ep) < 0) {
        /* the engine dropped this peer (a candidate that answered as
         * another id): what is still queued on its connection is not taken */
        rejected(n, y);
        sn_net_close_dealer(n, d);
        *gone = 1;
        return SN_OK;
    }
    if (!strcmp(from, n->node_id) || sn_sync_learned_duplicate(y, ep, from)) {
        /* ourselves: never again; a duplicate: the other connection serves */
        int self = !strcmp(from, n->node_id);
        if (self) sn_sync_refuse(y, ep);
        sn_sync_remove_peer(y, ep, strlen(ep));
        sn_net_close_dealer(n, d);
        *gone = 1;
        return SN_OK;
    }
    if (n->cfg.curve && !sn_idmap_key_may_speak(n->ids, from, n->dealers[d].key, ep)) {
        forged(n, y);
        return SN_OK;
    }
    return deliver(y, ep, m, e);
}

/* Read one whole multipart message: up to two frames kept, the rest counted. */
static int recv_parts(void *s, zmq_msg_t *parts, int *nparts)
{
    *nparts = 0;
    int more = 1, total = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return total ? total : -1;
        }
        more = zmq_msg_more(&m);
        if (*nparts < 2) parts[(*nparts)++] = m;
        else zmq_msg_close(&m);
        total++;
    }
    return total;
}

int sn_net_drain(sn_net *n, sn_sync *y, sn_err *e)
{
    int rc = SN_OK;
    for (int budget = MAX_RECV_PER_POLL; !rc && n->router && budget > 0; budget--) {
        zmq_msg_t p[2];
        int np, total = recv_parts(n->router, p, &np);
        if (total < 0) break;
        if (total == 2 && np == 2) rc = from_router(n, y, &p[0], &p[1], e);
        else rejected(n, y);
        for (int i = 0; i < np; i++) zmq_msg_close(&p[i]);
    }
    for (size_t d = 0; !rc && d < n->ndealers; d++) {
        int gone = 0;
        for (int budget = MAX_RECV_PER_POLL; !rc && !gone && budget > 0; budget--) {
            zmq_msg_t p[2];
            int np, total = recv_parts(n->dealers[d].sock, p, &np);
            if (total < 0) break;
            if (total == 1 && np == 1) rc = from_dealer(n, y, d, &p[0], &gone, e);
            else rejected(n, y);
            for (int i = 0; i < np; i++) zmq_msg_close(&p[i]);
        }
        if (gone) d--;   /* the last dealer moved into slot d */
    }
    return rc;
}

/* ---- sending ------------------------------------------------------------------------------ */

void sn_net_flush(sn_net *n, sn_sync *y)
{
    char *to;
    unsigned char *bytes;
    size_t len;
    while (sn_sync_next_out(y, &to, &bytes, &len)) {
        dealer *dl = NULL;
        for (size_t d = 0; d < n->ndealers && !dl; d++)
            if (!strcmp(n->dealers[d].endpoint, to)) dl = &n->dealers[d];
        void *s = dl ? dl->sock : NULL;
        const void *conn;
        size_t connlen;
        int inbound = !s && n->router && sn_idmap_conn_of(n->ids, to, &conn, &connlen);
        int bad = 1;
        if (s) {
            bad = zmq_send(s, bytes, len, ZMQ_DONTWAIT) < 0;
            if (bad) dl->waiting = 1;   /* not up, or full: POLLOUT says when it takes them */
        } else if (inbound) {
            bad = zmq_send(n->router, conn, connlen, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0;
            /* the connection is gone: its node id is free for the next one */
            if (bad && zmq_errno() == EHOSTUNREACH) sn_idmap_release(n->ids, to);
            if (!bad) bad = zmq_send(n->router, bytes, len, ZMQ_DONTWAIT) < 0;
        } else if (n->cfg.fallback) {
            bad = !n->cfg.fallback(n->cfg.fallback_ud, y, to, bytes, len);
        }
        if (bad) n->st.dropped++;
        if (bad) sn_sync_unsent(y, to);
        free(to);
        free(bytes);
    }
}

void sn_net_leave(sn_net *n, sn_sync *y)
{
    sn_err e;
    if (sn_sync_leave(y, &e)) return;   /* out of memory: peers time out instead */
    sn_net_flush(n, y);
    /* sockets close with no linger (a closing node must not hang on a dead
     * peer); for the leaving heartbeats just queued, a moment to go out */
    int ms = 200;
    for (size_t d = 0; d < n->ndealers; d++) zmq_setsockopt(n->dealers[d].sock, ZMQ_LINGER, &ms, sizeof ms);
    if (n->router) zmq_setsockopt(n->router, ZMQ_LINGER, &ms, sizeof ms);
}

int sn_net_send_raw(sn_net *n, const char *endpoint, const void *bytes, size_t len, sn_err *e)
{
    for (size_t d = 0; d < n->ndealers; d++)
        if (!strcmp(n->dealers[d].endpoint, endpoint)) {
            if (zmq_send(n->dealers[d].sock, bytes, len, ZMQ_DONTWAIT) < 0) return sn_net_zerr(e, "send");
            return SN_OK;
        }
    return sn_fail(e, SN_EARG, "no connection to %s", endpoint);
}

/* ---- discovery and dropping peers ------------------------------------------------------------ */

int sn_net_discover(sn_net *n, sn_sync *y, sn_err *e)
{
    /* connections and bindings of peers the engine forgot (dead too long) */
    for (size_t d = 0; d < n->ndealers;) {
        if (sn_sync_find_node(y, n->dealers[d].endpoint) < 0) sn_net_close_dealer(n, d);
        else d++;
    }
    sn_idmap_forget(n->ids, y);
    sn_candidate c;
    while (sn_sync_next_dial(y, &c)) {
        /* under CURVE only keys we would admit ourselves are dialed; only
         * TCP endpoints (an inproc one a peer names would be one of our own
         * sockets, the ZAP handler's included; an ipc one any local socket) */
        int refuse = (n->cfg.curve && (!c.pub[0] || !sn_net_authorized(n, c.pub))) ||
                     strncmp(c.endpoint, "tcp://", 6);
        if (refuse) {
            sn_sync_refuse(y, c.id);
            continue;
        }
        size_t before = n->ndealers;
        sn_err why;
        if (sn_net_connect(n, c.endpoint, c.pub, &why)) {
            if (why.code == SN_ENOMEM) { *e = why; return why.code; }
            sn_sync_refuse(y, c.endpoint);
            continue;
        }
        if (sn_sync_add_learned(y, &c, e)) {
            if (n->ndealers > before) sn_net_close_dealer(n, n->ndealers - 1);
            return e->code == SN_ENOMEM ? e->code : SN_OK;
        }
        n->st.learned++;
    }
    return SN_OK;
}

/* Close our connection to the engine's peer id (if we dialed it), free the
 * node id it held and forget the peer. */
static int drop_peer(sn_net *n, sn_sync *y, const char *id, sn_err *e)
{
    char *gone = strdup(id);   /* id may be a dealer's endpoint, freed below */
    if (!gone) return sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t d = 0; d < n->ndealers; d++)
        if (!strcmp(n->dealers[d].endpoint, gone)) {
            sn_net_close_dealer(n, d);
            break;
        }
    sn_idmap_release(n->ids, gone);
    sn_sync_remove_peer(y, gone, strlen(gone));
    free(gone);
    return SN_OK;
}

int sn_net_disconnect(sn_net *n, sn_sync *y, const char *id, sn_err *e)
{
    long i = sn_sync_find_node(y, id);
    if (i < 0) return 0;
    sn_peer_info p;
    sn_sync_peer(y, (size_t)i, &p);
    /* the names outlive the peer: discovery is kept from dialing them */
    int rc = sn_sync_block(y, p.id, e);
    if (!rc && p.node) rc = sn_sync_block(y, p.node, e);
    if (!rc && p.endpoint) rc = sn_sync_block(y, p.endpoint, e);
    if (!rc) rc = drop_peer(n, y, p.id, e);
    return rc ? -1 : 1;
}

int sn_net_revoke(sn_net *n, sn_sync *y, const char *key, sn_err *e)
{
    if (!n->cfg.curve) return sn_fail(e, SN_EARG, "revoke needs a node with curve keys"), -1;
    if (!sn_keyset_remove(n->keys, key)) return 0;
    sn_idmap_revoke(n->ids, key);
    /* every peer dialed or heard under the key goes: our connections to it
     * close; an inbound one is ZeroMQ's to keep (a ROUTER has no per-peer
     * close), but nothing it carries is taken any more (from_router) and
     * its next handshake is refused (ZAP) */
    for (size_t d = n->ndealers; d-- > 0;)
        if (!strcmp(n->dealers[d].key, key) && drop_peer(n, y, n->dealers[d].endpoint, e)) return -1;
    for (size_t i = sn_sync_peer_count(y); i-- > 0;) {
        sn_peer_info p;
        sn_sync_peer(y, i, &p);
        if (p.pub && !strcmp(p.pub, key) && drop_peer(n, y, p.id, e)) return -1;
    }
    return 1;
}
