/* Discovery: heartbeats carry a bounded sample of the sender's live peers
 * that can be dialed (and the sender itself when it listens); a receiver
 * keeps the ones it does not have as candidates, and its transport dials
 * them (sn_sync_next_dial) up to max_peers. The engine only names
 * endpoints and keys; whether a key is acceptable is the transport's call.
 *
 * What a heartbeat says is a claim, not a fact: anyone may name any
 * endpoint under any id. So a dialed candidate holds no slot of max_peers
 * and gets only heartbeats until it answers as the id it was named with
 * (sn_candidate_answered); at most MAX_PROBING are dialed at once, one per
 * heartbeat_interval / MAX_PROBING; one that does not answer in three
 * heartbeats is dropped and refused. Configured peers and peers that
 * proved themselves keep their slots whatever heartbeats say. */
#include "sync/sn_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A sample stays a small part of the smallest message: strings are capped
 * per entry, and entries stop at this share of max_message_bytes. */
#define SAMPLE_ENTRY_OVERHEAD 32

void sn_discovery_free(sn_sync *y)
{
    free(y->self_endpoint);
    free(y->cands);
    for (size_t i = 0; i < y->nblocked; i++) free(y->blocked[i]);
    free(y->blocked);
    for (size_t i = 0; i < y->nrefused; i++) free(y->refused[i]);
    free(y->refused);
}

static int endpoint_ok(const char *p, size_t n)
{
    return n > 0 && n <= SN_SYNC_MAX_ENDPOINT && !memchr(p, 0, n);
}

int sn_sync_set_self(sn_sync *y, const char *endpoint, const char *pub, sn_err *e)
{
    char *copy = NULL;
    if (endpoint) {
        if (!endpoint_ok(endpoint, strlen(endpoint)))
            return sn_fail(e, SN_EARG, "endpoint must be 1 to %d bytes", SN_SYNC_MAX_ENDPOINT);
        if (!(copy = strdup(endpoint))) return sn_fail(e, SN_ENOMEM, "out of memory");
    }
    if (pub && strlen(pub) != SN_SYNC_KEY_LEN) {
        free(copy);
        return sn_fail(e, SN_EARG, "a public key is %d Z85 characters", SN_SYNC_KEY_LEN);
    }
    free(y->self_endpoint);
    y->self_endpoint = copy;
    snprintf(y->self_pub, sizeof y->self_pub, "%s", pub ? pub : "");
    return SN_OK;
}

static int set_address(peer *p, const char *endpoint, const char *pub, sn_err *e)
{
    if (endpoint && (!p->endpoint || strcmp(p->endpoint, endpoint))) {
        if (!endpoint_ok(endpoint, strlen(endpoint)))
            return sn_fail(e, SN_EARG, "endpoint must be 1 to %d bytes", SN_SYNC_MAX_ENDPOINT);
        char *copy = strdup(endpoint);
        if (!copy) return sn_fail(e, SN_ENOMEM, "out of memory");
        free(p->endpoint);
        p->endpoint = copy;
    }
    if (pub && strlen(pub) == SN_SYNC_KEY_LEN) memcpy(p->pub, pub, SN_SYNC_KEY_LEN + 1);
    return SN_OK;
}

int sn_sync_set_peer_address(sn_sync *y, const char *id, size_t len, const char *endpoint,
                             const char *pub, sn_err *e)
{
    peer *p = sn_peer_find(y, id, len);
    if (!p) return sn_fail(e, SN_EARG, "unknown peer");
    return set_address(p, endpoint, pub, e);
}

int sn_sync_add_learned(sn_sync *y, const sn_candidate *c, sn_err *e)
{
    if (sn_peer_find(y, c->endpoint, strlen(c->endpoint)))
        return sn_fail(e, SN_EARG, "already a peer");
    if (sn_peers_probing(y) >= MAX_PROBING)
        return sn_fail(e, SN_EIO, "%d candidates are being dialed", MAX_PROBING);
    peer *p = sn_peer_learn(y, c->endpoint, strlen(c->endpoint), 0, e);
    if (!p) return e->code;
    p->learned = p->candidate = 1;
    y->last_dial = y->now;
    if (!(p->node = strdup(c->id))) return sn_fail(e, SN_ENOMEM, "out of memory");
    return set_address(p, c->endpoint, c->pub, e);
}

