/* A walk over one column family that goes on past damage (verify and
 * salvage). RocksDB's iterator stops for good at the first block or blob
 * it cannot read, and says nothing of where that was. Here, after a failed
 * step, the walk looks for the first position past the damage: a seek to P
 * fails exactly while the block (or blob) holding the first key >= P is
 * unreadable, so the bounds after the last good key are widened until a
 * seek succeeds, then bisected back down to the edge of the damage. What
 * lies between is lost; everything after it is read as usual. */
#include "store/sn_keys.h"
#include "store/sn_rocks.h"
#include "store/sn_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BISECT_STEPS 160   /* narrows the skipped stretch to ~20 bytes of key precision */
#define KEY_CAP (SN_REPL_KEY_MAX + 64)

typedef struct pos { unsigned char k[KEY_CAP]; size_t n; } pos;

typedef struct cf_reader {
    sn_store *s;
    rocksdb_readoptions_t *ro;
    int cf;
} cf_reader;

/* Seek to p with a fresh iterator: 0 when it can read there (or is past
 * the end). A fresh one each time, because an iterator that has touched a
 * bad block may read it again on a later seek (its readahead and block
 * position outlive the seek), so its answer would depend on its history. */
static int seek_fails(const cf_reader *r, const pos *p)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->s->db, r->ro, r->s->cf[r->cf]);
    rocksdb_iter_seek(it, (const char *)p->k, p->n);
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (!err) return 0;
    rocksdb_free(err);
    return 1;
}

/* The midpoint of two keys a < b read as base-256 fractions. */
static void midpoint(const pos *a, const pos *b, pos *m)
{
    size_t n = (a->n > b->n ? a->n : b->n) + 1;
    if (n > KEY_CAP) n = KEY_CAP;
    unsigned carry = 0;
    unsigned sum[KEY_CAP];
    for (size_t i = n; i-- > 0;) {
        unsigned x = (i < a->n ? a->k[i] : 0) + (i < b->n ? b->k[i] : 0) + carry;
        sum[i] = x & 0xff;
        carry = x >> 8;
    }
    unsigned rem = carry;
    for (size_t i = 0; i < n; i++) {
        unsigned x = rem * 256 + sum[i];
        m->k[i] = (unsigned char)(x / 2);
        rem = x % 2;
    }
    m->n = n;
    while (m->n > 0 && m->k[m->n - 1] == 0 && m->n > a->n + 1) m->n--;
}

static int less(const pos *a, const pos *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->k, b->k, n);
    return c < 0 || (c == 0 && a->n < b->n);
}

static int before(const char *k, size_t klen, const unsigned char *to, size_t to_len)
{
    size_t n = klen < to_len ? klen : to_len;
    int c = memcmp(k, to, n);
    return c < 0 || (c == 0 && klen < to_len);
}

/* The first readable position after last (NULL: the start); 0 when the
 * damage runs to the end of the column family. */
static int past_damage(const cf_reader *it, const pos *last, pos *good)
{
    pos bad = { .n = 0 };
    if (last) bad = *last;
    /* widen: the last key with one of its bytes raised, the last byte
     * first (the next version), then earlier ones (next layer, expert),
     * then past every key that starts below 0xff */
    int found = 0;
    for (size_t i = bad.n; !found && i-- > 0;) {
        if (bad.k[i] == 0xff) continue;
        memcpy(good->k, bad.k, i);
        good->k[i] = (unsigned char)(bad.k[i] + 1);
        good->n = i + 1;
        found = !seek_fails(it, good);
        if (!found) bad = *good;
    }
    if (!found) {
        good->k[0] = 0xff;
        good->n = 1;
        if (seek_fails(it, good)) return 0;
    }
    /* every seek between last and the damage's end fails, every one past
     * it succeeds: good only ever moves to a position that read */
    for (int step = 0; step < BISECT_STEPS; step++) {
        pos mid;
        midpoint(&bad, good, &mid);
        if (!less(&bad, &mid) || !less(&mid, good)) break;
        if (seek_fails(it, &mid)) bad = mid;
        else *good = mid;
    }
    return 1;
}

int sn_scan_cf(sn_store *s, int cf, int checksums, const unsigned char *from, size_t from_len,
               const unsigned char *to, size_t to_len, const sn_scan_cb *cb, sn_err *e)
{
    rocksdb_readoptions_t *ro = sn_scan_options();
    rocksdb_readoptions_set_verify_checksums(ro, (unsigned char)(checksums != 0));
    cf_reader rd = { s, ro, cf };
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    pos last = { .n = 0 };
    int have_last = from != NULL, rc = SN_OK;
    if (from) {
        last.n = from_len < KEY_CAP ? from_len : KEY_CAP;
        memcpy(last.k, from, last.n);
    }
    if (from) rocksdb_iter_seek(it, (const char *)from, from_len);
    else rocksdb_iter_seek_to_first(it);
    for (;;) {
        for (; !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (to && !before(k, klen, to, to_len)) break;
            const char *v = rocksdb_iter_value(it, &vlen);
            rc = cb->record(cb->ctx, cf, (const unsigned char *)k, klen, v, vlen, e);
            last.n = klen < KEY_CAP ? klen : KEY_CAP;
            memcpy(last.k, k, last.n);
            have_last = 1;
        }
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        if (rc || !err) break;
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", err);
        rocksdb_free(err);
        pos good, next = { .n = 0 };
        int more = past_damage(&rd, have_last ? &last : NULL, &good);
        rocksdb_iter_destroy(it);
        it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
        if (more) {
            rocksdb_iter_seek(it, (const char *)good.k, good.n);
            if (rocksdb_iter_valid(it)) {
                size_t klen;
                const char *k = rocksdb_iter_key(it, &klen);
                next.n = klen < KEY_CAP ? klen : KEY_CAP;
                memcpy(next.k, k, next.n);
            }
        }
        rc = cb->damage(cb->ctx, cf, have_last ? last.k : NULL, have_last ? last.n : 0,
                        next.n ? next.k : NULL, next.n, msg, e);
        if (rc || !more) break;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}


void sn_stretch_text(int cf, const unsigned char *after, size_t alen, const unsigned char *next,
                     size_t nlen, const char *error, char *buf, size_t cap)
{
    char lo[700] = "the start", hi[700] = "the end";
    if (after) sn_describe_key(cf, after, alen, lo, sizeof lo);
    if (next) sn_describe_key(cf, next, nlen, hi, sizeof hi);
    snprintf(buf, cap, "records between %s and %s are unreadable: %s", lo, hi, error);
}

int sn_scan_blob_stretch(sn_store *s, int cf, const unsigned char *after, size_t alen,
                         const unsigned char *next, size_t nlen, const char *error,
                         const sn_scan_cb *cb, sn_err *e)
{
    if (cf != CF_WEIGHTS || !strstr(error, "lob")) return SN_OK;
    unsigned char from[SN_WKEY_MAX + 1];
    size_t flen = 0;
    if (after && alen <= SN_WKEY_MAX) {   /* just past the last good record */
        memcpy(from, after, alen);
        from[alen] = 0;
        flen = alen + 1;
    }
    return sn_scan_cf(s, cf, 0, flen ? from : NULL, flen, next, nlen, cb, e);
}
