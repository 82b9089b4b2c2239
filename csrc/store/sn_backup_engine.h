/* RocksDB's BackupEngine over a backup directory, shared by the backup and
 * restore paths (sn_backup.c) and the lifecycle ones (sn_backup_prune.c). */
#ifndef SN_BACKUP_ENGINE_H
#define SN_BACKUP_ENGINE_H

#include "store/sn_rocks.h"

/* The engine over dir; when must_exist, a missing dir is "no backups at",
 * otherwise it is created. NULL with e set on failure. */
SN_HIDDEN rocksdb_backup_engine_t *sn_backup_engine_open(const char *dir, int must_exist, sn_err *e);

#endif
