/* The signal flag (see sn_signal.h). */
#include "base/sn_signal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

/* SIGHUP apart: it asks a serve loop to reload, and taking it back
 * (sn_signal_take_hangup) must never lose a SIGINT or SIGTERM that lands
 * at the same moment */
static volatile sig_atomic_t caught, hangup;

static void on_signal(int sig)
{
    if (sig == SIGHUP) hangup = 1;
    else caught = sig;
}

int sn_signal_trap(sn_err *e)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;   /* no SA_RESTART: a blocking poll returns EINTR */
    caught = hangup = 0;
    /* SIGHUP too: a supervisor's reload (serve --authorized reads its file
     * again) or a closed terminal (a serve loop ends cleanly, with its
     * stats) instead of being killed (exit 129) */
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) || sigaction(SIGHUP, &sa, NULL))
        return sn_fail(e, SN_EIO, "cannot install signal handlers: %s", strerror(errno));
    return SN_OK;
}

int sn_signal_caught(void)
{
    return caught ? caught : hangup ? SIGHUP : 0;
}

int sn_signal_take_hangup(void)
{
    if (!hangup) return 0;
    hangup = 0;
    return 1;
}

const char *sn_signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : NULL;
}
