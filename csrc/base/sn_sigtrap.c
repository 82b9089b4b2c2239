/* SIGINT/SIGTERM trap (see sn_sigtrap.h). The handler touches nothing but a
 * sig_atomic_t: all it may safely do. No SA_RESTART, so a blocking poll
 * returns early (EINTR, which the transport treats as "nothing yet"). */
#include "base/sn_sigtrap.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t caught;
static struct sigaction old_int, old_term;
static int installed;

static void on_signal(int sig)
{
    caught = sig;
}

int sn_sigtrap_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    caught = 0;
    if (installed) return 0;
    if (sigaction(SIGINT, &sa, &old_int) != 0) return -1;
    if (sigaction(SIGTERM, &sa, &old_term) != 0) {
        sigaction(SIGINT, &old_int, NULL);
        return -1;
    }
    installed = 1;
    return 0;
}

int sn_sigtrap_caught(void)
{
    return caught;
}

void sn_sigtrap_release(void)
{
    if (!installed) return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    installed = 0;
}
