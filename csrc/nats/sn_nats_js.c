/* JetStream (see sn_nats.h): the mesh's stream and this node's durable
 * consumer. The stream is made by the first node that finds it missing;
 * later nodes use it as it is (its limits are the first node's). */
#include "nats/sn_nats_int.h"

#include <stdio.h>
#include <string.h>

#define FETCH_BATCH 256
#define MAX_FETCH_PER_POLL 16

static int js_fail(sn_err *e, natsStatus s, jsErrCode code, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return sn_fail(e, SN_EIO, "JetStream %s: %s (%d)", what, last && *last ? last : natsStatus_GetText(s), (int)code);
}

/* SYNAPTIC_<prefix with '_' for '.'>: a stream name may not hold '.'. */
static void stream_name(const char *prefix, char out[SN_NATS_MAX_SUBJECT])
{
    snprintf(out, SN_NATS_MAX_SUBJECT, "SYNAPTIC_%s", prefix);
    for (char *p = out; *p; p++) if (*p == '.') *p = '_';
}

/* A durable name from the node id: its FNV-1a hash, since an id may be
 * longer than a consumer name can be and hold any byte. */
static void durable_name(const char *node_id, char out[32])
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)node_id; *p; p++) h = (h ^ *p) * 1099511628211ull;
    snprintf(out, 32, "node_%016llx", (unsigned long long)h);
}

static int ensure_stream(sn_nats *n, const char *name, const char *subject, sn_err *e)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetStreamInfo(&si, n->js, name, NULL, &code);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return SN_OK;
    }
    if (s != NATS_NOT_FOUND) return js_fail(e, s, code, "stream info");
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    const char *subjects[1] = { subject };
    c.Name = name;
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    c.MaxAge = (int64_t)(n->cfg.js_max_age * 1e9);
    c.MaxBytes = n->cfg.js_max_bytes > 0 ? n->cfg.js_max_bytes : -1;
    s = js_AddStream(&si, n->js, &c, NULL, &code);
    if (s == NATS_OK) jsStreamInfo_Destroy(si);
    /* another node made it meanwhile: use theirs */
    else if (code != JSStreamNameExistErr) return js_fail(e, s, code, "add stream");
    return SN_OK;
}

int sn_nats_js_init(sn_nats *n, sn_err *e)
{
    char name[SN_NATS_MAX_SUBJECT], subject[SN_NATS_MAX_SUBJECT], durable[32];
    stream_name(n->prefix, name);
    snprintf(subject, sizeof subject, "%s.node.>", n->prefix);
    durable_name(n->node_id, durable);
    natsStatus s = natsConnection_JetStream(&n->js, n->nc, NULL);
    if (s != NATS_OK) return sn_nats_fail(e, s, "JetStream");
    int rc = ensure_stream(n, name, subject, e);
    if (rc) return rc;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = name;
    jsErrCode code = 0;
    s = js_PullSubscribe(&n->replay, n->js, subject, durable, NULL, &so, &code);
    return s == NATS_OK ? SN_OK : js_fail(e, s, code, "durable consumer");
}

void sn_nats_js_free(sn_nats *n)
{
    if (n->replay) natsSubscription_Destroy(n->replay);   /* the durable consumer stays on the server */
    if (n->js) jsCtx_Destroy(n->js);
    n->replay = NULL;
    n->js = NULL;
}

int sn_nats_js_drain(sn_nats *n, sn_sync *y, sn_err *e)
{
    int rc = SN_OK;
    for (int round = 0; !rc && round < MAX_FETCH_PER_POLL; round++) {
        jsFetchRequest req;
        jsFetchRequest_Init(&req);
        req.Batch = FETCH_BATCH;
        req.NoWait = true;   /* what the stream has now; a poll never waits on it */
        req.Expires = 1000000000;   /* 1 s: the server's answer, bounded (in ns) */
        natsMsgList list = { 0 };
        natsStatus s = natsSubscription_FetchRequest(&list, n->replay, &req);
        if (s != NATS_OK) break;   /* nothing now (timeout, not found), or the server away: next poll */
        int count = list.Count;
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            list.Msgs[i] = NULL;
            if (!rc) rc = sn_nats_take(n, y, m, SN_NATS_REPLAY, e);
            else natsMsg_Destroy(m);
        }
        natsMsgList_Destroy(&list);
        if (count < FETCH_BATCH) break;
    }
    return rc;
}
