/*
 * test/unit/agent.c - provium-agent and the host agent client, end to end
 * over a socketpair and over a Unix socket, against real temp files and
 * real processes: tail start modes, ordering, truncation, rotation,
 * deletion, process output (50 MiB per channel, stream opened after
 * wait), process groups, stdin, file handles, fd_stream, many channels,
 * fairness, reconnection, and hostile peers on both sides.
 */
#include "agent_harness.h"

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

TestSuite(agent, .init = harness_spawn, .fini = harness_teardown,
          .timeout = 120);
TestSuite(agent_unix, .init = harness_listen, .fini = harness_teardown,
          .timeout = 120);

Test(agent, handshake_facts)
{
    const struct agent_facts *f = agent_client_facts(H_c);
    char info[1024] = "";
    cr_assert_not_null(f);
    cr_assert_str_eq(f->os, "Linux");
    cr_assert_str_eq(f->agent_version, "0.1.0");
    cr_assert_eq(f->version, PROTO_VERSION);
    cr_assert_neq(f->instance, 0, "an agent instance is never 0");
    agent_client_info(H_c, info, sizeof(info));
    cr_assert_not_null(strstr(info, "agent_state: up\n"), "%s", info);
    cr_assert_not_null(strstr(info, "agent_os: Linux\n"), "%s", info);
}

Test(agent, tail_start_modes)
{
    char path[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "f");
    file_put(path, "0123456789");

    cr_assert_eq(open_tail(&c, path, PROTO_START_BEGINNING, 0, 0), 0);
    expect_bytes(&c, "0123456789");
    agent_client_cancel(c.ch);
    coll_free(&c);

    cr_assert_eq(open_tail(&c, path, PROTO_START_OFFSET, 3, 0), 0);
    cr_assert_eq(c.start, 3);
    expect_bytes(&c, "3456789");
    agent_client_cancel(c.ch);
    coll_free(&c);

    cr_assert_eq(open_tail(&c, path, PROTO_START_BACK, 2, 0), 0);
    expect_bytes(&c, "89");
    agent_client_cancel(c.ch);
    coll_free(&c);

    cr_assert_eq(open_tail(&c, path, PROTO_START_BACK, 100, 0), 0);
    cr_assert_eq(c.start, 0);
    expect_bytes(&c, "0123456789");
    agent_client_cancel(c.ch);
    coll_free(&c);

    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0, 0), 0);
    cr_assert_eq(c.start, 10);
    file_append(path, "abc", 3);
    expect_bytes(&c, "abc");
    agent_client_cancel(c.ch);
    coll_free(&c);

    /* An offset past the end waits for the file to grow there. */
    cr_assert_eq(open_tail(&c, path, PROTO_START_OFFSET, 15, 0), 0);
    file_append(path, "defgh", 5); /* bytes 13..17 */
    expect_bytes(&c, "fgh");
    agent_client_cancel(c.ch);
    coll_free(&c);
}

Test(agent, tail_open_errors)
{
    struct coll c;
    char path[PATH_MAX];
    tmp_path(path, sizeof(path), "missing");
    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0, 0), -ENOENT);
    cr_assert_not_null(strstr(c.open_msg, "No such file or directory"), "%s",
                       c.open_msg);
    cr_assert_not_null(strstr(c.open_msg, path), "%s", c.open_msg);
    cr_assert_eq(open_tail(&c, H_dir, PROTO_START_END, 0, 0), -EISDIR);
}

Test(agent, appends_in_order)
{
    char path[PATH_MAX], line[64];
    struct coll c;
    size_t cap = 1 << 20, len = 0;
    char *want = malloc(cap);
    tmp_path(path, sizeof(path), "log");
    file_put(path, "");
    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0, 0), 0);
    int fd = open(path, O_WRONLY | O_APPEND);
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(line, sizeof(line), "line %d\n", i);
        cr_assert_eq(write(fd, line, (size_t)n), n);
        memcpy(want + len, line, (size_t)n);
        len += (size_t)n;
        want[len] = 0;
        /* Let the agent see some appends one by one. */
        if (i % 100 == 0)
            reactor_run_once(H_r, clock_now() + 1000);
    }
    close(fd);
    expect_bytes(&c, want);
    free(want);
    coll_free(&c);
}

Test(agent, truncation_is_followed)
{
    char path[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "trunc");
    file_put(path, "aaaa");
    cr_assert_eq(open_tail(&c, path, PROTO_START_BEGINNING, 0, 0), 0);
    expect_bytes(&c, "aaaa");
    cr_assert_eq(truncate(path, 0), 0);
    file_append(path, "bb", 2);
    expect_bytes(&c, "aaaabb");
    cr_assert_eq(c.notes[PROTO_NOTE_TRUNCATED], 1);
    cr_assert_not(c.ended);
    coll_free(&c);
}

Test(agent, rotation_is_followed_by_name)
{
    char path[PATH_MAX], old[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "app.log");
    tmp_path(old, sizeof(old), "app.log.1");
    file_put(path, "");
    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0, 0), 0);
    file_append(path, "one\n", 4);
    expect_bytes(&c, "one\n");
    cr_assert_eq(rename(path, old), 0);
    file_append(old, "two\n", 4); /* a writer still on the old file */
    file_append(path, "three\n", 6);
    expect_bytes(&c, "one\ntwo\nthree\n");
    cr_assert_eq(c.notes[PROTO_NOTE_ROTATED], 1);
    /* And again: the new file is followed too. */
    cr_assert_eq(rename(path, old), 0);
    file_append(path, "four\n", 5);
    expect_bytes(&c, "one\ntwo\nthree\nfour\n");
    cr_assert_eq(c.notes[PROTO_NOTE_ROTATED], 2);
    coll_free(&c);
}

Test(agent, rotation_with_descriptor_follow)
{
    char path[PATH_MAX], old[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "d.log");
    tmp_path(old, sizeof(old), "d.log.1");
    file_put(path, "");
    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0,
                           PROTO_TAIL_FOLLOW_DESCRIPTOR),
                 0);
    cr_assert_eq(rename(path, old), 0);
    file_append(path, "new\n", 4);
    file_append(old, "old\n", 4);
    expect_bytes(&c, "old\n");
    cr_assert_eq(c.notes[PROTO_NOTE_ROTATED], 0);
    coll_free(&c);
}

