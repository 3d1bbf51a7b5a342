/*
 * fs_probe.c - tiny client for the proviumfs integration tests: the
 * system calls the shell cannot make, with the outcome printed exactly.
 *
 *   fs_probe nonblock FILE [CMD]  open O_NONBLOCK, read: prints EAGAIN, a
 *                                 byte count, EOF, or "error <msg>"
 *   fs_probe poll FILE MS [CMD]   poll for POLLIN up to MS, then read:
 *                                 prints "ready <ms> <bytes> <ns>" (ns:
 *                                 CLOCK_REALTIME when poll returned) or
 *                                 "timeout"
 *   fs_probe epoll FILE MS [CMD]  the same with epoll
 *   fs_probe read FILE            one blocking read: prints the
 *                                 CLOCK_REALTIME ns when it returned and
 *                                 the byte count (wake-up latency)
 *   fs_probe reads FILE OFF SIZE...
 *                                 reads of each SIZE in turn (OFF -1:
 *                                 read(2) at the file position, else
 *                                 pread(2) at OFF, OFF + the bytes so
 *                                 far...): prints each count (or "error
 *                                 <msg>"); the bytes go to stdout's fd 3
 *                                 when it is open
 *   fs_probe eintr FILE STATUS APPEND TEXT EXPECT [CMD]
 *                                 a blocking read interrupted by a signal
 *                                 whose handler has no SA_RESTART must
 *                                 fail with EINTR (not return 0 or data);
 *                                 then TEXT is appended to the file
 *                                 APPEND and the next reads must return
 *                                 exactly EXPECT. The signal is sent only
 *                                 once the mount's status file STATUS
 *                                 shows the read parked in the daemon, so
 *                                 it is the daemon's answer to the FUSE
 *                                 interrupt that is checked (a request
 *                                 still queued in the kernel is withdrawn
 *                                 by the kernel itself).
 *
 * With CMD the file (a ctl) is opened read-write and CMD written first,
 * so the read waits for that command's reply.
 *
 * Exit status: 0 when the call behaved as the mode requires (eintr) or
 * made no unexpected call failure (the others: the output says what
 * happened); 1 otherwise, with the reason on stderr. Every mode but
 * `read` is bounded: a call still blocked after 10 s is interrupted and
 * reported ("error Interrupted system call").
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long
ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After poll said ready: "ready <ms since start> <bytes read> <CLOCK_REALTIME
 * ns when poll returned>" (the test compares the last with when it wrote). */
static int
report_read(int fd, long t0)
{
    char buf[65536];
    struct timespec ts;
    long long ready_ns;
    ssize_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    ready_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    n = read(fd, buf, sizeof(buf));
    if (n < 0) {
        printf("read-error %s\n", strerror(errno));
        return 1;
    }
    printf("ready %ld %zd %lld\n", ms_now() - t0, n, ready_ns);
    return 0;
}

/* Open FILE; with a command, read-write and the command written. */
static int
open_file(const char *path, int flags, const char *cmd)
{
    int fd = open(path, (cmd ? O_RDWR : O_RDONLY) | flags);

    if (fd < 0) {
        fprintf(stderr, "fs_probe: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (cmd) {
        size_t len = strlen(cmd);
        if (write(fd, cmd, len) != (ssize_t)len) {
            fprintf(stderr, "fs_probe: write `%s`: %s\n", cmd,
                    strerror(errno));
            exit(1);
        }
    }
    return fd;
}

static volatile sig_atomic_t signals;

static void
on_signal(int sig)
{
    signals++;
}

/* The parked count in the mount's status file, -1 if unreadable. */
static long
parked(const char *status)
{
    char buf[8192], *p;
    ssize_t n;
    int fd = open(status, O_RDONLY);

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    p = strstr(buf, "\nparked: ");
    return p ? strtol(p + 9, NULL, 10) : -1;
}

/* A child that sends SIGUSR1 to the parent once a read is parked (or
 * after 5 s: the parent then sees the outcome it sees). */
static pid_t
interrupter(const char *status)
{
    pid_t parent = getpid(), pid = fork();

    if (pid != 0)
        return pid;
    long deadline = ms_now() + 5000;
    while (ms_now() < deadline && parked(status) < 1)
        usleep(20000);
    if (ms_now() >= deadline)
        fprintf(stderr, "fs_probe: the read never showed as parked\n");
    kill(parent, SIGUSR1);
    _exit(0);
}

static int
probe_eintr(char **argv, int argc)
{
    const char *file = argv[2], *status = argv[3], *append = argv[4];
    const char *text = argv[5], *expect = argv[6];
    const char *cmd = argc > 7 ? argv[7] : NULL;
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    size_t want = strlen(expect), have = 0;
    char buf[4096], got[4096];
    ssize_t n;
    long t0;
    int fd, afd, rc = 0;

    if (want >= sizeof(got)) {
        fprintf(stderr, "fs_probe: EXPECT too long\n");
        return 2;
    }
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGALRM, &sa, NULL) < 0)
        return 1;
    fd = open_file(file, 0, cmd);
    pid_t child = interrupter(status);
    t0 = ms_now();
    n = read(fd, buf, sizeof(buf));
    int err = errno;
    waitpid(child, NULL, 0);
    if (n < 0 && err == EINTR) {
        printf("EINTR after %ld ms\n", ms_now() - t0);
    } else if (n < 0) {
        printf("read failed: %s (want EINTR)\n", strerror(err));
        rc = 1;
    } else if (n == 0) {
        printf("read returned 0 (end of file) (want EINTR)\n");
        rc = 1;
    } else {
        printf("read returned %zd bytes `%.*s` (want EINTR)\n", n, (int)n, buf);
        rc = 1;
    }
    fflush(stdout);
    /* The file goes on: the bytes appended now reach the next read. */
    if ((afd = open(append, O_WRONLY | O_APPEND)) < 0 ||
        write(afd, text, strlen(text)) != (ssize_t)strlen(text)) {
        fprintf(stderr, "fs_probe: append to %s: %s\n", append,
                strerror(errno));
        return 1;
    }
    close(afd);
    alarm(10); /* bounded: a read that never returns is interrupted */
    while (have < want) {
        n = read(fd, got + have, want - have);
        if (n <= 0) {
            printf("next read: %s after %zu of %zu bytes\n",
                   n == 0 ? "end of file" : strerror(errno), have, want);
            return 1;
        }
        have += (size_t)n;
    }
    alarm(0);
    if (memcmp(got, expect, want) != 0) {
        printf("next reads: `%.*s` (want `%s`)\n", (int)want, got, expect);
        return 1;
    }
    printf("then: `%.*s`\n", (int)want, got);
    close(fd);
    return rc;
}

