/*
 * Stream core: the ops of SPEC §5.2 with the pending-bytes / EOF / close
 * semantics of §6.2, the matching of §9 (regexes, alternatives, peek,
 * skip=printk, the marked forms' replies, timeouts that explain
 * themselves) through the real ops, readers, the history limit, and
 * model-based property tests (random data, random frame splits, random
 * op sequences and random pattern sets planted at random places:
 * everything returned, concatenated with what is left, is the input
 * exactly, and every match is the earliest end, the lower index at ties).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "match_ref.h"
#include "streams.h"

static struct reactor *r;

static void
setup(void)
{
    cr_assert_eq(reactor_new(&r), 0);
}

static void
teardown(void)
{
    /* A queued stream wake-up holds a reference: let it run. */
    reactor_run_once(r, 0);
    reactor_free(r);
}

TestSuite(stream, .init = setup, .fini = teardown, .timeout = 30);

struct result {
    bool done;
    enum reply_status st;
    char *payload;
    size_t len;
    char fields[256]; /* after the length on the status line, if any */
};

static void
on_done(struct stream *s, struct reply *rp, void *arg)
{
    struct result *res = arg;
    char *all;
    size_t n;

    cr_assert_not_null(rp);
    cr_assert_not(res->done, "op answered twice");
    res->done = true;
    res->st = reply_status(rp);
    cr_assert_eq(reply_collect(rp, &all, &n), 0);
    /* Strip and check the "<status> <length>\n" header. */
    char *nl = memchr(all, '\n', n);
    cr_assert_not_null(nl);
    unsigned long long len;
    char name[16];
    int at = 0;
    cr_assert_eq(sscanf(all, "%15s %llu%n", name, &len, &at), 2);
    cr_assert_str_eq(name, reply_status_name(res->st));
    res->fields[0] = '\0';
    if (all + at < nl) {
        cr_assert_eq(all[at], ' ', "fields follow the length after a blank");
        cr_assert_lt((size_t)(nl - all - at - 1), sizeof res->fields);
        memcpy(res->fields, all + at + 1, (size_t)(nl - all - at - 1));
        res->fields[nl - all - at - 1] = '\0';
    }
    res->len = n - (size_t)(nl + 1 - all);
    cr_assert_eq(len, res->len, "header length matches payload");
    res->payload = malloc(res->len + 1);
    memcpy(res->payload, nl + 1, res->len);
    res->payload[res->len] = '\0';
    free(all);
    reply_free(rp);
}

static void
result_clear(struct result *res)
{
    free(res->payload);
    memset(res, 0, sizeof *res);
}

/* Turn the loop until *flag or 5 s pass. */
static void
run_until(bool *flag)
{
    uint64_t deadline = clock_now() + 5 * USEC_PER_SEC;
    /* A turn runs deferred calls before it waits: turn once without
     * waiting so an answer given by a deferred call is seen at once. */
    while (!*flag && clock_now() < deadline) {
        reactor_run_once(r, 0);
        if (!*flag)
            reactor_run_once(r, deadline);
    }
    cr_assert(*flag, "timed out waiting in the test loop");
}

static struct stream *
new_stream(uint64_t limit)
{
    struct stream_config cfg = {.spool_dir = "/tmp", .history_limit = limit,
                                .noun = "stream"};
    struct stream *s;
    cr_assert_eq(stream_new(r, &cfg, &s), 0);
    return s;
}

static void
append(struct stream *s, const char *frame)
{
    cr_assert_eq(stream_append(s, frame, strlen(frame)), 0);
}

/* Submit a command line as the ctl file would, wait for its reply. */
static void
op(struct stream *s, const char *line, struct result *res)
{
    struct command cmd;
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];

    result_clear(res);
    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0, "%s", err);
    cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s", err);
    cr_assert_eq(stream_op_submit(s, &spec, on_done, res, NULL), 0);
    command_free(&cmd);
    run_until(&res->done);
}

static void
expect_reply(struct stream *s, const char *line, enum reply_status st,
             const char *payload)
{
    struct result res = {0};
    op(s, line, &res);
    cr_expect_eq(res.st, st, "%s: status %s, want %s (payload `%s`)", line,
                 reply_status_name(res.st), reply_status_name(st),
                 res.payload);
    cr_expect_eq(res.len, strlen(payload), "%s: length", line);
    cr_expect_str_eq(res.payload, payload, "%s", line);
    result_clear(&res);
}

Test(stream, next_returns_frames_in_order_then_eof)
{
    struct stream *s = new_stream(0);
    append(s, "one");
    append(s, "two");
    expect_reply(s, "next", REPLY_OK, "one");
    expect_reply(s, "next 0", REPLY_OK, "two");
    expect_reply(s, "next 0", REPLY_TIMEOUT, "next timed out after 0s");
    expect_reply(s, "eof", REPLY_OK, "false");
    stream_end(s, 0, NULL);
    expect_reply(s, "next", REPLY_EOF, "stream EOF");
    expect_reply(s, "eof", REPLY_OK, "true");
    stream_unref(s);
}

Test(stream, read_until_across_frames_leaves_pending)
{
    struct stream *s = new_stream(0);
    append(s, "hel");
    append(s, "lo wor");
    append(s, "ld\nmore");
    append(s, "tail");
    expect_reply(s, "read_until world", REPLY_OK, "hello world");
    cr_expect_eq(stream_pending(s), 5);
    expect_reply(s, "eof", REPLY_OK, "false");
    stream_end(s, 0, NULL);
    expect_reply(s, "eof", REPLY_OK, "false"); /* pending and unread */
    expect_reply(s, "next", REPLY_OK, "\nmore");
    cr_expect_eq(stream_pending(s), 0);
    expect_reply(s, "next", REPLY_OK, "tail");
    expect_reply(s, "eof", REPLY_OK, "true");
    stream_unref(s);
}

Test(stream, expect_discards_prefix_keeps_rest)
{
    struct stream *s = new_stream(0);
    append(s, "boot... ready!rest");
    expect_reply(s, "expect ready", REPLY_OK, "");
    expect_reply(s, "next", REPLY_OK, "!rest");
    stream_unref(s);
}

Test(stream, drain_returns_pending_first_as_records)
{
    struct stream *s = new_stream(0);
    append(s, "abcMATCHdef");
    append(s, "gh");
    append(s, "ij");
    expect_reply(s, "expect MATCH", REPLY_OK, "");
    expect_reply(s, "drain 10ms", REPLY_OK, "3\ndef2\ngh2\nij");
    expect_reply(s, "drain 0", REPLY_OK, "");
    stream_end(s, 0, NULL);
    expect_reply(s, "drain", REPLY_OK, ""); /* at EOF: at once, empty */
    stream_unref(s);
}

Test(stream, drain_waits_for_its_whole_deadline_on_a_live_stream)
{
    struct stream *s = new_stream(0);
    uint64_t t0 = clock_now();
    expect_reply(s, "drain 200ms", REPLY_OK, "");
    cr_expect_geq(clock_now() - t0, 200 * USEC_PER_MSEC);
    stream_unref(s);
}

Test(stream, drain_stops_at_end_of_stream)
{
    struct stream *s = new_stream(0);
    append(s, "x");
    stream_end(s, 0, NULL);
    uint64_t t0 = clock_now();
    expect_reply(s, "drain 10s", REPLY_OK, "1\nx");
    cr_expect_lt(clock_now() - t0, USEC_PER_SEC);
    stream_unref(s);
}

