/* What the engine sends: heartbeats with a digest of what it holds,
 * requests for what it lacks, answers to peers' requests, and eager pushes
 * of local writes. */
#include "sync/sn_sync_int.h"

#include <stdlib.h>
#include <string.h>

/* A heartbeat to p, or (p NULL) to no one in particular: its sample then
 * leaves out no peer. A leaving one carries no digest and no sample and
 * reads nothing of the store, which may be closed by then; nor does a
 * refusal (refused: the reason), which is all it says. */
static int build_heartbeat(sn_sync *y, const peer *p, int leaving, const char *refused, sn_buf *out,
                           sn_err *e)
{
    uint64_t digest = 0;
    int rc = leaving || refused ? SN_OK : sn_sync_digest(y->s, &digest, e);
    sn_arena a;
    sn_arena_init(&a);
    sn_value map;
    if (!rc) rc = sn_record_map(sn_schema_for(SN_MSG_HEARTBEAT), &a, &map, e);
    if (!rc) {
        sn_msg_header(y, &map, e);
        sn_map_set(&map, "digest", sn_int((int64_t)digest));
        if (leaving) {
            sn_value yes = sn_nil();
            yes.type = SN_BOOL;
            yes.u.b = 1;
            sn_map_set(&map, "leaving", yes);
        } else if (refused) {
            sn_map_set(&map, "refused", sn_str(refused, strlen(refused)));
        } else {
            rc = sn_sample_put(y, p, &a, &map, e);
        }
    }
    if (!rc) rc = sn_record_encode(SN_MSG_HEARTBEAT, &map, NULL, 0, SN_CODEC_NONE, out, e);
    sn_arena_free(&a);
    return rc;
}

/* A heartbeat to p into the outbox, counted. */
static int queue_heartbeat(sn_sync *y, peer *p, int leaving, sn_err *e)
{
    sn_buf out;
    int rc = build_heartbeat(y, p, leaving, NULL, &out, e);
    if (!rc) rc = sn_outbox_add(y, p, &out, e);
    if (!rc) y->tail->kind = SN_MSG_HEARTBEAT;
    if (!rc) y->st.heartbeats_sent++;
    return rc;
}

int sn_send_heartbeat(sn_sync *y, peer *p, sn_err *e)
{
    int rc = queue_heartbeat(y, p, 0, e);
    if (!rc) p->last_heartbeat = y->now;
    return rc;
}

int sn_sync_leave(sn_sync *y, sn_err *e)
{
    int rc = SN_OK;
    for (size_t i = 0; !rc && i < y->npeers; i++)
        if (sn_peer_state(y, &y->peers[i]) <= SN_PEER_SUSPECT) rc = queue_heartbeat(y, &y->peers[i], 1, e);
    return rc;
}

int sn_send_refusal(sn_sync *y, const char *id, size_t len, const char *reason, sn_err *e)
{
    if (y->now - y->refusals_since >= y->cfg.heartbeat_interval) {
        y->refusals_since = y->now;
        y->refusals_in_window = 0;
    }
    if (y->refusals_in_window >= SN_SYNC_MAX_REFUSALS) return SN_OK;
    y->refusals_in_window++;
    sn_buf out;
    int rc = build_heartbeat(y, NULL, 0, reason, &out, e);
    /* to a node that is no peer: the outbox needs only its id */
    peer to = { .id = (char *)id, .len = len };
    if (!rc) rc = sn_outbox_add(y, &to, &out, e);
    if (!rc) {
        y->tail->kind = SN_MSG_HEARTBEAT;
        y->st.refusals_sent++;
    }
    return rc;
}

int sn_sync_broadcast_heartbeat(sn_sync *y, unsigned char **bytes, size_t *len, sn_err *e)
{
    sn_buf out;
    int rc = build_heartbeat(y, NULL, 0, NULL, &out, e);
    if (rc) return rc;
    *bytes = (unsigned char *)out.data;
    *len = out.len;
    y->st.heartbeats_sent++;
    y->st.messages_sent++;
    y->st.bytes_sent += out.len;
    return SN_OK;
}

/* Entries logged as skips whose kind this engine syncs: asked for again. */
#define MAX_REFETCH 64

