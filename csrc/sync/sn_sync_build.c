/* The outbox, and building the messages that go into it: entries with
 * their records' bytes, or one chunk of a large record per message. */
#include "sync/sn_sync_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- the outbox ---------------------------------------------------------------- */

int sn_outbox_add(sn_sync *y, const peer *p, sn_buf *msg, sn_err *e)
{
    out_msg *m = calloc(1, sizeof *m);
    if (m) m->to = malloc(p->len + 1);
    if (!m || !m->to) {
        free(m);
        free(msg->data);
        return sn_fail(e, SN_ENOMEM, "out of memory");
    }
    memcpy(m->to, p->id, p->len);
    m->to[p->len] = 0;
    m->bytes = msg->data;
    m->len = msg->len;
    if (y->tail) y->tail->next = m;
    else y->head = m;
    y->tail = m;
    y->nout++;
    y->st.messages_sent++;
    y->st.bytes_sent += msg->len;
    peer *q = sn_peer_find(y, p->id, p->len);   /* p is const to its callers */
    if (q) q->bytes_sent += msg->len;
    if (q) q->queued += msg->len;
    return SN_OK;
}

/* max_send_bytes_per_second: a token bucket per peer, refilled at the rate
 * and holding at most one second of it. A message goes when the bucket is
 * not empty and takes its size out (it may go below zero: a message larger
 * than a second's worth still goes, and the next waits longer), so the
 * long-run rate is the limit whatever the message sizes. Heartbeats and
 * requests are never held back (they are what keeps the peer alive and
 * asking), but count. */
static int may_send(sn_sync *y, const out_msg *m)
{
    double rate = y->cfg.max_send_rate;
    if (!(rate > 0)) return 1;
    peer *p = sn_peer_find(y, m->to, strlen(m->to));
    if (!p) return 1;
    if (p->refilled < 0) p->tokens = rate;
    else p->tokens += rate * (y->now - p->refilled);
    if (p->tokens > rate) p->tokens = rate;
    p->refilled = y->now;
    if (p->tokens <= 0 && m->kind != SN_MSG_HEARTBEAT && m->kind != SN_MSG_SYNC_REQUEST) return 0;
    p->tokens -= (double)m->len;
    return 1;
}

/* Take m, which follows prev (NULL: the head), off the outbox. */
static void unlink_out(sn_sync *y, out_msg *prev, out_msg *m)
{
    if (prev) prev->next = m->next;
    else y->head = m->next;
    if (y->tail == m) y->tail = prev;
    y->nout--;
    peer *p = sn_peer_find(y, m->to, strlen(m->to));
    if (p) p->queued -= p->queued < m->len ? p->queued : m->len;
}

int sn_sync_next_out(sn_sync *y, char **to, unsigned char **bytes, size_t *len)
{
    /* the oldest message its peer's rate lets go now: a held peer's data
     * keeps its order (its bucket stays empty for the rest of the scan),
     * and neither it nor the heartbeats that pass it hold back others */
    out_msg *prev = NULL, *m = y->head;
    for (; m && !may_send(y, m); prev = m, m = m->next) {}
    if (!m) return 0;
    unlink_out(y, prev, m);
    *to = m->to;
    *bytes = m->bytes;
    *len = m->len;
    y->handed_kind = m->kind;
    free(m);
    return 1;
}

size_t sn_sync_outbox_len(const sn_sync *y) { return y->nout; }

void sn_outbox_clear(sn_sync *y)
{
    while (y->head) {
        out_msg *m = y->head;
        unlink_out(y, NULL, m);
        free(m->to);
        free(m->bytes);
        free(m);
    }
}

/* ---- building messages -------------------------------------------------------------- */

void sn_builder_init(builder *b)
{
    memset(b, 0, sizeof *b);
    sn_arena_init(&b->a);
}

void sn_builder_free(builder *b)
{
    for (size_t i = 0; i < b->nparts; i++) free(b->owned[i]);
    free(b->parts);
    free(b->owned);
    free(b->entries);
    sn_arena_free(&b->a);
}

/* Room for one more entry: the three arrays grow together. */
static int builder_reserve(builder *b, sn_err *e)
{
    if (b->n < b->cap) return SN_OK;
    size_t cap = sn_next_cap(b->cap, 16);
    if (SN_RESIZE(b->entries, cap, e) || SN_RESIZE(b->parts, cap, e) || SN_RESIZE(b->owned, cap, e))
        return e->code;
    b->cap = cap;
    return SN_OK;
}

/* Takes ownership of bytes. total > 0: bytes are the piece at off of a
 * record of total bytes (a chunk). */
static int builder_add_piece(builder *b, const sn_entry *en, unsigned char *bytes, size_t len,
                             size_t total, size_t off, sn_err *e)
{
    if (builder_reserve(b, e)) { free(bytes); return e->code; }
    sn_value m;
    sn_entry_wire w = { len, total, off };
    int rc = sn_entry_map(en, &w, &b->a, &m, e);
    if (rc) { free(bytes); return rc; }
    b->entries[b->n++] = m;
    b->parts[b->nparts].p = bytes;
    b->parts[b->nparts].len = len;
    b->owned[b->nparts++] = bytes;
    b->bytes += len + ENTRY_OVERHEAD;
    return SN_OK;
}

int sn_builder_add(builder *b, const sn_entry *en, unsigned char *bytes, size_t len, sn_err *e)
{
    return builder_add_piece(b, en, bytes, len, 0, 0, e);
}

int sn_msg_header(sn_sync *y, sn_value *map, sn_err *e)
{
    (void)e;
    sn_map_set(map, "proto", sn_int(SN_PROTO_VERSION));
    sn_map_set(map, "from", sn_cstr(y->cfg.node_id));
    return SN_OK;
}

void sn_count_sent(sn_sync *y, const sn_entry *en)
{
    if (en->kind != SN_KIND_PUT) return;
    if (en->cf == SN_ENTRY_CF_WEIGHTS) y->st.weights_sent++;
    else if (en->cf == SN_ENTRY_CF_CONFIG) y->st.configs_sent++;
    else if (en->cf == SN_ENTRY_CF_CHECKPOINTS) y->st.checkpoints_sent++;
    else if (en->cf == SN_ENTRY_CF_STATE) y->st.states_sent++;
    else if (en->cf == SN_ENTRY_CF_METRICS) y->st.metrics_sent++;
}

int sn_send_entries(sn_sync *y, const peer *p, unsigned type, builder *b, int more, sn_err *e)
{
    sn_value map, list = sn_nil();
    int rc = sn_record_map(sn_schema_for(type), &b->a, &map, e);
    if (rc) return rc;
    sn_msg_header(y, &map, e);
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
    if (!rc) rc = sn_outbox_add(y, p, &out, e);
    return rc;
}

/* The record's bytes from `from` on, one chunk per message of `type`, at
 * most `budget` bytes of chunks; the last message says `more` when the
 * record is not finished or `more_after`. Returns the next offset. */
int sn_send_chunks(sn_sync *y, const peer *p, unsigned type, const sn_entry *en,
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
        sn_builder_init(&b);
        if (!copy) rc = sn_fail(e, SN_ENOMEM, "out of memory");
        else {
            memcpy(copy, bytes + off, n);
            rc = builder_add_piece(&b, en, copy, n, len, off, e);
        }
        if (!rc) rc = sn_send_entries(y, p, type, &b, last && (off + n < len || more_after), e);
        sn_builder_free(&b);
        if (rc) break;
        y->st.chunks_sent++;
        off += n;
        sent += n;
        if (last) break;
    }
    *next = off;
    return rc;
}
