/* Reassembly of records that arrive in chunks: one chunk set per record
 * and peer, bounded in count and bytes per peer, checked for consistency
 * chunk by chunk. */
#include "sync/sn_sync_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- reassembly of chunked records ------------------------------------------------ */

static void partial_free(partial *q)
{
    free(q->peer);
    free(q->buf);
    free(q->spans);
    free(q);
}

void sn_partials_free(sn_sync *y)
{
    while (y->parts) {
        partial *n = y->parts->next;
        partial_free(y->parts);
        y->parts = n;
    }
}

size_t sn_partial_prefix(const partial *q)
{
    return q->nspans && q->spans[0].off == 0 ? q->spans[0].end : 0;
}

void sn_partial_drop(sn_sync *y, partial *q)
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

void sn_partials_expire(sn_sync *y)
{
    for (partial *q = y->parts, *n; q; q = n) {
        n = q->next;
        if (y->now - q->touched > y->cfg.chunk_timeout) {
            y->st.chunk_sets_dropped++;
            sn_partial_drop(y, q);
        }
    }
}

static int same_entry(const sn_entry *a, const sn_entry *b)
{
    return a->kind == b->kind && a->cf == b->cf && a->klen == b->klen &&
           memcmp(a->key, b->key, a->klen) == 0 && a->hlc == b->hlc &&
           a->prev.hlc == b->prev.hlc && strcmp(a->prev.origin, b->prev.origin) == 0;
}

/* A new chunk set for en from p, when it fits under p's caps: SN_NOTFOUND
 * when it does not. */
static int new_partial(sn_sync *y, const peer *p, const sn_entry *en, size_t total, partial **out,
                       sn_err *e)
{
    size_t inflight = 0, sets = 0;
    for (partial *r = y->parts; r; r = r->next)
        if (r->plen == p->len && memcmp(r->peer, p->id, p->len) == 0) {
            inflight += r->total;
            sets++;
        }
    if (sets >= MAX_SETS_PER_PEER || total > y->cfg.max_reassembly_bytes ||
        inflight > y->cfg.max_reassembly_bytes - total)
        return SN_NOTFOUND;
    partial *q = calloc(1, sizeof *q);
    if (q) q->peer = malloc(p->len + 1);
    if (q && q->peer) q->buf = malloc(total);
    if (!q || !q->buf) {
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
    *out = q;
    return SN_OK;
}

/* Record [off, end) as received: the spans stay sorted and disjoint. */
static int add_span(partial *q, size_t off, size_t end, sn_err *e)
{
    size_t at = 0;
    while (at < q->nspans && q->spans[at].off < off) at++;
    if (SN_GROW(q->spans, q->nspans, q->cap, 8, e)) return e->code;
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
    return SN_OK;
}

/* Add one chunk; *out is its set, whole when have == total. SN_ECORRUPT
 * (with the set dropped) when the chunk disagrees with the set;
 * SN_NOTFOUND when the set does not fit under the peer's cap (dropped, not
 * an error). */
int sn_chunk_add(sn_sync *y, const peer *p, const sn_entry *en, size_t total, size_t off,
                 const unsigned char *bytes, size_t len, partial **out, sn_err *e)
{
    *out = NULL;
    if (en->kind != SN_KIND_PUT || len == 0 || off > total || len > total - off ||
        total > SN_MAX_RECORD)
        return sn_fail(e, SN_ECORRUPT, "chunk lies outside its record");
    partial *q = find_partial(y, p->id, p->len, en->origin, en->seq);
    if (q && (q->total != total || !same_entry(&q->en, en))) {
        sn_partial_drop(y, q);
        return sn_fail(e, SN_ECORRUPT, "chunk disagrees with its chunk set");
    }
    if (!q) {
        int rc = new_partial(y, p, en, total, &q, e);
        if (rc) return rc;
    }
    /* bytes seen before must be the same bytes */
    size_t end = off + len;
    for (size_t i = 0; i < q->nspans; i++) {
        size_t a = q->spans[i].off > off ? q->spans[i].off : off;
        size_t b = q->spans[i].end < end ? q->spans[i].end : end;
        if (a < b && memcmp(q->buf + a, bytes + (a - off), b - a) != 0) {
            sn_partial_drop(y, q);
            return sn_fail(e, SN_ECORRUPT, "chunk overlaps its set with different bytes");
        }
    }
    memcpy(q->buf + off, bytes, len);
    q->touched = y->now;
    int rc = add_span(q, off, end, e);
    if (rc) return rc;
    if (q->nspans > MAX_SPANS) {
        sn_partial_drop(y, q);
        return sn_fail(e, SN_ECORRUPT, "chunk set is too fragmented");
    }
    *out = q;
    return SN_OK;
}
