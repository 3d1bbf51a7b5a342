/*
 * test/e2e/vm.c - end to end with a real QEMU guest (SPEC §6.1, §5.4):
 * the guest image from guest/mkimage, booted by contrib/provium-vm, read
 * and driven through the stream core only (no FUSE): the console engine
 * on QEMU's chardev socket, the agent client on the virtio-serial port,
 * and the tail engine for guest files and process output.
 *
 * Each test boots its own VM under a private state directory and stops it
 * in .fini; main() stops whatever a crashed test left behind. Exit status
 * 77 (ctest's SKIP_RETURN_CODE) only when qemu-system-x86_64 is missing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "streams.h"

#define BOOT_MARKER "PROVIUM-GUEST-READY"
#define BOOT_TIMEOUT (90 * USEC_PER_SEC) /* TCG: about 5 s; CI is slower */
#define OP_TIMEOUT (30 * USEC_PER_SEC)

/* PROVIUM_VM_DIR for this run. Criterion runs each test in a new process
 * image that does not go through main(), so main passes it in the
 * environment (PROVIUM_E2E_VM_DIR) and setup() reads it back. */
static char vm_root[128];
static char vm_dir[PATH_MAX]; /* the running VM's state directory */
static char vm_name[32];
static char image[PATH_MAX];
static char kernel_release[128];
static struct reactor *r;
static struct console *con;
static struct agent_client *agent;

/* ---- the VM ------------------------------------------------------ */

