/* Stores open in this process, and RocksDB's LOCK (sn_inuse.c). */
#ifndef SN_INUSE_H
#define SN_INUSE_H

#include "store/sn_handle.h"

SN_HIDDEN int sn_inuse_add(const sn_store *s, sn_err *e);
SN_HIDDEN void sn_inuse_remove(const sn_store *s);
/* SN_OK if no store is open at path, here or in another process, and then,
 * when *lockfd >= 0, this process holds path's LOCK until sn_inuse_release
 * (other processes' opens fail meanwhile). Otherwise SN_EIO, e saying which
 * ("open in this process", "in use by another process (pid N)"). */
SN_HIDDEN int sn_inuse_claim(const char *path, int *lockfd, sn_err *e);
SN_HIDDEN void sn_inuse_release(int lockfd);
/* A failed open's RocksDB error err (freed here) as a message naming path;
 * a lock held elsewhere reads "store is already open (by this or another
 * process)" rather than RocksDB's own text. */
SN_HIDDEN int sn_open_err(sn_err *e, char *err, const char *path);

#endif
