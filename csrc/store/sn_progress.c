/* Totals for progress callbacks (sn_progress in sn_store.h). */
#include "store/sn_handle.h"
#include "store/sn_keys.h"

#include <stdlib.h>

uint64_t sn_estimate_records(sn_store *s)
{
    uint64_t total = 0;
    for (int cf = 0; cf < CF_COUNT; cf++) {
        char *v = rocksdb_property_value_cf(s->db, s->cf[cf], "rocksdb.estimate-num-keys");
        if (v) total += strtoull(v, NULL, 10);
        rocksdb_free(v);
    }
    return total;
}