Test(agent, deletion_ends_cleanly)
{
    char path[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "gone");
    file_put(path, "x");
    cr_assert_eq(open_tail(&c, path, PROTO_START_BEGINNING, 0, 0), 0);
    expect_bytes(&c, "x");
    file_append(path, "yz", 2);
    cr_assert_eq(unlink(path), 0);
    cr_assert(run_until(coll_is_ended, &c, 10));
    cr_assert_eq(c.end_err, 0);
    cr_assert_eq(c.reason, PROTO_END_DELETED);
    cr_assert_eq(c.len, 3, "the bytes written before deletion arrive");
    coll_free(&c);
}

static void
self_exe(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    cr_assert_gt(n, 0);
    buf[n] = 0;
}

static void
check_pattern(const struct coll *c, int ch)
{
    cr_assert_eq(c->len, (size_t)CHILD_BYTES, "channel %d: %zu bytes", ch,
                 c->len);
    for (size_t i = 0; i < c->len; i++)
        if (c->buf[i] != pattern_byte(ch, i))
            cr_assert_fail("channel %d differs at byte %zu", ch, i);
}

static bool
coll_pair_ended(void *arg)
{
    struct coll *c = arg;
    return c[0].ended && c[1].ended;
}

Test(agent, proc_output_50mib_opened_after_wait)
{
    char exe[PATH_MAX];
    self_exe(exe, sizeof(exe));
    char *argv[] = {exe, NULL};
    char *env[] = {"PROVIUM_TEST_CHILD=interleave", NULL};
    uint64_t id = exec_ok(argv, env, NULL);

    struct sync_reply w = {0};
    sync_wait(&w, agent_client_wait(H_c, id, sync_done, &w, NULL));
    cr_assert_eq(w.err, 0, "%s", w.msg);
    cr_assert_eq(w.how, PROTO_EXITED);
    cr_assert_eq(w.value, 0);

    struct coll c[2];
    struct agent_open req = {.type = PROTO_OPEN_PROC, .id = id};
    req.which = PROTO_STDOUT;
    cr_assert_eq(open_stream(&c[0], &req), 0);
    req.which = PROTO_STDERR;
    cr_assert_eq(open_stream(&c[1], &req), 0);
    cr_assert(run_until(coll_pair_ended, c, 60), "have %zu and %zu bytes",
              c[0].len, c[1].len);
    cr_assert_eq(c[0].end_err, 0);
    cr_assert_eq(c[1].end_err, 0);
    check_pattern(&c[0], 1);
    check_pattern(&c[1], 2);
    /* Frames are capped. */
    cr_assert_geq(c[0].frames, (size_t)CHILD_BYTES / PROTO_MAX_DATA);
    coll_free(&c[0]);
    coll_free(&c[1]);
}

Test(agent, proc_stream_live_and_exit_status)
{
    char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    uint64_t id = exec_ok(argv, NULL, NULL);
    struct coll c;
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    cr_assert_eq(open_stream(&c, &req), 0);
    cr_assert(run_until(coll_is_ended, &c, 10));
    expect_bytes(&c, "out\n");
    struct sync_reply w = {0};
    sync_wait(&w, agent_client_wait(H_c, id, sync_done, &w, NULL));
    cr_assert_eq(w.how, PROTO_EXITED);
    cr_assert_eq(w.value, 3);
    /* A second wait answers at once with the same status. */
    memset(&w, 0, sizeof(w));
    sync_wait(&w, agent_client_wait(H_c, id, sync_done, &w, NULL));
    cr_assert_eq(w.value, 3);
    coll_free(&c);
}

Test(agent, exec_cwd_env_and_errors)
{
    char *argv[] = {"sh", "-c", "pwd; echo \"$FOO\"", NULL};
    char *env[] = {"FOO=bar baz", NULL};
    uint64_t id = exec_ok(argv, env, H_dir);
    struct coll c;
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    cr_assert_eq(open_stream(&c, &req), 0);
    cr_assert(run_until(coll_is_ended, &c, 10));
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s\nbar baz\n", H_dir);
    expect_bytes(&c, want);
    coll_free(&c);

    struct sync_reply s = {0};
    char *bad[] = {"/nonexistent/provium-program", NULL};
    sync_wait(&s, agent_client_exec(H_c, NULL, bad, NULL, sync_done, &s, NULL));
    cr_assert_eq(s.err, -ENOENT, "%d %s", s.err, s.msg);
    cr_assert_not_null(strstr(s.msg, "provium-program"), "%s", s.msg);

    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_wait(H_c, 9999, sync_done, &s, NULL));
    cr_assert_eq(s.err, -ESRCH);
}

Test(agent, kill_reaches_the_process_group)
{
    char *argv[] = {"sh", "-c", "sleep 300 & echo $!; wait", NULL};
    uint64_t id = exec_ok(argv, NULL, NULL);
    struct coll c;
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    cr_assert_eq(open_stream(&c, &req), 0);
    struct len_wait lw = {&c, 2};
    cr_assert(run_until(coll_has, &lw, 10));
    while (!memchr(c.buf, '\n', c.len))
        cr_assert(reactor_run_once(H_r, clock_now() + 100000) == 0);
    pid_t grandchild = (pid_t)strtol((char *)c.buf, NULL, 10);
    cr_assert_gt(grandchild, 0);

    struct sync_reply s = {0};
    sync_wait(&s, agent_client_kill(H_c, id, SIGTERM, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0, "%s", s.msg);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_wait(H_c, id, sync_done, &s, NULL));
    cr_assert_eq(s.how, PROTO_SIGNALED);
    cr_assert_eq(s.value, SIGTERM);
    /* The grandchild got the signal too: it disappears (or is a zombie
     * waiting for its new parent to reap it). */
    uint64_t deadline = clock_now() + 10 * USEC_PER_SEC;
    for (;;) {
        char stat[64], buf[256] = "";
        snprintf(stat, sizeof(stat), "/proc/%d/stat", (int)grandchild);
        FILE *f = fopen(stat, "r");
        if (!f)
            break;
        bool got = fgets(buf, sizeof(buf), f) != NULL;
        fclose(f);
        char *p = strrchr(buf, ')');
        if (got && p && p[2] == 'Z')
            break;
        cr_assert_lt(clock_now(), deadline, "grandchild %d still alive",
                     (int)grandchild);
        reactor_run_once(H_r, clock_now() + 20000);
    }
    coll_free(&c);
}