int sn_candidate_answered(sn_sync *y, peer *p, const char *from, size_t len)
{
    int same = strlen(p->node) == len && !memcmp(p->node, from, len);
    if (same && sn_peers_in_slots(y) < y->cfg.max_peers) {
        p->candidate = 0;
        return 1;
    }
    y->st.candidates_refused++;
    sn_sync_refuse(y, p->id);
    if (!same) sn_sync_refuse(y, p->node);
    sn_peer_drop(y, p);
    return 0;
}

/* ---- one connection per pair ------------------------------------------------------ */

/* Another peer than the one at endpoint that is node: 0 none, 2 one the
 * caller listed itself (static), 1 another. */
static int other_peer_is(const sn_sync *y, const char *node, const char *endpoint)
{
    int found = 0;
    for (size_t i = 0; i < y->npeers; i++) {
        const peer *p = &y->peers[i];
        if (strcmp(p->id, endpoint) && (!strcmp(p->id, node) || (p->node && !strcmp(p->node, node))))
            found = p->is_static ? 2 : found ? found : 1;
    }
    return found;
}

int sn_sync_learned_duplicate(const sn_sync *y, const char *endpoint, const char *node)
{
    long i = sn_sync_find_node(y, endpoint);
    if (i < 0) return 0;
    int other = other_peer_is(y, node, endpoint);
    return y->peers[i].learned && other && (other > 1 || strcmp(y->cfg.node_id, node) > 0);
}

/* ---- blocked and refused names ---------------------------------------------------- */

static int listed(char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return 1;
    return 0;
}

static int blocked(const sn_sync *y, const char *name)
{
    return listed(y->blocked, y->nblocked, name) || listed(y->refused, y->nrefused, name);
}

int sn_sync_user_blocked(const sn_sync *y, const char *name)
{
    return listed(y->blocked, y->nblocked, name);
}

int sn_sync_block(sn_sync *y, const char *name, sn_err *e)
{
    if (listed(y->blocked, y->nblocked, name)) return SN_OK;
    char *copy = strdup(name);
    if (!copy) return sn_fail(e, SN_ENOMEM, "out of memory");
    if (SN_GROW(y->blocked, y->nblocked, y->blocked_cap, 8, e)) {
        free(copy);
        return e->code;
    }
    y->blocked[y->nblocked++] = copy;
    return SN_OK;
}

static void unlist(char **list, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(list[i], name)) {
            free(list[i]);
            memmove(list + i, list + i + 1, (*n - i - 1) * sizeof *list);
            (*n)--;
            return;
        }
}

void sn_sync_unblock(sn_sync *y, const char *name)
{
    unlist(y->blocked, &y->nblocked, name);
    unlist(y->refused, &y->nrefused, name);
}

/* Best effort: without memory, a refused name may only be dialed again. */
void sn_sync_refuse(sn_sync *y, const char *name)
{
    if (listed(y->refused, y->nrefused, name)) return;
    char *copy = strdup(name);
    if (!copy) return;
    if (!y->refused && !(y->refused = calloc(MAX_REFUSED, sizeof *y->refused))) {
        free(copy);
        return;
    }
    if (y->nrefused == MAX_REFUSED) {   /* the oldest goes */
        free(y->refused[0]);
        memmove(y->refused, y->refused + 1, (MAX_REFUSED - 1) * sizeof *y->refused);
        y->nrefused--;
    }
    y->refused[y->nrefused++] = copy;
}

/* ---- candidates ---------------------------------------------------------------------- */

