/*
 * test/bench/vm_console.c - the real test guest under QEMU (issue 6):
 *
 *  (a) boot time: `provium-vm start` to the boot marker on the console
 *      and to the agent's handshake (agent ready), median of N boots
 *      after one warm-up boot (which also pays the one-time KVM probe);
 *  (b) the console path's added latency: a guest process writes a line to
 *      the console (ttyS0), timed until a reader of a console stream
 *      (what `cat data` does in the daemon) has it; beside it, in the
 *      same run and alternating, the same write to a second serial port
 *      (ttyS1) read by a direct client of its own QEMU chardev socket.
 *      Both are timed from the agent exec request, so the exec cost is
 *      common to both; the difference of medians is the console engine's.
 *
 *   bench_vm_console SOURCE_DIR IMAGE_DIR [BOOTS=5] [LINES=40]
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "streams.h"

static struct reactor *r;
static char root[128], src[1024], image[1024];

static void
die(const char *what)
{
    fprintf(stderr, "bench_vm_console: %s\n", what);
    exit(1);
}

static int
launcher(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "PROVIUM_VM_DIR='%s' '%s/contrib/provium-vm' %s",
             root, src, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool
run_until(bool (*cond)(void *), void *arg, double seconds)
{
    uint64_t deadline = clock_now() + (uint64_t)(seconds * 1e6);
    while (!cond(arg)) {
        if (clock_now() >= deadline)
            return false;
        if (reactor_run_once(r, deadline) < 0)
            die("reactor");
    }
    return true;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double
median_ms(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    return (n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0) /
           1000.0;
}

/* ---- boot -------------------------------------------------------- */

struct vm {
    struct console *con;
    struct agent_client *agent;
};

static bool
has_marker(void *arg)
{
    struct vm *vm = arg;
    static char buf[1 << 16];
    uint64_t size = console_size(vm->con);
    uint64_t from = size > sizeof buf ? size - sizeof buf : 0;
    ssize_t n = console_pread(vm->con, buf, sizeof buf, from);
    return n > 0 && memmem(buf, (size_t)n, "PROVIUM-GUEST-READY", 19);
}

static bool
agent_up(void *arg)
{
    return agent_client_state(((struct vm *)arg)->agent) == AGENT_UP;
}

static void
boot(struct vm *vm, bool serial2, uint64_t *t_marker, uint64_t *t_agent)
{
    char args[2048], path[300];
    uint64_t t0 = clock_now();

    snprintf(args, sizeof args,
             "start bench --image '%s' --mount /nonexistent %s >/dev/null",
             image, serial2 ? "--serial2" : "");
    if (launcher(args) != 0)
        die("provium-vm start failed");
    snprintf(path, sizeof path, "%s/bench/console.sock", root);
    if (console_new(r, path, root, &vm->con) < 0)
        die("console_new");
    snprintf(path, sizeof path, "unix:%s/bench/agent.sock", root);
    if (agent_client_new(r, path, &vm->agent) < 0)
        die("agent_client_new");
    if (!run_until(has_marker, vm, 120))
        die("no boot marker");
    *t_marker = clock_now() - t0;
    if (!run_until(agent_up, vm, 120))
        die("agent not up");
    *t_agent = clock_now() - t0;
}

static void
halt(struct vm *vm)
{
    console_free(vm->con);
    agent_client_free(vm->agent);
    vm->con = NULL;
    vm->agent = NULL;
    launcher("stop bench >/dev/null");
}

/* ---- latency ----------------------------------------------------- */

struct sink {
    char buf[1 << 16];
    size_t len;
    char want[32];
    uint64_t at; /* arrival time of want, 0 until then */
};

static void
sink_add(struct sink *k, const void *p, size_t n)
{
    if (n > sizeof k->buf - k->len) { /* keep the tail only */
        k->len = 0;
        if (n > sizeof k->buf)
            return;
    }
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    if (!k->at && k->want[0] &&
        memmem(k->buf, k->len, k->want, strlen(k->want)))
        k->at = clock_now();
}

static struct sink via_console, via_direct;
static struct stream_reader *rd;

static void
on_reader(struct reactor *rr, void *arg)
{
    char buf[4096];
    ssize_t n;
    while ((n = stream_reader_read(rd, buf, sizeof buf)) > 0)
        sink_add(&via_console, buf, (size_t)n);
    stream_reader_notify(rd, on_reader, NULL);
}

static void
on_direct(struct reactor *rr, int fd, unsigned ev, void *arg)
{
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0)
        sink_add(&via_direct, buf, (size_t)n);
    else if (n == 0)
        reactor_unwatch(rr, fd);
}

static bool
sink_done(void *arg)
{
    return ((struct sink *)arg)->at != 0;
}

struct sync {
    bool done;
    int err;
};

static void
on_exec(void *arg, const struct agent_reply *rp)
{
    struct sync *s = arg;
    s->done = true;
    s->err = rp->err;
}

