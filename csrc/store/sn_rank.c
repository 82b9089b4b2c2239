/* A per-handle cache of what the history walks find (sn_history.c): a
 * layer's number of writes, one write's version number, its heads (a walk
 * too: every head a write replaced leaves a deleted key that RocksDB steps
 * over until a compaction drops it), and where trimming stopped. Version
 * numbers are ranks among every write the store knows (sn_history.h), so
 * finding one walks the layer's history; with the cache, reading the newest
 * version, a checkpoint's pins, a put's next number and trimming cost the
 * same for a layer with 10,000 versions as for one with 2.
 *
 * Valid because a layer's history changes only in batches (sn_hist_put,
 * sn_current_put, a head marker and a tombstone's delete of the current
 * marker note the layer in their batch, whose commit updates or drops its
 * slot) or in the few raw writes that rebuild histories (format upgrade,
 * salvage's reconcile, the test hook), which drop everything. A read in
 * between, from the store as it is before the commit, fills a slot the
 * commit then replaces. Nothing is written to disk: the cache cannot make
 * two stores differ. */
#include "store/sn_batch.h"
#include "store/sn_keys.h"
#include "store/sn_rank.h"

#include <stdlib.h>
#include <string.h>

#define RANK_SLOTS 4096u   /* direct-mapped: a collision costs a walk, not a wrong answer */
#define RANK_HEADS 4u      /* more concurrent heads than this are read from disk */

typedef struct rank_slot {
    uint32_t lklen;        /* 0: empty */
    int has_count, has_id, has_heads;
    uint64_t count;        /* the layer's history entries */
    sn_ident id;           /* a write (or the derived current merge) ... */
    uint64_t version;      /* ... and its version number */
    size_t nheads;
    sn_ident heads[RANK_HEADS];   /* ascending, as sn_heads_load gives them */
    int has_floor;
    sn_ident floor;        /* no write older than this one is held */
    uint64_t floor_rank;
    int settling;          /* sn_rank_commit: touched by the batch ... */
    unsigned char worst;   /* ... and the worst of its touches (TOUCH_*) */
    unsigned char lk[SN_LAYER_KEY_MAX];
} rank_slot;

/* Slots are allocated as layers are walked: a store with few layers (a
 * simulator node) costs 32 KiB of pointers and a few slots, not 4096. */
struct sn_ranks {
    rank_slot *slot[RANK_SLOTS];
};

/* The layers a batch changed the history of. A layer only this store's
 * own writes touched (puts and deletes, while b->rank_local) ends with
 * the batch's last write of it, which sn_pending holds: newest of all, so
 * its version number is the layer's new count, and the slot takes it at
 * commit. A peer's batch (writes applied, a merge made current, records
 * filled or trimmed) never removes a history entry, and adds only through
 * sn_hist_add, which notes each new write here: the count grows by the
 * writes added, a cached version stays while every added write sorts
 * after it, so a catch-up or a merge round does not walk the history
 * again (issue 17: that walk was most of a merge's cost at 10k versions).
 * A layer touched both ways, or by a local write that failed half-way,
 * drops its slot. */
#define HEADS_AFTER 8u   /* layers a foreign batch notes heads of; more are walked again */
#define ADDED_MAX 64u    /* new writes noted per layer; more drop the slot */
enum { TOUCH_LOCAL = 0, TOUCH_FOREIGN = 1, TOUCH_TAINT = 2 };

/* A layer's heads after a foreign batch's sn_hist_add. The head set on
 * disk changes only there (and in the raw rebuilds that clear the cache);
 * the heads it was given were loaded from the committed store, so after
 * its one call they are the layer's heads once the batch commits. A second
 * call in the batch (a merge made from the new heads) may have been given
 * heads loaded before the first: adds > 1 is not kept. */
typedef struct heads_after {
    unsigned char lk[SN_LAYER_KEY_MAX];
    uint32_t lklen;
    unsigned adds;
    size_t n;
    sn_ident heads[RANK_HEADS];
    size_t nadded;                /* distinct writes added (ADDED_MAX + 1: too many) */
    sn_ident added[ADDED_MAX];
    int has_floor;                /* sn_rank_floor_after */
    sn_ident floor;
    uint64_t floor_rank;
} heads_after;

