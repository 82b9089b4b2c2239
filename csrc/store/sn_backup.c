/* Backups through RocksDB's backup engine: create, list, verify, restore.
 *
 * RocksDB leaves out of its list a backup whose meta file or private files
 * are damaged, so its "latest" is then an older backup, restored without a
 * word. Here the backups are the meta/<id> files on disk: the newest of
 * those is the latest, and a damaged one fails naming itself. RocksDB's
 * verify checks that files exist with their sizes; their contents are
 * checked here against the CRC32C each meta file lists, so that a damaged
 * file is named (RocksDB's restore reports a mismatch without the file). */
#include "store/sn_backup_engine.h"
#include "store/sn_format.h"
#include "store/sn_inuse.h"
#include "store/sn_rocks.h"
#include "store/sn_store.h"
#include "store/sn_wal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rocksdb_backup_engine_t *sn_backup_engine_open(const char *dir, int must_exist, sn_err *e)
{
    struct stat st;
    if (!dir || !*dir) { sn_fail(e, SN_EARG, "backup directory must not be empty"); return NULL; }
    if (stat(dir, &st) != 0) {
        if (must_exist) { sn_fail(e, SN_EIO, "no backups at '%s': %s", dir, strerror(errno)); return NULL; }
        if (mkdir(dir, 0755) != 0) {
            sn_fail(e, SN_EIO, "cannot create backup directory '%s': %s", dir, strerror(errno));
            return NULL;
        }
    }
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_backup_engine_t *be = rocksdb_backup_engine_open(o, dir, &err);
    rocksdb_options_destroy(o);
    if (err) {
        char what[4200];
        snprintf(what, sizeof what, "cannot open backups at '%s'", dir);
        sn_rocks_err(e, err, what);
        return NULL;
    }
    return be;
}

int sn_list_backups(const char *dir, sn_arena *a, sn_value *out, sn_err *e)
{
    rocksdb_backup_engine_t *be = sn_backup_engine_open(dir, 1, e);
    if (!be) return e->code;
    const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
    int n = rocksdb_backup_engine_info_count(info);
    int rc = SN_OK;
    sn_value *list = sn_arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof *list);
    if (!list) rc = sn_fail(e, SN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        sn_value *items = sn_arena_alloc(a, 8 * sizeof *items);
        if (!items) { rc = sn_fail(e, SN_ENOMEM, "out of memory"); break; }
        items[0] = sn_cstr("id");
        items[1] = sn_int(rocksdb_backup_engine_info_backup_id(info, i));
        items[2] = sn_cstr("timestamp");
        items[3] = sn_int(rocksdb_backup_engine_info_timestamp(info, i));
        items[4] = sn_cstr("size");
        items[5] = sn_int((int64_t)rocksdb_backup_engine_info_size(info, i));
        items[6] = sn_cstr("files");
        items[7] = sn_int(rocksdb_backup_engine_info_number_files(info, i));
        list[i] = sn_nil();
        list[i].type = SN_MAP;
        list[i].u.a.items = items;
        list[i].u.a.n = 4;
    }
    rocksdb_backup_engine_info_destroy(info);
    rocksdb_backup_engine_close(be);
    if (rc) return rc;
    *out = sn_nil();
    out->type = SN_ARRAY;
    out->u.a.items = list;
    out->u.a.n = (size_t)(n > 0 ? n : 0);
    return SN_OK;
}

/* ---- the backups on disk ---------------------------------------------------- */

/* The ids of the meta files in dir/meta, ascending (RocksDB's own names:
 * decimal, no leading zero; its .tmp files are not backups). */
static int meta_ids(const char *dir, uint32_t **ids, size_t *n, sn_err *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/meta", dir);
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? SN_OK : sn_fail(e, SN_EIO, "cannot read '%s': %s", path, strerror(errno));
    size_t cap = 0;
    struct dirent *de;
    int rc = SN_OK;
    while (!rc && (de = readdir(d))) {
        char *end;
        unsigned long v = strtoul(de->d_name, &end, 10);
        if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end || v > UINT32_MAX) continue;
        if (SN_GROW(*ids, *n, cap, 16, e)) rc = e->code;
        else (*ids)[(*n)++] = (uint32_t)v;
    }
    closedir(d);
    for (size_t i = 1; !rc && i < *n; i++)   /* few backups: insertion sort */
        for (size_t j = i; j > 0 && (*ids)[j - 1] > (*ids)[j]; j--) {
            uint32_t t = (*ids)[j];
            (*ids)[j] = (*ids)[j - 1];
            (*ids)[j - 1] = t;
        }
    if (rc) { free(*ids); *ids = NULL; *n = 0; }
    return rc;
}