Test(stream, close_drops_pending_and_later_ops_report_closed)
{
    struct stream *s = new_stream(0);
    append(s, "a:b");
    expect_reply(s, "read_until :", REPLY_OK, "a:");
    cr_expect_eq(stream_pending(s), 1);
    expect_reply(s, "close", REPLY_OK, "");
    cr_expect_eq(stream_state(s), STREAM_CLOSED);
    cr_expect_eq(stream_pending(s), 0);
    expect_reply(s, "next", REPLY_CLOSED, "stream closed");
    expect_reply(s, "read_until x", REPLY_CLOSED, "stream closed");
    expect_reply(s, "expect x", REPLY_CLOSED, "stream closed");
    expect_reply(s, "drain", REPLY_CLOSED, "stream closed");
    expect_reply(s, "eof", REPLY_OK, "true");
    expect_reply(s, "close", REPLY_OK, "");
    cr_expect_eq(stream_append(s, "z", 1), -EPIPE);
    stream_unref(s);
}

Test(stream, read_until_timeout_message_names_pattern_timeout_and_bytes)
{
    struct stream *s = new_stream(0);
    append(s, "no luck\n");
    expect_reply(s, "read_until \"x\\ty\" 50ms", REPLY_TIMEOUT,
                 "read_until timed out waiting for `x\\ty`; timeout 50ms; "
                 "last bytes seen: `no luck\\n`; 8 bytes scanned");
    /* Nothing was consumed by the timed-out op. */
    expect_reply(s, "next", REPLY_OK, "no luck\n");
    expect_reply(s, "expect zz 0", REPLY_TIMEOUT,
                 "expect timed out waiting for `zz`; timeout 0s; "
                 "no bytes seen");
    stream_unref(s);
}

static void
late_frame(struct reactor *rr, void *arg)
{
    append(arg, "...ready\n");
}

Test(stream, waiting_read_until_is_answered_by_data)
{
    struct stream *s = new_stream(0);
    struct reactor_timer t = {0};
    reactor_timer_start(r, &t, clock_now() + 50 * USEC_PER_MSEC, late_frame,
                        s);
    uint64_t t0 = clock_now();
    expect_reply(s, "read_until ready 5s", REPLY_OK, "...ready");
    cr_expect_lt(clock_now() - t0, 2 * USEC_PER_SEC);
    expect_reply(s, "next", REPLY_OK, "\n");
    stream_unref(s);
}

static void
late_close(struct reactor *rr, void *arg)
{
    stream_close(arg);
}

Test(stream, close_answers_a_waiting_op_once)
{
    struct stream *s = new_stream(0);
    struct reactor_timer t = {0};
    reactor_timer_start(r, &t, clock_now() + 50 * USEC_PER_MSEC, late_close,
                        s);
    expect_reply(s, "read_until never 5s", REPLY_CLOSED, "stream closed");
    stream_unref(s);
}

static void
late_end(struct reactor *rr, void *arg)
{
    stream_end(arg, 0, NULL);
}

Test(stream, end_answers_a_waiting_next_with_eof)
{
    struct stream *s = new_stream(0);
    struct reactor_timer t = {0};
    reactor_timer_start(r, &t, clock_now() + 50 * USEC_PER_MSEC, late_end, s);
    expect_reply(s, "next 5s", REPLY_EOF, "stream EOF");
    expect_reply(s, "read_until x", REPLY_EOF, "stream EOF");
    stream_unref(s);
}

Test(stream, empty_pattern_matches_at_once_consuming_nothing)
{
    struct stream *s = new_stream(0);
    append(s, "abc");
    expect_reply(s, "read_until \"\"", REPLY_OK, "");
    expect_reply(s, "next", REPLY_OK, "abc");
    stream_unref(s);
}

/* Issue 10: with nothing in the history yet, `read_until ""` waited for
 * its whole timeout instead of matching at once as documented. */
Test(stream, empty_pattern_matches_at_once_on_an_empty_stream)
{
    struct stream *s = new_stream(0);
    uint64_t t0 = clock_now();

    expect_reply(s, "read_until \"\" 3s", REPLY_OK, "");
    expect_reply(s, "expect \"\" 3s", REPLY_OK, "");
    cr_expect_lt(clock_now() - t0, USEC_PER_SEC, "answered at once");
    append(s, "abc");
    expect_reply(s, "next", REPLY_OK, "abc");
    stream_unref(s);
}

Test(stream, binary_patterns_and_payloads)
{
    struct stream *s = new_stream(0);
    cr_assert_eq(stream_append(s, "a\0b\xff", 4), 0);
    cr_assert_eq(stream_append(s, "\0c", 2), 0);
    struct result res = {0};
    op(s, "read_until \"\\xff\\0\"", &res);
    cr_assert_eq(res.st, REPLY_OK);
    cr_assert_eq(res.len, 5);
    cr_assert_eq(memcmp(res.payload, "a\0b\xff\0", 5), 0);
    result_clear(&res);
    expect_reply(s, "next", REPLY_OK, "c");
    stream_unref(s);
}

Test(stream, ops_run_one_at_a_time_in_order)
{
    struct stream *s = new_stream(0);
    struct result a = {0}, b = {0}, c = {0};
    struct command cmd;
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];
    struct result *res[] = {&a, &b, &c};
    const char *lines[] = {"read_until X 5s", "next 5s", "eof"};

    for (int i = 0; i < 3; i++) {
        cr_assert_eq(command_parse(&cmd, lines[i], strlen(lines[i]), err), 0);
        cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0);
        cr_assert_eq(stream_op_submit(s, &spec, on_done, res[i], NULL), 0);
        command_free(&cmd);
    }
    reactor_run_once(r, 0);
    cr_expect_not(a.done || b.done || c.done);
    append(s, "1X2");
    run_until(&c.done);
    cr_expect_str_eq(a.payload, "1X");
    cr_expect_str_eq(b.payload, "2");
    cr_expect_str_eq(c.payload, "false");
    result_clear(&a);
    result_clear(&b);
    result_clear(&c);
    stream_unref(s);
}

Test(stream, cancelled_op_is_never_answered_and_next_one_runs)
{
    struct stream *s = new_stream(0);
    struct result a = {0}, b = {0};
    struct stream_op_spec spec = {.kind = STREAM_OP_NEXT,
                                  .timeout = 5 * USEC_PER_SEC};
    struct stream_op *opa;

    cr_assert_eq(stream_op_submit(s, &spec, on_done, &a, &opa), 0);
    cr_assert_eq(stream_op_submit(s, &spec, on_done, &b, NULL), 0);
    reactor_run_once(r, 0);
    stream_op_cancel(opa);
    append(s, "f");
    run_until(&b.done);
    cr_expect_not(a.done);
    cr_expect_str_eq(b.payload, "f");
    result_clear(&b);
    stream_unref(s);
}

Test(stream, history_limit_ends_the_stream_with_an_error)
{
    struct stream *s = new_stream(10);
    struct stream_reader *rd;
    char buf[64];

    cr_assert_eq(stream_reader_new(s, &rd), 0);
    append(s, "12345678");
    cr_expect_eq(stream_append(s, "abc", 3), -EFBIG);
    cr_expect_eq(stream_state(s), STREAM_ENDED);
    cr_expect_eq(stream_append(s, "a", 1), -EPIPE);
    expect_reply(s, "next", REPLY_OK, "12345678");
    struct result res = {0};
    op(s, "next", &res);
    cr_expect_eq(res.st, REPLY_ERROR);
    cr_expect(strncmp(res.payload, "stream EOF; history limit of 10 bytes",
                      37) == 0,
              "%s", res.payload);
    result_clear(&res);
    /* A reader gets every byte, then the error once, then EOF. */
    cr_expect_eq(stream_reader_read(rd, buf, sizeof buf), 8);
    cr_expect_eq(stream_reader_read(rd, buf, sizeof buf), -EFBIG);
    cr_expect_eq(stream_reader_read(rd, buf, sizeof buf), 0);
    stream_reader_free(rd);
    stream_unref(s);
}

static void
reader_woken(struct reactor *rr, void *arg)
{
    *(bool *)arg = true;
}

