/* WAL damage on open: a WAL the MANIFEST still needs that is gone, or one
 * damaged before its end, found before RocksDB's recovery would drop what
 * follows in silence (kPointInTimeRecovery) or say only "checksum
 * mismatch" (kTolerateCorruptedTailRecords). */
#define _GNU_SOURCE   /* renameat2 (sn_swap_into) */
#include "store/sn_keys.h"
#include "store/sn_wal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/syscall.h>

static void wal_file(char *buf, size_t cap, const char *path, uint64_t n)
{
    snprintf(buf, cap, "%s/%06llu.log", path, (unsigned long long)n);
}

static int exists(const char *file)
{
    struct stat st;
    return stat(file, &st) == 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The WAL numbers >= min in path, ascending; the caller frees *out. */
static int list_wals(const char *path, uint64_t min, uint64_t **out, size_t *n, sn_err *e)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    DIR *dir = opendir(path);
    if (!dir) return sn_fail(e, SN_EIO, "cannot list '%s'", path);
    struct dirent *de;
    int rc = SN_OK;
    while (!rc && (de = readdir(dir))) {
        char *end;
        unsigned long long num = strtoull(de->d_name, &end, 10);
        if (end == de->d_name || strcmp(end, ".log") != 0 || num < min) continue;
        rc = SN_GROW(*out, *n, cap, 8, e);
        if (!rc) (*out)[(*n)++] = num;
    }
    closedir(dir);
    if (*n) qsort(*out, *n, sizeof **out, cmp_u64);
    return rc;
}

static int list_wals(const char *path, uint64_t min, uint64_t **out, size_t *n, sn_err *e);

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

void sn_sync_parent(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    sync_dir(dir);
}

int sn_swap_into(const char *from, const char *to)
{
    struct stat st;
    if (stat(to, &st) != 0) return errno == ENOENT ? rename(from, to) : -1;
    /* one step: a kill at any point leaves either store at `to`, never
     * none (a read-write open of a missing path makes a new, empty one) */
    if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    /* a filesystem without RENAME_EXCHANGE: two renames, briefly none */
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.replaced", to);
    if (rename(to, aside) != 0) return -1;
    if (rename(from, to) != 0) { rename(aside, to); return -1; }
    return rename(aside, from);
}

/* Whether fallocate keeps space past the end of a file here (1), tried on
 * the marker's own descriptor, which is then emptied. */
static int keeps_prealloc(int fd)
{
    struct stat st;
    int ok = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536) == 0 && fstat(fd, &st) == 0 &&
             st.st_size == 0 && (uint64_t)st.st_blocks * 512 >= 65536;
    return ftruncate(fd, 0) == 0 && ok;
}

int sn_open_marker(const char *path, int present, sn_err *e)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/" SN_OPEN_MARKER, path);
    if (!present) {
        /* durable, or a clean close could later pass for a crash */
        if (unlink(file) == 0) sync_dir(path);
        return SN_OK;
    }
    /* the WAL RocksDB has just opened: the newest WAL stays at least this
     * new until the store is closed */
    uint64_t *nums;
    size_t n;
    int rc = list_wals(path, 0, &nums, &n, e);
    if (rc) return rc;
    char num[40];
    unsigned long long newest = n ? (unsigned long long)nums[n - 1] : 0ull;
    free(nums);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return sn_fail(e, SN_EIO, "cannot create %s: %s", file, strerror(errno));
    /* "p": a cut WAL can be told from a torn one here (newest_wal_cut);
     * the last release reads the number and stops */
    int len = snprintf(num, sizeof num, "%llu%s\n", newest, keeps_prealloc(fd) ? " p" : "");
    rc = write(fd, num, (size_t)len) == len ? fsync(fd) : -1;
    close(fd);
    if (rc == 0) rc = sync_dir(path);
    if (rc) return sn_fail(e, SN_EIO, "cannot write %s: %s", file, strerror(errno));
    return SN_OK;
}

void sn_wal_drop_flushed(const char *path)
{
    /* RocksDB leaves one behind now and then: the column families whose
     * memtables were empty at the last WAL switch keep its number in the
     * MANIFEST, and the purge after the last flush does not see it go */
    uint64_t *nums;
    size_t n;
    sn_err e;
    if (list_wals(path, 0, &nums, &n, &e)) return;
    char file[4200];
    int removed = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        wal_file(file, sizeof file, path, nums[i]);
        removed |= unlink(file) == 0;
    }
    free(nums);
    if (removed) sync_dir(path);
}

/* The newest WAL must be at least as new as the last one a flush recorded
 * in the MANIFEST: RocksDB never deletes the newest WAL of an open store,
 * so after a crash it is there unless something else removed it. (After a
 * clean close RocksDB may delete every WAL, which is why this is asked
 * only when the SYNAPTIC-OPEN marker says the last writer did not close.) */
