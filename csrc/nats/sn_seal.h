/* End-to-end sealing of sync messages between nodes that meet through a
 * server they do not trust (the NATS transport): libsodium's crypto_box
 * (X25519 + XSalsa20-Poly1305) under the same Curve25519 keys as ZeroMQ's
 * CURVE, so one keypair (synaptic.keypair, Z85) serves both transports.
 *
 * Envelope, all fixed-size fields first:
 *   "SNB1" | recipient public key (32) | sender public key (32) | nonce (24)
 *   | crypto_box_easy(message) (16-byte tag + message)
 * The recipient key lets a node skip, without trying to open them, the
 * copies of a mesh-wide message sealed to the others. The box
 * authenticates the sender's key: whoever opens it knows which secret key
 * sealed it, which is what binds node ids to keys (sync/sn_idmap.h). The
 * server can read neither the message nor forge one; it can replay or drop
 * them, which the engine already tolerates (idempotent applies, anti-entropy). */
#ifndef SN_SEAL_H
#define SN_SEAL_H

#include "base/sn_z85.h"

#define SN_SEAL_KEY_BYTES SN_Z85_KEY_BYTES
#define SN_SEAL_Z85_LEN SN_Z85_KEY_CHARS
#define SN_SEAL_OVERHEAD (4 + 32 + 32 + 24 + 16)

enum { SN_SEAL_OPENED, SN_SEAL_NOT_MINE, SN_SEAL_BAD };

/* Seals msg to the recipient `to` from our keypair; *out (malloc'd, the
 * caller frees it) holds len + SN_SEAL_OVERHEAD bytes. */
SN_HIDDEN int sn_seal(const unsigned char to[SN_SEAL_KEY_BYTES], const unsigned char pub[SN_SEAL_KEY_BYTES],
                      const unsigned char sec[SN_SEAL_KEY_BYTES], const void *msg, size_t len,
                      unsigned char **out, size_t *outlen, sn_err *e);
/* Opens an envelope sealed to pub: SN_SEAL_OPENED with *plain (malloc'd)
 * and the sender's key in from; SN_SEAL_NOT_MINE when sealed to another
 * key; SN_SEAL_BAD when short, of another format, or not opening under
 * our secret key (forged or tampered). -1 when out of memory. */
SN_HIDDEN int sn_seal_open(const void *env, size_t len, const unsigned char pub[SN_SEAL_KEY_BYTES],
                           const unsigned char sec[SN_SEAL_KEY_BYTES], unsigned char from[SN_SEAL_KEY_BYTES],
                           unsigned char **plain, size_t *plen);

#endif
