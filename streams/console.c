/*
 * console.c - a VM's console (SPEC §6.1): the daemon's one connection to
 * the VM's QEMU chardev Unix socket, the VM's console history, and the
 * console engine that feeds console streams from it.
 *
 * Why one connection per VM, held from console_new to console_free: QEMU's
 * socket chardev in server mode serves one client at a time and drops the
 * bytes the guest writes while no client is connected (they reach only the
 * chardev's logfile). A reader that connected on its own would see only
 * what came after it connected, and would block every other reader and
 * every console write. So the console connects once, records everything
 * it reads into the history (a spool: on disk, memory stays bounded however
 * much the guest prints), and fans each chunk out to every live console
 * stream as one frame. The history spans sessions: vms/<name>/console is
 * the whole console of the VM's life in this daemon.
 *
 * Sessions. A session is one connection. EOF, ECONNRESET or EPIPE (QEMU
 * quit, the VM was killed or restarted) ends it: every console stream
 * attached to it ends cleanly, so its ops report `console EOF`, and the
 * console reconnects with backoff for the streams opened later. A socket
 * that does not exist yet, or refuses, is retried the same way; it is not
 * an error (the VM may not have started). A stream opened while the
 * console is disconnected is attached to the next session.
 *
 * Streams must be created with stream_config.noun = "console" (engine.c's
 * table says so for the `console` open command): the stream core builds
 * the `console EOF` / `console closed` messages of SPEC §7 from the noun.
 *
 * Writes (console_write, the vms/<name>/console file) go on the same
 * connection, through a bounded queue flushed when the socket is writable.
 * Bytes still queued when a session ends are dropped with it (the guest
 * they were meant for is gone) and counted in info.
 *
 * Ownership: the console owns its stream states' list membership only.
 * A console stream state is owned by its stream (freed by ops->stop). When
 * the session ends, or the console is freed, the state is detached (its
 * console pointer cleared) but stays allocated until stop, so the stream
 * core may call stop and info at any time afterwards.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "streams.h"

#define CONSOLE_CHUNK (64 * 1024) /* one read, one frame (SPEC §6.2) */
#define BACKOFF_MIN (10 * USEC_PER_MSEC)
#define BACKOFF_MAX (500 * USEC_PER_MSEC)

enum console_state {
    CONSOLE_DISCONNECTED, /* waiting for the retry timer */
    CONSOLE_CONNECTING,   /* non-blocking connect in progress */
    CONSOLE_CONNECTED,
};

struct console_stream {
    struct console *c; /* NULL once detached */
    struct console_stream *prev, *next;
    struct stream *s;
    char vm[64];
    bool from_end;
    uint64_t start; /* console history offset the stream starts at */
};

struct console {
    struct reactor *r;
    char *path;
    enum console_state state;
    int fd;
    struct backoff retry;
    struct spool *hist;
    struct console_stream *streams;
    unsigned nstreams;
    struct outq wq; /* bytes for the guest, at most CONSOLE_WRITE_QUEUE */
    uint64_t sessions, dropped_writes, history_errors;
    char error[160]; /* why the last connect or session failed */
};

/* The daemon is one thread: every console reads through this buffer. */
static unsigned char chunk[CONSOLE_CHUNK];

static void console_connect(struct console *c);
static void on_io(struct reactor *r, int fd, unsigned events, void *arg);

static const char *
state_name(enum console_state st)
{
    switch (st) {
    case CONSOLE_CONNECTED:
        return "connected";
    case CONSOLE_CONNECTING:
        return "connecting";
    default:
        return "disconnected";
    }
}

/* ---- stream list ------------------------------------------------- */

static void
attach(struct console *c, struct console_stream *cs)
{
    cs->c = c;
    cs->prev = NULL;
    cs->next = c->streams;
    if (c->streams)
        c->streams->prev = cs;
    c->streams = cs;
    c->nstreams++;
}

static void
detach(struct console_stream *cs)
{
    struct console *c = cs->c;

    if (!c)
        return;
    if (cs->prev)
        cs->prev->next = cs->next;
    else
        c->streams = cs->next;
    if (cs->next)
        cs->next->prev = cs->prev;
    c->nstreams--;
    cs->c = NULL;
    cs->prev = cs->next = NULL;
}

/* End every attached stream (err 0: "console EOF") and detach it. */
static void
end_streams(struct console *c, int err, const char *msg)
{
    while (c->streams) {
        struct console_stream *cs = c->streams;
        detach(cs);
        stream_end(cs->s, err, msg);
    }
}

