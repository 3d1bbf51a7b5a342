/*
 * agent_harness.h - shared by test/unit/agent.c and test/unit/tail.c: a
 * real provium-agent (spawned over a socketpair, or listening on a Unix
 * socket), a reactor driven until a condition holds or a deadline
 * passes, stream collectors and synchronous request wrappers.
 *
 * Also a child mode: when the test binary is exec'd by the agent with
 * PROVIUM_TEST_CHILD set, a constructor runs the child's job and exits
 * before Criterion starts, so tests can run real processes whose output
 * they can regenerate and check byte for byte.
 */
#ifndef PROVIUM_TEST_AGENT_HARNESS_H
#define PROVIUM_TEST_AGENT_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "streams.h"

/* Each test file uses a different part of this header. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define MIB (1024 * 1024)
#define CHILD_BYTES (50 * MIB)

/* ---- the child process ---- */

/* Byte i of channel ch (1 stdout, 2 stderr): position-dependent, so any
 * loss, duplication or reordering shows. */
static inline uint8_t
pattern_byte(int ch, size_t i)
{
    uint32_t x = (uint32_t)(i / 4096) * 2654435761u + (uint32_t)ch * 97u;
    return (uint8_t)((x >> 13) ^ (i & 0xff) ^ (uint32_t)ch);
}

static void
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        p += w;
        n -= (size_t)w;
    }
}

/* stdout and stderr interleaved in chunks of changing size. */
static void
child_interleave(void)
{
    static uint8_t buf[70000];
    size_t off[3] = {0, 0, 0};
    size_t chunk = 1;
    while (off[1] < CHILD_BYTES || off[2] < CHILD_BYTES) {
        for (int ch = 1; ch <= 2; ch++) {
            size_t n = chunk;
            if (n > CHILD_BYTES - off[ch])
                n = CHILD_BYTES - off[ch];
            for (size_t i = 0; i < n; i++)
                buf[i] = pattern_byte(ch, off[ch] + i);
            write_all(ch, buf, n);
            off[ch] += n;
        }
        chunk = (chunk * 7 + 4093) % 65521 + 1;
    }
}

__attribute__((constructor)) static void
harness_child(void)
{
    const char *job = getenv("PROVIUM_TEST_CHILD");
    if (!job)
        return;
    if (strcmp(job, "interleave") == 0)
        child_interleave();
    _exit(0);
}

/* ---- the agent and the reactor ---- */

static struct reactor *H_r;
static struct agent_client *H_c;
static char H_dir[256];       /* per-test temp dir */
static pid_t H_listener = -1; /* agent started with --listen */
static char H_sock[PATH_MAX];

static const char *
agent_binary(void)
{
    static char path[PATH_MAX];
    const char *b = getenv("PROVIUM_BUILD_DIR");
    snprintf(path, sizeof(path), "%s/guest/provium-agent", b ? b : ".");
    return path;
}

static bool
run_until(bool (*cond)(void *), void *arg, double seconds)
{
    uint64_t deadline = clock_now() + (uint64_t)(seconds * 1e6);
    while (!cond(arg)) {
        if (clock_now() >= deadline)
            return false;
        cr_assert_eq(reactor_run_once(H_r, deadline), 0);
    }
    return true;
}

static bool
client_up(void *arg)
{
    return agent_client_state(arg) == AGENT_UP;
}

static void
harness_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(H_dir, sizeof(H_dir), "%s/provium-agent-test-XXXXXX",
             t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(H_dir));
}

/* Agent over a socketpair: the daemon's built-in host VM. */
static void
harness_spawn(void)
{
    signal(SIGPIPE, SIG_IGN);
    harness_tmpdir();
    cr_assert_eq(reactor_new(&H_r), 0);
    cr_assert_eq(agent_client_spawn(H_r, agent_binary(), H_dir, &H_c), 0);
    cr_assert(run_until(client_up, H_c, 10), "agent did not come up: %s",
              agent_client_error(H_c));
}

static void
start_listener(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char spec[PATH_MAX + 8];
        snprintf(spec, sizeof(spec), "unix:%s", H_sock);
        execl(agent_binary(), "provium-agent", "--listen", spec, "--spool-dir",
              H_dir, (char *)NULL);
        _exit(127);
    }
    H_listener = pid;
}

/* Agent listening on a Unix socket, as a guest agent would. */
static void
harness_listen(void)
{
    signal(SIGPIPE, SIG_IGN);
    harness_tmpdir();
    snprintf(H_sock, sizeof(H_sock), "%s/agent.sock", H_dir);
    start_listener();
    cr_assert_eq(reactor_new(&H_r), 0);
    char ep[PATH_MAX + 8];
    snprintf(ep, sizeof(ep), "unix:%s", H_sock);
    cr_assert_eq(agent_client_new(H_r, ep, &H_c), 0);
    cr_assert(run_until(client_up, H_c, 10), "agent did not come up: %s",
              agent_client_error(H_c));
}

static void
stop_listener(void)
{
    if (H_listener > 0) {
        kill(H_listener, SIGKILL);
        waitpid(H_listener, NULL, 0);
        H_listener = -1;
    }
}

/* Set while the client is freed: channels a test left open get their end
 * callback then, when the test's collectors (on its stack) are gone. */
static bool H_tearing_down;

