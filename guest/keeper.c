/*
 * keeper.c - processes never outlive their agent (SPEC §6.4).
 *
 * Every process the agent starts leads a process group of its own. The
 * groups must be ended (TERM, a grace period, KILL) when the agent goes,
 * however it goes: an orderly exit (SIGTERM, the host closing --stdio), a
 * crash, or SIGKILL. The last two leave the agent no chance to act, so
 * the work is done by a tiny process forked at start, the keeper. It holds
 * the read end of a pipe whose write end only the agent has (close-on-exec,
 * so no child inherits it); the agent writes each new group's id to it,
 * and the negated id once the group is known to be empty. When the pipe
 * reports end of file the agent is gone: the keeper signals every group
 * it was told of with SIGTERM, waits up to KEEPER_GRACE for them to empty,
 * sends SIGKILL to what is left, and exits.
 *
 * cgroups would do this without a helper, but the guest's initramfs has
 * none, so the keeper works with process groups alone. Its limits: a
 * process that leaves its group (setsid, setpgid) escapes it, and a
 * process started in the instant between spawn and registration is not
 * covered if the agent dies in that instant.
 *
 * A group "is empty" when no member is alive: zombies do not count, so
 * that an init that is slow to reap (or never reaps) does not hold the
 * keeper for the whole grace period. That takes a scan of /proc; without
 * /proc, kill(-pgid, 0) decides (zombies then count).
 *
 * On an orderly exit the agent closes the pipe itself and waits for the
 * keeper to finish (reaping its own children meanwhile, so that they do
 * not linger as zombies), so an agent asked to stop ends after the
 * processes it started, within a bounded time.
 */
#include "guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEEPER_POLL_MS 20

static int keeper_fd = -1; /* the agent's write end */
static pid_t keeper_pid = -1;

static void
msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long
now_ms(void)
{
    return (long)(clock_now() / USEC_PER_MSEC);
}

/* ---- the keeper process ---- */

struct groups {
    pid_t *v;
    size_t n, cap;
};

static void
groups_add(struct groups *g, pid_t pgid)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i] == pgid)
            return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        pid_t *v = realloc(g->v, cap * sizeof(*v));
        if (!v)
            return; /* nothing better to do in a keeper out of memory */
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = pgid;
}

static void
groups_del(struct groups *g, pid_t pgid)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i] == pgid) {
            g->v[i] = g->v[--g->n];
            return;
        }
}

/* Does any live (not zombie) process belong to one of the groups? Drops
 * the groups that have none. */
static bool
groups_alive(struct groups *g)
{
    /* Cheap first: kill(-pgid, 0) fails only for a group with no member
     * at all, zombies included. */
    for (size_t i = 0; i < g->n;) {
        if (kill(-g->v[i], 0) < 0 && errno == ESRCH)
            g->v[i] = g->v[--g->n];
        else
            i++;
    }
    if (g->n == 0)
        return false;
    DIR *d = opendir("/proc");
    if (!d)
        return true;
    bool *live = calloc(g->n, sizeof(*live));
    struct dirent *de;
    while (live && (de = readdir(d))) {
        char path[300], buf[512];
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        /* pid (comm) state ppid pgrp ...: comm may hold anything, so
         * parse from the last ')'. */
        char *p = strrchr(buf, ')'), state;
        int ppid, pgrp;
        if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 ||
            state == 'Z' || state == 'X')
            continue;
        for (size_t i = 0; i < g->n; i++)
            if (g->v[i] == pgrp)
                live[i] = true;
    }
    closedir(d);
    if (!live)
        return true;
    for (size_t i = g->n; i-- > 0;)
        if (!live[i])
            g->v[i] = g->v[--g->n];
    free(live);
    return g->n > 0;
}

static void
groups_signal(struct groups *g, int sig)
{
    for (size_t i = 0; i < g->n; i++)
        kill(-g->v[i], sig);
}

