/* The sync engine (see sn_sync.h).
 *
 * Messages are record envelopes of the message types in sn_schema.h: the
 * fields are the message, the payload is the concatenated stored bytes of
 * the records its entries carry (entry.len bytes each, in order), and the
 * envelope's CRC covers both. Decoding goes through sn_record_decode, so a
 * message gets the same bounds pre-check and schema check as a record. */
#include "sync/sn_sync.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES_PER_MESSAGE 4096
#define ENTRY_OVERHEAD 160          /* bytes an entry's fields take, generously */
#define MESSAGE_OVERHEAD 4096
#define CHUNK_OVERHEAD 1024         /* a one-entry message around a chunk, at most */
#define MAX_SETS_PER_PEER 16        /* chunk sets in flight from one peer */
#define MAX_SPANS 1024              /* disjoint received ranges of one chunk set */

/* What we sent a peer lately, per origin: a request that crossed our
 * answer (or push) in flight is not answered with the same entries again. */
typedef struct sent_item {
    char origin[SN_ORIGIN_LEN];
    uint64_t seq;
    double at;
} sent_item;

typedef struct peer {
    char *id;
    size_t len;
    int is_static;
    double added, last_seen, last_heartbeat, last_request;
    sent_item *sent;
    size_t nsent;
} peer;

/* A record arriving in chunks from one peer: its entry, the bytes so far
 * (the whole record's size is reserved at the first chunk and charged to
 * the peer's cap), and the ranges received, sorted and merged. */
typedef struct span { size_t off, end; } span;

typedef struct partial {
    struct partial *next;
    char *peer;
    size_t plen;
    sn_entry en;
    size_t total, have;
    unsigned char *buf;
    span *spans;
    size_t nspans, cap;
    double touched;
} partial;

typedef struct out_msg {
    struct out_msg *next;
    char *to;
    unsigned char *bytes;
    size_t len;
} out_msg;

struct sn_sync {
    sn_store *s;
    sn_sync_config cfg;
    peer *peers;
    size_t npeers, cap;
    out_msg *head, *tail;
    size_t nout;
    double now, last_round;
    double last_any_request;       /* our last SyncRequest still unanswered; -inf: none */
    int started;
    uint64_t pushed_seq;           /* local log entries already pushed eagerly */
    uint64_t rng;
    partial *parts;                /* chunk sets in flight */
    size_t chunk;                  /* effective chunk size */
    sn_sync_stats st;
};

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
    if (c->max_message_bytes < 4096)
        return sn_fail(e, SN_EARG, "max_message_bytes must be at least 4096");
    if (!(c->heartbeat_interval > 0) || !(c->sync_interval > 0) || !(c->peer_timeout > 0) ||
        !(c->chunk_timeout > 0))
        return sn_fail(e, SN_EARG, "intervals and timeouts must be positive");
    if (c->chunk_bytes < 1024) return sn_fail(e, SN_EARG, "chunk_bytes must be at least 1024");
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
    y->last_any_request = -1e300;
    /* a chunk and its one-entry message fit in max_message_bytes */
    y->chunk = c->chunk_bytes;
    if (y->chunk > c->max_message_bytes - CHUNK_OVERHEAD) y->chunk = c->max_message_bytes - CHUNK_OVERHEAD;
    *out = y;
    return SN_OK;
}

static void drop_out(out_msg *m)
{
    free(m->to);
    free(m->bytes);
    free(m);
}

static void partial_free(partial *q)
{
    free(q->peer);
    free(q->buf);
    free(q->spans);
    free(q);
}

void sn_sync_free(sn_sync *y)
{
    if (!y) return;
    while (y->parts) {
        partial *n = y->parts->next;
        partial_free(y->parts);
        y->parts = n;
    }
    while (y->head) {
        out_msg *n = y->head->next;
        drop_out(y->head);
        y->head = n;
    }
    for (size_t i = 0; i < y->npeers; i++) {
        free(y->peers[i].id);
        free(y->peers[i].sent);
    }
    free(y->peers);
    free(y);
}

void sn_sync_set_store(sn_sync *y, sn_store *s) { y->s = s; }
const sn_sync_config *sn_sync_config_of(const sn_sync *y) { return &y->cfg; }

static uint64_t next_rand(sn_sync *y)
{
    y->rng ^= y->rng << 13;
    y->rng ^= y->rng >> 7;
    y->rng ^= y->rng << 17;
    return y->rng;
}

/* ---- peers ------------------------------------------------------------------ */

static peer *find_peer(sn_sync *y, const char *id, size_t len)
{
    for (size_t i = 0; i < y->npeers; i++)
        if (y->peers[i].len == len && memcmp(y->peers[i].id, id, len) == 0) return &y->peers[i];
    return NULL;
}

static int state_of(const sn_sync *y, const peer *p)
{
    double seen = p->last_seen >= 0 ? p->last_seen : p->added;
    double silent = y->now - seen;
    if (silent > y->cfg.peer_timeout) return SN_PEER_DEAD;
    if (silent > y->cfg.peer_timeout / 2) return SN_PEER_SUSPECT;
    return SN_PEER_ALIVE;
}

