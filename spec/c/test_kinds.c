/* The record kinds table and the one record check (csrc/store/sn_kinds.c),
 * without a store: records are built in memory and checked under keys
 * made by sn_keys.c. Linked against the core's objects (make check-kinds).
 * Exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/sn_schema.h"
#include "store/sn_kinds.h"
#include "store/sn_replica.h"

static int failures;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            failures++;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                           \
            fputc('\n', stderr);                                    \
        }                                                           \
    } while (0)

static const char ORIGIN[] = "0123456789abcdef0123456789abcdef0123";
#define HLC ((uint64_t)12345 << 16)

/* A metric record named name (len bytes), encoded into out. */
static void metric_record(const char *name, size_t len, sn_buf *out)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_value rec;
    sn_err e;
    if (sn_record_map(&sn_schema_metric, &a, &rec, &e)) abort();
    sn_map_set(&rec, "name", sn_str(name, len));
    sn_map_set(&rec, "timestamp", sn_num(1.5));
    sn_map_set(&rec, "value", sn_num(2.0));
    sn_map_set(&rec, "hlc", sn_int((int64_t)HLC));
    sn_map_set(&rec, "origin", sn_cstr(ORIGIN));
    if (sn_record_encode(SN_REC_METRIC, &rec, NULL, 0, SN_CODEC_NONE, out, &e)) abort();
    sn_arena_free(&a);
}

/* SN_OK, or the check's message in msg. */
static int check(int cf, const unsigned char *k, size_t klen, const sn_buf *v, char *msg)
{
    sn_arena a;
    sn_arena_init(&a);
    sn_err e = { 0, "" };
    int rc = sn_record_check(NULL, cf, k, klen, (const char *)v->data, v->len, &a, NULL, &e);
    snprintf(msg, 256, "%s", e.msg);
    sn_arena_free(&a);
    return rc;
}

static int replica_check(int cf, const unsigned char *k, size_t klen, const sn_buf *v, char *msg)
{
    sn_entry en;
    memset(&en, 0, sizeof en);
    en.kind = SN_KIND_PUT;
    en.cf = cf;
    memcpy(en.key, k, klen);
    en.klen = klen;
    en.hlc = HLC;
    memcpy(en.origin, ORIGIN, SN_ORIGIN_LEN);
    sn_err e = { 0, "" };
    int rc = sn_replica_check(NULL, &en, v->data, v->len, &e);
    snprintf(msg, 256, "%s", e.msg);
    return rc;
}

static void check_table(void)
{
    CHECK(sn_kind_of(CF_DEFAULT) == NULL, "the default column family holds no kind");
    for (int cf = CF_DEFAULT + 1; cf < CF_COUNT; cf++) {
        const sn_kind *kd = sn_kind_of(cf);
        CHECK(kd && kd->cf == cf, "column family %d has no row of its own", cf);
        if (!kd) continue;
        CHECK(sn_schema_for(kd->type) != NULL, "%s: no schema for its type", kd->name);
        CHECK(!kd->time_field || sn_schema_index(sn_schema_for(kd->type), kd->time_field) >= 0,
              "%s: its time field is not a field", kd->name);
        CHECK(!kd->key_field || sn_schema_index(sn_schema_for(kd->type), kd->key_field) >= 0,
              "%s: its key field is not a field", kd->name);
    }
}

/* The metric key is name 0x00 ts(8) seq(8) with a name of at least one
 * byte: 18 bytes at the least. A 17-byte key (an empty name) is malformed,
 * in a stored record and in a peer's alike. */
static void check_metric_bound(void)
{
    unsigned char k[SN_METRIC_KEY_MAX];
    char msg[256];
    sn_buf good, empty;
    metric_record("l", 1, &good);
    metric_record("", 0, &empty);

    size_t klen = sn_metric_key(k, "l", 1, 1.5, 7);
    CHECK(klen == 18, "the shortest metric key has 18 bytes, not %zu", klen);
    CHECK(check(CF_METRICS, k, klen, &good, msg) == SN_OK, "a good metric: %s", msg);
    CHECK(replica_check(CF_METRICS, k, klen, &good, msg) == SN_OK, "a good metric (peer): %s", msg);

    klen = sn_metric_key(k, "", 0, 1.5, 7);
    CHECK(klen == 17, "an empty name gives 17 bytes, not %zu", klen);
    CHECK(check(CF_METRICS, k, klen, &empty, msg) == SN_ECORRUPT && !strcmp(msg, "malformed metric key"),
          "a 17-byte metric key passed verify's check (%s)", msg);
    CHECK(replica_check(CF_METRICS, k, klen, &empty, msg) == SN_ECORRUPT &&
              !strcmp(msg, "malformed metric key"),
          "a 17-byte metric key passed the replica check (%s)", msg);

    /* 18 bytes with no 0 before the time: not a metric key either */
    memset(k, 'x', 18);
    CHECK(check(CF_METRICS, k, 18, &good, msg) == SN_ECORRUPT && !strcmp(msg, "malformed metric key"),
          "a metric key without its 0 passed (%s)", msg);
    /* the record under another metric's key */
    klen = sn_metric_key(k, "m", 1, 1.5, 7);
    CHECK(check(CF_METRICS, k, klen, &good, msg) == SN_ECORRUPT &&
              !strcmp(msg, "record does not belong under its key"),
          "a metric under another name's key passed (%s)", msg);
    /* the record as another kind */
    CHECK(check(CF_STATE, (const unsigned char *)"l", 1, &good, msg) == SN_ECORRUPT &&
              !strcmp(msg, "record has the wrong type"),
          "a metric passed as state (%s)", msg);
    CHECK(replica_check(CF_DEFAULT, (const unsigned char *)"l", 1, &good, msg) == SN_ECORRUPT &&
              !strcmp(msg, "entry names a column family that is not replicated"),
          "an entry of the default column family passed (%s)", msg);
    free(good.data);
    free(empty.data);
}

int main(void)
{
    check_table();
    check_metric_bound();
    printf("record kinds: %s (%d failure%s)\n", failures ? "FAILED" : "ok", failures,
           failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
