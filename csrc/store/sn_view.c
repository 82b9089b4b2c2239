/* A read-only view of a store that another process is writing.
 *
 * A plain read-only open reads the MANIFEST, then opens the table files it
 * lists, then reads blobs as they are asked for; a writer compacting beside
 * it deletes files all the while, and RocksDB reports each loss as
 * "Corruption". RocksDB's secondary instances are made for this but do not
 * support blob files (Debian's 7.8 crashes reading a blob through one). So
 * the view is made the way RocksDB's own checkpoints are: hard links to the
 * immutable table and blob files, copies of the files that grow (MANIFEST,
 * WALs), in a directory of its own inside the store (hard links need the
 * same filesystem). A file the writer deletes afterwards lives on in the
 * view until the reader closes it.
 *
 * Order matters. The WALs are listed first, then the MANIFEST is copied,
 * then the table and blob files are linked, then the WALs copied: every
 * file the copied MANIFEST names existed when it was copied and is linked
 * unless the writer deleted it within those milliseconds (the open then
 * fails with "No such file" and the view is made again), and every WAL it
 * still needs was listed before it and must be among the copies (else a
 * flush retired it meanwhile: made again). */
#include "store/sn_wal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VIEW_PREFIX ".synaptic-view-"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int sn_copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in && ferror(in)) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out)) rc = -1;
    return rc;
}

/* Links (tables, blobs) or copies (WALs, named files) what matches into
 * view; a file that vanished meanwhile is skipped (the checks catch it). */
static int bring(const char *path, const char *view, int wals)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        const char *n = de->d_name;
        char a[4400], b[4400];
        snprintf(a, sizeof a, "%s/%s", path, n);
        snprintf(b, sizeof b, "%s/%s", view, n);
        if (wals && ends_with(n, ".log")) {
            if (sn_copy_file(a, b) && errno != ENOENT) rc = -1;
        } else if (!wals && (ends_with(n, ".sst") || ends_with(n, ".blob"))) {
            if (link(a, b) && errno != EEXIST && errno != ENOENT) rc = -1;
        }
    }
    closedir(d);
    return rc;
}

static int copy_named(const char *path, const char *view, const char *name)
{
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/%s", path, name);
    snprintf(b, sizeof b, "%s/%s", view, name);
    return sn_copy_file(a, b);
}

/* CURRENT, the MANIFEST it names, IDENTITY; -1 when CURRENT moved on
 * between the two reads (a new MANIFEST): try again. */
static int copy_manifest(const char *path, const char *view)
{
    char cur[4400], name[256] = "";
    if (copy_named(path, view, "CURRENT")) return -1;
    snprintf(cur, sizeof cur, "%s/CURRENT", view);
    FILE *f = fopen(cur, "rb");
    if (!f || !fgets(name, sizeof name, f)) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    name[strcspn(name, "\n")] = 0;
    if (strncmp(name, "MANIFEST-", 9) != 0 || copy_named(path, view, name)) return -1;
    copy_named(path, view, "IDENTITY");
    return 0;
}

static int has_wal(const char *dir, uint64_t n)
{
    char file[4400];
    struct stat st;
    snprintf(file, sizeof file, "%s/%06llu.log", dir, (unsigned long long)n);
    return stat(file, &st) == 0;
}

/* The WAL numbers in path now (up to cap). */
static size_t wals_now(const char *path, uint64_t *nums, size_t cap)
{
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) && n < cap) {
        char *end;
        unsigned long long num = strtoull(de->d_name, &end, 10);
        if (end != de->d_name && strcmp(end, ".log") == 0) nums[n++] = num;
    }
    if (d) closedir(d);
    return n;
}

void sn_view_remove(char *view)
{
    if (!view) return;
    DIR *d = opendir(view);
    struct dirent *de;
    char file[4400];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(file, sizeof file, "%s/%s", view, de->d_name);
        unlink(file);
    }
    if (d) closedir(d);
    rmdir(view);
    free(view);
}

/* Views left by readers that died: their pid is in the name. */
static void remove_stale(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, VIEW_PREFIX, strlen(VIEW_PREFIX)) != 0) continue;
        long pid = strtol(de->d_name + strlen(VIEW_PREFIX), NULL, 10);
        if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            char dir[4400];
            snprintf(dir, sizeof dir, "%s/%s", path, de->d_name);
            sn_view_remove(strdup(dir));
        }
    }
    if (d) closedir(d);
}

char *sn_view_make(const char *path)
{
    remove_stale(path);
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/" VIEW_PREFIX "%ld-XXXXXX", path, (long)getpid());
    if (!mkdtemp(dir)) return NULL;
    char *view = strdup(dir);
    if (!view) { rmdir(dir); return NULL; }
    uint64_t before[256];
    size_t nbefore = wals_now(path, before, 256);
    int bad = copy_manifest(path, view) || bring(path, view, 0) || bring(path, view, 1);
    sn_manifest m;
    sn_err e;
    if (!bad && sn_manifest_read(view, &m, &e) == SN_OK) {
        uint64_t min = UINT64_MAX;
        for (size_t i = 0; i < m.ncf; i++)
            if (m.cf[i].live && m.cf[i].log < min) min = m.cf[i].log;
        for (size_t i = 0; !bad && i < nbefore; i++)
            bad = before[i] >= min && !has_wal(view, before[i]);
    }
    if (bad) { sn_view_remove(view); return NULL; }
    return view;
}
