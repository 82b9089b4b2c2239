/* ZeroMQ transport (see sn_net.h).
 *
 * ROUTER/DEALER: a DEALER per outgoing peer gives each connection its own
 * queue and high-water mark, ZeroMQ reconnects it on its own, and the
 * ROUTER lets one listening socket answer many peers by routing id. Frames
 * are bounded by ZMQ_MAXMSGSIZE (the peer is disconnected past it), queues
 * by ZMQ_SNDHWM/ZMQ_RCVHWM (a full queue drops our message rather than
 * growing: anti-entropy resends what was lost). */
#include "base/sn_vec.h"
#include "net/sn_net_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int sn_net_zerr(sn_err *e, const char *what)
{
    return sn_fail(e, SN_EIO, "%s: %s", what, zmq_strerror(zmq_errno()));
}
#define zerr sn_net_zerr

static int common_opts(sn_net *n, void *s, sn_err *e)
{
    int zero = 0;
    int64_t max = (int64_t)n->cfg.max_message_bytes;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max) ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &n->cfg.send_hwm, sizeof(int)) ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &n->cfg.recv_hwm, sizeof(int)))
        return zerr(e, "socket options");
    return SN_OK;
}

void sn_net_free(sn_net *n)
{
    if (!n) return;
    while (n->ndealers) sn_net_close_dealer(n, n->ndealers - 1);
    free(n->dealers);
    sn_net_peers_free(n);
    free(n->forced_id);
    if (n->router) zmq_close(n->router);
    if (n->zap) zmq_close(n->zap);
    if (n->ctx) zmq_ctx_term(n->ctx);
    sn_keyset_free(n->keys);
    free(n);
}

void sn_net_default_config(sn_net_config *c)
{
    sn_sync_config sc;
    sn_sync_default_config(&sc);
    memset(c, 0, sizeof *c);
    c->max_message_bytes = sc.max_message_bytes;
    c->send_hwm = c->recv_hwm = 1000;
}

int sn_net_new(const sn_net_config *c, const char *node_id, sn_net **out, sn_err *e)
{
    *out = NULL;
    size_t idlen = strlen(node_id);
    if (idlen == 0 || idlen > SN_NET_MAX_NODE_ID)
        return sn_fail(e, SN_EARG, "a node's node_id must be 1 to %d bytes (a ZeroMQ routing id)",
                       SN_NET_MAX_NODE_ID);
    sn_net *n = calloc(1, sizeof *n);
    if (!n) return sn_fail(e, SN_ENOMEM, "out of memory");
    n->cfg = *c;
    n->cfg.listen = NULL;
    memcpy(n->node_id, node_id, idlen + 1);
    int rc = sn_keyset_new(SN_NET_MAX_AUTHORIZED, &n->keys, e);
    for (size_t i = 0; !rc && i < c->nauthorized; i++)
        rc = sn_keyset_add(n->keys, c->authorized[i], c->authorized_ids ? c->authorized_ids[i] : NULL, e);
    /* the config's lists are the caller's: the set holds copies */
    n->cfg.authorized = n->cfg.authorized_ids = NULL;
    n->cfg.nauthorized = 0;
    if (!rc) rc = sn_net_peers_init(n, e);
    if (!rc) {
        n->ctx = zmq_ctx_new();
        if (!n->ctx) rc = zerr(e, "zmq_ctx_new");
    }
    if (!rc && c->curve) {
        /* the ZAP handler must be bound before any CURVE server socket */
        n->zap = zmq_socket(n->ctx, ZMQ_REP);
        if (!n->zap || zmq_bind(n->zap, "inproc://zeromq.zap.01")) rc = zerr(e, "ZAP handler");
    }
    if (!rc && c->listen) {
        n->router = zmq_socket(n->ctx, ZMQ_ROUTER);
        int one = 1;
        if (!n->router) rc = zerr(e, "router socket");
        if (!rc) rc = common_opts(n, n->router, e);
        /* no ROUTER_HANDOVER: a second connection under a routing id in use
         * is refused, never handed the first one's pipe. MANDATORY: a send
         * to a gone connection fails instead of vanishing (sn_net_peers.c) */
        if (!rc && zmq_setsockopt(n->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one))
            rc = zerr(e, "router options");
        if (!rc && c->curve &&
            (zmq_setsockopt(n->router, ZMQ_CURVE_SERVER, &one, sizeof one) ||
             zmq_setsockopt(n->router, ZMQ_CURVE_SECRETKEY, c->secret_key, SN_Z85_KEY_LEN + 1) ||
             zmq_setsockopt(n->router, ZMQ_ZAP_DOMAIN, "synaptic", 8)))
            rc = zerr(e, "CURVE server options");
        if (!rc && zmq_bind(n->router, c->listen)) {
            rc = sn_fail(e, SN_EIO, "cannot listen on %s: %s", c->listen, zmq_strerror(zmq_errno()));
        }
        size_t len = sizeof n->address;
        if (!rc && zmq_getsockopt(n->router, ZMQ_LAST_ENDPOINT, n->address, &len))
            rc = zerr(e, "last endpoint");
    }
    if (rc) { sn_net_free(n); return rc; }
    *out = n;
    return SN_OK;
}

