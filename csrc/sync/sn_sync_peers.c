/* The sync engine's peers: who they are, whether they are alive, and what
 * each was sent lately. */
#include "sync/sn_sync_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- peers ------------------------------------------------------------------ */

peer *sn_peer_find(sn_sync *y, const char *id, size_t len)
{
    for (size_t i = 0; i < y->npeers; i++)
        if (y->peers[i].len == len && memcmp(y->peers[i].id, id, len) == 0) return &y->peers[i];
    return NULL;
}

int sn_peer_state(const sn_sync *y, const peer *p)
{
    /* as dead: it gets heartbeats (so it can answer) and nothing else, and
     * no heartbeat of ours names it */
    if (p->candidate) return SN_PEER_DEAD;
    if (p->left) return SN_PEER_LEFT;
    if (p->refused) return SN_PEER_REFUSED;
    double seen = p->last_seen >= 0 ? p->last_seen : p->added;
    double silent = y->now - seen;
    if (silent > y->cfg.peer_timeout) return SN_PEER_DEAD;
    if (silent > y->cfg.peer_timeout / 2) return SN_PEER_SUSPECT;
    return SN_PEER_ALIVE;
}

peer *sn_peer_learn(sn_sync *y, const char *id, size_t len, int is_static, sn_err *e)
{
    peer *p = sn_peer_find(y, id, len);
    if (p) {
        p->is_static |= is_static;
        return p;
    }
    if (len == 0 || len > SN_MAX_ID_LEN || memchr(id, 0, len)) {
        sn_fail(e, SN_EARG, "peer id must be 1 to %u bytes without NUL", SN_MAX_ID_LEN);
        return NULL;
    }
    if (sn_peers_in_slots(y) >= y->cfg.max_peers) {
        sn_fail(e, SN_EIO, "max_peers (%u) reached", y->cfg.max_peers);
        return NULL;
    }
    if (SN_GROW(y->peers, y->npeers, y->cap, 8, e)) return NULL;
    p = &y->peers[y->npeers];
    memset(p, 0, sizeof *p);
    p->id = malloc(len + 1);
    if (!p->id) { sn_fail(e, SN_ENOMEM, "out of memory"); return NULL; }
    memcpy(p->id, id, len);
    p->id[len] = 0;
    p->len = len;
    p->is_static = is_static;
    p->added = y->now;
    p->last_seen = -1;
    p->last_heartbeat = p->last_request = -1e300;
    p->refilled = -1;
    y->npeers++;
    return p;
}

int sn_sync_add_peer(sn_sync *y, const char *id, size_t len, sn_err *e)
{
    return sn_peer_learn(y, id, len, 1, e) ? SN_OK : e->code;
}

static void peer_free(peer *p)
{
    free(p->id);
    free(p->sent);
    free(p->node);
    free(p->endpoint);
    free(p->refused);
    free(p->vector.items);
}

void sn_peer_drop(sn_sync *y, peer *p)
{
    peer_free(p);
    *p = y->peers[--y->npeers];
}

void sn_peers_free(sn_sync *y)
{
    for (size_t i = 0; i < y->npeers; i++) peer_free(&y->peers[i]);
    free(y->peers);
}

/* Three heartbeats (one at least, within peer_timeout): a live node
 * answers a heartbeat with its own by then. */
static double probe_timeout(const sn_sync *y)
{
    double t = 3 * y->cfg.heartbeat_interval;
    if (t < 1) t = 1;
    return t < y->cfg.peer_timeout ? t : y->cfg.peer_timeout;
}

void sn_peers_forget_dead(sn_sync *y)
{
    for (size_t i = 0; i < y->npeers;) {
        peer *p = &y->peers[i];
        double seen = p->last_seen >= 0 ? p->last_seen : p->added;
        if (p->candidate && y->now - p->added > probe_timeout(y)) {
            y->st.candidates_refused++;
            sn_sync_refuse(y, p->id);
            sn_peer_drop(y, p);
        } else if (!p->is_static && y->now - seen > 3 * y->cfg.peer_timeout) {
            sn_peer_drop(y, p);
        } else {
            i++;
        }
    }
}

size_t sn_peers_in_slots(const sn_sync *y)
{
    size_t n = 0;
    for (size_t i = 0; i < y->npeers; i++) n += !y->peers[i].candidate;
    return n;
}

size_t sn_peers_probing(const sn_sync *y) { return y->npeers - sn_peers_in_slots(y); }

int sn_sync_remove_peer(sn_sync *y, const char *id, size_t len)
{
    peer *p = sn_peer_find(y, id, len);
    if (!p) return 0;
    sn_peer_drop(y, p);
    return 1;
}

