/* The deepest-first history walk behind sn_ancestry.h. Hand-written: the
 * walk reads our history entries (sn_history.c) one by one, with a paint
 * per write, which no library offers; the queue is a binary heap and the
 * visited set an open-addressing table, both plain arrays. */
#include "store/sn_ancestry.h"

#include <stdlib.h>
#include <string.h>

/* Paint: bits 0..SN_MAX_PARENTS-1 say which start reaches a write; the
 * rest are the queries' own marks. STALE: nothing below matters (the walk
 * ends when only stale writes are queued). */
#define P_STALE (1ull << 63)
#define P_SELF (1ull << 62)      /* bases: the write "last" itself */
#define P_LAST (1ull << 61)      /* bases: a strict ancestor of "last" */

typedef struct wnode {
    sn_anc_write w;
    uint64_t paint;
    size_t pfirst;               /* its parents: pool[pfirst .. pfirst + w.nparents) */
    int queued, taken;
} wnode;

typedef struct walk {
    sn_store *s;
    const unsigned char *lk;
    size_t lklen;
    const sn_hist *fresh;
    wnode *node;
    size_t n, cap;
    sn_ident *pool;
    size_t npool, poolcap;
    uint32_t *table;             /* node index + 1; 0: empty */
    size_t tcap;
    size_t *heap, nheap, heapcap;
    size_t live;                 /* queued writes not stale */
    sn_anc_status st;
} walk;

static void walk_free(walk *w)
{
    free(w->node);
    free(w->pool);
    free(w->table);
    free(w->heap);
}