/* ---- CRC32C, as RocksDB's backup meta files list it ----------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
/* SSE4.2's crc32 instruction is CRC32C: a backup's new files are checked
 * at several GB/s instead of the table's few hundred MB/s. */
__attribute__((target("sse4.2"))) static uint32_t crc_update_hw(uint32_t c, const unsigned char *p,
                                                               size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = (uint32_t)c64;
    for (; n; p++, n--) c = __builtin_ia32_crc32qi(c, *p);
    return c;
}
#endif

static uint32_t crc_update(uint32_t c, const unsigned char *p, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (crc_hw) return crc_update_hw(c, p, n);
#endif
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c;
}

/* The CRC32C of the file at path into *crc; its size into *size. */
static int file_crc32c(const char *path, uint32_t *crc, uint64_t *size, char *why, size_t cap)
{
    pthread_once(&crc_once, crc_init);
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(why, cap, "%s", strerror(errno)); return -1; }
    static const size_t chunk = 1 << 20;
    unsigned char *buf = malloc(chunk);
    if (!buf) { fclose(f); snprintf(why, cap, "out of memory"); return -1; }
    uint32_t c = 0xffffffffu;
    uint64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, chunk, f)) > 0) {
        c = crc_update(c, buf, got);
        total += got;
    }
    int bad = ferror(f);
    if (bad) snprintf(why, cap, "read error");
    free(buf);
    fclose(f);
    *crc = ~c;
    *size = total;
    return bad ? -1 : 0;
}

/* ---- the files a backup adds --------------------------------------------------- */

/* The shared files a backup directory held before a new backup: those the
 * new backup lists were checked when they were copied, so only the rest
 * are read back (sorted names, "shared_checksum/<file>"). */
typedef struct name_set { char **names; size_t n, cap; } name_set;

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int name_known(const name_set *ns, const char *name)
{
    return ns->n && bsearch(&name, ns->names, ns->n, sizeof *ns->names, name_cmp) != NULL;
}

static void names_free(name_set *ns)
{
    for (size_t i = 0; i < ns->n; i++) free(ns->names[i]);
    free(ns->names);
    ns->names = NULL;
    ns->n = ns->cap = 0;
}

/* The files in dir/shared and dir/shared_checksum (RocksDB's shared table
 * and blob files), as the meta files name them. */
static int names_load(const char *dir, name_set *ns, sn_err *e)
{
    static const char *const subs[] = { "shared", "shared_checksum" };
    int rc = SN_OK;
    for (size_t i = 0; !rc && i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
        DIR *d = opendir(path);
        if (!d) continue;   /* none yet */
        struct dirent *de;
        while (!rc && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char *name = malloc(strlen(subs[i]) + strlen(de->d_name) + 2);
            if (!name || SN_GROW(ns->names, ns->n, ns->cap, 64, e)) {
                free(name);
                rc = sn_fail(e, SN_ENOMEM, "out of memory");
                break;
            }
            sprintf(name, "%s/%s", subs[i], de->d_name);
            ns->names[ns->n++] = name;
        }
        closedir(d);
    }
    if (!rc && ns->n) qsort(ns->names, ns->n, sizeof *ns->names, name_cmp);
    if (rc) names_free(ns);
    return rc;
}

/* ---- verify ------------------------------------------------------------------ */

#define MAX_BACKUP_PROBLEMS 1000

typedef struct bk_check {
    const char *dir;
    sn_arena *a;
    sn_vlist problems;
    uint64_t files, bytes;
    const name_set *old;    /* NULL: check every file */
} bk_check;

static int bk_problem(bk_check *c, uint32_t id, const char *where, const char *msg, sn_err *e)
{
    if (c->problems.n >= MAX_BACKUP_PROBLEMS) return SN_OK;
    sn_value p;
    int rc = sn_problem_value(c->a, where, msg, id, &p, e);
    return rc ? rc : sn_vlist_push(&c->problems, p, e);
}

