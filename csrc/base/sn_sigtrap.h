/* A process-wide trap for SIGINT and SIGTERM, so a long loop (synaptic
 * serve) can end cleanly on the first Ctrl-C: the handler only records the
 * signal; the loop asks for it between polls. Signals are process-wide, so
 * this is too (one trap; installing it again only clears what was caught). */
#ifndef SN_SIGTRAP_H
#define SN_SIGTRAP_H

#include "base/sn_types.h"

/* Install the handlers (keeping the previous ones) and clear the record. */
SN_HIDDEN int sn_sigtrap_install(void);
/* The signal caught since install (SIGINT or SIGTERM), or 0. */
SN_HIDDEN int sn_sigtrap_caught(void);
/* Put the previous handlers back (a no-op when not installed). */
SN_HIDDEN void sn_sigtrap_release(void);

#endif
