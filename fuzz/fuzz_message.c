/* libFuzzer target: arbitrary bytes into the real P2P receive path, as a
 * transport takes it — decoded once (sn_sync_decode), the sender's node id
 * read to bind it (sn_sync_msg_from), then handed to the engine
 * (sn_sync_receive_msg, sn_sync_receive's own path) over a scratch store: envelope, bounds pre-check, schema, CRC, entries, each
 * carried record's full check, a heartbeat's sample of peers (discovery
 * on, so candidates are taken in), chunk reassembly, and applying what
 * passes. Must never crash, leak or read out of bounds; bad bytes must be
 * counted, never returned as a store failure.
 *
 * The NATS transport's sealed envelope (nats/sn_seal.h) is fuzzed in
 * front of it: input beginning "SNB1" is opened as an envelope sealed to
 * the fuzzer's key (and what opens is received); input beginning 0xE5 is
 * sealed from a second key, one byte of the envelope changed unless the
 * second byte is 0, and opened: it must open exactly when untouched, to
 * the same bytes.
 *
 *   make fuzz-message FUZZ_SECONDS=60 */
#include "nats/sn_seal.h"
#include "sync/sn_sync.h"

#include <sodium.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/synaptic-fuzz-message-XXXXXX";
static sn_store *store;
static sn_sync *engine;
static unsigned char pub[32], sec[32], spub[32], ssec[32];

static void finish(void)
{
    sn_sync_free(engine);
    if (store) sn_store_close(store);
    char cmd[sizeof dir + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "fuzz_message: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sn_err e;
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    sn_store_opts o;
    memset(&o, 0, sizeof o);
    o.codec = SN_CODEC_NONE;
    o.write_buffer_mb = 1;
    o.cache_mb = 1;
    sn_sync_config c;
    sn_sync_default_config(&c);
    snprintf(c.node_id, sizeof c.node_id, "fuzz");
    c.max_message_bytes = 1u << 20;
    c.chunk_bytes = 1024;
    c.discovery = 1;
    if (sn_store_open(dir, &o, &store, &e) || sn_sync_new(store, &c, &engine, &e) ||
        sn_sync_add_peer(engine, "P", 1, &e)) {
        fprintf(stderr, "fuzz_message: %s\n", e.msg);
        exit(1);
    }
    if (sodium_init() < 0) { fprintf(stderr, "fuzz_message: libsodium\n"); exit(1); }
    crypto_box_keypair(pub, sec);
    crypto_box_keypair(spub, ssec);
    atexit(finish);
    return 0;
}

static void take(const uint8_t *data, size_t size)
{
    sn_err e;
    sn_sync_msg *m;
    if (sn_sync_decode(data, size, 1u << 20, &m, &e)) return;   /* bad bytes */
    char from[SN_MAX_ID_LEN + 1];
    sn_sync_msg_from(m, from);
    int accepted;
    int rc = sn_sync_receive_msg(engine, "P", 1, m, &accepted, &e);
    sn_sync_msg_free(m);
    if (rc && rc != SN_ENOMEM) {
        fprintf(stderr, "fuzz_message: receive failed on the store: %s\n", e.msg);
        abort();
    }
    /* what the engine answered is not kept: the outbox stays small */
    char *to;
    unsigned char *bytes;
    size_t len;
    while (sn_sync_next_out(engine, &to, &bytes, &len)) {
        free(to);
        free(bytes);
    }
}

/* Sealed from the second key, maybe changed, opened: opens iff untouched. */
static void seal_round_trip(const uint8_t *data, size_t size)
{
    sn_err e;
    unsigned char *env, *plain, from[32];
    size_t envlen, plen;
    if (sn_seal(pub, spub, ssec, data + 2, size - 2, &env, &envlen, &e)) return;
    int touched = data[1] != 0;
    if (touched) env[data[1] % envlen] ^= (unsigned char)(data[1] | 1);
    int r = sn_seal_open(env, envlen, pub, sec, from, &plain, &plen);
    free(env);
    if (r < 0) return;
    if (touched == (r == SN_SEAL_OPENED) ||
        (r == SN_SEAL_OPENED && (plen != size - 2 || memcmp(plain, data + 2, plen) || memcmp(from, spub, 32)))) {
        fprintf(stderr, "fuzz_message: a %s envelope %s\n", touched ? "changed" : "sealed",
                r == SN_SEAL_OPENED ? "opened" : "did not open");
        abort();
    }
    if (r == SN_SEAL_OPENED) take(plain, plen);
    free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && !memcmp(data, "SNB1", 4)) {
        unsigned char *plain, from[32];
        size_t plen;
        if (sn_seal_open(data, size, pub, sec, from, &plain, &plen) == SN_SEAL_OPENED) {
            take(plain, plen);
            free(plain);
        }
    } else if (size >= 2 && data[0] == 0xE5) {
        seal_round_trip(data, size);
    } else {
        take(data, size);
    }
    return 0;
}
