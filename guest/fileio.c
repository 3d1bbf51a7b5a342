/*
 * fileio.c - guest files opened by the host, by handle (file#N): open,
 * read, write, seek, close, and streaming a handle (fd_stream). One open
 * file is a struct ofile; struct fileio is the agent's table of them.
 *
 * Nothing here blocks the agent. Regular files are read and written
 * directly (the page cache answers). Pipes, FIFOs and terminals are
 * opened non-blocking; a read or write that would block is parked until
 * epoll says the fd is ready, one per handle at a time.
 *
 * A stream of a regular file has its own offset, starting at the handle's
 * offset when the stream is opened, so it does not move the handle's
 * position; it reads to the end and then waits for IN_MODIFY. A stream of
 * a pipe reads the pipe itself (and so competes with reads by handle). A
 * stream ends when its handle is closed, or at the pipe's end of file.
 */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HANDLES 1024

enum pending_op { PENDING_NONE, PENDING_READ, PENDING_WRITE };

struct hstream;

struct ofile {
    struct fileio *fio;
    uint64_t id;
    int fd;
    bool regular;
    unsigned watched; /* reactor events on fd */
    enum pending_op op;
    struct chan *pending;
    uint8_t *buf;
    size_t len;
    struct hstream *streams;
    struct ofile *next;
};

struct hstream {
    struct ofile *h;
    struct chan *ch;
    uint64_t off;
    bool want_fd; /* waits for the fd to be readable (pipes) */
    struct watch_sub *sub;
    struct hstream *next;
};

struct fileio {
    struct agent *a;
    struct ofile *list;
    size_t count;
    uint64_t next_id;
};

static struct ofile *
find_or_error(struct agent *a, struct chan *ch, uint64_t id)
{
    for (struct ofile *h = a->files->list; h; h = h->next)
        if (h->id == id)
            return h;
    host_error(ch, -EBADF, "file#%llu: no such open file handle",
               (unsigned long long)id);
    return NULL;
}

static void ofile_ready(struct reactor *r, int fd, unsigned events, void *arg);

static void
update_watch(struct ofile *h)
{
    struct reactor *r = h->fio->a->r;
    unsigned want = 0;

    if (h->op == PENDING_READ)
        want |= REACTOR_IN;
    if (h->op == PENDING_WRITE)
        want |= REACTOR_OUT;
    for (struct hstream *st = h->streams; st; st = st->next)
        if (st->want_fd)
            want |= REACTOR_IN;
    if (want == h->watched)
        return;
    if (!want)
        reactor_unwatch(r, h->fd);
    else if (reactor_watch(r, h->fd, want, ofile_ready, h) < 0)
        want = 0; /* not pollable: never parked, see read/write */
    h->watched = want;
}

/* One read or write per handle may wait (parked): refuse another. */
static bool
refused_busy(struct ofile *h, struct chan *ch)
{
    if (h->op == PENDING_NONE)
        return false;
    host_error(ch, -EBUSY, "file#%llu: another read or write is pending",
               (unsigned long long)h->id);
    return true;
}

/* fwrite's reply: the count written. */
static void
reply_count(struct chan *ch, size_t n)
{
    union proto_body rp = {.fwrite_reply = {.written = (uint32_t)n}};
    host_reply(ch, &rp);
}

/* fread's reply: the bytes read (none at end of file). */
static void
reply_data(struct chan *ch, const void *buf, size_t n)
{
    union proto_body rp = {.fread_reply = {.data = {buf, n}}};
    host_reply(ch, &rp);
}

/* Try the parked op; true when it was answered. */
static bool
try_pending(struct ofile *h)
{
    ssize_t n;

    if (h->op == PENDING_READ) {
        uint8_t buf[PROTO_MAX_DATA];
        n = read(h->fd, buf, h->len);
        if (n >= 0)
            reply_data(h->pending, buf, (size_t)n);
    } else {
        n = write(h->fd, h->buf, h->len);
        if (n >= 0)
            reply_count(h->pending, (size_t)n);
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n < 0)
        host_error(h->pending, -errno, "file#%llu: %s",
                   (unsigned long long)h->id, strerror(errno));
    free(h->buf);
    h->buf = NULL;
    h->pending = NULL;
    h->op = PENDING_NONE;
    return true;
}

static void
ofile_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct ofile *h = arg;

    if (h->op != PENDING_NONE)
        try_pending(h);
    for (struct hstream *st = h->streams; st; st = st->next)
        if (st->want_fd) {
            st->want_fd = false;
            host_wake(st->ch);
        }
    update_watch(h);
}

static void
pending_cancel(void *arg)
{
    struct ofile *h = arg;
    free(h->buf);
    h->buf = NULL;
    h->pending = NULL;
    h->op = PENDING_NONE;
    update_watch(h);
}