static peer *add_peer(sn_sync *y, const char *id, size_t len, int is_static, sn_err *e)
{
    peer *p = find_peer(y, id, len);
    if (p) {
        p->is_static |= is_static;
        return p;
    }
    if (len == 0 || len > SN_MAX_ID_LEN || memchr(id, 0, len)) {
        sn_fail(e, SN_EARG, "peer id must be 1 to %u bytes without NUL", SN_MAX_ID_LEN);
        return NULL;
    }
    if (y->npeers >= y->cfg.max_peers) {
        sn_fail(e, SN_EIO, "max_peers (%u) reached", y->cfg.max_peers);
        return NULL;
    }
    if (y->npeers == y->cap) {
        size_t cap = y->cap ? 2 * y->cap : 8;
        peer *q = realloc(y->peers, cap * sizeof *q);
        if (!q) { sn_fail(e, SN_ENOMEM, "out of memory"); return NULL; }
        y->peers = q;
        y->cap = cap;
    }
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
    y->npeers++;
    return p;
}

int sn_sync_add_peer(sn_sync *y, const char *id, size_t len, sn_err *e)
{
    return add_peer(y, id, len, 1, e) ? SN_OK : e->code;
}

int sn_sync_remove_peer(sn_sync *y, const char *id, size_t len)
{
    peer *p = find_peer(y, id, len);
    if (!p) return 0;
    free(p->id);
    free(p->sent);
    *p = y->peers[--y->npeers];
    return 1;
}

size_t sn_sync_peer_count(const sn_sync *y) { return y->npeers; }

void sn_sync_peer(const sn_sync *y, size_t i, sn_peer_info *out)
{
    const peer *p = &y->peers[i];
    out->id = p->id;
    out->state = state_of(y, p);
    out->last_seen = p->last_seen;
    out->is_static = p->is_static;
}

const char *sn_sync_peer_state_name(int state)
{
    return state == SN_PEER_ALIVE ? "alive" : state == SN_PEER_SUSPECT ? "suspect" : "dead";
}

void sn_sync_get_stats(const sn_sync *y, sn_sync_stats *out) { *out = y->st; }
void sn_sync_count_rejected(sn_sync *y) { y->st.rejected++; }

/* ---- what a peer was sent lately ---------------------------------------------- */

/* Short: a request that crossed our send in flight arrives within a round
 * trip, and requests queued while we were busy are answered in one poll.
 * A send that was lost is resent to the next request after this. */
static double sent_memory(const sn_sync *y)
{
    double m = 2 * y->cfg.heartbeat_interval;
    return m < 0.5 ? m : 0.5;
}

static uint64_t sent_lately(const sn_sync *y, const peer *p, const char *origin)
{
    for (size_t i = 0; i < p->nsent; i++)
        if (memcmp(p->sent[i].origin, origin, SN_ORIGIN_LEN) == 0)
            return y->now - p->sent[i].at <= sent_memory(y) ? p->sent[i].seq : 0;
    return 0;
}

/* Best effort: without memory for it, the peer may only get a copy twice. */
static void note_sent(sn_sync *y, peer *p, const char *origin, uint64_t seq)
{
    for (size_t i = 0; i < p->nsent; i++)
        if (memcmp(p->sent[i].origin, origin, SN_ORIGIN_LEN) == 0) {
            if (seq > p->sent[i].seq || y->now - p->sent[i].at > sent_memory(y)) {
                p->sent[i].seq = seq;
                p->sent[i].at = y->now;
            }
            return;
        }
    if (p->nsent >= 256) return;
    sent_item *n = realloc(p->sent, (p->nsent + 1) * sizeof *n);
    if (!n) return;
    p->sent = n;
    memcpy(n[p->nsent].origin, origin, SN_ORIGIN_LEN);
    n[p->nsent].seq = seq;
    n[p->nsent].at = y->now;
    p->nsent++;
}

/* ---- the outbox ---------------------------------------------------------------- */

static int enqueue(sn_sync *y, const peer *p, sn_buf *msg, sn_err *e)
{
    out_msg *m = calloc(1, sizeof *m);
    if (m) m->to = malloc(p->len + 1);
    if (!m || !m->to) {
        free(m);
        free(msg->data);
        return sn_fail(e, SN_ENOMEM, "out of memory");
    }
    memcpy(m->to, p->id, p->len + 1);
    m->bytes = msg->data;
    m->len = msg->len;
    if (y->tail) y->tail->next = m;
    else y->head = m;
    y->tail = m;
    y->nout++;
    y->st.messages_sent++;
    y->st.bytes_sent += msg->len;
    return SN_OK;
}

int sn_sync_next_out(sn_sync *y, char **to, unsigned char **bytes, size_t *len)
{
    out_msg *m = y->head;
    if (!m) return 0;
    y->head = m->next;
    if (!y->head) y->tail = NULL;
    y->nout--;
    *to = m->to;
    *bytes = m->bytes;
    *len = m->len;
    free(m);
    return 1;
}

size_t sn_sync_outbox_len(const sn_sync *y) { return y->nout; }

/* ---- building messages -------------------------------------------------------------- */

/* A message under construction: fields in an arena, payload parts owned. */
typedef struct builder {
    sn_arena a;
    sn_value *entries;
    size_t n, cap;
    sn_part *parts;
    unsigned char **owned;
    size_t nparts;
    size_t bytes;          /* estimated encoded size */
} builder;

static void builder_init(builder *b)
{
    memset(b, 0, sizeof *b);
    sn_arena_init(&b->a);
}

static void builder_free(builder *b)
{
    for (size_t i = 0; i < b->nparts; i++) free(b->owned[i]);
    free(b->parts);
    free(b->owned);
    free(b->entries);
    sn_arena_free(&b->a);
}

/* Takes ownership of bytes. total > 0: bytes are the piece at off of a
 * record of total bytes (a chunk). */