static int newest_wal_gone(const char *path, uint64_t opened, uint64_t *needed, sn_err *e)
{
    sn_manifest m;
    sn_err me;
    *needed = opened;
    if (sn_manifest_read(path, &m, &me) == SN_OK)
        for (size_t i = 0; i < m.ncf; i++)
            if (m.cf[i].live && m.cf[i].log > *needed) *needed = m.cf[i].log;
    uint64_t *nums;
    size_t n;
    if (list_wals(path, 0, &nums, &n, e)) return 0;
    int gone = *needed > 0 && (n == 0 || nums[n - 1] < *needed);
    free(nums);
    return gone;
}

/* A WAL RocksDB is writing has space allocated past its end (it
 * preallocates in steps of up to max_total_wal_size, keeping the size) and
 * a kill leaves it so; a WAL cut short afterwards (truncated, rewritten,
 * copied) has none. So, when the marker says this filesystem keeps such
 * space, a crashed store's newest WAL without it was cut, and RocksDB would
 * take the cut for a torn tail and drop what followed in silence. What is
 * gone cannot be counted. (A WAL whose end falls exactly on a
 * preallocation step also has none: a false alarm, once in ~10 MiB.) */
static int newest_wal_cut(const char *path, sn_wal_damage *d, sn_err *e)
{
    uint64_t *nums;
    size_t n;
    struct stat st;
    char file[4200];
    if (list_wals(path, 0, &nums, &n, e) || n == 0) { free(nums); return SN_OK; }
    uint64_t num = nums[n - 1];
    free(nums);
    wal_file(file, sizeof file, path, num);
    if (stat(file, &st) != 0 || st.st_size == 0) return SN_OK;
    uint64_t used = ((uint64_t)st.st_size + 4095) & ~(uint64_t)4095;
    if ((uint64_t)st.st_blocks * 512 > used) return SN_OK;
    d->found = 1;
    d->cut = 1;
    snprintf(d->file, sizeof d->file, "%06llu.log", (unsigned long long)num);
    d->offset = (uint64_t)st.st_size;
    snprintf(d->error, sizeof d->error, "cut short at byte %llu (none of the space past its "
             "end that a crash leaves)", (unsigned long long)st.st_size);
    return SN_OK;
}

int sn_wal_missing(const char *path, sn_wal_damage *d, sn_err *e)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/" SN_OPEN_MARKER, path);
    FILE *f = fopen(file, "rb");
    if (!f) return SN_OK;
    unsigned long long opened = 0;
    char flags[8] = "";
    if (fscanf(f, "%llu %7s", &opened, flags) < 1) opened = 0;
    fclose(f);
    /* A flush beside us records a newer WAL before it deletes the old
     * one: look again before believing a WAL is gone. */
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t needed;
        if (!newest_wal_gone(path, opened, &needed, e))
            return strchr(flags, 'p') ? newest_wal_cut(path, d, e) : SN_OK;
        if (attempt == 2) {
            d->found = 1;
            snprintf(d->file, sizeof d->file, "%06llu.log", (unsigned long long)needed);
            snprintf(d->error, sizeof d->error, "missing (the store was not closed and this "
                     "WAL, which holds the writes since the last flush, is gone)");
            return SN_OK;
        }
        nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
    }
    return SN_OK;
}

typedef struct names_ctx { sn_wal_damage *d; const sn_manifest *m; } names_ctx;

static void note_write(void *ctx, uint32_t cf_id, const unsigned char *k, size_t klen, int del)
{
    names_ctx *c = ctx;
    const char *cf_name = NULL;
    for (size_t i = 0; i < c->m->ncf; i++)
        if (c->m->cf[i].id == cf_id && c->m->cf[i].live) cf_name = c->m->cf[i].name;
    int cf = -1;
    for (int i = 0; cf_name && i < CF_COUNT; i++)
        if (strcmp(cf_name, sn_cf_names[i]) == 0) cf = i;
    /* the default family holds the replication log: a copy of the others */
    if (cf <= CF_DEFAULT) return;
    c->d->nwrites++;
    if (c->d->nnames >= SN_WAL_MAX_NAMES) return;
    char where[700];
    sn_describe_key(cf, k, klen, where, sizeof where);
    char *name = malloc(strlen(where) + 8);
    if (!name) return;
    sprintf(name, "%s%s", del ? "delete " : "", where);
    c->d->names[c->d->nnames++] = name;
}

/* Reads one WAL; past the first damage (in this or an earlier file) every
 * readable write is noted as dropped. */