Test(agent, stdin_write_and_close)
{
    char *argv[] = {"cat", NULL};
    uint64_t id = exec_ok(argv, NULL, NULL);
    struct coll c;
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    cr_assert_eq(open_stream(&c, &req), 0);
    struct sync_reply s = {0};
    sync_wait(&s,
              agent_client_stdin(H_c, id, "hello ", 6, sync_done, &s, NULL));
    cr_assert_eq(s.value, 6);
    expect_bytes(&c, "hello ");
    /* More than a pipe holds, while cat is slow to drain: parked, then
     * answered once written. */
    static uint8_t big[PROTO_MAX_DATA];
    memset(big, 'z', sizeof(big));
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_stdin(H_c, id, big, sizeof(big), sync_done, &s,
                                     NULL));
    cr_assert_eq(s.value, sizeof(big));
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_stdin_close(H_c, id, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0);
    cr_assert(run_until(coll_is_ended, &c, 10));
    cr_assert_eq(c.len, 6 + sizeof(big));
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_wait(H_c, id, sync_done, &s, NULL));
    cr_assert_eq(s.how, PROTO_EXITED);
    cr_assert_eq(s.value, 0);
    coll_free(&c);
}

Test(agent, file_handles)
{
    char path[PATH_MAX];
    struct sync_reply s = {0};
    tmp_path(path, sizeof(path), "h");
    sync_wait(&s,
              agent_client_fopen(H_c, path,
                                 PROTO_O_READ | PROTO_O_WRITE | PROTO_O_CREATE,
                                 0600, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0, "%s", s.msg);
    uint64_t h = s.value;
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fwrite(H_c, h, "hello world", 11, sync_done, &s,
                                      NULL));
    cr_assert_eq(s.value, 11);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fseek(H_c, h, 6, PROTO_SEEK_SET, sync_done, &s,
                                     NULL));
    cr_assert_eq(s.value, 6);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fread(H_c, h, 100, sync_done, &s, NULL));
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.data, "world", 5), 0);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fread(H_c, h, 100, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.len, 0, "end of file");
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_stat(H_c, path, sync_done, &s, NULL));
    cr_assert_eq(s.size, 11);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fclose(H_c, h, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fread(H_c, h, 1, sync_done, &s, NULL));
    cr_assert_eq(s.err, -EBADF);
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fopen(H_c, "/nonexistent/x", PROTO_O_READ, 0,
                                     sync_done, &s, NULL));
    cr_assert_eq(s.err, -ENOENT);
    cr_assert_not_null(strstr(s.msg, "/nonexistent/x"));
}

Test(agent, fd_stream_of_regular_file)
{
    char path[PATH_MAX];
    struct sync_reply s = {0};
    tmp_path(path, sizeof(path), "fs");
    file_put(path, "abcdef");
    sync_wait(&s, agent_client_fopen(H_c, path, PROTO_O_READ, 0, sync_done, &s,
                                     NULL));
    uint64_t h = s.value;
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fseek(H_c, h, 2, PROTO_SEEK_SET, sync_done, &s,
                                     NULL));
    struct coll c;
    struct agent_open req = {.type = PROTO_OPEN_FD, .id = h};
    cr_assert_eq(open_stream(&c, &req), 0);
    expect_bytes(&c, "cdef");
    file_append(path, "gh", 2);
    expect_bytes(&c, "cdefgh");
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_fclose(H_c, h, sync_done, &s, NULL));
    cr_assert(run_until(coll_is_ended, &c, 10));
    cr_assert_eq(c.end_err, 0);
    coll_free(&c);
}

Test(agent, fd_stream_of_fifo_does_not_block_others)
{
    char path[PATH_MAX];
    struct sync_reply s = {0};
    tmp_path(path, sizeof(path), "fifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    sync_wait(&s, agent_client_fopen(H_c, path, PROTO_O_READ, 0, sync_done, &s,
                                     NULL));
    cr_assert_eq(s.err, 0, "%s", s.msg);
    uint64_t h = s.value;
    int wfd = open(path, O_WRONLY | O_NONBLOCK);
    cr_assert_geq(wfd, 0);
    struct coll c;
    struct agent_open req = {.type = PROTO_OPEN_FD, .id = h};
    cr_assert_eq(open_stream(&c, &req), 0);
    /* Nothing to read on the FIFO, yet other requests are answered. */
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_stat(H_c, path, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0);
    cr_assert_eq(write(wfd, "ping", 4), 4);
    expect_bytes(&c, "ping");
    close(wfd);
    cr_assert(run_until(coll_is_ended, &c, 10));
    cr_assert_eq(c.end_err, 0);
    coll_free(&c);
}

#define MANY 200

Test(agent, many_channels_at_once)
{
    static struct coll c[MANY];
    char path[PATH_MAX], want[64];
    for (int i = 0; i < MANY; i++) {
        snprintf(path, sizeof(path), "%s/m%d", H_dir, i);
        file_put(path, "");
        cr_assert_eq(open_tail(&c[i], path, PROTO_START_END, 0, 0), 0);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < MANY; i++) {
            snprintf(path, sizeof(path), "%s/m%d", H_dir, i);
            snprintf(want, sizeof(want), "%d.%d\n", i, round);
            file_append(path, want, strlen(want));
        }
    for (int i = 0; i < MANY; i++) {
        snprintf(want, sizeof(want), "%d.0\n%d.1\n%d.2\n", i, i, i);
        expect_bytes(&c[i], want);
        agent_client_cancel(c[i].ch);
        coll_free(&c[i]);
    }
}

/* The agent's inotify subscribers by watch descriptor (watch.c): many
 * tails in one directory share its watch, two tails of one file share
 * that file's; closing half of them (swept, each watch removed only when
 * its last subscriber goes) disturbs none of the others; a rotation by
 * name and a deletion among them are still seen. */
