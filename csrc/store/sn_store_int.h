/* Transitional umbrella: the storage files' internals are in one header
 * per concern now; include those. This one stays only so code written
 * against the old single header still builds; new code must not use it.
 *   sn_handle.h     the store handle, batch and pending structures
 *   sn_keys.h       every key: column families, byte order, builders, parsers
 *   sn_clock.h      the hybrid logical clock
 *   sn_rocks.h      RocksDB errors, iterators, point reads, id checks, problems
 *   sn_batch.h      temporary batches, a batch's pending writes
 *   sn_record_io.h  one record under its key; the record check
 *   sn_inuse.h      stores open in this process
 *   sn_format.h     store format and identity at open
 *   sn_infolog.h    RocksDB's info LOG directory
 *   sn_rank.h       the rank cache
 *   sn_weights_int.h weights reads by identity, trimming, pins
 *   sn_kinds.h      the record kinds table and the record check
 *   sn_replica_int.h replication hooks and internals */
#ifndef SN_STORE_INT_H
#define SN_STORE_INT_H

#include "store/sn_handle.h"
#include "store/sn_keys.h"
#include "store/sn_clock.h"
#include "store/sn_rocks.h"
#include "store/sn_batch.h"
#include "store/sn_record_io.h"
#include "store/sn_inuse.h"
#include "store/sn_format.h"
#include "store/sn_infolog.h"
#include "store/sn_rank.h"
#include "store/sn_weights_int.h"
#include "store/sn_kinds.h"

#endif
