/* Codecs for float32 payloads.
 *
 * All of them are byte-exact except bf16, which is lossy on purpose and
 * named so: it rounds each float32 to bfloat16 (round-to-nearest-even) and
 * decodes back to float32 with the low 16 bits zero. */
#ifndef SN_COMPRESS_H
#define SN_COMPRESS_H

#include "base/sn_types.h"

typedef enum {
    SN_CODEC_NONE    = 0,
    SN_CODEC_GZIP    = 1,  /* zlib deflate level 6, gzip wrapper */
    SN_CODEC_SHUFFLE = 2,  /* 4-byte lanes; only compressible lanes deflated */
    SN_CODEC_BF16    = 3,  /* lossy: bfloat16, 2-lane shuffle, deflate Z_RLE */
    SN_CODEC_COUNT
} sn_codec;

SN_HIDDEN const char *sn_codec_name(sn_codec c);
/* Returns 0 and sets *out when name is known, -1 otherwise. */
SN_HIDDEN int sn_codec_from_name(const char *name, sn_codec *out);
SN_HIDDEN int sn_codec_is_lossy(sn_codec c);

/* For lossy codecs: rewrite the len bytes at buf (len % 4 == 0) in place to
 * exactly what decoding will return, so a checksum taken afterwards matches
 * the decoded data. No-op for lossless codecs. */
SN_HIDDEN void sn_codec_quantize(sn_codec c, void *buf, size_t len);

/* Compress len bytes into a fresh malloc'd buffer (*out, *out_len).
 * bf16 requires len % 4 == 0. Returns SN_OK or an error code with e set. */
SN_HIDDEN int sn_compress(sn_codec c, const void *src, size_t len,
                          unsigned char **out, size_t *out_len, sn_err *e);

/* Decompress src into dst, which holds exactly raw_len bytes. Any input
 * that does not decode to exactly raw_len bytes is SN_ECORRUPT: the bytes
 * come from disk or a peer and are never trusted. */
SN_HIDDEN int sn_decompress(sn_codec c, const void *src, size_t len,
                            void *dst, size_t raw_len, sn_err *e);

/* Codec state kept between calls: the zstd contexts and the lane scratch
 * memory. Creating a zstd decoder context costs more than decoding a 64 KiB
 * payload's coded lane (measured: a third of a 64 KiB get), so whoever
 * decodes many payloads keeps one (the store does, sn_handle.h). The
 * caller owns it; one thread at a time. A failed call leaves it usable:
 * each call starts its zstd session afresh. */
typedef struct sn_codec_ctx sn_codec_ctx;
/* NULL when out of memory; the contexts inside are made on first use. */
SN_HIDDEN sn_codec_ctx *sn_codec_ctx_new(void);
SN_HIDDEN void sn_codec_ctx_free(sn_codec_ctx *x);
/* n bytes for a decode whose result the caller only checks and drops
 * (verify): x's own memory, valid until the next call for it, or (x NULL,
 * or n large) a fresh block in *owned for the caller to free. NULL when out
 * of memory. */
SN_HIDDEN void *sn_codec_ctx_out(sn_codec_ctx *x, size_t n, unsigned char **owned);
/* sn_compress and sn_decompress with x's state (x NULL: state made and
 * freed within the call, as sn_compress and sn_decompress do). */
SN_HIDDEN int sn_compress_ctx(sn_codec_ctx *x, sn_codec c, const void *src, size_t len,
                              unsigned char **out, size_t *out_len, sn_err *e);
SN_HIDDEN int sn_decompress_ctx(sn_codec_ctx *x, sn_codec c, const void *src, size_t len,
                                void *dst, size_t raw_len, sn_err *e);

#endif
