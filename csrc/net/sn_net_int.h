/* Internals shared by the transport's files; nothing outside csrc/net
 * includes this.
 *
 *   sn_net.c        sockets, connecting, ZAP, the poll loop
 *   sn_net_peers.c  receiving (who may speak for which node id), sending,
 *                   dialing learned peers, disconnecting */
#ifndef SN_NET_INT_H
#define SN_NET_INT_H

#include "net/sn_net.h"
#include "sync/sn_keyset.h"

#define MAX_DEALERS 4096
#define MAX_RECV_PER_POLL 4096
#define MAX_ROUTING_ID 255

typedef struct dealer {
    char *endpoint;
    void *sock;
    char key[SN_Z85_KEY_LEN + 1];   /* the server key we dialed with ("" without CURVE) */
    /* not known to take messages: new, or a send to it failed (ZMQ_IMMEDIATE
     * refuses sends until the connection is up). Polled for POLLOUT, which
     * is when the engine hears its connection came up. */
    int waiting;
    void *monitor;                  /* PAIR: its disconnects and handshakes; NULL if none */
    double refused_at;              /* when the server refused our key (0: it has not) */
} dealer;

struct sn_net {
    void *ctx;
    void *router;            /* NULL when not listening */
    void *zap;               /* NULL without CURVE */
    dealer *dealers;
    size_t ndealers, cap;
    struct sn_idmap *ids;    /* who may speak for which node id (sync/sn_idmap.h) */
    sn_net_config cfg;
    sn_keyset *keys;         /* the authorized keys, and the node ids they alone hold */
    char node_id[SN_NET_MAX_NODE_ID + 1];
    char address[512];
    char *forced_id;         /* tests: the routing id of our next DEALERs */
    sn_net_stats st;
};

SN_HIDDEN int sn_net_zerr(sn_err *e, const char *what);
SN_HIDDEN int sn_net_connect(sn_net *n, const char *endpoint, const char *server_key, sn_err *e);
SN_HIDDEN void sn_net_close_dealer(sn_net *n, size_t i);
SN_HIDDEN int sn_net_authorized(const sn_net *n, const char *key);
SN_HIDDEN int sn_net_peers_init(sn_net *n, sn_err *e);
SN_HIDDEN void sn_net_peers_free(sn_net *n);

/* sn_net_peers.c */
SN_HIDDEN int sn_net_drain(sn_net *n, sn_sync *y, sn_err *e);
SN_HIDDEN void sn_net_flush(sn_net *n, sn_sync *y);
/* Dial what discovery learned; close connections the engine forgot. */
SN_HIDDEN int sn_net_discover(sn_net *n, sn_sync *y, sn_err *e);

#endif
