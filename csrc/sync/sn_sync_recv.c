/* Receiving: a message is decoded and checked whole before anything in it
 * is applied; entries are applied in each origin's seq order. */
#include "sync/sn_sync_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct msg {
    sn_arena a;
    sn_record r;
    const unsigned char *payload;   /* into the message's bytes */
} msg;

static int decode_msg(const void *data, size_t len, size_t max_bytes, msg *m, sn_err *e)
{
    sn_arena_init(&m->a);
    m->payload = NULL;
    if (len > max_bytes) return sn_fail(e, SN_ECORRUPT, "message larger than max_message_bytes");
    int rc = sn_record_decode(data, len, &m->a, &m->r, e);
    if (rc) return rc;
    if (m->r.type < SN_MSG_WEIGHT_UPDATE || m->r.type > SN_MSG_HEARTBEAT)
        return sn_fail(e, SN_ECORRUPT, "not a message type");
    if (m->r.codec != SN_CODEC_NONE) return sn_fail(e, SN_ECORRUPT, "messages are not compressed");
    if ((uint64_t)sn_map_get(&m->r.fields, "proto")->u.i != SN_PROTO_VERSION)
        return sn_fail(e, SN_ECORRUPT, "protocol version %lld is not supported",
                       (long long)sn_map_get(&m->r.fields, "proto")->u.i);
    /* Uncompressed (checked above, and the envelope's payload is exactly
     * raw_len bytes then): the entries' records are read where they lie in
     * the message, not copied out first. The CRC covers the payload too. */
    if (sn_crc32(sn_crc32(0, m->r.meta, m->r.meta_len), m->r.blob, m->r.blob_len) != m->r.crc)
        return sn_fail(e, SN_ECORRUPT, "record checksum mismatch");
    m->payload = m->r.blob;
    return SN_OK;
}

static void msg_free(msg *m)
{
    sn_arena_free(&m->a);
}

/* An entry's fields, checked beyond the schema by the one log-entry codec. */
static int parse_entry(const sn_value *m, sn_entry *en, size_t *len, size_t *total, size_t *off,
                       sn_err *e)
{
    sn_entry_wire w = { 0, 0, 0 };
    int rc = sn_entry_parse(m, en, &w, e);
    *len = w.len;
    *total = w.total;
    *off = w.off;
    return rc;
}

static void count_received(sn_sync *y, const sn_entry *en)
{
    if (en->kind != SN_KIND_PUT) return;
    if (en->cf == SN_ENTRY_CF_WEIGHTS) y->st.weights_received++;
    else if (en->cf == SN_ENTRY_CF_CONFIG) y->st.configs_received++;
    else if (en->cf == SN_ENTRY_CF_CHECKPOINTS) y->st.checkpoints_received++;
    else if (en->cf == SN_ENTRY_CF_STATE) y->st.states_received++;
    else if (en->cf == SN_ENTRY_CF_METRICS) y->st.metrics_received++;
}

/* A put's record checks: full decode and CRC, identity, clock offset. */
static int check_put(sn_sync *y, const sn_entry *en, const unsigned char *bytes, size_t len,
                     sn_err *e)
{
    int rc = sn_replica_check(y->s, en, bytes, len, e);
    if (rc) return rc;
    double wall_ms = sn_now() * 1000.0;
    if ((double)(en->hlc >> 16) > wall_ms + y->cfg.max_clock_offset_ms)
        return sn_fail(e, SN_ECORRUPT, "record timestamp is %.0f ms ahead of our clock",
                       (double)(en->hlc >> 16) - wall_ms);
    return SN_OK;
}

/* The layers a message's writes left to settle (sn_replica_apply_deferred). */
typedef struct sn_deferred {
    size_t n, cap;
    size_t *lklen;
    unsigned char (*lk)[SN_MAX_ID_LEN + 1 + 4];
} sn_deferred;

static int defer_layer(sn_deferred *d, const unsigned char *lk, size_t lklen, sn_err *e)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->lklen[i] == lklen && memcmp(d->lk[i], lk, lklen) == 0) return SN_OK;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        void *a = realloc(d->lklen, cap * sizeof *d->lklen);
        if (a) d->lklen = a;
        void *b = a ? realloc(d->lk, cap * sizeof *d->lk) : NULL;
        if (b) d->lk = b;
        if (!a || !b) return sn_fail(e, SN_ENOMEM, "out of memory");
        d->cap = cap;
    }
    d->lklen[d->n] = lklen;
    memcpy(d->lk[d->n++], lk, lklen);
    return SN_OK;
}