Test(stream, readers_are_independent_and_start_at_zero)
{
    struct stream *s = new_stream(0);
    struct stream_reader *a, *b;
    char buf[64];
    bool woke = false;

    append(s, "abc");
    cr_assert_eq(stream_reader_new(s, &a), 0);
    expect_reply(s, "next", REPLY_OK, "abc"); /* the test consumes... */
    cr_assert_eq(stream_reader_new(s, &b), 0); /* ...readers still see it */
    cr_expect_eq(stream_readers(s), 2);
    cr_expect_eq(stream_reader_read(a, buf, 2), 2);
    cr_expect_eq(memcmp(buf, "ab", 2), 0);
    cr_expect_eq(stream_reader_read(b, buf, sizeof buf), 3);
    cr_expect_eq(stream_reader_read(b, buf, sizeof buf), -EAGAIN);
    cr_expect_not(stream_reader_ready(b));
    stream_reader_notify(b, reader_woken, &woke);
    append(s, "de");
    append(s, "f");
    run_until(&woke);
    /* Frames coalesce for readers. */
    cr_expect_eq(stream_reader_read(b, buf, sizeof buf), 3);
    cr_expect_eq(memcmp(buf, "def", 3), 0);
    cr_expect_eq(stream_reader_read(a, buf, sizeof buf), 4);
    cr_expect_eq(memcmp(buf, "cdef", 4), 0);
    woke = false;
    stream_reader_notify(a, reader_woken, &woke);
    stream_close(s);
    run_until(&woke);
    cr_expect_eq(stream_reader_read(a, buf, sizeof buf), 0);
    stream_reader_free(a);
    stream_reader_free(b);
    cr_expect_eq(stream_readers(s), 0);
    stream_unref(s);
}

Test(stream, op_parse_rejects_bad_commands_with_reasons)
{
    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"jump", "unknown stream command `jump`"},
        {"read_until", "read_until: missing pattern"},
        {"next 1 2", "next: too many arguments"},
        {"eof 1", "eof: too many arguments"},
        {"next -1", "duration: must be a finite, non-negative number (got -1)"},
        {"drain soon", "duration: cannot parse `soon`"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct command cmd;
        struct stream_op_spec spec;
        char err[COMMAND_ERR_LEN];
        cr_assert_eq(command_parse(&cmd, bad[i].line, strlen(bad[i].line),
                                   err),
                     0);
        cr_expect_eq(stream_op_parse(&cmd, &spec, err), -EINVAL, "%s",
                     bad[i].line);
        cr_expect(strncmp(err, bad[i].msg, strlen(bad[i].msg)) == 0,
                  "%s: got `%s`", bad[i].line, err);
        command_free(&cmd);
    }
}

Test(stream, op_parse_defaults)
{
    static const struct {
        const char *line;
        enum stream_op_kind kind;
        uint64_t timeout;
    } good[] = {
        {"next", STREAM_OP_NEXT, 10 * USEC_PER_SEC},
        {"read_until x", STREAM_OP_READ_UNTIL, 10 * USEC_PER_SEC},
        {"expect x", STREAM_OP_EXPECT, 10 * USEC_PER_SEC},
        {"drain", STREAM_OP_DRAIN, 500 * USEC_PER_MSEC},
        {"drain 2s\n", STREAM_OP_DRAIN, 2 * USEC_PER_SEC},
        {"expect x 1.5", STREAM_OP_EXPECT, 1500 * USEC_PER_MSEC},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct command cmd;
        struct stream_op_spec spec;
        char err[COMMAND_ERR_LEN];
        cr_assert_eq(command_parse(&cmd, good[i].line, strlen(good[i].line),
                                   err),
                     0);
        cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s", err);
        cr_expect_eq(spec.kind, good[i].kind);
        cr_expect_eq(spec.timeout, good[i].timeout, "%s", good[i].line);
        command_free(&cmd);
    }
}

/* ---- matching: regexes, alternatives, peek, skip=printk ----------- */

#define REC "[    3.141592] random: crng init done\r\n"

static void
expect_match(struct stream *s, const char *line, const char *payload,
             size_t plen, const char *fields)
{
    struct result res = {0};
    op(s, line, &res);
    cr_assert_eq(res.st, REPLY_OK, "%s: status %s (payload `%s`)", line,
                 reply_status_name(res.st), res.payload);
    cr_assert_eq(res.len, plen, "%s: length %zu, want %zu", line, res.len,
                 plen);
    cr_assert_eq(memcmp(res.payload, payload, plen), 0, "%s: payload `%s`",
                 line, res.payload);
    cr_assert_str_eq(res.fields, fields, "%s: fields", line);
    result_clear(&res);
}
#define EXPECT_MATCH(s, line, payload, fields)                                 \
    expect_match(s, line, payload, strlen(payload), fields)

Test(stream, marked_forms_name_the_alternative_the_span_and_groups)
{
    struct stream *s = new_stream(0);
    append(s, "boot READY 42 ok\nrest");
    /* read_until: the bytes up to the match end; alternative 1, the span
     * 5..16 of them, group 1 at 11..13. */
    EXPECT_MATCH(s, "read_until -re \"READY ([0-9]+) (x)?ok\" 0",
                 "boot READY 42 ok", "1 5 16 11 13 - -");
    expect_reply(s, "next", REPLY_OK, "\nrest");
    /* expect: the payload is the match; offsets count what it consumed. */
    append(s, "abc 123 def");
    EXPECT_MATCH(s, "expect -ex zzz -re \"[0-9]+ \" 0", "123 ", "2 4 8");
    expect_reply(s, "next", REPLY_OK, "def");
    /* A plain form replies as it always did, skip= or not. */
    append(s, "plain text");
    expect_reply(s, "read_until text 0 skip=printk", REPLY_OK, "plain text");
    stream_unref(s);
}

Test(stream, earliest_end_wins_then_the_lower_index)
{
    struct stream *s = new_stream(0);
    append(s, "say hello, world");
    /* `lo` and `hello` end at the same byte: the first listed wins. */
    EXPECT_MATCH(s, "peek -ex lo -ex hello 0", "say hello", "1 7 9");
    EXPECT_MATCH(s, "peek -ex hello -ex lo 0", "say hello", "1 4 9");
    EXPECT_MATCH(s, "peek -re \"h[a-z]+o\" -ex lo 0", "say hello", "1 4 9");
    EXPECT_MATCH(s, "peek -ex lo -re \"h[a-z]+o\" 0", "say hello", "1 7 9");
    /* The earliest end, whatever the index. */
    EXPECT_MATCH(s, "peek -ex world -ex \"o,\" 0", "say hello,", "2 8 10");
    stream_unref(s);
}

Test(stream, peek_consumes_nothing_then_expect_returns_the_same_bytes)
{
    struct stream *s = new_stream(0);
    append(s, "a");
    append(s, "b READY");
    append(s, " 7 ok tail");
    EXPECT_MATCH(s, "peek -re \"READY [0-9]+ ok\" 0", "ab READY 7 ok",
                 "1 3 13");
    cr_expect_eq(stream_consumed(s), 0);
    cr_expect_eq(stream_pending(s), 0);
    expect_reply(s, "peek READY 0", REPLY_OK, "ab READY");
    EXPECT_MATCH(s, "read_until -re \"READY [0-9]+ ok\" 0", "ab READY 7 ok",
                 "1 3 13");
    cr_expect_eq(stream_consumed(s), 13);
    expect_reply(s, "next", REPLY_OK, " tail");
    /* peek of what is not there yet waits, and times out as expect. */
    expect_reply(s, "peek nope 20ms", REPLY_TIMEOUT,
                 "peek timed out waiting for `nope`; timeout 20ms; no bytes "
                 "seen");
    stream_unref(s);
}