static uint64_t ident_hash(const sn_ident *id)
{
    uint64_t h = 14695981039346656037ull ^ id->hlc;
    for (const char *c = id->origin; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int table_grow(walk *w, sn_err *e)
{
    size_t cap = w->tcap ? w->tcap * 2 : 256;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t) return sn_fail(e, SN_ENOMEM, "out of memory");
    for (size_t i = 0; i < w->n; i++) {
        size_t at = ident_hash(&w->node[i].w.id) & (cap - 1);
        while (t[at]) at = (at + 1) & (cap - 1);
        t[at] = (uint32_t)i + 1;
    }
    free(w->table);
    w->table = t;
    w->tcap = cap;
    return SN_OK;
}

/* The node of id, or SIZE_MAX. */
static size_t node_find(const walk *w, const sn_ident *id)
{
    if (!w->tcap) return SIZE_MAX;
    for (size_t at = ident_hash(id) & (w->tcap - 1); w->table[at]; at = (at + 1) & (w->tcap - 1))
        if (sn_same_ident(&w->node[w->table[at] - 1].w.id, id)) return w->table[at] - 1;
    return SIZE_MAX;
}

/* a before b in the walk: deeper first, then the lower identity */
static int before(const walk *w, size_t a, size_t b)
{
    const sn_anc_write *x = &w->node[a].w, *y = &w->node[b].w;
    if (x->depth != y->depth) return x->depth > y->depth;
    return sn_ident_cmp(&x->id, &y->id) < 0;
}

static int heap_push(walk *w, size_t i, sn_err *e)
{
    if (SN_GROW(w->heap, w->nheap, w->heapcap, 64, e)) return e->code;
    size_t at = w->nheap++;
    while (at && before(w, i, w->heap[(at - 1) / 2])) {
        w->heap[at] = w->heap[(at - 1) / 2];
        at = (at - 1) / 2;
    }
    w->heap[at] = i;
    w->node[i].queued = 1;
    if (!(w->node[i].paint & P_STALE)) w->live++;
    return SN_OK;
}

static size_t heap_pop(walk *w)
{
    size_t top = w->heap[0], last = w->heap[--w->nheap], at = 0;
    for (;;) {
        size_t c = 2 * at + 1;
        if (c >= w->nheap) break;
        if (c + 1 < w->nheap && before(w, w->heap[c + 1], w->heap[c])) c++;
        if (!before(w, w->heap[c], last)) break;
        w->heap[at] = w->heap[c];
        at = c;
    }
    if (w->nheap) w->heap[at] = last;
    w->node[top].queued = 0;
    w->node[top].taken = 1;
    if (!(w->node[top].paint & P_STALE)) w->live--;
    return top;
}

/* The node of id, its history entry read when new; SIZE_MAX with w->st
 * set (or an error in *rc) when it cannot be. */
static size_t node_get(walk *w, const sn_ident *id, int *rc, sn_err *e)
{
    size_t i = node_find(w, id);
    if (i != SIZE_MAX) return i;
    if (w->n >= SN_ANC_MAX_WRITES) { w->st = SN_ANC_TOO_LONG; return SIZE_MAX; }
    sn_hist h;
    *rc = sn_hist_get_or(w->s, w->lk, w->lklen, id, w->fresh, &h, e);
    if (*rc == SN_NOTFOUND) { *rc = SN_OK; w->st = SN_ANC_UNKNOWN; return SIZE_MAX; }
    if (*rc) return SIZE_MAX;
    if (2 * (w->n + 1) > w->tcap) *rc = table_grow(w, e);
    if (!*rc && SN_GROW(w->node, w->n, w->cap, 64, e)) *rc = e->code;
    /* one doubling makes room: the pool starts at 256 >= SN_MAX_PARENTS */
    if (!*rc && h.nparents && SN_GROW(w->pool, w->npool + h.nparents - 1, w->poolcap, 256, e))
        *rc = e->code;
    if (*rc) return SIZE_MAX;
    i = w->n++;
    wnode *x = &w->node[i];
    memset(x, 0, sizeof *x);
    x->w.id = *id;
    x->w.flags = h.flags;
    x->w.depth = h.depth;
    x->w.nparents = h.nparents;
    if (h.nparents) x->w.parent = h.parents[0];
    x->pfirst = w->npool;
    if (h.nparents) {   /* the pool is still NULL before the first parent */
        memcpy(&w->pool[w->npool], h.parents, h.nparents * sizeof *h.parents);
        w->npool += h.nparents;
    }
    size_t at = ident_hash(id) & (w->tcap - 1);
    while (w->table[at]) at = (at + 1) & (w->tcap - 1);
    w->table[at] = (uint32_t)i + 1;
    return i;
}

/* Paint write id (added and queued when new). */
static int paint(walk *w, const sn_ident *id, uint64_t p, uint32_t below, sn_err *e)
{
    int rc = SN_OK;
    size_t i = node_get(w, id, &rc, e);
    if (i == SIZE_MAX) return rc;
    wnode *x = &w->node[i];
    /* a parent as deep as its child breaks the walk's order: give up
     * (the same on every node, which stores the writer's depths) */
    if (below && x->w.depth >= below) { w->st = SN_ANC_TOO_LONG; return SN_OK; }
    if (x->queued && !(x->paint & P_STALE) && (p & P_STALE)) w->live--;
    x->paint |= p;
    return x->queued || x->taken ? SN_OK : heap_push(w, i, e);
}

static int walk_start(walk *w, sn_store *s, const unsigned char *lk, size_t lklen,
                      const sn_hist *fresh)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->lk = lk;
    w->lklen = lklen;
    w->fresh = fresh;
    return SN_OK;
}

/* Paint x's parents with p. */
static int paint_parents(walk *w, size_t i, uint64_t p, sn_err *e)
{
    int rc = SN_OK;
    for (size_t k = 0; !rc && w->st == SN_ANC_DONE && k < w->node[i].w.nparents; k++) {
        sn_ident parent = w->pool[w->node[i].pfirst + k];
        rc = paint(w, &parent, p, w->node[i].w.depth, e);
    }
    return rc;
}

