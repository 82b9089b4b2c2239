/* Backups through RocksDB's backup engine: create, list, restore. */
#include "store/sn_store_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static rocksdb_backup_engine_t *open_engine(const char *dir, int must_exist, sn_err *e)
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

int sn_backup(sn_store *s, const char *dir, uint32_t *id, sn_err *e)
{
    rocksdb_backup_engine_t *be = open_engine(dir, 0, e);
    if (!be) return e->code;
    char *err = NULL;
    /* flush first so the backup holds everything acknowledged so far */
    rocksdb_backup_engine_create_new_backup_flush(be, s->db, 1, &err);
    int rc = err ? sn_rocks_err(e, err, "backup failed") : SN_OK;
    if (!rc) {
        const rocksdb_backup_engine_info_t *info = rocksdb_backup_engine_get_backup_info(be);
        int n = rocksdb_backup_engine_info_count(info);
        *id = n > 0 ? rocksdb_backup_engine_info_backup_id(info, n - 1) : 0;
        rocksdb_backup_engine_info_destroy(info);
        rocksdb_backup_engine_verify_backup(be, *id, &err);
        if (err) rc = sn_rocks_err(e, err, "backup does not verify");
    }
    rocksdb_backup_engine_close(be);
    return rc;
}

int sn_list_backups(const char *dir, sn_arena *a, sn_value *out, sn_err *e)
{
    rocksdb_backup_engine_t *be = open_engine(dir, 1, e);
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

int sn_restore_backup(const char *dir, const char *db_path, uint32_t id, sn_err *e)
{
    if (!db_path || !*db_path) return sn_fail(e, SN_EARG, "store path must not be empty");
    rocksdb_backup_engine_t *be = open_engine(dir, 1, e);
    if (!be) return e->code;
    char *err = NULL;
    rocksdb_restore_options_t *ro = rocksdb_restore_options_create();
    if (id)
        rocksdb_backup_engine_restore_db_from_backup(be, db_path, db_path, ro, id, &err);
    else
        rocksdb_backup_engine_restore_db_from_latest_backup(be, db_path, db_path, ro, &err);
    rocksdb_restore_options_destroy(ro);
    rocksdb_backup_engine_close(be);
    return err ? sn_rocks_err(e, err, "restore failed") : SN_OK;
}