#define SHARED 300

Test(agent, watches_shared_by_many_tails)
{
    static struct coll c[SHARED];
    struct coll twin;
    char path[PATH_MAX], old[PATH_MAX], want[64];

    for (int i = 0; i < SHARED; i++) {
        snprintf(path, sizeof(path), "%s/w%d", H_dir, i);
        file_put(path, "");
        cr_assert_eq(open_tail(&c[i], path, PROTO_START_END, 0, 0), 0);
    }
    snprintf(path, sizeof(path), "%s/w0", H_dir);
    cr_assert_eq(open_tail(&twin, path, PROTO_START_END, 0, 0), 0);
    for (int i = 1; i < SHARED; i += 2) {
        agent_client_cancel(c[i].ch);
        coll_free(&c[i]);
    }
    for (int i = 0; i < SHARED; i++) {
        snprintf(path, sizeof(path), "%s/w%d", H_dir, i);
        snprintf(want, sizeof(want), "%d\n", i);
        file_append(path, want, strlen(want));
    }
    for (int i = 0; i < SHARED; i += 2) {
        snprintf(want, sizeof(want), "%d\n", i);
        expect_bytes(&c[i], want);
    }
    expect_bytes(&twin, "0\n");
    /* The first subscriber of w0's watch goes: the twin still hears. */
    agent_client_cancel(c[0].ch);
    coll_free(&c[0]);
    snprintf(path, sizeof(path), "%s/w0", H_dir);
    file_append(path, "again\n", 6);
    expect_bytes(&twin, "0\nagain\n");
    coll_free(&twin);
    /* A rotation by name in the shared directory. */
    snprintf(path, sizeof(path), "%s/w2", H_dir);
    snprintf(old, sizeof(old), "%s/w2.1", H_dir);
    cr_assert_eq(rename(path, old), 0);
    file_append(path, "new\n", 4);
    expect_bytes(&c[2], "2\nnew\n");
    cr_assert_eq(c[2].notes[PROTO_NOTE_ROTATED], 1);
    /* A deletion. */
    snprintf(path, sizeof(path), "%s/w4", H_dir);
    cr_assert_eq(unlink(path), 0);
    cr_assert(run_until(coll_is_ended, &c[4], 10));
    for (int i = 2; i < SHARED; i += 2) {
        if (i != 4) /* ended: its channel is gone */
            agent_client_cancel(c[i].ch);
        coll_free(&c[i]);
    }
}

struct fair {
    struct coll *big, *small;
};

static bool
small_arrived(void *arg)
{
    struct fair *f = arg;
    return f->small->len > 0;
}

Test(agent, busy_channel_does_not_starve_others)
{
    char big[PATH_MAX], small[PATH_MAX];
    tmp_path(big, sizeof(big), "big");
    tmp_path(small, sizeof(small), "small");
    size_t n = 64 * MIB;
    char *junk = calloc(1, n);
    file_append(big, junk, n);
    free(junk);
    file_put(small, "s");
    struct coll cb, cs;
    memset(&cs, 0, sizeof(cs));
    cr_assert_eq(open_tail(&cb, big, PROTO_START_BEGINNING, 0, 0), 0);
    struct agent_open req = {.type = PROTO_OPEN_TAIL,
                             .path = small,
                             .start = PROTO_START_BEGINNING};
    cr_assert_eq(agent_client_open(H_c, &req, &coll_cbs, &cs, &cs.ch), 0);
    struct fair f = {&cb, &cs};
    cr_assert(run_until(small_arrived, &f, 10));
    cr_assert_lt(cb.len, n / 2, "small waited for %zu bytes of big", cb.len);
    struct len_wait lw = {&cb, n};
    cr_assert(run_until(coll_has, &lw, 30));
    cr_assert_eq(cb.len, n);
    coll_free(&cb);
    coll_free(&cs);
}