/* Each "<file> crc32 <n>" line of backup id's meta file, checked. */
static int check_contents(bk_check *c, uint32_t id, sn_err *e)
{
    char path[4200], line[4200], why[256];
    snprintf(path, sizeof path, "%s/meta/%u", c->dir, (unsigned)id);
    FILE *f = fopen(path, "r");
    if (!f) return bk_problem(c, id, path, strerror(errno), e);
    int rc = SN_OK;
    while (!rc && fgets(line, sizeof line, f)) {
        char name[4200];
        unsigned long long want;
        if (sscanf(line, "%4199s crc32 %llu", name, &want) != 2) continue;
        if (c->old && name_known(c->old, name)) continue;
        char file[8500];
        snprintf(file, sizeof file, "%s/%s", c->dir, name);
        uint32_t got;
        uint64_t size;
        if (file_crc32c(file, &got, &size, why, sizeof why)) {
            rc = bk_problem(c, id, file, why, e);
            continue;
        }
        c->files++;
        c->bytes += size;
        if (got != (uint32_t)want) {
            char msg[160];
            snprintf(msg, sizeof msg, "checksum mismatch: the backup lists crc32c %llu, the file has %u",
                     want, (unsigned)got);
            rc = bk_problem(c, id, file, msg, e);
        }
    }
    fclose(f);
    return rc;
}

/* The files backup id added (not in old) read back against its meta file. */
static int check_added(const char *dir, uint32_t id, const name_set *old, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    bk_check c = { dir, &a, { NULL, 0, 0 }, 0, 0, old };
    int rc = check_contents(&c, id, e);
    if (!rc && c.problems.n) {
        const sn_value *p = &c.problems.items[0];
        const sn_value *w = sn_map_get(p, "where"), *m = sn_map_get(p, "error");
        rc = sn_fail(e, SN_ECORRUPT, "backup %u does not verify: %.*s: %.*s", (unsigned)id,
                     (int)w->u.s.len, w->u.s.p, (int)m->u.s.len, m->u.s.p);
    }
    free(c.problems.items);
    sn_arena_free(&a);
    return rc;
}

/* A new backup is checked where it costs what it copied: RocksDB's check
 * of the whole backup (its files are there, at their sizes: no reading),
 * and the contents of the files this backup added against their CRC32C.
 * Unchanged files are neither read nor checksummed again: each table and
 * blob file's CRC32C is in the MANIFEST (file_checksum_gen_factory,
 * sn_store.c), which the backup engine names shared files by, and it
 * checks every file it copies against it. verify_backup checks it all. */
int sn_backup(sn_store *s, const char *dir, uint32_t *id, sn_err *e)
{
    rocksdb_backup_engine_t *be = sn_backup_engine_open(dir, 0, e);
    if (!be) return e->code;
    name_set old = { NULL, 0, 0 };
    int rc = names_load(dir, &old, e);
    char *err = NULL;
    /* flush first so the backup holds everything acknowledged so far */
    if (!rc) rocksdb_backup_engine_create_new_backup_flush(be, s->db, 1, &err);
    if (!rc && err) rc = sn_rocks_err(e, err, "backup failed");
    if (!rc) {
        const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
        int n = rocksdb_backup_engine_info_count(info);
        *id = n > 0 ? rocksdb_backup_engine_info_backup_id(info, n - 1) : 0;
        rocksdb_backup_engine_info_destroy(info);
        rocksdb_backup_engine_verify_backup(be, *id, &err);
        if (err) rc = sn_rocks_err(e, err, "backup does not verify");
    }
    rocksdb_backup_engine_close(be);
    if (!rc) rc = check_added(dir, *id, &old, e);
    names_free(&old);
    return rc;
}

/* One backup: RocksDB's check (meta file, every file there with its size),
 * then the contents. */
static int check_backup(bk_check *c, rocksdb_backup_engine_t *be, uint32_t id, sn_err *e)
{
    char *err = NULL;
    rocksdb_backup_engine_verify_backup(be, id, &err);
    if (err) {
        char where[4200];
        snprintf(where, sizeof where, "%s/meta/%u", c->dir, (unsigned)id);
        int rc = bk_problem(c, id, where, err, e);
        rocksdb_free(err);
        return rc;
    }
    return check_contents(c, id, e);
}

