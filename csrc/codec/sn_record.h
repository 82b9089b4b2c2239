/* The on-disk (and on-wire) record envelope.
 *
 *   [format_version, type, codec, raw_len, crc32, meta, blob]
 *
 * meta is the record's fields (a msgpack array in schema order) kept as
 * bytes; blob is an optional float32 payload after the codec. crc32 covers
 * the meta bytes followed by the raw (decoded) payload, so a flipped bit
 * anywhere, or a codec that decodes to the wrong bytes, is caught on every
 * load. Lossy codecs quantise before the checksum is taken. */
#ifndef SN_RECORD_H
#define SN_RECORD_H

#include "codec/sn_compress.h"
#include "codec/sn_schema.h"

#define SN_FORMAT_VERSION 1

typedef struct sn_buf {
    unsigned char *data;   /* malloc'd; the caller frees */
    size_t len;
} sn_buf;

typedef struct sn_part {
    void *p;               /* const on encode, written on load */
    size_t len;
} sn_part;

typedef struct sn_record {
    unsigned type;
    sn_codec codec;
    uint64_t raw_len;
    uint32_t crc;
    const unsigned char *meta;   /* into the decoded bytes */
    size_t meta_len;
    const unsigned char *blob;   /* into the decoded bytes, still encoded */
    size_t blob_len;
    sn_value fields;             /* SN_MAP in the arena, schema-checked */
} sn_record;

/* map must already satisfy the type's schema. parts (may be 0) are
 * concatenated into the payload. */
SN_HIDDEN int sn_record_encode(unsigned type, const sn_value *map,
                               const sn_part *parts, size_t nparts,
                               sn_codec codec, sn_buf *out, sn_err *e);

/* Parse and check an envelope and its fields. The record points into data,
 * which must outlive it. A record without payload is fully verified here;
 * one with payload is verified by sn_record_load. */
SN_HIDDEN int sn_record_decode(const void *data, size_t len, sn_arena *a,
                               sn_record *r, sn_err *e);

/* Decode the payload into parts whose lengths sum to raw_len, and check the
 * crc. On failure the parts hold unspecified bytes. */
SN_HIDDEN int sn_record_load(const sn_record *r, const sn_part *parts,
                             size_t nparts, sn_err *e);

/* The same with the caller's codec state (sn_compress.h), which saves
 * making zstd contexts per record; x NULL is the same as above. */
SN_HIDDEN int sn_record_encode_ctx(sn_codec_ctx *x, unsigned type, const sn_value *map,
                                   const sn_part *parts, size_t nparts, sn_codec codec,
                                   sn_buf *out, sn_err *e);
SN_HIDDEN int sn_record_load_ctx(sn_codec_ctx *x, const sn_record *r, const sn_part *parts,
                                 size_t nparts, sn_err *e);

/* msgpack encoding of a bare value and back (used for P2P frames too). */
SN_HIDDEN int sn_value_pack(const sn_value *v, sn_buf *out, sn_err *e);
SN_HIDDEN int sn_value_unpack(const void *data, size_t len, sn_arena *a,
                              sn_value *out, sn_err *e);

SN_HIDDEN uint32_t sn_crc32(uint32_t crc, const void *p, size_t len);

#endif