static void
on_opened(struct stream *st, int e, const char *msg, void *arg)
{
    if (e < 0)
        die(msg);
}

/* Whatever happens, no VM is left running. */
static void
cleanup(void)
{
    char rm[256];
    launcher("stop bench >/dev/null 2>&1");
    snprintf(rm, sizeof rm, "rm -rf '%s'", root);
    if (system(rm) != 0)
        fprintf(stderr, "bench_vm_console: cleanup of %s failed\n", root);
}

/* One line through tty, timed from the exec request to its arrival. */
static uint64_t
one_line(struct vm *vm, struct sink *k, const char *tty, int i)
{
    char script[128];
    struct sync sy = {0};

    snprintf(k->want, sizeof k->want, "LAT-%d-END", i);
    k->at = 0;
    k->len = 0;
    snprintf(script, sizeof script, "echo %s > %s", k->want, tty);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    uint64_t t0 = clock_now();
    if (agent_client_exec(vm->agent, "/", argv, NULL, on_exec, &sy, NULL) < 0)
        die("exec");
    if (!run_until(sink_done, k, 30))
        die("line did not arrive");
    uint64_t dt = k->at - t0;
    k->want[0] = '\0';
    return dt;
}

int
main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: bench_vm_console SOURCE_DIR IMAGE_DIR [BOOTS=5] "
                "[LINES=40]\n");
        return 2;
    }
    snprintf(src, sizeof src, "%s", argv[1]);
    snprintf(image, sizeof image, "%s", argv[2]);
    int boots = argc > 3 ? atoi(argv[3]) : 5;
    int lines = argc > 4 ? atoi(argv[4]) : 40;
    if (boots < 1 || lines < 1)
        die("BOOTS and LINES must be positive");
    signal(SIGPIPE, SIG_IGN);
    snprintf(root, sizeof root, "/tmp/provium-bench-XXXXXX");
    if (!mkdtemp(root))
        die("mkdtemp");
    atexit(cleanup);
    if (reactor_new(&r) < 0)
        die("reactor_new");

    struct vm vm = {0};
    uint64_t *marker = calloc((size_t)boots, sizeof(uint64_t));
    uint64_t *ready = calloc((size_t)boots, sizeof(uint64_t));
    uint64_t warm_m, warm_a;
    boot(&vm, false, &warm_m, &warm_a); /* warm-up: KVM probe, caches */
    halt(&vm);
    for (int i = 0; i < boots; i++) {
        boot(&vm, i == boots - 1, &marker[i], &ready[i]);
        printf("boot %d: marker %.0f ms, agent ready %.0f ms\n", i + 1,
               marker[i] / 1000.0, ready[i] / 1000.0);
        if (i < boots - 1)
            halt(&vm);
    }

    /* The last VM has the second serial port: the latency runs. */
    struct stream *s;
    struct stream_config cfg = {.spool_dir = root, .noun = "console"};
    struct command cmd;
    char err[COMMAND_ERR_LEN];
    void *state;
    const char *open = "console bench start=end";
    if (stream_new(r, &cfg, &s) < 0 ||
        command_parse(&cmd, open, strlen(open), err) < 0)
        die("stream");
    if (engine_open_command(s, vm.con, &cmd, on_opened, NULL, &state, err) <
        0)
        die(err);
    command_free(&cmd);
    if (stream_reader_new(s, &rd) < 0)
        die("reader");
    stream_reader_notify(rd, on_reader, NULL);

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.60s/bench/serial2.sock", root);
    int dfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (dfd < 0 || connect(dfd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect serial2");
    reactor_watch(r, dfd, REACTOR_IN, on_direct, NULL);

    uint64_t *lc = calloc((size_t)lines, sizeof(uint64_t));
    uint64_t *ld = calloc((size_t)lines, sizeof(uint64_t));
    for (int i = 0; i < lines; i++) {
        lc[i] = one_line(&vm, &via_console, "/dev/ttyS0", 2 * i);
        ld[i] = one_line(&vm, &via_direct, "/dev/ttyS1", 2 * i + 1);
    }
    double mc = median_ms(lc, (size_t)lines), md = median_ms(ld, (size_t)lines);
    printf("boot to marker: median %.0f ms over %d boots\n",
           median_ms(marker, (size_t)boots), boots);
    printf("boot to agent ready: median %.0f ms over %d boots\n",
           median_ms(ready, (size_t)boots), boots);
    printf("console line, via console stream: median %.2f ms (n=%d)\n", mc,
           lines);
    printf("console line, direct chardev reader: median %.2f ms (n=%d)\n", md,
           lines);
    printf("added by the console path: %.2f ms (ratio %.2f)\n", mc - md,
           mc / md);

    reactor_unwatch(r, dfd);
    close(dfd);
    stream_reader_free(rd);
    stream_close(s);
    stream_unref(s);
    halt(&vm);
    for (int i = 0; i < 3; i++)
        reactor_run_once(r, 0);
    reactor_free(r);
    return 0;
}
