/*
 * Unit tests for streams/reply.c: the "<status> <length>\n" header, memory
 * payloads, history ranges and drain records, read whole, sequentially in
 * odd chunks and at arbitrary offsets.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

/* A string literal with its length, so that embedded NULs count. */
#define B(s) s, sizeof(s) - 1

static void
expect_reply(struct reply *rp, const char *want, size_t want_len)
{
    char *buf;
    size_t len;

    cr_assert_eq(reply_length(rp), want_len, "length %llu, want %zu",
                 (unsigned long long)reply_length(rp), want_len);
    cr_assert_eq(reply_collect(rp, &buf, &len), 0);
    cr_assert_eq(len, want_len);
    cr_expect(memcmp(buf, want, len) == 0, "got %.*s", (int)len, buf);
    cr_expect_eq(buf[len], '\0');
    free(buf);
}

Test(reply, status_names)
{
    cr_expect_str_eq(reply_status_name(REPLY_OK), "ok");
    cr_expect_str_eq(reply_status_name(REPLY_TIMEOUT), "timeout");
    cr_expect_str_eq(reply_status_name(REPLY_EOF), "eof");
    cr_expect_str_eq(reply_status_name(REPLY_CLOSED), "closed");
    cr_expect_str_eq(reply_status_name(REPLY_ERROR), "error");
}

Test(reply, mem)
{
    struct reply *rp;

    cr_assert_eq(reply_new_mem(REPLY_OK, "hello", 5, &rp), 0);
    cr_expect_eq(reply_status(rp), REPLY_OK);
    expect_reply(rp, B("ok 5\nhello"));
    reply_free(rp);

    cr_assert_eq(reply_new_mem(REPLY_OK, NULL, 0, &rp), 0);
    expect_reply(rp, B("ok 0\n"));
    reply_free(rp);

    cr_assert_eq(reply_new_mem(REPLY_EOF, B("a\0b\n\xff"), &rp), 0);
    cr_expect_eq(reply_status(rp), REPLY_EOF);
    expect_reply(rp, B("eof 5\na\0b\n\xff"));
    reply_free(rp);
    reply_free(NULL);
}

Test(reply, fmt)
{
    struct reply *rp;

    cr_assert_eq(reply_new_fmt(REPLY_TIMEOUT, &rp,
                               "read_until timed out waiting for `%s`; %s",
                               "login:", "timeout 10s"),
                 0);
    expect_reply(rp, B("timeout 54\nread_until timed out waiting for "
                       "`login:`; timeout 10s"));
    reply_free(rp);

    cr_assert_eq(reply_new_fmt(REPLY_CLOSED, &rp, "%s closed", "console"), 0);
    expect_reply(rp, B("closed 14\nconsole closed"));
    reply_free(rp);

    cr_assert_eq(reply_new_fmt(REPLY_ERROR, &rp, "%s", ""), 0);
    expect_reply(rp, B("error 0\n"));
    reply_free(rp);
}

Test(reply, read_at_offsets)
{
    static const char want[] = "ok 10\n0123456789";
    struct reply *rp;
    char buf[32];

    cr_assert_eq(reply_new_mem(REPLY_OK, "0123456789", 10, &rp), 0);
    for (size_t off = 0; off <= sizeof(want) - 1; off++) {
        for (size_t len = 0; len < 20; len++) {
            size_t n = sizeof(want) - 1 - off;

            if (n > len)
                n = len;
            memset(buf, '#', sizeof(buf));
            cr_assert_eq(reply_read(rp, buf, len, off), (ssize_t)n,
                         "off %zu len %zu", off, len);
            cr_assert(memcmp(buf, want + off, n) == 0);
            cr_assert_eq(buf[n], '#', "wrote past the count");
        }
    }
    cr_expect_eq(reply_read(rp, buf, sizeof(buf), 1000), 0);
    reply_free(rp);
}

/* ---- history replies ---- */

static struct reactor *r;
static struct stream *s;