/* The agent spawned for this test: our child named provium-agent. */
static pid_t
agent_pid(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;

    cr_assert_not_null(d);
    while (found < 0 && (e = readdir(d))) {
        char path[300], buf[512], *p;
        int ppid;
        FILE *f;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        p = fgets(buf, sizeof(buf), f);
        fclose(f);
        if (!p || !(p = strrchr(buf, ')')) || sscanf(p, ") %*c %d", &ppid) != 1)
            continue;
        if (ppid == getpid() && strstr(buf, "(provium-agent)"))
            found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* Resident memory of pid in KiB (VmRSS), -1 if it is gone. */
static long
rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

#define SLOW_CHANNELS 16
#define SLOW_RSS_BOUND_KIB (4 * 1024)

/* The host stops reading: the agent must stop too, with bounded memory.
 * 16 streams of a process writing 50 MiB each have 1 MiB of credit each:
 * 16 MiB the agent could read and queue for a host that reads nothing.
 * It must stop at its output mark instead (256 KiB, docs/protocol.md),
 * so its resident memory stays within a few MiB while the host sleeps;
 * and once the host reads again every byte arrives, in order. */
Test(agent, slow_host_bounds_the_agent)
{
    char exe[PATH_MAX];
    self_exe(exe, sizeof(exe));
    char *argv[] = {exe, NULL};
    char *env[] = {"PROVIUM_TEST_CHILD=interleave", NULL};
    pid_t agent = agent_pid();
    cr_assert_gt(agent, 0, "the agent process not found");
    long base = rss_kib(agent), peak = base;
    cr_assert_gt(base, 0);
    uint64_t id = exec_ok(argv, env, NULL);
    /* All of its output is in the agent's spool before any stream opens,
     * so that each open could take its whole credit at once. */
    struct sync_reply w = {0};
    sync_wait(&w, agent_client_wait(H_c, id, sync_done, &w, NULL));
    cr_assert_eq(w.err, 0, "%s", w.msg);
    static struct coll c[SLOW_CHANNELS];
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    for (int i = 0; i < SLOW_CHANNELS; i++)
        cr_assert_eq(open_stream(&c[i], &req), 0);
    /* The slow host: do not run the reactor, only watch the agent. */
    uint64_t end = clock_now() + 1500 * USEC_PER_MSEC;
    while (clock_now() < end) {
        long r = rss_kib(agent);
        cr_assert_gt(r, 0, "the agent died");
        if (r > peak)
            peak = r;
        usleep(20000);
    }
    cr_log_info("agent RSS %ld KiB at start, %ld KiB at most", base, peak);
    cr_assert_lt(peak - base, SLOW_RSS_BOUND_KIB,
                 "the agent grew by %ld KiB (from %ld) for a host that reads "
                 "nothing: its output is not bounded",
                 peak - base, base);
    for (int i = 1; i < SLOW_CHANNELS; i++) {
        agent_client_cancel(c[i].ch);
        coll_free(&c[i]);
    }
    cr_assert(run_until(coll_is_ended, &c[0], 60));
    check_pattern(&c[0], 1);
    coll_free(&c[0]);
}

Test(agent, close_then_frames_in_flight_are_ignored)
{
    char path[PATH_MAX];
    tmp_path(path, sizeof(path), "inflight");
    size_t n = 8 * MIB;
    char *junk = calloc(1, n);
    file_append(path, junk, n);
    free(junk);
    struct coll c;
    cr_assert_eq(open_tail(&c, path, PROTO_START_BEGINNING, 0, 0), 0);
    struct len_wait lw = {&c, 1};
    cr_assert(run_until(coll_has, &lw, 10));
    agent_client_cancel(c.ch);
    /* Frames already sent for the channel must not upset the client. */
    struct sync_reply s = {0};
    sync_wait(&s, agent_client_stat(H_c, path, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0);
    cr_assert_eq(agent_client_state(H_c), AGENT_UP);
    coll_free(&c);
}

/* ---- over a Unix socket ---- */

Test(agent_unix, tail_and_proc)
{
    char path[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "u");
    file_put(path, "hello\n");
    cr_assert_eq(open_tail(&c, path, PROTO_START_BEGINNING, 0, 0), 0);
    expect_bytes(&c, "hello\n");
    file_append(path, "more\n", 5);
    expect_bytes(&c, "hello\nmore\n");
    coll_free(&c);

    char *argv[] = {"echo", "hi", NULL};
    uint64_t id = exec_ok(argv, NULL, NULL);
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    cr_assert_eq(open_stream(&c, &req), 0);
    cr_assert(run_until(coll_is_ended, &c, 10));
    expect_bytes(&c, "hi\n");
    coll_free(&c);
}

Test(agent_unix, agent_death_ends_streams_and_reconnects)
{
    char path[PATH_MAX];
    struct coll c;
    tmp_path(path, sizeof(path), "r");
    file_put(path, "");
    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0, 0), 0);
    stop_listener();
    cr_assert(run_until(coll_is_ended, &c, 10));
    cr_assert_eq(c.end_err, -ECONNRESET);
    cr_assert_not_null(strstr(c.end_msg, "agent connection lost"), "%s",
                       c.end_msg);
    cr_assert_eq(agent_client_state(H_c), AGENT_DOWN);
    coll_free(&c);
    /* Opens fail at once while down. */
    struct agent_open req = {.type = PROTO_OPEN_TAIL, .path = path};
    cr_assert_eq(agent_client_open(H_c, &req, &coll_cbs, &c, NULL), -ENOTCONN);
    start_listener();
    cr_assert(run_until(client_up, H_c, 20), "no reconnect: %s",
              agent_client_error(H_c));
    cr_assert_eq(open_tail(&c, path, PROTO_START_END, 0, 0), 0);
    file_append(path, "back\n", 5);
    expect_bytes(&c, "back\n");
    coll_free(&c);
}

static int
raw_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, H_sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Hostile host: the agent drops the connection and serves the next. */
Test(agent_unix, agent_survives_garbage_from_host)
{
    agent_client_free(H_c); /* make room: one host at a time */
    H_c = NULL;
    static const char *garbage[] = {
            "GET / HTTP/1.0\r\n\r\n",
            "\xff\xff\xff\xff\x01\x00\x00\x00\x00",         /* oversized */
            "\x00\x00\x00\x00\x06\x01\x00\x00\x00",         /* before hello */
            "\x0c\x00\x00\x00\x01\x00\x00\x00\x00PRVM\x01", /* truncated */
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(*garbage); i++) {
        int fd = raw_connect();
        size_t len = strlen(garbage[i]);
        if (i == 1 || i == 2)
            len = 9;
        cr_assert_eq(write(fd, garbage[i], len), (ssize_t)len);
        if (i == 3)
            shutdown(fd, SHUT_WR); /* truncated frame, then EOF */
        char buf[256];
        /* The agent closes its end: read sees EOF (blocking read with
         * the test's timeout as the bound). */
        while (read(fd, buf, sizeof(buf)) > 0)
            ;
        close(fd);
    }
    char ep[PATH_MAX + 8];
    snprintf(ep, sizeof(ep), "unix:%s", H_sock);
    cr_assert_eq(agent_client_new(H_r, ep, &H_c), 0);
    cr_assert(run_until(client_up, H_c, 10));
}

/* ---- hostile agent ---- */

struct fake {
    int fd; /* our end, speaking as the agent */
};

static void
fake_hello_ok(int fd)
{
    uint8_t buf[256];
    struct proto_writer w;
    proto_writer_init(&w, buf, sizeof(buf));
    proto_frame_begin(&w, PROTO_HELLO_OK, 0);
    proto_put_u32(&w, PROTO_MAGIC);
    proto_put_u32(&w, PROTO_VERSION);
    proto_put_str(&w, "Fake", 4);
    proto_put_str(&w, "1", 1);
    proto_put_str(&w, "0", 1);
    proto_put_u64(&w, 42); /* instance */
    cr_assert_gt(proto_frame_end(&w), 0);
    cr_assert_eq(write(fd, buf, w.len), (ssize_t)w.len);
}

static bool
client_dead(void *arg)
{
    return agent_client_state(arg) == AGENT_DEAD;
}

static void
hostile(const void *frame, size_t len, const char *want_msg)
{
    int sv[2];
    struct agent_client *c;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(agent_client_new_fd(H_r, sv[0], &c), 0);
    fake_hello_ok(sv[1]);
    cr_assert(run_until(client_up, c, 5));
    struct coll col = {0};
    struct agent_open req = {.type = PROTO_OPEN_TAIL, .path = "/x"};
    cr_assert_eq(agent_client_open(c, &req, &coll_cbs, &col, NULL), 0);
    cr_assert_eq(write(sv[1], frame, len), (ssize_t)len);
    cr_assert(run_until(client_dead, c, 5));
    cr_assert_eq(col.opened, -EPROTO);
    cr_assert_not_null(strstr(col.open_msg, want_msg), "%s", col.open_msg);
    /* The other client (the real agent) is untouched. */
    cr_assert_eq(agent_client_state(H_c), AGENT_UP);
    agent_client_free(c);
    close(sv[1]);
}

Test(agent, hostile_agent_ends_its_own_connection)
{
    uint8_t f[64];
    proto_header(f, PROTO_MAX_BODY + 1, PROTO_DATA, 1);
    hostile(f, PROTO_HEADER_LEN, "frame larger than the cap");
    proto_header(f, 0, 99, 1);
    hostile(f, PROTO_HEADER_LEN, "malformed frame header");
    proto_header(f, 4, PROTO_DATA, 1); /* data before ack */
    memcpy(f + PROTO_HEADER_LEN, "abcd", 4);
    hostile(f, PROTO_HEADER_LEN + 4, "unexpected or malformed data");
    proto_header(f, 0, PROTO_ACK, 7); /* a channel never opened */
    hostile(f, PROTO_HEADER_LEN, "never opened");
    proto_header(f, 0, PROTO_OPEN_TAIL, 1); /* host-only type */
    hostile(f, PROTO_HEADER_LEN, "host-only");
}

/* Raw host: reads frames from fd until a data total or a quiet period. */
static size_t
raw_read_data(int fd, struct proto_decoder *d, int quiet_ms)
{
    static uint8_t buf[PROTO_MAX_FRAME];
    size_t total = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, quiet_ms) <= 0)
            return total;
        ssize_t n = read(fd, buf, sizeof(buf));
        cr_assert_gt(n, 0);
        size_t pos = 0, used;
        while (pos < (size_t)n) {
            struct proto_frame f;
            int rc = proto_decode(d, buf + pos, (size_t)n - pos, &used, &f);
            cr_assert_geq(rc, 0);
            pos += used;
            if (rc == 1 && f.type == PROTO_DATA)
                total += f.len;
        }
    }
}