static int refetch_list(sn_sync *y, sn_arena *a, sn_value *map, sn_err *e)
{
    unsigned cfs = 0;
    for (int cf = 0; cf < 8; cf++) if (sn_kind_enabled(y, cf)) cfs |= 1u << cf;
    sn_vv_item items[MAX_REFETCH];
    size_t n;
    int rc = sn_replica_skipped(y->s, cfs, items, MAX_REFETCH, &n, e);
    if (rc || !n) return rc;
    sn_value list = sn_nil();
    list.type = SN_ARRAY;
    list.u.a.items = sn_arena_alloc(a, n * sizeof(sn_value));
    if (!list.u.a.items) return sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        sn_value *kv = sn_arena_alloc(a, 4 * sizeof *kv);
        const char *o = kv ? sn_arena_strdup(a, items[i].origin, SN_ORIGIN_LEN) : NULL;
        if (!o) return sn_fail(e, SN_ENOMEM, "out of memory");
        kv[0] = sn_cstr("origin");
        kv[1] = sn_str(o, SN_ORIGIN_LEN);
        kv[2] = sn_cstr("seq");
        kv[3] = sn_int((int64_t)items[i].seq);
        list.u.a.items[i] = sn_nil();
        list.u.a.items[i].type = SN_MAP;
        list.u.a.items[i].u.a.items = kv;
        list.u.a.items[i].u.a.n = 2;
    }
    list.u.a.n = n;
    sn_map_set(map, "refetch", list);
    return SN_OK;
}

int sn_send_request(sn_sync *y, peer *p, sn_err *e)
{
    if (y->cfg.mode == SN_MODE_SEND_ONLY) return SN_OK;   /* it takes nothing: asks for nothing */
    sn_vv vv;
    int rc = sn_replica_vector(y->s, &vv, e);
    if (rc) return rc;
    sn_arena a;
    sn_arena_init(&a);
    sn_value map, list = sn_nil();
    rc = sn_record_map(sn_schema_for(SN_MSG_SYNC_REQUEST), &a, &map, e);
    list.type = SN_ARRAY;
    list.u.a.items = rc ? NULL : sn_arena_alloc(&a, (vv.n ? vv.n : 1) * sizeof(sn_value));
    if (!rc && !list.u.a.items) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < vv.n; i++) {
        sn_value *h = &list.u.a.items[i];
        sn_value *kv = sn_arena_alloc(&a, 4 * sizeof *kv);
        if (!kv) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
        kv[0] = sn_cstr("origin");
        kv[1] = sn_str(vv.items[i].origin, SN_ORIGIN_LEN);
        kv[2] = sn_cstr("seq");
        kv[3] = sn_int((int64_t)vv.items[i].seq);
        *h = sn_nil();
        h->type = SN_MAP;
        h->u.a.items = kv;
        h->u.a.n = 2;
    }
    list.u.a.n = vv.n;
    if (!rc) rc = refetch_list(y, &a, &map, e);
    if (!rc) {
        sn_msg_header(y, &map, e);
        sn_map_set(&map, "have", list);
        /* a record half-received from this peer: ask for the rest only */
        for (partial *q = y->parts; q; q = q->next) {
            if (q->plen != p->len || memcmp(q->peer, p->id, p->len) != 0 || q->have == q->total)
                continue;
            sn_map_set(&map, "partial_origin", sn_str(q->en.origin, SN_ORIGIN_LEN));
            sn_map_set(&map, "partial_seq", sn_int((int64_t)q->en.seq));
            sn_map_set(&map, "partial_off", sn_int((int64_t)sn_partial_prefix(q)));
            break;
        }
        sn_buf out;
        rc = sn_record_encode(SN_MSG_SYNC_REQUEST, &map, NULL, 0, SN_CODEC_NONE, &out, e);
        if (!rc) rc = sn_outbox_add(y, p, &out, e);
        if (!rc) y->tail->kind = SN_MSG_SYNC_REQUEST;
    }
    sn_arena_free(&a);
    free(vv.items);
    if (!rc) {
        p->last_request = y->last_any_request = y->now;
        y->st.sync_rounds++;
    }
    return rc;
}

int sn_sync_request(sn_sync *y, const char *id, size_t len, sn_err *e)
{
    peer *p = sn_peer_find(y, id, len);
    if (!p) return sn_fail(e, SN_EARG, "unknown peer");
    return sn_send_request(y, p, e);
}

int sn_sync_request_all(sn_sync *y, sn_err *e)
{
    for (size_t i = 0; i < sn_sync_peer_count(y); i++) {
        sn_peer_info p;
        sn_sync_peer(y, i, &p);
        int rc = sn_sync_request(y, p.id, strlen(p.id), e);
        if (rc) return rc;
    }
    return SN_OK;
}

int sn_kind_enabled(const sn_sync *y, int cf)
{
    if (cf == SN_ENTRY_CF_WEIGHTS) return y->cfg.weights;
    if (cf == SN_ENTRY_CF_CONFIG) return y->cfg.configs;
    if (cf == SN_ENTRY_CF_CHECKPOINTS) return y->cfg.checkpoints;
    /* system state and metrics have no filter: they always sync */
    return cf == SN_ENTRY_CF_STATE || cf == SN_ENTRY_CF_METRICS;
}

