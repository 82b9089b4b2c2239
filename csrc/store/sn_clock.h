/* The store's hybrid logical clock (sn_now and sn_uuid: sn_store.h). */
#ifndef SN_CLOCK_H
#define SN_CLOCK_H

#include "store/sn_handle.h"

/* Physical milliseconds in the high 48 bits, a logical counter in the low
 * 16: strictly increasing within a store even if the wall clock steps back. */
SN_HIDDEN uint64_t sn_next_hlc(sn_store *s);

#endif