static void
raw_send(int fd, unsigned type, uint32_t ch, const void *body, size_t len)
{
    uint8_t buf[PROTO_HEADER_LEN + 4200];
    proto_header(buf, (uint32_t)len, type, ch);
    memcpy(buf + PROTO_HEADER_LEN, body, len);
    cr_assert_eq(write(fd, buf, PROTO_HEADER_LEN + len),
                 (ssize_t)(PROTO_HEADER_LEN + len));
}

/* The agent never sends beyond the credit the host granted. */
Test(agent_unix, agent_respects_credit)
{
    char path[PATH_MAX];
    tmp_path(path, sizeof(path), "credit");
    char *junk = calloc(1, MIB);
    file_append(path, junk, MIB);
    free(junk);
    agent_client_free(H_c);
    H_c = NULL;

    int fd = raw_connect();
    struct proto_decoder d;
    cr_assert_eq(proto_decoder_init(&d), 0);
    uint8_t body[64 + PATH_MAX];
    struct proto_writer w;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, PROTO_MAGIC);
    proto_put_u32(&w, PROTO_VERSION);
    proto_put_u32(&w, PROTO_VERSION);
    raw_send(fd, PROTO_HELLO, 0, body, w.len);
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, 1000);
    proto_put_u8(&w, PROTO_START_BEGINNING);
    proto_put_u8(&w, 0);
    proto_put_u64(&w, 0);
    proto_put_str(&w, path, strlen(path));
    raw_send(fd, PROTO_OPEN_TAIL, 1, body, w.len);
    cr_assert_eq(raw_read_data(fd, &d, 300), 1000);
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, 5000);
    raw_send(fd, PROTO_CREDIT, 1, body, w.len);
    cr_assert_eq(raw_read_data(fd, &d, 300), 5000);
    proto_decoder_fini(&d);
    close(fd);
}

/* ---- deadlines (SPEC §6.3) ---- */

/* Read frames from the fake agent's end until one of type, for up to a
 * second; returns its body length (body in *buf), or -1. */