/* The same op, submitted before the frames (fed as they are appended)
 * or after them (read back from the spool). */
static void
run_split(const char *line, const char *data, size_t len, size_t k, bool live,
          struct result *res)
{
    struct stream *s = new_stream(0);
    struct command cmd;
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];

    result_clear(res);
    if (!live) {
        if (k)
            cr_assert_eq(stream_append(s, data, k), 0);
        if (len > k)
            cr_assert_eq(stream_append(s, data + k, len - k), 0);
    }
    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0, "%s", err);
    cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s", err);
    cr_assert_eq(stream_op_submit(s, &spec, on_done, res, NULL), 0);
    command_free(&cmd);
    if (live) {
        /* Let the op start (and its patterns compile), then feed it. */
        while (pattern_jobs())
            reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC);
        reactor_run_once(r, 0);
        cr_assert_not(res->done);
        if (k)
            cr_assert_eq(stream_append(s, data, k), 0);
        reactor_run_once(r, 0);
        if (len > k)
            cr_assert_eq(stream_append(s, data + k, len - k), 0);
    }
    run_until(&res->done);
    size_t consumed = (size_t)stream_consumed(s);
    if (res->st == REPLY_OK && spec.kind == STREAM_OP_READ_UNTIL) {
        cr_assert_eq(res->len, consumed);
        cr_assert_eq(memcmp(res->payload, data, consumed), 0);
    }
    /* Whatever was not consumed is still there, frame by frame. */
    stream_end(s, 0, NULL);
    struct result rest = {0};
    size_t got = 0;
    for (;;) {
        op(s, "next 0", &rest);
        if (rest.st != REPLY_OK)
            break;
        cr_assert_eq(memcmp(rest.payload, data + consumed + got, rest.len), 0);
        got += rest.len;
    }
    cr_assert_eq(consumed + got, len, "consumed + left = the input");
    result_clear(&rest);
    stream_unref(s);
}

Test(stream, regex_straddling_every_frame_split_of_a_4k_window, .timeout = 240)
{
    static char win[4096];
    const char *hit = "READY 12345 ok";
    size_t at = 2000, hl = strlen(hit);
    char want[64];

    srand(5);
    for (size_t i = 0; i < sizeof win; i++)
        win[i] = (char)("abcdefgh READY\n"[rand() % 15]);
    memcpy(win + at, hit, hl);
    snprintf(want, sizeof want, "1 %zu %zu", at, at + hl);
    for (size_t k = 0; k <= sizeof win; k++) {
        struct result res = {0};
        run_split("read_until -re \"READY [0-9]+ ok\" 1h", win, sizeof win, k,
                  k % 2, &res);
        cr_assert_eq(res.st, REPLY_OK, "split at %zu", k);
        cr_assert_eq(res.len, at + hl, "split at %zu: %zu bytes", k, res.len);
        cr_assert_eq(memcmp(res.payload, win, res.len), 0);
        cr_assert_str_eq(res.fields, want, "split at %zu", k);
        result_clear(&res);
    }
}

Test(stream, skip_printk_through_the_ops_at_every_position_and_split,
     .timeout = 120)
{
    const char *want = "login:", *pre = "Debian GNU/Linux 12 vm ttyS0\r\n\r\n";
    size_t pl = strlen(pre), wl = strlen(want), rl = strlen(REC);

    for (size_t i = 0; i <= wl; i++) {
        char d[256], fields[64];
        size_t len = (size_t)snprintf(d, sizeof d, "%s%.*s%s%s tail", pre,
                                      (int)i, want, REC, want + i);
        /* The record inside the prompt is consumed with it; after it, it
         * stays. */
        size_t end = i < wl ? pl + rl + wl : pl + wl;
        snprintf(fields, sizeof fields, "1 %zu %zu", i == 0 ? pl + rl : pl,
                 end);
        for (size_t k = 0; k <= len; k++) {
            struct result res = {0};
            run_split("read_until login: 1h skip=printk", d, len, k, k % 2,
                      &res);
            cr_assert_eq(res.st, REPLY_OK, "record at %zu, split %zu", i, k);
            cr_assert_eq(res.len, end, "record at %zu, split %zu: %zu bytes", i,
                         k, res.len);
            cr_assert_str_eq(res.fields, "");
            run_split("expect -re \"log[a-z]+:\" 1h skip=printk", d, len, k,
                      !(k % 2), &res);
            cr_assert_eq(res.st, REPLY_OK, "regex: record at %zu, split %zu", i,
                         k);
            cr_assert_str_eq(res.fields, fields, "record at %zu, split %zu", i,
                             k);
            result_clear(&res);
        }
    }
}

Test(stream, skip_printk_never_matches_across_a_real_newline)
{
    const char *cases[] = {"log\r\nin:", "log\n" REC "in:", "log" REC "\nin:",
                           "log\r\n" REC "in:"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct stream *s = new_stream(0);
        struct result res = {0};
        append(s, cases[c]);
        op(s, "expect login: 0 skip=printk", &res);
        cr_assert_eq(res.st, REPLY_TIMEOUT, "case %zu", c);
        result_clear(&res);
        stream_unref(s);
    }
}

Test(stream, captures_see_the_bytes_the_patterns_saw)
{
    struct stream *s = new_stream(0);
    /* A record spliced into the number: group 1 covers the raw bytes
     * 6..(6+2+rl+2), the record inside it. */
    char d[256];
    size_t rl = strlen(REC);
    size_t len = (size_t)snprintf(d, sizeof d, "READY 12%s34 ok!", REC);
    char fields[64];
    cr_assert_eq(stream_append(s, d, len), 0);
    snprintf(fields, sizeof fields, "1 0 %zu 6 %zu", len - 1, 6 + 4 + rl);
    expect_match(s, "read_until -re \"READY ([0-9]+) ok\" 0 skip=printk", d,
                 len - 1, fields);
    stream_unref(s);
}

Test(stream, timeouts_explain_themselves_through_the_ops)
{
    struct stream *s = new_stream(0);
    append(s, "Debian GNU/Linux 12\r\nlogi" REC);
    /* Provium's words first, then the near miss. */
    expect_reply(s, "read_until login: 20ms", REPLY_TIMEOUT,
                 "read_until timed out waiting for `login:`; timeout 20ms; "
                 "last bytes seen: `Debian GNU/Linux 12\\r\\nlogi[    "
                 "3.141592] random: crng init done\\r\\n`; 64 bytes "
                 "scanned; closest: `logi` then `[    3.141592] random: "
                 "crng init done\\r\\n`");
    expect_reply(s, "expect -ex login: -re/i \"password: *$\" 0 skip=printk",
                 REPLY_TIMEOUT,
                 "expect timed out waiting for one of `login:`, regex "
                 "`password: *$` (flags i); timeout 0s; last bytes seen: "
                 "`Debian GNU/Linux 12\\r\\nlogi[    3.141592] random: crng "
                 "init done\\r\\n`; 64 bytes scanned; kernel log records "
                 "skipped: 1; closest: `logi` of `login:` at the end");
    /* Nothing was consumed. */
    cr_expect_eq(stream_consumed(s), 0);
    stream_unref(s);
}

