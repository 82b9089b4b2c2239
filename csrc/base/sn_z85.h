/* Curve25519 public and secret keys as ZeroMQ writes them: 40 Z85
 * characters for 32 bytes. One keypair (synaptic.keypair) serves CURVE and
 * the NATS transport's sealing, and authorized keys are compared as text. */
#ifndef SN_Z85_H
#define SN_Z85_H

#include "base/sn_types.h"

#define SN_Z85_KEY_BYTES 32
#define SN_Z85_KEY_CHARS 40

/* A Z85 key (40 characters) to its 32 bytes; SN_EARG when malformed. */
SN_HIDDEN int sn_z85_key(const char *z85, unsigned char out[SN_Z85_KEY_BYTES], sn_err *e);
SN_HIDDEN void sn_z85_encode_key(const unsigned char key[SN_Z85_KEY_BYTES], char out[SN_Z85_KEY_CHARS + 1]);

#endif
