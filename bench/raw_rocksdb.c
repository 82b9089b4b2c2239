/* Raw RocksDB from C: the baseline synaptic's put/get is measured against
 * (bench/engine_bench.lua). It opens a database with the options a store
 * gives its weights (csrc/store/sn_store.c make_options: the same DB option
 * string, the weights column family's blob files and no compression, the
 * block cache and table format, the WAL on, sync as asked, no checksum on
 * reads) and times puts and pinned gets of values of one size under keys
 * shaped like synaptic's (expert, 0, layer, identity).
 *
 *   raw_rocksdb DIR SIZE COUNT RUNS SYNC
 *
 * prints, for each of put and get, the median over RUNS runs of COUNT
 * operations of the seconds per operation:
 *
 *   put SIZE SECONDS
 *   get SIZE SECONDS
 *
 * The values are pseudo-random bytes: RocksDB does not compress the weights
 * column family, and synaptic's own records of Gaussian weights are
 * near-incompressible after its codec, so the bytes written are alike. */
#define _POSIX_C_SOURCE 200809L
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, char *err)
{
    fprintf(stderr, "raw_rocksdb: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* synaptic's key: expert id, 0, layer (4 bytes BE), hlc (8 BE), origin (36) */
static size_t make_key(char *k, uint64_t i)
{
    static const char expert[] = "bench-expert";
    size_t n = sizeof expert - 1;
    memcpy(k, expert, n);
    k[n++] = 0;
    memset(k + n, 0, 4);
    n += 4;
    for (int b = 7; b >= 0; b--) k[n++] = (char)(i >> (8 * b));
    memcpy(k + n, "00000000-0000-4000-8000-000000000000", 36);
    return n + 36;
}

static rocksdb_options_t *options(const char *spec, rocksdb_options_t *base)
{
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_get_options_from_string(base, spec, o, &err);
    if (err) die("options", err);
    return o;
}

/* runs + 1 runs of count puts then count gets of what they wrote (run 0
 * warms up, untimed); the medians of seconds per put and per get. */
static void time_runs(rocksdb_t *db, rocksdb_writeoptions_t *wo, rocksdb_readoptions_t *ro,
                      char *val, size_t size, int count, int runs, double *put_s, double *get_s)
{
    char *err = NULL, key[128];
    double put_t[MAX_RUNS], get_t[MAX_RUNS];
    uint64_t next = 1;
    for (int r = 0; r <= runs; r++) {
        uint64_t first = next;
        double t0 = now();
        for (int i = 0; i < count; i++, next++) {
            val[0] = (char)next;   /* distinct values, like distinct versions */
            size_t klen = make_key(key, next);
            rocksdb_put(db, wo, key, klen, val, size, &err);
            if (err) die("put", err);
        }
        double t1 = now();
        for (int i = 0; i < count; i++) {
            size_t klen = make_key(key, first + (uint64_t)i), vlen = 0;
            rocksdb_pinnableslice_t *p = rocksdb_get_pinned(db, ro, key, klen, &err);
            if (err || !p) die("get", err);
            const char *v = rocksdb_pinnableslice_value(p, &vlen);
            if (vlen != size || v[size ? size - 1 : 0] != val[size ? size - 1 : 0])
                die("get: wrong value", NULL);
            rocksdb_pinnableslice_destroy(p);
        }
        double t2 = now();
        if (r > 0) {
            put_t[r - 1] = (t1 - t0) / count;
            get_t[r - 1] = (t2 - t1) / count;
        }
    }
    *put_s = median(put_t, runs);
    *get_s = median(get_t, runs);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: raw_rocksdb DIR SIZE COUNT RUNS SYNC\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t size = strtoul(argv[2], NULL, 10);
    int count = atoi(argv[3]), runs = atoi(argv[4]), sync = atoi(argv[5]);
    if (count < 1 || runs < 1 || runs > MAX_RUNS) die("arguments", NULL);

    /* sn_store.c make_options, DB and weights column family as one */
    rocksdb_options_t *base = rocksdb_options_create();
    rocksdb_options_t *db_opts = options(
        "create_if_missing=true;paranoid_checks=true;max_background_jobs=2;"
        "write_buffer_size=134217728;max_write_buffer_number=4;"
        "min_write_buffer_number_to_merge=1;level_compaction_dynamic_level_bytes=true;"
        "keep_log_file_num=3;max_log_file_size=1048576;"
        "wal_recovery_mode=kTolerateCorruptedTailRecords", base);
    rocksdb_options_t *cf_opts = options(
        "compression=kNoCompression;enable_blob_files=true;min_blob_size=4096;"
        "blob_file_size=268435456;enable_blob_garbage_collection=true", db_opts);
    /* RAW_ROCKSDB_OPTIONS: more options on top, to try what the store
     * might set (e.g. "arena_block_size=..."); unset in make bench */
    const char *extra = getenv("RAW_ROCKSDB_OPTIONS");
    rocksdb_options_t *opts = extra ? options(extra, cf_opts) : cf_opts;
    rocksdb_cache_t *cache = rocksdb_cache_create_lru(64u << 20);
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, cache);
    rocksdb_block_based_options_set_format_version(t, 5);
    rocksdb_options_set_block_based_table_factory(opts, t);

    char *err = NULL;
    uint64_t x = 88172645463325252ull;
    rocksdb_t *db = rocksdb_open(opts, dir, &err);
    if (err) die("open", err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, (unsigned char)(sync != 0));
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(ro, 0);

    double put_t, get_t;
    char *val = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;   /* xorshift64 */
        val[i] = (char)x;
    }
    time_runs(db, wo, ro, val, size, count, runs, &put_t, &get_t);
    printf("put %zu %.9f\nget %zu %.9f\n", size, put_t, size, get_t);

    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    if (opts != cf_opts) rocksdb_options_destroy(opts);
    rocksdb_options_destroy(cf_opts);
    rocksdb_options_destroy(db_opts);
    rocksdb_options_destroy(base);
    rocksdb_block_based_options_destroy(t);
    rocksdb_cache_destroy(cache);
    free(val);
    return 0;
}
