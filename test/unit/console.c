/*
 * test/unit/console.c - the console engine against a real Unix socket
 * server played by the test (as QEMU's chardev would be): history across
 * sessions, fan-out to several streams, start=end, session end by EOF and
 * by reset ending streams as `console EOF` while the console reconnects,
 * the write path and its bounds, binary safety, a missing socket, limits.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "streams.h"

static struct reactor *r;
static char dir[64];
static char sock_path[96]; /* fits sun_path */
static int lfd = -1;       /* the "QEMU" listening socket */
static int peer = -1;      /* its accepted connection */
static struct console *con;

static void
setup(void)
{
    const char *t = getenv("TMPDIR");

    signal(SIGPIPE, SIG_IGN); /* the test's own writes to a closed peer */
    /* sun_path is short: fall back to /tmp for a long TMPDIR. */
    if (!t || !*t || strlen(t) > 30)
        t = "/tmp";
    snprintf(dir, sizeof dir, "%.30s/provium-console-test-XXXXXX", t);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock_path, sizeof sock_path, "%s/console.sock", dir);
    cr_assert_eq(reactor_new(&r), 0);
}

static void
teardown(void)
{
    console_free(con);
    con = NULL;
    if (peer >= 0)
        close(peer);
    if (lfd >= 0)
        close(lfd);
    peer = lfd = -1;
    /* Deferred stream wake-ups hold references: let them run. */
    for (int i = 0; i < 3; i++)
        reactor_run_once(r, 0);
    reactor_free(r);
    unlink(sock_path);
    rmdir(dir);
}

TestSuite(console, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ----------------------------------------------------- */

static void
server_listen(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    unlink(sock_path);
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 1), 0);
}

static bool
run_until(bool (*cond)(void *), void *arg, double seconds)
{
    uint64_t deadline = clock_now() + (uint64_t)(seconds * 1e6);

    while (!cond(arg)) {
        uint64_t now = clock_now();
        if (now >= deadline)
            return false;
        /* Short slices: some conditions are met by the kernel (a pending
         * connection on the test's listener), not by a reactor fd. */
        uint64_t slice = now + 20 * USEC_PER_MSEC;
        cr_assert_eq(reactor_run_once(r, slice < deadline ? slice : deadline),
                     0);
    }
    return true;
}