static void scan_file(const char *file, const char *base, const sn_manifest *m, sn_wal_damage *d)
{
    sn_logr r;
    if (sn_logr_open(&r, file)) return;
    int dropped_whole = d->found;
    names_ctx ctx = { d, m };
    while (sn_logr_next(&r))
        if (d->found || r.damaged) sn_wal_batch_entries(r.rec, r.rlen, note_write, &ctx);
    d->ndamaged += r.damaged_records;
    if (dropped_whole) {
        d->dropped_files++;
        d->dropped_bytes += r.size;
    } else if (r.damaged) {
        d->found = 1;
        snprintf(d->file, sizeof d->file, "%s", base);
        d->offset = r.bad_off;
        snprintf(d->error, sizeof d->error, "%s", r.why);
        d->dropped_bytes = r.size - r.bad_off;
    }
    sn_logr_close(&r);
}

int sn_wal_scan(const char *path, sn_wal_damage *d, sn_err *e)
{
    sn_manifest m;
    sn_err me;
    if (sn_manifest_read(path, &m, &me)) return SN_OK;
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < m.ncf; i++)
        if (m.cf[i].live && m.cf[i].log < min) min = m.cf[i].log;
    uint64_t *nums;
    size_t n;
    int rc = list_wals(path, min == UINT64_MAX ? 0 : min, &nums, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        char file[4200], base[64];
        wal_file(file, sizeof file, path, nums[i]);
        snprintf(base, sizeof base, "%06llu.log", (unsigned long long)nums[i]);
        scan_file(file, base, &m, d);
    }
    free(nums);
    return rc;
}

void sn_wal_damage_free(sn_wal_damage *d)
{
    for (size_t i = 0; i < d->nnames; i++) free(d->names[i]);
    memset(d, 0, sizeof *d);
}

static void recover_hint(char *buf, size_t cap)
{
    snprintf(buf, cap, "open with recover = \"point_in_time\" to accept that, or salvage the "
                       "store (synaptic.salvage)");
}

/* A read-write open deletes the table and blob files its MANIFEST does not
 * list: after a crash those are the outputs of a flush or compaction that
 * never finished, but after a clean close (every such file deleted by the
 * open before it) they are files a cut or damaged MANIFEST lost, holding
 * the store's data. Refuse instead. (After a crash the two cannot be told
 * apart here: a MANIFEST cut after a crash is left to RocksDB.) */
static int check_unlisted(const char *path, sn_err *e)
{
    char file[4200], first[256], manifest[256] = "its MANIFEST";
    snprintf(file, sizeof file, "%s/" SN_OPEN_MARKER, path);
    if (exists(file)) return SN_OK;
    size_t n;
    if (sn_manifest_unlisted(path, &n, first, sizeof first, 0) || n == 0) return SN_OK;
    snprintf(file, sizeof file, "%s/CURRENT", path);
    FILE *f = fopen(file, "rb");
    if (f && fgets(manifest, sizeof manifest, f)) manifest[strcspn(manifest, "\n")] = 0;
    if (f) fclose(f);
    return sn_fail(e, SN_ECORRUPT, "%zu table or blob file%s (%s%s) %s not listed in %s, which "
                   "was cut or damaged", n, n == 1 ? "" : "s", first, n > 1 ? " first" : "",
                   n == 1 ? "is" : "are", manifest);
}

int sn_wal_unlisted(const char *path, sn_err *e) { return check_unlisted(path, e); }

int sn_wal_before_open(const char *path, int recover, sn_wal_damage **out, sn_err *e)
{
    *out = NULL;
    char file[4200], hint[160];
    snprintf(file, sizeof file, "%s/CURRENT", path);
    if (!exists(file)) return SN_OK;   /* a new store */
    if (check_unlisted(path, e)) {
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        return sn_fail(e, SN_ECORRUPT, "cannot open store at '%s': %s: a read-write open would "
                       "delete them; salvage the store (synaptic.salvage) to copy out what they "
                       "hold", path, msg);
    }
    sn_wal_damage d;
    memset(&d, 0, sizeof d);
    int rc = sn_wal_missing(path, &d, e);
    if (!rc && ((!d.found && recover) || d.cut)) {
        /* damage before the end is told more precisely than a cut */
        sn_wal_damage scan;
        memset(&scan, 0, sizeof scan);
        rc = sn_wal_scan(path, &scan, e);
        if (!rc && scan.found) { sn_wal_damage_free(&d); d = scan; }
        else sn_wal_damage_free(&scan);
    }
    if (rc || !d.found) return rc;
    recover_hint(hint, sizeof hint);
    if (!recover && d.cut) {
        sn_fail(e, SN_ECORRUPT, "cannot open store at '%s': WAL %s is %s: the writes that "
                "followed are gone (how many cannot be told); %s", path, d.file, d.error, hint);
        return SN_ECORRUPT;
    }
    if (!recover) {
        sn_fail(e, SN_ECORRUPT, "cannot open store at '%s': WAL %s is %s: opening would lose "
                "the writes it holds; %s", path, d.file, d.error, hint);
        sn_wal_damage_free(&d);
        return SN_ECORRUPT;
    }
    *out = malloc(sizeof d);
    if (!*out) { sn_wal_damage_free(&d); return sn_fail(e, SN_ENOMEM, "out of memory"); }
    **out = d;
    return SN_OK;
}