static int builder_add_piece(builder *b, const sn_entry *en, unsigned char *bytes, size_t len,
                             size_t total, size_t off, sn_err *e)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        sn_value *v = realloc(b->entries, cap * sizeof *v);
        if (v) b->entries = v;
        sn_part *p = v ? realloc(b->parts, cap * sizeof *p) : NULL;
        if (p) b->parts = p;
        unsigned char **o = p ? realloc(b->owned, cap * sizeof *o) : NULL;
        if (o) b->owned = o;
        if (!o) { free(bytes); return sn_fail(e, SN_ENOMEM, "out of memory"); }
        b->cap = cap;
    }
    sn_value m;
    int rc = sn_record_map(&sn_schema_log_entry, &b->a, &m, e);
    const char *key = rc ? NULL : sn_arena_strdup(&b->a, (const char *)en->key, en->klen);
    const char *origin = key ? sn_arena_strdup(&b->a, en->origin, SN_ORIGIN_LEN) : NULL;
    const char *prev = origin ? sn_arena_strdup(&b->a, en->prev.origin, strlen(en->prev.origin)) : NULL;
    if (!rc && !prev) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    if (rc) { free(bytes); return rc; }
    sn_map_set(&m, "kind", sn_int(en->kind));
    sn_map_set(&m, "cf", sn_int(en->cf));
    sn_map_set(&m, "key", sn_str(key, en->klen));
    sn_map_set(&m, "hlc", sn_int((int64_t)en->hlc));
    if (en->prev.origin[0]) {
        sn_map_set(&m, "prev_hlc", sn_int((int64_t)en->prev.hlc));
        sn_map_set(&m, "prev_origin", sn_cstr(prev));
    }
    sn_map_set(&m, "origin", sn_str(origin, SN_ORIGIN_LEN));
    sn_map_set(&m, "seq", sn_int((int64_t)en->seq));
    sn_map_set(&m, "len", sn_int((int64_t)len));
    if (total) {
        sn_map_set(&m, "total", sn_int((int64_t)total));
        sn_map_set(&m, "off", sn_int((int64_t)off));
    }
    b->entries[b->n++] = m;
    b->parts[b->nparts].p = bytes;
    b->parts[b->nparts].len = len;
    b->owned[b->nparts++] = bytes;
    b->bytes += len + ENTRY_OVERHEAD;
    return SN_OK;
}

static int builder_add(builder *b, const sn_entry *en, unsigned char *bytes, size_t len, sn_err *e)
{
    return builder_add_piece(b, en, bytes, len, 0, 0, e);
}

static int header(sn_sync *y, sn_value *map, sn_err *e)
{
    (void)e;
    sn_map_set(map, "proto", sn_int(SN_PROTO_VERSION));
    sn_map_set(map, "from", sn_cstr(y->cfg.node_id));
    return SN_OK;
}

static void count_sent(sn_sync *y, const sn_entry *en)
{
    if (en->kind != SN_KIND_PUT) return;
    if (en->cf == sn_replica_cf_weights()) y->st.weights_sent++;
    else if (en->cf == sn_replica_cf_config()) y->st.configs_sent++;
    else if (en->cf == sn_replica_cf_checkpoints()) y->st.checkpoints_sent++;
}

static int send_entries(sn_sync *y, const peer *p, unsigned type, builder *b, int more, sn_err *e)
{
    sn_value map, list = sn_nil();
    int rc = sn_record_map(sn_schema_for(type), &b->a, &map, e);
    if (rc) return rc;
    header(y, &map, e);
    list.type = SN_ARRAY;
    list.u.a.items = b->entries;
    list.u.a.n = b->n;
    sn_map_set(&map, "entries", list);
    if (type == SN_MSG_SYNC_RESPONSE) {
        sn_value t = sn_nil();
        t.type = SN_BOOL;
        t.u.b = more;
        sn_map_set(&map, "more", t);
    }
    sn_buf out;
    rc = sn_record_encode(type, &map, b->parts, b->nparts, SN_CODEC_NONE, &out, e);
    if (!rc) rc = enqueue(y, p, &out, e);
    return rc;
}

/* The record's bytes from `from` on, one chunk per message of `type`, at
 * most `budget` bytes of chunks; the last message says `more` when the
 * record is not finished or `more_after`. Returns the next offset. */
static int send_chunks(sn_sync *y, const peer *p, unsigned type, const sn_entry *en,
                       const unsigned char *bytes, size_t len, size_t from, size_t budget,
                       int more_after, size_t *next, sn_err *e)
{
    int rc = SN_OK;
    size_t off = from, sent = 0;
    while (!rc && off < len) {
        size_t n = len - off < y->chunk ? len - off : y->chunk;
        int last = off + n >= len || sent + n + y->chunk > budget;
        unsigned char *copy = malloc(n);
        builder b;
        builder_init(&b);
        if (!copy) rc = sn_fail(e, SN_ENOMEM, "out of memory");
        else {
            memcpy(copy, bytes + off, n);
            rc = builder_add_piece(&b, en, copy, n, len, off, e);
        }
        if (!rc) rc = send_entries(y, p, type, &b, last && (off + n < len || more_after), e);
        builder_free(&b);
        if (rc) break;
        y->st.chunks_sent++;
        off += n;
        sent += n;
        if (last) break;
    }
    *next = off;
    return rc;
}

/* ---- reassembly of chunked records ------------------------------------------------ */

static size_t prefix_of(const partial *q)
{
    return q->nspans && q->spans[0].off == 0 ? q->spans[0].end : 0;
}