static bool
pending_connection(void *arg)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static bool
peer_readable(void *arg)
{
    struct pollfd p = {.fd = peer, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Accept the console's connection (the console runs meanwhile). */
static void
server_accept(void)
{
    cr_assert(run_until(pending_connection, NULL, 5),
              "the console did not connect");
    peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(peer, 0);
}

static bool
is_connected(void *arg)
{
    char info[1024] = "";
    console_info(con, info, sizeof info);
    return strstr(info, "console_state: connected\n") != NULL;
}

static void
send_str(const char *s)
{
    cr_assert_eq(write(peer, s, strlen(s)), (ssize_t)strlen(s));
}

struct size_wait {
    struct stream *s;
    uint64_t size;
};

static bool
console_has(void *arg)
{
    return console_size(con) >= *(uint64_t *)arg;
}

static bool
stream_has(void *arg)
{
    struct size_wait *w = arg;
    return stream_size(w->s) >= w->size || stream_state(w->s) != STREAM_LIVE;
}

static bool
stream_done(void *arg)
{
    return stream_state(arg) != STREAM_LIVE;
}

/* Send s and wait until the console has recorded it. */
static void
feed(const char *s)
{
    uint64_t want = console_size(con) + strlen(s);
    send_str(s);
    cr_assert(run_until(console_has, &want, 5), "console has %llu of %llu",
              (unsigned long long)console_size(con), (unsigned long long)want);
}

static void
expect_history(struct stream *s, const void *want, size_t len)
{
    struct size_wait w = {s, len};
    char *buf = malloc(len + 1);

    cr_assert(run_until(stream_has, &w, 5), "stream has %llu of %zu bytes",
              (unsigned long long)stream_size(s), len);
    cr_assert_eq(stream_size(s), len, "stream has %llu bytes, want %zu",
                 (unsigned long long)stream_size(s), len);
    cr_assert_eq(stream_pread(s, buf, len + 1, 0), (ssize_t)len);
    cr_assert_eq(memcmp(buf, want, len), 0);
    free(buf);
}

static void
on_opened(struct stream *s, int err, const char *msg, void *arg)
{
    *(int *)arg = err < 0 ? err : 1;
}

static void *last_state; /* the engine state of the last open */

static struct stream *
open_console(const char *line, uint64_t limit)
{
    struct stream_config cfg = {
            .spool_dir = dir, .history_limit = limit, .noun = "console"};
    struct command cmd;
    struct stream *s;
    char err[COMMAND_ERR_LEN] = "";
    void *state = NULL;
    int opened = 0, rc;

    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0, "%s", err);
    cr_assert_eq(stream_new(r, &cfg, &s), 0);
    rc = engine_open_command(s, con, &cmd, on_opened, &opened, &state, err);
    command_free(&cmd);
    last_state = state;
    cr_assert_eq(rc, 0, "open `%s`: %s", line, err);
    cr_assert_eq(opened, 1, "opened runs once, before open returns here");
    return s;
}

static void
close_stream(struct stream *s)
{
    stream_close(s);
    stream_unref(s);
}

struct result {
    bool done;
    enum reply_status st;
    char payload[256];
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
    snprintf(res->payload, sizeof res->payload, "%.*s",
             (int)(n - (size_t)(nl + 1 - all)), nl + 1);
    free(all);
    reply_free(rp);
}

static bool
is_done(void *arg)
{
    return ((struct result *)arg)->done;
}

/* Run one op to completion. */
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
    cr_assert(run_until(is_done, &res, 5), "op not answered");
    return res;
}

/* Read exactly len bytes from the test's end of the socket. */
static void
server_expect(const char *want)
{
    size_t len = strlen(want), got = 0;
    char buf[256];
    uint64_t deadline = clock_now() + 5 * USEC_PER_SEC;

    cr_assert_lt(len, sizeof buf);
    while (got < len) {
        struct pollfd p = {.fd = peer, .events = POLLIN};
        cr_assert_lt(clock_now(), deadline, "got `%.*s`", (int)got, buf);
        reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC);
        if (poll(&p, 1, 0) == 1) {
            ssize_t n = read(peer, buf + got, len - got);
            cr_assert_gt(n, 0);
            got += (size_t)n;
        }
    }
    cr_assert_eq(memcmp(buf, want, len), 0, "got `%.*s`", (int)len, buf);
}

static void
start_connected(void)
{
    server_listen();
    cr_assert_eq(console_new(r, sock_path, dir, &con), 0);
    server_accept();
    cr_assert(run_until(is_connected, NULL, 5));
}

/* ---- tests ------------------------------------------------------- */

Test(console, history_and_two_streams)
{
    start_connected();
    feed("boot line 1\n");
    feed("boot line 2\n");
    cr_assert_eq(console_size(con), 24);

    struct stream *a = open_console("console vm1", 0);
    expect_history(a, "boot line 1\nboot line 2\n", 24);
    cr_assert_eq(stream_frames(a), 2, "history replayed chunk by chunk");
    struct stream *b = open_console("console vm1 start=beginning site=x:1", 0);
    cr_assert_eq(console_streams(con), 2);

    feed("live\n");
    expect_history(a, "boot line 1\nboot line 2\nlive\n", 29);
    expect_history(b, "boot line 1\nboot line 2\nlive\n", 29);
    cr_assert_eq(stream_frames(b), 3, "one frame per chunk read");

    struct result res =
            run_op(a, STREAM_OP_READ_UNTIL, "line 2\n", USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_OK);
    cr_assert_str_eq(res.payload, "boot line 1\nboot line 2\n");

    char buf[64];
    cr_assert_eq(console_pread(con, buf, sizeof buf, 5), 24);
    cr_assert_eq(memcmp(buf, "line 1\nboot line 2\nlive\n", 24), 0);

    char info[1024] = "";
    console_info(con, info, sizeof info);
    cr_assert_not_null(strstr(info, "console: "), "%s", info);
    cr_assert_not_null(strstr(info, "console_state: connected\n"), "%s", info);
    cr_assert_not_null(strstr(info, "console_bytes: 29\n"), "%s", info);

    close_stream(a);
    cr_assert_eq(console_streams(con), 1, "a closed stream is detached");
    feed("more\n");
    expect_history(b, "boot line 1\nboot line 2\nlive\nmore\n", 34);
    close_stream(b);
    cr_assert_eq(console_streams(con), 0);
}