static ssize_t
fake_expect(int fd, struct proto_decoder *d, unsigned type, uint32_t *ch,
            uint8_t *buf)
{
    static uint8_t in[PROTO_MAX_FRAME];
    static size_t have, pos;
    for (;;) {
        while (pos < have) {
            struct proto_frame f;
            size_t used;
            int rc = proto_decode(d, in + pos, have - pos, &used, &f);
            cr_assert_geq(rc, 0);
            pos += used;
            if (rc == 1 && f.type == type) {
                *ch = f.channel;
                memcpy(buf, f.body, f.len);
                return (ssize_t)f.len;
            }
        }
        /* Let the client send, then read what it sent. */
        reactor_run_once(H_r, clock_now() + 10000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            return -1;
        ssize_t n = read(fd, in, sizeof(in));
        if (n <= 0)
            return -1;
        have = (size_t)n;
        pos = 0;
    }
}

static bool
client_unresponsive(void *arg)
{
    return agent_client_state(arg) == AGENT_UNRESPONSIVE;
}

/* An agent that handshakes and then does not answer: the request fails
 * with ETIMEDOUT at the deadline, the client says unresponsive; the late
 * answer clears that, and the process it reports is killed at once. */
Test(agent, request_deadline_and_late_answer)
{
    int sv[2];
    struct agent_client *c;
    struct proto_decoder d;
    uint8_t body[PROTO_MAX_BODY];
    uint32_t ch;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(proto_decoder_init(&d), 0);
    cr_assert_eq(agent_client_new_fd(H_r, sv[0], &c), 0);
    agent_client_set_timeout(c, 200 * USEC_PER_MSEC);
    cr_assert_geq(fake_expect(sv[1], &d, PROTO_HELLO, &ch, body), 0);
    fake_hello_ok(sv[1]);
    cr_assert(run_until(client_up, c, 5));

    char *argv[] = {"sleep", "100", NULL};
    struct sync_reply s = {0};
    uint64_t t0 = clock_now();
    cr_assert_eq(agent_client_exec(c, NULL, argv, NULL, sync_done, &s, NULL),
                 0);
    cr_assert(run_until(sync_is_done, &s, 5));
    uint64_t dt = clock_now() - t0;
    cr_assert_eq(s.err, -ETIMEDOUT, "%d %s", s.err, s.msg);
    cr_assert_str_eq(s.msg, "the agent did not answer within 200ms");
    cr_assert(dt >= 190 * USEC_PER_MSEC && dt < 1 * USEC_PER_SEC, "%llu us",
              (unsigned long long)dt);
    cr_assert_eq(agent_client_state(c), AGENT_UNRESPONSIVE);
    char info[2048] = "";
    agent_client_info(c, info, sizeof(info));
    cr_assert_not_null(strstr(info, "agent_state: unresponsive\n"), "%s", info);
    cr_assert_not_null(strstr(info, "agent_last_error: the agent did not "
                                    "answer a request within 200ms"),
                       "%s", info);
    /* wait is exempt: still pending well past the deadline. */
    struct sync_reply w = {0};
    cr_assert_eq(agent_client_wait(c, 5, sync_done, &w, NULL), 0);
    cr_assert_not(run_until(sync_is_done, &w, 0.4), "wait timed out");

    /* The late answer to the exec: proc 7. */
    int32_t exec_ch = -1;
    {
        uint32_t k;
        ssize_t n = fake_expect(sv[1], &d, PROTO_EXEC, &k, body);
        cr_assert_geq(n, 0);
        exec_ch = (int32_t)k;
    }
    uint8_t frame[64];
    struct proto_writer pw;
    proto_writer_init(&pw, frame, sizeof(frame));
    proto_frame_begin(&pw, PROTO_REPLY, (uint32_t)exec_ch);
    proto_put_u64(&pw, 7);
    cr_assert_gt(proto_frame_end(&pw), 0);
    cr_assert_eq(write(sv[1], frame, pw.len), (ssize_t)pw.len);
    ssize_t n = fake_expect(sv[1], &d, PROTO_KILL, &ch, body);
    cr_assert_eq(n, 12, "no kill of the late process");
    struct proto_reader rd;
    proto_reader_init(&rd, body, (size_t)n);
    cr_assert_eq(proto_get_u64(&rd), 7);
    cr_assert_eq(proto_get_u32(&rd), SIGKILL);
    cr_assert_eq(agent_client_state(c), AGENT_UP, "a frame came: up again");
    agent_client_free(c);
    proto_decoder_fini(&d);
    close(sv[1]);
}

/* A stream open has a deadline until its ack; a late ack is closed. */
Test(agent, open_deadline)
{
    int sv[2];
    struct agent_client *c;
    struct proto_decoder d;
    uint8_t body[PROTO_MAX_BODY];
    uint32_t ch;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(proto_decoder_init(&d), 0);
    cr_assert_eq(agent_client_new_fd(H_r, sv[0], &c), 0);
    agent_client_set_timeout(c, 200 * USEC_PER_MSEC);
    fake_hello_ok(sv[1]);
    cr_assert(run_until(client_up, c, 5));
    struct coll col = {0};
    struct agent_open req = {.type = PROTO_OPEN_TAIL, .path = "/x"};
    cr_assert_eq(agent_client_open(c, &req, &coll_cbs, &col, &col.ch), 0);
    cr_assert(run_until(coll_is_open, &col, 5));
    cr_assert_eq(col.opened, -ETIMEDOUT);
    cr_assert(run_until(client_unresponsive, c, 1));
    cr_assert_geq(fake_expect(sv[1], &d, PROTO_OPEN_TAIL, &ch, body), 0);
    uint8_t frame[32];
    struct proto_writer pw;
    proto_writer_init(&pw, frame, sizeof(frame));
    proto_frame_begin(&pw, PROTO_ACK, ch);
    proto_put_u64(&pw, 0);
    cr_assert_gt(proto_frame_end(&pw), 0);
    cr_assert_eq(write(sv[1], frame, pw.len), (ssize_t)pw.len);
    uint32_t closed;
    cr_assert_geq(fake_expect(sv[1], &d, PROTO_CLOSE, &closed, body), 0);
    cr_assert_eq(closed, ch, "the late stream was not closed");
    cr_assert_eq(col.ended, false, "callbacks after the timeout");
    agent_client_free(c);
    proto_decoder_fini(&d);
    close(sv[1]);
}

/* No hello_ok within the deadline: the connection is dropped (an fd
 * client cannot reconnect, so it is dead). */
Test(agent, handshake_deadline)
{
    int sv[2];
    struct agent_client *c;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(agent_client_new_fd(H_r, sv[0], &c), 0);
    agent_client_set_timeout(c, 200 * USEC_PER_MSEC);
    cr_assert(run_until(client_dead, c, 2), "still %s",
              agent_client_state_name(agent_client_state(c)));
    cr_assert_str_eq(agent_client_error(c),
                     "the agent did not complete the handshake within 200ms");
    agent_client_free(c);
    close(sv[1]);
}

/* A listening agent that never answers the handshake: the client drops
 * the connection at the deadline and connects again. */
Test(agent, handshake_deadline_retries)
{
    char path[PATH_MAX], ep[PATH_MAX + 8];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct agent_client *c;
    int l, accepted = 0;

    tmp_path(path, sizeof(path), "silent.sock");
    strcpy(sa.sun_path, path);
    l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(l, 0);
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(l, 4), 0);
    snprintf(ep, sizeof(ep), "unix:%s", path);
    cr_assert_eq(agent_client_new(H_r, ep, &c), 0);
    agent_client_set_timeout(c, 200 * USEC_PER_MSEC);
    uint64_t deadline = clock_now() + 3 * USEC_PER_SEC;
    int fds[8];
    while (accepted < 2 && clock_now() < deadline) {
        reactor_run_once(H_r, clock_now() + 20000);
        int fd = accept(l, NULL, NULL);
        if (fd >= 0)
            fds[accepted++] = fd;
    }
    cr_assert_eq(accepted, 2, "no retry after the handshake deadline");
    cr_assert_not_null(strstr(agent_client_last_error(c, NULL),
                              "did not complete the handshake within 200ms"));
    agent_client_free(c);
    for (int i = 0; i < accepted; i++)
        close(fds[i]);
    close(l);
}

