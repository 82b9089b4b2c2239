/* Growable arrays (see sn_vec.h). The pointer is passed as void * and moved
 * with memcpy so one function serves every element type without casting a
 * T ** to void ** (which C does not allow to alias). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/sn_vec.h"

size_t sn_next_cap(size_t cap, size_t first)
{
    return cap ? (cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * cap) : first;
}

int sn_resize(void *pp, size_t count, size_t elem, sn_err *e)
{
    if (elem && count > SIZE_MAX / elem) return sn_fail(e, SN_ENOMEM, "out of memory");
    void *old;
    memcpy(&old, pp, sizeof old);
    size_t bytes = count * elem;
    void *p = realloc(old, bytes ? bytes : 1);
    if (!p) return sn_fail(e, SN_ENOMEM, "out of memory");
    memcpy(pp, &p, sizeof p);
    return SN_OK;
}

int sn_grow(void *pp, size_t *cap, size_t n, size_t elem, size_t first, sn_err *e)
{
    if (n < *cap) return SN_OK;
    size_t c = sn_next_cap(*cap, first);
    int rc = sn_resize(pp, c, elem, e);
    if (rc == SN_OK) *cap = c;
    return rc;
}