/* ---- the connection ---------------------------------------------- */

static void
retry_cb(struct reactor *r, void *arg)
{
    console_connect(arg);
}

static void
schedule_retry(struct console *c)
{
    c->state = CONSOLE_DISCONNECTED;
    /* Re-arming an armed timer never fails; a first arming can fail only
     * for lack of memory, and then nothing would ever reconnect: keep the
     * state visible in info rather than spin. */
    if (backoff_schedule(c->r, &c->retry, retry_cb, c) < 0)
        snprintf(c->error, sizeof c->error, "reconnect timer: out of memory");
}

static void
close_fd(struct console *c)
{
    if (c->fd < 0)
        return;
    reactor_unwatch(c->r, c->fd);
    close(c->fd);
    c->fd = -1;
}

/* The session is over: err 0 for a clean end (EOF, reset, broken pipe),
 * else -errno with what failed. */
static void
session_end(struct console *c, int err, const char *what)
{
    char msg[sizeof c->error];

    if (err)
        snprintf(msg, sizeof msg, "console %s: %s", what, strerror(-err));
    else
        snprintf(msg, sizeof msg, "console session ended (%s)", what);
    snprintf(c->error, sizeof c->error, "%s", msg);
    close_fd(c);
    c->dropped_writes += outq_len(&c->wq);
    outq_clear(&c->wq);
    end_streams(c, err, err ? msg : NULL);
    schedule_retry(c);
}

static bool
is_session_end(int err)
{
    return err == ECONNRESET || err == EPIPE || err == ENOTCONN;
}

static void
update_watch(struct console *c)
{
    unsigned ev = REACTOR_IN | (outq_len(&c->wq) ? REACTOR_OUT : 0);
    int rc = reactor_watch(c->r, c->fd, ev, on_io, c);

    if (rc < 0)
        session_end(c, rc, "watch");
}

/* Record one chunk and fan it out: one frame for each live stream. */
static void
deliver(struct console *c, const void *buf, size_t len)
{
    struct console_stream *cs, *next;
    int rc;

    /* Written through (a console's chunks are few and up to 64 KiB each):
     * the console has no per-turn flush of its own. */
    if ((rc = spool_append(c->hist, buf, len)) < 0 ||
        (rc = spool_flush(c->hist)) < 0) {
        /* The history misses this chunk (or holds it in memory until a
         * flush succeeds); the live streams still get it. Counted and
         * shown, never silent. */
        c->history_errors++;
        snprintf(c->error, sizeof c->error, "console history: %s",
                 strerror(-rc));
    }
    for (cs = c->streams; cs; cs = next) {
        next = cs->next;
        /* A failed append has ended that stream (history limit, spool
         * error, closed): it wants nothing more. */
        if (stream_append(cs->s, buf, len) < 0)
            detach(cs);
    }
}

static void
do_read(struct console *c)
{
    ssize_t n = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);

    if (n > 0) {
        backoff_reset(&c->retry); /* a working session: reconnect fast */
        deliver(c, chunk, (size_t)n);
    } else if (n == 0) {
        session_end(c, 0, "EOF");
    } else if (errno != EAGAIN && errno != EINTR) {
        int err = errno;
        if (is_session_end(err))
            session_end(c, 0, strerror(err));
        else
            session_end(c, -err, "read");
    }
}

static void
do_write(struct console *c)
{
    int rc = outq_flush(&c->wq, c->fd);

    if (rc < 0) {
        if (is_session_end(-rc))
            session_end(c, 0, strerror(-rc));
        else
            session_end(c, rc, "write");
        return;
    }
    if (outq_len(&c->wq) == 0)
        update_watch(c);
}

static void
on_io(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct console *c = arg;

    if (events & REACTOR_OUT)
        do_write(c);
    /* Read even on ERR: the read reports EOF or the error. */
    if (c->fd == fd && (events & (REACTOR_IN | REACTOR_ERR)))
        do_read(c);
}

static void
connected(struct console *c)
{
    c->state = CONSOLE_CONNECTED;
    c->sessions++;
    c->error[0] = '\0';
    update_watch(c);
}

static void
on_connect(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct console *c = arg;
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        snprintf(c->error, sizeof c->error, "connect %s: %s", c->path,
                 strerror(err));
        close_fd(c);
        schedule_retry(c);
        return;
    }
    connected(c);
}

