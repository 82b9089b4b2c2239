/* The one place an sn_err is filled, so every message is bounded the same way. */
#include <stdarg.h>
#include <stdio.h>

#include "base/sn_types.h"

int sn_fail(sn_err *e, int code, const char *fmt, ...)
{
    /* callers that only want the status code may pass no sn_err */
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}