static void drop_partial(sn_sync *y, partial *q)
{
    for (partial **pp = &y->parts; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    y->st.reassembly_bytes -= q->total;
    partial_free(q);
}

static partial *find_partial(sn_sync *y, const char *pid, size_t plen, const char *origin,
                             uint64_t seq)
{
    for (partial *q = y->parts; q; q = q->next)
        if (q->en.seq == seq && q->plen == plen && memcmp(q->peer, pid, plen) == 0 &&
            memcmp(q->en.origin, origin, SN_ORIGIN_LEN) == 0)
            return q;
    return NULL;
}

static void expire_partials(sn_sync *y)
{
    for (partial *q = y->parts, *n; q; q = n) {
        n = q->next;
        if (y->now - q->touched > y->cfg.chunk_timeout) {
            y->st.chunk_sets_dropped++;
            drop_partial(y, q);
        }
    }
}

static int same_entry(const sn_entry *a, const sn_entry *b)
{
    return a->kind == b->kind && a->cf == b->cf && a->klen == b->klen &&
           memcmp(a->key, b->key, a->klen) == 0 && a->hlc == b->hlc &&
           a->prev.hlc == b->prev.hlc && strcmp(a->prev.origin, b->prev.origin) == 0;
}

/* Add one chunk. *done is set when the set is whole; SN_ECORRUPT (with
 * the set dropped) when the chunk disagrees with the set; SN_NOTFOUND when
 * the set does not fit under the peer's cap (dropped, not an error). */
static int add_chunk(sn_sync *y, const peer *p, const sn_entry *en, size_t total, size_t off,
                     const unsigned char *bytes, size_t len, partial **out, sn_err *e)
{
    *out = NULL;
    if (en->kind != SN_KIND_PUT || len == 0 || off > total || len > total - off ||
        total > SN_MAX_RECORD)
        return sn_fail(e, SN_ECORRUPT, "chunk lies outside its record");
    partial *q = find_partial(y, p->id, p->len, en->origin, en->seq);
    if (q && (q->total != total || !same_entry(&q->en, en))) {
        drop_partial(y, q);
        return sn_fail(e, SN_ECORRUPT, "chunk disagrees with its chunk set");
    }
    if (!q) {
        size_t inflight = 0, sets = 0;
        for (partial *r = y->parts; r; r = r->next)
            if (r->plen == p->len && memcmp(r->peer, p->id, p->len) == 0) {
                inflight += r->total;
                sets++;
            }
        if (sets >= MAX_SETS_PER_PEER || total > y->cfg.max_reassembly_bytes ||
            inflight > y->cfg.max_reassembly_bytes - total)
            return SN_NOTFOUND;
        q = calloc(1, sizeof *q);
        if (q) q->peer = malloc(p->len + 1);
        if (q && q->peer) q->buf = malloc(total);
        if (q && q->buf) q->spans = malloc(8 * sizeof *q->spans);
        if (q) q->cap = 8;
        if (!q || !q->spans) {
            if (q) partial_free(q);
            return sn_fail(e, SN_ENOMEM, "out of memory");
        }
        memcpy(q->peer, p->id, p->len + 1);
        q->plen = p->len;
        q->en = *en;
        q->total = total;
        q->next = y->parts;
        y->parts = q;
        y->st.reassembly_bytes += total;
    }
    /* bytes seen before must be the same bytes */
    size_t end = off + len;
    for (size_t i = 0; i < q->nspans; i++) {
        size_t a = q->spans[i].off > off ? q->spans[i].off : off;
        size_t b = q->spans[i].end < end ? q->spans[i].end : end;
        if (a < b && memcmp(q->buf + a, bytes + (a - off), b - a) != 0) {
            drop_partial(y, q);
            return sn_fail(e, SN_ECORRUPT, "chunk overlaps its set with different bytes");
        }
    }
    memcpy(q->buf + off, bytes, len);
    q->touched = y->now;
    /* insert, keep sorted, merge neighbours */
    size_t at = 0;
    while (at < q->nspans && q->spans[at].off < off) at++;
    if (q->nspans == q->cap) {
        span *ns = realloc(q->spans, 2 * q->cap * sizeof *ns);
        if (!ns) return sn_fail(e, SN_ENOMEM, "out of memory");
        q->spans = ns;
        q->cap *= 2;
    }
    memmove(q->spans + at + 1, q->spans + at, (q->nspans - at) * sizeof *q->spans);
    q->spans[at] = (span){ off, end };
    q->nspans++;
    size_t w = 0;
    for (size_t i = 1; i < q->nspans; i++) {
        if (q->spans[i].off <= q->spans[w].end) {
            if (q->spans[i].end > q->spans[w].end) q->spans[w].end = q->spans[i].end;
        } else {
            q->spans[++w] = q->spans[i];
        }
    }
    q->nspans = w + 1;
    q->have = 0;
    for (size_t i = 0; i < q->nspans; i++) q->have += q->spans[i].end - q->spans[i].off;
    if (q->nspans > MAX_SPANS) {
        drop_partial(y, q);
        return sn_fail(e, SN_ECORRUPT, "chunk set is too fragmented");
    }
    *out = q;
    return SN_OK;
}

/* ---- digests ------------------------------------------------------------------------- */

int sn_sync_digest(sn_store *s, uint64_t *digest, sn_err *e)
{
    sn_vv vv;
    int rc = sn_replica_vector(s, &vv, e);
    if (rc) return rc;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < vv.n; i++) {
        for (size_t j = 0; j < SN_ORIGIN_LEN; j++)
            h = (h ^ (unsigned char)vv.items[i].origin[j]) * 1099511628211ull;
        for (int j = 0; j < 8; j++) h = (h ^ ((vv.items[i].seq >> (8 * j)) & 0xff)) * 1099511628211ull;
    }
    free(vv.items);
    *digest = h & 0x7fffffffffffffffull;   /* msgpack ints are signed on our side */
    return SN_OK;
}

