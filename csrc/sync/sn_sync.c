/* The sync engine's lifecycle, config, stats and timers (see sn_sync.h;
 * sn_sync_int.h maps the other files). */
#include "sync/sn_sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sn_sync_default_config(sn_sync_config *c)
{
    memset(c, 0, sizeof *c);
    c->sync_interval = 30;
    c->heartbeat_interval = 10;
    c->peer_timeout = 60;
    c->max_peers = 10;
    c->max_message_bytes = 64u << 20;
    c->weights = c->configs = c->checkpoints = 1;
    c->max_clock_offset_ms = 500;
    c->chunk_bytes = 1u << 20;
    c->max_reassembly_bytes = 256u << 20;
    c->chunk_timeout = 60;
    c->resolver.strategy = SN_RESOLVE_LATEST;
}

int sn_sync_new(sn_store *s, const sn_sync_config *c, sn_sync **out, sn_err *e)
{
    *out = NULL;
    if (c->max_message_bytes < SN_SYNC_MIN_MESSAGE_BYTES)
        return sn_fail(e, SN_EARG, "max_message_bytes must be at least %d", SN_SYNC_MIN_MESSAGE_BYTES);
    if (!(c->heartbeat_interval > 0) || !(c->sync_interval > 0) || !(c->peer_timeout > 0) ||
        !(c->chunk_timeout > 0))
        return sn_fail(e, SN_EARG, "intervals and timeouts must be positive");
    if (!(c->max_send_rate >= 0) || c->max_send_rate > 1e15)
        return sn_fail(e, SN_EARG, "max_send_bytes_per_second must be a finite number >= 0");
    if (c->chunk_bytes < SN_SYNC_MIN_CHUNK_BYTES)
        return sn_fail(e, SN_EARG, "chunk_bytes must be at least %d", SN_SYNC_MIN_CHUNK_BYTES);
    sn_sync *y = calloc(1, sizeof *y);
    if (!y) return sn_fail(e, SN_ENOMEM, "out of memory");
    y->s = s;
    y->cfg = *c;
    if (!y->cfg.node_id[0]) snprintf(y->cfg.node_id, sizeof y->cfg.node_id, "%s", sn_store_origin(s));
    /* local writes made before the engine existed reach peers by anti-entropy */
    y->pushed_seq = sn_replica_local_seq(s);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = y->cfg.node_id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    y->rng = h | 1;
    y->last_any_request = y->last_dial = -1e300;
    /* a chunk and its one-entry message fit in max_message_bytes */
    y->chunk = c->chunk_bytes;
    if (y->chunk > c->max_message_bytes - SN_SYNC_CHUNK_OVERHEAD)
        y->chunk = c->max_message_bytes - SN_SYNC_CHUNK_OVERHEAD;
    /* under a send limit, a large record goes in chunks of a quarter
     * second's worth, so the limit holds within a record too */
    if (c->max_send_rate > 0 && y->chunk > c->max_send_rate / 4) {
        y->chunk = (size_t)(c->max_send_rate / 4);
        if (y->chunk < SN_SYNC_MIN_CHUNK_BYTES) y->chunk = SN_SYNC_MIN_CHUNK_BYTES;
    }
    *out = y;
    return SN_OK;
}

void sn_sync_free(sn_sync *y)
{
    if (!y) return;
    sn_partials_free(y);
    sn_outbox_clear(y);
    sn_discovery_free(y);
    sn_peers_free(y);
    free(y);
}

static const char *const mode_names[SN_MODE_COUNT] = { "both", "send_only", "receive_only" };

const char *sn_sync_mode_name(int mode)
{
    return mode >= 0 && mode < SN_MODE_COUNT ? mode_names[mode] : mode_names[0];
}

int sn_sync_mode_find(const char *s)
{
    for (int i = 0; i < SN_MODE_COUNT; i++)
        if (!strcmp(s, mode_names[i])) return i;
    return -1;
}

void sn_sync_set_store(sn_sync *y, sn_store *s) { y->s = s; }
void sn_sync_test_skip_settle(sn_sync *y, int on) { y->skip_settle = on; }
const sn_sync_config *sn_sync_config_of(const sn_sync *y) { return &y->cfg; }

void sn_sync_get_stats(const sn_sync *y, sn_sync_stats *out) { *out = y->st; }
void sn_sync_count_rejected(sn_sync *y) { y->st.rejected++; }

/* ---- connections ------------------------------------------------------------------- */

void sn_sync_unsent(sn_sync *y, const char *to)
{
    peer *p = sn_peer_find(y, to, strlen(to));
    if (!p) return;
    if (!y->handed_kind) p->unsent |= UNSENT_DATA;
    if (y->handed_kind == SN_MSG_HEARTBEAT) p->unsent |= UNSENT_HEARTBEAT;
    if (y->handed_kind == SN_MSG_SYNC_REQUEST) {
        /* a request nobody received must not hold back the next one */
        p->unsent |= UNSENT_REQUEST;
        p->last_request = -1e300;
        y->last_any_request = -1e300;
    }
    y->handed_kind = 0;
}

int sn_sync_connected(sn_sync *y, const char *id, size_t len, sn_err *e)
{
    peer *p = sn_peer_find(y, id, len);
    if (!p) return SN_OK;
    p->unsent = 0;
    int rc = sn_send_heartbeat(y, p, e);
    if (!rc) rc = sn_send_request(y, p, e);
    return rc;
}

/* ---- timers ------------------------------------------------------------------------ */

int sn_sync_tick(sn_sync *y, double now, sn_err *e)
{
    if (now > y->now || !y->started) y->now = now;
    int rc = SN_OK;
    /* a crash between a deferred apply and its settle left a layer's
     * current write behind its heads: put right before anything else (here,
     * not in sn_sync_new: the resolver may call back into Lua) */
    if (!y->settled) {
        rc = sn_replica_settle_all(y->s, &y->cfg.resolver, e);
        if (rc) return rc;
        y->settled = 1;
    }
    sn_partials_expire(y);
    sn_peers_forget_dead(y);
    /* heartbeats go to dead peers too: that is how they come back */
    for (size_t i = 0; !rc && i < y->npeers; i++)
        if (y->now - y->peers[i].last_heartbeat >= y->cfg.heartbeat_interval)
            rc = sn_send_heartbeat(y, &y->peers[i], e);
    if (!rc) rc = sn_push_local(y, e);
    /* a round is due every sync_interval, unless we asked someone lately
     * anyway (a heartbeat's digest differed): then it would only fetch the
     * same entries twice */
    if (!rc && y->npeers && (!y->started || y->now - y->last_round >= y->cfg.sync_interval) &&
        (!y->started || y->now - y->last_any_request >= y->cfg.sync_interval / 2)) {
        /* one random live peer per round: gossip spreads in O(log N) rounds */
        size_t live[64], n = 0;
        for (size_t i = 0; i < y->npeers && n < 64; i++)
            if (sn_peer_state(y, &y->peers[i]) <= SN_PEER_SUSPECT) live[n++] = i;
        size_t pick = n ? live[sn_next_rand(y) % n] : sn_next_rand(y) % y->npeers;
        rc = sn_send_request(y, &y->peers[pick], e);
        y->last_round = y->now;
    }
    y->started = 1;
    return rc;
}