Test(stream, op_parse_keeps_todays_forms_and_reads_the_new_ones)
{
    static const struct {
        const char *line;
        unsigned npats; /* 0: a plain literal */
        const char *first;
        unsigned flags;
        uint64_t timeout;
        unsigned scan_opts;
    } good[] = {
            /* Today's shapes, whatever the word looks like. */
            {"expect -re", 0, "-re", 0, 10 * USEC_PER_SEC, 0},
            {"expect -re 5", 0, "-re", 0, 5 * USEC_PER_SEC, 0},
            {"read_until -ex 2s", 0, "-ex", 0, 2 * USEC_PER_SEC, 0},
            {"expect skip=printk", 0, "skip=printk", 0, 10 * USEC_PER_SEC, 0},
            {"expect skip=printk 1", 0, "skip=printk", 0, USEC_PER_SEC, 0},
            /* New shapes. */
            {"expect -re 5 10s", 1, "5", 0, 10 * USEC_PER_SEC, 0},
            {"expect -re/is x", 1, "x", PATTERN_CASELESS | PATTERN_DOTALL,
             10 * USEC_PER_SEC, 0},
            {"expect login: skip=printk", 0, "login:", 0, 10 * USEC_PER_SEC,
             SCAN_SKIP_PRINTK},
            {"peek login: 3s skip=printk", 0, "login:", 0, 3 * USEC_PER_SEC,
             SCAN_SKIP_PRINTK},
            {"read_until -ex a -re b -ex -re skip=printk", 3, "a", 0,
             10 * USEC_PER_SEC, SCAN_SKIP_PRINTK},
            {"expect -ex a 1s skip=printk skip=none", 1, "a", 0, USEC_PER_SEC,
             0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct command cmd;
        struct stream_op_spec spec;
        char err[COMMAND_ERR_LEN];
        cr_assert_eq(
                command_parse(&cmd, good[i].line, strlen(good[i].line), err),
                0);
        cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s: %s",
                     good[i].line, err);
        cr_expect_eq(spec.npats, good[i].npats, "%s", good[i].line);
        cr_expect_eq(spec.marked, good[i].npats > 0, "%s", good[i].line);
        const void *p = spec.npats ? spec.pats[0].src : spec.pattern;
        size_t len = spec.npats ? spec.pats[0].len : spec.pattern_len;
        cr_expect(len == strlen(good[i].first) &&
                          memcmp(p, good[i].first, len) == 0,
                  "%s: first pattern", good[i].line);
        if (spec.npats)
            cr_expect_eq(spec.pats[0].flags, good[i].flags, "%s", good[i].line);
        cr_expect_eq(spec.timeout, good[i].timeout, "%s", good[i].line);
        cr_expect_eq(spec.scan_opts, good[i].scan_opts, "%s", good[i].line);
        command_free(&cmd);
    }
}

Test(stream, op_parse_refuses_bad_patterns_by_name)
{
    static const struct {
        const char *line, *msg;
    } bad[] = {
            {"expect -re \"ab(c\"",
             "expect: regex `ab(c`: missing closing parenthesis at offset 4"},
            {"peek -re \"(a)\\\\1\" 1s",
             "peek: regex `(a)\\\\1`: back-reference at offset 3 cannot be "
             "matched in a stream"},
            {"expect -ex x -re \"(?<=a)b\"",
             "expect: pattern 2: regex `(?<=a)b`: lookbehind assertion at "
             "offset 0 cannot be matched in a stream"},
            {"expect -re a*", "expect: regex `a*`: can match the empty string"},
            {"expect -re/q x",
             "expect: unknown regex flag `q` (expected i, m, s "
             "or x)"},
            {"expect -ex/i x", "expect: `-ex` takes no flags"},
            {"expect -re/ x", "expect: `-re/` without flags"},
            {"read_until -re x -re",
             "read_until: `-re` without a pattern after "
             "it (usage: read_until P [T]"},
            {"expect x skip=all", "expect: skip=all: expected printk or none"},
            {"expect x 1s bogus=1",
             "expect: unknown option `bogus=1` (expected skip=) (usage:"},
            {"expect -ex a 1s -ex b",
             "expect: `-ex` after the timeout (patterns come first)"},
            {"expect x 1s 2",
             "expect: too many arguments (usage: expect P [T]"},
            {"expect x soon skip=printk", "duration: cannot parse `soon`"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct command cmd;
        struct stream_op_spec spec;
        char err[COMMAND_ERR_LEN];
        cr_assert_eq(command_parse(&cmd, bad[i].line, strlen(bad[i].line), err),
                     0, "%s", err);
        cr_expect_eq(stream_op_parse(&cmd, &spec, err), -EINVAL, "%s",
                     bad[i].line);
        cr_expect(strncmp(err, bad[i].msg, strlen(bad[i].msg)) == 0,
                  "%s: got `%s`", bad[i].line, err);
        command_free(&cmd);
    }
}

Test(stream, at_most_256_patterns)
{
    static char line[8192];
    size_t n = (size_t)snprintf(line, sizeof line, "expect");
    struct command cmd;
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];

    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, " -ex p%d", i);
    cr_assert_eq(command_parse(&cmd, line, n, err), 0, "%s", err);
    cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s", err);
    cr_assert_eq(spec.npats, 256);
    command_free(&cmd);
    n += (size_t)snprintf(line + n, sizeof line - n, " -re x 1s");
    cr_assert_eq(command_parse(&cmd, line, n, err), 0, "%s", err);
    cr_assert_eq(stream_op_parse(&cmd, &spec, err), -EINVAL);
    cr_assert_str_eq(err, "expect: too many patterns (257, at most 256)");
    command_free(&cmd);
}

/* Hyperscan's checks of a set stop after PATTERN_CHECK_BUDGET on the
 * reactor thread (nested bounded repeats take a fifth of a second each
 * to check): the write is answered at once, and what the rest of the
 * checks find is the op's `error` reply, with the same message. */
Test(stream, slow_checks_finish_off_the_reactor_thread, .timeout = 60)
{
    static char line[4096];
    size_t n = (size_t)snprintf(line, sizeof line, "expect");
    struct stream *s = new_stream(0);
    struct command cmd;
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];
    struct result res = {0};

    for (int i = 0; i < 10; i++)
        n += (size_t)snprintf(line + n, sizeof line - n,
                              " -re \"((a{1,100}){1,100}){1,%d}\"", 10 + i);
    /* The checks take about 2 s in a release build and over 5 s under
     * ASan+UBSan: the timeout only bounds the test. */
    snprintf(line + n, sizeof line - n, " -re \"x\\\\Ky\" 30s");
    uint64_t t0 = clock_now();
    cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0, "%s", err);
    cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s", err);
    cr_assert_eq(stream_op_submit(s, &spec, on_done, &res, NULL), 0);
    command_free(&cmd);
    uint64_t took = clock_now() - t0;
    cr_assert_lt(took, 700 * USEC_PER_MSEC, "parse and submit took %llu us",
                 (unsigned long long)took);
    run_until(&res.done);
    cr_assert_eq(res.st, REPLY_ERROR);
    cr_assert_str_eq(res.payload,
                     "expect: pattern 11: regex `x\\\\Ky`: cannot be matched "
                     "in a stream (Hyperscan: \\K at index 1 not "
                     "supported.)");
    result_clear(&res);
    stream_unref(s);
}

/* A slow compile runs off the reactor thread: other streams go on, the
 * op's deadline holds, and the work reaches the cache for the next try. */