void sn_wal_explain(const char *path, sn_err *e)
{
    sn_wal_damage d;
    sn_err se;
    memset(&d, 0, sizeof d);
    if (sn_wal_scan(path, &d, &se) || !d.found) return;
    char msg[sizeof e->msg], hint[160];
    snprintf(msg, sizeof msg, "%s", e->msg);
    recover_hint(hint, sizeof hint);
    sn_fail(e, SN_ECORRUPT, "%s: WAL %s is damaged at byte %llu (%s); the %llu bytes from "
            "there on (%zu damaged record%s, %zu writes still readable) would be dropped; %s",
            msg, d.file, (unsigned long long)d.offset, d.error,
            (unsigned long long)d.dropped_bytes, d.ndamaged, d.ndamaged == 1 ? "" : "s",
            d.nwrites, hint);
    sn_wal_damage_free(&d);
}

/* The first table file in path whose footer is not a block-based table's
 * (magic number, then a format version RocksDB knows), or "" (the footer
 * is the last 53 bytes: ..., format_version u32, magic u64, little-endian). */
static void bad_footer(const char *path, char *out, size_t cap)
{
    static const unsigned char magic[8] = { 0xf7, 0xcf, 0xf4, 0x85, 0xb7, 0x41, 0xe2, 0x88 };
    out[0] = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && !out[0] && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".sst")) continue;
        char file[4400];
        unsigned char tail[12];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        FILE *f = fopen(file, "rb");
        int ok = f && fseek(f, -12, SEEK_END) == 0 && fread(tail, 1, 12, f) == 12;
        if (f) fclose(f);
        uint32_t version = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 |
                           (uint32_t)tail[3] << 24;
        if (!ok || memcmp(tail + 4, magic, 8) || version > 6)
            snprintf(out, cap, "%s", de->d_name);
    }
    if (d) closedir(d);
}

/* msg without RocksDB's repeated "Corruption: " prefixes. */
static const char *strip_prefixes(const char *msg)
{
    while (!strncmp(msg, "Corruption: ", 12)) msg += 12;
    return msg;
}

void sn_table_explain(const char *path, sn_err *e)
{
    /* RocksDB loads every table file while it replays the MANIFEST and
     * blames a bad one on the MANIFEST ("... in /db/000023.sst in file
     * /db/MANIFEST-000005"), a missing one as "Corruption: Corruption: IO
     * error: ... /db/000023.ldb" (the old name it tried last), and a bad
     * footer without naming any table: name the table file instead */
    const char *in_manifest = strstr(e->msg, " in file ");
    if (!in_manifest || !strstr(in_manifest, "MANIFEST")) return;
    const char *end = NULL;
    for (const char *p = e->msg; p < in_manifest; p++)
        if ((!strncmp(p, ".sst", 4) || !strncmp(p, ".blob", 5) || !strncmp(p, ".ldb", 4)) &&
            (!end || p > end))
            end = p;
    char file[128], reason[sizeof e->msg];
    if (!end) {
        bad_footer(path, file, sizeof file);
        if (!file[0]) return;
        const char *why = strstr(e->msg, "Corruption: ");
        why = strip_prefixes(why ? why : e->msg);
        snprintf(reason, sizeof reason, "its footer is damaged: %.*s", (int)(in_manifest - why), why);
    } else {
        const char *start = end;
        while (start > e->msg && start[-1] != '/' && start[-1] != ' ') start--;
        int ldb = !strncmp(end, ".ldb", 4);
        snprintf(file, sizeof file, "%.*s%s", (int)(end - start) + (ldb ? 0 : end[1] == 's' ? 4 : 5),
                 start, ldb ? ".sst" : "");
        if (strstr(e->msg, "No such file")) {
            sn_fail(e, SN_ECORRUPT, "cannot open store at '%s': table file %s is missing (the "
                    "MANIFEST lists it); salvage the store (synaptic.salvage) to copy out what is "
                    "still readable", path, file);
            return;
        }
        const char *why = strstr(e->msg, "Corruption: ");
        why = strip_prefixes(why ? why : e->msg);
        snprintf(reason, sizeof reason, "%.*s", (int)(in_manifest - why), why);
    }
    sn_fail(e, SN_ECORRUPT, "cannot open store at '%s': table file %s cannot be read (%s); "
            "salvage the store (synaptic.salvage) to copy out what is still readable",
            path, file, reason);
}