static void
console_connect(struct console *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc;

    memcpy(sa.sun_path, c->path, strlen(c->path) + 1); /* checked in new */
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(c->error, sizeof c->error, "socket: %s", strerror(errno));
        schedule_retry(c);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        connected(c);
        return;
    }
    if (errno == EINPROGRESS || errno == EAGAIN) {
        /* EAGAIN: the listener's backlog is full (a Unix socket connect
         * does not go in progress otherwise); wait for writability. */
        c->state = CONSOLE_CONNECTING;
        if ((rc = reactor_watch(c->r, c->fd, REACTOR_OUT, on_connect, c)) == 0)
            return;
        errno = -rc;
    }
    /* ENOENT (no VM yet), ECONNREFUSED (QEMU gone, stale socket file):
     * try again later. */
    snprintf(c->error, sizeof c->error, "connect %s: %s", c->path,
             strerror(errno));
    close_fd(c);
    schedule_retry(c);
}

/* ---- the console ------------------------------------------------- */

int
console_new(struct reactor *r, const char *path, const char *spool_dir,
            struct console **out)
{
    struct console *c;
    int rc;

    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -ENAMETOOLONG;
    if (!*path)
        return -EINVAL;
    if (!(c = calloc(1, sizeof *c)))
        return -ENOMEM;
    c->r = r;
    c->fd = -1;
    backoff_init(&c->retry, BACKOFF_MIN, BACKOFF_MAX);
    outq_init(&c->wq, CONSOLE_WRITE_QUEUE, CONSOLE_WRITE_QUEUE);
    rc = -ENOMEM;
    if (!(c->path = strdup(path)))
        goto fail;
    if ((rc = spool_new(spool_dir, &c->hist)) < 0)
        goto fail;
    console_connect(c);
    *out = c;
    return 0;
fail:
    free(c->path);
    free(c);
    return rc;
}

void
console_free(struct console *c)
{
    if (!c)
        return;
    backoff_stop(c->r, &c->retry);
    close_fd(c);
    end_streams(c, 0, NULL);
    spool_free(c->hist);
    outq_fini(&c->wq);
    free(c->path);
    free(c);
}

/*
 * Queue bytes for the guest, as write(2) would on a non-blocking socket:
 * returns the number of bytes queued (fewer than len when the queue is
 * nearly full; 0 only for len 0), -EAGAIN when the queue is full, or
 * -ENOTCONN while there is no session. Queued bytes go out in order.
 */
int
console_write(struct console *c, const void *buf, size_t len)
{
    size_t room = outq_room(&c->wq);
    bool was_empty = outq_len(&c->wq) == 0;

    if (c->state != CONSOLE_CONNECTED)
        return -ENOTCONN;
    if (len == 0)
        return 0;
    if (room == 0)
        return -EAGAIN;
    if (len > room)
        len = room;
    if (outq_put(&c->wq, buf, len) < 0)
        return -ENOMEM;
    if (was_empty) {
        update_watch(c); /* the first queued bytes: watch for OUT */
        if (c->state != CONSOLE_CONNECTED)
            return -ENOTCONN; /* and the watch failed: session over */
    }
    return (int)len;
}

size_t
console_write_room(const struct console *c)
{
    if (c->state != CONSOLE_CONNECTED)
        return 0;
    return outq_room(&c->wq);
}

uint64_t
console_size(const struct console *c)
{
    return spool_size(c->hist);
}

ssize_t
console_pread(struct console *c, void *buf, size_t len, uint64_t off)
{
    return spool_pread(c->hist, buf, len, off);
}

void
console_info(const struct console *c, char *buf, size_t len)
{
    size_t n;

    /* The path and the error (which names it) are escaped (text.c). */
    n = text_keyval(buf, len, "console", c->path);
    if (n + 1 >= len)
        return;
    n += (size_t)snprintf(buf + n, len - n,
                          "console_state: %s\nconsole_bytes: %" PRIu64
                          "\nconsole_sessions: %" PRIu64
                          "\nconsole_streams: %u\n",
                          state_name(c->state), spool_size(c->hist),
                          c->sessions, c->nstreams);
    if (n < len && (c->dropped_writes || c->history_errors))
        n += (size_t)snprintf(buf + n, len - n,
                              "console_dropped_writes: %" PRIu64
                              "\nconsole_history_errors: %" PRIu64 "\n",
                              c->dropped_writes, c->history_errors);
    if (n < len && c->error[0])
        text_keyval(buf, len, "console_error", c->error);
}

unsigned
console_streams(const struct console *c)
{
    return c->nstreams;
}

/* ---- the engine -------------------------------------------------- */

/* Copy the console history into s, one frame per recorded chunk. Returns
 * 0, or the stream_append error (the stream has then ended with it). */
