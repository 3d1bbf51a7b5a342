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
 *   fs_probe wake STATUS DATA FILE FIFO N
 *                                 wake-up latency, one program and one
 *                                 clock (CLOCK_MONOTONIC) for both paths,
 *                                 N samples of each, alternating: a thread
 *                                 blocked in read(2) of DATA (a `data`
 *                                 file whose stream tails FILE), woken by
 *                                 a 16-byte append to FILE, and a thread
 *                                 blocked in read(2) of the FIFO, woken by
 *                                 a 16-byte write. Each append waits until
 *                                 the reader shows parked in the mount's
 *                                 STATUS and is asleep (its /proc state);
 *                                 each FIFO write until its reader is
 *                                 asleep. A third path, in the same loop:
 *                                 the append path's shape without the
 *                                 mount (relay(): an inotify-woken
 *                                 process preads and sends on a socket, a
 *                                 second writes to a pipe the reader
 *                                 blocks on). Prints p50, p90, p99 and
 *                                 max in µs for each, and the ratios
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
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

/* ---- wake: append -> parked reader, beside a FIFO ------------------- */

struct waker {
    int fd;
    pid_t tid;
    sem_t done;
    long long t1; /* CLOCK_MONOTONIC ns when the last read returned */
    ssize_t n;
};

static long long
ns_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *
wake_reader(void *arg)
{
    struct waker *w = arg;
    char buf[65536];

    w->tid = (pid_t)syscall(SYS_gettid);
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        w->t1 = ns_now();
        w->n = n;
        sem_post(&w->done);
        if (n <= 0)
            return NULL;
    }
}

/* Is the thread asleep (state S: blocked in its read)? */
static bool
asleep(pid_t tid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    if ((fd = open(path, O_RDONLY)) < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

static int
cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static long long
pct(const long long *v, int n, int p)
{
    int i = (int)(((long long)n * p + 99) / 100) - 1;
    return v[i < 0 ? 0 : i];
}

/* One sample: wait until w's reader sleeps (and, with a status file,
 * the mount shows `want` parked reads), write 16 bytes to fd, wait for
 * the read to return. The latency in ns, or -1. */
static long long
wake_once(struct waker *w, int fd, const char *status, long want)
{
    static const char line[16] = "wake-up latency\n";
    long deadline = ms_now() + 5000;

    while (!(w->tid && asleep(w->tid) && (!status || parked(status) == want))) {
        if (ms_now() > deadline) {
            fprintf(stderr, "fs_probe: the reader never parked\n");
            return -1;
        }
        usleep(200);
    }
    long long t0 = ns_now();
    if (write(fd, line, sizeof(line)) != (ssize_t)sizeof(line))
        return -1;
    sem_wait(&w->done);
    if (w->n <= 0) {
        fprintf(stderr, "fs_probe: the reader got %zd\n", w->n);
        return -1;
    }
    return w->t1 - t0;
}

static void
wake_report(const char *what, long long *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_ll);
    printf("%s: n %d p50 %.1f us p90 %.1f us p99 %.1f us max %.1f us\n", what,
           n, pct(v, n, 50) / 1e3, pct(v, n, 90) / 1e3, pct(v, n, 99) / 1e3,
           v[n - 1] / 1e3);
}

/* The floor of the append path's shape without proviumfs: a process
 * woken by inotify that preads the appended bytes and sends them on a
 * Unix socket (as the agent), a process that receives them and writes
 * them to a pipe (as the daemon answering the reader), the reader
 * blocked on the pipe. Each relay blocks in epoll_wait, as ours do. */
static pid_t
relay(int in, int out, int file)
{
    pid_t pid = fork();
    char buf[65536], ev[4096];
    off_t off = 0;

    if (pid != 0)
        return pid;
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, in, &e);
    for (;;) {
        if (epoll_wait(ep, &e, 1, -1) < 0)
            continue;
        ssize_t n = file >= 0 ? read(in, ev, sizeof(ev))
                              : read(in, buf, sizeof(buf));
        if (n <= 0)
            _exit(0);
        if (file >= 0 && (n = pread(file, buf, sizeof(buf), off)) > 0)
            off += n;
        if (n > 0 && write(out, buf, (size_t)n) < 0)
            _exit(1);
    }
}