static void
setup(void)
{
    struct stream_config cfg = {.spool_dir = "/tmp", .noun = "stream"};

    cr_assert_eq(reactor_new(&r), 0);
    cr_assert_eq(stream_new(r, &cfg, &s), 0);
}

static void
teardown(void)
{
    stream_unref(s);
    /* The stream's deferred wake-ups hold references: let them run. */
    cr_assert_eq(reactor_run_once(r, 0), 0);
    reactor_free(r);
}

TestSuite(history, .init = setup, .fini = teardown, .timeout = 30);

static void
append(const char *frame)
{
    cr_assert_eq(stream_append(s, frame, strlen(frame)), 0);
}

Test(history, range)
{
    struct reply *rp;

    append("abc");
    append("defg");
    append("hi");
    cr_assert_eq(reply_new_range(s, 1, 8, &rp), 0);
    cr_expect_eq(reply_status(rp), REPLY_OK);
    expect_reply(rp, B("ok 7\nbcdefgh"));
    reply_free(rp);

    cr_assert_eq(reply_new_range(s, 0, 9, &rp), 0);
    expect_reply(rp, B("ok 9\nabcdefghi"));
    reply_free(rp);

    cr_assert_eq(reply_new_range(s, 9, 9, &rp), 0);
    expect_reply(rp, B("ok 0\n"));
    reply_free(rp);

    cr_expect_eq(reply_new_range(s, 5, 4, &rp), -EINVAL);
    cr_expect_eq(reply_new_range(s, 0, 10, &rp), -EINVAL);
}

Test(history, drain)
{
    struct reply *rp;

    append("abc");
    append("defg");
    append("hi");
    /* From inside the first frame: its rest is the first record. */
    cr_assert_eq(reply_new_drain(s, 1, 9, &rp), 0);
    expect_reply(rp, B("ok 14\n2\nbc4\ndefg2\nhi"));
    reply_free(rp);

    cr_assert_eq(reply_new_drain(s, 0, 9, &rp), 0);
    expect_reply(rp, B("ok 15\n3\nabc4\ndefg2\nhi"));
    reply_free(rp);

    cr_assert_eq(reply_new_drain(s, 3, 7, &rp), 0);
    expect_reply(rp, B("ok 6\n4\ndefg"));
    reply_free(rp);

    cr_assert_eq(reply_new_drain(s, 8, 9, &rp), 0);
    expect_reply(rp, B("ok 3\n1\ni"));
    reply_free(rp);

    cr_assert_eq(reply_new_drain(s, 9, 9, &rp), 0);
    expect_reply(rp, B("ok 0\n"));
    reply_free(rp);

    /* to must be a frame boundary within the history. */
    cr_expect_eq(reply_new_drain(s, 0, 5, &rp), -EINVAL);
    cr_expect_eq(reply_new_drain(s, 4, 5, &rp), -EINVAL);
    cr_expect_eq(reply_new_drain(s, 5, 4, &rp), -EINVAL);
    cr_expect_eq(reply_new_drain(s, 0, 10, &rp), -EINVAL);
}

/* The reply keeps the stream (and its spool) alive by itself. */
Test(history, reply_holds_the_stream)
{
    struct reply *range, *drain;

    append("hello ");
    append("world");
    cr_assert_eq(reply_new_range(s, 0, 11, &range), 0);
    cr_assert_eq(reply_new_drain(s, 0, 11, &drain), 0);
    stream_close(s);
    stream_unref(s);
    s = NULL;
    expect_reply(range, B("ok 11\nhello world"));
    expect_reply(drain, B("ok 15\n6\nhello 5\nworld"));
    reply_free(range);
    reply_free(drain);
}

/* Many frames of assorted sizes, read whole, sequentially in odd chunks,
 * backwards and at random offsets, against a payload built in memory. */