Test(stream, compiles_off_the_reactor_thread, .timeout = 60)
{
    struct stream *s = new_stream(0), *other = new_stream(0);
    const char *slow = "read_until -re \"x[^y]{1,3000}y\" 1ms";
    struct pattern_cache_stats st0, st1;
    struct result res = {0};
    uint64_t t0 = clock_now();

    append(s, "abc xzy");
    op(s, slow, &res);
    uint64_t took = clock_now() - t0;
    /* The compile (about 0.5 s here, tens of ms on the fastest machines)
     * outlasted the op's 1 ms, and the deadline held. */
    cr_assert_eq(res.st, REPLY_TIMEOUT, "%s", res.payload);
    cr_assert_str_eq(res.payload,
                     "read_until timed out waiting for regex `x[^y]{1,3000}y`; "
                     "timeout 1ms; the patterns were still being compiled "
                     "(Hyperscan); no bytes scanned");
    cr_assert_lt(took, 100 * USEC_PER_MSEC, "the deadline held: %llu us",
                 (unsigned long long)took);
    cr_assert_eq(pattern_jobs(), 1, "still compiling");
    /* Meanwhile the reactor serves everyone else at once. */
    append(other, "ping");
    t0 = clock_now();
    expect_reply(other, "next", REPLY_OK, "ping");
    cr_assert_lt(clock_now() - t0, 50 * USEC_PER_MSEC);
    while (pattern_jobs())
        reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC);
    result_clear(&res);
    pattern_cache_stats(&st0);
    op(s, "read_until -re \"x[^y]{1,3000}y\" 5s", &res);
    cr_assert_eq(res.st, REPLY_OK, "%s", res.payload);
    cr_assert_str_eq(res.payload, "abc xzy");
    pattern_cache_stats(&st1);
    cr_assert_eq(st1.compiles, st0.compiles, "compiled once");
    result_clear(&res);
    stream_unref(s);
    stream_unref(other);
}

/* ---- property test ----------------------------------------------- */

/* Parse drain records, appending each to out; check record boundaries
 * against the model's frame boundaries. */
static size_t
check_drain(const struct result *res, const char *input, size_t pos,
            const size_t *bounds, size_t nbounds, char *out, size_t outlen)
{
    size_t i = 0, got = 0;
    while (i < res->len) {
        char *nl = memchr(res->payload + i, '\n', res->len - i);
        cr_assert_not_null(nl);
        size_t n = strtoul(res->payload + i, NULL, 10);
        i = (size_t)(nl - res->payload) + 1;
        cr_assert_leq(i + n, res->len);
        cr_assert_gt(n, 0, "drain record is never empty");
        /* Each record ends on a frame boundary. */
        size_t end = pos + got + n;
        bool on_bound = false;
        for (size_t b = 0; b < nbounds; b++)
            on_bound |= bounds[b] == end;
        cr_assert(on_bound, "record ends at %zu, not a frame end", end);
        cr_assert_eq(memcmp(res->payload + i, input + pos + got, n), 0);
        memcpy(out + outlen + got, res->payload + i, n);
        got += n;
        i += n;
    }
    return got;
}

Test(stream, property_everything_returned_is_the_input_exactly,
     .timeout = 120)
{
    srand(12345);
    for (int round = 0; round < 40; round++) {
        size_t total = 1 + (size_t)rand() % 20000;
        char *input = malloc(total), *out = malloc(total + 1);
        size_t bounds[20001], nb = 0, delivered = 0, pos = 0, outlen = 0;
        struct stream *s = new_stream(0);
        struct result res = {0};

        /* A small alphabet makes partial matches (KMP edges) common. */
        for (size_t i = 0; i < total; i++)
            input[i] = "abcd\n\0"[rand() % 6];
        while (pos < total) {
            /* Deliver 0..3 frames of random sizes. */
            for (int f = rand() % 4; f > 0 && delivered < total; f--) {
                size_t n = 1 + (size_t)rand() % 600;
                if (n > total - delivered)
                    n = total - delivered;
                cr_assert_eq(stream_append(s, input + delivered, n), 0);
                delivered += n;
                bounds[nb++] = delivered;
            }
            if (delivered == total && stream_state(s) == STREAM_LIVE &&
                rand() % 2)
                stream_end(s, 0, NULL);

            /* The frame end the model expects from pos. */
            size_t fend = 0;
            for (size_t b = 0; b < nb; b++)
                if (bounds[b] > pos) {
                    fend = bounds[b];
                    break;
                }
            int which = rand() % 4;
            char line[128];
            if (which == 0) {
                op(s, "next 0", &res);
                if (pos < delivered) {
                    cr_assert_eq(res.st, REPLY_OK);
                    cr_assert_eq(res.len, fend - pos, "next = rest of frame");
                    cr_assert_eq(memcmp(res.payload, input + pos, res.len),
                                 0);
                    memcpy(out + outlen, res.payload, res.len);
                    outlen += res.len;
                    pos += res.len;
                } else {
                    cr_assert(res.st == REPLY_TIMEOUT || res.st == REPLY_EOF);
                }
            } else if (which == 1 || which == 2) {
                /* A pattern taken from the input ahead, maybe not yet
                 * delivered; quoted with \xHH so any byte works. */
                size_t plen = 1 + (size_t)rand() % 12;
                size_t at = pos + (size_t)rand() % (total - pos);
                if (plen > total - at)
                    plen = total - at;
                char *l = line;
                l += sprintf(l, "%s \"", which == 1 ? "read_until" : "expect");
                for (size_t i = 0; i < plen; i++)
                    l += sprintf(l, "\\x%02x", (unsigned char)input[at + i]);
                sprintf(l, "\" 0");
                op(s, line, &res);
                /* The model: memmem over what was delivered. */
                char *hit = memmem(input + pos, delivered - pos, input + at,
                                   plen);
                if (hit) {
                    size_t mend = (size_t)(hit - input) + plen;
                    cr_assert_eq(res.st, REPLY_OK, "%s", res.payload);
                    if (which == 1) {
                        cr_assert_eq(res.len, mend - pos);
                        cr_assert_eq(
                            memcmp(res.payload, input + pos, res.len), 0);
                    } else {
                        cr_assert_eq(res.len, 0);
                    }
                    /* expect's prefix is dropped by design: the model
                     * accounts for it so the concatenation stays whole. */
                    memcpy(out + outlen, input + pos, mend - pos);
                    outlen += mend - pos;
                    pos = mend;
                } else {
                    cr_assert(res.st == REPLY_TIMEOUT || res.st == REPLY_EOF,
                              "status %d", res.st);
                }
            } else {
                op(s, "drain 0", &res);
                cr_assert_eq(res.st, REPLY_OK);
                size_t got = check_drain(&res, input, pos, bounds, nb, out,
                                         outlen);
                cr_assert_eq(got, delivered - pos, "drain takes all");
                outlen += got;
                pos += got;
            }
            result_clear(&res);
            cr_assert_eq(stream_consumed(s), pos);
        }
        stream_end(s, 0, NULL);
        expect_reply(s, "eof", REPLY_OK, "true");
        cr_assert_eq(outlen, total);
        cr_assert_eq(memcmp(out, input, total), 0);
        stream_unref(s);
        free(input);
        free(out);
    }
}

/* ---- write-behind (spool.c): property test ------------------------ */

/* A reader's next bytes, taken by peek/advance (spans: memory or the
 * spool's file) or by stream_reader_read, at most max; checked against
 * the input at its offset. Returns what it took, or the peek's value. */
static ssize_t
reader_take(struct stream_reader *rd, const char *input, size_t max,
            bool by_span)
{
    static char buf[2 * 1024 * 1024];
    uint64_t off = stream_reader_offset(rd);
    struct stream_span sp;
    ssize_t n;

    if (!by_span) {
        n = stream_reader_read(rd, buf, max);
        if (n > 0)
            cr_assert_eq(memcmp(buf, input + off, (size_t)n), 0, "read at %llu",
                         (unsigned long long)off);
        return n;
    }
    n = stream_reader_peek(rd, max, &sp);
    if (n <= 0)
        return n;
    cr_assert_eq((size_t)n, sp.len);
    cr_assert_eq(sp.off, off);
    if (sp.mem) {
        cr_assert_eq(memcmp(sp.mem, input + off, sp.len), 0,
                     "memory span at %llu", (unsigned long long)off);
    } else {
        /* An fd span's bytes must be in the file already (a reply thread
         * splices them from there). */
        cr_assert_eq(pread(sp.fd, buf, sp.len, (off_t)off), (ssize_t)sp.len,
                     "fd span at %llu past the file", (unsigned long long)off);
        cr_assert_eq(memcmp(buf, input + off, sp.len), 0);
    }
    /* Take a random part of it: the rest is peeked again. */
    size_t take = 1 + (size_t)rand() % sp.len;
    stream_reader_advance(rd, take);
    return (ssize_t)take;
}

