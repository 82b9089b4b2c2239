/* Z85 keys (see sn_z85.h). */
#include "base/sn_z85.h"

#include <stdint.h>
#include <string.h>

/* Z85 (ZeroMQ RFC 32): 5 characters per 4 bytes, big-endian. Decoded here
 * rather than through libzmq so that what does not use ZeroMQ (the NATS
 * transport, the authorized keys of sync/sn_keyset.c) does not need it. */
static const char Z85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int sn_z85_key(const char *z85, unsigned char out[SN_Z85_KEY_BYTES], sn_err *e)
{
    if (!z85 || strlen(z85) != SN_Z85_KEY_CHARS) return sn_fail(e, SN_EARG, "a key must be 40 Z85 characters");
    for (int g = 0; g < 8; g++) {
        uint64_t v = 0;
        for (int i = 0; i < 5; i++) {
            const char *p = z85[5 * g + i] ? strchr(Z85, z85[5 * g + i]) : NULL;
            if (!p) return sn_fail(e, SN_EARG, "a key must be 40 Z85 characters");
            v = v * 85 + (uint64_t)(p - Z85);
        }
        if (v > 0xffffffffu) return sn_fail(e, SN_EARG, "a key must be 40 Z85 characters");
        for (int i = 0; i < 4; i++) out[4 * g + i] = (unsigned char)(v >> (24 - 8 * i));
    }
    return SN_OK;
}

void sn_z85_encode_key(const unsigned char key[SN_Z85_KEY_BYTES], char out[SN_Z85_KEY_CHARS + 1])
{
    for (int g = 0; g < 8; g++) {
        uint32_t v = (uint32_t)key[4 * g] << 24 | (uint32_t)key[4 * g + 1] << 16 |
                     (uint32_t)key[4 * g + 2] << 8 | key[4 * g + 3];
        for (int i = 4; i >= 0; i--) {
            out[5 * g + i] = Z85[v % 85];
            v /= 85;
        }
    }
    out[SN_Z85_KEY_CHARS] = 0;
}
