/* One record under its key (sn_record_io.c). */
#ifndef SN_RECORD_IO_H
#define SN_RECORD_IO_H

#include "store/sn_handle.h"

/* Encode a record and add it to a batch. */
SN_HIDDEN int sn_batch_put_record(sn_batch *b, int cf, const void *key, size_t klen,
                                  unsigned type, const sn_value *map, const sn_part *parts,
                                  size_t nparts, sn_codec codec, sn_err *e);
/* Copy a schema-checked map's fields onto a record map of the same schema
 * (the check guarantees every key is a field name under 64 bytes). */
SN_HIDDEN void sn_copy_fields(sn_value *rec, const sn_value *src);
/* SN_ECORRUPT unless field name of a record is the string p (its key). */
SN_HIDDEN int sn_expect_field(const sn_value *fields, const char *name, const void *p, size_t len,
                              sn_err *e);
/* Point-read and decode a non-payload record; SN_NOTFOUND when absent. */
SN_HIDDEN int sn_get_record(sn_store *s, int cf, const void *key, size_t klen,
                            unsigned type, sn_arena *a, sn_value *out, sn_err *e);
/* Prefix e's message with the record's name; returns rc. */
SN_HIDDEN int sn_record_err(sn_err *e, int rc, int cf, const unsigned char *k, size_t klen);

#endif
