/* libFuzzer target: arbitrary bytes into the P2P message decoder, the same
 * path sn_sync_receive takes before anything touches a store (envelope,
 * bounds pre-check, schema, CRC, entries, and each carried record's full
 * check, a heartbeat's sample of peers), and the header read a transport
 * does first to bind the sender's node id (sn_sync_message_from). Must
 * never crash, leak or read out of bounds.
 *
 *   make fuzz-message FUZZ_SECONDS=60 */
#include "sync/sn_sync.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sn_err e;
    char from[SN_MAX_ID_LEN + 1];
    (void)sn_sync_decode_check(data, size, 1u << 20, &e);
    (void)sn_sync_message_from(data, size, 1u << 20, from, &e);
    return 0;
}
