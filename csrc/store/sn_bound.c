/* Prefix scans that end where their prefix ends. A deleted key stays in
 * the memtable and in SST files until a compaction drops it, and an
 * iterator without an upper bound that runs out of live keys under its
 * prefix steps over every deleted key after it, looking for the next live
 * one: a first put to an expert whose id sorts just before a long history
 * stepped over that history's deleted head markers. With
 * iterate_upper_bound RocksDB stops at the prefix's end. */
#include "store/sn_rocks.h"

#include <stdlib.h>
#include <string.h>

struct sn_bound {
    rocksdb_readoptions_t *ro;
    size_t len;
    unsigned char end[];   /* the first key after every key with the prefix */
};

rocksdb_iterator_t *sn_iter_prefix(sn_store *s, int cf, const void *prefix, size_t plen,
                                   sn_bound **out)
{
    *out = NULL;
    const unsigned char *p = prefix;
    size_t n = plen;
    while (n && p[n - 1] == 0xff) n--;   /* ff.. prefixes end where a shorter one does */
    sn_bound *b = n ? malloc(sizeof *b + n) : NULL;
    if (b) b->ro = rocksdb_readoptions_create();
    if (!b || !b->ro) {   /* no memory or no end: an unbounded scan is still right, only slower */
        free(b);
        return sn_iter(s, cf);
    }
    memcpy(b->end, p, n);
    b->end[n - 1]++;
    b->len = n;
    rocksdb_readoptions_set_verify_checksums(b->ro, 1);   /* as the store's own read options */
    /* RocksDB keeps a pointer to the bytes, not a copy: they live in b
     * until the iterator is gone */
    rocksdb_readoptions_set_iterate_upper_bound(b->ro, (const char *)b->end, b->len);
    *out = b;
    return rocksdb_create_iterator_cf(s->db, b->ro, s->cf[cf]);
}

int sn_bound_end(sn_bound *b, rocksdb_iterator_t *it, int rc, const char *what, sn_err *e)
{
    rc = sn_iter_end(it, rc, what, e);
    if (b) {
        rocksdb_readoptions_destroy(b->ro);
        free(b);
    }
    return rc;
}