static int
probe_wake(char **argv)
{
    const char *status = argv[2], *data = argv[3], *file = argv[4];
    const char *fifo = argv[5];
    int n = atoi(argv[6]);
    struct waker d = {0}, f = {0}, r = {0};
    pthread_t td, tf, tr;
    long long *ld, *lf, *lr;
    int afd, wfd, rfd, sv[2], p[2], ino;
    char rfile[4200];

    if (n < 1 || !(ld = calloc((size_t)n, sizeof(*ld))) ||
        !(lf = calloc((size_t)n, sizeof(*lf))) ||
        !(lr = calloc((size_t)n, sizeof(*lr))))
        return 2;
    /* The relay's file: FILE's name with ".relay" (not FILE: the agent
     * follows that one). */
    snprintf(rfile, sizeof(rfile), "%s.relay", file);
    if ((rfd = open(rfile, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600)) < 0 ||
        (ino = inotify_init1(IN_CLOEXEC)) < 0 ||
        inotify_add_watch(ino, rfile, IN_MODIFY) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p) < 0) {
        fprintf(stderr, "fs_probe: relay: %s\n", strerror(errno));
        return 1;
    }
    pid_t r1 = relay(ino, sv[0], rfd), r2 = relay(sv[1], p[1], -1);
    r.fd = p[0];
    long base = parked(status);
    if ((d.fd = open(data, O_RDONLY)) < 0 ||
        (afd = open(file, O_WRONLY | O_APPEND)) < 0 ||
        (f.fd = open(fifo, O_RDWR)) < 0 || (wfd = open(fifo, O_WRONLY)) < 0) {
        fprintf(stderr, "fs_probe: open: %s\n", strerror(errno));
        return 1;
    }
    sem_init(&d.done, 0, 0);
    sem_init(&f.done, 0, 0);
    sem_init(&r.done, 0, 0);
    if (pthread_create(&td, NULL, wake_reader, &d) ||
        pthread_create(&tf, NULL, wake_reader, &f) ||
        pthread_create(&tr, NULL, wake_reader, &r))
        return 1;
    for (int i = 0; i < n; i++) {
        if ((ld[i] = wake_once(&d, afd, status, base + 1)) < 0 ||
            (lf[i] = wake_once(&f, wfd, NULL, 0)) < 0 ||
            (lr[i] = wake_once(&r, rfd, NULL, 0)) < 0)
            return 1;
    }
    kill(r1, SIGKILL);
    kill(r2, SIGKILL);
    unlink(rfile);
    wake_report("append -> parked data read", ld, n);
    wake_report("FIFO write -> blocked read", lf, n);
    wake_report("append -> inotify relay -> socket relay -> pipe read", lr, n);
    printf("ratio data/FIFO: p50 %.2fx p99 %.2fx\n",
           (double)pct(ld, n, 50) / (double)pct(lf, n, 50),
           (double)pct(ld, n, 99) / (double)pct(lf, n, 99));
    printf("ratio data/relay: p50 %.2fx p99 %.2fx\n",
           (double)pct(ld, n, 50) / (double)pct(lr, n, 50),
           (double)pct(ld, n, 99) / (double)pct(lr, n, 99));
    fflush(stdout);
    _exit(0); /* the readers stay blocked: no join */
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
    if (strcmp(argv[1], "wake") == 0) {
        if (argc < 7) {
            fprintf(stderr, "usage: fs_probe wake STATUS DATA FILE FIFO N\n");
            return 2;
        }
        return probe_wake(argv);
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
