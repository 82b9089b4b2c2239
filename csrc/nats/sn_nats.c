/* NATS transport (see sn_nats.h): connecting, subjects, the poll loop. */
#include "base/sn_signal.h"
#include "nats/sn_nats_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nodes alive in this process, and whether any was made since the library
 * was last closed (libnats opens itself on first use). */
static int live_nodes, library_used;

int sn_nats_fail(sn_err *e, natsStatus s, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return sn_fail(e, SN_EIO, "%s: %s", what, last && *last ? last : natsStatus_GetText(s));
}

void sn_nats_default_config(sn_nats_config *c)
{
    memset(c, 0, sizeof *c);
    c->url = "nats://127.0.0.1:4222";
    c->subject_prefix = "synaptic.default";
}

int sn_nats_node_subject(const char *prefix, const char *node_id, char out[SN_NATS_MAX_SUBJECT], sn_err *e)
{
    size_t pl = strlen(prefix), il = strlen(node_id);
    if (pl + 6 + 2 * il + 1 > SN_NATS_MAX_SUBJECT)
        return sn_fail(e, SN_EARG, "subject_prefix and node_id make too long a subject");
    memcpy(out, prefix, pl);
    memcpy(out + pl, ".node.", 6);
    static const char hex[] = "0123456789abcdef";
    char *o = out + pl + 6;
    for (size_t i = 0; i < il; i++) {
        *o++ = hex[(unsigned char)node_id[i] >> 4];
        *o++ = hex[(unsigned char)node_id[i] & 15];
    }
    *o = 0;
    return SN_OK;
}

void sn_nats_free(sn_nats *n)
{
    if (!n) return;
    /* the connection closed first: closing joins its reader thread, which
     * could otherwise be delivering a message to a subscription being
     * destroyed here (a use after free ASan caught in libnats 3.4) */
    if (n->nc) {
        natsConnection_FlushTimeout(n->nc, 1000);   /* what we published reaches the server */
        natsConnection_Close(n->nc);
    }
    sn_nats_js_free(n);
    if (n->own) natsSubscription_Destroy(n->own);
    if (n->mesh) natsSubscription_Destroy(n->mesh);
    if (n->nc) natsConnection_Destroy(n->nc);
    sn_idmap_free(n->ids);
    sn_keyset_free(n->keys);
    free(n->prefix);
    free(n);
    __atomic_sub_fetch(&live_nodes, 1, __ATOMIC_SEQ_CST);
    /* libnats keeps the last error of each thread in a thread-local record
     * it allocates on the first error (a poll's NextMsg timeout is one);
     * the main thread's is freed only here or by nats_Close, which would
     * end the library for every other node of the process. Freeing it when
     * a node goes costs nothing: the next error makes a new one. */
    nats_ReleaseThreadMemory();
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    sn_nats *n = closure;
    /* the client's thread: only a counter, read on ours (a torn read of a
     * statistic is harmless; C11 atomics would be overkill here) */
    __atomic_add_fetch(&n->reconnects, 1, __ATOMIC_RELAXED);
}

static int options(sn_nats *n, const sn_nats_config *c, natsOptions **out, sn_err *e)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, NULL, 0);
    if (s == NATS_OK) s = natsOptions_SetURL(o, c->url);
    /* our own mesh heartbeats are not for us */
    if (s == NATS_OK) s = natsOptions_SetNoEcho(o, true);
    if (s == NATS_OK) s = natsOptions_SetName(o, n->node_id);
    /* reconnect for ever: a server restart is an outage, not the end */
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 200);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_reconnected, n);
    if (s == NATS_OK && (c->user || c->password)) s = natsOptions_SetUserInfo(o, c->user, c->password);
    if (s == NATS_OK && c->token) s = natsOptions_SetToken(o, c->token);
    if (s == NATS_OK && c->credentials) s = natsOptions_SetUserCredentialsFromFiles(o, c->credentials, NULL);
    if (s == NATS_OK && c->nkey_seed_file) s = natsOptions_SetNKeyFromSeed(o, c->nkey_public, c->nkey_seed_file);
    if (s == NATS_OK && c->tls) s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && c->tls_ca) s = natsOptions_LoadCATrustedCertificates(o, c->tls_ca);
    if (s == NATS_OK && c->tls_cert) s = natsOptions_LoadCertificatesChain(o, c->tls_cert, c->tls_key);
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return sn_nats_fail(e, s, "NATS options");
    }
    *out = o;
    return SN_OK;
}

