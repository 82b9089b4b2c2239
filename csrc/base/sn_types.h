/* Types shared by every part of the synaptic core.
 *
 * The core reports failure through an sn_err filled by the callee and an
 * int status; it never calls into Lua, so the bindings decide whether a
 * failure raises (a programmer mistake) or returns nil, message (the
 * outside world failed). */
#ifndef SN_TYPES_H
#define SN_TYPES_H

#include <stddef.h>
#include <stdint.h>

#define SN_HIDDEN __attribute__((visibility("hidden")))

/* Bounds every decoder and every public entry point enforces. */
#define SN_MAX_ID_LEN      256u              /* expert ids, state keys, metric names */
#define SN_MAX_FLOATS      (64u << 20)       /* 256 MiB of float32 per array */
#define SN_MAX_RECORD      (600u << 20)      /* one stored value, envelope included */
#define SN_MAX_LAYER       1000000u
#define SN_MAX_SHAPE_DIMS  8u
#define SN_MAX_DEPTH       32                /* nesting of generic values */
#define SN_MAX_ITEMS       (1u << 20)        /* elements in one decoded array/map */

enum {
    SN_OK = 0,
    SN_NOTFOUND = 1,   /* absent data: not an error */
    SN_EARG,           /* the caller broke the contract: raise */
    SN_EIO,            /* the outside world failed: nil, message */
    SN_ECORRUPT,       /* bytes on disk or wire fail their checks: nil, message */
    SN_ENOMEM
};

/* What a walk's callback returns to end the walk early when nothing went
 * wrong. Not an SN_* status: the walk's owner turns it back into SN_OK
 * before any caller sees it, and the range keeps the two apart. */
typedef enum sn_stop {
    SN_STOP_FOUND = 1000,       /* a history walk found what it sought (sn_history.c) */
    SN_STOP_CANCELLED = 3001,   /* verify's progress callback asked to stop (sn_verify.c) */
} sn_stop;
_Static_assert((int)SN_STOP_FOUND > (int)SN_ENOMEM, "stop codes must not collide with SN_* statuses");

typedef struct sn_err {
    int code;
    char msg[512];
} sn_err;

SN_HIDDEN int sn_fail(sn_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