Test(console, start_end)
{
    start_connected();
    feed("old\n");
    struct stream *s = open_console("console vm1 start=end", 0);
    cr_assert_eq(stream_size(s), 0);
    feed("new\n");
    expect_history(s, "new\n", 4);
    char info[2048] = "";
    console_engine.info(last_state, info, sizeof info);
    cr_assert_not_null(strstr(info, "source: console vm1\n"), "%s", info);
    cr_assert_not_null(strstr(info, "console_start: end\n"), "%s", info);
    cr_assert_not_null(strstr(info, "console_offset: 4\n"), "%s", info);
    close_stream(s);
}

Test(console, eof_ends_streams_and_reconnects)
{
    start_connected();
    feed("session one\n");
    struct stream *s1 = open_console("console vm1", 0);
    struct stream *s2 = open_console("console vm1 start=end", 0);

    close(peer); /* QEMU quit: EOF */
    peer = -1;
    cr_assert(run_until(stream_done, s1, 5));
    cr_assert(run_until(stream_done, s2, 5));
    cr_assert_eq(stream_end_error(s1, NULL), 0, "a clean end");
    struct result res = run_op(s1, STREAM_OP_EXPECT, "never", USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_EOF);
    cr_assert_str_eq(res.payload, "console EOF");
    res = run_op(s2, STREAM_OP_NEXT, NULL, USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_EOF);
    cr_assert_str_eq(res.payload, "console EOF");
    cr_assert_eq(console_streams(con), 0);

    /* The console comes back on its own; the history spans sessions. */
    server_accept();
    cr_assert(run_until(is_connected, NULL, 5));
    feed("session two\n");
    struct stream *s3 = open_console("console vm1", 0);
    expect_history(s3, "session one\nsession two\n", 24);
    cr_assert_eq(stream_state(s1), STREAM_ENDED);
    char info[1024] = "";
    console_info(con, info, sizeof info);
    cr_assert_not_null(strstr(info, "console_sessions: 2\n"), "%s", info);

    close_stream(s1);
    close_stream(s2);
    close_stream(s3);
}

Test(console, reset_is_console_eof)
{
    start_connected();
    struct stream *s = open_console("console vm1", 0);
    /* Bytes the peer never reads, then its close: the kernel reports
     * ECONNRESET to the console's next read on a Unix socket. */
    cr_assert_eq(console_write(con, "unread\n", 7), 7);
    cr_assert(run_until(peer_readable, NULL, 5));
    close(peer);
    peer = -1;
    cr_assert(run_until(stream_done, s, 5));
    struct result res = run_op(s, STREAM_OP_NEXT, NULL, USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_EOF, "got %s: %s", reply_status_name(res.st),
                 res.payload);
    cr_assert_str_eq(res.payload, "console EOF");
    char info[1024] = "";
    console_info(con, info, sizeof info);
    cr_assert_not_null(strstr(info, "Connection reset"), "%s", info);
    server_accept();
    cr_assert(run_until(is_connected, NULL, 5));
    close_stream(s);
}

