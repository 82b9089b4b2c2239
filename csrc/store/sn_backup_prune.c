/* Deleting backups: one by id (BackupEngine::DeleteBackup), or all but the
 * newest n (PurgeOldBackups).
 *
 * Debian's RocksDB 7.8 C API has rocksdb_backup_engine_purge_old_backups
 * but no delete by id. A backup is its meta/<id> file: the engine lists the
 * backups whose meta files it reads, and a purge ends with the engine's
 * garbage collection (an engine just opened assumes an earlier deletion may
 * have been cut short), which removes private/<id> directories and shared
 * files that no listed backup uses. So one backup is deleted by unlinking
 * meta/<id> (the step that commits: after it the backup is gone, whatever
 * happens next) and then purging with a count that keeps every other
 * backup, which collects its files. An interrupted delete leaves only
 * garbage that the next purge or delete collects. */
#include "store/sn_backup_engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int listed(rocksdb_backup_engine_t *be)
{
    const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
    int n = rocksdb_backup_engine_info_count(info);
    rocksdb_backup_engine_info_destroy(info);
    return n;
}

/* Keeps the newest keep backups; *deleted: how many went. */
static int purge(rocksdb_backup_engine_t *be, const char *dir, uint32_t keep, uint32_t *deleted,
                 sn_err *e)
{
    int before = listed(be);
    char *err = NULL;
    rocksdb_backup_engine_purge_old_backups(be, keep, &err);
    if (err) {
        char what[4200];
        snprintf(what, sizeof what, "cannot purge backups at '%s'", dir);
        return sn_rocks_err(e, err, what);
    }
    int after = listed(be);
    if (deleted) *deleted = before > after ? (uint32_t)(before - after) : 0;
    return SN_OK;
}

int sn_purge_old_backups(const char *dir, uint32_t keep, uint32_t *deleted, sn_err *e)
{
    rocksdb_backup_engine_t *be = sn_backup_engine_open(dir, 1, e);
    if (!be) return e->code;
    int rc = purge(be, dir, keep, deleted, e);
    rocksdb_backup_engine_close(be);
    return rc;
}

int sn_delete_backup(const char *dir, uint32_t id, sn_err *e)
{
    rocksdb_backup_engine_t *be = sn_backup_engine_open(dir, 1, e);
    if (!be) return e->code;
    rocksdb_backup_engine_close(be);   /* checked it is a backup directory; not held across the unlink */
    char meta[4200];
    snprintf(meta, sizeof meta, "%s/meta/%u", dir, (unsigned)id);
    if (unlink(meta) != 0) {
        if (errno == ENOENT) return sn_fail(e, SN_EIO, "no backup %u in '%s'", (unsigned)id, dir);
        return sn_fail(e, SN_EIO, "cannot delete backup %u: '%s': %s", (unsigned)id, meta, strerror(errno));
    }
    be = sn_backup_engine_open(dir, 1, e);
    if (!be) return e->code;
    int rc = purge(be, dir, (uint32_t)listed(be), NULL, e);
    rocksdb_backup_engine_close(be);
    return rc;
}
