/* Which weights records a damaged blob file costs, and in which file.
 *
 * RocksDB reports a blob file it cannot open (a cut-off footer, a bad
 * header) without naming it, and the walk over the column family then
 * stops at the first key whose value lives there: verify could only say
 * "records between X and Y are unreadable". The blob files themselves hold
 * every record whole (key, then value), so each file is read as it is, and
 * every key in the stretch that the table still points at (a point read
 * finds it) but RocksDB cannot return (the read fails) is named, with the
 * file that holds it. Keys only an old blob file holds (deleted, or
 * rewritten) read as absent and are not named. */
#include "store/sn_rocks.h"
#include "store/sn_scan.h"
#include "store/sn_wal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

typedef struct lost_walk {
    sn_store *s;
    rocksdb_readoptions_t *ro;
    const unsigned char *after, *next;
    size_t alen, nlen;
    const char *file;
    sn_blob_lost_fn fn;
    void *ctx;
} lost_walk;

static int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static void check_record(void *ctx, const unsigned char *k, size_t klen, const unsigned char *v,
                         size_t vlen)
{
    lost_walk *w = ctx;
    (void)v;
    (void)vlen;
    if (w->after && key_cmp(k, klen, w->after, w->alen) <= 0) return;
    if (w->next && key_cmp(k, klen, w->next, w->nlen) >= 0) return;
    char *err = NULL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(w->s->db, w->ro, w->s->cf[CF_WEIGHTS], (const char *)k, klen, &err);
    if (p) rocksdb_pinnableslice_destroy(p);
    if (!err) return;   /* readable after all, or not live */
    w->fn(w->ctx, w->file, k, klen, err);
    rocksdb_free(err);
}

int sn_blob_lost(sn_store *s, const unsigned char *after, size_t alen, const unsigned char *next,
                 size_t nlen, sn_blob_lost_fn fn, void *ctx)
{
    DIR *d = opendir(s->path);
    if (!d) return 0;
    lost_walk w = { s, sn_scan_options(), after, next, alen, nlen, NULL, fn, ctx };
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".blob") != 0) continue;
        char file[4400];
        snprintf(file, sizeof file, "%s/%s", s->path, de->d_name);
        w.file = de->d_name;
        sn_blob_records(file, check_record, &w);
    }
    closedir(d);
    rocksdb_readoptions_destroy(w.ro);
    return 0;
}
