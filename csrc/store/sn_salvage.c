/* salvage(): every record of a damaged store that can still be read and
 * passes its own checks, copied into a fresh store; the rest named.
 *
 * The source opens read-only with paranoid checks off, so a table file
 * RocksDB cannot load costs only the reads that need it; failing that, a
 * damaged WAL is recovered up to its damage; failing that too, a scratch
 * copy is repaired (RocksDB's RepairDB) and read instead. Each column family
 * is walked by sn_scan, which skips just past an unreadable block; in a
 * stretch of weights each record is read again without RocksDB's checksums
 * and kept when its own CRC holds, so a damaged blob file costs only the
 * records whose bytes are damaged; weights whose table entries are lost are
 * read straight from the blob files. Records lost in a stretch are named
 * from the replication log where it knows them (weights, configs,
 * checkpoints). */
#include "store/sn_history.h"
#include "store/sn_keys.h"
#include "store/sn_kinds.h"
#include "store/sn_record_io.h"
#include "store/sn_replica.h"
#include "store/sn_rocks.h"
#include "store/sn_scan.h"
#include "store/sn_wal.h"
#include "store/sn_weights_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FLUSH_BYTES (32u << 20)
#define MAX_NAMED 1000
#define KEY_MAX_STRETCH SN_REPL_KEY_MAX

typedef struct stretch {
    int cf;
    size_t llen, hlen;           /* 0 = open end */
    unsigned char lo[KEY_MAX_STRETCH], hi[KEY_MAX_STRETCH];
} stretch;

typedef struct salvager {
    sn_store *src, *out;
    const char *path;            /* the damaged store, whose blob files are read as they are */
    sn_arena *a;
    rocksdb_writebatch_t *wb;
    size_t pending;
    uint64_t recovered[CF_COUNT];
    sn_vlist lost, unreadable;
    stretch *st;
    size_t nst, stcap;
    int in_stretch;
    char stretch[1800];   /* the stretch being read again: met again, it is not news */
} salvager;

static int flush(salvager *g, sn_err *e)
{
    char *err = NULL;
    rocksdb_write(g->out->db, g->out->wopts, g->wb, &err);
    rocksdb_writebatch_clear(g->wb);
    g->pending = 0;
    return err ? sn_rocks_err(e, err, "writing the salvaged store") : SN_OK;
}

/* {where=, error=} into list l (up to MAX_NAMED entries). */
static int note(salvager *g, sn_vlist *l, const char *where, const char *error, sn_err *e)
{
    if (l->n >= MAX_NAMED) return SN_OK;
    sn_value v;
    int rc = sn_problem_value(g->a, where, error, -1, &v, e);
    return rc ? rc : sn_vlist_push(l, v, e);
}

static int lose(salvager *g, int cf, const unsigned char *k, size_t klen, const char *why,
                sn_err *e)
{
    char where[700];
    sn_describe_key(cf, k, klen, where, sizeof where);
    for (size_t i = 0; i < g->lost.n; i++)   /* named once: by its CRC or by the log */
        if (!strcmp(g->lost.items[i].u.a.items[1].u.s.p, where)) return SN_OK;
    return note(g, &g->lost, where, why, e);
}

static int copy_record(void *ctx, int cf, const unsigned char *k, size_t klen, const char *v,
                       size_t vlen, sn_err *e)
{
    static const char origin_key[] = "synaptic.origin";
    salvager *g = ctx;
    /* the copy is a new store with an identity of its own */
    if (cf == CF_DEFAULT && klen == sizeof origin_key - 1 && !memcmp(k, origin_key, klen))
        return SN_OK;
    sn_err re = { 0, "" };
    sn_arena a;
    sn_arena_init(&a);
    int bad = cf == CF_DEFAULT ? 0
                               : sn_record_check(g->out->codec, cf, k, klen, v, vlen, &a, NULL, &re);
    sn_arena_free(&a);
    if (bad) return lose(g, cf, k, klen, re.msg, e);
    rocksdb_writebatch_put_cf(g->wb, g->out->cf[cf], (const char *)k, klen, v, vlen);
    g->recovered[cf]++;
    g->pending += klen + vlen;
    return g->pending >= FLUSH_BYTES ? flush(g, e) : SN_OK;
}

