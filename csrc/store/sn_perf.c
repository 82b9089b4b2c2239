/* Blob reads of the calling thread, from RocksDB's perf context: what the
 * cost-path specs use to show an operation read no weight payload (a
 * statistics ticker would need statistics on in every store, which costs
 * every read; the perf context is per thread and off until asked for). */
#include "store/sn_store.h"

#include <rocksdb/c.h>

/* RocksDB's perf context is its own, per thread; the C handle only points
 * at it, so one is made per call and destroyed (a handle kept in a
 * thread-local was never freed: LeakSanitizer). */
static _Thread_local int started;

void sn_blob_reads(uint64_t *count, uint64_t *bytes)
{
    rocksdb_perfcontext_t *perf = rocksdb_perfcontext_create();
    if (!started) {
        rocksdb_set_perf_level(2);   /* kEnableCount: counters, no timers */
        rocksdb_perfcontext_reset(perf);
        started = 1;
    }
    *count = rocksdb_perfcontext_metric(perf, rocksdb_blob_read_count);
    *bytes = rocksdb_perfcontext_metric(perf, rocksdb_blob_read_byte);
    rocksdb_perfcontext_destroy(perf);
}