const char *sn_net_address(const sn_net *n) { return n->address; }
void sn_net_get_stats(const sn_net *n, sn_net_stats *out) { *out = n->st; }

int sn_keypair(char pub[SN_Z85_KEY_LEN + 1], char sec[SN_Z85_KEY_LEN + 1], sn_err *e)
{
    if (zmq_curve_keypair(pub, sec)) return zerr(e, "CURVE is not available in this libzmq");
    return SN_OK;
}

int sn_net_force_routing_id(sn_net *n, const char *id, sn_err *e)
{
    if (!*id || strlen(id) > MAX_ROUTING_ID) return sn_fail(e, SN_EARG, "routing id must be 1 to 255 bytes");
    char *copy = strdup(id);
    if (!copy) return sn_fail(e, SN_ENOMEM, "out of memory");
    free(n->forced_id);
    n->forced_id = copy;
    return SN_OK;
}

int sn_net_attach(sn_net *n, sn_sync *y, sn_err *e)
{
    return sn_sync_set_self(y, n->address[0] ? n->address : NULL, n->cfg.curve ? n->cfg.public_key : NULL, e);
}

int sn_net_authorized(const sn_net *n, const char *key)
{
    return sn_keyset_has(n->keys, key);
}

int sn_net_authorize(sn_net *n, const char *key, const char *id, sn_err *e)
{
    if (!n->cfg.curve) return sn_fail(e, SN_EARG, "authorize needs a node with curve keys");
    return sn_keyset_add(n->keys, key, id, e);
}

void sn_net_close_dealer(sn_net *n, size_t i)
{
    if (n->dealers[i].monitor) {
        zmq_socket_monitor(n->dealers[i].sock, NULL, 0);
        zmq_close(n->dealers[i].monitor);
    }
    zmq_close(n->dealers[i].sock);
    free(n->dealers[i].endpoint);
    n->dealers[i] = n->dealers[--n->ndealers];
}

int sn_net_add_peer(sn_net *n, sn_sync *y, const char *endpoint, const char *server_key, sn_err *e)
{
    int rc = sn_net_connect(n, endpoint, server_key, e);
    if (!rc) rc = sn_sync_add_peer(y, endpoint, strlen(endpoint), e);
    if (!rc) rc = sn_sync_set_peer_address(y, endpoint, strlen(endpoint), endpoint,
                                           n->cfg.curve ? server_key : NULL, e);
    if (!rc) sn_sync_unblock(y, endpoint);
    return rc;
}

/* A monitor of dealer s: ZeroMQ reconnects on its own, and a connection
 * that dropped and came back (a peer restarted, a partition healed) must
 * start a catch-up then, not at the next interval. A node without one
 * (no memory for it) still catches up when a send fails. */
static void *watch(sn_net *n, void *s, const char *tag)
{
    char addr[128];
    snprintf(addr, sizeof addr, "inproc://synaptic-monitor-%s", tag);
    if (zmq_socket_monitor(s, addr, ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))
        return NULL;
    void *m = zmq_socket(n->ctx, ZMQ_PAIR);
    if (m && !zmq_connect(m, addr)) return m;
    if (m) zmq_close(m);
    zmq_socket_monitor(s, NULL, 0);
    return NULL;
}