static int keep_stretch(salvager *g, int cf, const unsigned char *after, size_t alen,
                        const unsigned char *next, size_t nlen, sn_err *e)
{
    if (SN_GROW(g->st, g->nst, g->stcap, 8, e)) return e->code;
    stretch *t = &g->st[g->nst++];
    t->cf = cf;
    t->llen = after && alen <= KEY_MAX_STRETCH ? alen : 0;
    t->hlen = next && nlen <= KEY_MAX_STRETCH ? nlen : 0;
    if (t->llen) memcpy(t->lo, after, alen);
    if (t->hlen) memcpy(t->hi, next, nlen);
    return SN_OK;
}

static int copy_stretch(void *ctx, int cf, const unsigned char *after, size_t alen,
                        const unsigned char *next, size_t nlen, const char *error, sn_err *e)
{
    salvager *g = ctx;
    char msg[1800];
    sn_stretch_text(cf, after, alen, next, nlen, error, msg, sizeof msg);
    if (g->in_stretch && !strcmp(msg, g->stretch)) return SN_OK;
    int rc = note(g, &g->unreadable, sn_cf_names[cf], msg, e);
    if (!rc && !g->in_stretch) rc = keep_stretch(g, cf, after, alen, next, nlen, e);
    if (rc || g->in_stretch) return rc;
    sn_scan_cb cb = { g, copy_record, copy_stretch };
    g->in_stretch = 1;
    snprintf(g->stretch, sizeof g->stretch, "%s", msg);
    rc = sn_scan_blob_stretch(g->src, cf, after, alen, next, nlen, error, &cb, e);
    g->in_stretch = 0;
    return rc;
}

/* ---- naming what a stretch lost, from the replication log ---------------- */

typedef struct candidate {
    int cf;
    unsigned kind;
    uint64_t hlc;
    size_t klen;
    unsigned char key[SN_REPL_KEY_MAX];
} candidate;

static int inside(const salvager *g, int cf, const unsigned char *k, size_t klen)
{
    for (size_t i = 0; i < g->nst; i++) {
        const stretch *t = &g->st[i];
        if (t->cf != cf) continue;
        size_t n = klen < t->llen ? klen : t->llen;
        int c = memcmp(k, t->lo, n);
        int above = !t->llen || c > 0 || (c == 0 && klen > t->llen);
        n = klen < t->hlen ? klen : t->hlen;
        c = memcmp(k, t->hi, n);
        int below = !t->hlen || c < 0 || (c == 0 && klen < t->hlen);
        if (above && below) return 1;
    }
    return 0;
}

/* The newest log entry of each key inside a stretch (*out, *n; freed by
 * the caller). */
static int collect_log(salvager *g, candidate **out, size_t *n, sn_err *e)
{
    candidate *c = NULL;
    size_t cap = 0;
    int rc = SN_OK;
    *n = 0;
    rocksdb_iterator_t *it = sn_iter(g->out, CF_DEFAULT);
    for (rocksdb_iter_seek(it, "\x01L", 2); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < 2 || k[0] != 1 || k[1] != 'L') break;
        const char *v = rocksdb_iter_value(it, &vlen);
        sn_entry en;
        sn_err ee;
        if (sn_entry_decode(v, vlen, &en, &ee) || !inside(g, en.cf, en.key, en.klen)) continue;
        size_t i = 0;
        while (i < *n && !(c[i].cf == en.cf && c[i].klen == en.klen && !memcmp(c[i].key, en.key, en.klen)))
            i++;
        if (i == *n) {
            rc = SN_GROW(c, *n, cap, 16, e);
            if (rc) break;
            (*n)++;
            c[i].cf = en.cf;
            c[i].klen = en.klen;
            memcpy(c[i].key, en.key, en.klen);
            c[i].hlc = 0;
        }
        if (en.hlc >= c[i].hlc) { c[i].hlc = en.hlc; c[i].kind = en.kind; }
    }
    *out = c;
    return sn_iter_end(it, rc, "reading the salvaged replication log", e);
}

/* A key whose newest entry is a put and that is not in the copy was lost. */
static int name_lost(salvager *g, const candidate *c, size_t n, sn_err *e)
{
    int rc = SN_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        int found = 0;
        if (c[i].kind != SN_KIND_PUT) continue;
        rc = sn_key_exists(g->out, c[i].cf, c[i].key, c[i].klen, &found, "lookup", e);
        if (!rc && !found)
            rc = lose(g, c[i].cf, c[i].key, c[i].klen,
                      "in an unreadable stretch (named by the replication log)", e);
    }
    return rc;
}

/* ---- weights straight from the blob files ------------------------------------ */

