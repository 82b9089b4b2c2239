/* libFuzzer target: arbitrary bytes into the real P2P receive path, as a
 * transport takes it — decoded once (sn_sync_decode), the sender's node id
 * read to bind it (sn_sync_msg_from), then handed to the engine
 * (sn_sync_receive_msg, sn_sync_receive's own path) over a scratch store: envelope, bounds pre-check, schema, CRC, entries, each
 * carried record's full check, a heartbeat's sample of peers (discovery
 * on, so candidates are taken in), chunk reassembly, and applying what
 * passes. Must never crash, leak or read out of bounds; bad bytes must be
 * counted, never returned as a store failure.
 *
 *   make fuzz-message FUZZ_SECONDS=60 */
#include "sync/sn_sync.h"

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
    atexit(finish);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sn_err e;
    sn_sync_msg *m;
    if (sn_sync_decode(data, size, 1u << 20, &m, &e)) return 0;   /* bad bytes */
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
    return 0;
}