/* Reads a dealer's monitor events: after a disconnect or handshake, the
 * connection is polled for POLLOUT, which comes when it takes messages
 * again (ZMQ_IMMEDIATE). A handshake the server refused (our key is not
 * authorized there) is not tried again by ZeroMQ: it is noted, and
 * redial_refused dials again later, so a key the peer authorizes while
 * both run (node:authorize) gets in. */
static void watch_events(dealer *d)
{
    for (int i = 0; d->monitor && i < 64; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, d->monitor, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); break; }
        /* an event is two frames: event (2 bytes, host order) and value,
         * then the endpoint */
        if (zmq_msg_more(&m) && zmq_msg_size(&m) >= 2) {
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&m), sizeof ev);
            if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) d->refused_at = sn_now();
            else d->waiting = 1;
        }
        zmq_msg_close(&m);
    }
}

/* Dial again, once a heartbeat interval has passed, the connections whose
 * handshake the other side refused. */
static void redial_refused(sn_net *n, sn_sync *y)
{
    double wait = sn_sync_config_of(y)->heartbeat_interval, now = sn_now();
    for (size_t i = 0; i < n->ndealers; i++) {
        dealer *d = &n->dealers[i];
        if (!d->refused_at || now - d->refused_at < wait) continue;
        d->refused_at = 0;
        zmq_disconnect(d->sock, d->endpoint);
        if (zmq_connect(d->sock, d->endpoint)) d->refused_at = now;   /* next time */
        d->waiting = 1;
    }
}

int sn_net_connect(sn_net *n, const char *endpoint, const char *server_key, sn_err *e)
{
    for (size_t i = 0; i < n->ndealers; i++)
        if (!strcmp(n->dealers[i].endpoint, endpoint)) return SN_OK;
    if (n->ndealers >= MAX_DEALERS) return sn_fail(e, SN_EIO, "too many connections");
    if (n->cfg.curve && (!server_key || strlen(server_key) != SN_Z85_KEY_LEN))
        return sn_fail(e, SN_EARG, "connecting under CURVE needs the peer's public key");
    if (SN_GROW(n->dealers, n->ndealers, n->cap, 8, e)) return e->code;
    void *s = zmq_socket(n->ctx, ZMQ_DEALER);
    if (!s) return zerr(e, "dealer socket");
    int one = 1;
    int rc = common_opts(n, s, e);
    /* a routing id of this connection only: the node id travels in every
     * message, and a routing id anyone could claim must not name us */
    char rid[40];
    rid[0] = '~';
    sn_uuid(rid + 1);
    const char *use = n->forced_id ? n->forced_id : rid;
    if (!rc && (zmq_setsockopt(s, ZMQ_ROUTING_ID, use, strlen(use)) ||
                zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one)))
        rc = zerr(e, "dealer options");
    if (!rc && n->cfg.curve &&
        (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, SN_Z85_KEY_LEN + 1) ||
         zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, n->cfg.public_key, SN_Z85_KEY_LEN + 1) ||
         zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, n->cfg.secret_key, SN_Z85_KEY_LEN + 1)))
        rc = zerr(e, "CURVE client options");
    if (!rc && zmq_connect(s, endpoint))
        rc = sn_fail(e, SN_EARG, "cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
    char *copy = rc ? NULL : strdup(endpoint);
    if (!rc && !copy) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (rc) { zmq_close(s); return rc; }
    dealer *d = &n->dealers[n->ndealers++];
    d->endpoint = copy;
    d->sock = s;
    d->waiting = 1;
    d->refused_at = 0;
    d->monitor = watch(n, s, rid + 1);
    snprintf(d->key, sizeof d->key, "%s", n->cfg.curve ? server_key : "");
    return SN_OK;
}

/* ---- ZAP: admit only authorized CURVE keys ------------------------------------- */

/* The user id of an admitted connection is its public key: every message
 * it sends carries it (zmq_msg_gets "User-Id"), which binds node ids to
 * keys (sn_net_peers.c). */