/* Frames of random sizes (1 byte to past the write-behind buffer), loop
 * turns (flushes) at random points, three readers reading at random
 * sizes by span and by read, the log read at random offsets, and ops on
 * the test's cursor: every byte anyone gets is the input at its offset,
 * whether it was flushed yet or not, and everyone gets every byte. */
Test(stream, property_write_behind_every_reader_sees_the_input, .timeout = 120)
{
    static char input[3 * 1024 * 1024], buf[2 * 1024 * 1024];

    srand(4242);
    for (size_t i = 0; i < sizeof input; i++)
        input[i] = "abcdefgh\n\0"[rand() % 10];
    for (int round = 0; round < 12; round++) {
        size_t total = 1 + (size_t)rand() % sizeof input, delivered = 0;
        size_t pos = 0; /* the test's cursor, as the model has it */
        struct stream *s = new_stream(0);
        struct stream_reader *rd[3];
        struct result res = {0};

        for (int k = 0; k < 3; k++)
            cr_assert_eq(stream_reader_new(s, &rd[k]), 0);
        while (delivered < total) {
            size_t n;
            switch (rand() % 10) {
            case 0:
                n = 1 + (size_t)rand() % (300 * 1024);
                break;
            case 1:
            case 2:
                n = 1 + (size_t)rand() % (64 * 1024);
                break;
            default:
                n = 1 + (size_t)rand() % 700;
                break;
            }
            if (n > total - delivered)
                n = total - delivered;
            cr_assert_eq(stream_append(s, input + delivered, n), 0);
            delivered += n;
            if (rand() % 3 == 0)
                reactor_run_once(r, 0); /* a turn: wake, then flush */
            /* Readers take some of what is there. */
            for (int k = 0; k < 3; k++) {
                for (int t = rand() % 3; t > 0; t--) {
                    size_t max = 1 + (size_t)rand() % (2 * 1024 * 1024);
                    ssize_t got = reader_take(rd[k], input, max, k != 2);
                    cr_assert(got > 0 || got == -EAGAIN, "reader %d: %zd", k,
                              got);
                }
                cr_assert_leq(stream_reader_offset(rd[k]), delivered);
            }
            /* The log at a random offset and size. */
            size_t off = (size_t)rand() % delivered;
            size_t len = 1 + (size_t)rand() % sizeof buf;
            ssize_t got = stream_pread(s, buf, len, off);
            cr_assert_eq(
                    got,
                    (ssize_t)(len < delivered - off ? len : delivered - off));
            cr_assert_eq(memcmp(buf, input + off, (size_t)got), 0);
            /* Now and then an op: read_until a pattern delivered ahead. */
            if (rand() % 8 == 0 && pos < delivered) {
                size_t at = pos + (size_t)rand() % (delivered - pos);
                size_t plen = 1 + (size_t)rand() % 8, mend;
                char line[64], *l = line;
                if (plen > delivered - at)
                    plen = delivered - at;
                l += sprintf(l, "read_until \"");
                for (size_t i = 0; i < plen; i++)
                    l += sprintf(l, "\\x%02x", (unsigned char)input[at + i]);
                sprintf(l, "\" 0");
                op(s, line, &res);
                mend = (size_t)((char *)memmem(input + pos, delivered - pos,
                                               input + at, plen) -
                                input) +
                       plen;
                cr_assert_eq(res.st, REPLY_OK, "%s", res.payload);
                cr_assert_eq(res.len, mend - pos);
                cr_assert_eq(memcmp(res.payload, input + pos, res.len), 0);
                pos = mend;
                result_clear(&res);
            }
        }
        stream_end(s, 0, NULL);
        /* Every reader gets the rest, then the end. */
        for (int k = 0; k < 3; k++) {
            ssize_t got;
            while ((got = reader_take(rd[k], input, sizeof buf, k != 2)) > 0)
                ;
            cr_assert_eq(got, 0);
            cr_assert_eq(stream_reader_offset(rd[k]), total);
            stream_reader_free(rd[k]);
        }
        reactor_run_once(r, 0);
        cr_assert_eq(spool_unflushed(stream_spool(s)), 0,
                     "a turn flushed everything");
        cr_assert_eq(stream_pread(s, buf, sizeof buf, 0),
                     (ssize_t)(total < sizeof buf ? total : sizeof buf));
        cr_assert_eq(
                memcmp(buf, input, total < sizeof buf ? total : sizeof buf), 0);
        stream_unref(s);
    }
}

/* The spool's file system refuses the bytes at flush time (RLIMIT_FSIZE
 * here; a full disk in test/fault/tail_sources.sh): the stream ends with
 * the error, saying so; a reader that got bytes from memory before the
 * flush still finds them all in the history, then gets the error. */
Test(stream, failed_flush_ends_the_stream_and_keeps_what_readers_got)
{
    static char input[100000], buf[200000];
    struct rlimit old, lim;
    struct stream *s = new_stream(0);
    struct stream_reader *rd;
    struct result res = {0};

    for (size_t i = 0; i < sizeof input; i++)
        input[i] = (char)('a' + i % 23);
    cr_assert_eq(stream_reader_new(s, &rd), 0);
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 30000;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (size_t off = 0; off < sizeof input; off += 10000)
        cr_assert_eq(stream_append(s, input + off, 10000), 0);
    /* Read before the loop turns: everything, from memory. */
    cr_assert_eq(stream_reader_read(rd, buf, sizeof buf),
                 (ssize_t)sizeof input);
    cr_assert_eq(memcmp(buf, input, sizeof input), 0);
    reactor_run_once(r, 0); /* the flush fails */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_expect_eq(stream_state(s), STREAM_ENDED);
    const char *msg;
    cr_expect_eq(stream_end_error(s, &msg), -EFBIG);
    cr_expect_str_eq(msg, "history spool write failed: File too large");
    cr_expect_eq(stream_append(s, "x", 1), -EPIPE);
    cr_expect_eq(stream_size(s), sizeof input, "the history keeps them");
    cr_assert_eq(stream_pread(s, buf, sizeof buf, 0), (ssize_t)sizeof input);
    cr_expect_eq(memcmp(buf, input, sizeof input), 0);
    cr_expect_eq(stream_reader_read(rd, buf, sizeof buf), -EFBIG);
    cr_expect_eq(stream_reader_read(rd, buf, sizeof buf), 0);
    op(s, "read_until \"a\" 0", &res); /* the test's cursor: all there */
    cr_expect_eq(res.st, REPLY_OK);
    cr_expect_eq(res.len, 1);
    op(s, "drain 0", &res);
    cr_expect_eq(res.st, REPLY_OK);
    cr_expect_gt(res.len, sizeof input - 1, "drain has every byte");
    op(s, "next 0", &res);
    cr_expect_eq(res.st, REPLY_ERROR);
    cr_expect_str_eq(res.payload,
                     "stream EOF; history spool write failed: File too large");
    result_clear(&res);
    stream_reader_free(rd);
    stream_unref(s);
}

/* ---- property test: pattern sets through the ops ------------------ */

/* `-re/FLAGS "\xHH..."` or `-ex "\xHH..."`: any byte survives. */
static size_t
put_marked(char *o, const struct pattern *p)
{
    char fl[8];
    size_t n = 0;

    if (p->kind == PATTERN_LITERAL) {
        n += (size_t)sprintf(o, " -ex \"");
    } else {
        pattern_flags_format(p->flags, fl);
        n += (size_t)sprintf(o, " -re%s%s \"", *fl ? "/" : "", fl);
    }
    for (size_t i = 0; i < p->len; i++)
        n += (size_t)sprintf(o + n, "\\x%02x",
                             ((const unsigned char *)p->src)[i]);
    o[n++] = '"';
    o[n] = '\0';
    return n;
}