struct sn_rank_touched {
    size_t n, cap;
    unsigned char (*lk)[SN_LAYER_KEY_MAX];
    uint32_t *lklen;
    unsigned char *foreign;
    size_t nafter;
    int after_overflow;   /* more layers than HEADS_AFTER: none is kept */
    heads_after after[HEADS_AFTER];
};

static uint32_t lk_hash(const unsigned char *lk, size_t lklen)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < lklen; i++) h = (h ^ lk[i]) * 16777619u;
    return h % RANK_SLOTS;
}

static rank_slot *find(sn_store *s, const unsigned char *lk, size_t lklen)
{
    if (!s->ranks || lklen > SN_LAYER_KEY_MAX) return NULL;
    rank_slot *r = s->ranks->slot[lk_hash(lk, lklen)];
    return r && r->lklen == lklen && memcmp(r->lk, lk, lklen) == 0 ? r : NULL;
}

int sn_rank_count(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t *count)
{
    rank_slot *r = find(s, lk, lklen);
    if (!r || !r->has_count) return 0;
    *count = r->count;
    return 1;
}

int sn_rank_floor(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *id,
                  uint64_t *rank)
{
    rank_slot *r = find(s, lk, lklen);
    if (!r || !r->has_floor) return 0;
    *id = r->floor;
    *rank = r->floor_rank;
    return 1;
}

int sn_rank_heads(sn_store *s, const unsigned char *lk, size_t lklen, sn_ident *heads, size_t *n)
{
    rank_slot *r = find(s, lk, lklen);
    if (!r || !r->has_heads) return 0;
    memcpy(heads, r->heads, r->nheads * sizeof *heads);
    *n = r->nheads;
    return 1;
}

int sn_rank_version(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *id,
                    uint64_t *version)
{
    rank_slot *r = find(s, lk, lklen);
    if (!r || !r->has_id || !sn_same_ident(&r->id, id)) return 0;
    *version = r->version;
    return 1;
}

/* The slot of lk, emptied when it held another layer; NULL without memory. */
static rank_slot *slot_for(sn_store *s, const unsigned char *lk, size_t lklen)
{
    if (lklen > SN_LAYER_KEY_MAX || lklen == 0) return NULL;
    if (!s->ranks && !(s->ranks = calloc(1, sizeof *s->ranks))) return NULL;   /* no cache: walks */
    rank_slot **at = &s->ranks->slot[lk_hash(lk, lklen)];
    if (!*at && !(*at = calloc(1, sizeof **at))) return NULL;
    rank_slot *r = *at;
    if (!(r->lklen == lklen && memcmp(r->lk, lk, lklen) == 0)) {
        memset(r, 0, sizeof *r);
        memcpy(r->lk, lk, lklen);
        r->lklen = (uint32_t)lklen;
    }
    return r;
}

void sn_rank_note(sn_store *s, const unsigned char *lk, size_t lklen, uint64_t count,
                  const sn_ident *id, uint64_t version)
{
    rank_slot *r = slot_for(s, lk, lklen);
    if (!r) return;
    r->has_count = 1;
    r->count = count;
    if (id) {
        r->has_id = 1;
        r->id = *id;
        r->version = version;
    }
}

void sn_rank_note_heads(sn_store *s, const unsigned char *lk, size_t lklen, const sn_ident *heads,
                        size_t n)
{
    rank_slot *r = n <= RANK_HEADS ? slot_for(s, lk, lklen) : NULL;
    if (!r) return;
    r->has_heads = 1;
    r->nheads = n;
    memcpy(r->heads, heads, n * sizeof *heads);
}