/* Apply one entry whose seq is the next of its origin: the record's checks
 * (unless checked already), then the merge (or, while a message's entries
 * are applied, its layer noted to settle after them). */
static int apply_one(sn_sync *y, sn_entry *en, const unsigned char *bytes, size_t len, int checked,
                     int *bad, sn_err *e)
{
    if (en->kind == SN_KIND_PUT && !checked) {
        int rc = check_put(y, en, bytes, len, e);
        if (rc) { *bad = 1; return rc; }
    }
    /* a kind this node does not sync is logged as seen and not applied */
    if (!sn_kind_enabled(y, en->cf)) {
        en->kind = SN_KIND_SKIP;
        bytes = NULL;
        len = 0;
    }
    sn_apply_result res;
    int rc = y->deferring ? sn_replica_apply_deferred(y->s, en, bytes, len, &y->cfg.resolver, &res, e)
                          : sn_replica_apply(y->s, en, bytes, len, &y->cfg.resolver, &res, e);
    if (rc == SN_ECORRUPT) { *bad = 1; return rc; }
    if (rc) return rc;
    if (res.deferred) rc = defer_layer(y->deferring, res.layer, res.lklen, e);
    if (rc) return rc;
    if (res.duplicate) { y->st.duplicates++; return SN_OK; }
    y->st.collisions += (uint64_t)res.collision;
    count_received(y, en);
    y->st.conflicts += (uint64_t)res.conflicts;
    return SN_OK;
}

/* An entry at or below what we have of its origin: apply it only when the
 * logged one is a skip of a kind we now sync, or differs (a collision). */
static int worth_applying(sn_sync *y, const sn_entry *en, int *again, sn_err *e)
{
    sn_entry old;
    *again = 0;
    int rc = sn_replica_logged(y->s, en->origin, en->seq, &old, e);
    if (rc == SN_NOTFOUND) return SN_OK;
    if (rc) return rc;
    if (en->kind == SN_KIND_SKIP) return SN_OK;
    *again = old.kind == SN_KIND_SKIP ? sn_kind_enabled(y, en->cf)
                                      : old.hlc != en->hlc || old.klen != en->klen ||
                                        memcmp(old.key, en->key, en->klen) != 0;
    return SN_OK;
}

/* Whole chunk sets whose turn has come (their origin reached seq - 1) are
 * applied; sets made moot by what arrived meanwhile are dropped. */
static int apply_ready_sets(sn_sync *y, int *need_sync, int *bad, sn_err *e)
{
    int progress = 1, rc = SN_OK;
    while (progress && !rc) {
        progress = 0;
        for (partial *q = y->parts; q && !rc; q = q->next) {
            uint64_t have;
            rc = sn_replica_have(y->s, q->en.origin, &have, e);
            if (rc) break;
            if (q->en.seq <= have) {
                if (q->have < q->total) y->st.chunk_sets_dropped++;
                sn_partial_drop(y, q);
                progress = 1;
                break;
            }
            if (q->have < q->total) continue;
            if (q->en.seq > have + 1) { *need_sync = 1; continue; }
            sn_entry en = q->en;
            rc = apply_one(y, &en, q->buf, q->total, 0, bad, e);
            if (*bad) y->st.chunk_sets_rejected++;
            else if (!rc) y->st.chunk_sets_completed++;
            sn_partial_drop(y, q);
            progress = 1;
            break;
        }
    }
    return rc;
}

/* Every entry of the list parses and every whole record passes its checks
 * (each record is checked here once, not again when applied), so a
 * message with one bad record leaves the store untouched: pushes carry many
 * entries per message. */
static int check_entries(sn_sync *y, const msg *m, const sn_value *list, sn_err *e)
{
    size_t off = 0;
    for (size_t i = 0; i < list->u.a.n; i++) {
        sn_entry en;
        size_t len, rtotal, roff;
        int rc = parse_entry(&list->u.a.items[i], &en, &len, &rtotal, &roff, e);
        if (!rc && en.kind == SN_KIND_PUT && !rtotal)
            rc = check_put(y, &en, len ? m->payload + off : NULL, len, e);
        if (rc) return rc;
        off += len;
    }
    return SN_OK;
}

static int apply_listed(sn_sync *y, peer *p, const msg *m, int *need_sync, int *bad, sn_err *e);

/* A message's entries, applied in order. Several writes of one layer (a
 * catch-up) merge its heads once, after the last (sn_replica_settle), not
 * once per write: that was most of a joiner's time. Settled whatever
 * happened to the entries after them. */
