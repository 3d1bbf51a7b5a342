/*
 * test/unit/tail.c - the tail engine: open commands of SPEC §5.1 through
 * the engine ops table into real streams of the stream core, fed by a
 * real provium-agent; ends, errors, limits and agent loss.
 */
#include "agent_harness.h"

TestSuite(tail, .init = harness_spawn, .fini = harness_teardown, .timeout = 60);
TestSuite(tail_unix, .init = harness_listen, .fini = harness_teardown,
          .timeout = 60);

struct opened {
    bool done;
    int err;
    char msg[COMMAND_ERR_LEN + PROTO_MAX_MSG];
};

static void
on_opened(struct stream *s, int err, const char *msg, void *arg)
{
    struct opened *o = arg;
    o->done = true;
    o->err = err;
    snprintf(o->msg, sizeof(o->msg), "%s", msg ? msg : "");
}

static bool
is_opened(void *arg)
{
    return ((struct opened *)arg)->done;
}

static void *last_state;

/* Parse and open; returns the engine's or the agent's verdict. */
static int
tail_cmd(const char *line, uint64_t limit, struct stream **sp, char *msg)
{
    struct command cmd;
    struct stream_config cfg = {.spool_dir = H_dir, .history_limit = limit};
    struct opened o = {0};
    char err[COMMAND_ERR_LEN] = "";
    void *state = NULL;
    int rc;

    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0, "%s", err);
    cr_assert_eq(stream_new(H_r, &cfg, sp), 0);
    rc = engine_open_command(*sp, H_c, &cmd, on_opened, &o, &state, err);
    command_free(&cmd);
    last_state = state;
    if (rc < 0) {
        snprintf(msg, COMMAND_ERR_LEN, "%s", err);
        return rc;
    }
    cr_assert(run_until(is_opened, &o, 10));
    snprintf(msg, COMMAND_ERR_LEN, "%.200s", o.msg);
    return o.err;
}

struct size_wait {
    struct stream *s;
    uint64_t size;
};

static bool
has_size(void *arg)
{
    struct size_wait *w = arg;
    return stream_size(w->s) >= w->size || stream_state(w->s) != STREAM_LIVE;
}

static bool
has_ended(void *arg)
{
    return stream_state(arg) != STREAM_LIVE;
}

static void
expect_history(struct stream *s, const char *want)
{
    struct size_wait w = {s, strlen(want)};
    char buf[4096];
    cr_assert(run_until(has_size, &w, 10), "have %llu bytes",
              (unsigned long long)stream_size(s));
    cr_assert_eq(stream_size(s), strlen(want));
    cr_assert_eq(stream_pread(s, buf, sizeof(buf), 0), (ssize_t)strlen(want));
    cr_assert_eq(memcmp(buf, want, strlen(want)), 0);
}

Test(tail, tail_file_frames_and_options)
{
    char path[PATH_MAX], line[PATH_MAX + 128], msg[COMMAND_ERR_LEN];
    struct stream *s;
    tmp_path(path, sizeof(path), "t");
    file_put(path, "head\n");
    snprintf(line, sizeof(line),
             "tail_file host \"%s\" start=beginning site=a.test.lua:3 "
             "test=x keep",
             path);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    expect_history(s, "head\n");
    file_append(path, "one\n", 4);
    expect_history(s, "head\none\n");
    file_append(path, "two\n", 4);
    expect_history(s, "head\none\ntwo\n");
    cr_assert_eq(stream_frames(s), 3, "one frame per agent read");
    char info[1024] = "";
    tail_engine.info(last_state, info, sizeof(info));
    cr_assert_not_null(strstr(info, "source: tail_file "), "%s", info);
    cr_assert_not_null(strstr(info, "truncations: 0\n"), "%s", info);
    stream_close(s);
    stream_unref(s);
}

Test(tail, start_back_and_end)
{
    char path[PATH_MAX], line[PATH_MAX + 64], msg[COMMAND_ERR_LEN];
    struct stream *s;
    tmp_path(path, sizeof(path), "b");
    file_put(path, "abcdef");
    snprintf(line, sizeof(line), "file_tail_stream host %s start=-2", path);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    expect_history(s, "ef");
    stream_close(s);
    stream_unref(s);
    snprintf(line, sizeof(line), "tail_file host %s", path);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    file_append(path, "g", 1);
    expect_history(s, "g");
    stream_close(s);
    stream_unref(s);
}