static void touch(sn_batch *b, const unsigned char *lk, size_t lklen, int foreign)
{
    struct sn_rank_touched *t = b->touched;
    if (lklen > SN_LAYER_KEY_MAX) return;
    if (t && t->n && t->lklen[t->n - 1] == lklen && memcmp(t->lk[t->n - 1], lk, lklen) == 0) {
        if (foreign > t->foreign[t->n - 1]) t->foreign[t->n - 1] = (unsigned char)foreign;   /* a put touches its layer in a row */
        return;
    }
    if (!t && !(t = b->touched = calloc(1, sizeof *t))) {
        sn_rank_clear(b->s);   /* cannot note it: forget everything instead */
        return;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        void *l = realloc(t->lk, cap * sizeof *t->lk);
        if (l) t->lk = l;
        void *n = l ? realloc(t->lklen, cap * sizeof *t->lklen) : NULL;
        if (n) t->lklen = n;
        void *f = n ? realloc(t->foreign, cap) : NULL;
        if (f) t->foreign = f;
        if (!l || !n || !f) { sn_rank_clear(b->s); return; }
        t->cap = cap;
    }
    memcpy(t->lk[t->n], lk, lklen);
    t->lklen[t->n] = (uint32_t)lklen;
    t->foreign[t->n++] = (unsigned char)foreign;
}

void sn_rank_touch(sn_batch *b, const unsigned char *lk, size_t lklen)
{
    touch(b, lk, lklen, b->rank_local == 0 ? TOUCH_FOREIGN : TOUCH_LOCAL);
}

void sn_rank_taint(sn_batch *b, const unsigned char *lk, size_t lklen)
{
    touch(b, lk, lklen, TOUCH_TAINT);
}

void sn_rank_heads_after(sn_batch *b, const unsigned char *lk, size_t lklen,
                         const sn_ident *heads, size_t n, const sn_ident *added)
{
    struct sn_rank_touched *t = b->touched;
    if (b->rank_local || !t || lklen > SN_LAYER_KEY_MAX || t->after_overflow) return;
    heads_after *h = NULL;
    for (size_t i = 0; !h && i < t->nafter; i++)
        if (t->after[i].lklen == lklen && memcmp(t->after[i].lk, lk, lklen) == 0) h = &t->after[i];
    if (!h && t->nafter == HEADS_AFTER) { t->after_overflow = 1; return; }
    if (!h) {
        h = &t->after[t->nafter++];
        memcpy(h->lk, lk, lklen);
        h->lklen = (uint32_t)lklen;
        h->adds = 0;
        h->nadded = 0;
        h->has_floor = 0;
    }
    h->adds++;
    h->n = n;
    if (n <= RANK_HEADS) memcpy(h->heads, heads, n * sizeof *heads);
    int dup = 0;
    for (size_t i = 0; !dup && i < h->nadded && h->nadded <= ADDED_MAX; i++)
        dup = sn_same_ident(&h->added[i], added);
    if (!dup && h->nadded < ADDED_MAX) h->added[h->nadded] = *added;
    if (!dup && h->nadded <= ADDED_MAX) h->nadded++;
}

static heads_after *after_of(struct sn_rank_touched *t, const unsigned char *lk, size_t lklen)
{
    for (size_t i = 0; i < t->nafter; i++)
        if (t->after[i].lklen == lklen && memcmp(t->after[i].lk, lk, lklen) == 0) return &t->after[i];
    return NULL;
}

void sn_rank_floor_after(sn_batch *b, const unsigned char *lk, size_t lklen, const sn_ident *floor,
                         uint64_t rank)
{
    struct sn_rank_touched *t = b->touched;
    if (!t) return;
    heads_after *h = after_of(t, lk, lklen);
    if (!h) return;   /* not noted: the next walk starts where the last did */
    h->has_floor = 1;
    h->floor = *floor;
    h->floor_rank = rank;
}

/* A peer's batch touched r's layer (a: the writes it added, or NULL):
 * keep what stays true, 0 when the slot must go. */