int
main(int argc, char **argv)
{
    char buf[4096];
    long t0;
    int fd, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: fs_probe nonblock|poll|epoll|read|reads|eintr FILE "
                        "...\n");
        return 2;
    }
    if (strcmp(argv[1], "eintr") == 0) {
        if (argc < 7) {
            fprintf(stderr, "usage: fs_probe eintr FILE STATUS APPEND TEXT "
                            "EXPECT [CMD]\n");
            return 2;
        }
        return probe_eintr(argv, argc);
    }
    /* Bounded: a read that should not block but does (O_NONBLOCK or poll
     * ignored) fails with EINTR after 10 s instead of hanging the test. */
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    if (strcmp(argv[1], "read") != 0)
        alarm(10);
    if (strcmp(argv[1], "nonblock") == 0) {
        fd = open_file(argv[2], O_NONBLOCK, argc > 3 ? argv[3] : NULL);
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN)
            printf("EAGAIN\n");
        else if (n < 0)
            printf("error %s\n", strerror(errno));
        else if (n == 0)
            printf("EOF\n");
        else
            printf("%zd\n", n);
        return 0;
    }
    if (strcmp(argv[1], "reads") == 0 && argc > 4) {
        long long off = atoll(argv[3]);
        bool out = fcntl(3, F_GETFD) >= 0;
        fd = open_file(argv[2], 0, NULL);
        for (int i = 4; i < argc; i++) {
            size_t want = strtoull(argv[i], NULL, 10);
            char *p = want ? malloc(want) : buf;
            ssize_t n = !p ? -1
                        : off < 0 ? read(fd, p, want)
                                  : pread(fd, p, want, (off_t)off);
            if (n < 0) {
                printf("error %s\n", strerror(errno));
            } else {
                printf("%zd\n", n);
                if (out && write(3, p, (size_t)n) != n)
                    return 1;
                if (off >= 0)
                    off += n;
            }
            if (p != buf)
                free(p);
        }
        return 0;
    }
    if (strcmp(argv[1], "read") == 0) {
        struct timespec ts;
        fd = open_file(argv[2], 0, NULL);
        ssize_t n = read(fd, buf, sizeof(buf));
        clock_gettime(CLOCK_REALTIME, &ts);
        printf("%lld %zd\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
               n);
        return n < 0;
    }
    int ms = argc > 3 ? atoi(argv[3]) : 5000;
    fd = open_file(argv[2], 0, argc > 4 ? argv[4] : NULL);
    t0 = ms_now();
    if (strcmp(argv[1], "poll") == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        rc = poll(&p, 1, ms);
        if (rc < 0) {
            perror("poll");
            return 1;
        }
        if (rc == 0) {
            printf("timeout\n");
            return 0;
        }
        return report_read(fd, t0);
    }
    if (strcmp(argv[1], "epoll") == 0) {
        struct epoll_event ev = {.events = EPOLLIN}, out;
        int ep = epoll_create1(0);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll");
            return 1;
        }
        rc = epoll_wait(ep, &out, 1, ms);
        if (rc < 0) {
            perror("epoll_wait");
            return 1;
        }
        if (rc == 0) {
            printf("timeout\n");
            return 0;
        }
        return report_read(fd, t0);
    }
    fprintf(stderr, "fs_probe: unknown mode %s\n", argv[1]);
    return 2;
}
