/* Batches: a RocksDB write batch plus what its writes noted for commit
 * (the layers' pending writes, replication log entries, rank slots). */
#include "store/sn_batch.h"
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

sn_batch *sn_batch_new(sn_store *s)
{
    sn_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->s = s;
    b->hooks = s->hooks;
    b->wb = rocksdb_writebatch_create();
    return b;
}

void sn_batch_free(sn_batch *b)
{
    if (!b) return;
    for (int i = 0; i < 2; i++)
        if (b->hooks->freed[i]) b->hooks->freed[i](b);
    while (b->pending) {
        sn_pending *n = b->pending->next;
        free(b->pending->writes);
        free(b->pending->versions);
        free(b->pending);
        b->pending = n;
    }
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

int sn_batch_commit(sn_batch *b, sn_err *e)
{
    int rc = sn_check_writable(b->s, e);
    if (rc) return rc;
    char *err = NULL;
    uint64_t saved_seq;
    const sn_batch_hooks *h = b->hooks;
    h->precommit(b, &saved_seq);
    rocksdb_write(b->s->db, b->s->wopts, b->wb, &err);
    h->committed(b, !err);
    h->postcommit(b, !err, saved_seq);
    if (err) return sn_rocks_err(e, err, "write failed");
    if (b->weights_changed) b->s->weights_epoch++;
    b->weights_changed = 0;
    rocksdb_writebatch_clear(b->wb);
    return SN_OK;
}

sn_batch *sn_batch_or_temp(sn_store *s, sn_batch *b, sn_err *e)
{
    if (sn_check_writable(s, e)) return NULL;
    if (b) return b;
    b = sn_batch_new(s);
    if (!b) sn_fail(e, SN_ENOMEM, "out of memory");
    return b;
}

/* Commit and free a temporary batch; leave a caller's batch alone. */
int sn_batch_finish(sn_batch *b, sn_batch *given, int rc, sn_err *e)
{
    if (b == given) return rc;
    if (!rc) rc = sn_batch_commit(b, e);
    sn_batch_free(b);
    return rc;
}

sn_pending *sn_pending_find(sn_batch *b, const unsigned char *lk, size_t lklen)
{
    for (sn_pending *p = b ? b->pending : NULL; p; p = p->next)
        if (p->prefix_len == lklen && memcmp(p->prefix, lk, lklen) == 0) return p;
    return NULL;
}