static void
park(struct ofile *h, struct chan *ch, enum pending_op op, const void *buf,
     size_t len)
{
    if (op == PENDING_WRITE) {
        if (!(h->buf = malloc(len ? len : 1))) {
            host_error(ch, -ENOMEM, "out of memory");
            return;
        }
        memcpy(h->buf, buf, len);
    }
    h->op = op;
    h->pending = ch;
    h->len = len;
    update_watch(h);
    host_park(ch, pending_cancel, h);
}

void
fileio_stat(struct agent *a, struct chan *ch, const union proto_body *req)
{
    const char *path = req->stat.path;
    struct stat st;

    if (stat(path, &st) < 0) {
        host_error(ch, -errno, "%s: %s", path, strerror(errno));
        return;
    }
    union proto_body rp = {
            .stat_reply = {.size = (uint64_t)st.st_size,
                           .mode = st.st_mode,
                           .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
                                       st.st_mtim.tv_nsec}};
    host_reply(ch, &rp);
}

void
fileio_open(struct agent *a, struct chan *ch, const union proto_body *req)
{
    const char *path = req->fopen.path;
    unsigned flags = req->fopen.flags, mode = req->fopen.mode;
    struct fileio *fio = a->files;
    struct ofile *h;
    struct stat st;
    int oflags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

    if (fio->count >= MAX_HANDLES) {
        host_error(ch, -EMFILE, "%s: too many open handles (max %d)", path,
                   MAX_HANDLES);
        return;
    }
    if ((flags & PROTO_O_WRITE) && (flags & PROTO_O_READ))
        oflags |= O_RDWR;
    else if (flags & PROTO_O_WRITE)
        oflags |= O_WRONLY;
    else
        oflags |= O_RDONLY;
    if (flags & PROTO_O_CREATE)
        oflags |= O_CREAT;
    if (flags & PROTO_O_APPEND)
        oflags |= O_APPEND;
    if (flags & PROTO_O_TRUNCATE)
        oflags |= O_TRUNC;
    if (!(h = calloc(1, sizeof(*h)))) {
        host_error(ch, -ENOMEM, "%s: out of memory", path);
        return;
    }
    h->fd = open(path, oflags, mode ? mode : 0644);
    if (h->fd < 0 || fstat(h->fd, &st) < 0) {
        int err = -errno;
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        host_error(ch, err, "%s: %s", path, strerror(-err));
        return;
    }
    h->fio = fio;
    h->regular = S_ISREG(st.st_mode);
    h->id = ++fio->next_id;
    h->next = fio->list;
    fio->list = h;
    fio->count++;
    union proto_body rp = {.fopen_reply = {.handle = h->id}};
    host_reply(ch, &rp);
}

void
fileio_read(struct agent *a, struct chan *ch, const union proto_body *req)
{
    uint64_t id = req->fread.handle;
    size_t n = req->fread.count; /* at most PROTO_MAX_DATA: the table */
    struct ofile *h = find_or_error(a, ch, id);
    uint8_t buf[PROTO_MAX_DATA];
    ssize_t got;

    if (!h || refused_busy(h, ch))
        return;
    got = read(h->fd, buf, n);
    if (got >= 0) {
        reply_data(ch, buf, (size_t)got);
    } else if (errno == EAGAIN && !h->regular) {
        park(h, ch, PENDING_READ, NULL, n);
    } else {
        host_error(ch, -errno, "file#%llu: %s", (unsigned long long)id,
                   strerror(errno));
    }
}