Test(tail, bad_requests)
{
    char msg[COMMAND_ERR_LEN];
    struct stream *s;
    cr_assert_eq(tail_cmd("tail_file host /x start=sideways", 0, &s, msg),
                 -EINVAL);
    cr_assert_not_null(strstr(msg, "start:"), "%s", msg);
    stream_unref(s);
    cr_assert_eq(tail_cmd("tail_file host /x colour=red", 0, &s, msg), -EINVAL);
    cr_assert_not_null(strstr(msg, "unknown option"), "%s", msg);
    stream_unref(s);
    cr_assert_eq(tail_cmd("fd_stream host banana", 0, &s, msg), -EINVAL);
    stream_unref(s);
    cr_assert_eq(tail_cmd("tail_file host", 0, &s, msg), -EINVAL);
    stream_unref(s);
    cr_assert_eq(tail_cmd("tail_file host /nonexistent/f", 0, &s, msg),
                 -ENOENT);
    cr_assert_str_eq(msg, "tail_file /nonexistent/f: No such file or "
                          "directory");
    stream_unref(s);
}

Test(tail, deleted_file_ends_cleanly)
{
    char path[PATH_MAX], line[PATH_MAX + 64], msg[COMMAND_ERR_LEN];
    struct stream *s;
    tmp_path(path, sizeof(path), "d");
    file_put(path, "bye");
    snprintf(line, sizeof(line), "tail_file host %s start=0", path);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    expect_history(s, "bye");
    unlink(path);
    cr_assert(run_until(has_ended, s, 10));
    const char *why;
    cr_assert_eq(stream_end_error(s, &why), 0);
    /* The reason reaches the reply: `stream EOF; file deleted`. */
    cr_assert_str_eq(why ? why : "(none)", "file deleted");
    stream_close(s);
    stream_unref(s);
}

Test(tail, proc_streams_after_exit)
{
    char *argv[] = {"sh", "-c", "printf out; printf err >&2", NULL};
    uint64_t id = exec_ok(argv, NULL, NULL);
    struct sync_reply w = {0};
    sync_wait(&w, agent_client_wait(H_c, id, sync_done, &w, NULL));
    char line[64], msg[COMMAND_ERR_LEN];
    struct stream *s;
    snprintf(line, sizeof(line), "proc_stdout_stream host proc#%llu",
             (unsigned long long)id);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    cr_assert(run_until(has_ended, s, 10));
    expect_history(s, "out");
    cr_assert_eq(stream_end_error(s, NULL), 0);
    stream_close(s);
    stream_unref(s);
    snprintf(line, sizeof(line), "proc_stderr_stream host %llu",
             (unsigned long long)id);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    cr_assert(run_until(has_ended, s, 10));
    expect_history(s, "err");
    stream_close(s);
    stream_unref(s);
}

Test(tail, fd_stream_by_handle)
{
    char path[PATH_MAX], line[64], msg[COMMAND_ERR_LEN];
    struct sync_reply r = {0};
    struct stream *s;
    tmp_path(path, sizeof(path), "fd");
    file_put(path, "xyz");
    sync_wait(&r, agent_client_fopen(H_c, path, PROTO_O_READ, 0, sync_done, &r,
                                     NULL));
    snprintf(line, sizeof(line), "fd_stream host file#%llu",
             (unsigned long long)r.value);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    expect_history(s, "xyz");
    stream_close(s);
    stream_unref(s);
}

Test(tail, history_limit_ends_with_error_and_stops_the_channel)
{
    char path[PATH_MAX], line[PATH_MAX + 64], msg[COMMAND_ERR_LEN];
    struct stream *s;
    tmp_path(path, sizeof(path), "lim");
    file_put(path, "");
    snprintf(line, sizeof(line), "tail_file host %s", path);
    cr_assert_eq(tail_cmd(line, 8, &s, msg), 0, "%s", msg);
    file_append(path, "12345", 5);
    expect_history(s, "12345");
    file_append(path, "67890", 5);
    cr_assert(run_until(has_ended, s, 10));
    const char *em;
    cr_assert_eq(stream_end_error(s, &em), -EFBIG);
    cr_assert_not_null(strstr(em, "history limit"), "%s", em);
    /* The client and agent carry on. */
    struct sync_reply r = {0};
    sync_wait(&r, agent_client_stat(H_c, path, sync_done, &r, NULL));
    cr_assert_eq(r.size, 10);
    stream_close(s);
    stream_unref(s);
}