Test(console, write_path)
{
    server_listen();
    cr_assert_eq(console_new(r, sock_path, dir, &con), 0);
    server_accept();
    cr_assert(run_until(is_connected, NULL, 5));
    cr_assert_eq(console_write(con, "echo hi\n", 8), 8);
    cr_assert_eq(console_write(con, "", 0), 0);
    cr_assert_eq(console_write(con, "uname -r\n", 9), 9);
    server_expect("echo hi\nuname -r\n");

    /* A guest that does not read: the socket buffer fills, then the
     * bounded queue, then -EAGAIN; never a block, never unbounded. */
    static char big[64 * 1024];
    memset(big, 'x', sizeof big);
    size_t queued = 0;
    int rc = 0;
    for (int i = 0; i < 1000 && rc != -EAGAIN; i++) {
        rc = console_write(con, big, sizeof big);
        cr_assert(rc > 0 || rc == -EAGAIN, "console_write: %d", rc);
        if (rc > 0)
            queued += (size_t)rc;
        reactor_run_once(r, 0);
    }
    cr_assert_eq(rc, -EAGAIN, "the queue is bounded");
    cr_assert_gt(queued, sizeof big);

    /* Everything queued arrives, in order, once the guest reads. */
    size_t got = 0;
    uint64_t deadline = clock_now() + 10 * USEC_PER_SEC;
    while (got < queued) {
        struct pollfd p = {.fd = peer, .events = POLLIN};
        cr_assert_lt(clock_now(), deadline, "got %zu of %zu", got, queued);
        reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC);
        while (poll(&p, 1, 0) == 1) {
            ssize_t n = read(peer, big, sizeof big);
            cr_assert_gt(n, 0);
            for (ssize_t i = 0; i < n; i++)
                cr_assert_eq(big[i], 'x');
            got += (size_t)n;
        }
    }
    cr_assert_eq(got, queued);

    close(peer);
    peer = -1;
    struct stream *s = open_console("console vm1", 0);
    cr_assert(run_until(stream_done, s, 5));
    cr_assert_eq(console_write(con, "x", 1), -ENOTCONN, "no session, no write");
    close_stream(s);
}

Test(console, missing_socket_then_appears)
{
    cr_assert_eq(console_new(r, sock_path, dir, &con), 0);
    struct stream *s = open_console("console vm1", 0);
    struct result res =
            run_op(s, STREAM_OP_EXPECT, "READY", 200 * USEC_PER_MSEC);
    cr_assert_eq(res.st, REPLY_TIMEOUT);
    cr_assert_not_null(
            strstr(res.payload, "expect timed out waiting for `READY`"), "%s",
            res.payload);
    char info[1024] = "";
    console_info(con, info, sizeof info);
    cr_assert_not_null(strstr(info, "console_state: disconnected\n"), "%s",
                       info);
    cr_assert_not_null(strstr(info, "No such file or directory"), "%s", info);
    cr_assert_eq(console_write(con, "x", 1), -ENOTCONN);

    /* The VM starts: the stream opened before is fed by the new session. */
    server_listen();
    server_accept();
    cr_assert(run_until(is_connected, NULL, 5));
    send_str("READY\n");
    res = run_op(s, STREAM_OP_EXPECT, "READY", 5 * USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_OK, "%s", res.payload);
    close_stream(s);
}