/* Whether a candidate is ourselves, a peer we have, or blocked. */
static int known(const sn_sync *y, const candidate *c)
{
    if (!strcmp(c->id, y->cfg.node_id) || (y->self_endpoint && !strcmp(c->endpoint, y->self_endpoint)))
        return 1;
    if (blocked(y, c->id) || blocked(y, c->endpoint)) return 1;
    if (sn_sync_find_node(y, c->id) >= 0) return 1;
    for (size_t i = 0; i < y->npeers; i++) {
        const peer *p = &y->peers[i];
        if (!strcmp(p->id, c->endpoint) || (p->endpoint && !strcmp(p->endpoint, c->endpoint))) return 1;
    }
    return 0;
}

static void note_candidate(sn_sync *y, const char *id, size_t idlen, const char *ep, size_t eplen,
                           const sn_value *pub)
{
    candidate *c = NULL;
    for (size_t i = 0; i < y->ncands && !c; i++)
        if (strlen(y->cands[i].id) == idlen && !memcmp(y->cands[i].id, id, idlen)) c = &y->cands[i];
    if (!c) {
        sn_err e;
        if (y->ncands >= MAX_CANDIDATES || SN_GROW(y->cands, y->ncands, y->cands_cap, 8, &e)) return;
        c = &y->cands[y->ncands++];
        memset(c, 0, sizeof *c);
        memcpy(c->id, id, idlen);
        c->first_seen = y->now;
    }
    memcpy(c->endpoint, ep, eplen);
    c->endpoint[eplen] = 0;
    c->pub[0] = 0;
    if (pub->type == SN_STR) {
        memcpy(c->pub, pub->u.s.p, SN_SYNC_KEY_LEN);
        c->pub[SN_SYNC_KEY_LEN] = 0;
    }
    c->last_seen = y->now;
    if (known(y, c)) *c = y->cands[--y->ncands];
}

int sn_sync_next_dial(sn_sync *y, sn_candidate *out)
{
    for (size_t i = 0; i < y->ncands;) {
        candidate *c = &y->cands[i];
        if (known(y, c) || y->now - c->last_seen > y->cfg.peer_timeout) {
            *c = y->cands[--y->ncands];
            continue;
        }
        if (!y->cfg.discovery || sn_peers_in_slots(y) >= y->cfg.max_peers ||
            sn_peers_probing(y) >= MAX_PROBING ||
            y->now - y->last_dial < y->cfg.heartbeat_interval / MAX_PROBING)
            return 0;
        /* both of us could dial: the smaller id does, the other waits */
        if (y->self_endpoint && strcmp(y->cfg.node_id, c->id) > 0 &&
            y->now - c->first_seen < 3 * y->cfg.heartbeat_interval) {
            i++;
            continue;
        }
        y->dialing = *c;
        *c = y->cands[--y->ncands];
        out->id = y->dialing.id;
        out->endpoint = y->dialing.endpoint;
        out->pub = y->dialing.pub;
        return 1;
    }
    return 0;
}

/* ---- samples in heartbeats ---------------------------------------------------------- */

int sn_sample_check(const sn_value *list, sn_err *e)
{
    if (!list || list->type != SN_ARRAY) return SN_OK;   /* absent (the schema checked its type) */
    if (list->u.a.n > SN_SYNC_SAMPLE_PEERS)
        return sn_fail(e, SN_ECORRUPT, "heartbeat names more than %d peers", SN_SYNC_SAMPLE_PEERS);
    for (size_t i = 0; i < list->u.a.n; i++) {
        const sn_value *ep = sn_map_field(&list->u.a.items[i], "endpoint");
        const sn_value *pub = sn_map_field(&list->u.a.items[i], "public");
        if (ep->type != SN_STR || !endpoint_ok(ep->u.s.p, ep->u.s.len))
            return sn_fail(e, SN_ECORRUPT, "heartbeat peers[%zu].endpoint is malformed", i + 1);
        if (pub->type != SN_NIL && (pub->type != SN_STR || pub->u.s.len != SN_SYNC_KEY_LEN ||
                                    memchr(pub->u.s.p, 0, SN_SYNC_KEY_LEN)))
            return sn_fail(e, SN_ECORRUPT, "heartbeat peers[%zu].public is malformed", i + 1);
    }
    return SN_OK;
}