size_t sn_sync_peer_count(const sn_sync *y) { return y->npeers; }

void sn_sync_peer(const sn_sync *y, size_t i, sn_peer_info *out)
{
    const peer *p = &y->peers[i];
    out->id = p->id;
    out->state = sn_peer_state(y, p);
    out->last_seen = p->last_seen;
    out->is_static = p->is_static;
    out->learned = p->learned;
    out->candidate = p->candidate;
    out->node = p->node;
    out->endpoint = p->endpoint;
    out->pub = p->pub[0] ? p->pub : NULL;
    out->bytes_sent = p->bytes_sent;
    out->bytes_received = p->bytes_received;
    out->reason = p->refused;
}

long sn_sync_find_node(const sn_sync *y, const char *node)
{
    size_t len = strlen(node);
    for (size_t i = 0; i < y->npeers; i++) {
        const peer *p = &y->peers[i];
        if ((p->len == len && memcmp(p->id, node, len) == 0) || (p->node && !strcmp(p->node, node)))
            return (long)i;
    }
    return -1;
}

static uint64_t seq_in(const sn_vv *vv, const char *origin)
{
    for (size_t i = 0; i < vv->n; i++)
        if (!strcmp(vv->items[i].origin, origin)) return vv->items[i].seq;
    return 0;
}

int sn_sync_peer_missing(sn_sync *y, size_t i, uint64_t *here, uint64_t *there, sn_err *e)
{
    const peer *p = &y->peers[i];
    *here = *there = 0;
    int rc;
    if (p->has_digest) {
        uint64_t mine;
        if ((rc = sn_sync_digest(y->s, &mine, e))) return rc;
        if (mine == p->digest) return SN_OK;
    }
    if (!p->has_vector) return SN_NOTFOUND;
    sn_vv vv;
    if ((rc = sn_replica_vector(y->s, &vv, e))) return rc;
    for (size_t k = 0; k < vv.n; k++) {
        uint64_t theirs = seq_in(&p->vector, vv.items[k].origin);
        if (vv.items[k].seq > theirs) *there += vv.items[k].seq - theirs;
    }
    for (size_t k = 0; k < p->vector.n; k++) {
        uint64_t mine = seq_in(&vv, p->vector.items[k].origin);
        if (p->vector.items[k].seq > mine) *here += p->vector.items[k].seq - mine;
    }
    free(vv.items);
    return SN_OK;
}

const char *sn_sync_peer_state_name(int state)
{
    return state == SN_PEER_ALIVE ? "alive" : state == SN_PEER_SUSPECT ? "suspect"
           : state == SN_PEER_LEFT ? "left" : state == SN_PEER_REFUSED ? "refused" : "dead";
}

/* ---- what a peer was sent lately ---------------------------------------------- */

/* Short: a request that crossed our send in flight arrives within a round
 * trip, and requests queued while we were busy are answered in one poll.
 * A send that was lost is resent to the next request after this. */
static double sent_memory(const sn_sync *y)
{
    double m = 2 * y->cfg.heartbeat_interval;
    return m < 0.5 ? m : 0.5;
}

uint64_t sn_sent_lately(const sn_sync *y, const peer *p, const char *origin)
{
    for (size_t i = 0; i < p->nsent; i++)
        if (memcmp(p->sent[i].origin, origin, SN_ORIGIN_LEN) == 0)
            /* still in the outbox (held by max_send_bytes_per_second) is
             * in flight too: a request meanwhile must not queue it twice */
            return p->queued > 0 || y->now - p->sent[i].at <= sent_memory(y) ? p->sent[i].seq : 0;
    return 0;
}

/* Best effort: without memory for it, the peer may only get a copy twice. */
void sn_sent_note(sn_sync *y, peer *p, const char *origin, uint64_t seq)
{
    for (size_t i = 0; i < p->nsent; i++)
        if (memcmp(p->sent[i].origin, origin, SN_ORIGIN_LEN) == 0) {
            if (seq > p->sent[i].seq || y->now - p->sent[i].at > sent_memory(y)) {
                p->sent[i].seq = seq;
                p->sent[i].at = y->now;
            }
            return;
        }
    sn_err e;
    if (p->nsent >= MAX_SENT_ORIGINS || SN_GROW(p->sent, p->nsent, p->sent_cap, 8, &e)) return;
    sent_item *n = &p->sent[p->nsent++];
    memcpy(n->origin, origin, SN_ORIGIN_LEN);
    n->seq = seq;
    n->at = y->now;
}
