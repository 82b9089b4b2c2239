/* Where RocksDB's info LOG goes, and its cleanup at close.
 *
 * Debian's build asserts (SIGABRT) when its logger appends again after one
 * failed append, and the first thing RocksDB does after a failed write on a
 * full disk is log it: with the LOG beside the data, a full disk aborts the
 * process, and every reopen aborts while writing the LOG's header. RocksDB
 * 7.8 refuses to open without a logger and its C API cannot make one, so
 * the LOG goes to another filesystem: /dev/shm (RAM).
 *
 * RAM is not a place to keep one LOG per store ever opened (a test run left
 * 28,000 of them, 2.3 GB, and RocksDB lists the whole directory at every
 * open and flush), so each store gets its own directory there, named by a
 * hash of its absolute path, and a clean close moves the last LOG into the
 * store directory (as RocksDB's default would have it) and empties its
 * directory. A killed writer leaves at most keep_log_file_num files of
 * max_log_file_size behind, reused when the store is opened again.
 *
 * Every handle gets a directory of its own ("<hash>-r<pid>-<n>" read-only,
 * "<hash>-w<pid>-<n>" read-write), so no other open or close ever takes a
 * live writer's LOG away: a second read-write open that fails on the lock
 * (same process, or `synaptic compact` from another) used to share the
 * writer's directory and empty it on the way out, and the writer aborted
 * when its LOG next rolled. A read-only handle's directory that a killed
 * process left is removed by the next open that finds its process gone; a
 * killed writer's is kept an hour for a post-mortem.
 *
 * A full /dev/shm (64 MiB in a container by default) must not abort a
 * writer either: the LOG is kept to warnings and errors (RocksDB's flush
 * and compaction chatter filled 1 MiB every few thousand puts), so a
 * writer that logs nothing unusual never appends after its open, and a
 * /dev/shm with less than SN_INFOLOG_ROOM free is not used at all. The
 * limit left: a /dev/shm that fills up while a writer is open, followed by
 * a warning from that writer (a write stall), still aborts it. */
#include "store/sn_infolog.h"
#include "store/sn_wal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

/* Free space /dev/shm must have for a LOG to go there: its header and the
 * options RocksDB writes at open (~30 KiB) many times over. */
#define SN_INFOLOG_ROOM (4u << 20)

/* 0 when path is a directory this user owns and nobody else may write to. */
static int own_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 0022))
        return -1;
    return 0;
}

/* FNV-1a over the absolute path: a stable, short directory name. */
static uint64_t path_hash(const char *path)
{
    char cwd[PATH_MAX];
    uint64_t h = 1469598103934665603ULL;
    const char *parts[3] = { "", "", path };
    if (path[0] != '/' && getcwd(cwd, sizeof cwd)) { parts[0] = cwd; parts[1] = "/"; }
    for (int i = 0; i < 3; i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static void remove_dir(const char *dir);

/* Read-only handles' directories whose process is gone, and the LOGs the
 * last release kept flat in base, once an hour has passed without a write. */
static void sweep_dead(const char *base)
{
    DIR *d = opendir(base);
    if (!d) return;
    struct dirent *de;
    char path[PATH_MAX];
    struct stat st;
    time_t now = time(NULL);
    while ((de = readdir(d))) {
        if (strstr(de->d_name, "_LOG")) {
            snprintf(path, sizeof path, "%s/%s", base, de->d_name);
            if (!lstat(path, &st) && S_ISREG(st.st_mode) && st.st_mtime + 3600 < now) unlink(path);
            continue;
        }
        const char *r = strstr(de->d_name, "-r"), *w = strstr(de->d_name, "-w");
        long pid = r ? strtol(r + 2, NULL, 10) : w ? strtol(w + 2, NULL, 10) : 0;
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "%s/%s", base, de->d_name);
        if (w && (lstat(path, &st) || st.st_mtime + 3600 >= now)) continue;
        remove_dir(path);
    }
    closedir(d);
}

void sn_infolog_dir(const char *store_path, int read_only, char *buf, size_t cap)
{
    static unsigned long handles;
    char base[64];
    snprintf(base, sizeof base, "/dev/shm/synaptic-%lu", (unsigned long)getuid());
    struct statvfs fs;
    buf[0] = 0;
    if (own_dir(base)) return;
    sweep_dead(base);
    if (statvfs(base, &fs) || (uint64_t)fs.f_bavail * fs.f_frsize < SN_INFOLOG_ROOM) return;
    unsigned long long h = (unsigned long long)path_hash(store_path);
    snprintf(buf, cap, "%s/%016llx-%c%ld-%lu", base, h, read_only ? 'r' : 'w', (long)getpid(),
             __atomic_add_fetch(&handles, 1, __ATOMIC_RELAXED));
    if (own_dir(buf)) buf[0] = 0;
}

/* The current LOG is the one whose name ends in "_LOG" (older ones are
 * "_LOG.old.<time>"). */
static int is_current_log(const char *name)
{
    size_t n = strlen(name);
    return n >= 4 && !strcmp(name + n - 4, "_LOG");
}

static void release(const char *dir, const char *store_path, int keep_copy)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char from[PATH_MAX], to[PATH_MAX];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(from, sizeof from, "%s/%s", dir, de->d_name);
        if (keep_copy && is_current_log(de->d_name)) {
            /* best effort: a full disk or a read-only directory keeps no copy */
            snprintf(to, sizeof to, "%s/LOG", store_path);
            if (sn_copy_file(from, to)) unlink(to);
        }
        unlink(from);
    }
    closedir(d);
    rmdir(dir);
}

static void remove_dir(const char *dir)
{
    release(dir, NULL, 0);
}

void sn_infolog_release(const char *dir, const char *store_path, int keep_copy)
{
    if (dir && *dir) release(dir, store_path, keep_copy);
}