/* ---- output that cannot be recorded (SPEC §6.3) ---- */

static void
start_agent_args(const char *sock, const char *max)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char spec[PATH_MAX + 8];
        snprintf(spec, sizeof(spec), "unix:%s", sock);
        execl(agent_binary(), "provium-agent", "--listen", spec, "--spool-dir",
              H_dir, "--proc-spool-max", max, (char *)NULL);
        _exit(127);
    }
    /* Killed by the suite's teardown even if an assertion fails first
     * (this suite's tests have no other listener). */
    H_listener = pid;
    for (int i = 0; i < 500 && access(sock, F_OK) != 0; i++)
        usleep(10000); /* the agent creating its socket: no fd to wait on */
}

/* At the per-process cap the process is not blocked: the rest of its
 * output is drained and counted, its stream ends with an error after the
 * recorded bytes, and wait reports the loss. */
Test(agent, proc_spool_cap_is_reported)
{
    char sock[PATH_MAX], ep[PATH_MAX + 8];
    struct agent_client *c;
    tmp_path(sock, sizeof(sock), "cap.sock");
    start_agent_args(sock, "1048576");
    snprintf(ep, sizeof(ep), "unix:%s", sock);
    cr_assert_eq(agent_client_new(H_r, ep, &c), 0);
    cr_assert(run_until(client_up, c, 10));

    char *argv[] = {"sh", "-c", "head -c 3145728 /dev/zero; echo end >&2",
                    NULL};
    struct sync_reply s = {0};
    sync_wait(&s, agent_client_exec(c, NULL, argv, NULL, sync_done, &s, NULL));
    uint64_t id = s.value;
    memset(&s, 0, sizeof(s));
    sync_wait(&s, agent_client_wait(c, id, sync_done, &s, NULL));
    cr_assert_eq(s.err, 0, "%s", s.msg);
    cr_assert_eq(s.how, PROTO_EXITED, "not blocked, not killed");
    cr_assert_eq(s.value, 0);
    cr_assert_eq(s.out[0].lost, -EFBIG);
    cr_assert_eq(s.out[0].recorded, 1048576);
    cr_assert_str_eq(s.out[0].msg, "stdout not recorded past 1048576 bytes: "
                                   "--proc-spool-max reached");
    cr_assert_eq(s.out[1].lost, 0, "stderr is whole");
    cr_assert_eq(s.out[1].recorded, 4);

    struct coll col;
    struct agent_open req = {
            .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
    memset(&col, 0, sizeof(col));
    cr_assert_eq(agent_client_open(c, &req, &coll_cbs, &col, &col.ch), 0);
    cr_assert(run_until(coll_is_ended, &col, 10));
    cr_assert_eq(col.len, 1048576);
    cr_assert_eq(col.end_err, -EFBIG);
    cr_assert_eq(col.reason, PROTO_END_ERROR);
    cr_assert_str_eq(col.end_msg, s.out[0].msg);
    coll_free(&col);
    agent_client_free(c);
    stop_listener();
}

/* Everything recorded: wait says so, with the sizes. */
Test(agent, wait_reports_what_was_recorded)
{
    char *argv[] = {"sh", "-c", "echo out; echo error >&2", NULL};
    uint64_t id = exec_ok(argv, NULL, NULL);
    struct sync_reply w = {0};
    sync_wait(&w, agent_client_wait(H_c, id, sync_done, &w, NULL));
    cr_assert_eq(w.out[0].lost, 0);
    cr_assert_eq(w.out[0].recorded, 4);
    cr_assert_eq(w.out[0].discarded, 0);
    cr_assert_eq(w.out[1].lost, 0);
    cr_assert_eq(w.out[1].recorded, 6);
}

/* ---- processes never outlive their agent (SPEC §6.4) ---- */

static bool
pid_gone(pid_t pid)
{
    char path[64], buf[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    bool got = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    char *p = strrchr(buf, ')');
    return got && p && p[2] == 'Z';
}

/* The agent is SIGKILLed: its keeper TERMs the groups it started, and
 * KILLs after the grace period one that ignores TERM. */
Test(agent_unix, keeper_ends_groups_when_the_agent_is_killed)
{
    char *argv1[] = {"sh", "-c", "echo $$; exec sleep 300", NULL};
    char *argv2[] = {"sh", "-c", "trap '' TERM; echo $$; sleep 301; :", NULL};
    pid_t pids[2];
    char **argvs[2] = {argv1, argv2};
    for (int i = 0; i < 2; i++) {
        uint64_t id = exec_ok(argvs[i], NULL, NULL);
        struct coll c;
        struct agent_open req = {
                .type = PROTO_OPEN_PROC, .id = id, .which = PROTO_STDOUT};
        cr_assert_eq(open_stream(&c, &req), 0);
        while (!memchr(c.buf ? (char *)c.buf : "", '\n', c.len))
            cr_assert_eq(reactor_run_once(H_r, clock_now() + 100000), 0);
        pids[i] = (pid_t)strtol((char *)c.buf, NULL, 10);
        cr_assert_gt(pids[i], 0);
        agent_client_cancel(c.ch);
        coll_free(&c);
    }
    stop_listener(); /* SIGKILL */
    uint64_t t0 = clock_now();
    while (!pid_gone(pids[0]) || !pid_gone(pids[1])) {
        if (clock_now() - t0 > 5 * USEC_PER_SEC) {
            kill(-pids[0], SIGKILL); /* leave nothing behind */
            kill(-pids[1], SIGKILL);
            cr_assert_fail("processes outlived their agent: %d %d",
                           (int)pids[0], (int)pids[1]);
        }
        usleep(20000); /* another process ends them: nothing to wait on */
    }
    cr_assert_geq(clock_now() - t0, 1500 * USEC_PER_MSEC,
                  "the TERM-ignoring one had its grace period");
}
