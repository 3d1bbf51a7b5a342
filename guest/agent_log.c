/*
 * agent_log.c - provium-agent's log: one line per event on stderr,
 * "provium-agent[PID]: ...". The agent has nowhere else to say what went
 * wrong (a session that ended, a process whose output could not be
 * recorded), and the daemon passes the host agent's stderr on to its own.
 *
 * -v adds the ordinary events (a host connects, a host goes away), which
 * would otherwise fill the log of a long-lived guest.
 */
#include "guest.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static bool verbose;

/* One write(2) per line, so lines of several agents sharing a stderr
 * do not interleave. */
void
agent_log(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n = snprintf(buf, sizeof(buf), "provium-agent[%d]: ", (int)getpid());

    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0)
        return; /* nowhere left to complain */
}

void
agent_log_set_verbose(bool on)
{
    verbose = on;
}

bool
agent_log_verbose(void)
{
    return verbose;
}
