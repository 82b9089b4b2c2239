/* Blob reads of the calling thread, from RocksDB's perf context: what the
 * cost-path specs use to show an operation read no weight payload (a
 * statistics ticker would need statistics on in every store, which costs
 * every read; the perf context is per thread and off until asked for). */
#include "store/sn_store.h"

#include <rocksdb/c.h>

static _Thread_local rocksdb_perfcontext_t *perf;

void sn_blob_reads(uint64_t *count, uint64_t *bytes)
{
    if (!perf) {
        rocksdb_set_perf_level(2);   /* kEnableCount: counters, no timers */
        perf = rocksdb_perfcontext_create();
        rocksdb_perfcontext_reset(perf);
    }
    *count = rocksdb_perfcontext_metric(perf, rocksdb_blob_read_count);
    *bytes = rocksdb_perfcontext_metric(perf, rocksdb_blob_read_byte);
}
