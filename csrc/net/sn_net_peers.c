/* Who may speak for which node id, moving messages, dialing learned peers,
 * and dropping peers (see sn_net.h for the identity rules).
 *
 * Why bind node ids ourselves: a ROUTER names an inbound connection by the
 * routing id the connecting side chose, so any local process could connect
 * under a peer's id and, with ROUTER_HANDOVER, take its pipe over. Our
 * DEALERs now choose random ids and the node id is read from each message
 * ("from"), bound to the first live connection (and, under CURVE, key)
 * that used it. */
#include "base/sn_vec.h"
#include "net/sn_net_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void sn_net_peers_free(sn_net *n)
{
    for (size_t i = 0; i < n->nclaims; i++) free(n->claims[i].node);
    free(n->claims);
    for (size_t i = 0; i < n->nkeys; i++) free(n->keys[i].node);
    free(n->keys);
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

/* ---- node ids bound to keys (CURVE) and to connections ----------------------------------- */

/* Whether key may speak for node: the first key that did keeps it. */
static int key_may_speak(sn_net *n, const char *node, const char *key)
{
    if (!key || strlen(key) != SN_Z85_KEY_LEN) return 0;
    for (size_t i = 0; i < n->nkeys; i++)
        if (!strcmp(n->keys[i].node, node)) return !strcmp(n->keys[i].key, key);
    sn_err e;
    if (n->nkeys >= MAX_KEY_BINDINGS || SN_GROW(n->keys, n->nkeys, n->keys_cap, 8, &e)) return 0;
    char *copy = strdup(node);
    if (!copy) return 0;
    n->keys[n->nkeys].node = copy;
    memcpy(n->keys[n->nkeys].key, key, SN_Z85_KEY_LEN + 1);
    n->nkeys++;
    return 1;
}

static claim *claim_of_node(sn_net *n, const char *node)
{
    for (size_t i = 0; i < n->nclaims; i++)
        if (!strcmp(n->claims[i].node, node)) return &n->claims[i];
    return NULL;
}

static claim *claim_of_conn(sn_net *n, const void *conn, size_t len)
{
    for (size_t i = 0; i < n->nclaims; i++)
        if (n->claims[i].connlen == len && !memcmp(n->claims[i].conn, conn, len)) return &n->claims[i];
    return NULL;
}

static void drop_claim(sn_net *n, claim *c)
{
    free(c->node);
    *c = n->claims[--n->nclaims];
}

/* Whether the connection c names is still there. ROUTER_MANDATORY makes a
 * send to a gone one fail at its first frame; a live one gets an empty
 * frame, which our DEALERs ignore. */
static int conn_alive(sn_net *n, const claim *c)
{
    if (zmq_send(n->router, c->conn, c->connlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return zmq_errno() != EHOSTUNREACH;
    zmq_send(n->router, "", 0, ZMQ_DONTWAIT);
    return 1;
}

/* Whether the connection conn may speak for node; binds it when free. */
static int conn_may_speak(sn_net *n, const char *node, const void *conn, size_t len)
{
    claim *mine = claim_of_conn(n, conn, len);
    if (mine) return !strcmp(mine->node, node);   /* one connection, one node */
    claim *c = claim_of_node(n, node);
    if (c && conn_alive(n, c)) return 0;
    if (!c) {
        sn_err e;
        char *copy = strdup(node);
        if (!copy || SN_GROW(n->claims, n->nclaims, n->claims_cap, 8, &e)) { free(copy); return 0; }
        c = &n->claims[n->nclaims++];
        c->node = copy;
    }
    memcpy(c->conn, conn, len);
    c->connlen = len;
    return 1;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static int deliver(sn_sync *y, const char *peer, const zmq_msg_t *m, sn_err *e)
{
    int accepted;
    sn_err why;
    int rc = sn_sync_receive(y, peer, strlen(peer), zmq_msg_data((zmq_msg_t *)m),
                             zmq_msg_size((zmq_msg_t *)m), &accepted, &why);
    if (rc) *e = why;
    return rc;
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
    if (zmq_msg_size(body) == 0 || zmq_msg_size(conn) > MAX_ROUTING_ID ||
        sn_sync_message_from(zmq_msg_data(body), zmq_msg_size(body), n->cfg.max_message_bytes, from, &why)) {
        rejected(n, y);
        return SN_OK;
    }
    const char *key = n->cfg.curve ? zmq_msg_gets(body, "User-Id") : NULL;
    if (!strcmp(from, n->node_id) || (n->cfg.curve && !key_may_speak(n, from, key)) ||
        !conn_may_speak(n, from, zmq_msg_data(conn), zmq_msg_size(conn))) {
        forged(n, y);
        return SN_OK;
    }
    int rc = deliver(y, from, body, e);
    if (!rc && key) sn_sync_set_peer_address(y, from, strlen(from), NULL, key, &why);
    if (!rc) fix_wildcard(y, from, body);
    return rc;
}

/* Another peer than the one at endpoint that is node: 0 none, 2 one we
 * listed ourselves (static), 1 another. */
static int other_peer_is(sn_sync *y, const char *node, const char *endpoint)
{
    int found = 0;
    for (size_t i = 0; i < sn_sync_peer_count(y); i++) {
        sn_peer_info p;
        sn_sync_peer(y, i, &p);
        if (strcmp(p.id, endpoint) && (!strcmp(p.id, node) || (p.node && !strcmp(p.node, node))))
            found = p.is_static ? 2 : found ? found : 1;
    }
    return found;
}

/* Whether a learned dealer is for a node we already reach another way: it
 * is dropped then. When two nodes dialed each other at once, each sees the
 * other's inbound connection; only the larger id gives its dealer up, so
 * one connection of the two survives. */
static int learned_duplicate(sn_sync *y, const char *own, const char *endpoint, const char *node)
{
    long i = sn_sync_find_node(y, endpoint);
    if (i < 0) return 0;
    sn_peer_info p;
    sn_sync_peer(y, (size_t)i, &p);
    int other = other_peer_is(y, node, endpoint);
    return p.learned && other && (other > 1 || strcmp(own, node) > 0);
}

/* *gone: the dealer was closed (it reached ourselves, or a node we have). */
static int from_dealer(sn_net *n, sn_sync *y, size_t d, zmq_msg_t *body, int *gone, sn_err *e)
{
    *gone = 0;
    if (zmq_msg_size(body) == 0) return SN_OK;   /* a liveness probe (conn_alive) */
    char from[SN_MAX_ID_LEN + 1];
    sn_err why;
    if (sn_sync_message_from(zmq_msg_data(body), zmq_msg_size(body), n->cfg.max_message_bytes, from, &why)) {
        rejected(n, y);
        return SN_OK;
    }
    const char *ep = n->dealers[d].endpoint;
    if (!strcmp(from, n->node_id) || learned_duplicate(y, n->node_id, ep, from)) {
        /* ourselves: never again; a duplicate: the other connection serves */
        int self = !strcmp(from, n->node_id);
        if (self && sn_sync_block(y, ep, e)) return e->code;
        sn_sync_remove_peer(y, ep, strlen(ep));
        sn_net_close_dealer(n, d);
        *gone = 1;
        return SN_OK;
    }
    if (n->cfg.curve && !key_may_speak(n, from, n->dealers[d].key)) {
        forged(n, y);
        return SN_OK;
    }
    return deliver(y, ep, body, e);
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
        claim *c = s || !n->router ? NULL : claim_of_node(n, to);
        int bad = 1;
        if (s) {
            bad = zmq_send(s, bytes, len, ZMQ_DONTWAIT) < 0;
            if (bad) dl->waiting = 1;   /* not up, or full: POLLOUT says when it takes them */
        } else if (c) {
            bad = zmq_send(n->router, c->conn, c->connlen, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0;
            /* the connection is gone: its node id is free for the next one */
            if (bad && zmq_errno() == EHOSTUNREACH) drop_claim(n, c);
            if (!bad) bad = zmq_send(n->router, bytes, len, ZMQ_DONTWAIT) < 0;
        }
        if (bad) n->st.dropped++;
        if (bad) sn_sync_unsent(y, to);
        free(to);
        free(bytes);
    }
}

/* ---- discovery and dropping peers ------------------------------------------------------------ */

int sn_net_discover(sn_net *n, sn_sync *y, sn_err *e)
{
    /* connections and bindings of peers the engine forgot (dead too long) */
    for (size_t d = 0; d < n->ndealers;) {
        if (sn_sync_find_node(y, n->dealers[d].endpoint) < 0) sn_net_close_dealer(n, d);
        else d++;
    }
    for (size_t i = 0; i < n->nclaims;) {
        if (sn_sync_find_node(y, n->claims[i].node) < 0) drop_claim(n, &n->claims[i]);
        else i++;
    }
    sn_candidate c;
    while (sn_sync_next_dial(y, &c)) {
        /* under CURVE only keys we would admit ourselves are dialed; only
         * network endpoints (an inproc one a peer names would be one of
         * our own sockets, the ZAP handler's included) */
        int refuse = (n->cfg.curve && (!c.pub[0] || !sn_net_authorized(n, c.pub))) ||
                     (strncmp(c.endpoint, "tcp://", 6) && strncmp(c.endpoint, "ipc://", 6));
        if (refuse) {
            if (sn_sync_block(y, c.id, e)) return e->code;
            continue;
        }
        size_t before = n->ndealers;
        sn_err why;
        if (sn_net_connect(n, c.endpoint, c.pub, &why)) {
            if (why.code == SN_ENOMEM) { *e = why; return why.code; }
            if (sn_sync_block(y, c.endpoint, e)) return e->code;
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
    if (rc) return -1;
    for (size_t d = 0; d < n->ndealers; d++)
        if (!strcmp(n->dealers[d].endpoint, p.id)) {
            sn_net_close_dealer(n, d);
            break;
        }
    claim *c = claim_of_node(n, p.id);
    if (c) drop_claim(n, c);
    char *gone = strdup(p.id);
    if (!gone) return sn_fail(e, SN_ENOMEM, "out of memory"), -1;
    sn_sync_remove_peer(y, gone, strlen(gone));
    free(gone);
    return 1;
}