static int send_heartbeat(sn_sync *y, peer *p, sn_err *e)
{
    uint64_t digest;
    int rc = sn_sync_digest(y->s, &digest, e);
    sn_arena a;
    sn_arena_init(&a);
    sn_value map;
    if (!rc) rc = sn_record_map(sn_schema_for(SN_MSG_HEARTBEAT), &a, &map, e);
    if (!rc) {
        header(y, &map, e);
        sn_map_set(&map, "digest", sn_int((int64_t)digest));
        sn_buf out;
        rc = sn_record_encode(SN_MSG_HEARTBEAT, &map, NULL, 0, SN_CODEC_NONE, &out, e);
        if (!rc) rc = enqueue(y, p, &out, e);
    }
    sn_arena_free(&a);
    if (!rc) {
        p->last_heartbeat = y->now;
        y->st.heartbeats_sent++;
    }
    return rc;
}

static int send_request(sn_sync *y, peer *p, sn_err *e)
{
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
    if (!rc) {
        header(y, &map, e);
        sn_map_set(&map, "have", list);
        /* a record half-received from this peer: ask for the rest only */
        for (partial *q = y->parts; q; q = q->next) {
            if (q->plen != p->len || memcmp(q->peer, p->id, p->len) != 0 || q->have == q->total)
                continue;
            sn_map_set(&map, "partial_origin", sn_str(q->en.origin, SN_ORIGIN_LEN));
            sn_map_set(&map, "partial_seq", sn_int((int64_t)q->en.seq));
            sn_map_set(&map, "partial_off", sn_int((int64_t)prefix_of(q)));
            break;
        }
        sn_buf out;
        rc = sn_record_encode(SN_MSG_SYNC_REQUEST, &map, NULL, 0, SN_CODEC_NONE, &out, e);
        if (!rc) rc = enqueue(y, p, &out, e);
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
    peer *p = find_peer(y, id, len);
    if (!p) return sn_fail(e, SN_EARG, "unknown peer");
    return send_request(y, p, e);
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

static int kind_enabled(const sn_sync *y, int cf)
{
    if (cf == sn_replica_cf_weights()) return y->cfg.weights;
    if (cf == sn_replica_cf_config()) return y->cfg.configs;
    if (cf == sn_replica_cf_checkpoints()) return y->cfg.checkpoints;
    return 0;
}

/* Read one entry for sending: kinds this node does not sync travel as
 * skips, so the asker's vector still advances past them. */
static int read_for_send(sn_sync *y, const char *origin, uint64_t seq, sn_entry *en, sn_buf *bytes,
                         sn_err *e)
{
    int rc = sn_replica_read(y->s, origin, seq, en, bytes, e);
    if (rc) return rc;
    if (!kind_enabled(y, en->cf)) {
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
    if (cf == sn_replica_cf_weights()) return SN_MSG_WEIGHT_UPDATE;
    if (cf == sn_replica_cf_config()) return SN_MSG_CONFIG_UPDATE;
    return SN_MSG_CHECKPOINT_BROADCAST;
}

/* Each local entry goes to every live peer in a message of its kind (in
 * chunks when it is larger than a chunk). Kinds this node does not sync
 * are left to anti-entropy (as skips). Entries are sent in seq order, so a peer that got
 * every push applies them all; one that missed one asks. */
static int push_local(sn_sync *y, sn_err *e)
{
    uint64_t last = sn_replica_local_seq(y->s);
    if (last <= y->pushed_seq) return SN_OK;
    const char *origin = sn_store_origin(y->s);
    int rc = SN_OK;
    for (uint64_t seq = y->pushed_seq + 1; !rc && seq <= last; seq++) {
        sn_entry en;
        sn_buf bytes;
        rc = read_for_send(y, origin, seq, &en, &bytes, e);
        if (rc == SN_NOTFOUND) { rc = SN_OK; continue; }
        if (rc) break;
        int sendable = en.kind != SN_KIND_SKIP;
        for (size_t i = 0; sendable && !rc && i < y->npeers; i++) {
            peer *p = &y->peers[i];
            if (state_of(y, p) == SN_PEER_DEAD) continue;
            if (bytes.len > y->chunk) {
                size_t next;
                rc = send_chunks(y, p, update_type(en.cf), &en, bytes.data, bytes.len, 0,
                                 SIZE_MAX, 0, &next, e);
                if (!rc) count_sent(y, &en);
                if (!rc) note_sent(y, p, origin, seq);
                continue;
            }
            builder b;
            builder_init(&b);
            unsigned char *copy = NULL;
            if (bytes.len) {
                copy = malloc(bytes.len);
                if (!copy) rc = sn_fail(e, SN_ENOMEM, "out of memory");
                else memcpy(copy, bytes.data, bytes.len);
            }
            if (!rc) rc = builder_add(&b, &en, copy, bytes.len, e);
            if (!rc) rc = send_entries(y, p, update_type(en.cf), &b, 0, e);
            if (!rc) count_sent(y, &en);
            if (!rc) note_sent(y, p, origin, seq);
            builder_free(&b);
        }
        free(bytes.data);
    }
    if (!rc) y->pushed_seq = last;
    return rc;
}

/* ---- timers ------------------------------------------------------------------------ */

int sn_sync_tick(sn_sync *y, double now, sn_err *e)
{
    if (now > y->now || !y->started) y->now = now;
    int rc = SN_OK;
    expire_partials(y);
    /* forget peers we learned of that stay dead, so state stays bounded */
    for (size_t i = 0; i < y->npeers;) {
        peer *p = &y->peers[i];
        double seen = p->last_seen >= 0 ? p->last_seen : p->added;
        if (!p->is_static && y->now - seen > 3 * y->cfg.peer_timeout) {
            free(p->id);
            free(p->sent);
            *p = y->peers[--y->npeers];
        } else {
            i++;
        }
    }
    /* heartbeats go to dead peers too: that is how they come back */
    for (size_t i = 0; !rc && i < y->npeers; i++)
        if (y->now - y->peers[i].last_heartbeat >= y->cfg.heartbeat_interval)
            rc = send_heartbeat(y, &y->peers[i], e);
    if (!rc) rc = push_local(y, e);
    /* a round is due every sync_interval, unless we asked someone lately
     * anyway (a heartbeat's digest differed): then it would only fetch the
     * same entries twice */
    if (!rc && y->npeers && (!y->started || y->now - y->last_round >= y->cfg.sync_interval) &&
        (!y->started || y->now - y->last_any_request >= y->cfg.sync_interval / 2)) {
        /* one random live peer per round: gossip spreads in O(log N) rounds */
        size_t live[64], n = 0;
        for (size_t i = 0; i < y->npeers && n < 64; i++)
            if (state_of(y, &y->peers[i]) != SN_PEER_DEAD) live[n++] = i;
        size_t pick = n ? live[next_rand(y) % n] : next_rand(y) % y->npeers;
        rc = send_request(y, &y->peers[pick], e);
        y->last_round = y->now;
    }
    y->started = 1;
    return rc;
}

/* ---- receiving ----------------------------------------------------------------------- */

typedef struct msg {
    sn_arena a;
    sn_record r;
    unsigned char *payload;
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
    m->payload = malloc(m->r.raw_len ? m->r.raw_len : 1);
    if (!m->payload) return sn_fail(e, SN_ENOMEM, "out of memory");
    sn_part part = { m->payload, m->r.raw_len };
    return sn_record_load(&m->r, &part, 1, e);   /* the CRC covers the payload too */
}

static void msg_free(msg *m)
{
    free(m->payload);
    sn_arena_free(&m->a);
}

/* An entry's fields, checked beyond the schema. */
static int parse_entry(const sn_value *m, sn_entry *en, size_t *len, size_t *total, size_t *off,
                       sn_err *e)
{
    memset(en, 0, sizeof *en);
    const sn_value *t = sn_map_get(m, "total"), *o = sn_map_get(m, "off");
    if ((t->type == SN_NIL) != (o->type == SN_NIL))
        return sn_fail(e, SN_ECORRUPT, "chunk entry lacks total or off");
    *total = t->type == SN_INT ? (size_t)t->u.i : 0;
    *off = o->type == SN_INT ? (size_t)o->u.i : 0;
    if (t->type == SN_INT && *total == 0) return sn_fail(e, SN_ECORRUPT, "chunk of an empty record");
    const sn_value *origin = sn_map_get(m, "origin"), *seq = sn_map_get(m, "seq");
    const sn_value *l = sn_map_get(m, "len"), *key = sn_map_get(m, "key");
    const sn_value *ph = sn_map_get(m, "prev_hlc"), *po = sn_map_get(m, "prev_origin");
    if (origin->type != SN_STR || origin->u.s.len != SN_ORIGIN_LEN || seq->type != SN_INT ||
        seq->u.i < 1 || l->type != SN_INT)
        return sn_fail(e, SN_ECORRUPT, "entry lacks origin, seq or len");
    if (key->u.s.len == 0 || key->u.s.len > SN_REPL_KEY_MAX)
        return sn_fail(e, SN_ECORRUPT, "entry key has a bad length");
    int64_t kind = sn_map_get(m, "kind")->u.i, cf = sn_map_get(m, "cf")->u.i;
    if (kind > SN_KIND_SKIP) return sn_fail(e, SN_ECORRUPT, "entry kind unknown");
    if (cf != sn_replica_cf_weights() && cf != sn_replica_cf_config() &&
        cf != sn_replica_cf_checkpoints())
        return sn_fail(e, SN_ECORRUPT, "entry names a column family that is not replicated");
    if ((ph->type == SN_NIL) != (po->type == SN_NIL) ||
        (po->type == SN_STR && po->u.s.len != SN_ORIGIN_LEN))
        return sn_fail(e, SN_ECORRUPT, "entry prev is malformed");
    if ((kind == SN_KIND_PUT) != (l->u.i > 0))
        return sn_fail(e, SN_ECORRUPT, "entry payload disagrees with its kind");
    memcpy(en->origin, origin->u.s.p, SN_ORIGIN_LEN);
    en->seq = (uint64_t)seq->u.i;
    en->kind = (unsigned)kind;
    en->cf = (int)cf;
    memcpy(en->key, key->u.s.p, key->u.s.len);
    en->klen = key->u.s.len;
    en->hlc = (uint64_t)sn_map_get(m, "hlc")->u.i;
    if (po->type == SN_STR) {
        en->prev.hlc = (uint64_t)ph->u.i;
        memcpy(en->prev.origin, po->u.s.p, SN_ORIGIN_LEN);
    }
    *len = (size_t)l->u.i;
    return SN_OK;
}

static void count_received(sn_sync *y, const sn_entry *en)
{
    if (en->kind != SN_KIND_PUT) return;
    if (en->cf == sn_replica_cf_weights()) y->st.weights_received++;
    else if (en->cf == sn_replica_cf_config()) y->st.configs_received++;
    else y->st.checkpoints_received++;
}

/* Apply one entry whose seq is the next of its origin: the record's checks
 * (full decode and CRC, identity, clock offset), then the merge. */
static int apply_one(sn_sync *y, sn_entry *en, const unsigned char *bytes, size_t len, int *bad,
                     sn_err *e)
{
    if (en->kind == SN_KIND_PUT) {
        int rc = sn_replica_check(en, bytes, len, e);
        if (rc) { *bad = 1; return rc; }
        double wall_ms = sn_now() * 1000.0;
        if ((double)(en->hlc >> 16) > wall_ms + y->cfg.max_clock_offset_ms) {
            *bad = 1;
            return sn_fail(e, SN_ECORRUPT, "record timestamp is %.0f ms ahead of our clock",
                           (double)(en->hlc >> 16) - wall_ms);
        }
    }
    /* a kind this node does not sync is logged as seen and not applied */
    if (!kind_enabled(y, en->cf)) {
        en->kind = SN_KIND_SKIP;
        bytes = NULL;
        len = 0;
    }
    sn_apply_result res;
    int rc = sn_replica_apply(y->s, en, bytes, len, &y->cfg.resolver, &res, e);
    if (rc == SN_ECORRUPT) { *bad = 1; return rc; }
    if (rc) return rc;
    if (res.duplicate) { y->st.duplicates++; return SN_OK; }
    count_received(y, en);
    y->st.conflicts += (uint64_t)res.conflicts;
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
                drop_partial(y, q);
                progress = 1;
                break;
            }
            if (q->have < q->total) continue;
            if (q->en.seq > have + 1) { *need_sync = 1; continue; }
            sn_entry en = q->en;
            rc = apply_one(y, &en, q->buf, q->total, bad, e);
            if (*bad) y->st.chunk_sets_rejected++;
            else if (!rc) y->st.chunk_sets_completed++;
            drop_partial(y, q);
            progress = 1;
            break;
        }
    }
    return rc;
}