Test(tail_unix, agent_loss_ends_streams_with_message)
{
    char path[PATH_MAX], line[PATH_MAX + 64], msg[COMMAND_ERR_LEN];
    struct stream *s;
    tmp_path(path, sizeof(path), "loss");
    file_put(path, "");
    snprintf(line, sizeof(line), "tail_file host %s", path);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    stop_listener();
    cr_assert(run_until(has_ended, s, 10));
    const char *em;
    cr_assert_eq(stream_end_error(s, &em), -ECONNRESET);
    cr_assert_not_null(strstr(em, "agent connection lost"), "%s", em);
    cr_assert_not_null(strstr(em, path), "%s", em);
    stream_close(s);
    stream_unref(s);
    /* While the agent is away, opens fail at once with a clear message. */
    cr_assert_eq(tail_cmd(line, 0, &s, msg), -ENOTCONN);
    cr_assert_not_null(strstr(msg, "not connected"), "%s", msg);
    stream_unref(s);
}

/* Sources that do not grow like files are read as what they are, never
 * re-read in a loop (SPEC §6.3): a procfs file is refused at start=end
 * and read once, to its end, from the beginning. */
Test(tail, generated_files_are_read_once)
{
    char msg[COMMAND_ERR_LEN];
    struct stream *s;

    cr_assert_eq(tail_cmd("tail_file host /proc/self/status", 0, &s, msg),
                 -EINVAL);
    cr_assert_not_null(strstr(msg, "tail_file /proc/self/status: a file on "
                                   "procfs is generated when read"),
                       "%s", msg);
    stream_unref(s);
    cr_assert_eq(tail_cmd("tail_file host /proc/self/status start=beginning", 0,
                          &s, msg),
                 0, "%s", msg);
    cr_assert(run_until(has_ended, s, 10), "the stream did not end");
    const char *why = NULL;
    cr_assert_eq(stream_end_error(s, &why), 0, "%s", why);
    cr_assert_leq(stream_frames(s), 2, "%llu frames: read in a loop?",
                  (unsigned long long)stream_frames(s));
    char buf[4096] = "";
    cr_assert_gt(stream_pread(s, buf, sizeof(buf) - 1, 0), 0);
    cr_assert(strncmp(buf, "Name:\tprovium-agent", 19) == 0, "%s", buf);
    stream_close(s);
    stream_unref(s);
}

/* A FIFO with no writer yet is not at its end: the stream waits for the
 * writer and ends after it. */
Test(tail, fifo_waits_for_its_writer)
{
    char path[PATH_MAX], line[PATH_MAX + 64], msg[COMMAND_ERR_LEN];
    struct stream *s;

    tmp_path(path, sizeof(path), "fifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    snprintf(line, sizeof(line), "tail_file host %s", path);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), 0, "%s", msg);
    /* No writer for a while: still live. */
    cr_assert_not(run_until(has_ended, s, 0.3), "ended with no writer");
    int fd = open(path, O_WRONLY | O_NONBLOCK);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "one\n", 4), 4);
    struct size_wait w = {s, 4};
    cr_assert(run_until(has_size, &w, 10));
    cr_assert_eq(stream_state(s), STREAM_LIVE, "ended with the writer there");
    close(fd);
    cr_assert(run_until(has_ended, s, 10), "no end after the last writer");
    expect_history(s, "one\n");
    snprintf(line, sizeof(line), "tail_file host %s start=5", path);
    stream_close(s);
    stream_unref(s);
    cr_assert_eq(tail_cmd(line, 0, &s, msg), -EINVAL);
    cr_assert_not_null(strstr(msg, "a FIFO has no offsets"), "%s", msg);
    stream_unref(s);
}