/* The reply's "ALT FROM TO [groups]" fields. */
static void
check_fields(const struct result *res, const struct rset *rs,
             const struct expect *x, int iter)
{
    unsigned alt;
    char from[32];
    unsigned long long to;
    int used = 0;

    cr_assert_eq(sscanf(res->fields, "%u %31s %llu%n", &alt, from, &to, &used),
                 3, "iter %d: fields `%s`", iter, res->fields);
    cr_assert_eq(alt, x->index + 1, "iter %d: alternative %u, want %u", iter,
                 alt, x->index + 1);
    cr_assert_eq(to, (unsigned long long)x->end, "iter %d: to", iter);
    if (start_known(rs->ps, x->index))
        cr_assert_eq(strtoull(from, NULL, 10), (unsigned long long)x->start,
                     "iter %d: from %s, want %ld", iter, from, x->start);
    /* One pair per group, each a span inside the match or `- -`. */
    unsigned groups = pattern_set_groups(rs->ps, x->index), pairs = 0;
    const char *f = res->fields + used;
    char a[32], b[32];
    int k;
    while (sscanf(f, " %31s %31s%n", a, b, &k) == 2) {
        if (strcmp(a, "-") != 0) {
            unsigned long long ga = strtoull(a, NULL, 10),
                               gb = strtoull(b, NULL, 10);
            cr_assert(ga <= gb && gb <= to &&
                              (!start_known(rs->ps, x->index) ||
                               ga >= (unsigned long long)x->start),
                      "iter %d: group %s %s outside the match", iter, a, b);
        }
        pairs++;
        f += k;
    }
    cr_assert_eq(pairs, groups, "iter %d: %u groups, fields `%s`", iter, groups,
                 res->fields);
}

Test(stream, property_pattern_sets_through_the_ops, .timeout = 240)
{
    static const char *kinds[] = {"read_until", "expect", "peek"};
    unsigned char input[400];
    static char line[16384];

    srand(getenv("SEED") ? (unsigned)atoi(getenv("SEED")) : 4242);
    for (int iter = 0; iter < 400; iter++) {
        struct rset rs;
        gen_set(&rs, false, 0);
        size_t total = gen_data(input, sizeof input, &rs);
        size_t bounds[400], nb = 0, delivered = 0, pos = 0;
        unsigned char *out = malloc(total + 1);
        size_t outlen = 0;
        struct stream *s = new_stream(0);
        struct result res = {0};
        bool ended = false;

        /* Random frames, delivered a few at a time. */
        size_t frames[400], nf = 0;
        for (size_t off = 0; off < total;) {
            size_t k = 1 + (size_t)rand() % 40;
            if (k > total - off)
                k = total - off;
            frames[nf++] = k;
            off += k;
        }
        size_t fi = 0;
        for (int round = 0; round < 12 && !(ended && pos == delivered);
             round++) {
            int kind = rand() % 3;
            bool live = !ended && rand() % 2;
            bool plain =
                    rs.n == 1 && rs.p[0].kind == PATTERN_LITERAL && rand() % 2;
            size_t n = (size_t)sprintf(line, "%s", kinds[kind]);
            if (plain) {
                n += (size_t)sprintf(line + n, " \"");
                for (size_t i = 0; i < rs.p[0].len; i++)
                    n += (size_t)sprintf(
                            line + n, "\\x%02x",
                            ((const unsigned char *)rs.p[0].src)[i]);
                n += (size_t)sprintf(line + n, "\"");
            } else {
                for (unsigned i = 0; i < rs.n; i++)
                    n += put_marked(line + n, &rs.p[i]);
            }
            sprintf(line + n, live ? " 1h" : " 0");

            /* Where the op will look at the end of the data: at every
             * loop turn after it started (relative to pos). */
            bool idle[401] = {false};
            if (!live) {
                for (int f = rand() % 3; f > 0 && fi < nf; f--) {
                    cr_assert_eq(
                            stream_append(s, input + delivered, frames[fi]), 0);
                    delivered += frames[fi++];
                    bounds[nb++] = delivered;
                }
                if (fi == nf && !ended && rand() % 2) {
                    stream_end(s, 0, NULL);
                    ended = true;
                }
                idle[delivered - pos] = true;
                op(s, line, &res);
            } else {
                struct command cmd;
                struct stream_op_spec spec;
                char err[COMMAND_ERR_LEN];
                result_clear(&res);
                cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0);
                cr_assert_eq(stream_op_parse(&cmd, &spec, err), 0, "%s", err);
                cr_assert_eq(stream_op_submit(s, &spec, on_done, &res, NULL),
                             0);
                command_free(&cmd);
                while (pattern_jobs())
                    reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC);
                reactor_run_once(r, 0);
                idle[delivered - pos] = true;
                while (!res.done && fi < nf) {
                    for (int f = 1 + rand() % 2; f > 0 && fi < nf; f--) {
                        cr_assert_eq(
                                stream_append(s, input + delivered, frames[fi]),
                                0);
                        delivered += frames[fi++];
                        bounds[nb++] = delivered;
                    }
                    reactor_run_once(r, 0);
                    idle[delivered - pos] = true;
                }
                if (!res.done) {
                    stream_end(s, 0, NULL);
                    ended = true;
                    run_until(&res.done);
                }
            }
            struct expect x = reference(rs.refs, rs.n, input + pos,
                                        delivered - pos, idle);
            if (x.end < 0) {
                cr_assert(res.st == (ended ? REPLY_EOF : REPLY_TIMEOUT),
                          "iter %d: %s: no match expected, got %s `%s`", iter,
                          line, reply_status_name(res.st), res.payload);
                continue;
            }
            if (res.st != REPLY_OK)
                dump_case(&rs, input + pos, delivered - pos, NULL, 0, idle);
            cr_assert_eq(res.st, REPLY_OK, "iter %d: %s: %s `%s`", iter, line,
                         reply_status_name(res.st), res.payload);
            size_t end = (size_t)x.end;
            if (plain)
                cr_assert_str_eq(res.fields, "");
            else
                check_fields(&res, &rs, &x, iter);
            if (kind == 1 && !plain && start_known(rs.ps, x.index))
                cr_assert(res.len == end - (size_t)x.start &&
                                  memcmp(res.payload, input + pos + x.start,
                                         res.len) == 0,
                          "iter %d: expect returns the match", iter);
            else if (kind == 1)
                cr_assert(plain ? res.len == 0 : true);
            else
                cr_assert(res.len == end &&
                                  memcmp(res.payload, input + pos, end) == 0,
                          "iter %d: %s returns the bytes to the match end",
                          iter, kinds[kind]);
            if (kind != 2) {
                memcpy(out + outlen, input + pos, end);
                outlen += end;
                pos += end;
            }
            cr_assert_eq(stream_consumed(s), pos, "iter %d", iter);
        }
        /* Whatever is left, whole. */
        while (fi < nf) {
            cr_assert_eq(stream_append(s, input + delivered, frames[fi]), 0);
            delivered += frames[fi++];
            bounds[nb++] = delivered;
        }
        if (!ended)
            stream_end(s, 0, NULL);
        op(s, "drain", &res);
        cr_assert_eq(res.st, REPLY_OK);
        outlen += check_drain(&res, (const char *)input, pos, bounds, nb,
                              (char *)out, outlen);
        cr_assert_eq(outlen, total, "iter %d: returned + left = the input",
                     iter);
        cr_assert_eq(memcmp(out, input, total), 0, "iter %d", iter);
        result_clear(&res);
        stream_unref(s);
        rset_free(&rs);
        free(out);
    }
}