/* Apply the entries of an update or a response. Entries of one origin are
 * applied in seq order only: a gap (a lost or reordered message) stops that
 * origin and asks the sender for a sync instead. A chunk goes to its set,
 * which is applied once whole and its turn has come. *bad is set when the
 * message itself is malformed; entries before the bad one stay applied,
 * each having passed its own checks. */
static int apply_entries(sn_sync *y, peer *p, const msg *m, int *need_sync, int *bad, sn_err *e)
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
    size_t off = 0;
    int chunks = 0;
    for (size_t i = 0; i < list->u.a.n; i++) {
        sn_entry en;
        size_t len, rtotal, roff;
        int rc = parse_entry(&list->u.a.items[i], &en, &len, &rtotal, &roff, e);
        if (rc) { *bad = 1; return rc; }
        const unsigned char *bytes = len ? m->payload + off : NULL;
        off += len;
        uint64_t have;
        rc = sn_replica_have(y->s, en.origin, &have, e);
        if (rc) return rc;
        if (en.seq <= have) { y->st.duplicates++; continue; }
        if (rtotal) {
            y->st.chunks_received++;
            chunks = 1;
            if (!kind_enabled(y, en.cf)) {
                /* not kept: the entry is logged as a skip when its turn comes */
                if (en.seq > have + 1) { *need_sync = 1; continue; }
                en.kind = SN_KIND_SKIP;
                rc = apply_one(y, &en, NULL, 0, bad, e);
                if (rc) return rc;
                continue;
            }
            partial *q;
            rc = add_chunk(y, p, &en, rtotal, roff, bytes, len, &q, e);
            if (rc == SN_NOTFOUND) { y->st.chunk_sets_dropped++; continue; }
            if (rc == SN_ECORRUPT) { y->st.chunk_sets_rejected++; *bad = 1; return rc; }
            if (rc) return rc;
            continue;
        }
        if (en.seq > have + 1) { *need_sync = 1; continue; }
        rc = apply_one(y, &en, bytes, len, bad, e);
        if (rc) return rc;
    }
    if (chunks || y->parts) return apply_ready_sets(y, need_sync, bad, e);
    return SN_OK;
}

