/* The signal flag (see sn_signal.h). */
#include "base/sn_signal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    caught = sig;
}

int sn_signal_trap(sn_err *e)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   /* no SA_RESTART: a blocking poll returns EINTR */
    caught = 0;
    /* SIGHUP too: a closed terminal or a supervisor's reload ends a serve
     * loop cleanly, with its stats, instead of killing it (exit 129) */
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) || sigaction(SIGHUP, &sa, NULL))
        return sn_fail(e, SN_EIO, "cannot install signal handlers: %s", strerror(errno));
    return SN_OK;
}

int sn_signal_caught(void)
{
    return caught;
}

const char *sn_signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : NULL;
}