static void
harness_teardown(void)
{
    H_tearing_down = true;
    agent_client_free(H_c);
    H_c = NULL;
    stop_listener();
    /* Deferred calls (stream wake-ups) hold references: let them run. */
    for (int i = 0; i < 3; i++)
        reactor_run_once(H_r, 0);
    reactor_free(H_r);
    H_r = NULL;
    if (H_dir[0]) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup of %s failed\n", H_dir);
    }
}

/* ---- files ---- */

static void
tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", H_dir, name);
}

static void
file_append(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void
file_put(const char *path, const char *s)
{
    unlink(path);
    file_append(path, s, strlen(s));
}

/* ---- stream collectors ---- */

struct coll {
    int opened; /* 0 pending, 1 ok, -errno */
    char open_msg[PROTO_MAX_MSG];
    uint64_t start;
    uint8_t *buf;
    size_t len, cap, frames;
    bool ended;
    int end_err;
    unsigned reason;
    char end_msg[PROTO_MAX_MSG];
    unsigned notes[3];
    struct agent_chan *ch;
};

static void
coll_opened(void *arg, int err, const char *msg, uint64_t off)
{
    struct coll *c = arg;
    if (H_tearing_down)
        return;
    c->opened = err < 0 ? err : 1;
    c->start = off;
    snprintf(c->open_msg, sizeof(c->open_msg), "%s", msg ? msg : "");
}

static void
coll_data(void *arg, const void *buf, size_t len)
{
    struct coll *c = arg;
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->buf = realloc(c->buf, c->cap);
        cr_assert_not_null(c->buf);
    }
    memcpy(c->buf + c->len, buf, len);
    c->len += len;
    c->frames++;
}

static void
coll_note(void *arg, unsigned code, uint64_t value, const char *msg)
{
    struct coll *c = arg;
    if (code < 3)
        c->notes[code]++;
}

static void
coll_end(void *arg, int err, unsigned reason, const char *msg)
{
    struct coll *c = arg;
    if (H_tearing_down)
        return;
    c->ended = true;
    c->end_err = err;
    c->reason = reason;
    snprintf(c->end_msg, sizeof(c->end_msg), "%s", msg ? msg : "");
}

static const struct agent_stream_cbs coll_cbs = {
        .opened = coll_opened,
        .data = coll_data,
        .note = coll_note,
        .end = coll_end,
};

static bool
coll_is_open(void *arg)
{
    return ((struct coll *)arg)->opened != 0;
}

static bool
coll_is_ended(void *arg)
{
    return ((struct coll *)arg)->ended;
}

static void
coll_free(struct coll *c)
{
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

/* Open a stream and wait for the answer. */
static int
open_stream(struct coll *c, const struct agent_open *req)
{
    memset(c, 0, sizeof(*c));
    int rc = agent_client_open(H_c, req, &coll_cbs, c, &c->ch);
    cr_assert_eq(rc, 0, "agent_client_open: %s", strerror(-rc));
    cr_assert(run_until(coll_is_open, c, 10), "open not answered");
    return c->opened < 0 ? c->opened : 0;
}

static int
open_tail(struct coll *c, const char *path, unsigned start, uint64_t off,
          unsigned flags)
{
    struct agent_open req = {.type = PROTO_OPEN_TAIL,
                             .path = path,
                             .start = start,
                             .offset = off,
                             .flags = flags};
    return open_stream(c, &req);
}

struct len_wait {
    struct coll *c;
    size_t len;
};

static bool
coll_has(void *arg)
{
    struct len_wait *w = arg;
    return w->c->len >= w->len || w->c->ended;
}

/* Wait for len bytes in total and check them. */
static void
expect_bytes(struct coll *c, const char *want)
{
    struct len_wait w = {c, strlen(want)};
    cr_assert(run_until(coll_has, &w, 10), "timed out: have %zu of %zu", c->len,
              w.len);
    cr_assert_eq(c->len, w.len, "have %zu bytes, want %zu", c->len, w.len);
    cr_assert_eq(memcmp(c->buf, want, w.len), 0, "got `%.*s`, want `%s`",
                 (int)c->len, (const char *)c->buf, want);
}

/* ---- synchronous requests ---- */

struct sync_reply {
    bool done;
    int err;
    char msg[PROTO_MAX_MSG];
    uint64_t value;
    unsigned how;
    uint8_t data[PROTO_MAX_DATA];
    size_t len;
    uint64_t size;
    struct agent_output out[2];
};

static void
sync_done(void *arg, const struct agent_reply *rp)
{
    struct sync_reply *s = arg;
    s->done = true;
    s->err = rp->err;
    snprintf(s->msg, sizeof(s->msg), "%s", rp->msg ? rp->msg : "");
    s->value = rp->value;
    s->how = rp->how;
    s->len = rp->len;
    if (rp->len)
        memcpy(s->data, rp->data, rp->len);
    s->size = rp->size;
    memcpy(s->out, rp->out, sizeof(s->out));
}

static bool
sync_is_done(void *arg)
{
    return ((struct sync_reply *)arg)->done;
}

static void
sync_wait(struct sync_reply *s, int submit_rc)
{
    cr_assert_eq(submit_rc, 0, "submit: %s", strerror(-submit_rc));
    cr_assert(run_until(sync_is_done, s, 30), "request not answered");
}

static uint64_t
exec_ok(char *const argv[], char *const env[], const char *cwd)
{
    static struct sync_reply s;
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_exec(H_c, cwd, argv, env, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0, "exec: %s", s.msg);
    return s.value;
}

#endif
