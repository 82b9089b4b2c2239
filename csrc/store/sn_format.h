/* The store format and identity, settled at open (sn_format.c). */
#ifndef SN_FORMAT_H
#define SN_FORMAT_H

#include "store/sn_handle.h"

/* The store format: upgrade a format-1 store opened for writing, mark a
 * new one (sn_format.c). */
SN_HIDDEN int sn_format_open(sn_store *s, sn_err *e);
/* A copied or restored store directory takes a new origin (sn_format.c);
 * mark_new_origin asks for one at the next writable open (a restore). */
SN_HIDDEN int sn_identity_open(sn_store *s, sn_err *e);
SN_HIDDEN int sn_mark_new_origin(const char *path, sn_err *e);

#endif
