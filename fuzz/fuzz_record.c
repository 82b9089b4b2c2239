/* libFuzzer target: arbitrary bytes into the record decoder, as if read
 * from a damaged disk or a hostile peer. Any crash, leak, over-read or
 * undefined behaviour is a bug; a clean SN_ECORRUPT is the right answer. */
#include "codec/sn_record.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sn_arena a;
    sn_err e;
    sn_record r;
    sn_arena_init(&a);
    if (sn_record_decode(data, size, &a, &r, &e) == SN_OK && r.raw_len <= (1u << 24)) {
        /* split the payload in two like weights and biases */
        unsigned char *buf = malloc(r.raw_len + 1);
        size_t half = (size_t)r.raw_len / 2;
        sn_part parts[2] = { { buf, half }, { buf + half, (size_t)r.raw_len - half } };
        if (buf) sn_record_load(&r, parts, 2, &e);
        free(buf);
    }
    sn_arena_free(&a);

    sn_value v;
    sn_arena_init(&a);
    if (sn_value_unpack(data, size, &a, &v, &e) == SN_OK) {
        sn_buf out;
        if (sn_value_pack(&v, &out, &e) == SN_OK) free(out.data);
    }
    sn_arena_free(&a);
    return 0;
}
