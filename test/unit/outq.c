/*
 * test/unit/outq.c - the output queue (streams/outq.c) over real fds:
 * bytes leave in order whatever the fd takes at a time, the limit and the
 * mark hold, room is made at the tail, a pipe is written with write(2)
 * and a closed socket peer is an error, not a SIGPIPE.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "streams.h"

static uint8_t
byte_at(size_t i)
{
    return (uint8_t)((i * 131 + (i >> 9)) & 0xff);
}

/* Queue len pattern bytes starting at pattern offset *at. */
static void
queue(struct outq *q, size_t *at, size_t len)
{
    uint8_t *p = outq_reserve(q, len);
    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = byte_at(*at + i);
    outq_commit(q, len);
    *at += len;
}

/* Read what is there; check it is the pattern from *seen on. */
static size_t
drain(int fd, size_t *seen)
{
    static uint8_t buf[1 << 16];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], byte_at(*seen + (size_t)i), "byte %zu",
                         *seen + (size_t)i);
        *seen += (size_t)n;
        got += (size_t)n;
    }
    return got;
}

Test(outq, bytes_leave_in_order_through_a_full_socket, .timeout = 30)
{
    int sv[2], small = 4096;
    struct outq q;
    size_t at = 0, seen = 0;
    unsigned partial = 0, resumed = 0;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    /* Small socket buffers, so that flushes stop at EAGAIN with the rest
     * queued (and go on where they stopped) many times over. */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    outq_init(&q, 0, 256 * 1024);
    for (int round = 0; round < 200; round++) {
        queue(&q, &at, 1 + (size_t)(round * 7919 % 70000));
        resumed += q.off > 0; /* a flush goes on mid-queue */
        cr_assert_eq(outq_flush(&q, sv[0]), 0);
        partial += outq_len(&q) > 0;
        cr_assert_eq(outq_high(&q), outq_len(&q) >= 256 * 1024);
        if (round % 3 == 0)
            drain(sv[1], &seen);
    }
    cr_assert_gt(partial, 50, "flushes cut short: %u", partial);
    cr_assert_gt(resumed, 10, "flushes resumed mid-queue: %u", resumed);
    while (outq_len(&q) > 0) {
        cr_assert_eq(outq_flush(&q, sv[0]), 0);
        drain(sv[1], &seen);
    }
    drain(sv[1], &seen);
    cr_assert_eq(seen, at);
    outq_fini(&q);
    close(sv[0]);
    close(sv[1]);
}

Test(outq, limit_and_room)
{
    struct outq q;
    size_t at = 0;

    outq_init(&q, 1000, 600);
    cr_assert_eq(outq_room(&q), 1000);
    queue(&q, &at, 600);
    cr_assert(outq_high(&q));
    cr_assert_eq(outq_room(&q), 400);
    cr_assert_null(outq_reserve(&q, 401), "past the limit");
    cr_assert_null(outq_reserve(&q, SIZE_MAX), "no overflow");
    cr_assert_eq(outq_put(&q, "x", 401), -ENOBUFS);
    cr_assert_eq(outq_len(&q), 600, "a refused put queues nothing");
    queue(&q, &at, 400);
    cr_assert_eq(outq_room(&q), 0);
    /* What was reserved and not committed is not queued. */
    outq_clear(&q);
    cr_assert_not_null(outq_reserve(&q, 10));
    cr_assert_eq(outq_len(&q), 0);
    outq_fini(&q);
    outq_fini(&q); /* twice is harmless */
}

Test(outq, a_pipe_takes_write, .timeout = 10)
{
    int p[2];
    struct outq q;
    size_t at = 0, seen = 0;

    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    outq_init(&q, 0, 1);
    queue(&q, &at, 5000);
    cr_assert_eq(outq_flush(&q, p[1]), 0);
    cr_assert_eq(outq_len(&q), 0);
    drain(p[0], &seen);
    cr_assert_eq(seen, 5000);
    outq_fini(&q);
    close(p[0]);
    close(p[1]);
}

Test(outq, a_gone_peer_is_epipe_not_sigpipe, .timeout = 10)
{
    int sv[2];
    struct outq q;
    size_t at = 0;

    /* SIGPIPE at its default would kill the test. */
    signal(SIGPIPE, SIG_DFL);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    close(sv[1]);
    outq_init(&q, 0, 1);
    queue(&q, &at, 100);
    cr_assert_eq(outq_flush(&q, sv[0]), -EPIPE);
    cr_assert_eq(outq_len(&q), 100, "the bytes stay queued");
    outq_fini(&q);
    close(sv[0]);
}