/* Read one entry for sending: kinds this node does not sync travel as
 * skips, so the asker's vector still advances past them. */
static int read_for_send(sn_sync *y, const char *origin, uint64_t seq, sn_entry *en, sn_buf *bytes,
                         sn_err *e)
{
    int rc = sn_replica_read(y->s, origin, seq, en, bytes, e);
    if (rc) return rc;
    if (!sn_kind_enabled(y, en->cf)) {
        free(bytes->data);
        bytes->data = NULL;
        bytes->len = 0;
        en->kind = SN_KIND_SKIP;
    }
    return SN_OK;
}

/* ---- eager pushes of local writes ---------------------------------------------------- */

static unsigned update_type(int cf)
{
    if (cf == SN_ENTRY_CF_WEIGHTS) return SN_MSG_WEIGHT_UPDATE;
    if (cf == SN_ENTRY_CF_CHECKPOINTS) return SN_MSG_CHECKPOINT_BROADCAST;
    return SN_MSG_CONFIG_UPDATE;   /* configs, system state, metrics */
}

/* Pushes on their way to one peer: consecutive entries of one message
 * type gather in one message until it holds a chunk's worth of bytes, so a
 * burst of small writes travels as a few messages rather than one each
 * (each costs the receiver a decode, a CRC and a poll; and a burst of
 * thousands overflowed the socket's high-water mark, and the dropped ones
 * came back slowly through anti-entropy). */
typedef struct push_to {
    builder b;
    unsigned type;
} push_to;

static int push_flush(sn_sync *y, const peer *p, push_to *t, sn_err *e)
{
    int rc = t->b.n ? sn_send_entries(y, p, t->type, &t->b, 0, e) : SN_OK;
    sn_builder_free(&t->b);
    sn_builder_init(&t->b);
    return rc;
}

/* One entry to one peer: in chunks when larger than a chunk (after what
 * is gathered, to keep seq order), else into the peer's message. */
static int push_one(sn_sync *y, peer *p, push_to *t, const sn_entry *en, const sn_buf *bytes,
                    sn_err *e)
{
    unsigned type = update_type(en->cf);
    int rc = SN_OK;
    if (t->b.n && (type != t->type || bytes->len > y->chunk || t->b.n >= MAX_ENTRIES_PER_MESSAGE ||
                   t->b.bytes + bytes->len + ENTRY_OVERHEAD > y->chunk))
        rc = push_flush(y, p, t, e);
    if (!rc && bytes->len > y->chunk) {
        size_t next;
        rc = sn_send_chunks(y, p, type, en, bytes->data, bytes->len, 0, SIZE_MAX, 0, &next, e);
    } else if (!rc) {
        unsigned char *copy = bytes->len ? malloc(bytes->len) : NULL;
        if (bytes->len && !copy) return sn_fail(e, SN_ENOMEM, "out of memory");
        if (copy) memcpy(copy, bytes->data, bytes->len);
        t->type = type;
        rc = sn_builder_add(&t->b, en, copy, bytes->len, e);
    }
    if (!rc) sn_count_sent(y, en);
    if (!rc) sn_sent_note(y, p, en->origin, en->seq);
    return rc;
}

/* A peer whose rate limit holds more than a second of messages for it
 * already: no eager pushes until it asks (as a connection that refused
 * a push: UNSENT_DATA), so the outbox does not grow with a writer that
 * outpaces the limit; what it missed comes with its next request. */
static int backlogged(sn_sync *y, peer *p)
{
    if (!(y->cfg.max_send_rate > 0) || (double)p->queued <= y->cfg.max_send_rate) return 0;
    p->unsent |= UNSENT_DATA;
    return 1;
}

/* Each local entry goes to every live peer in a message of its kind (in
 * chunks when it is larger than a chunk). Kinds this node does not sync
 * are left to anti-entropy (as skips). Entries are sent in seq order, so a peer that got
 * every push applies them all; one that missed one asks. */
