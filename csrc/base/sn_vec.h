/* Growable arrays: the one doubling realloc every list in the core uses.
 *
 * A list is a pointer, a count and a capacity kept by the caller; SN_GROW
 * makes room for element n (growing to `first`, then doubling). On failure
 * the array is left as it was, so the caller still owns and frees it. */
#ifndef SN_VEC_H
#define SN_VEC_H

#include "base/sn_types.h"

/* The capacity after cap: first when empty, then twice as much. */
SN_HIDDEN size_t sn_next_cap(size_t cap, size_t first);

/* *(T **)pp = realloc(*pp, count * elem), checked for overflow; on failure
 * *pp is untouched and e says out of memory. */
SN_HIDDEN int sn_resize(void *pp, size_t count, size_t elem, sn_err *e);

/* Room for one more element when n == *cap. */
SN_HIDDEN int sn_grow(void *pp, size_t *cap, size_t n, size_t elem, size_t first, sn_err *e);

#define SN_GROW(arr, n, cap, first, e) sn_grow(&(arr), &(cap), (n), sizeof *(arr), (first), (e))
#define SN_RESIZE(arr, count, e) sn_resize(&(arr), (count), sizeof *(arr), (e))

#endif
