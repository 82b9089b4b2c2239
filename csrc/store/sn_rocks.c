/* Small helpers over RocksDB's C API shared by every storage file: its
 * errors as ours, iterators that report their failures, point reads, the
 * argument checks of ids, and the problem values verify and salvage report. */
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

int sn_rocks_err(sn_err *e, char *err, const char *what)
{
    /* copy, then free: RocksDB owns err and it may contain '%' */
    int code = strstr(err, "Corruption") ? SN_ECORRUPT : SN_EIO;
    /* RocksDB 7.8 runs "... to be an sstable" into the file's path */
    static const char glued[] = "to be an sstable";
    char *at = strstr(err, glued);
    if (at && at[sizeof glued - 1] && at[sizeof glued - 1] != ' ') {
        at += sizeof glued - 1;
        sn_fail(e, code, "%s: %.*s: %s", what, (int)(at - err), err, at);
    } else {
        sn_fail(e, code, "%s: %s", what, err);
    }
    rocksdb_free(err);
    return code;
}

int sn_check_id(const char *p, size_t len, const char *what, sn_err *e)
{
    if (len == 0) return sn_fail(e, SN_EARG, "%s must not be empty", what);
    if (len > SN_MAX_ID_LEN)
        return sn_fail(e, SN_EARG, "%s is longer than %u bytes", what, SN_MAX_ID_LEN);
    if (memchr(p, 0, len)) return sn_fail(e, SN_EARG, "%s contains a NUL byte", what);
    return SN_OK;
}

int sn_check_writable(sn_store *s, sn_err *e)
{
    if (s->opts.read_only) return sn_fail(e, SN_EARG, "store is open read-only");
    return SN_OK;
}

rocksdb_readoptions_t *sn_scan_options(void)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 1);
    rocksdb_readoptions_set_fill_cache(ro, 0);   /* a full scan must not evict the hot set */
    return ro;
}

int sn_key_exists(sn_store *s, int cf, const void *k, size_t klen, int *found, const char *what,
                  sn_err *e)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *p = rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[cf], k, klen, &err);
    if (err) return sn_rocks_err(e, err, what);
    *found = p != NULL;
    if (p) rocksdb_pinnableslice_destroy(p);
    return SN_OK;
}

rocksdb_iterator_t *sn_iter(sn_store *s, int cf)
{
    return rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[cf]);
}

char *sn_iter_close(rocksdb_iterator_t *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return err;
}

int sn_iter_end(rocksdb_iterator_t *it, int rc, const char *what, sn_err *e)
{
    char *err = sn_iter_close(it);
    if (err && !rc) return sn_rocks_err(e, err, what);
    if (err) rocksdb_free(err);
    return rc;
}

int sn_problem_value(sn_arena *a, const char *where, const char *error, int64_t backup,
                     sn_value *out, sn_err *e)
{
    size_t n = backup >= 0 ? 3 : 2;
    sn_value *items = sn_arena_alloc(a, 2 * n * sizeof *items);
    const char *w = sn_arena_strdup(a, where, strlen(where));
    const char *m = sn_arena_strdup(a, error, strlen(error));
    if (!items || !w || !m) return sn_fail(e, SN_ENOMEM, "out of memory");
    items[0] = sn_cstr("where");
    items[1] = sn_cstr(w);
    items[2] = sn_cstr("error");
    items[3] = sn_cstr(m);
    if (backup >= 0) {
        items[4] = sn_cstr("backup");
        items[5] = sn_int(backup);
    }
    *out = sn_nil();
    out->type = SN_MAP;
    out->u.a.items = items;
    out->u.a.n = n;
    return SN_OK;
}

int sn_vlist_push(sn_vlist *l, sn_value v, sn_err *e)
{
    if (SN_GROW(l->items, l->n, l->cap, 16, e)) return e->code;
    l->items[l->n++] = v;
    return SN_OK;
}

int sn_vlist_finish(sn_vlist *l, sn_arena *a, sn_value *out, sn_err *e)
{
    *out = sn_nil();
    out->type = SN_ARRAY;
    out->u.a.n = l->n;
    out->u.a.items = sn_arena_alloc(a, (l->n ? l->n : 1) * sizeof(sn_value));
    int rc = out->u.a.items ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    if (!rc && l->n) memcpy(out->u.a.items, l->items, l->n * sizeof(sn_value));
    free(l->items);
    l->items = NULL;
    return rc;
}

/* Copy of the value at key, or SN_NOTFOUND. */
int sn_get_copy(sn_store *s, int cf, const unsigned char *k, size_t klen, sn_buf *out,
                sn_err *e)
{
    char *err = NULL;
    out->data = NULL;
    out->len = 0;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[cf], (const char *)k, klen, &err);
    if (err) return sn_rocks_err(e, err, "replication read");
    if (!p) return SN_NOTFOUND;
    size_t n;
    const char *v = rocksdb_pinnableslice_value(p, &n);
    out->data = malloc(n ? n : 1);
    if (out->data) {
        memcpy(out->data, v, n);
        out->len = n;
    }
    rocksdb_pinnableslice_destroy(p);
    return out->data ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
}