static int copy_keys(sn_nats *n, const sn_nats_config *c, sn_err *e)
{
    int rc = sn_keyset_new(SN_NATS_MAX_AUTHORIZED, &n->keys, e);
    for (size_t i = 0; !rc && i < c->nauthorized; i++)
        rc = sn_keyset_add(n->keys, c->authorized[i], c->authorized_ids ? c->authorized_ids[i] : NULL, e);
    if (rc) return rc;
    /* the config's lists are the caller's: the set holds copies */
    n->cfg.authorized = n->cfg.authorized_ids = NULL;
    n->cfg.nauthorized = 0;
    if (c->curve && (sn_z85_key(c->public_key, n->pub, e) || sn_z85_key(c->secret_key, n->sec, e)))
        return e->code;
    return SN_OK;
}

static int subscribe(sn_nats *n, sn_err *e)
{
    char mesh[SN_NATS_MAX_SUBJECT];
    snprintf(mesh, sizeof mesh, "%s.mesh", n->prefix);
    natsStatus s = natsConnection_SubscribeSync(&n->own, n->nc, n->subject);
    if (s == NATS_OK) s = natsConnection_SubscribeSync(&n->mesh, n->nc, mesh);
    /* the client queues what we have not polled yet; past these limits it
     * drops (a slow consumer), and anti-entropy fetches it again */
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(n->own, 65536, 256 << 20);
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(n->mesh, 65536, 64 << 20);
    if (s == NATS_OK) s = natsConnection_FlushTimeout(n->nc, 5000);
    return s == NATS_OK ? SN_OK : sn_nats_fail(e, s, "subscribe");
}

void sn_nats_leave(sn_nats *n, sn_sync *y)
{
    sn_err e;
    if (!sn_sync_leave(y, &e)) sn_nats_flush(n, y, &e);   /* else: peers time out */
}

void sn_nats_library_close(void)
{
    if (!__atomic_load_n(&library_used, __ATOMIC_SEQ_CST) || __atomic_load_n(&live_nodes, __ATOMIC_SEQ_CST))
        return;
    __atomic_store_n(&library_used, 0, __ATOMIC_SEQ_CST);
    /* every node is destroyed: wait for libnats' own threads to end so its
     * memory is released before the core (and libnats with it) is unloaded */
    nats_CloseAndWait(2000);
}

