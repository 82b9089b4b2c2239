/* Whether a store directory is in use: by this process (a registry of the
 * stores it has open) or by another one (RocksDB's LOCK file).
 *
 * RocksDB locks LOCK with a POSIX fcntl lock. Such a lock is per process,
 * and closing any descriptor of the file drops every lock the process holds
 * on it: a check made from this process could neither see the lock of a
 * store open here nor open and close LOCK without unlocking that store. So
 * this process's own stores are known from the registry, and LOCK is only
 * touched once the registry says the store is not open here.
 *
 * A read-only open takes no LOCK. So that a forced restore does not swap a
 * store out from under a read-only handle in another process, such a handle
 * holds a shared open-file-description lock (per handle, not per process,
 * unlike fcntl's) on SYNAPTIC-READERS, an empty file every read-write open
 * creates: a store last written by an older release, never opened
 * read-write since, has none, and its readers are not seen. */
#define _GNU_SOURCE   /* F_OFD_SETLK */
#include "store/sn_inuse.h"
#include "store/sn_rocks.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READERS "SYNAPTIC-READERS"

typedef struct sn_open_dir {
    const sn_store *s;
    dev_t dev;
    ino_t ino;
    int readers_fd;               /* a read-only handle's shared lock, or -1 */
    struct sn_open_dir *next;
} sn_open_dir;

/* Lua states on several threads may open stores: the registry is the one
 * process-wide thing here, as RocksDB's own lock table is. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sn_open_dir *registry;

int sn_inuse_add(const sn_store *s, sn_err *e)
{
    /* a store open but unrecorded would be unlocked by a restore's check
     * (see above): no record, no open */
    struct stat st;
    if (stat(sn_store_path(s), &st) != 0)
        return sn_fail(e, SN_EIO, "cannot open store at '%s': %s", sn_store_path(s), strerror(errno));
    sn_open_dir *d = malloc(sizeof *d);
    if (!d) return sn_fail(e, SN_ENOMEM, "out of memory");
    char file[4200];
    snprintf(file, sizeof file, "%s/" READERS, sn_store_path(s));
    d->readers_fd = -1;
    if (s->opts.read_only) {
        /* best effort: a store on a read-only filesystem has no such file */
        struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) == 0) d->readers_fd = fd;
        else if (fd >= 0) close(fd);
    } else {
        int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    }
    d->s = s;
    d->dev = st.st_dev;
    d->ino = st.st_ino;
    pthread_mutex_lock(&registry_mu);
    d->next = registry;
    registry = d;
    pthread_mutex_unlock(&registry_mu);
    return SN_OK;
}

void sn_inuse_remove(const sn_store *s)
{
    pthread_mutex_lock(&registry_mu);
    for (sn_open_dir **p = &registry; *p; p = &(*p)->next) {
        if ((*p)->s == s) {
            sn_open_dir *d = *p;
            *p = d->next;
            if (d->readers_fd >= 0) close(d->readers_fd);   /* drops its lock */
            free(d);
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
}

static int open_here(const struct stat *st)
{
    int found = 0;
    pthread_mutex_lock(&registry_mu);
    for (sn_open_dir *d = registry; d && !found; d = d->next)
        found = d->dev == st->st_dev && d->ino == st->st_ino;
    pthread_mutex_unlock(&registry_mu);
    return found;
}

int sn_inuse_claim(const char *path, int *lockfd, sn_err *e)
{
    *lockfd = -1;
    struct stat st;
    if (stat(path, &st) != 0) return SN_OK;   /* nothing there to be in use */
    if (open_here(&st))
        return sn_fail(e, SN_EIO, "store at '%s' is open in this process: close it first", path);
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/" READERS, path);
    int rfd = open(lock, O_RDWR | O_CLOEXEC);
    if (rfd >= 0) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        int held = fcntl(rfd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
        close(rfd);
        if (held)
            return sn_fail(e, SN_EIO, "store at '%s' is open read-only by another process", path);
    }
    snprintf(lock, sizeof lock, "%s/LOCK", path);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd < 0) return SN_OK;   /* no LOCK file: no RocksDB has it open */
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) == 0) { *lockfd = fd; return SN_OK; }
    int err = errno;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int pid = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? (int)fl.l_pid : 0;
    close(fd);
    if (err == EAGAIN || err == EACCES) {
        if (pid > 0)
            return sn_fail(e, SN_EIO, "store at '%s' is in use by another process (pid %d)", path, pid);
        return sn_fail(e, SN_EIO, "store at '%s' is in use by another process", path);
    }
    return sn_fail(e, SN_EIO, "cannot lock '%s': %s", lock, strerror(err));
}

void sn_inuse_release(int lockfd)
{
    if (lockfd >= 0) close(lockfd);   /* closing drops the lock */
}

int sn_open_err(sn_err *e, char *err, const char *path)
{
    /* RocksDB's texts: "lock hold by current process" (this process) and
     * "While lock file: .../LOCK: Resource temporarily unavailable" */
    if (strstr(err, "lock hold by current process") ||
        (strstr(err, "lock file") && strstr(err, "Resource temporarily unavailable"))) {
        rocksdb_free(err);
        return sn_fail(e, SN_EIO, "cannot open store at '%s': store is already open "
                                  "(by this or another process)", path);
    }
    char what[4200];
    snprintf(what, sizeof what, "cannot open store at '%s'", path);
    return sn_rocks_err(e, err, what);
}
