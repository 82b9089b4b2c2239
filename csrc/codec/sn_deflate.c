/* zlib deflate and inflate of a codec's stream, gathered from and
 * scattered to the raw payload a chunk at a time. */
#define ZLIB_CONST
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/sn_compress_int.h"

static int zlib_setup_error(sn_err *e, int zrc, const char *what)
{
    if (zrc == Z_MEM_ERROR) return sn_codec_nomem(e);
    /* only a zlib build that disagrees with its header gets here */
    return sn_fail(e, SN_EIO, "zlib %s failed to initialise (%d, zlib %s)", what, zrc,
                   zlibVersion());
}

static int deflate_gathered(z_stream *z, gather_fn gather, const unsigned char *raw,
                            size_t raw_len, size_t stream_len)
{
    unsigned char chunk[CHUNK];
    size_t off = 0;
    int zrc;
    do {
        size_t m = stream_len - off < CHUNK ? stream_len - off : CHUNK;
        gather(chunk, raw, raw_len, off, m);
        off += m;
        z->next_in = chunk;
        z->avail_in = (uInt)m;
        zrc = deflate(z, off == stream_len ? Z_FINISH : Z_NO_FLUSH);
    } while (zrc == Z_OK && z->avail_in == 0 && off < stream_len);
    return zrc;
}

/* Deflates the stream_len bytes gather derives from raw (raw itself when
 * gather is NULL) into one buffer of deflateBound bytes. Feeding the input
 * in chunks yields the same stream as one call, so zlib's promise that the
 * bound suffices for a single Z_FINISH still holds. */
int sn_z_compress(const zparams *p, gather_fn gather, const unsigned char *raw,
                  size_t raw_len, size_t stream_len, unsigned char **out, size_t *out_len,
                  sn_err *e)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    int zrc = deflateInit2(&z, p->level, Z_DEFLATED, p->window_bits, p->mem_level, p->strategy);
    if (zrc != Z_OK) return zlib_setup_error(e, zrc, "deflate");
    size_t cap = deflateBound(&z, (uLong)stream_len);
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return sn_codec_nomem(e);
    }
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (gather) {
        zrc = deflate_gathered(&z, gather, raw, raw_len, stream_len);
    } else {
        z.next_in = raw;
        z.avail_in = (uInt)raw_len;
        zrc = deflate(&z, Z_FINISH);
    }
    size_t n = z.total_out;
    deflateEnd(&z);
    if (zrc != Z_STREAM_END) {
        free(buf);
        return sn_fail(e, SN_EIO, "deflate did not finish (zlib %d)", zrc);
    }
    /* the bound exceeds the raw size (by 13% at memLevel 9); the caller
     * should not hold memory the stream did not need */
    unsigned char *shrunk = cap - n > cap / 8 ? realloc(buf, n ? n : 1) : NULL;
    *out = shrunk ? shrunk : buf;
    *out_len = n;
    return SN_OK;
}

/* ---- inflate ----------------------------------------------------------- */

static int inflate_scattered(z_stream *z, scatter_fn scatter, unsigned char *raw, size_t raw_len,
                             size_t stream_len)
{
    unsigned char chunk[CHUNK];
    int zrc;
    do {
        size_t off = z->total_out;
        size_t room = stream_len - off < CHUNK ? stream_len - off : CHUNK;
        z->next_out = chunk;
        z->avail_out = (uInt)room;
        zrc = inflate(z, Z_NO_FLUSH);
        scatter(raw, raw_len, off, chunk, room - z->avail_out);
    } while (zrc == Z_OK && z->total_out < stream_len);
    return zrc;
}

static int inflate_verdict(const z_stream *z, int zrc, size_t n, const char *what, sn_err *e)
{
    if (z->total_out > n)
        return sn_fail(e, SN_ECORRUPT, "%s payload decodes to more than the expected %zu bytes",
                       what, n);
    if (zrc == Z_STREAM_END && z->total_out < n)
        return sn_fail(e, SN_ECORRUPT, "%s payload decodes to %lu bytes, expected %zu", what,
                       (unsigned long)z->total_out, n);
    if (zrc == Z_STREAM_END && z->avail_in != 0)
        return sn_fail(e, SN_ECORRUPT, "%s payload has %u trailing bytes after the stream", what,
                       (unsigned)z->avail_in);
    if (zrc == Z_STREAM_END) return SN_OK;
    if (zrc == Z_MEM_ERROR) return sn_codec_nomem(e);
    if (zrc == Z_BUF_ERROR) return sn_fail(e, SN_ECORRUPT, "%s payload is truncated", what);
    return sn_fail(e, SN_ECORRUPT, "%s payload is malformed: %s", what,
                   z->msg ? z->msg : "invalid deflate stream");
}

/* Inflates src into exactly stream_len bytes, written to raw through
 * scatter, or straight into raw when scatter is NULL. zlib never writes past
 * avail_out nor reads past avail_in, so untrusted input is bounded on both
 * sides. */
int sn_z_decompress(int window_bits, scatter_fn scatter, const unsigned char *src,
                    size_t len, unsigned char *raw, size_t raw_len, size_t stream_len,
                    const char *what, sn_err *e)
{
    unsigned char spare;
    z_stream z;
    memset(&z, 0, sizeof z);
    int zrc = inflateInit2(&z, window_bits);
    if (zrc != Z_OK) return zlib_setup_error(e, zrc, "inflate");
    z.next_in = src;
    z.avail_in = (uInt)len;
    if (scatter) {
        zrc = inflate_scattered(&z, scatter, raw, raw_len, stream_len);
    } else {
        z.next_out = stream_len ? raw : &spare; /* zlib rejects a NULL output */
        z.avail_out = (uInt)stream_len;
        zrc = inflate(&z, Z_FINISH);
    }
    if (zrc == Z_OK || (zrc == Z_BUF_ERROR && z.avail_out == 0)) {
        /* every expected byte is out but the stream is not over: one byte of
         * room tells a stream that is too long from one that is cut short */
        z.next_out = &spare;
        z.avail_out = 1;
        zrc = inflate(&z, Z_FINISH);
    }
    int rc = inflate_verdict(&z, zrc, stream_len, what, e);
    inflateEnd(&z);
    return rc;
}