static sn_value map_of(sn_value *items, size_t pairs)
{
    sn_value m = sn_nil();
    m.type = SN_MAP;
    m.u.a.items = items;
    m.u.a.n = pairs;
    return m;
}

/* Problems of backup id (0: of every backup) into c; ids checked into *list. */
static int check_backups(bk_check *c, uint32_t id, sn_vlist *list, sn_err *e)
{
    uint32_t *ids;
    size_t n;
    int rc = meta_ids(c->dir, &ids, &n, e);
    if (rc) return rc;
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= ids[i] == id;
    if (id && !found) rc = sn_fail(e, SN_EIO, "no backup %u in '%s'", (unsigned)id, c->dir);
    else if (!n) rc = sn_fail(e, SN_EIO, "no backups in '%s'", c->dir);
    rocksdb_backup_engine_t *be = rc ? NULL : sn_backup_engine_open(c->dir, 1, e);
    if (!rc && !be) rc = e->code;
    for (size_t i = 0; !rc && i < n; i++) {
        if (id && ids[i] != id) continue;
        rc = sn_vlist_push(list, sn_int(ids[i]), e);
        if (!rc) rc = check_backup(c, be, ids[i], e);
    }
    if (be) rocksdb_backup_engine_close(be);
    free(ids);
    return rc;
}

int sn_verify_backup(const char *dir, uint32_t id, sn_arena *a, sn_value *report, int *ok, sn_err *e)
{
    if (!dir || !*dir) return sn_fail(e, SN_EARG, "backup directory must not be empty");
    struct stat st;
    if (stat(dir, &st) != 0) return sn_fail(e, SN_EIO, "no backups at '%s': %s", dir, strerror(errno));
    bk_check c = { dir, a, { NULL, 0, 0 }, 0, 0, NULL };
    sn_vlist list = { NULL, 0, 0 };
    int rc = check_backups(&c, id, &list, e);
    sn_value ids, problems;
    int vrc = sn_vlist_finish(&list, a, &ids, e);
    int prc = sn_vlist_finish(&c.problems, a, &problems, e);
    if (rc) return rc;
    if (vrc || prc) return e->code;
    sn_value *items = sn_arena_alloc(a, 8 * sizeof *items);
    if (!items) return sn_fail(e, SN_ENOMEM, "out of memory");
    items[0] = sn_cstr("backups");
    items[1] = ids;
    items[2] = sn_cstr("files");
    items[3] = sn_int((int64_t)c.files);
    items[4] = sn_cstr("bytes");
    items[5] = sn_int((int64_t)c.bytes);
    items[6] = sn_cstr("problems");
    items[7] = problems;
    *report = map_of(items, 4);
    *ok = problems.u.a.n == 0;
    return SN_OK;
}

/* ---- restore ------------------------------------------------------------------ */

/* Removes dir and the files in it (a store directory has no others). */
static void remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char file[4400];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
        unlink(file);
    }
    closedir(d);
    rmdir(dir);
}

/* What is at path may be replaced: nothing there, an empty directory, or
 * (force) any directory; never a store open here or in another process. */
static int check_target(const char *path, int force, int *lockfd, sn_err *e)
{
    struct stat st;
    *lockfd = -1;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return SN_OK;
        return sn_fail(e, SN_EIO, "cannot restore into '%s': %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return sn_fail(e, SN_EIO, "cannot restore into '%s': it exists and is not a directory", path);
    int rc = sn_inuse_claim(path, lockfd, e);
    if (rc) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        return sn_fail(e, rc, "cannot restore: %s", why);
    }
    DIR *d = opendir(path);
    if (!d) rc = sn_fail(e, SN_EIO, "cannot restore into '%s': %s", path, strerror(errno));
    int entries = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) entries++;
    if (d) closedir(d);
    if (!rc && entries && !force)
        rc = sn_fail(e, SN_EIO, "cannot restore into '%s': it is not empty "
                                "(force replaces what is there)", path);
    if (rc) { sn_inuse_release(*lockfd); *lockfd = -1; }
    return rc;
}