int sn_push_local(sn_sync *y, sn_err *e)
{
    uint64_t last = sn_replica_local_seq(y->s);
    if (last <= y->pushed_seq) return SN_OK;
    if (y->cfg.mode == SN_MODE_RECEIVE_ONLY) {   /* our writes stay here */
        y->pushed_seq = last;
        return SN_OK;
    }
    const char *origin = sn_store_origin(y->s);
    push_to *to = calloc(y->npeers ? y->npeers : 1, sizeof *to);
    if (!to) return sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; i < y->npeers; i++) sn_builder_init(&to[i].b);
    int rc = SN_OK;
    if (last - y->pushed_seq > MAX_PUSH_PER_TICK) last = y->pushed_seq + MAX_PUSH_PER_TICK;
    for (uint64_t seq = y->pushed_seq + 1; !rc && seq <= last; seq++) {
        sn_entry en;
        sn_buf bytes;
        rc = read_for_send(y, origin, seq, &en, &bytes, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; continue; }
        if (rc) break;
        memcpy(en.origin, origin, SN_ORIGIN_LEN + 1);
        en.seq = seq;
        for (size_t i = 0; en.kind != SN_KIND_SKIP && !rc && i < y->npeers; i++)
            if (sn_peer_state(y, &y->peers[i]) <= SN_PEER_SUSPECT && !(y->peers[i].unsent & UNSENT_DATA) &&
                !backlogged(y, &y->peers[i]))
                rc = push_one(y, &y->peers[i], &to[i], &en, &bytes, e);
        free(bytes.data);
    }
    for (size_t i = 0; i < y->npeers; i++) {
        int r2 = rc ? SN_OK : push_flush(y, &y->peers[i], &to[i], e);
        if (!rc) rc = r2;
        sn_builder_free(&to[i].b);
    }
    free(to);
    if (!rc) y->pushed_seq = last;
    return rc;
}

/* The asker's seq for origin in its "have" list; 0 when it lists none. */
static uint64_t their_seq(const sn_value *have, const char *origin)
{
    uint64_t theirs = 0;
    for (size_t j = 0; j < have->u.a.n; j++) {
        const sn_value *o = sn_map_get(&have->u.a.items[j], "origin");
        if (o->u.s.len == SN_ORIGIN_LEN && memcmp(o->u.s.p, origin, SN_ORIGIN_LEN) == 0)
            theirs = (uint64_t)sn_map_get(&have->u.a.items[j], "seq")->u.i;
    }
    return theirs;
}

/* An origin the asker has entries of and we know nothing about. */
static int asker_knows_more(const sn_value *have, const sn_vv *vv)
{
    for (size_t j = 0; j < have->u.a.n; j++) {
        const sn_value *o = sn_map_get(&have->u.a.items[j], "origin");
        int known = 0;
        for (size_t i = 0; i < vv->n && !known; i++)
            known = o->u.s.len == SN_ORIGIN_LEN && memcmp(o->u.s.p, vv->items[i].origin, SN_ORIGIN_LEN) == 0;
        if (!known && sn_map_get(&have->u.a.items[j], "seq")->u.i > 0) return 1;
    }
    return 0;
}

/* Where to resume the record (origin, seq) of len bytes: the end of the
 * asker's partial copy when the request names this record, else 0. */
static size_t resume_offset(const sn_value *fields, const char *origin, uint64_t seq, size_t len)
{
    const sn_value *po = sn_map_get(fields, "partial_origin");
    const sn_value *ps = sn_map_get(fields, "partial_seq");
    const sn_value *pf = sn_map_get(fields, "partial_off");
    if (po->type == SN_STR && po->u.s.len == SN_ORIGIN_LEN && ps->type == SN_INT &&
        pf->type == SN_INT && (uint64_t)ps->u.i == seq &&
        memcmp(po->u.s.p, origin, SN_ORIGIN_LEN) == 0 && (uint64_t)pf->u.i < len)
        return (size_t)pf->u.i;
    return 0;
}

/* A receive_only node hands out no write of its own origin (others' it
 * relays). */
static int withheld(sn_sync *y, const char *origin)
{
    return y->cfg.mode == SN_MODE_RECEIVE_ONLY && !strcmp(origin, sn_store_origin(y->s));
}

/* Entries the asker logged as skips while it did not sync their kind and
 * now asks for whole (its "refetch" list): those we hold whole go first.
 * A record too large for one message is left for a later version of this
 * (it stays a skip there; the asker asks again). */
