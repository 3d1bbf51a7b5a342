/*
 * outq.c - bytes queued for a non-blocking fd: the output side of every
 * connection the tree keeps (the host's agent client, the agent's host
 * connection, the console).
 *
 * A writer reserves room at the tail, fills it in place and commits what
 * it wrote, so a frame is encoded straight into the queue with no copy;
 * flush writes what the fd takes and keeps the rest in order. The queued
 * bytes are buf[off, off + len): flushing advances off, and room is made
 * at the tail by moving the rest to the front once, rather than after
 * every partial write.
 *
 * Two bounds, chosen by the owner: a limit (reserve fails past it, so a
 * peer that stops reading cannot make us buffer without bound) and a
 * high-water mark (outq_high), at which an owner that produces the bytes
 * itself stops producing until the queue drains.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "streams.h"

#define OUTQ_INITIAL (64 * 1024)

void
outq_init(struct outq *q, size_t limit, size_t mark)
{
    memset(q, 0, sizeof(*q));
    q->limit = limit;
    q->mark = mark;
}

void
outq_fini(struct outq *q)
{
    if (!q)
        return;
    free(q->buf);
    q->buf = NULL;
    q->off = q->len = q->cap = 0;
}

void
outq_clear(struct outq *q)
{
    q->off = q->len = 0;
    q->not_socket = false; /* the next fd may be another kind */
}

void *
outq_reserve(struct outq *q, size_t n)
{
    if (q->limit && (n > q->limit || q->len > q->limit - n))
        return NULL;
    if (q->cap - q->off - q->len < n && q->off) {
        memmove(q->buf, q->buf + q->off, q->len);
        q->off = 0;
    }
    if (q->cap - q->len < n) {
        size_t cap = q->cap ? q->cap : OUTQ_INITIAL;
        uint8_t *p;
        while (cap - q->len < n)
            cap *= 2;
        if (!(p = realloc(q->buf, cap)))
            return NULL;
        q->buf = p;
        q->cap = cap;
    }
    return q->buf + q->off + q->len;
}

void
outq_commit(struct outq *q, size_t n)
{
    q->len += n;
}

int
outq_put(struct outq *q, const void *buf, size_t len)
{
    void *p = outq_reserve(q, len);

    if (!p)
        return -ENOBUFS;
    if (len)
        memcpy(p, buf, len);
    outq_commit(q, len);
    return 0;
}

size_t
outq_room(const struct outq *q)
{
    return q->limit > q->len ? q->limit - q->len : 0;
}

int
outq_flush(struct outq *q, int fd)
{
    while (q->len > 0) {
        ssize_t n;
        /* send(2) for its MSG_NOSIGNAL: a peer gone is EPIPE, never a
         * SIGPIPE that would kill the process. A pipe or a character
         * device (a virtio-serial port) is not a socket: write(2). */
        if (!q->not_socket) {
            n = send(fd, q->buf + q->off, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == ENOTSOCK) {
                q->not_socket = true;
                continue;
            }
        } else {
            n = write(fd, q->buf + q->off, q->len);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        q->off += (size_t)n;
        q->len -= (size_t)n;
    }
    q->off = 0;
    return 0;
}
