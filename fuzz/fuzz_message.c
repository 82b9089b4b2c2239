/* libFuzzer target: arbitrary bytes into the P2P message decoder, the same
 * path sn_sync_receive takes before anything touches a store (envelope,
 * bounds pre-check, schema, CRC, entries, and each carried record's full
 * check). Must never crash, leak or read out of bounds.
 *
 *   make fuzz-message FUZZ_SECONDS=60 */
#include "sync/sn_sync.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sn_err e;
    (void)sn_sync_decode_check(data, size, 1u << 20, &e);
    return 0;
}