/* Everything we hold past the asker's vector, within one message's budget. */
static int answer_request(sn_sync *y, peer *p, const msg *m, sn_err *e)
{
    const sn_value *have = sn_map_get(&m->r.fields, "have");
    sn_vv vv;
    int rc = sn_replica_vector(y->s, &vv, e);
    if (rc) return rc;
    builder b;
    builder_init(&b);
    int more = 0, asker_ahead = 0, chunked = 0;
    size_t budget = y->cfg.max_message_bytes - MESSAGE_OVERHEAD;
    const sn_value *po = sn_map_get(&m->r.fields, "partial_origin");
    const sn_value *ps = sn_map_get(&m->r.fields, "partial_seq");
    const sn_value *pf = sn_map_get(&m->r.fields, "partial_off");
    for (size_t i = 0; !rc && i < vv.n && !more && !chunked; i++) {
        uint64_t theirs = 0;
        for (size_t j = 0; j < have->u.a.n; j++) {
            const sn_value *o = sn_map_get(&have->u.a.items[j], "origin");
            if (o->u.s.len == SN_ORIGIN_LEN && memcmp(o->u.s.p, vv.items[i].origin, SN_ORIGIN_LEN) == 0)
                theirs = (uint64_t)sn_map_get(&have->u.a.items[j], "seq")->u.i;
        }
        if (theirs > vv.items[i].seq) asker_ahead = 1;
        /* entries we sent this peer a moment ago are on their way: the
         * request crossed them (unless it names one as half-received) */
        uint64_t from = theirs, lately = sent_lately(y, p, vv.items[i].origin);
        int partial_here = po->type == SN_STR && po->u.s.len == SN_ORIGIN_LEN &&
                           memcmp(po->u.s.p, vv.items[i].origin, SN_ORIGIN_LEN) == 0;
        if (lately > from && !partial_here) from = lately;
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
                if (b.n) rc = send_entries(y, p, SN_MSG_SYNC_RESPONSE, &b, 0, e);
                builder_free(&b);
                builder_init(&b);
                size_t start = 0, next;
                if (po->type == SN_STR && po->u.s.len == SN_ORIGIN_LEN && ps->type == SN_INT &&
                    pf->type == SN_INT && (uint64_t)ps->u.i == seq &&
                    memcmp(po->u.s.p, vv.items[i].origin, SN_ORIGIN_LEN) == 0 &&
                    (uint64_t)pf->u.i < bytes.len)
                    start = (size_t)pf->u.i;
                int after = seq < vv.items[i].seq || i + 1 < vv.n;
                if (!rc) rc = send_chunks(y, p, SN_MSG_SYNC_RESPONSE, &en, bytes.data, bytes.len,
                                          start, budget, after, &next, e);
                if (!rc && next >= bytes.len) {
                    count_sent(y, &en);
                    note_sent(y, p, vv.items[i].origin, seq);
                }
                free(bytes.data);
                chunked = 1;
                break;
            }
            count_sent(y, &en);
            rc = builder_add(&b, &en, bytes.data, bytes.len, e);
            if (!rc) note_sent(y, p, vv.items[i].origin, seq);
        }
    }
    /* origins the asker knows and we do not: ask back (push-pull) */
    for (size_t j = 0; !rc && !asker_ahead && j < have->u.a.n; j++) {
        const sn_value *o = sn_map_get(&have->u.a.items[j], "origin");
        int known = 0;
        for (size_t i = 0; i < vv.n && !known; i++)
            known = o->u.s.len == SN_ORIGIN_LEN && memcmp(o->u.s.p, vv.items[i].origin, SN_ORIGIN_LEN) == 0;
        if (!known && sn_map_get(&have->u.a.items[j], "seq")->u.i > 0) asker_ahead = 1;
    }
    free(vv.items);
    if (!rc && !chunked) rc = send_entries(y, p, SN_MSG_SYNC_RESPONSE, &b, more, e);
    builder_free(&b);
    if (!rc && asker_ahead && y->now - p->last_request >= y->cfg.heartbeat_interval / 4 &&
        y->now - y->last_any_request >= 2 * y->cfg.heartbeat_interval)
        rc = send_request(y, p, e);
    return rc;
}