static void __attribute__((noreturn)) keeper_main(int rfd)
{
    struct groups g = {0};
    pid_t buf[256];

    /* The agent's signals are not ours: we end on end of file only, so
     * that a Ctrl-C to a foreground agent's group, or a SIGTERM to it,
     * still finds us there to clean up. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        ssize_t n = read(rfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        /* Writes of one pid_t are atomic (< PIPE_BUF): whole entries. */
        for (size_t i = 0; i < (size_t)n / sizeof(pid_t); i++) {
            if (buf[i] > 0)
                groups_add(&g, buf[i]);
            else if (buf[i] < 0)
                groups_del(&g, -buf[i]);
        }
    }
    if (groups_alive(&g)) {
        groups_signal(&g, SIGTERM);
        groups_signal(&g, SIGCONT); /* a stopped group must see TERM */
        long deadline = now_ms() + (long)(KEEPER_GRACE / USEC_PER_MSEC);
        while (groups_alive(&g) && now_ms() < deadline)
            msleep(KEEPER_POLL_MS);
        groups_signal(&g, SIGKILL);
    }
    _exit(0);
}

/* Close every fd but keep: the keeper must not hold the agent's host
 * connection (the host would never see it close) or anything else. */
static void
close_all_but(int keep)
{
    int max = (int)sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
#ifdef SYS_close_range
    if ((keep <= 3 || syscall(SYS_close_range, 3, keep - 1, 0) == 0) &&
        syscall(SYS_close_range, keep + 1, ~0u, 0) == 0)
        return;
#endif
    for (int fd = 3; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

/* ---- the agent's side ---- */

int
keeper_start(void)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        int err = -errno;
        close(p[0]);
        close(p[1]);
        return err;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        close(p[1]);
        if (null >= 0) { /* fds 0 and 1 may be the --stdio connection */
            dup2(null, 0);
            dup2(null, 1);
        }
        close_all_but(p[0]);
        keeper_main(p[0]);
    }
    close(p[0]);
    keeper_fd = p[1];
    keeper_pid = pid;
    return 0;
}

static void
keeper_send(pid_t v)
{
    if (keeper_fd < 0)
        return;
    /* Blocking and tiny: the keeper reads at once. A registration must
     * not be lost, so no O_NONBLOCK here. */
    while (write(keeper_fd, &v, sizeof(v)) < 0) {
        if (errno == EINTR)
            continue;
        agent_log("keeper: %s: processes will not be ended if the agent "
                  "is killed",
                  strerror(errno));
        close(keeper_fd);
        keeper_fd = -1;
        return;
    }
}

void
keeper_add(pid_t pgid)
{
    if (pgid > 0)
        keeper_send(pgid);
}

void
keeper_forget(pid_t pgid)
{
    if (pgid > 0)
        keeper_send(-pgid);
}

void
keeper_finish(void)
{
    long deadline;

    if (keeper_pid < 0)
        return;
    if (keeper_fd >= 0)
        close(keeper_fd); /* the keeper starts ending the groups */
    keeper_fd = -1;
    /* Our children die now: reap them, or the keeper would count them
     * (zombies are still group members to kill()) until the grace ends.
     * A poll with a deadline: no wait for children takes a timeout, and
     * this runs once, at exit (the keeper's own loop polls for the same
     * reason: no fd reports that a process group has emptied). */
    deadline = now_ms() + (long)(KEEPER_GRACE / USEC_PER_MSEC) + 1000;
    for (;;) {
        int status;
        pid_t r;
        while ((r = waitpid(-1, &status, WNOHANG)) > 0)
            if (r == keeper_pid) {
                keeper_pid = -1;
                return;
            }
        if (r < 0 && errno == ECHILD)
            break;
        if (now_ms() >= deadline) {
            agent_log("keeper: still ending processes after %lld ms; "
                      "leaving it to finish",
                      (long long)(KEEPER_GRACE / USEC_PER_MSEC) + 1000);
            break;
        }
        msleep(10);
    }
    keeper_pid = -1;
}