static int add_refetched(sn_sync *y, const sn_value *fields, builder *b, size_t budget, sn_err *e)
{
    const sn_value *list = sn_map_get(fields, "refetch");
    int rc = SN_OK;
    for (size_t i = 0; !rc && list->type == SN_ARRAY && i < list->u.a.n; i++) {
        const sn_value *o = sn_map_get(&list->u.a.items[i], "origin");
        const sn_value *q = sn_map_get(&list->u.a.items[i], "seq");
        if (o->u.s.len != SN_ORIGIN_LEN || q->u.i < 1) continue;
        char origin[SN_ORIGIN_LEN + 1];
        memcpy(origin, o->u.s.p, SN_ORIGIN_LEN);
        origin[SN_ORIGIN_LEN] = 0;
        if (withheld(y, origin)) continue;
        sn_entry en;
        sn_buf bytes;
        rc = read_for_send(y, origin, (uint64_t)q->u.i, &en, &bytes, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; continue; }
        if (rc) break;
        if (en.kind == SN_KIND_SKIP || bytes.len > y->chunk || b->n >= MAX_ENTRIES_PER_MESSAGE ||
            b->bytes + bytes.len + ENTRY_OVERHEAD > budget) {
            free(bytes.data);
            continue;
        }
        sn_count_sent(y, &en);
        rc = sn_builder_add(b, &en, bytes.data, bytes.len, e);
    }
    return rc;
}

/* Everything we hold past the asker's vector, within one message's budget. */
int sn_answer_request(sn_sync *y, peer *p, const sn_value *fields, sn_err *e)
{
    const sn_value *have = sn_map_get(fields, "have");
    sn_vv vv;
    int rc = sn_replica_vector(y->s, &vv, e);
    if (rc) return rc;
    builder b;
    sn_builder_init(&b);
    int more = 0, asker_ahead = 0, chunked = 0;
    size_t budget = y->cfg.max_message_bytes - MESSAGE_OVERHEAD;
    const sn_value *po = sn_map_get(fields, "partial_origin");
    rc = add_refetched(y, fields, &b, budget, e);
    for (size_t i = 0; !rc && i < vv.n && !more && !chunked; i++) {
        if (withheld(y, vv.items[i].origin)) continue;
        uint64_t theirs = their_seq(have, vv.items[i].origin);
        if (theirs > vv.items[i].seq) asker_ahead = 1;
        /* entries we sent this peer a moment ago are on their way: the
         * request crossed them (unless it names one as half-received and
         * nothing for it still waits in our outbox: then the rest of that
         * record was lost) */
        uint64_t from = theirs, lately = sn_sent_lately(y, p, vv.items[i].origin);
        int partial_here = po->type == SN_STR && po->u.s.len == SN_ORIGIN_LEN &&
                           memcmp(po->u.s.p, vv.items[i].origin, SN_ORIGIN_LEN) == 0;
        if (lately > from && (!partial_here || p->queued > 0)) from = lately;
        for (uint64_t seq = from + 1; !rc && seq <= vv.items[i].seq; seq++) {
            sn_entry en;
            sn_buf bytes;
            rc = read_for_send(y, vv.items[i].origin, seq, &en, &bytes, e);
            if (rc) break;
            if (b.n && (b.n >= MAX_ENTRIES_PER_MESSAGE ||
                        b.bytes + bytes.len + ENTRY_OVERHEAD > budget)) {
                free(bytes.data);
                more = 1;
                break;
            }
            if (bytes.len > y->chunk) {
                /* what came before, then this record in chunks (from where
                 * the asker's partial copy ends), then the asker asks again */
                if (b.n) rc = sn_send_entries(y, p, SN_MSG_SYNC_RESPONSE, &b, 0, e);
                sn_builder_free(&b);
                sn_builder_init(&b);
                size_t start = resume_offset(fields, vv.items[i].origin, seq, bytes.len), next;
                int after = seq < vv.items[i].seq || i + 1 < vv.n;
                if (!rc) rc = sn_send_chunks(y, p, SN_MSG_SYNC_RESPONSE, &en, bytes.data, bytes.len,
                                             start, budget, after, &next, e);
                if (!rc && next >= bytes.len) {
                    sn_count_sent(y, &en);
                    sn_sent_note(y, p, vv.items[i].origin, seq);
                }
                free(bytes.data);
                chunked = 1;
                break;
            }
            sn_count_sent(y, &en);
            rc = sn_builder_add(&b, &en, bytes.data, bytes.len, e);
            if (!rc) sn_sent_note(y, p, vv.items[i].origin, seq);
        }
    }
    /* origins the asker knows and we do not: ask back (push-pull) */
    if (!rc && !asker_ahead) asker_ahead = asker_knows_more(have, &vv);
    free(vv.items);
    if (!rc && !chunked) rc = sn_send_entries(y, p, SN_MSG_SYNC_RESPONSE, &b, more, e);
    sn_builder_free(&b);
    if (!rc && asker_ahead && y->now - p->last_request >= y->cfg.heartbeat_interval / 4 &&
        y->now - y->last_any_request >= 2 * y->cfg.heartbeat_interval)
        rc = sn_send_request(y, p, e);
    return rc;
}