static int apply_entries(sn_sync *y, peer *p, const msg *m, int *need_sync, int *bad, sn_err *e)
{
    const sn_value *list = sn_map_get(&m->r.fields, "entries");
    sn_deferred d = { 0 };
    if (list->u.a.n > 1) y->deferring = &d;
    int rc = apply_listed(y, p, m, need_sync, bad, e);
    y->deferring = NULL;
    for (size_t i = 0; !y->skip_settle && i < d.n; i++) {
        sn_err why;
        int r2 = sn_replica_settle(y->s, d.lk[i], d.lklen[i], &y->cfg.resolver, &why);
        if (r2 && !rc) { rc = r2; *e = why; }
    }
    free(d.lklen);
    free(d.lk);
    return rc;
}

/* Apply the entries of an update or a response. Entries of one origin are
 * applied in seq order only: a gap (a lost or reordered message) stops that
 * origin and asks the sender for a sync instead. A chunk goes to its set,
 * which is applied once whole and its turn has come. *bad is set when the
 * message itself is malformed or a record in it fails its checks; nothing
 * of it is applied then (chunk sets completed earlier are their own). */
static int apply_listed(sn_sync *y, peer *p, const msg *m, int *need_sync, int *bad, sn_err *e)
{
    const sn_value *list = sn_map_get(&m->r.fields, "entries");
    size_t total = 0;
    for (size_t i = 0; i < list->u.a.n; i++) {
        const sn_value *l = sn_map_get(&list->u.a.items[i], "len");
        if (l->type != SN_INT || (uint64_t)l->u.i > m->r.raw_len - total) {
            *bad = 1;
            return sn_fail(e, SN_ECORRUPT, "entry lengths exceed the payload");
        }
        total += (size_t)l->u.i;
    }
    if (total != m->r.raw_len) {
        *bad = 1;
        return sn_fail(e, SN_ECORRUPT, "entry lengths disagree with the payload");
    }
    int rc = check_entries(y, m, list, e);
    if (rc) { *bad = rc == SN_ECORRUPT; return rc; }
    size_t off = 0;
    int chunks = 0;
    for (size_t i = 0; i < list->u.a.n; i++) {
        sn_entry en;
        size_t len, rtotal, roff;
        rc = parse_entry(&list->u.a.items[i], &en, &len, &rtotal, &roff, e);
        if (rc) { *bad = 1; return rc; }
        const unsigned char *bytes = len ? m->payload + off : NULL;
        off += len;
        uint64_t have;
        rc = sn_replica_have(y->s, en.origin, &have, e);
        if (rc) return rc;
        if (en.seq <= have) {
            /* already logged: a duplicate, unless it fills a skip or is
             * another record under the same name */
            int again;
            rc = worth_applying(y, &en, &again, e);
            if (rc) return rc;
            if (!again || rtotal) { y->st.duplicates++; continue; }
            rc = apply_one(y, &en, bytes, len, 1, bad, e);
            if (rc) return rc;
            continue;
        }
        if (rtotal) {
            y->st.chunks_received++;
            chunks = 1;
            if (!sn_kind_enabled(y, en.cf)) {
                /* not kept: the entry is logged as a skip when its turn comes */
                if (en.seq > have + 1) { *need_sync = 1; continue; }
                en.kind = SN_KIND_SKIP;
                rc = apply_one(y, &en, NULL, 0, 1, bad, e);
                if (rc) return rc;
                continue;
            }
            partial *q;
            rc = sn_chunk_add(y, p, &en, rtotal, roff, bytes, len, &q, e);
            if (rc == SN_NOTFOUND) { y->st.chunk_sets_dropped++; continue; }
            if (rc == SN_ECORRUPT) { y->st.chunk_sets_rejected++; *bad = 1; return rc; }
            if (rc) return rc;
            continue;
        }
        if (en.seq > have + 1) { *need_sync = 1; continue; }
        rc = apply_one(y, &en, bytes, len, 1, bad, e);
        if (rc) return rc;
    }
    if (chunks || y->parts) return apply_ready_sets(y, need_sync, bad, e);
    return SN_OK;
}

/* A SyncRequest's "have": the asker's vector, kept for its sync status. */
static int keep_vector(peer *p, const sn_value *have, sn_err *e)
{
    sn_vv_item *items = malloc((have->u.a.n ? have->u.a.n : 1) * sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < have->u.a.n; i++) {
        const sn_value *o = sn_map_get(&have->u.a.items[i], "origin");
        if (o->u.s.len != SN_ORIGIN_LEN) continue;
        memcpy(items[n].origin, o->u.s.p, SN_ORIGIN_LEN);
        items[n].origin[SN_ORIGIN_LEN] = 0;
        items[n++].seq = (uint64_t)sn_map_get(&have->u.a.items[i], "seq")->u.i;
    }
    free(p->vector.items);
    p->vector.items = items;
    p->vector.n = n;
    p->has_vector = 1;
    return SN_OK;
}