void
fileio_write(struct agent *a, struct chan *ch, const union proto_body *req)
{
    uint64_t id = req->fwrite.handle;
    const void *buf = req->fwrite.data.p;
    size_t len = req->fwrite.data.len;
    struct ofile *h = find_or_error(a, ch, id);
    size_t done = 0;

    if (!h || refused_busy(h, ch))
        return;
    /* Regular files take it all; a pipe may take part (a short count). */
    while (done < len) {
        ssize_t n = write(h->fd, (const uint8_t *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && done == 0 && !h->regular) {
            park(h, ch, PENDING_WRITE, buf, len);
            return;
        }
        if (n < 0 && done == 0) {
            host_error(ch, -errno, "file#%llu: %s", (unsigned long long)id,
                       strerror(errno));
            return;
        }
        if (n <= 0 || !h->regular)
            break;
        done += (size_t)n;
    }
    reply_count(ch, done);
}

void
fileio_seek(struct agent *a, struct chan *ch, const union proto_body *req)
{
    uint64_t id = req->fseek.handle;
    struct ofile *h = find_or_error(a, ch, id);
    /* whence is 0..2: the table */
    static const int whences[] = {SEEK_SET, SEEK_CUR, SEEK_END};

    if (!h)
        return;
    off_t pos =
            lseek(h->fd, (off_t)req->fseek.offset, whences[req->fseek.whence]);
    if (pos < 0) {
        host_error(ch, -errno, "file#%llu: %s", (unsigned long long)id,
                   strerror(errno));
        return;
    }
    union proto_body rp = {.fseek_reply = {.offset = (uint64_t)pos}};
    host_reply(ch, &rp);
}

static void
ofile_destroy(struct ofile *h)
{
    struct fileio *fio = h->fio;
    struct ofile **pp = &fio->list;

    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    fio->count--;
    if (h->op != PENDING_NONE) {
        struct chan *pending = h->pending;
        pending_cancel(h);
        host_error(pending, -EBADF, "handle closed");
    }
    /* Streams end; their sources are freed by the session later, so
     * detach them from the handle now. */
    while (h->streams) {
        struct hstream *st = h->streams;
        h->streams = st->next;
        st->h = NULL;
        st->next = NULL;
        watch_remove(st->sub);
        st->sub = NULL;
        host_end(st->ch, 0, PROTO_END_EOF, "handle closed");
    }
    if (h->watched)
        reactor_unwatch(fio->a->r, h->fd);
    close(h->fd);
    free(h->buf);
    free(h);
}

void
fileio_close(struct agent *a, struct chan *ch, const union proto_body *req)
{
    struct ofile *h = find_or_error(a, ch, req->fclose.handle);
    if (!h)
        return;
    ofile_destroy(h);
    host_reply(ch, NULL);
}

/* ---- fd_stream ---- */

static ssize_t
hstream_read(void *src, void *buf, size_t len)
{
    struct hstream *st = src;
    struct ofile *h = st->h;
    ssize_t n;

    if (!h)
        return 0; /* closed: the end is queued */
    if (h->regular) {
        n = pread(h->fd, buf, len, (off_t)st->off);
        if (n > 0)
            st->off += (uint64_t)n;
        return n < 0 ? (errno == EINTR ? 0 : -errno) : n;
    }
    n = read(h->fd, buf, len);
    if (n > 0)
        return n;
    if (n == 0) {
        host_end(st->ch, 0, PROTO_END_EOF, NULL);
        return 0;
    }
    if (errno != EAGAIN && errno != EINTR)
        return -errno;
    st->want_fd = true;
    update_watch(h);
    return 0;
}

static void
hstream_free(void *src)
{
    struct hstream *st = src;
    if (st->h) {
        struct hstream **pp = &st->h->streams;
        while (*pp != st)
            pp = &(*pp)->next;
        *pp = st->next;
        update_watch(st->h);
    }
    watch_remove(st->sub);
    free(st);
}

static const struct source_ops hstream_ops = {
        .read = hstream_read,
        .free = hstream_free,
};

static void
hstream_event(void *arg, uint32_t mask, const char *name)
{
    struct hstream *st = arg;
    if (mask & (IN_MODIFY | IN_Q_OVERFLOW))
        host_wake(st->ch);
}

void
fileio_stream_open(struct agent *a, struct chan *ch,
                   const union proto_body *req)
{
    uint64_t id = req->open.handle;
    struct ofile *h = find_or_error(a, ch, id);
    struct hstream *st;
    int err;

    if (!h)
        return;
    if (!(st = calloc(1, sizeof(*st)))) {
        host_error(ch, -ENOMEM, "out of memory");
        return;
    }
    st->h = h;
    st->ch = ch;
    if (h->regular) {
        char proc[64];
        off_t pos = lseek(h->fd, 0, SEEK_CUR);
        st->off = pos > 0 ? (uint64_t)pos : 0;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", h->fd);
        if ((err = watch_add(a->watch, proc, IN_MODIFY, hstream_event, st,
                             &st->sub)) < 0) {
            free(st);
            host_error(ch, err, "file#%llu: cannot watch it: %s",
                       (unsigned long long)id, strerror(-err));
            return;
        }
    }
    st->next = h->streams;
    h->streams = st;
    host_ack(ch, st->off, &hstream_ops, st);
}

int
fileio_new(struct agent *a, struct fileio **out)
{
    struct fileio *fio = calloc(1, sizeof(*fio));
    if (!fio)
        return -ENOMEM;
    fio->a = a;
    *out = fio;
    return 0;
}

void
fileio_free(struct fileio *fio)
{
    if (!fio)
        return;
    while (fio->list) {
        struct ofile *h = fio->list;
        fio->list = h->next;
        if (h->watched)
            reactor_unwatch(fio->a->r, h->fd);
        close(h->fd);
        free(h->buf);
        free(h);
    }
    free(fio);
}
