/*
 * test/bench/capture_rate.c - the highest packet rate the capture engine
 * records with zero loss, beside `tcpdump -U -w - -s 65535 > /dev/null`
 * on the same traffic in the same run.
 *
 *   bench_capture_rate [SECONDS_PER_TRIAL=1] [TRIALS=3]
 *
 * Needs root. Setup: network namespaces A (this process) and B (the
 * sender), made with `ip netns add` and deleted again at once (a holder
 * child keeps B alive until we exit), joined by a veth pair a0 <-> b0. A
 * sender in B sends UDP datagrams to 10.77.0.1:9999 paced at a fixed rate
 * (bursts every 100 us, sendmmsg) for SECONDS; a socket bound in A takes
 * them without reading (no ICMP unreachable noise). The capturer on a0,
 * filter `udp port 9999`, is either
 *   - provium: the capture engine feeding a real stream (history spooled
 *     to a file in $TMPDIR, as in the daemon), or
 *   - tcpdump: `tcpdump -i a0 -U -w - -s 65535 udp port 9999 > /dev/null`,
 *     started and waited for until it prints "listening on".
 * After the sender exits each capturer gets up to 1.5 s to drain: tcpdump
 * does not ask for immediate mode, so libpcap hands it packets in
 * TPACKET_V3 blocks retired by a 1 s timeout, and a SIGINT sooner loses
 * the last block from its count. A trial counts as lossless when the
 * capturer recorded every datagram sent and the kernel reports no drop
 * (pcap_stats; tcpdump's exit summary).
 *
 * Rates climb a fixed ladder; at each rate both capturers run TRIALS
 * trials, alternating, with the same sender. A capturer's result is the
 * highest rate before its first rate with a lossy median trial. Frame
 * sizes: 64 bytes (22-byte payload) and 1514 bytes (a full 1500-byte IP
 * packet), as captured (Ethernet header included, no FCS).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "streams.h"

#define PORT 9999
#define FILTER "udp port 9999"
#define DRAIN_USEC (1500 * USEC_PER_MSEC)
#define TICK_NSEC 100000L

struct trial {
    uint64_t sent, captured, drops;
    double achieved; /* sender's packets per second */
};

static char ns_a[64], ns_b[64], dir[256];
static pid_t holder;
static struct reactor *R;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        die("failed: %s", cmd);
}

static void
enter_ns(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        die("setns %s: %s", path, strerror(errno));
    close(fd);
}

static void
setup(void)
{
    char path[128];
    int ready[2];

    snprintf(ns_a, sizeof(ns_a), "provium-bench-%d-a", (int)getpid());
    snprintf(ns_b, sizeof(ns_b), "provium-bench-%d-b", (int)getpid());
    sh("ip netns add %s && ip netns add %s", ns_a, ns_b);
    snprintf(path, sizeof(path), "/run/netns/%s", ns_a);
    enter_ns(path);
    sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    sh("ip netns exec %s sysctl -qw net.ipv6.conf.default.disable_ipv6=1",
       ns_b);
    sh("ip link set lo up && ip link add a0 type veth peer name b0 netns %s",
       ns_b);
    sh("ip addr add 10.77.0.1/24 dev a0 && ip link set a0 up");
    sh("ip -n %s addr add 10.77.0.2/24 dev b0 && ip -n %s link set b0 up", ns_b,
       ns_b);
    /* The holder lives in B until we exit (its parent-death signal). */
    if (pipe(ready) < 0 || (holder = fork()) < 0)
        die("fork: %s", strerror(errno));
    if (holder == 0) {
        snprintf(path, sizeof(path), "/run/netns/%s", ns_b);
        enter_ns(path);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void)!write(ready[1], "k", 1);
        for (;;)
            pause();
    }
    char c;
    if (read(ready[0], &c, 1) != 1)
        die("netns holder failed");
    sh("ip netns del %s && ip netns del %s", ns_a, ns_b);
}

/* ---- the sender (a child in B) ------------------------------------ */

