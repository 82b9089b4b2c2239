/* The digest of what a store holds: an FNV-1a hash over its replica
 * vector (each origin and the highest sequence held from it). Heartbeats
 * carry it; equal digests mean nothing to ask for. A file of its own so
 * that the peer table, which compares digests, does not call into the
 * sending code. */
#include "sync/sn_sync_int.h"

#include <stdlib.h>

int sn_sync_digest(sn_store *s, uint64_t *digest, sn_err *e)
{
    sn_vv vv;
    int rc = sn_replica_vector(s, &vv, e);
    if (rc) return rc;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < vv.n; i++) {
        for (size_t j = 0; j < SN_ORIGIN_LEN; j++)
            h = (h ^ (unsigned char)vv.items[i].origin[j]) * 1099511628211ull;
        for (int j = 0; j < 8; j++) h = (h ^ ((vv.items[i].seq >> (8 * j)) & 0xff)) * 1099511628211ull;
    }
    free(vv.items);
    *digest = h & 0x7fffffffffffffffull;   /* msgpack ints are signed on our side */
    return SN_OK;
}
