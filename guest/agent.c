/*
 * agent.c - provium-agent's main: options, the agent-wide state, the
 * table of what the agent does for each request, and one host connection
 * at a time over the chosen transport.
 *
 *   provium-agent [--listen unix:PATH | --listen vsock:PORT |
 *                  --virtio-port NAME | --stdio]
 *                 [--spool-dir DIR] [--proc-spool-max BYTES]
 *                 [--max-channels N] [-v]
 *
 * One thread, one reactor. The agent runs until SIGTERM/SIGINT, or, with
 * --stdio, until the host closes its end or the process that started it
 * dies (PR_SET_PDEATHSIG). On the way out the keeper (keeper.c) ends
 * every process group the agent started: TERM, a grace period, KILL.
 *
 * Processes inherit the agent's environment, with defaults for what a
 * program may rely on when the agent was started without them (PATH,
 * HOME, LANG: see default_env()).
 */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/*
 * What the agent does for each request and stream open of the protocol
 * (docs/protocol.md; the message table in streams/proto.c defines their
 * bodies). The host connection (host.c) decodes and checks a request,
 * then calls its handler here; a type with none is answered ENOSYS.
 */
static host_request_fn *const requests[PROTO_TYPE_MAX] = {
        [PROTO_OPEN_TAIL] = follow_open,
        [PROTO_OPEN_FD] = fileio_stream_open,
        [PROTO_OPEN_PROC] = job_stream_open,
        [PROTO_EXEC] = job_exec,
        [PROTO_WAIT] = job_wait,
        [PROTO_KILL] = job_kill,
        [PROTO_STDIN] = job_stdin,
        [PROTO_STDIN_CLOSE] = job_stdin_close,
        [PROTO_FOPEN] = fileio_open,
        [PROTO_FREAD] = fileio_read,
        [PROTO_FWRITE] = fileio_write,
        [PROTO_FSEEK] = fileio_seek,
        [PROTO_FCLOSE] = fileio_close,
        [PROTO_STAT] = fileio_stat,
};

static struct {
    struct agent a;
    struct transport *t;
    struct host *host;
} g = {.a = {.requests = requests}};

/* A random non-zero number for this agent process (hello_ok's instance):
 * a host that sees another one after a reconnect knows the agent was
 * restarted and that every process and handle id it had is stale. */
static uint64_t
draw_instance(void)
{
    uint64_t v = 0;
    struct timespec rt, mono;

    /* GRND_NONBLOCK: early in a guest's boot the pool may not be ready,
     * and the agent must not wait for it. The fallback only has to
     * differ between two agent processes of one machine: time and pid
     * do. */
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        v = (uint64_t)rt.tv_sec * 1000000007u ^ (uint64_t)rt.tv_nsec << 20 ^
            (uint64_t)mono.tv_nsec ^ (uint64_t)getpid() << 44;
    }
    return v ? v : 1;
}

/* The session's closed callback runs from a timer, outside any of the
 * session's own callbacks, so it can be freed here. */
static void
on_host_closed(void *arg)
{
    host_free(g.host);
    g.host = NULL;
    if (!transport_resume(g.t))
        reactor_stop(g.a.r);
}

static void
on_conn(int rfd, int wfd, void *arg)
{
    int err;

    if (g.host) { /* cannot happen: the transport waits for resume */
        close(rfd);
        if (wfd != rfd)
            close(wfd);
        return;
    }
    err = host_new(&g.a, rfd, wfd, on_host_closed, NULL, &g.host);
    if (err < 0) {
        agent_log("session: %s", strerror(-err));
        if (!transport_resume(g.t))
            reactor_stop(g.a.r);
        return;
    }
    if (agent_log_verbose())
        agent_log("host connected");
}

static void
on_stop(struct reactor *r, void *arg)
{
    reactor_stop(r);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: provium-agent [--listen unix:PATH | --listen "
               "vsock:PORT | --virtio-port NAME | --stdio]\n"
               "                     [--spool-dir DIR] [--proc-spool-max "
               "BYTES]\n"
               "                     [--max-channels N] [-v]\n");
}

/* Children get the agent's fds 0-2 replaced by pipes, but the agent
 * itself should not write protocol or logs onto a random fd that
 * happens to reuse a closed 0-2 (PID 1 helpers start without them). */
static void
ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            open("/dev/null", O_RDWR);
}

/* What processes get when the agent's own environment lacks it (an
 * agent started by an init script, or by a daemon with an empty
 * environment). docs/protocol.md lists these. */
