/*
 * log.c - the daemon's messages for the operator: stderr in the
 * foreground, syslog once detached (SPEC §10). The only file that logs;
 * the rest of fs/ calls log_warn() with context (the VM's name, the
 * agent's pid), and the stream core never logs at all.
 *
 * stderr until fuse_daemonize() points fds 0-2 at /dev/null; syslog after
 * that (journald serves /dev/log on a systemd machine; the unit runs -f,
 * so there stderr is the journal already). libfuse's own messages (a bad
 * -o option, a failed mount) go where ours go.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

#include "fs.h"

static bool to_syslog;

void
log_vmsg(int prio, const char *fmt, va_list ap)
{
    if (to_syslog) {
        vsyslog(prio, fmt, ap);
        return;
    }
    fputs("proviumfs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void
log_msg(int prio, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(prio, fmt, ap);
    va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_WARNING, fmt, ap);
    va_end(ap);
}

/* libfuse's levels are syslog's; its messages end with a newline. */
static void __attribute__((format(printf, 2, 0)))
log_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
    if (to_syslog)
        vsyslog((int)level, fmt, ap);
    else
        vfprintf(stderr, fmt, ap);
}

void
log_init(void)
{
    fuse_set_log_func(log_fuse);
}

void
log_detach(void)
{
    openlog("proviumfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    to_syslog = true;
}

void
log_close(void)
{
    if (to_syslog)
        closelog();
    to_syslog = false;
}