Test(history, drain_many_frames)
{
    enum { FRAMES = 3000 };
    static char frame[300];
    char *want, *got, head[32];
    size_t want_len = 0, cap = 4 << 20, head_len, total;
    uint64_t size = 0, from = 0, to = 0;
    struct reply *rp;

    want = malloc(cap);
    got = malloc(cap);
    srand(7);
    for (int k = 0; k < FRAMES; k++) {
        size_t n = 1 + (size_t)rand() % (k % 10 == 0 ? 299 : 12);

        for (size_t i = 0; i < n; i++)
            frame[i] = (char)rand();
        cr_assert_eq(stream_append(s, frame, n), 0);
        if (k == 10) {
            /* Start 3 bytes into frame 10. */
            from = size + (n > 3 ? 3 : 0);
            want_len += (size_t)sprintf(want + want_len, "%zu\n",
                                        n - (size_t)(from - size));
            memcpy(want + want_len, frame + (from - size), n - (from - size));
            want_len += n - (size_t)(from - size);
        } else if (k > 10 && k < FRAMES - 5) {
            want_len += (size_t)sprintf(want + want_len, "%zu\n", n);
            memcpy(want + want_len, frame, n);
            want_len += n;
        }
        size += n;
        if (k == FRAMES - 6)
            to = size;
    }
    cr_assert_eq(reply_new_drain(s, from, to, &rp), 0);
    head_len = (size_t)sprintf(head, "ok %zu\n", want_len);
    total = head_len + want_len;
    memmove(want + head_len, want, want_len);
    memcpy(want, head, head_len);
    expect_reply(rp, want, total);

    /* Sequential, in chunks of varying size. */
    for (size_t off = 0, chunk = 1; off < total; chunk = chunk * 7 % 4099 + 1) {
        ssize_t n = reply_read(rp, got + off, chunk, off);

        cr_assert_gt(n, 0);
        off += (size_t)n;
    }
    cr_assert(memcmp(got, want, total) == 0);

    /* Backwards, one small read at a time. */
    for (size_t end = total; end > 0;) {
        size_t len = end < 5 ? end : 5;

        cr_assert_eq(reply_read(rp, got, len, end - len), (ssize_t)len);
        cr_assert(memcmp(got, want + end - len, len) == 0, "at %zu", end - len);
        end -= len;
    }

    /* Random offsets and lengths. */
    for (int i = 0; i < 2000; i++) {
        size_t off = (size_t)rand() % (total + 10), len = (size_t)rand() % 700;
        size_t n = off >= total ? 0 : total - off < len ? total - off : len;

        cr_assert_eq(reply_read(rp, got, len, off), (ssize_t)n);
        cr_assert(memcmp(got, want + (n ? off : 0), n) == 0, "at %zu", off);
    }
    reply_free(rp);
    free(want);
    free(got);
}

/* A range of a few MiB over many frames, read in FUSE-sized chunks. */
Test(history, large_range)
{
    enum { FRAME = 4093, FRAMES = 1024 };
    static char frame[FRAME];
    size_t total = (size_t)FRAME * FRAMES;
    char *buf = malloc(131072);
    struct reply *rp;
    uint64_t off, head_len;

    for (int k = 0; k < FRAMES; k++) {
        memset(frame, 'a' + k % 26, sizeof(frame));
        cr_assert_eq(stream_append(s, frame, sizeof(frame)), 0);
    }
    cr_assert_eq(reply_new_range(s, 0, total, &rp), 0);
    head_len = reply_length(rp) - total;
    cr_assert_eq(reply_read(rp, buf, 64, 0), 64);
    cr_assert(memcmp(buf, "ok 4191232\naaaa", 15) == 0);
    for (off = head_len; off < reply_length(rp);) {
        ssize_t n = reply_read(rp, buf, 131072, off);

        cr_assert_gt(n, 0);
        for (ssize_t i = 0; i < n; i += 997) {
            uint64_t at = off - head_len + (uint64_t)i;

            cr_assert_eq(buf[i], 'a' + (char)(at / FRAME % 26), "at %llu",
                         (unsigned long long)at);
        }
        off += (uint64_t)n;
    }
    cr_expect_eq(off, reply_length(rp));
    reply_free(rp);
    free(buf);
}
