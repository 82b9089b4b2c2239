/* Temporary files beside a destination (see sn_file.h). */
#include "base/sn_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sn_temp_beside(const char *path, unsigned mode, char **tmp, int *fd, sn_err *e)
{
    static const char suffix[] = ".tmp-XXXXXX";
    size_t n = strlen(path);
    *tmp = NULL;
    *fd = -1;
    char *name = malloc(n + sizeof suffix);
    if (!name) return sn_fail(e, SN_ENOMEM, "out of memory");
    memcpy(name, path, n);
    memcpy(name + n, suffix, sizeof suffix);
    /* mkstemp: O_CREAT | O_EXCL, mode 0600, a fresh random suffix per try */
    int f = mkstemp(name);
    if (f < 0) {
        int err = errno;
        free(name);
        return sn_fail(e, SN_EIO, "%s", strerror(err));
    }
    if (fchmod(f, (mode_t)(mode & 0777))) {
        int err = errno;
        close(f);
        unlink(name);
        free(name);
        return sn_fail(e, SN_EIO, "cannot set the mode of '%s': %s", path, strerror(err));
    }
    *tmp = name;
    *fd = f;
    return SN_OK;
}