/* A weight record sits whole in its blob file (key, then value). When the
 * table entries that point at it are lost (a bad block, or a repair that
 * drops blob files), the blob file still holds it: records in a lost
 * stretch whose own CRC holds are taken from there, unless the log says
 * the key was deleted (old blobs linger until garbage collection). */
typedef struct rescue {
    salvager *g;
    const candidate *c;
    size_t n;
    int rc;
    sn_err *e;
} rescue;

static void rescue_record(void *ctx, const unsigned char *k, size_t klen, const unsigned char *v,
                          size_t vlen)
{
    rescue *r = ctx;
    salvager *g = r->g;
    sn_err re;
    int found = 0;
    if (r->rc || !inside(g, CF_WEIGHTS, k, klen) ||
        sn_weights_verify(g->out->codec, k, klen, (const char *)v, vlen, &re))
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->c[i].cf == CF_WEIGHTS && r->c[i].klen == klen && !memcmp(r->c[i].key, k, klen) &&
            r->c[i].kind != SN_KIND_PUT)
            return;
    r->rc = sn_key_exists(g->out, CF_WEIGHTS, k, klen, &found, "lookup", r->e);
    if (r->rc || found) return;
    rocksdb_writebatch_put_cf(g->wb, g->out->cf[CF_WEIGHTS], (const char *)k, klen,
                              (const char *)v, vlen);
    g->recovered[CF_WEIGHTS]++;
    /* written now: a later blob file may hold the same key again */
    r->rc = flush(g, r->e);
}

static int rescue_blobs(salvager *g, const candidate *c, size_t n, sn_err *e)
{
    int any = 0;
    for (size_t i = 0; i < g->nst; i++) any |= g->st[i].cf == CF_WEIGHTS;
    if (!any) return SN_OK;
    /* the store's own directory even when a repaired copy is the source:
     * opening the copy read-write deleted the blob files repair dropped */
    const char *dir = g->path;
    DIR *d = opendir(dir);
    if (!d) return SN_OK;
    rescue r = { g, c, n, SN_OK, e };
    struct dirent *de;
    while (!r.rc && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".blob") != 0) continue;
        char file[4400];
        snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
        sn_blob_records(file, rescue_record, &r);
    }
    closedir(d);
    return r.rc;
}

/* ---- opening the source ------------------------------------------------------ */

/* Removes dir and what is in it, one level of subdirectories included
 * (RepairDB moves what it cannot use into lost/). */
