/* Wall clock, random UUIDs and the store's hybrid logical clock. */
#include "store/sn_clock.h"

#include <time.h>
#include <uuid/uuid.h>

double sn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void sn_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

/* Physical milliseconds in the high 48 bits, a logical counter in the low
 * 16: strictly increasing within a store even if the wall clock steps back. */
uint64_t sn_next_hlc(sn_store *s)
{
    uint64_t phys = (uint64_t)(sn_now() * 1000.0) << 16;
    s->last_hlc = phys > s->last_hlc ? phys : s->last_hlc + 1;
    return s->last_hlc;
}