int sn_nats_new(const sn_nats_config *c, const char *node_id, sn_nats **out, sn_err *e)
{
    *out = NULL;
    size_t idlen = strlen(node_id);
    if (idlen == 0 || idlen > SN_MAX_ID_LEN) return sn_fail(e, SN_EARG, "node_id must be 1 to %d bytes", SN_MAX_ID_LEN);
    if (c->nauthorized > SN_NATS_MAX_AUTHORIZED)
        return sn_fail(e, SN_EARG, "at most %d authorized keys", SN_NATS_MAX_AUTHORIZED);
    sn_nats *n = calloc(1, sizeof *n);
    if (!n) return sn_fail(e, SN_ENOMEM, "out of memory");
    __atomic_add_fetch(&live_nodes, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&library_used, 1, __ATOMIC_SEQ_CST);
    n->cfg = *c;
    memcpy(n->node_id, node_id, idlen + 1);
    n->last_announce = -1e300;
    n->prefix = strdup(c->subject_prefix);
    int rc = n->prefix ? SN_OK : sn_fail(e, SN_ENOMEM, "out of memory");
    n->cfg.subject_prefix = n->prefix;
    if (!rc) rc = copy_keys(n, c, e);
    if (!rc) rc = sn_nats_node_subject(n->prefix, node_id, n->subject, e);
    if (!rc) rc = sn_nats_ids_init(n, e);
    natsOptions *o = NULL;
    if (!rc) rc = options(n, c, &o, e);
    if (!rc) {
        natsStatus s = natsConnection_Connect(&n->nc, o);
        if (s != NATS_OK) rc = sn_fail(e, SN_EIO, "cannot connect to NATS at %s: %s", c->url,
                                       natsStatus_GetText(s));
    }
    natsOptions_Destroy(o);
    if (!rc) rc = subscribe(n, e);
    if (!rc && c->jetstream) rc = sn_nats_js_init(n, e);
    if (rc) { sn_nats_free(n); return rc; }
    *out = n;
    return SN_OK;
}

size_t sn_nats_max_message(const sn_nats *n)
{
    int64_t p = natsConnection_GetMaxPayload(n->nc);
    /* room for the sealed envelope, sealed or not, so the size does not
     * depend on the keys */
    return p > SN_SEAL_OVERHEAD ? (size_t)p - SN_SEAL_OVERHEAD : 0;
}

const char *sn_nats_subject(const sn_nats *n) { return n->subject; }
const char *sn_nats_url(const sn_nats *n) { return n->cfg.url; }

void sn_nats_get_stats(const sn_nats *n, sn_nats_stats *out)
{
    *out = n->st;
    out->reconnects = __atomic_load_n(&n->reconnects, __ATOMIC_RELAXED);
}

int sn_nats_attach(sn_nats *n, sn_sync *y, sn_err *e)
{
    return sn_sync_set_self(y, NULL, n->cfg.curve ? n->cfg.public_key : NULL, e);
}

int sn_nats_add_peer(sn_nats *n, sn_sync *y, const char *node_id, const char *pub, sn_err *e)
{
    if (!strcmp(node_id, n->node_id)) return sn_fail(e, SN_EARG, "a node cannot be its own peer");
    char subject[SN_NATS_MAX_SUBJECT];
    int rc = sn_nats_node_subject(n->prefix, node_id, subject, e);
    if (!rc && n->cfg.curve && pub) {
        unsigned char k[SN_SEAL_KEY_BYTES];
        rc = sn_z85_key(pub, k, e);
    }
    if (!rc) rc = sn_sync_add_peer(y, node_id, strlen(node_id), e);
    if (!rc && n->cfg.curve && pub) rc = sn_sync_set_peer_address(y, node_id, strlen(node_id), NULL, pub, e);
    if (!rc) sn_sync_unblock(y, node_id);
    return rc;
}

int sn_nats_disconnect(sn_nats *n, sn_sync *y, const char *id, sn_err *e)
{
    (void)n;
    long i = sn_sync_find_node(y, id);
    if (i < 0) return 0;
    sn_peer_info p;
    sn_sync_peer(y, (size_t)i, &p);
    char *gone = strdup(p.id);
    if (!gone) return sn_fail(e, SN_ENOMEM, "out of memory"), -1;
    /* blocked: its mesh heartbeats no longer make it a peer again */
    int rc = sn_sync_block(y, gone, e);
    if (!rc) sn_sync_remove_peer(y, gone, strlen(gone));
    free(gone);
    return rc ? -1 : 1;
}

int sn_nats_authorize(sn_nats *n, const char *key, const char *id, sn_err *e)
{
    if (!n->cfg.curve) return sn_fail(e, SN_EARG, "authorize needs a node with curve keys");
    return sn_keyset_add(n->keys, key, id, e);
}