static void remove_dir_at(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char file[4400];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
        struct stat st;
        if (depth > 0 && lstat(file, &st) == 0 && S_ISDIR(st.st_mode)) remove_dir_at(file, depth - 1);
        else unlink(file);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void remove_dir(const char *dir) { remove_dir_at(dir, 1); }

static int copy_dir(const char *from, const char *to, sn_err *e)
{
    if (mkdir(to, 0755) != 0) return sn_fail(e, SN_EIO, "cannot create '%s'", to);
    DIR *d = opendir(from);
    if (!d) return sn_fail(e, SN_EIO, "cannot list '%s'", from);
    struct dirent *de;
    int rc = SN_OK;
    while (!rc && (de = readdir(d))) {
        char a[4400], b[4400];
        struct stat st;
        if (snprintf(a, sizeof a, "%s/%s", from, de->d_name) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", to, de->d_name) >= (int)sizeof b)
            continue;   /* a path this long is not one of RocksDB's files */
        if (stat(a, &st) || !S_ISREG(st.st_mode) || !strcmp(de->d_name, "LOCK") ||
            !strcmp(de->d_name, SN_OPEN_MARKER))
            continue;
        if (sn_copy_file(a, b)) rc = sn_fail(e, SN_EIO, "cannot copy '%s' to '%s'", a, b);
    }
    closedir(d);
    return rc;
}

/* Read-only and lenient; then up to a WAL's damage; then a repaired
 * scratch copy (read-write, so that repair's missing column families are
 * made again). */
static int open_source(const char *path, const char *scratch, sn_store **src, int *repaired,
                       sn_wal_damage *wal, sn_err *e)
{
    sn_store_opts o;
    sn_store_default_opts(&o);
    o.read_only = 1;
    o.lenient = 1;
    o.cache_mb = 8;
    sn_err ue;
    /* table or blob files its MANIFEST lost: only a repair, which reads
     * every table file there is, brings their records back */
    int lost_files = sn_wal_unlisted(path, &ue) != SN_OK;
    /* a WAL damaged before its end: a lenient open reads past the damage
     * as it likes and says nothing; a point-in-time open says what it drops */
    sn_err we;
    /* a crashed store's newest WAL gone or cut short: what it held is lost
     * and a read-only open would not say so */
    sn_wal_missing(path, wal, &we);
    if (!wal->found || wal->cut) {
        /* damage before the end is told more precisely than a cut */
        sn_wal_damage scan;
        memset(&scan, 0, sizeof scan);
        sn_wal_scan(path, &scan, &we);
        if (scan.found) { sn_wal_damage_free(wal); *wal = scan; }
        else sn_wal_damage_free(&scan);
    }
    int rc = lost_files || wal->found ? SN_ECORRUPT : sn_store_open(path, &o, src, e);
    if (rc != SN_ECORRUPT && rc != SN_EIO) return rc;
    o.recover = SN_RECOVER_POINT_IN_TIME;
    if (!lost_files && sn_store_open(path, &o, src, e) == SN_OK) return SN_OK;
    sn_wal_damage_free(wal);
    /* a salvage killed part-way leaves its scratch copy behind; it is ours
     * (named after out_path, which does not exist), so start it afresh */
    remove_dir(scratch);
    rc = copy_dir(path, scratch, e);
    if (rc) return rc;
    char *err = NULL;
    rocksdb_options_t *ro = rocksdb_options_create();
    rocksdb_repair_db(ro, scratch, &err);
    rocksdb_options_destroy(ro);
    if (err) return sn_rocks_err(e, err, "repairing a copy of the store");
    *repaired = 1;
    /* copies: the blob files are read from the store itself (rescue_blobs) */
    size_t n;
    char first[256];
    sn_manifest_unlisted(scratch, &n, first, sizeof first, 1);
    o.read_only = 0;
    o.write_buffer_mb = 8;
    return sn_store_open(scratch, &o, src, e);
}

/* ---- the report ---------------------------------------------------------------- */

static sn_value *map_items(sn_arena *a, sn_value *m, size_t pairs)
{
    *m = sn_nil();
    m->type = SN_MAP;
    m->u.a.n = pairs;
    m->u.a.items = sn_arena_alloc(a, 2 * pairs * sizeof(sn_value));
    return m->u.a.items;
}

/* Writes the damaged WAL's dropped writes into lost. */
static int wal_lost(salvager *g, const sn_wal_damage *w, sn_err *e)
{
    char why[400];
    if (!w->nwrites && !w->ndamaged && !w->dropped_bytes)
        snprintf(why, sizeof why, "gone with WAL %s, %s", w->file, w->error);
    else
        snprintf(why, sizeof why, "dropped with the damaged WAL %s (%s at byte %llu)", w->file,
                 w->error, (unsigned long long)w->offset);
    int rc = SN_OK;
    for (size_t i = 0; !rc && i < w->nnames; i++) rc = note(g, &g->lost, w->names[i], why, e);
    if (!rc && w->nwrites > w->nnames) {
        char more[64];
        snprintf(more, sizeof more, "%zu more writes", w->nwrites - w->nnames);
        rc = note(g, &g->lost, more, why, e);
    }
    if (!rc && !w->nwrites && !w->ndamaged && !w->dropped_bytes)   /* missing or cut */
        rc = note(g, &g->lost, "the writes the WAL held past that point (how many cannot be told)",
                  why, e);
    if (!rc && w->ndamaged) {
        char dmg[96];
        snprintf(dmg, sizeof dmg, "%zu damaged WAL record%s (the writes in %s cannot be named)",
                 w->ndamaged, w->ndamaged == 1 ? "" : "s", w->ndamaged == 1 ? "it" : "them");
        rc = note(g, &g->lost, dmg, why, e);
    }
    return rc;
}

static int build_report(salvager *g, int repaired, const sn_wal_damage *w, sn_value *report,
                        sn_err *e)
{
    sn_value *items = map_items(g->a, report, 5);
    sn_value rec;
    sn_value *counts = map_items(g->a, &rec, CF_COUNT);
    if (!items || !counts) return sn_fail(e, SN_ENOMEM, "out of memory");
    for (int cf = 0; cf < CF_COUNT; cf++) {
        counts[2 * cf] = sn_cstr(sn_cf_names[cf]);
        counts[2 * cf + 1] = sn_int((int64_t)g->recovered[cf]);
    }
    items[0] = sn_cstr("recovered");
    items[1] = rec;
    items[2] = sn_cstr("lost");
    int rc = sn_vlist_finish(&g->lost, g->a, &items[3], e);
    items[4] = sn_cstr("unreadable");
    if (!rc) rc = sn_vlist_finish(&g->unreadable, g->a, &items[5], e);
    items[6] = sn_cstr("repaired");
    items[7] = sn_nil();
    items[7].type = SN_BOOL;
    items[7].u.b = repaired;
    items[8] = sn_cstr("wal");
    items[9] = sn_nil();
    if (w->found) {
        char msg[400];
        snprintf(msg, sizeof msg, "WAL %s damaged at byte %llu (%s): %llu bytes dropped", w->file,
                 (unsigned long long)w->offset, w->error, (unsigned long long)w->dropped_bytes);
        items[9] = sn_cstr(sn_arena_strdup(g->a, msg, strlen(msg)));
    }
    return rc;
}

static int copy_all(salvager *g, sn_err *e)
{
    sn_scan_cb cb = { g, copy_record, copy_stretch };
    g->wb = rocksdb_writebatch_create();
    int rc = SN_OK;
    for (int cf = 0; !rc && cf < CF_COUNT; cf++) rc = sn_scan_cf(g->src, cf, 1, NULL, 0, NULL, 0, &cb, e);
    if (!rc) rc = flush(g, e);
    candidate *c = NULL;
    size_t n = 0;
    if (!rc) rc = collect_log(g, &c, &n, e);
    if (!rc) rc = rescue_blobs(g, c, n, e);
    if (!rc) rc = flush(g, e);
    if (!rc) rc = name_lost(g, c, n, e);
    free(c);
    rocksdb_writebatch_destroy(g->wb);
    return rc;
}

int sn_salvage(const char *path, const char *out_path, sn_arena *a, sn_value *report, int *ok,
               sn_err *e)
{
    struct stat st;
    *ok = 0;
    if (!path || !*path || !out_path || !*out_path)
        return sn_fail(e, SN_EARG, "store paths must not be empty");
    if (stat(out_path, &st) == 0)
        return sn_fail(e, SN_EIO, "salvage: '%s' already exists (salvage writes a new store)",
                       out_path);
    char scratch[4200], part[4200];
    snprintf(scratch, sizeof scratch, "%s.salvage-scratch", out_path);
    /* the copy is built beside out_path and renamed to it at the end: a
     * salvage killed part-way must not leave at out_path a store that
     * opens normally with part of the records (a leftover part is ours, by
     * its name next to an out_path that does not exist: start afresh) */
    snprintf(part, sizeof part, "%s.salvage-part", out_path);
    remove_dir(part);
    salvager g;
    memset(&g, 0, sizeof g);
    g.a = a;
    g.path = path;
    sn_wal_damage wal;
    memset(&wal, 0, sizeof wal);
    int repaired = 0;
    int rc = open_source(path, scratch, &g.src, &repaired, &wal, e);
    if (!rc) {
        sn_store_opts o;
        sn_store_default_opts(&o);
        rc = sn_store_open(part, &o, &g.out, e);
    }
    if (!rc) rc = copy_all(&g, e);
    sn_err ue;
    if (!rc && repaired && sn_wal_unlisted(path, &ue))
        rc = note(&g, &g.unreadable, "MANIFEST", ue.msg, e);   /* read back by the repair */
    /* the copy's history must agree with the weights that made it across,
     * and log entries lost in between are asked of peers again */
    if (!rc) rc = sn_history_reconcile(g.out, e);
    if (!rc) rc = sn_checkpoint_reconcile(g.out, e);
    uint64_t gaps = 0;
    if (!rc) rc = sn_replica_fill_gaps(g.out, &gaps, e);
    if (!rc && wal.found) rc = wal_lost(&g, &wal, e);
    *ok = !rc && g.lost.n == 0 && g.unreadable.n == 0 && !wal.found;
    if (!rc) rc = build_report(&g, repaired, &wal, report, e);
    sn_store_close(g.src);
    sn_store_close(g.out);
    if (!rc && rename(part, out_path) != 0)
        rc = sn_fail(e, SN_EIO, "salvage: cannot rename '%s' to '%s': %s", part, out_path,
                     strerror(errno));
    if (!rc) sn_sync_parent(out_path);
    if (rc) remove_dir(part);   /* a half-made copy is worse than none */
    if (repaired || stat(scratch, &st) == 0) remove_dir(scratch);
    free(g.lost.items);
    free(g.unreadable.items);
    free(g.st);
    sn_wal_damage_free(&wal);
    return rc;
}
