/* A bounds pre-check for msgpack bytes from disk or the network.
 *
 * msgpack-c's C unpacker allocates a container's element array from the
 * count in its header before it has seen the elements, so four hostile
 * bytes can ask for gigabytes (its C++ API has unpack_limit; the C API has
 * none). This walk allocates nothing and refuses any container that claims
 * more elements than bytes remain, any depth beyond SN_MAX_DEPTH, and any
 * length that runs past the end. After it passes, msgpack_unpack_next
 * allocates at most a small multiple of the input size. */
#ifndef SN_MPCHECK_H
#define SN_MPCHECK_H

#include "base/sn_types.h"

/* Returns 0 and sets *used to the size of the one object at data, or -1. */
SN_HIDDEN int sn_mpcheck(const unsigned char *data, size_t len, size_t *used);

#endif