/* What a message tells about its sender besides its content: its node id,
 * its digest and sample (a heartbeat), its vector (a request). */
static int note_sender(sn_sync *y, peer *p, const msg *m, sn_err *e)
{
    const sn_value *from = sn_map_get(&m->r.fields, "from");
    if (!p->node || strlen(p->node) != from->u.s.len || memcmp(p->node, from->u.s.p, from->u.s.len)) {
        char *copy = malloc(from->u.s.len + 1);
        if (!copy) return sn_fail(e, SN_ENOMEM, "out of memory");
        memcpy(copy, from->u.s.p, from->u.s.len);
        copy[from->u.s.len] = 0;
        free(p->node);
        p->node = copy;
    }
    if (m->r.type == SN_MSG_HEARTBEAT) {
        p->digest = (uint64_t)sn_map_get(&m->r.fields, "digest")->u.i;
        p->has_digest = 1;
        return sn_sample_take(y, p, sn_map_get(&m->r.fields, "peers"), e);
    }
    if (m->r.type == SN_MSG_SYNC_REQUEST) return keep_vector(p, sn_map_get(&m->r.fields, "have"), e);
    return SN_OK;
}

/* ---- decoded once ------------------------------------------------------------------ */

struct sn_sync_msg {
    msg m;
    size_t len;
};

int sn_sync_decode(const void *data, size_t len, size_t max_bytes, sn_sync_msg **out, sn_err *e)
{
    *out = NULL;
    sn_sync_msg *sm = malloc(sizeof *sm);
    if (!sm) return sn_fail(e, SN_ENOMEM, "out of memory");
    sm->len = len;
    int rc = decode_msg(data, len, max_bytes, &sm->m, e);
    if (!rc && sm->m.r.type == SN_MSG_HEARTBEAT)
        rc = sn_sample_check(sn_map_get(&sm->m.r.fields, "peers"), e);
    if (rc) {
        msg_free(&sm->m);
        free(sm);
        return rc;
    }
    *out = sm;
    return SN_OK;
}

void sn_sync_msg_from(const sn_sync_msg *sm, char from[SN_MAX_ID_LEN + 1])
{
    const sn_value *f = sn_map_get(&sm->m.r.fields, "from");   /* an SN_F_ID: 1..256 bytes */
    memcpy(from, f->u.s.p, f->u.s.len);
    from[f->u.s.len] = 0;
}

void sn_sync_msg_free(sn_sync_msg *sm)
{
    if (!sm) return;
    msg_free(&sm->m);
    free(sm);
}

/* A send_only node takes none of a message's entries (checked by the
 * schema as any message is), and counts them. */
static void ignore_entries(sn_sync *y, const msg *m)
{
    const sn_value *list = sn_map_get(&m->r.fields, "entries");
    y->st.ignored += list && list->type == SN_ARRAY ? list->u.a.n : 0;
}

/* Whether the message says its sender is closing (a leaving heartbeat) or
 * has no slot for us (a refusal, with the reason it gives): either holds
 * until its next message says otherwise. */
static int read_leaving(peer *p, const msg *m, sn_err *e)
{
    const sn_value *lv = sn_map_get(&m->r.fields, "leaving");
    p->left = m->r.type == SN_MSG_HEARTBEAT && lv && lv->type == SN_BOOL && lv->u.b;
    const sn_value *rv = m->r.type == SN_MSG_HEARTBEAT ? sn_map_get(&m->r.fields, "refused") : NULL;
    free(p->refused);
    p->refused = NULL;
    if (!rv || rv->type != SN_STR) return SN_OK;
    size_t n = rv->u.s.len < SN_SYNC_MAX_REASON ? rv->u.s.len : SN_SYNC_MAX_REASON;
    if (!(p->refused = malloc(n + 1))) return sn_fail(e, SN_ENOMEM, "out of memory");
    memcpy(p->refused, rv->u.s.p, n);
    p->refused[n] = 0;
    return SN_OK;
}