static int foreign_keeps(rank_slot *r, const heads_after *a)
{
    /* the floor (no write older is held) stays while every write added
     * sorts after it, so its number holds; a batch that adds none (a merge
     * made current, a layer settled) keeps it, and a record filled in
     * taints the slot instead (sn_replica_weights.c) */
    int after_all = !a || a->nadded <= ADDED_MAX;
    for (size_t i = 0; a && after_all && i < a->nadded; i++)
        after_all = (!r->has_floor || sn_ident_cmp(&a->added[i], &r->floor) > 0) &&
                    (!a->has_floor || sn_ident_cmp(&a->added[i], &a->floor) > 0);
    r->has_floor = after_all && r->has_floor;
    if (after_all && a && a->has_floor) {
        r->has_floor = 1;
        r->floor = a->floor;
        r->floor_rank = a->floor_rank;
    }
    if (!a) return 1;   /* no write added: count, versions and heads stand */
    if (a->nadded > ADDED_MAX) return 0;
    if (r->has_id) {
        /* a derived merge's number is one past the last write: it moves */
        int keep = r->has_count && r->version <= r->count;
        for (size_t i = 0; keep && i < a->nadded; i++) keep = sn_ident_cmp(&a->added[i], &r->id) > 0;
        r->has_id = keep;
    }
    r->count += a->nadded;
    r->has_heads = 0;   /* noted again below when the batch's one add left them */
    return 1;
}

void sn_rank_commit(sn_batch *b, int ok)
{
    struct sn_rank_touched *t = b->touched;
    if (!t) return;
    /* the batch's own last writes first; then every other touch updates or
     * drops its slot, so a layer touched both ways ends dropped */
    for (size_t i = 0; ok && i < t->n; i++) {
        sn_pending *p = t->foreign[i] ? NULL : sn_pending_find(b, t->lk[i], t->lklen[i]);
        if (!p) continue;
        /* a local write supersedes every head it saw: the one head after it */
        sn_rank_note(b->s, t->lk[i], t->lklen[i], p->version, &p->id, p->version);
        sn_rank_note_heads(b->s, t->lk[i], t->lklen[i], &p->id, 1);
        rank_slot *r = p->has_floor ? find(b->s, t->lk[i], t->lklen[i]) : NULL;
        if (r) {   /* local writes hold nothing older again: the floor stays good */
            r->has_floor = 1;
            r->floor = p->floor;
            r->floor_rank = p->floor_rank;
        }
    }
    /* every other touch updates or drops its slot; a layer may be noted
     * more than once (touches not in a row), so the slots first gather
     * the worst touch each had, then each is settled once */
    for (size_t i = 0; i < t->n; i++) {
        rank_slot *r = find(b->s, t->lk[i], t->lklen[i]);
        if (!r) continue;
        int pending = sn_pending_find(b, t->lk[i], t->lklen[i]) != NULL;
        unsigned char kind = t->foreign[i];
        if (!ok || (kind == TOUCH_LOCAL && !pending) || (kind == TOUCH_FOREIGN && pending))
            kind = TOUCH_TAINT;   /* failed, or touched both ways */
        if (!r->settling || kind > r->worst) r->worst = kind;
        r->settling = 1;
    }
    for (size_t i = 0; i < t->n; i++) {
        rank_slot *r = find(b->s, t->lk[i], t->lklen[i]);
        if (!r || !r->settling) continue;
        r->settling = 0;
        if (r->worst == TOUCH_LOCAL) continue;   /* noted above */
        int keep = r->worst == TOUCH_FOREIGN && !t->after_overflow &&
                   foreign_keeps(r, after_of(t, t->lk[i], t->lklen[i]));
        if (!keep) r->lklen = 0;
    }
    for (size_t i = 0; ok && !t->after_overflow && i < t->nafter; i++) {
        heads_after *h = &t->after[i];
        if (h->adds == 1) sn_rank_note_heads(b->s, h->lk, h->lklen, h->heads, h->n);
    }
    t->n = 0;
    t->nafter = 0;
    t->after_overflow = 0;
}

void sn_rank_batch_free(sn_batch *b)
{
    struct sn_rank_touched *t = b->touched;
    if (!t) return;
    free(t->lk);
    free(t->lklen);
    free(t->foreign);
    free(t);
    b->touched = NULL;
}

void sn_rank_clear(sn_store *s)
{
    if (!s->ranks) return;
    for (size_t i = 0; i < RANK_SLOTS; i++) free(s->ranks->slot[i]);
    free(s->ranks);
    s->ranks = NULL;
}