static const char *
env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static int
launcher(const char *args)
{
    char cmd[2 * PATH_MAX];

    snprintf(cmd, sizeof cmd, "PROVIUM_VM_DIR='%s' '%s/contrib/provium-vm' %s",
             vm_root, env_or("PROVIUM_SOURCE_DIR", "."), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
vm_start(void)
{
    char args[PATH_MAX + 128];

    /* No --wait: the console must connect while the guest boots, so the
     * history holds the whole boot. --mount '': register nowhere. */
    snprintf(args, sizeof args,
             "start %s --image '%s' --mount '' >/dev/null", vm_name,
             image);
    cr_assert_eq(launcher(args), 0, "provium-vm start failed");
}

static void
vm_kill(void)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/qemu.pid", vm_dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    cr_assert_eq(kill(pid, SIGKILL), 0);
}

static void
read_line_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_not_null(fgets(buf, (int)len, f));
    buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

static void
setup(void)
{
    const char *build = env_or("PROVIUM_BUILD_DIR", ".");
    char path[PATH_MAX + 32];

    signal(SIGPIPE, SIG_IGN);
    snprintf(vm_root, sizeof vm_root, "%s", env_or("PROVIUM_E2E_VM_DIR", ""));
    cr_assert(vm_root[0], "PROVIUM_E2E_VM_DIR is not set");
    snprintf(image, sizeof image, "%s/guest-image", build);
    snprintf(path, sizeof path, "%s/kernel-release", image);
    read_line_file(path, kernel_release, sizeof kernel_release);
    snprintf(vm_name, sizeof vm_name, "e2e-%d", (int)getpid());
    snprintf(vm_dir, sizeof vm_dir, "%s/%s", vm_root, vm_name);
    cr_assert_eq(reactor_new(&r), 0);
    vm_start();
    char sock[PATH_MAX + 16];
    snprintf(sock, sizeof sock, "%s/console.sock", vm_dir);
    cr_assert_eq(console_new(r, sock, vm_root, &con), 0);
    snprintf(sock, sizeof sock, "unix:%s/agent.sock", vm_dir);
    cr_assert_eq(agent_client_new(r, sock, &agent), 0);
}

static void
teardown(void)
{
    char args[64];

    console_free(con);
    agent_client_free(agent);
    con = NULL;
    agent = NULL;
    snprintf(args, sizeof args, "stop %s >/dev/null 2>&1", vm_name);
    launcher(args);
    for (int i = 0; r && i < 3; i++)
        reactor_run_once(r, 0);
    reactor_free(r);
    r = NULL;
}

TestSuite(vm, .init = setup, .fini = teardown, .timeout = 240);

/* ---- driving the reactor ----------------------------------------- */

static bool
run_until(bool (*cond)(void *), void *arg, uint64_t usec)
{
    uint64_t deadline = clock_now() + usec;
    while (!cond(arg)) {
        if (clock_now() >= deadline)
            return false;
        cr_assert_eq(reactor_run_once(r, deadline), 0);
    }
    return true;
}

static bool
agent_up(void *arg)
{
    return agent_client_state(agent) == AGENT_UP;
}

static bool
stream_done(void *arg)
{
    return stream_state(arg) != STREAM_LIVE;
}

struct result {
    bool done;
    enum reply_status st;
    char *payload;
    size_t len;
};

static void
on_done(struct stream *s, struct reply *rp, void *arg)
{
    struct result *res = arg;
    char *all, *nl;
    size_t n;

    cr_assert_not_null(rp);
    res->done = true;
    res->st = reply_status(rp);
    cr_assert_eq(reply_collect(rp, &all, &n), 0);
    nl = memchr(all, '\n', n);
    cr_assert_not_null(nl);
    res->len = n - (size_t)(nl + 1 - all);
    res->payload = malloc(res->len + 1);
    memcpy(res->payload, nl + 1, res->len);
    res->payload[res->len] = '\0';
    free(all);
    reply_free(rp);
}

static bool
is_done(void *arg)
{
    return ((struct result *)arg)->done;
}

/* Run one stream op to its answer; the caller frees res.payload. */
static struct result
run_op(struct stream *s, enum stream_op_kind kind, const char *pattern,
       uint64_t timeout)
{
    struct stream_op_spec spec = {.kind = kind,
                                  .timeout = timeout,
                                  .pattern = pattern,
                                  .pattern_len = pattern ? strlen(pattern) : 0};
    struct result res = {0};

    cr_assert_eq(stream_op_submit(s, &spec, on_done, &res, NULL), 0);
    cr_assert(run_until(is_done, &res, timeout + 5 * USEC_PER_SEC),
              "op not answered");
    return res;
}

static void
expect(struct stream *s, const char *pattern, uint64_t timeout)
{
    struct result res = run_op(s, STREAM_OP_EXPECT, pattern, timeout);
    cr_assert_eq(res.st, REPLY_OK, "expect `%s`: %s %s", pattern,
                 reply_status_name(res.st), res.payload);
    free(res.payload);
}

static void
on_opened(struct stream *s, int err, const char *msg, void *arg)
{
    struct result *res = arg;
    res->done = true;
    res->st = err < 0 ? REPLY_ERROR : REPLY_OK;
    res->payload = strdup(msg ? msg : "");
}

/* Open a stream of engine ops with ctx, as the fs layer would. */
static struct stream *
open_stream(const struct engine_ops *ops, void *ctx, const char *line)
{
    struct stream_config cfg = {.spool_dir = vm_root,
                                .noun = ops == &console_engine ? "console"
                                                               : "stream"};
    struct command cmd;
    struct stream *s;
    struct result res = {0};
    char err[COMMAND_ERR_LEN] = "";
    void *state = NULL;

    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0, "%s", err);
    cr_assert_eq(stream_new(r, &cfg, &s), 0);
    int rc = engine_open_command(s, ctx, &cmd, on_opened, &res, &state, err);
    command_free(&cmd);
    cr_assert_eq(rc, 0, "open `%s`: %s", line, err);
    cr_assert(run_until(is_done, &res, OP_TIMEOUT));
    cr_assert_eq(res.st, REPLY_OK, "open `%s`: %s", line, res.payload);
    free(res.payload);
    return s;
}

static void
close_stream(struct stream *s)
{
    stream_close(s);
    stream_unref(s);
}

struct sync {
    bool done;
    int err;
    uint64_t value;
};

static void
sync_done(void *arg, const struct agent_reply *rp)
{
    struct sync *sy = arg;
    sy->done = true;
    sy->err = rp->err;
    sy->value = rp->value;
}

static bool
sync_is_done(void *arg)
{
    return ((struct sync *)arg)->done;
}

/* Run argv in the guest; its proc id. */
static uint64_t
guest_exec(char *const argv[])
{
    struct sync sy = {0};
    int rc = agent_client_exec(agent, "/", argv, NULL, sync_done, &sy, NULL);
    cr_assert_eq(rc, 0, "exec: %s", strerror(-rc));
    cr_assert(run_until(sync_is_done, &sy, OP_TIMEOUT));
    cr_assert_eq(sy.err, 0, "exec %s: %s", argv[0], strerror(-sy.err));
    return sy.value;
}