int sn_anc_deepest_common(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                          size_t n, const sn_hist *fresh, sn_anc_write *out, sn_anc_status *st,
                          sn_err *e)
{
    walk w;
    walk_start(&w, s, lk, lklen, fresh);
    uint64_t all = (1ull << n) - 1;   /* n <= SN_MAX_PARENTS < 61 */
    int found = 0, rc = n > SN_MAX_PARENTS ? sn_fail(e, SN_EARG, "too many writes to merge") : SN_OK;
    for (size_t k = 0; !rc && w.st == SN_ANC_DONE && k < n; k++) rc = paint(&w, &ids[k], 1ull << k, 0, e);
    while (!rc && !found && w.st == SN_ANC_DONE && w.nheap) {
        size_t i = heap_pop(&w);
        /* the first write every start reaches is the deepest (lowest
         * identity among equals); a start is never a strict ancestor */
        int start = 0;
        for (size_t k = 0; k < n; k++) start |= sn_same_ident(&w.node[i].w.id, &ids[k]);
        if (!start && (w.node[i].paint & all) == all) {
            *out = w.node[i].w;
            found = 1;
        } else {
            rc = paint_parents(&w, i, w.node[i].paint, e);
        }
    }
    if (!rc && !found && w.st == SN_ANC_DONE) w.st = SN_ANC_NONE;
    *st = w.st;
    walk_free(&w);
    return rc;
}

static int by_ident(const void *a, const void *b)
{
    return sn_ident_cmp(&((const sn_anc_write *)a)->id, &((const sn_anc_write *)b)->id);
}

int sn_anc_unseen(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids,
                  size_t n, const sn_ident *base, const sn_hist *fresh, sn_anc_write **out,
                  size_t *nout, sn_anc_status *st, sn_err *e)
{
    walk w;
    walk_start(&w, s, lk, lklen, fresh);
    sn_anc_write *res = NULL;
    size_t nres = 0, cap = 0;
    int rc = paint(&w, base, P_STALE, 0, e);
    for (size_t k = 0; !rc && w.st == SN_ANC_DONE && k < n; k++) rc = paint(&w, &ids[k], 1, 0, e);
    while (!rc && w.st == SN_ANC_DONE && w.live) {
        size_t i = heap_pop(&w);
        if (!(w.node[i].paint & P_STALE) && !SN_GROW(res, nres, cap, 64, e)) res[nres++] = w.node[i].w;
        else if (!(w.node[i].paint & P_STALE)) rc = e->code;
        if (!rc) rc = paint_parents(&w, i, w.node[i].paint, e);
    }
    if (!rc && w.st == SN_ANC_DONE && nres > 1) qsort(res, nres, sizeof *res, by_ident);
    if (rc || w.st != SN_ANC_DONE) { free(res); res = NULL; nres = 0; }
    *out = res;
    *nout = nres;
    *st = w.st;
    walk_free(&w);
    return rc;
}

static int ident_order(const void *a, const void *b)
{
    return sn_ident_cmp(a, b);
}

int sn_anc_bases(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *ids, size_t n,
                 const sn_ident *last, const sn_hist *fresh, sn_ident **out, size_t *nout,
                 sn_anc_status *st, sn_err *e)
{
    walk w;
    walk_start(&w, s, lk, lklen, fresh);
    sn_ident *res = NULL;
    size_t nres = 0, cap = 0;
    int rc = paint(&w, last, P_SELF, 0, e);
    for (size_t k = 0; !rc && w.st == SN_ANC_DONE && k < n; k++) rc = paint(&w, &ids[k], 1, 0, e);
    while (!rc && w.st == SN_ANC_DONE && w.live) {
        size_t i = heap_pop(&w);
        uint64_t p = w.node[i].paint, down = p & (P_STALE | 1);
        if (p & (P_SELF | P_LAST)) down |= P_LAST;
        if ((p & 1) && (p & P_LAST) && !(p & P_STALE)) {
            if (SN_GROW(res, nres, cap, 8, e)) { rc = e->code; break; }
            res[nres++] = w.node[i].w.id;
            down |= P_STALE;
        }
        rc = paint_parents(&w, i, down, e);
    }
    if (!rc && w.st == SN_ANC_DONE && nres > 1) qsort(res, nres, sizeof *res, ident_order);
    if (rc || w.st != SN_ANC_DONE) { free(res); res = NULL; nres = 0; }
    *out = res;
    *nout = nres;
    *st = w.st;
    walk_free(&w);
    return rc;
}
