/*
 * data.c - streams/<id>/data (SPEC §4.1): every open is a stream reader
 * with its own cursor from byte 0, so `cat data` replays the whole stream
 * and follows it live without taking bytes from the test or from other
 * readers (the /dev/kmsg model).
 *
 * A read returns what lies at the cursor, frames coalesced, up to the size
 * asked (up to SEND_SPLICE_MAX when replies are spliced, send.c): the
 * reader's span of the spool goes out through send_span, spliced, never
 * copied by us. With nothing there it parks (park.c) until the stream has bytes
 * or ends, unless the file is O_NONBLOCK: fi->flags in READ carries the
 * current f_flags, including a later fcntl(F_SETFL), so EAGAIN is decided
 * per read. The end of the stream reads as 0; a stream that ended with an
 * error reports that errno once first.
 *
 * poll: the kernel asks with a poll handle when a waiter wants to be woken
 * (FUSE_POLL_SCHEDULE_NOTIFY); we keep the newest handle and notify it
 * once when the reader becomes ready. Without .poll the kernel would call
 * every FUSE file always readable (reference/fuse.md §4).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#include "fs.h"

struct data {
    struct fs *fs;
    struct stream_reader *rd;
    struct park_queue q;
    struct fuse_pollhandle *ph;
};

static void data_wake(struct reactor *r, void *arg);

/* What a read of size bytes gets now: a span (> 0, the cursor moved
 * past it), 0 at the end, -errno, or -EAGAIN. */
static ssize_t
data_take(struct data *d, size_t size, struct stream_span *sp)
{
    ssize_t n = stream_reader_peek(d->rd, send_max(d->fs, size), sp);

    if (n > 0)
        stream_reader_advance(d->rd, (size_t)n);
    return n;
}

/* Answer parked reads for as long as the reader has something; then ask
 * to be woken if anyone still waits. */
static void
data_serve(struct data *d)
{
    struct stream_span sp;

    while (!park_empty(&d->q)) {
        ssize_t n = data_take(d, park_size(&d->q), &sp);
        if (n == -EAGAIN)
            break;
        if (n < 0)
            park_reply_err(&d->q, (int)-n);
        else if (n == 0)
            park_reply_buf(&d->q, NULL, 0);
        else
            send_span(d->fs, park_take(&d->q), &sp);
    }
    if (!park_empty(&d->q) || d->ph)
        stream_reader_notify(d->rd, data_wake, d);
}

static void
data_wake(struct reactor *r, void *arg)
{
    struct data *d = arg;

    if (d->ph && stream_reader_ready(d->rd)) {
        fuse_lowlevel_notify_poll(d->ph);
        fuse_pollhandle_destroy(d->ph);
        d->ph = NULL;
    }
    data_serve(d);
}

static void
data_read(struct file *f, fuse_req_t req, size_t size, off_t off, int flags)
{
    struct data *d = f->data;
    struct stream_span sp;
    ssize_t n;

    if (size == 0) { /* read(2) never asks for 0; answer as it would */
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    /* Earlier reads of this open wait: keep the order. */
    if (park_empty(&d->q)) {
        n = data_take(d, size, &sp);
        if (n > 0) {
            send_span(d->fs, req, &sp);
            return;
        }
        if (n == 0) {
            fuse_reply_buf(req, NULL, 0);
            return;
        }
        if (n != -EAGAIN) {
            fuse_reply_err(req, (int)-n);
            return;
        }
    }
    if (flags & O_NONBLOCK) {
        fuse_reply_err(req, EAGAIN);
        return;
    }
    if ((n = park_add(d->fs, &d->q, req, size)) < 0) {
        fuse_reply_err(req, (int)-n);
        return;
    }
    stream_reader_notify(d->rd, data_wake, d);
}

static void
data_poll(struct file *f, fuse_req_t req, struct fuse_pollhandle *ph)
{
    struct data *d = f->data;
    bool ready = stream_reader_ready(d->rd);

    if (ph) {
        /* One notification clears every earlier poll of this file. */
        fuse_pollhandle_destroy(d->ph);
        d->ph = ph;
        if (ready) {
            fuse_lowlevel_notify_poll(d->ph);
            fuse_pollhandle_destroy(d->ph);
            d->ph = NULL;
        } else {
            stream_reader_notify(d->rd, data_wake, d);
        }
    }
    fuse_reply_poll(req, ready ? POLLIN | POLLRDNORM : 0);
}

static void
data_release(struct file *f)
{
    struct data *d = f->data;

    if (!d)
        return;
    /* The kernel releases a file only when no read of it is in flight,
     * so the queue is empty; flush anyway rather than leak a request. */
    park_flush(&d->q);
    fuse_pollhandle_destroy(d->ph);
    stream_reader_free(d->rd);
    free(d);
}

static const struct file_ops data_file_ops = {
        .read = data_read,
        .poll = data_poll,
        .release = data_release,
};

int
data_open(struct fs *fs, struct stream *s, struct file *f)
{
    struct data *d = calloc(1, sizeof(*d));
    int rc;

    f->ops = &data_file_ops;
    if (!d)
        return -ENOMEM;
    d->fs = fs;
    if ((rc = stream_reader_new(s, &d->rd)) < 0) {
        free(d);
        return rc;
    }
    f->data = d;
    return 0;
}