int sn_nats_revoke(sn_nats *n, sn_sync *y, const char *key, sn_err *e)
{
    if (!n->cfg.curve) return sn_fail(e, SN_EARG, "revoke needs a node with curve keys"), -1;
    if (!sn_keyset_remove(n->keys, key)) return 0;
    sn_idmap_revoke(n->ids, key);
    /* no connection to close: what it seals is refused from now on
     * (open_sealed), and its peers are forgotten */
    for (size_t i = sn_sync_peer_count(y); i-- > 0;) {
        sn_peer_info p;
        sn_sync_peer(y, i, &p);
        if (!p.pub || strcmp(p.pub, key)) continue;
        char *gone = strdup(p.id);
        if (!gone) return sn_fail(e, SN_ENOMEM, "out of memory"), -1;
        sn_sync_remove_peer(y, gone, strlen(gone));
        free(gone);
    }
    return 1;
}

int sn_nats_send_raw(sn_nats *n, const char *subject, const void *bytes, size_t len, sn_err *e)
{
    natsStatus s = natsConnection_Publish(n->nc, subject, bytes, (int)len);
    if (s == NATS_OK) s = natsConnection_FlushTimeout(n->nc, 5000);
    return s == NATS_OK ? SN_OK : sn_nats_fail(e, s, "publish");
}

int sn_nats_seal_to(const sn_nats *n, const char *to, const void *bytes, size_t len, unsigned char **out,
                    size_t *outlen, sn_err *e)
{
    unsigned char key[SN_SEAL_KEY_BYTES];
    if (!n->cfg.curve) return sn_fail(e, SN_EARG, "a node without keys cannot seal");
    int rc = sn_z85_key(to, key, e);
    return rc ? rc : sn_seal(key, n->pub, n->sec, bytes, len, out, outlen, e);
}

/* ---- the poll loop ------------------------------------------------------------------- */

/* Waits up to ms for a message on our own subject, in slices so that a
 * trapped signal (sn_signal_caught) ends the wait: the client's condition
 * wait does not return on EINTR. */
static int wait_own(sn_nats *n, int ms, natsMsg **m, int *interrupted)
{
    *m = NULL;
    int64_t until = nats_Now() + ms;
    for (;;) {
        int64_t left = until - nats_Now();
        int slice = left > 50 ? 50 : left > 0 ? (int)left : 0;
        if (slice <= 0) return 0;
        natsStatus s = natsSubscription_NextMsg(m, n->own, slice);
        if (s == NATS_OK) return 1;
        if (s != NATS_TIMEOUT) return 0;
        if (sn_signal_caught()) { *interrupted = 1; return 0; }
    }
}

static int step(sn_nats *n, sn_sync *y, sn_err *e)
{
    int rc = sn_sync_tick(y, sn_now(), e);
    if (!rc) rc = sn_nats_announce(n, y, e);
    if (!rc) rc = sn_nats_flush(n, y, e);
    return rc;
}

int sn_nats_take_all(sn_nats *n, sn_sync *y, sn_err *e)
{
    n->y = y;
    int rc = sn_nats_drain(n, y, e);
    if (!rc && n->js) rc = sn_nats_js_drain(n, y, e);
    if (!rc) rc = sn_nats_announce(n, y, e);
    n->y = NULL;
    return rc;
}

int sn_nats_poll(sn_nats *n, sn_sync *y, int timeout_ms, int *interrupted, sn_err *e)
{
    *interrupted = 0;
    n->y = y;
    int rc = step(n, y, e);
    natsMsg *first = NULL;
    if (!rc && timeout_ms > 0) wait_own(n, timeout_ms, &first, interrupted);
    if (!rc && first) rc = sn_nats_take(n, y, first, SN_NATS_OWN, e);
    if (!rc) rc = sn_nats_drain(n, y, e);
    if (!rc && n->js) rc = sn_nats_js_drain(n, y, e);
    if (!rc) rc = step(n, y, e);
    n->y = NULL;
    return rc;
}