/* Its whole stdout (the stream replays it from the first byte). */
static char *
guest_output(char *const argv[])
{
    char line[64];
    uint64_t id = guest_exec(argv);
    snprintf(line, sizeof line, "proc_stdout_stream %s proc#%llu", vm_name,
             (unsigned long long)id);
    struct stream *s = open_stream(&tail_engine, agent, line);
    cr_assert(run_until(stream_done, s, OP_TIMEOUT), "process did not end");
    struct result res = run_op(s, STREAM_OP_DRAIN, NULL, 0);
    cr_assert_eq(res.st, REPLY_OK);
    /* drain records "<n>\n<n bytes>": concatenate the bytes */
    char *out = calloc(1, res.len + 1), *o = out, *p = res.payload;
    while (p < res.payload + res.len) {
        char *nl = strchr(p, '\n');
        size_t n = strtoul(p, NULL, 10);
        memcpy(o, nl + 1, n);
        o += n;
        p = nl + 1 + n;
    }
    free(res.payload);
    close_stream(s);
    return out;
}

static void
wait_agent(void)
{
    cr_assert(run_until(agent_up, NULL, BOOT_TIMEOUT), "agent not up: %s",
              agent_client_error(agent));
}

/* ---- tests ------------------------------------------------------- */

Test(vm, boot_console_agent_and_tail)
{
    /* The whole boot, from a stream opened before the guest printed
     * anything much... */
    struct stream *early = open_stream(&console_engine, con, "console vm");
    expect(early, BOOT_MARKER, BOOT_TIMEOUT);
    /* ...and from one opened after boot finished: only the history has
     * the marker now. */
    struct stream *late =
            open_stream(&console_engine, con, "console vm start=beginning");
    cr_assert_eq(stream_size(late), console_size(con),
                 "the whole history so far");
    expect(late, BOOT_MARKER, OP_TIMEOUT);
    char info[1024] = "";
    console_info(con, info, sizeof info);
    cr_assert_not_null(strstr(info, "console_state: connected\n"), "%s", info);

    /* The agent: handshake facts name the guest kernel. */
    wait_agent();
    const struct agent_facts *facts = agent_client_facts(agent);
    cr_assert_not_null(facts);
    cr_assert_str_eq(facts->kernel, kernel_release);
    cr_assert_str_eq(facts->os, "Linux");

    /* A guest process's output. */
    char *const uname_argv[] = {"/bin/uname", "-r", NULL};
    char *out = guest_output(uname_argv);
    char want[160];
    snprintf(want, sizeof want, "%s\n", kernel_release);
    cr_assert_str_eq(out, want);
    free(out);
    char *const version_argv[] = {"/bin/cat", "/proc/version", NULL};
    out = guest_output(version_argv);
    cr_assert_not_null(strstr(out, kernel_release), "%s", out);
    free(out);

    /* Tail a guest file and see a guest-side append. */
    char *const mk[] = {"/bin/sh", "-c", "echo first > /tmp/e2e.log", NULL};
    free(guest_output(mk));
    struct stream *t = open_stream(&tail_engine, agent,
                                   "tail_file vm /tmp/e2e.log start=beginning");
    expect(t, "first\n", OP_TIMEOUT);
    char *const app[] = {"/bin/sh", "-c", "echo appended >> /tmp/e2e.log",
                         NULL};
    free(guest_output(app));
    struct result res = run_op(t, STREAM_OP_NEXT, NULL, OP_TIMEOUT);
    cr_assert_eq(res.st, REPLY_OK, "%s", res.payload);
    cr_assert_str_eq(res.payload, "appended\n");
    free(res.payload);

    /* Console write: a shell command's output comes back on every
     * console stream (the pattern is the command's result, not its
     * echo). */
    struct stream *live =
            open_stream(&console_engine, con, "console vm start=end");
    const char *cmd = "echo e2e-$((6*7))-ok\n";
    int n = console_write(con, cmd, strlen(cmd));
    cr_assert_eq(n, (int)strlen(cmd), "console_write: %d", n);
    expect(live, "e2e-42-ok", OP_TIMEOUT);
    expect(late, "e2e-42-ok", OP_TIMEOUT);
    expect(early, "e2e-42-ok", OP_TIMEOUT);
    cr_assert_eq(console_streams(con), 3);

    close_stream(t);
    close_stream(live);
    close_stream(late);
    close_stream(early);
    cr_assert_eq(console_streams(con), 0);
}

