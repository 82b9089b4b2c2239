/* Sealed envelopes (see sn_seal.h). */
#include "nats/sn_seal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "SNB1"

int sn_seal(const unsigned char to[SN_SEAL_KEY_BYTES], const unsigned char pub[SN_SEAL_KEY_BYTES],
            const unsigned char sec[SN_SEAL_KEY_BYTES], const void *msg, size_t len, unsigned char **out,
            size_t *outlen, sn_err *e)
{
    if (sodium_init() < 0) return sn_fail(e, SN_EIO, "libsodium failed to initialise");
    unsigned char *env = malloc(len + SN_SEAL_OVERHEAD);
    if (!env) return sn_fail(e, SN_ENOMEM, "out of memory");
    memcpy(env, MAGIC, 4);
    memcpy(env + 4, to, 32);
    memcpy(env + 36, pub, 32);
    randombytes_buf(env + 68, crypto_box_NONCEBYTES);   /* random 24 bytes: no nonce state to keep */
    if (crypto_box_easy(env + 92, msg, len, env + 68, to, sec)) {
        free(env);
        return sn_fail(e, SN_EARG, "cannot seal to that public key");
    }
    *out = env;
    *outlen = len + SN_SEAL_OVERHEAD;
    return SN_OK;
}

int sn_seal_open(const void *envp, size_t len, const unsigned char pub[SN_SEAL_KEY_BYTES],
                 const unsigned char sec[SN_SEAL_KEY_BYTES], unsigned char from[SN_SEAL_KEY_BYTES],
                 unsigned char **plain, size_t *plen)
{
    const unsigned char *env = envp;
    *plain = NULL;
    if (len < SN_SEAL_OVERHEAD || memcmp(env, MAGIC, 4)) return SN_SEAL_BAD;
    if (sodium_memcmp(env + 4, pub, 32)) return SN_SEAL_NOT_MINE;
    if (sodium_init() < 0) return SN_SEAL_BAD;
    size_t n = len - SN_SEAL_OVERHEAD;
    unsigned char *m = malloc(n ? n : 1);
    if (!m) return -1;
    if (crypto_box_open_easy(m, env + 92, len - 92, env + 68, env + 36, sec)) {
        free(m);
        return SN_SEAL_BAD;
    }
    memcpy(from, env + 36, 32);
    *plain = m;
    *plen = n;
    return SN_SEAL_OPENED;
}