/* The backup to restore: id, or the newest meta file (damaged or not). */
static int choose(const char *dir, uint32_t *id, sn_err *e)
{
    uint32_t *ids;
    size_t n;
    int rc = meta_ids(dir, &ids, &n, e);
    if (rc) return rc;
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= ids[i] == *id;
    if (!n) rc = sn_fail(e, SN_EIO, "no backups in '%s'", dir);
    else if (!*id) *id = ids[n - 1];
    else if (!found) rc = sn_fail(e, SN_EIO, "no backup %u in '%s'", (unsigned)*id, dir);
    free(ids);
    return rc;
}

/* The backup is checked whole before the target is touched: RocksDB's
 * restore clears the target first, so a backup that failed half-way would
 * cost what force replaced and give nothing back. */
static int check_before_restore(const char *dir, uint32_t id, sn_err *e)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value report;
    int ok;
    int rc = sn_verify_backup(dir, id, &a, &report, &ok, e);
    if (!rc && !ok) {
        const sn_value *p = &sn_map_get(&report, "problems")->u.a.items[0];
        const sn_value *w = sn_map_get(p, "where"), *m = sn_map_get(p, "error");
        size_t more = sn_map_get(&report, "problems")->u.a.n - 1;
        char extra[64] = "";
        if (more) snprintf(extra, sizeof extra, " (and %zu more problems)", more);
        rc = sn_fail(e, SN_ECORRUPT, "backup %u in '%s' is damaged: %.*s: %.*s%s", (unsigned)id, dir,
                     (int)w->u.s.len, w->u.s.p, (int)m->u.s.len, m->u.s.p, extra);
    }
    sn_arena_free(&a);
    return rc;
}

int sn_restore_backup(const char *dir, const char *db_path, uint32_t id, int force, sn_err *e)
{
    if (!db_path || !*db_path) return sn_fail(e, SN_EARG, "store path must not be empty");
    if (!dir || !*dir) return sn_fail(e, SN_EARG, "backup directory must not be empty");
    struct stat st;
    if (stat(dir, &st) != 0) return sn_fail(e, SN_EIO, "no backups at '%s': %s", dir, strerror(errno));
    int lockfd;
    int rc = choose(dir, &id, e);
    if (!rc) rc = check_target(db_path, force, &lockfd, e);
    if (rc) return rc;
    rc = check_before_restore(dir, id, e);
    /* restored beside the target and put in its place in one step at the
     * end: a restore killed early must not leave at db_path an empty or
     * half-copied directory (a read-write open turns an empty one into a
     * new, empty store); a leftover sibling is ours, by its name */
    char sib[4200];
    snprintf(sib, sizeof sib, "%s.restoring", db_path);
    remove_flat(sib);
    rocksdb_backup_engine_t *be = rc ? NULL : sn_backup_engine_open(dir, 1, e);
    if (!rc && !be) rc = e->code;
    if (!rc) {
        char *err = NULL;
        rocksdb_restore_options_t *ro = rocksdb_restore_options_create();
        rocksdb_backup_engine_restore_db_from_backup(be, sib, sib, ro, id, &err);
        rocksdb_restore_options_destroy(ro);
        if (err) {
            char what[8600];
            snprintf(what, sizeof what, "restoring backup %u from '%s' into '%s' failed", (unsigned)id,
                     dir, db_path);
            rc = sn_rocks_err(e, err, what);
        }
        rocksdb_backup_engine_close(be);
    }
    /* a restored store is not the store that was backed up, even restored
     * into its old directory: it takes its own origin, here, in one open
     * for writing, so that a read-only open (which cannot write one) never
     * reports the backed-up store's. The marker makes the open take it;
     * the rename below keeps the directory's inode, so it stays. */
    if (!rc) rc = sn_mark_new_origin(sib, e);
    if (!rc) {
        sn_store_opts o;
        sn_store_default_opts(&o);
        sn_store *s = NULL;
        rc = sn_store_open(sib, &o, &s, e);
        sn_store_close(s);
    }
    if (!rc && sn_swap_into(sib, db_path) != 0)
        rc = sn_fail(e, SN_EIO, "cannot put the restored store in place at '%s': %s", db_path,
                     strerror(errno));
    if (!rc) sn_sync_parent(db_path);
    remove_flat(sib);   /* what force replaced, or a failed restore's part */
    sn_inuse_release(lockfd);
    return rc;
}