static void zap_reply(void *zap, zmq_msg_t *req_id, const char *key)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data(req_id), zmq_msg_size(req_id), ZMQ_SNDMORE);
    zmq_send(zap, key ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(zap, key ? "OK" : "unauthorized", key ? 2 : 12, ZMQ_SNDMORE);
    zmq_send(zap, key ? key : "", key ? strlen(key) : 0, ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
}

static void serve_zap(sn_net *n)
{
    /* request: version, request id, domain, address, identity, mechanism, key */
    zmq_msg_t f[7];
    int nf = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, n->zap, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); break; }
        more = zmq_msg_more(&m);
        if (nf < 7) f[nf++] = m;
        else zmq_msg_close(&m);
    }
    if (nf < 2) {   /* a REP socket must answer: send a refusal with what we have */
        for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
        return;
    }
    int ok = 0;
    char key[SN_Z85_KEY_LEN + 1];
    if (nf == 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
        zmq_msg_size(&f[6]) == 32 && zmq_z85_encode(key, zmq_msg_data(&f[6]), 32))
        ok = sn_net_authorized(n, key);
    if (!ok) { n->st.zap_denied++; n->st.rejected++; }
    zap_reply(n->zap, &f[1], ok ? key : NULL);
    for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
}

int sn_net_poll(sn_net *n, sn_sync *y, int timeout_ms, int *interrupted, sn_err *e)
{
    *interrupted = 0;
    int rc = sn_sync_tick(y, sn_now(), e);
    if (!rc) rc = sn_net_discover(n, y, e);
    if (rc) return rc;
    sn_net_flush(n, y);
    size_t np = 2 * n->ndealers + 2, k = 0;
    zmq_pollitem_t *items = calloc(np, sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    if (n->router) items[k++] = (zmq_pollitem_t){ n->router, 0, ZMQ_POLLIN, 0 };
    if (n->zap) items[k++] = (zmq_pollitem_t){ n->zap, 0, ZMQ_POLLIN, 0 };
    size_t first = k;
    for (size_t d = 0; d < n->ndealers; d++)
        items[k++] = (zmq_pollitem_t){ n->dealers[d].sock, 0,
                                       (short)(ZMQ_POLLIN | (n->dealers[d].waiting ? ZMQ_POLLOUT : 0)), 0 };
    for (size_t d = 0; d < n->ndealers; d++)
        if (n->dealers[d].monitor) items[k++] = (zmq_pollitem_t){ n->dealers[d].monitor, 0, ZMQ_POLLIN, 0 };
    int r = zmq_poll(items, (int)k, timeout_ms < 0 ? 0 : timeout_ms);
    if (r < 0 && zmq_errno() != EINTR) { free(items); return zerr(e, "poll"); }
    /* a signal: what is already queued is still handled below */
    if (r < 0) *interrupted = 1;
    for (size_t d = 0; r > 0 && d < n->ndealers; d++) watch_events(&n->dealers[d]);
    /* a connection that came up: digests now, not at the next heartbeat */
    for (size_t d = 0; !rc && r > 0 && d < n->ndealers; d++) {
        if (!n->dealers[d].waiting || !(items[first + d].revents & ZMQ_POLLOUT)) continue;
        n->dealers[d].waiting = 0;
        rc = sn_sync_connected(y, n->dealers[d].endpoint, strlen(n->dealers[d].endpoint), e);
    }
    free(items);
    if (rc) return rc;
    /* the ZAP socket first: a handshake waits on it */
    for (int i = 0; n->zap && i < 64; i++) {
        zmq_pollitem_t z = { n->zap, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&z, 1, 0) <= 0) break;
        serve_zap(n);
    }
    rc = sn_net_drain(n, y, e);
    if (!rc) rc = sn_sync_tick(y, sn_now(), e);
    /* before discovery forgets the connections of nodes that are no peers:
     * a refusal (max_peers) goes to one */
    if (!rc) sn_net_flush(n, y);
    if (!rc) rc = sn_net_discover(n, y, e);
    if (!rc) redial_refused(n, y);
    if (!rc) sn_net_flush(n, y);
    return rc;
}