/* A decoded message from peer id: who sent it, then what it says. */
static int receive_decoded(sn_sync *y, const char *id, size_t idlen, const msg *m, size_t len,
                           int *accepted, sn_err *e)
{
    sn_err pe;
    peer *p = sn_peer_learn(y, id, idlen, 0, &pe);
    if (!p) {
        y->st.rejected++;
        *e = pe;
        /* no slot (max_peers): a new node's plain heartbeat is told so,
         * never a refusal or a leaving one (two full nodes would answer
         * each other's refusals for ever) */
        if (pe.code == SN_EIO && m->r.type == SN_MSG_HEARTBEAT &&
            sn_map_field(&m->r.fields, "refused")->type == SN_NIL &&
            sn_map_field(&m->r.fields, "leaving")->type == SN_NIL)
            return sn_send_refusal(y, id, idlen, pe.msg, e) == SN_ENOMEM ? SN_ENOMEM : SN_OK;
        return SN_OK;
    }
    const sn_value *from = sn_map_get(&m->r.fields, "from");
    if (p->candidate && !sn_candidate_answered(y, p, from->u.s.p, from->u.s.len)) {
        y->st.rejected++;   /* p is gone: another id than it was named with, or no slot */
        return SN_OK;
    }
    /* the first message of a new peer, or of one back from a partition:
     * digests are exchanged now, not at the next heartbeat */
    int back = p->last_seen < 0 || sn_peer_state(y, p) >= SN_PEER_DEAD;
    if (read_leaving(p, m, e)) return e->code;
    if (p->left || p->refused) back = 0;   /* it is going, or has no room: nothing to exchange */
    p->last_seen = y->now;
    p->bytes_received += len;
    int rc = note_sender(y, p, m, e);
    if (rc) return rc;
    int need_sync = 0, bad = 0;
    switch (m->r.type) {
    case SN_MSG_HEARTBEAT: {
        if (p->left || p->refused) break;
        uint64_t mine;
        rc = sn_sync_digest(y->s, &mine, e);
        uint64_t theirs = (uint64_t)sn_map_get(&m->r.fields, "digest")->u.i;
        /* different digests: one of us lacks something; asking is cheap */
        /* one such request at a time, whoever sent the heartbeat: several
         * peers that all differ from us would otherwise each send us the
         * same entries (an unanswered request is given up after two
         * heartbeats) */
        if (!rc && theirs != mine && (back || (y->now - p->last_request >= y->cfg.heartbeat_interval / 2 &&
                                               y->now - y->last_any_request >= 2 * y->cfg.heartbeat_interval)))
            need_sync = 1;
        break;
    }
    case SN_MSG_SYNC_REQUEST:
        p->unsent &= ~(unsigned)UNSENT_DATA;   /* it asks for what it missed: push again */
        rc = sn_answer_request(y, p, &m->r.fields, e);
        break;
    case SN_MSG_SYNC_RESPONSE:
        y->last_any_request = -1e300;   /* answered: a digest may ask again */
        if (y->cfg.mode == SN_MODE_SEND_ONLY) { ignore_entries(y, m); break; }
        rc = apply_entries(y, p, m, &need_sync, &bad, e);
        if (!rc && sn_map_get(&m->r.fields, "more")->u.b) need_sync = 1;
        break;
    default:   /* the three update kinds */
        if (y->cfg.mode == SN_MODE_SEND_ONLY) { ignore_entries(y, m); break; }
        rc = apply_entries(y, p, m, &need_sync, &bad, e);
        break;
    }
    if (bad) {
        y->st.rejected++;
        return SN_OK;
    }
    if (rc) return rc;
    *accepted = 1;
    if (back) rc = sn_send_heartbeat(y, p, e);
    if (!rc && need_sync) rc = sn_send_request(y, p, e);
    return rc;
}

int sn_sync_receive_msg(sn_sync *y, const char *id, size_t idlen, const sn_sync_msg *sm,
                        int *accepted, sn_err *e)
{
    *accepted = 0;
    y->st.bytes_received += sm->len;
    y->st.messages_received++;
    return receive_decoded(y, id, idlen, &sm->m, sm->len, accepted, e);
}

int sn_sync_receive(sn_sync *y, const char *id, size_t idlen, const void *data, size_t len,
                    int *accepted, sn_err *e)
{
    *accepted = 0;
    y->st.bytes_received += len;
    y->st.messages_received++;
    msg m;
    sn_err me;
    int rc = decode_msg(data, len, y->cfg.max_message_bytes, &m, &me);
    if (!rc && m.r.type == SN_MSG_HEARTBEAT) rc = sn_sample_check(sn_map_get(&m.r.fields, "peers"), &me);
    if (rc == SN_ENOMEM) { msg_free(&m); *e = me; return rc; }
    if (rc) {
        msg_free(&m);
        y->st.rejected++;
        *e = me;
        return SN_OK;
    }
    rc = receive_decoded(y, id, idlen, &m, len, accepted, e);
    msg_free(&m);
    return rc;
}