static void
send_paced(unsigned payload, uint64_t rate, uint64_t n, int report)
{
    char path[64];
    static char buf[1500];
    struct mmsghdr msgs[64];
    struct iovec iov = {.iov_base = buf, .iov_len = payload};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    struct timespec t0, tick, now;
    uint64_t sent = 0;

    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)holder);
    enter_ns(path);
    inet_pton(AF_INET, "10.77.0.1", &to.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0)
        _exit(1);
    for (int i = 0; i < 64; i++)
        msgs[i] =
                (struct mmsghdr){.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1}};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tick = t0;
    while (sent < n) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) +
                    (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        uint64_t due = (uint64_t)(el * (double)rate) + 1;
        if (due > n)
            due = n;
        while (sent < due) {
            unsigned k = due - sent > 64 ? 64 : (unsigned)(due - sent);
            int m = sendmmsg(fd, msgs, k, 0);
            if (m < 0 && errno != ENOBUFS && errno != EAGAIN)
                _exit(1);
            sent += m > 0 ? (unsigned)m : 0;
        }
        /* Pacing: the next 100 us tick (no fd can say when it is due). */
        tick.tv_nsec += TICK_NSEC;
        if (tick.tv_nsec >= 1000000000L) {
            tick.tv_sec++;
            tick.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    double el = (double)(now.tv_sec - t0.tv_sec) +
                (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
    dprintf(report, "%" PRIu64 " %.0f\n", sent, (double)sent / el);
    _exit(0);
}

struct sender {
    pid_t pid;
    int out, pidfd;
    bool exited;
};

static void
sender_exited(struct reactor *r, int fd, unsigned ev, void *arg)
{
    struct sender *sd = arg;
    reactor_unwatch(r, fd);
    sd->exited = true;
}

static void
sender_start(struct sender *sd, unsigned payload, uint64_t rate, uint64_t n)
{
    int p[2];
    if (pipe(p) < 0 || (sd->pid = fork()) < 0)
        die("fork: %s", strerror(errno));
    if (sd->pid == 0) {
        close(p[0]);
        send_paced(payload, rate, n, p[1]);
    }
    close(p[1]);
    sd->out = p[0];
    sd->exited = false;
    sd->pidfd = (int)syscall(SYS_pidfd_open, sd->pid, 0);
    if (sd->pidfd < 0 ||
        reactor_watch(R, sd->pidfd, REACTOR_IN, sender_exited, sd) < 0)
        die("pidfd: %s", strerror(errno));
}

static void
sender_finish(struct sender *sd, struct trial *t)
{
    char line[128] = "";
    int st;
    ssize_t n = read(sd->out, line, sizeof(line) - 1);
    waitpid(sd->pid, &st, 0);
    close(sd->out);
    close(sd->pidfd);
    if (n <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
        sscanf(line, "%" SCNu64 " %lf", &t->sent, &t->achieved) != 2)
        die("sender failed");
}

/* ---- the two capturers -------------------------------------------- */

static bool
cond_sender(void *arg)
{
    return ((struct sender *)arg)->exited;
}

static void
run_until(bool (*cond)(void *), void *arg, uint64_t deadline)
{
    while (!(cond && cond(arg)) && clock_now() < deadline)
        if (reactor_run_once(R, deadline) < 0)
            die("reactor");
}

struct want {
    struct stream *s;
    uint64_t n;
};

/* Every datagram recorded (frame 0 is the file header). */
static bool
cond_all(void *arg)
{
    struct want *w = arg;
    return stream_frames(w->s) >= 1 + w->n;
}

static void
opened(struct stream *s, int err, const char *msg, void *arg)
{
}

static uint64_t
info_u64(const char *info, const char *key)
{
    const char *p = strstr(info, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

static void
trial_provium(unsigned payload, uint64_t rate, uint64_t n, struct trial *t)
{
    struct stream_config cfg = {.spool_dir = dir, .noun = "capture"};
    const char *line = "capture a0 filter=\"" FILTER "\"";
    char err[COMMAND_ERR_LEN], info[1024] = "";
    struct command cmd;
    struct stream *s;
    struct sender sd;
    void *state;

    if (command_parse(&cmd, line, strlen(line), err) < 0 ||
        stream_new(R, &cfg, &s) < 0 ||
        engine_open_command(s, R, &cmd, opened, NULL, &state, err) < 0)
        die("capture: %s", err);
    command_free(&cmd);
    sender_start(&sd, payload, rate, n);
    run_until(cond_sender, &sd, UINT64_MAX);
    struct want w = {s, n};
    run_until(cond_all, &w, clock_now() + DRAIN_USEC);
    sender_finish(&sd, t);
    capture_engine.info(state, info, sizeof(info));
    t->captured = info_u64(info, "capture_packets: ");
    t->drops = info_u64(info, "capture_drops: ");
    stream_close(s);
    stream_unref(s);
    reactor_run_once(R, 0);
}

static void
trial_tcpdump(unsigned payload, uint64_t rate, uint64_t n, struct trial *t)
{
    int errp[2];
    if (pipe(errp) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(errp[1], 2);
        execlp("tcpdump", "tcpdump", "-i", "a0", "-U", "-w", "-", "-s", "65535",
               FILTER, (char *)NULL);
        _exit(127);
    }
    close(errp[1]);
    FILE *err = fdopen(errp[0], "r");
    char line[256];
    bool listening = false;
    /* tcpdump says "listening on a0" once its capture is active. */
    while (!listening && fgets(line, sizeof(line), err))
        listening = strstr(line, "listening on") != NULL;
    if (!listening)
        die("tcpdump did not start");
    struct sender sd;
    sender_start(&sd, payload, rate, n);
    run_until(cond_sender, &sd, UINT64_MAX);
    run_until(NULL, NULL, clock_now() + DRAIN_USEC);
    sender_finish(&sd, t);
    kill(pid, SIGINT);
    t->captured = t->drops = UINT64_MAX;
    while (fgets(line, sizeof(line), err)) {
        uint64_t v = strtoull(line, NULL, 10);
        if (strstr(line, " packets captured"))
            t->captured = v;
        else if (strstr(line, " packets dropped by kernel"))
            t->drops = v;
    }
    fclose(err);
    waitpid(pid, NULL, 0);
}

/* ---- the ladder ----------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t
median(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

static bool
lossless(const struct trial *t)
{
    return t->captured == t->sent && t->drops == 0;
}

int
main(int argc, char **argv)
{
    static const uint64_t rates[] = {10000,  25000,  50000,  100000,
                                     150000, 200000, 300000, 400000,
                                     600000, 800000, 1000000};
    static const unsigned frames[] = {64, 1514};
    static const char *const names[] = {"tcpdump", "provium"};
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int trials = argc > 2 ? atoi(argv[2]) : 3;
    const char *tmp = getenv("TMPDIR");

    if (geteuid() != 0)
        die("bench_capture_rate needs root (namespaces, CAP_NET_RAW)");
    if (secs <= 0 || trials < 1 || trials > 15)
        die("usage: bench_capture_rate [SECONDS>0] [TRIALS 1..15]");
    snprintf(dir, sizeof(dir), "%s/provium-bench-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("mkdtemp: %s", strerror(errno));
    setup();
    if (reactor_new(&R) < 0)
        die("reactor");
    /* The sink: takes the datagrams without reading them. */
    int sink = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    if (sink < 0 || bind(sink, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("sink: %s", strerror(errno));

    printf("# %.1f s per trial, %d trials per rate; lossless = every "
           "datagram recorded and 0 kernel drops\n",
           secs, trials);
    printf("%-6s %-8s %9s %10s %10s %10s %6s\n", "frame", "capturer", "rate",
           "achieved", "sent", "captured", "drops");
    for (size_t f = 0; f < 2; f++) {
        unsigned payload = frames[f] - 42; /* Ethernet + IPv4 + UDP */
        uint64_t best[2] = {0, 0};
        bool failed[2] = {false, false};
        for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
            if (failed[0] && failed[1])
                break;
            uint64_t n = (uint64_t)((double)rates[r] * secs);
            for (int c = 0; c < 2; c++) {
                if (failed[c])
                    continue;
                uint64_t sent[15], cap[15], drops[15], ach[15];
                int ok = 0;
                for (int i = 0; i < trials; i++) {
                    struct trial t = {0};
                    if (c == 0)
                        trial_tcpdump(payload, rates[r], n, &t);
                    else
                        trial_provium(payload, rates[r], n, &t);
                    sent[i] = t.sent;
                    cap[i] = t.captured;
                    drops[i] = t.drops;
                    ach[i] = (uint64_t)t.achieved;
                    ok += lossless(&t);
                }
                printf("%-6u %-8s %9" PRIu64 " %10" PRIu64 " %10" PRIu64
                       " %10" PRIu64 " %6" PRIu64 "  %d/%d lossless\n",
                       frames[f], names[c], rates[r], median(ach, trials),
                       median(sent, trials), median(cap, trials),
                       median(drops, trials), ok, trials);
                fflush(stdout);
                /* The median trial decides: a majority lossless. */
                if (2 * ok > trials)
                    best[c] = rates[r];
                else
                    failed[c] = true;
            }
        }
        printf("RESULT frame=%u tcpdump=%" PRIu64 " provium=%" PRIu64
               " ratio=%.2f%s\n",
               frames[f], best[0], best[1],
               best[0] ? (double)best[1] / (double)best[0] : 0.0,
               !failed[0] || !failed[1] ? " (ladder top reached)" : "");
    }
    close(sink);
    reactor_free(R);
    rmdir(dir);
    return 0;
}
