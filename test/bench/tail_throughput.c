/*
 * test/bench/tail_throughput.c - throughput of one tail of a file growing
 * at full speed, through a real provium-agent listening on a Unix socket;
 * beside `cat file > /dev/null` of the same file afterwards (page cache
 * hot) as the ceiling.
 *
 *   bench_tail_throughput AGENT_BINARY [MiB=2048]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "streams.h"

static uint64_t got;
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

static double
rate(uint64_t bytes, uint64_t usec)
{
    return (double)bytes / (double)usec; /* bytes/us = MB/s */
}

int
main(int argc, char **argv)
{
    char dir[] = "/tmp/provium-bench-XXXXXX", path[256], sock[256], ep[300];
    struct reactor *r;
    struct agent_client *c;
    uint64_t total = (argc > 2 ? strtoull(argv[2], NULL, 10) : 2048) << 20;

    if (argc < 2) {
        fprintf(stderr, "usage: %s AGENT_BINARY [MiB]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/big", dir);
    snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
    snprintf(ep, sizeof(ep), "unix:%s", sock);
    close(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644));

    pid_t agent = fork();
    if (agent == 0) {
        execl(argv[1], "provium-agent", "--listen", ep, "--spool-dir", dir,
              (char *)NULL);
        _exit(127);
    }
    if (reactor_new(&r) < 0 || agent_client_new(r, ep, &c) < 0)
        return 1;
    uint64_t deadline = clock_now() + 10 * USEC_PER_SEC;
    while (agent_client_state(c) != AGENT_UP && clock_now() < deadline)
        reactor_run_once(r, deadline);
    if (agent_client_state(c) != AGENT_UP) {
        fprintf(stderr, "agent: %s\n", agent_client_error(c));
        return 1;
    }
    struct agent_open req = {.type = PROTO_OPEN_TAIL, .path = path};
    struct agent_chan *ch;
    if (agent_client_open(c, &req, &cbs, NULL, &ch) < 0)
        return 1;
    while (!opened)
        reactor_run_once(r, UINT64_MAX);

    uint64_t t0 = clock_now();
    pid_t writer = fork();
    if (writer == 0) {
        static char buf[1 << 16];
        memset(buf, 'w', sizeof(buf));
        int fd = open(path, O_WRONLY | O_APPEND);
        for (uint64_t done = 0; done < total; done += sizeof(buf))
            if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                _exit(1);
        _exit(0);
    }
    uint64_t t_writer = 0;
    while (got < total) {
        reactor_run_once(r, UINT64_MAX);
        if (!t_writer && waitpid(writer, NULL, WNOHANG) == writer)
            t_writer = clock_now() - t0;
    }
    uint64_t t_tail = clock_now() - t0;
    if (!t_writer) {
        waitpid(writer, NULL, 0);
        t_writer = t_tail;
    }

    /* The same file again, complete and in the page cache, from byte 0:
     * what the agent and client pipeline does when no writer competes
     * for the CPUs. */
    agent_client_cancel(ch);
    opened = false;
    got = 0;
    req.start = PROTO_START_BEGINNING;
    if (agent_client_open(c, &req, &cbs, NULL, &ch) < 0)
        return 1;
    while (!opened)
        reactor_run_once(r, UINT64_MAX);
    uint64_t t2 = clock_now();
    while (got < total)
        reactor_run_once(r, UINT64_MAX);
    uint64_t t_full = clock_now() - t2;

    uint64_t t1 = clock_now();
    pid_t cat = fork();
    if (cat == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("cat", "cat", path, (char *)NULL);
        _exit(127);
    }
    waitpid(cat, NULL, 0);
    uint64_t t_cat = clock_now() - t1;

    printf("file size                  %llu MiB\n",
           (unsigned long long)(total >> 20));
    printf("writer finished in         %.3f s (%.0f MB/s)\n", t_writer / 1e6,
           rate(total, t_writer));
    printf("tail over unix socket      %.3f s (%.0f MB/s)\n", t_tail / 1e6,
           rate(total, t_tail));
    printf("tail of the whole file     %.3f s (%.0f MB/s)\n", t_full / 1e6,
           rate(total, t_full));
    printf("cat file > /dev/null       %.3f s (%.0f MB/s)\n", t_cat / 1e6,
           rate(total, t_cat));

    agent_client_cancel(ch);
    agent_client_free(c);
    reactor_free(r);
    kill(agent, SIGTERM);
    waitpid(agent, NULL, 0);
    unlink(path);
    unlink(sock);
    rmdir(dir);
    return 0;
}
