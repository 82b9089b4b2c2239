/* RocksDB's log format (WAL and MANIFEST), write batches and version edits,
 * read from the files themselves (see sn_wal.h for why). */
#include "store/sn_wal.h"

#include <dirent.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HEADER = 7, FULL = 1, FIRST = 2, MIDDLE = 3, LAST = 4 };

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t sn_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *b = p;
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* RocksDB stores checksums masked (util/crc32c.h), so that a CRC of data
 * holding CRCs stays meaningful. */
static uint32_t unmask(uint32_t m)
{
    uint32_t rot = m - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sn_logr_open(sn_logr *r, const char *file)
{
    memset(r, 0, sizeof *r);
    struct stat st;
    r->f = fopen(file, "rb");
    if (!r->f) return -1;
    if (fstat(fileno(r->f), &st) != 0) { fclose(r->f); r->f = NULL; return -1; }
    r->size = (uint64_t)st.st_size;
    return 0;
}

void sn_logr_close(sn_logr *r)
{
    if (r->f) fclose(r->f);
    free(r->rec);
    r->f = NULL;
    r->rec = NULL;
}

static void note_damage(sn_logr *r, uint64_t off, const char *why)
{
    if (!r->damaged) {
        r->damaged = 1;
        r->bad_off = off;
        r->why = why;
    }
}

static void damage(sn_logr *r, uint64_t off, const char *why)
{
    note_damage(r, off, why);
    r->damaged_records++;
    r->pos = r->blen;     /* resynchronise at the next block */
    r->in_frag = 0;
}

static int append(sn_logr *r, const unsigned char *p, size_t n)
{
    if (r->rlen + n > r->rcap) {
        size_t cap = r->rcap ? r->rcap : 4096;
        while (cap < r->rlen + n) cap *= 2;
        unsigned char *q = realloc(r->rec, cap);
        if (!q) return -1;
        r->rec = q;
        r->rcap = cap;
    }
    memcpy(r->rec + r->rlen, p, n);
    r->rlen += n;
    return 0;
}

/* Whether a whole fragment that passes its checksum starts at r->pos. */
static int fragment_ok(const sn_logr *r)
{
    if (r->blen - r->pos < HEADER) return 0;
    const unsigned char *h = r->block + r->pos;
    size_t len = (size_t)h[4] | (size_t)h[5] << 8;
    if (h[6] < FULL || h[6] > LAST || HEADER + len > r->blen - r->pos) return 0;
    return sn_crc32c(sn_crc32c(0, h + 6, 1), h + HEADER, len) == unmask(le32(h));
}

/* One fragment; returns 1 when a logical record is complete, 0 to go on,
 * -1 at the end of the file. */
static int fragment(sn_logr *r)
{
    if (r->blen - r->pos < HEADER) {
        /* a block trailer, or the end of what was read */
        r->block_off += r->blen;
        r->pos = 0;
        r->blen = fread(r->block, 1, SN_LOG_BLOCK, r->f);
        return r->blen == 0 ? -1 : 0;
    }
    const unsigned char *h = r->block + r->pos;
    uint64_t off = r->block_off + r->pos;
    size_t len = (size_t)h[4] | (size_t)h[5] << 8;
    unsigned type = h[6];
    int at_end = r->block_off + r->blen >= r->size;
    if (type == 0 && len == 0) {   /* zeros: preallocated space */
        r->pos = r->blen;
        return 0;
    }
    if (HEADER + len > r->blen - r->pos) {
        if (at_end) { r->pos = r->blen; r->in_frag = 0; return -1; }   /* torn tail */
        damage(r, off, "bad record length");
        return 0;
    }
    uint32_t crc = sn_crc32c(sn_crc32c(0, h + 6, 1), h + HEADER, len);
    r->pos += HEADER + len;
    if (crc != unmask(le32(h))) {
        /* a flipped byte in a record's payload leaves its length whole:
         * when a fragment that passes its own checksum follows, reading
         * goes on there, so what lies beyond the damage in this block is
         * still seen (and named as dropped), not skipped with the block */
        note_damage(r, off, "checksum mismatch");
        r->in_frag = 0;
        r->damaged_records++;
        if (!fragment_ok(r)) r->pos = r->blen;
        return 0;
    }
    /* a fragment that passes its checksum but does not fit: skipped, and
     * reading goes on right after it, as RocksDB's reader does */
    if (type < FULL || type > LAST) { note_damage(r, off, "unknown record type"); return 0; }
    if ((type == FULL || type == FIRST) && r->in_frag)
        note_damage(r, r->rec_off, "partial record without end");
    if ((type == MIDDLE || type == LAST) && !r->in_frag) {
        /* right after a resynchronisation this is the tail of a record
         * whose start was skipped, not new damage */
        note_damage(r, off, "missing start of fragmented record");
        return 0;
    }
    if (type == FULL || type == FIRST) { r->rlen = 0; r->rec_off = off; }
    if (append(r, h + HEADER, len)) { damage(r, off, "out of memory"); return 0; }
    r->in_frag = type == FIRST || type == MIDDLE;
    return type == FULL || type == LAST;
}

int sn_logr_next(sn_logr *r)
{
    for (;;) {
        int got = fragment(r);
        if (got) return got > 0;
    }
}

/* ---- varints and slices ------------------------------------------------- */

typedef struct cur { const unsigned char *p, *end; int bad; } cur;

static uint64_t varint(cur *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift <= 63 && c->p < c->end; shift += 7) {
        unsigned char b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    c->bad = 1;
    return 0;
}

static const unsigned char *slice(cur *c, size_t *n)
{
    uint64_t len = varint(c);
    if (c->bad || len > (uint64_t)(c->end - c->p)) { c->bad = 1; *n = 0; return NULL; }
    const unsigned char *p = c->p;
    c->p += len;
    *n = (size_t)len;
    return p;
}

static void skip(cur *c, const char *shape)
{
    size_t n;
    for (; *shape && !c->bad; shape++) {
        if (*shape == 'v') varint(c);
        else slice(c, &n);
    }
}

/* ---- write batches (db/write_batch.cc) ------------------------------------ */

void sn_wal_batch_entries(const unsigned char *p, size_t n, sn_wal_batch_entry_fn fn, void *ctx)
{
    if (n < 12) return;
    uint32_t count = le32(p + 8);
    cur c = { p + 12, p + n, 0 };
    for (uint32_t i = 0; i < count && c.p < c.end && !c.bad; i++) {
        unsigned tag = *c.p++;
        uint32_t cf = 0;
        /* column-family forms carry the family id first */
        if (tag == 0x4 || tag == 0x5 || tag == 0x6 || tag == 0x8 || tag == 0xE || tag == 0x10)
            cf = (uint32_t)varint(&c);
        size_t klen;
        const unsigned char *k;
        switch (tag) {
        case 0x1: case 0x5: case 0x2: case 0x6: case 0xF: case 0xE: case 0x11: case 0x10:
            k = slice(&c, &klen);
            skip(&c, "s");
            if (!c.bad && tag != 0xF && tag != 0xE) fn(ctx, cf, k, klen, 0);
            break;
        case 0x0: case 0x4: case 0x7: case 0x8:
            k = slice(&c, &klen);
            if (!c.bad) fn(ctx, cf, k, klen, 1);
            break;
        case 0x3: skip(&c, "s"); i--; break;   /* log data: not an entry */
        default: return;
        }
    }
}

/* ---- the MANIFEST (db/version_edit.cc) --------------------------------- */

static int find_cf(sn_manifest *m, uint32_t id)
{
    for (size_t i = 0; i < m->ncf; i++)
        if (m->cf[i].id == id && m->cf[i].live) return (int)i;
    return -1;
}

/* The fields of one tag, by shape: v varint, s slice; '+' custom fields
 * follow (varint tags, 1 ends them, each with a slice); '*' the same, 0
 * ending them (db/blob/blob_file_addition.cc's kEndMarker). */
static const char *tag_shape(uint32_t tag)
{
    switch (tag) {
    case 1: return "s";
    case 2: case 3: case 4: case 9: case 10: case 200: case 203: case 300: return "v";
    case 5: return "vs";
    case 6: return "vv";
    case 7: return "vvvss";
    case 100: return "vvvssvv";
    case 102: return "vvvvssvv";
    case 103: return "vvvssvv+";
    case 201: return "s";
    case 202: return "";
    /* blob file records end their custom fields with 0, not 1 */
    case 400: return "vvvss*";
    case 401: return "vvv*";
    default: return (tag & (1u << 13)) ? "s" : NULL;   /* safe-to-ignore tags */
    }
}

static void skip_shape(cur *c, const char *shape)
{
    size_t len = strlen(shape);
    char end = len ? shape[len - 1] : 0;
    int custom = end == '+' || end == '*';
    char fields[16];
    snprintf(fields, sizeof fields, "%.*s", (int)(len - (size_t)custom), shape);
    skip(c, fields);
    uint64_t last = end == '+' ? 1 : 0;
    while (custom && !c->bad && varint(c) != last) skip(c, "s");
}

static int apply_edit(sn_manifest *m, const unsigned char *p, size_t n)
{
    cur c = { p, p + n, 0 };
    uint32_t cf = 0;
    int has_log = 0, drop = 0;
    uint64_t log = 0;
    const unsigned char *add = NULL;
    size_t addlen = 0;
    while (c.p < c.end && !c.bad) {
        uint32_t tag = (uint32_t)varint(&c);
        const char *shape = tag_shape(tag);
        if (!shape) return -1;
        if (tag == 2) { log = varint(&c); has_log = 1; continue; }
        if (tag == 200) { cf = (uint32_t)varint(&c); continue; }
        if (tag == 201) { add = slice(&c, &addlen); continue; }
        if (tag == 202) drop = 1;
        skip_shape(&c, shape);
    }
    if (c.bad) return -1;
    if (add) {
        if (m->ncf >= SN_MAX_CFS) return -1;
        m->cf[m->ncf].id = cf;
        m->cf[m->ncf].live = 1;
        m->cf[m->ncf].log = has_log ? log : 0;
        snprintf(m->cf[m->ncf].name, sizeof m->cf[0].name, "%.*s", (int)addlen, add);
        m->ncf++;
        return 0;
    }
    int i = find_cf(m, cf);
    if (i < 0) return 0;
    if (drop) m->cf[i].live = 0;
    else if (has_log) m->cf[i].log = log;
    return 0;
}

int sn_manifest_read(const char *path, sn_manifest *m, sn_err *e)
{
    char file[4200], name[256] = "";
    memset(m, 0, sizeof *m);
    m->ncf = 1;
    m->cf[0].live = 1;
    strcpy(m->cf[0].name, "default");
    snprintf(file, sizeof file, "%s/CURRENT", path);
    FILE *f = fopen(file, "rb");
    if (!f || !fgets(name, sizeof name, f)) {
        if (f) fclose(f);
        return sn_fail(e, SN_EIO, "cannot read %s", file);
    }
    fclose(f);
    name[strcspn(name, "\n")] = 0;
    snprintf(file, sizeof file, "%s/%s", path, name);
    sn_logr r;
    if (sn_logr_open(&r, file)) return sn_fail(e, SN_EIO, "cannot read %s", file);
    int bad = 0;
    while (!bad && sn_logr_next(&r)) bad = apply_edit(m, r.rec, r.rlen);
    bad |= r.damaged;
    sn_logr_close(&r);
    return bad ? sn_fail(e, SN_ECORRUPT, "%s: not readable as a MANIFEST", name) : SN_OK;
}

/* ---- table and blob files the MANIFEST does not list ---------------------- */

typedef struct numset { uint64_t *v; size_t n, cap; int bad; } numset;

static void numset_add(numset *ns, uint64_t x)
{
    sn_err e;
    if (SN_GROW(ns->v, ns->n, ns->cap, 64, &e)) { ns->bad = 1; return; }
    ns->v[ns->n++] = x;
}

static int cmp_num(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every table and blob file number an edit names, added or deleted: the
 * shapes of tag_shape, whose first two varints are (level, number) for
 * table files (6, 7, 100, 102, 103) and whose first is the number for
 * blob files (400, 401). */
static void edit_files(const unsigned char *p, size_t n, numset *ns)
{
    cur c = { p, p + n, 0 };
    while (c.p < c.end && !c.bad) {
        uint32_t tag = (uint32_t)varint(&c);
        const char *shape = tag_shape(tag);
        if (!shape) { ns->bad = 1; return; }
        const unsigned char *at = c.p;
        if (tag == 6 || tag == 7 || tag == 100 || tag == 102 || tag == 103) {
            varint(&c);
            numset_add(ns, varint(&c));
        } else if (tag == 400 || tag == 401) {
            numset_add(ns, varint(&c));
        }
        c.p = at;
        skip_shape(&c, shape);
    }
    if (c.bad) ns->bad = 1;
}

int sn_manifest_unlisted(const char *path, size_t *count, char *first, size_t cap, int remove)
{
    char file[4200], name[256] = "";
    *count = 0;
    first[0] = 0;
    snprintf(file, sizeof file, "%s/CURRENT", path);
    FILE *f = fopen(file, "rb");
    if (!f || !fgets(name, sizeof name, f)) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    name[strcspn(name, "\n")] = 0;
    snprintf(file, sizeof file, "%s/%s", path, name);
    sn_logr r;
    if (sn_logr_open(&r, file)) return -1;
    numset ns = { 0 };
    while (!ns.bad && sn_logr_next(&r)) edit_files(r.rec, r.rlen, &ns);
    sn_logr_close(&r);
    DIR *d = ns.bad ? NULL : opendir(path);
    if (!d) { free(ns.v); return -1; }
    if (ns.n) qsort(ns.v, ns.n, sizeof *ns.v, cmp_num);
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        unsigned long long num = strtoull(de->d_name, &end, 10);
        if (end == de->d_name || (strcmp(end, ".sst") && strcmp(end, ".ldb") && strcmp(end, ".blob")))
            continue;
        if (ns.n && bsearch(&(uint64_t){ num }, ns.v, ns.n, sizeof *ns.v, cmp_num)) continue;
        if (!*count || strcmp(de->d_name, first) < 0) snprintf(first, cap, "%s", de->d_name);
        (*count)++;
        if (remove) {
            snprintf(file, sizeof file, "%s/%s", path, de->d_name);
            unlink(file);
        }
    }
    closedir(d);
    free(ns.v);
    return 0;
}

/* ---- blob files (db/blob/blob_log_format.h) ------------------------------ */

enum { BLOB_HEADER = 30, BLOB_RECORD = 32 };

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A record header at p that passes its own CRC and fits in the file. */
static int blob_header_ok(const unsigned char *p, uint64_t off, uint64_t size, uint64_t *klen,
                          uint64_t *vlen)
{
    *klen = le64(p);
    *vlen = le64(p + 8);
    if (unmask(le32(p + 24)) != sn_crc32c(0, p, 24)) return 0;
    return *klen <= size && *vlen <= size && off + BLOB_RECORD + *klen + *vlen <= size;
}

int sn_blob_records(const char *file, sn_blob_record_fn fn, void *ctx)
{
    FILE *f = fopen(file, "rb");
    if (!f) return -1;
    struct stat st;
    unsigned char *d = NULL;
    uint64_t size = 0;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
        size = (uint64_t)st.st_size;
        d = malloc(size);
        if (d && fread(d, 1, size, f) != size) { free(d); d = NULL; }
    }
    fclose(f);
    if (!d) return -1;
    /* a damaged header is skipped by looking for the next one whose own
     * CRC holds, byte by byte: slow, and only ever on damage */
    for (uint64_t off = BLOB_HEADER; off + BLOB_RECORD <= size;) {
        uint64_t klen, vlen;
        if (!blob_header_ok(d + off, off, size, &klen, &vlen)) { off++; continue; }
        const unsigned char *k = d + off + BLOB_RECORD;
        fn(ctx, k, (size_t)klen, k + klen, (size_t)vlen);
        off += BLOB_RECORD + klen + vlen;
    }
    free(d);
    return 0;
}
