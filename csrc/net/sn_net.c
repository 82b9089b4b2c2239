/* ZeroMQ transport (see sn_net.h).
 *
 * ROUTER/DEALER: a DEALER per outgoing peer gives each connection its own
 * queue and high-water mark, ZeroMQ reconnects it on its own, and the
 * ROUTER lets one listening socket answer many peers by routing id. Frames
 * are bounded by ZMQ_MAXMSGSIZE (the peer is disconnected past it), queues
 * by ZMQ_SNDHWM/ZMQ_RCVHWM (a full queue drops our message rather than
 * growing: anti-entropy resends what was lost). */
#include "base/sn_vec.h"
#include "net/sn_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_DEALERS 4096
#define MAX_RECV_PER_POLL 4096

typedef struct dealer {
    char *endpoint;
    void *sock;
} dealer;

struct sn_net {
    void *ctx;
    void *router;            /* NULL when not listening */
    void *zap;               /* NULL without CURVE */
    dealer *dealers;
    size_t ndealers, cap;
    sn_net_config cfg;
    char **authorized;
    char node_id[SN_NET_MAX_NODE_ID + 1];
    char address[512];
    sn_net_stats st;
};

static int zerr(sn_err *e, const char *what)
{
    return sn_fail(e, SN_EIO, "%s: %s", what, zmq_strerror(zmq_errno()));
}

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
    for (size_t i = 0; i < n->ndealers; i++) {
        zmq_close(n->dealers[i].sock);
        free(n->dealers[i].endpoint);
    }
    free(n->dealers);
    if (n->router) zmq_close(n->router);
    if (n->zap) zmq_close(n->zap);
    if (n->ctx) zmq_ctx_term(n->ctx);
    for (size_t i = 0; i < n->cfg.nauthorized; i++) free(n->authorized[i]);
    free(n->authorized);
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
    n->authorized = calloc(c->nauthorized ? c->nauthorized : 1, sizeof(char *));
    int rc = n->authorized ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < c->nauthorized; i++) {
        n->authorized[i] = strdup(c->authorized[i]);
        if (!n->authorized[i]) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    }
    n->cfg.authorized = (const char *const *)n->authorized;
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
        /* a restarted peer reconnecting with its id takes over the old pipe */
        if (!rc && (zmq_setsockopt(n->router, ZMQ_ROUTER_HANDOVER, &one, sizeof one) ||
                    zmq_setsockopt(n->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one)))
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
    if (!rc && (zmq_setsockopt(s, ZMQ_ROUTING_ID, n->node_id, strlen(n->node_id)) ||
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
    n->dealers[n->ndealers].endpoint = copy;
    n->dealers[n->ndealers].sock = s;
    n->ndealers++;
    return SN_OK;
}

/* ---- ZAP: admit only authorized CURVE keys ------------------------------------- */

static void zap_reply(void *zap, zmq_msg_t *req_id, int ok)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data(req_id), zmq_msg_size(req_id), ZMQ_SNDMORE);
    zmq_send(zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(zap, ok ? "OK" : "unauthorized", ok ? 2 : 12, ZMQ_SNDMORE);
    zmq_send(zap, "", 0, ZMQ_SNDMORE);
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
    if (nf == 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
        zmq_msg_size(&f[6]) == 32) {
        char key[SN_Z85_KEY_LEN + 1];
        if (zmq_z85_encode(key, zmq_msg_data(&f[6]), 32))
            for (size_t i = 0; i < n->cfg.nauthorized && !ok; i++)
                ok = !strcmp(key, n->authorized[i]);
    }
    if (!ok) { n->st.zap_denied++; n->st.rejected++; }
    zap_reply(n->zap, &f[1], ok);
    for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
}

/* ---- moving messages ----------------------------------------------------------------- */

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