int sn_sample_take(sn_sync *y, peer *p, const sn_value *list, sn_err *e)
{
    for (size_t i = 0; list && list->type == SN_ARRAY && i < list->u.a.n; i++) {
        const sn_value *id = sn_map_field(&list->u.a.items[i], "id");
        const sn_value *ep = sn_map_field(&list->u.a.items[i], "endpoint");
        const sn_value *pub = sn_map_field(&list->u.a.items[i], "public");
        if (p->node && strlen(p->node) == id->u.s.len && !memcmp(p->node, id->u.s.p, id->u.s.len)) {
            /* the sender's own entry: where it listens (first claim kept) */
            char epz[SN_SYNC_MAX_ENDPOINT + 1], pubz[SN_SYNC_KEY_LEN + 1];
            memcpy(epz, ep->u.s.p, ep->u.s.len);
            epz[ep->u.s.len] = 0;
            if (pub->type == SN_STR) {
                memcpy(pubz, pub->u.s.p, SN_SYNC_KEY_LEN);
                pubz[SN_SYNC_KEY_LEN] = 0;
            }
            int rc = set_address(p, p->endpoint ? NULL : epz, p->pub[0] || pub->type != SN_STR ? NULL : pubz, e);
            if (rc) return rc;
            continue;
        }
        if (y->cfg.discovery) note_candidate(y, id->u.s.p, id->u.s.len, ep->u.s.p, ep->u.s.len, pub);
    }
    return SN_OK;
}

static int put_entry(sn_arena *a, sn_value *slot, const char *id, const char *ep, const char *pub,
                     sn_err *e)
{
    size_t n = pub && *pub ? 3 : 2;
    sn_value *kv = sn_arena_alloc(a, 2 * n * sizeof *kv);
    if (!kv) return sn_fail(e, SN_ENOMEM, "out of memory");
    kv[0] = sn_cstr("id");
    kv[1] = sn_cstr(id);
    kv[2] = sn_cstr("endpoint");
    kv[3] = sn_cstr(ep);
    if (n == 3) {
        kv[4] = sn_cstr("public");
        kv[5] = sn_cstr(pub);
    }
    *slot = sn_nil();
    slot->type = SN_MAP;
    slot->u.a.items = kv;
    slot->u.a.n = n;
    return SN_OK;
}

/* Ourselves when we listen, then live peers that can be dialed, from a
 * random start so every one is named now and then. The strings stay in
 * the engine until the message is encoded. */
int sn_sample_put(sn_sync *y, const peer *to, sn_arena *a, sn_value *map, sn_err *e)
{
    size_t budget = y->cfg.max_message_bytes / 4, used = 0, n = 0;
    sn_value *items = sn_arena_alloc(a, SN_SYNC_SAMPLE_PEERS * sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    int rc = SN_OK;
    if (y->self_endpoint) {
        rc = put_entry(a, &items[n++], y->cfg.node_id, y->self_endpoint, y->self_pub, e);
        used += strlen(y->cfg.node_id) + strlen(y->self_endpoint) + SN_SYNC_KEY_LEN + SAMPLE_ENTRY_OVERHEAD;
    }
    size_t start = y->npeers ? (size_t)(sn_next_rand(y) % y->npeers) : 0;
    for (size_t k = 0; !rc && k < y->npeers && n < SN_SYNC_SAMPLE_PEERS; k++) {
        const peer *p = &y->peers[(start + k) % y->npeers];
        if (p == to || !p->node || !p->endpoint || sn_peer_state(y, p) != SN_PEER_ALIVE) continue;
        size_t cost = strlen(p->node) + strlen(p->endpoint) + SN_SYNC_KEY_LEN + SAMPLE_ENTRY_OVERHEAD;
        if (used + cost > budget) break;
        used += cost;
        rc = put_entry(a, &items[n++], p->node, p->endpoint, p->pub, e);
    }
    if (rc || !n) return rc;
    sn_value list = sn_nil();
    list.type = SN_ARRAY;
    list.u.a.items = items;
    list.u.a.n = n;
    sn_map_set(map, "peers", list);
    return SN_OK;
}