static void
default_env(void)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        setenv("PATH",
               "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
               "/sbin:/bin",
               1);
    if (!getenv("HOME"))
        setenv("HOME", getuid() == 0 ? "/root" : "/", 1);
    if (!getenv("LANG"))
        setenv("LANG", "C.UTF-8", 1);
}

/* Each tail holds its file open (and each stream two spool files in
 * the daemon): the default soft limit of 1024 descriptors would stop a
 * VM far below --max-channels. The hard limit is the administrator's;
 * the soft one is ours to raise, as proviumfs does. Processes the agent
 * starts inherit it (as they do from a daemon-spawned agent). */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
            {"listen", required_argument, NULL, 'l'},
            {"virtio-port", required_argument, NULL, 'p'},
            {"stdio", no_argument, NULL, 's'},
            {"spool-dir", required_argument, NULL, 'd'},
            {"proc-spool-max", required_argument, NULL, 'm'},
            {"max-channels", required_argument, NULL, 'c'},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
    };
    char spec[PROTO_MAX_PATH + 16] = "";
    const char *tmp = getenv("TMPDIR");
    pid_t parent = getppid();
    int c, err, ret = 1;

    g.a.spool_dir = tmp && *tmp ? tmp : "/tmp";
    g.a.proc_spool_max = 1ull << 30;
    g.a.max_channels = AGENT_MAX_CHANNELS;
    g.a.instance = draw_instance();
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            snprintf(spec, sizeof(spec), "%s", optarg);
            break;
        case 'p':
            snprintf(spec, sizeof(spec), "virtio:%s", optarg);
            break;
        case 's':
            snprintf(spec, sizeof(spec), "stdio");
            break;
        case 'd':
            g.a.spool_dir = optarg;
            break;
        case 'm': {
            char *end;
            g.a.proc_spool_max = strtoull(optarg, &end, 10);
            if (*end || g.a.proc_spool_max == 0) {
                usage(stderr);
                return 2;
            }
            break;
        }
        case 'c': {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end || optarg[0] == '-' || n == 0 || n > (1ul << 24)) {
                fprintf(stderr,
                        "provium-agent: --max-channels: `%s` is not a "
                        "number from 1 to 16777216\n",
                        optarg);
                return 2;
            }
            g.a.max_channels = (unsigned)n;
            break;
        }
        case 'v':
            agent_log_set_verbose(true);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!spec[0] || optind != argc) {
        usage(stderr);
        return 2;
    }
    ensure_std_fds();
    default_env();
    raise_nofile();
    /* A host that goes away shows as EPIPE on write, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    /* Before any other fd exists: the keeper keeps none of ours. */
    if ((err = keeper_start()) < 0)
        agent_log("keeper: %s: processes will not be ended if the agent is "
                  "killed",
                  strerror(-err));

    if ((err = reactor_new(&g.a.r)) < 0) {
        agent_log("reactor: %s", strerror(-err));
        return 1;
    }
    if ((err = watch_new(g.a.r, &g.a.watch)) < 0) {
        agent_log("inotify: %s", strerror(-err));
        goto out_reactor;
    }
    if ((err = jobs_new(&g.a, &g.a.jobs)) < 0 ||
        (err = fileio_new(&g.a, &g.a.files)) < 0) {
        agent_log("init: %s", strerror(-err));
        goto out_tables;
    }
    if ((err = reactor_signal(g.a.r, SIGTERM, on_stop, NULL)) < 0 ||
        (err = reactor_signal(g.a.r, SIGINT, on_stop, NULL)) < 0) {
        agent_log("signals: %s", strerror(-err));
        goto out_tables;
    }
    /* Serving our parent over stdio: its death (even by SIGKILL) is our
     * SIGTERM. It may have died before the prctl: then it is no longer
     * our parent. */
    if (strcmp(spec, "stdio") == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            kill(getpid(), SIGTERM);
    }
    if ((err = transport_new(g.a.r, spec, on_conn, NULL, &g.t)) < 0) {
        agent_log("%s: %s", spec, strerror(-err));
        goto out_tables;
    }
    if (agent_log_verbose())
        agent_log("serving %s", spec);
    if ((err = reactor_run(g.a.r)) < 0) {
        agent_log("reactor: %s", strerror(-err));
        goto out_transport;
    }
    ret = 0;
out_transport:
    host_free(g.host);
    transport_free(g.t);
out_tables:
    /* The processes end first (TERM now, KILL after the grace period),
     * so that the agent, when asked to stop, is gone only after them. */
    keeper_finish();
    fileio_free(g.a.files);
    jobs_free(g.a.jobs);
    watch_free(g.a.watch);
out_reactor:
    reactor_free(g.a.r);
    keeper_finish(); /* idempotent: an early failure lands here */
    return ret;
}
