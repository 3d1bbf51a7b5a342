/*
 * test/bench/tail_latency.c - latency from write(2) appending to a tailed
 * file to the bytes arriving at the host side, through a real
 * provium-agent spawned over a socketpair (the built-in host VM's path),
 * p50/p99 over N appends; beside a 50 ms polling tailer (what the
 * original agent did) measured in the same run.
 *
 *   bench_tail_latency AGENT_BINARY [N=1000] [BASELINE_N=200]
 *
 * Appends are paced with a random gap (0-2 ms for the agent, 0-50 ms for
 * the poller, so that appends land at random phases of its tick).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "streams.h"

static struct reactor *r;
static size_t got;
static bool opened;

static void
on_opened(void *arg, int err, const char *msg, uint64_t off)
{
    if (err < 0) {
        fprintf(stderr, "open: %s\n", msg);
        exit(1);
    }
    opened = true;
}

static void
on_data(void *arg, const void *buf, size_t len)
{
    got += len;
}

static void
on_end(void *arg, int err, unsigned reason, const char *msg)
{
    fprintf(stderr, "stream ended: %s\n", msg);
    exit(1);
}

static const struct agent_stream_cbs cbs = {
        .opened = on_opened, .data = on_data, .end = on_end};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
report(const char *name, uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    printf("%-28s n=%-5zu p50=%8.3f ms  p99=%8.3f ms  max=%8.3f ms\n", name, n,
           v[n / 2] / 1000.0, v[n * 99 / 100] / 1000.0, v[n - 1] / 1000.0);
}

static void
pace(unsigned max_us)
{
    struct timespec ts = {0, (long)(rand() % (max_us + 1)) * 1000};
    nanosleep(&ts, NULL);
}

/* The baseline: a child that stats and reads the file every 50 ms and
 * forwards what it read through a pipe. */
static void
poller(const char *path, int out)
{
    int fd = open(path, O_RDONLY);
    char buf[65536];
    lseek(fd, 0, SEEK_END);
    for (;;) {
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                _exit(0);
        usleep(50000);
    }
}

int
main(int argc, char **argv)
{
    char dir[] = "/tmp/provium-bench-XXXXXX", path[256];
    struct agent_client *c;
    const char line[] =
            "a log line of some typical length, 64 bytes long.......\n";
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    size_t nb = argc > 3 ? strtoul(argv[3], NULL, 10) : 200;

    if (argc < 2) {
        fprintf(stderr, "usage: %s AGENT_BINARY [N] [BASELINE_N]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/log", dir);
    int wfd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (wfd < 0 || reactor_new(&r) < 0 ||
        agent_client_spawn(r, argv[1], dir, &c) < 0)
        return 1;
    while (agent_client_state(c) != AGENT_UP)
        if (reactor_run_once(r, clock_now() + USEC_PER_SEC) < 0 ||
            agent_client_state(c) == AGENT_DOWN) {
            fprintf(stderr, "agent: %s\n", agent_client_error(c));
            return 1;
        }
    struct agent_open req = {.type = PROTO_OPEN_TAIL, .path = path};
    struct agent_chan *ch;
    if (agent_client_open(c, &req, &cbs, NULL, &ch) < 0)
        return 1;
    while (!opened)
        reactor_run_once(r, UINT64_MAX);

    uint64_t *lat = calloc(n > nb ? n : nb, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        size_t want = got + sizeof(line) - 1;
        pace(2000);
        uint64_t t0 = clock_now();
        if (write(wfd, line, sizeof(line) - 1) < 0)
            return 1;
        while (got < want)
            reactor_run_once(r, UINT64_MAX);
        lat[i] = clock_now() - t0;
    }
    report("provium-agent (inotify)", lat, n);

    int p[2];
    if (pipe(p) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        poller(path, p[1]);
    }
    close(p[1]);
    usleep(100000); /* let the poller reach the end of the file */
    for (size_t i = 0; i < nb; i++) {
        char buf[256];
        size_t have = 0;
        pace(50000);
        uint64_t t0 = clock_now();
        if (write(wfd, line, sizeof(line) - 1) < 0)
            return 1;
        while (have < sizeof(line) - 1) {
            ssize_t k = read(p[0], buf, sizeof(buf));
            if (k <= 0)
                return 1;
            have += (size_t)k;
        }
        lat[i] = clock_now() - t0;
    }
    report("50 ms polling baseline", lat, nb);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    agent_client_cancel(ch);
    agent_client_free(c);
    reactor_free(r);
    unlink(path);
    rmdir(dir);
    free(lat);
    return 0;
}