int sn_sync_decode_check(const void *data, size_t len, size_t max_bytes, sn_err *e)
{
    msg m;
    int rc = decode_msg(data, len, max_bytes, &m, e);
    if (!rc && m.r.type != SN_MSG_SYNC_REQUEST && m.r.type != SN_MSG_HEARTBEAT) {
        const sn_value *list = sn_map_get(&m.r.fields, "entries");
        size_t total = 0;
        for (size_t i = 0; !rc && i < list->u.a.n; i++) {
            sn_entry en;
            size_t elen, rtotal, roff;
            rc = parse_entry(&list->u.a.items[i], &en, &elen, &rtotal, &roff, e);
            if (!rc && elen > m.r.raw_len - total) rc = sn_fail(e, SN_ECORRUPT, "too long");
            if (!rc && rtotal && (roff > rtotal || elen > rtotal - roff))
                rc = sn_fail(e, SN_ECORRUPT, "chunk lies outside its record");
            else if (!rc && en.kind == SN_KIND_PUT && !rtotal)
                rc = sn_replica_check(&en, m.payload + total, elen, e);
            total += elen;
        }
    }
    msg_free(&m);
    return rc;
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
    if (rc == SN_ENOMEM) { msg_free(&m); *e = me; return rc; }
    if (rc) {
        msg_free(&m);
        y->st.rejected++;
        *e = me;
        return SN_OK;
    }
    sn_err pe;
    peer *p = add_peer(y, id, idlen, 0, &pe);
    if (!p) {
        msg_free(&m);
        y->st.rejected++;
        *e = pe;
        return SN_OK;
    }
    p->last_seen = y->now;
    int need_sync = 0, bad = 0;
    switch (m.r.type) {
    case SN_MSG_HEARTBEAT: {
        uint64_t mine;
        rc = sn_sync_digest(y->s, &mine, e);
        uint64_t theirs = (uint64_t)sn_map_get(&m.r.fields, "digest")->u.i;
        /* different digests: one of us lacks something; asking is cheap */
        /* one such request at a time, whoever sent the heartbeat: several
         * peers that all differ from us would otherwise each send us the
         * same entries (an unanswered request is given up after two
         * heartbeats) */
        if (!rc && theirs != mine && y->now - p->last_request >= y->cfg.heartbeat_interval / 2 &&
            y->now - y->last_any_request >= 2 * y->cfg.heartbeat_interval)
            need_sync = 1;
        break;
    }
    case SN_MSG_SYNC_REQUEST:
        rc = answer_request(y, p, &m, e);
        break;
    case SN_MSG_SYNC_RESPONSE:
        y->last_any_request = -1e300;   /* answered: a digest may ask again */
        rc = apply_entries(y, p, &m, &need_sync, &bad, e);
        if (!rc && sn_map_get(&m.r.fields, "more")->u.b) need_sync = 1;
        break;
    default:   /* the three update kinds */
        rc = apply_entries(y, p, &m, &need_sync, &bad, e);
        break;
    }
    msg_free(&m);
    if (bad) {
        y->st.rejected++;
        return SN_OK;
    }
    if (rc) return rc;
    *accepted = 1;
    if (need_sync) rc = send_request(y, p, e);
    return rc;
}
