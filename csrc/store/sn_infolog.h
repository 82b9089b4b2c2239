/* RocksDB's info LOG beside or away from the store (sn_infolog.c). */
#ifndef SN_INFOLOG_H
#define SN_INFOLOG_H

#include "store/sn_handle.h"

/* The info LOG directory of a handle on the store at path ("" to leave the LOG
 * beside the data), and its release at close: the last LOG copied into the
 * store when keep_copy, the directory emptied (sn_infolog.c). */
SN_HIDDEN void sn_infolog_dir(const char *store_path, int read_only, char *buf, size_t cap);
SN_HIDDEN void sn_infolog_release(const char *dir, const char *store_path, int keep_copy);

#endif