Test(console, binary_flood_is_exact)
{
    start_connected();
    struct stream *s = open_console("console vm1 start=end", 0);
    size_t total = 4 * 1024 * 1024;
    unsigned char *want = malloc(total), *got = malloc(total);
    for (size_t i = 0; i < total; i++)
        want[i] = (unsigned char)((i * 131) ^ (i >> 11)); /* every byte */
    size_t sent = 0;
    uint64_t deadline = clock_now() + 20 * USEC_PER_SEC;
    while (sent < total) {
        struct pollfd p = {.fd = peer, .events = POLLOUT};
        cr_assert_lt(clock_now(), deadline);
        if (poll(&p, 1, 0) == 1) {
            ssize_t n = send(peer, want + sent, total - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
        }
        reactor_run_once(r, clock_now() + USEC_PER_MSEC);
    }
    struct size_wait w = {s, total};
    cr_assert(run_until(stream_has, &w, 10));
    cr_assert_eq(stream_size(s), total);
    cr_assert_eq(console_size(con), total);
    cr_assert_eq(stream_pread(s, got, total, 0), (ssize_t)total);
    cr_assert_eq(memcmp(got, want, total), 0, "binary-safe, nothing lost");
    cr_assert_geq(stream_frames(s), total / (64 * 1024),
                  "frames are at most 64 KiB");
    /* A stream opened now replays the flood from the history. */
    struct stream *b = open_console("console vm1", 0);
    cr_assert_eq(stream_size(b), total);
    cr_assert_eq(stream_frames(b), stream_frames(s));
    cr_assert_eq(stream_pread(b, got, total, 0), (ssize_t)total);
    cr_assert_eq(memcmp(got, want, total), 0);
    free(want);
    free(got);
    close_stream(s);
    close_stream(b);
}

Test(console, history_limit_ends_only_that_stream)
{
    start_connected();
    feed("0123456789");
    struct stream *small = open_console("console vm1 start=end", 8);
    struct stream *big = open_console("console vm1", 0);
    feed("abcdefghijkl");
    cr_assert(run_until(stream_done, small, 5));
    const char *msg;
    cr_assert_eq(stream_end_error(small, &msg), -EFBIG);
    cr_assert_not_null(strstr(msg, "history limit"), "%s", msg);
    cr_assert_eq(console_streams(con), 1);
    expect_history(big, "0123456789abcdefghijkl", 22);

    /* Replaying a history longer than the limit ends the stream at open. */
    struct stream *late = open_console("console vm1", 16);
    cr_assert_eq(stream_state(late), STREAM_ENDED);
    cr_assert_eq(stream_end_error(late, NULL), -EFBIG);
    cr_assert_eq(console_streams(con), 1);
    close_stream(small);
    close_stream(big);
    close_stream(late);
}

Test(console, bad_requests)
{
    struct command cmd;
    struct stream_config cfg = {.spool_dir = dir, .noun = "console"};
    struct stream *s;
    char err[COMMAND_ERR_LEN] = "";
    void *state = NULL;
    int opened = 0;

    cr_assert_eq(console_new(r, sock_path, dir, &con), 0);
    cr_assert_eq(stream_new(r, &cfg, &s), 0);
    const char *line = "console vm1 start=middle";
    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0);
    cr_assert_eq(engine_open_command(s, con, &cmd, on_opened, &opened,
                                     &state, err),
                 -EINVAL);
    cr_assert_not_null(strstr(err, "start: expected beginning or end"), "%s",
                       err);
    command_free(&cmd);
    line = "console vm1 bogus=1";
    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0);
    cr_assert_eq(engine_open_command(s, con, &cmd, on_opened, &opened,
                                     &state, err),
                 -EINVAL);
    cr_assert_not_null(strstr(err, "unknown option `bogus=1`"), "%s", err);
    command_free(&cmd);
    cr_assert_eq(opened, 0, "a refused open is not opened");
    stream_unref(s);

    char long_path[200];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = '\0';
    struct console *c2 = NULL;
    cr_assert_eq(console_new(r, long_path, dir, &c2), -ENAMETOOLONG);
    console_free(NULL);
}

Test(console, free_ends_streams)
{
    start_connected();
    feed("x\n");
    struct stream *s = open_console("console vm1", 0);
    console_free(con);
    con = NULL;
    cr_assert_eq(stream_state(s), STREAM_ENDED);
    struct result res = run_op(s, STREAM_OP_NEXT, NULL, USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_OK, "history first");
    res = run_op(s, STREAM_OP_NEXT, NULL, USEC_PER_SEC);
    cr_assert_eq(res.st, REPLY_EOF);
    cr_assert_str_eq(res.payload, "console EOF");
    close_stream(s); /* stop after the console is gone: no use after free */
}