static int
replay_history(struct console *c, struct stream *s)
{
    uint64_t frames = spool_frames(c->hist), from = 0, to;
    int rc;

    for (uint64_t k = 0; k < frames; k++, from = to) {
        if ((rc = spool_frame_end(c->hist, k, &to)) < 0)
            return rc;
        for (uint64_t off = from; off < to;) {
            size_t want =
                    to - off < sizeof chunk ? (size_t)(to - off) : sizeof chunk;
            ssize_t got = spool_pread(c->hist, chunk, want, off);
            if (got <= 0)
                return got < 0 ? (int)got : -EIO;
            if ((rc = stream_append(s, chunk, (size_t)got)) < 0)
                return rc;
            off += (uint64_t)got;
        }
    }
    return 0;
}

/* start=beginning|end into *from_end: the console engine's option
 * parser (check and open both run it). */
static int
console_parse(const struct engine_req *req, bool *from_end, char *err)
{
    *from_end = false;
    for (int i = 0; i < req->nopts; i++) {
        struct word w = req->opts[i], v;
        if (word_option(w, "start", &v) && word_is(v, "end")) {
            *from_end = true;
        } else if (word_option(w, "start", &v) &&
                   (word_is(v, "beginning") || word_is(v, "start"))) {
            *from_end = false;
        } else if (word_option(w, "start", &v)) {
            snprintf(err, COMMAND_ERR_LEN,
                     "start: expected beginning or end (got `%.*s`)",
                     (int)(v.len > 64 ? 64 : v.len), v.p);
            return -EINVAL;
        } else {
            snprintf(err, COMMAND_ERR_LEN, "unknown option `%.*s`",
                     (int)(w.len > 64 ? 64 : w.len), w.p);
            return -EINVAL;
        }
    }
    return 0;
}

static int
console_check(const struct engine_req *req, char *err)
{
    bool from_end;

    return console_parse(req, &from_end, err);
}

/* open: req->target is the VM's name (the caller resolved it into ctx,
 * the VM's console). */
static int
console_open(struct stream *s, void *ctx, const struct engine_req *req,
             engine_opened_fn *opened, void *arg, void **state, char *err)
{
    struct console *c = ctx;
    struct console_stream *cs;
    bool from_end;
    int rc;

    if (!c) {
        snprintf(err, COMMAND_ERR_LEN,
                 "usage: console VM [start=beginning|end]");
        return -EINVAL;
    }
    if ((rc = console_parse(req, &from_end, err)) < 0)
        return rc;
    if (!(cs = calloc(1, sizeof *cs))) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    cs->s = s;
    cs->from_end = from_end;
    snprintf(cs->vm, sizeof cs->vm, "%.*s",
             (int)(req->target.len < sizeof cs->vm ? req->target.len
                                                   : sizeof cs->vm - 1),
             req->target.p);
    cs->start = from_end ? spool_size(c->hist) : 0;
    if (!from_end) {
        rc = replay_history(c, s);
        /* A spool read failure leaves the stream live but incomplete:
         * refuse rather than show a console with a hole in it. */
        if (rc < 0 && stream_state(s) == STREAM_LIVE) {
            snprintf(err, COMMAND_ERR_LEN, "console %s: history: %s", cs->vm,
                     strerror(-rc));
            free(cs);
            return rc;
        }
    }
    /* An append failure (history limit) has ended the stream with its
     * error: it is opened, and its ops report why it ended. */
    if (stream_state(s) == STREAM_LIVE)
        attach(c, cs);
    *state = cs;
    stream_set_source(s, &console_engine, cs);
    opened(s, 0, NULL, arg);
    return 0;
}

static void
console_stop(void *state)
{
    struct console_stream *cs = state;

    if (!cs)
        return;
    detach(cs);
    free(cs);
}

static void
console_stream_info(void *state, char *buf, size_t len)
{
    struct console_stream *cs = state;
    size_t n = strnlen(buf, len);

    if (n >= len)
        return;
    n += (size_t)snprintf(buf + n, len - n,
                          "source: console %s\nconsole_start: %s\n"
                          "console_offset: %" PRIu64 "\n",
                          cs->vm, cs->from_end ? "end" : "beginning",
                          cs->start);
    if (n < len && cs->c)
        console_info(cs->c, buf + n, len - n);
    else if (n < len)
        snprintf(buf + n, len - n, "console_session: ended\n");
}

const struct engine_ops console_engine = {
        .name = "console",
        .check = console_check,
        .open = console_open,
        .stop = console_stop,
        .info = console_stream_info,
};
