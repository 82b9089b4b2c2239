/* SIGINT/SIGTERM/SIGHUP as a flag: a long-running loop (node:run, `synaptic
 * serve`) checks it between polls, so a signal that lands outside a
 * blocking call is still seen. The handlers only set the flag
 * (async-signal-safe) and are installed without SA_RESTART, so a blocking
 * poll returns EINTR at once. One flag per process: signals are. */
#ifndef SN_SIGNAL_H
#define SN_SIGNAL_H

#include "base/sn_types.h"

/* Install the handlers (again) and clear the flag. */
SN_HIDDEN int sn_signal_trap(sn_err *e);
/* The signal caught since the last trap (SIGINT or SIGTERM first, else a
 * SIGHUP not yet taken), else 0. */
SN_HIDDEN int sn_signal_caught(void);
/* 1 when a SIGHUP came since the last trap or take (and forget it), else 0. */
SN_HIDDEN int sn_signal_take_hangup(void);
/* "SIGINT", "SIGTERM", "SIGHUP", or NULL. */
SN_HIDDEN const char *sn_signal_name(int sig);

#endif