static int deliver(sn_net *n, sn_sync *y, const char *peer, size_t plen, zmq_msg_t *m, sn_err *e)
{
    int accepted;
    sn_err why;
    int rc = sn_sync_receive(y, peer, plen, zmq_msg_data(m), zmq_msg_size(m), &accepted, &why);
    if (rc) *e = why;
    (void)n;
    return rc;
}

static int drain(sn_net *n, sn_sync *y, sn_err *e)
{
    int rc = SN_OK;
    for (int budget = MAX_RECV_PER_POLL; !rc && n->router && budget > 0; budget--) {
        zmq_msg_t p[2];
        int np, total = recv_parts(n->router, p, &np);
        if (total < 0) break;
        if (total == 2 && np == 2) {
            rc = deliver(n, y, zmq_msg_data(&p[0]), zmq_msg_size(&p[0]), &p[1], e);
        } else {
            n->st.rejected++;
            sn_sync_count_rejected(y);
        }
        for (int i = 0; i < np; i++) zmq_msg_close(&p[i]);
    }
    for (size_t d = 0; !rc && d < n->ndealers; d++) {
        for (int budget = MAX_RECV_PER_POLL; !rc && budget > 0; budget--) {
            zmq_msg_t p[2];
            int np, total = recv_parts(n->dealers[d].sock, p, &np);
            if (total < 0) break;
            if (total == 1 && np == 1) {
                rc = deliver(n, y, n->dealers[d].endpoint, strlen(n->dealers[d].endpoint), &p[0], e);
            } else {
                n->st.rejected++;
                sn_sync_count_rejected(y);
            }
            for (int i = 0; i < np; i++) zmq_msg_close(&p[i]);
        }
    }
    return rc;
}

static void flush(sn_net *n, sn_sync *y)
{
    char *to;
    unsigned char *bytes;
    size_t len;
    while (sn_sync_next_out(y, &to, &bytes, &len)) {
        void *s = NULL;
        for (size_t d = 0; d < n->ndealers && !s; d++)
            if (!strcmp(n->dealers[d].endpoint, to)) s = n->dealers[d].sock;
        int bad;
        if (s) {
            bad = zmq_send(s, bytes, len, ZMQ_DONTWAIT) < 0;
        } else if (n->router) {
            /* ROUTER_MANDATORY: an unknown or gone routing id fails here
             * instead of silently vanishing */
            bad = zmq_send(n->router, to, strlen(to), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
                  zmq_send(n->router, bytes, len, ZMQ_DONTWAIT) < 0;
        } else {
            bad = 1;
        }
        if (bad) n->st.dropped++;
        free(to);
        free(bytes);
    }
}

int sn_net_poll(sn_net *n, sn_sync *y, int timeout_ms, sn_err *e)
{
    int rc = sn_sync_tick(y, sn_now(), e);
    if (rc) return rc;
    flush(n, y);
    size_t np = n->ndealers + 2, k = 0;
    zmq_pollitem_t *items = calloc(np, sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    if (n->router) items[k++] = (zmq_pollitem_t){ n->router, 0, ZMQ_POLLIN, 0 };
    if (n->zap) items[k++] = (zmq_pollitem_t){ n->zap, 0, ZMQ_POLLIN, 0 };
    for (size_t d = 0; d < n->ndealers; d++)
        items[k++] = (zmq_pollitem_t){ n->dealers[d].sock, 0, ZMQ_POLLIN, 0 };
    int r = zmq_poll(items, (int)k, timeout_ms < 0 ? 0 : timeout_ms);
    free(items);
    if (r < 0 && zmq_errno() != EINTR) return zerr(e, "poll");
    /* the ZAP socket first: a handshake waits on it */
    for (int i = 0; n->zap && i < 64; i++) {
        zmq_pollitem_t z = { n->zap, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&z, 1, 0) <= 0) break;
        serve_zap(n);
    }
    rc = drain(n, y, e);
    if (!rc) rc = sn_sync_tick(y, sn_now(), e);
    if (!rc) flush(n, y);
    return rc;
}