Test(vm, killed_then_restarted)
{
    struct stream *c1 = open_stream(&console_engine, con, "console vm");
    expect(c1, BOOT_MARKER, BOOT_TIMEOUT);
    wait_agent();
    char *const mk[] = {"/bin/sh", "-c", "echo x > /tmp/k.log", NULL};
    free(guest_output(mk));
    struct stream *t = open_stream(&tail_engine, agent,
                                   "tail_file vm /tmp/k.log start=beginning");
    expect(t, "x\n", OP_TIMEOUT);

    vm_kill();
    /* The console session is over: console EOF; the tail: an error. */
    cr_assert(run_until(stream_done, c1, OP_TIMEOUT));
    struct result res = run_op(c1, STREAM_OP_NEXT, NULL, OP_TIMEOUT);
    while (res.st == REPLY_OK) { /* the rest of the boot log first */
        free(res.payload);
        res = run_op(c1, STREAM_OP_NEXT, NULL, OP_TIMEOUT);
    }
    cr_assert_eq(res.st, REPLY_EOF, "%s", res.payload);
    cr_assert_str_eq(res.payload, "console EOF");
    free(res.payload);
    cr_assert(run_until(stream_done, t, OP_TIMEOUT));
    const char *msg;
    cr_assert_neq(stream_end_error(t, &msg), 0, "the tail ends with an error");
    res = run_op(t, STREAM_OP_NEXT, NULL, OP_TIMEOUT);
    cr_assert_eq(res.st, REPLY_ERROR, "%s", res.payload);
    free(res.payload);

    /* A stream opened while the VM is down waits for the next session. */
    struct stream *c2 =
            open_stream(&console_engine, con, "console vm start=end");
    char args[64];
    snprintf(args, sizeof args, "stop %s >/dev/null 2>&1", vm_name);
    launcher(args);
    vm_start();
    expect(c2, BOOT_MARKER, BOOT_TIMEOUT);
    wait_agent();
    const char *cmd = "echo again-$((40+2))\n";
    cr_assert_eq(console_write(con, cmd, strlen(cmd)), (int)strlen(cmd));
    expect(c2, "again-42", OP_TIMEOUT);
    /* The history spans both sessions: two boot markers. */
    struct stream *all = open_stream(&console_engine, con, "console vm");
    expect(all, BOOT_MARKER, OP_TIMEOUT);
    expect(all, BOOT_MARKER, OP_TIMEOUT);
    char *const un[] = {"/bin/uname", "-r", NULL};
    char *out = guest_output(un);
    cr_assert_not_null(strstr(out, kernel_release));
    free(out);
    close_stream(all);
    close_stream(c2);
    close_stream(t);
    close_stream(c1);
}

/* ---- main -------------------------------------------------------- */

static bool
have_qemu(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];

    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/qemu-system-x86_64", (int)n, p);
        if (access(buf, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

int
main(int argc, char *argv[])
{
    struct criterion_test_set *tests;
    char cmd[3 * sizeof vm_root + PATH_MAX];
    int ok;

    if (!have_qemu()) {
        fprintf(stderr, "e2e: qemu-system-x86_64 not found: skipped\n");
        return 77;
    }
    snprintf(vm_root, sizeof vm_root, "%s/provium-e2e-XXXXXX",
             strlen(env_or("TMPDIR", "/tmp")) < 60 ? env_or("TMPDIR", "/tmp")
                                                   : "/tmp");
    if (!mkdtemp(vm_root)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("PROVIUM_E2E_VM_DIR", vm_root, 1);
    /* If ctest kills us, the sweep (test/sweep.sh) stops the VMs. */
    const char *reg = getenv("PROVIUM_TEST_REG");
    FILE *f = reg && *reg ? fopen(reg, "a") : NULL;
    if (f) {
        fprintf(f, "vmroot %s\ndir %s\n", vm_root, vm_root);
        fclose(f);
    }
    tests = criterion_initialize();
    ok = criterion_handle_args(argc, argv, true);
    if (ok)
        ok = criterion_run_all_tests(tests);
    criterion_finalize(tests);
    /* A test that crashed skipped its .fini: stop what it left running. */
    snprintf(cmd, sizeof cmd,
             "for d in '%s'/*/; do [ -d \"$d\" ] && PROVIUM_VM_DIR='%s' "
             "'%s/contrib/provium-vm' stop \"$(basename \"$d\")\"; done "
             ">/dev/null 2>&1; rm -rf '%s'",
             vm_root, vm_root, env_or("PROVIUM_SOURCE_DIR", "."), vm_root);
    if (system(cmd) != 0)
        fprintf(stderr, "e2e: cleanup of %s failed\n", vm_root);
    return ok ? 0 : 1;
}
