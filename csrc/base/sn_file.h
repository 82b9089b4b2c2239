/* Temporary files beside a destination, for writes that end in a rename.
 * A name like "<path>.tmp" can be planted in advance as a symlink that
 * makes the write land elsewhere; so the name here is unpredictable and
 * the file is created exclusively (O_EXCL: never opened if anything, a
 * symlink included, already has the name). */
#ifndef SN_FILE_H
#define SN_FILE_H

#include "base/sn_types.h"

/* Create "<path>.tmp-XXXXXX" (random suffix) with permissions mode,
 * exclusively. *fd is open for writing; *tmp is its name (free() it). */
SN_HIDDEN int sn_temp_beside(const char *path, unsigned mode, char **tmp, int *fd, sn_err *e);

#endif
