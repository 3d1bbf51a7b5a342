/*
 * host.c - one host connection of provium-agent (a session): the
 * handshake, frame decoding and dispatch, the channel table, and the
 * sender.
 *
 * Flow control lives here and only here (docs/protocol.md): a source is
 * read only from host_pump(), only when its channel has credit and the
 * output buffer is below OUT_HIGH, and channels take turns one frame at a
 * time. Host frames are not even decoded while the output is above the
 * mark, so neither a slow nor a hostile host makes the agent buffer
 * without bound.
 */
#include "guest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define IN_CAP (64 * 1024)
#define OUT_HIGH (256 * 1024)
#define CHAN_BUCKETS 1024
#define MAX_CHANNELS 4096
#define MAX_CREDIT 0xffffffffull
#define READS_PER_TURN 4 /* input reads per readiness callback */

struct chan {
    struct host *s;
    uint32_t id;
    bool stream;
    const struct source_ops *ops; /* set by host_ack */
    void *src;
    uint64_t credit;
    bool want; /* the source may have bytes */
    bool ending;
    int end_err;
    unsigned end_reason;
    char *end_msg;
    void (*cancel)(void *arg); /* a parked request */
    void *cancel_arg;
    bool queued;
    struct chan *qnext, *qprev;
    struct chan *hnext;
};

struct host {
    struct agent *a;
    int rfd, wfd;
    unsigned rev, wev; /* events currently watched on rfd / wfd */
    struct proto_decoder dec;
    uint8_t *in;
    size_t in_off, in_len;
    struct outq out; /* frames for the host; OUT_HIGH is its mark */
    uint8_t *scratch; /* one source read */
    bool hello, closing, dead, quiet_end;
    uint32_t max_id;
    size_t nchans;
    struct chan *buckets[CHAN_BUCKETS];
    struct chan *qhead, *qtail;
    struct reactor_timer pump_timer, close_timer;
    host_closed_fn *closed;
    void *arg;
};

static void host_update(struct host *s);
static void host_pump(struct reactor *r, void *arg);

/* ---- output ---- */

static void fail(struct host *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Append one frame with the given body. */
static void
send_frame(struct host *s, unsigned type, uint32_t ch, const void *body,
           size_t len)
{
    uint8_t *p;
    if (s->dead)
        return;
    p = outq_reserve(&s->out, PROTO_HEADER_LEN + len);
    if (!p) {
        fail(s, "out of memory for output");
        return;
    }
    proto_header(p, (uint32_t)len, type, ch);
    if (len)
        memcpy(p + PROTO_HEADER_LEN, body, len);
    outq_commit(&s->out, PROTO_HEADER_LEN + len);
    if (!reactor_timer_armed(&s->pump_timer))
        reactor_timer_start(s->a->r, &s->pump_timer, 0, host_pump, s);
}

static void
send_msg(struct host *s, unsigned type, uint32_t ch, int err,
         unsigned reason, uint64_t value, const char *msg)
{
    uint8_t body[32 + PROTO_MAX_MSG];
    struct proto_writer w;
    size_t len = msg ? strnlen(msg, PROTO_MAX_MSG - 1) : 0;

    proto_writer_init(&w, body, sizeof(body));
    if (type == PROTO_NOTE) {
        proto_put_u8(&w, (uint8_t)reason);
        proto_put_u64(&w, value);
    } else {
        proto_put_u32(&w, (uint32_t)err);
        if (type == PROTO_END)
            proto_put_u8(&w, (uint8_t)reason);
    }
    proto_put_str(&w, msg ? msg : "", len);
    send_frame(s, type, ch, body, w.len);
}

/* ---- channels ---- */

static struct chan **
chan_slot(struct host *s, uint32_t id)
{
    struct chan **pp = &s->buckets[id % CHAN_BUCKETS];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->hnext;
    return pp;
}

static void
queue_remove(struct host *s, struct chan *ch)
{
    if (!ch->queued)
        return;
    if (ch->qprev)
        ch->qprev->qnext = ch->qnext;
    else
        s->qhead = ch->qnext;
    if (ch->qnext)
        ch->qnext->qprev = ch->qprev;
    else
        s->qtail = ch->qprev;
    ch->qnext = ch->qprev = NULL;
    ch->queued = false;
}

static void
queue_push(struct host *s, struct chan *ch)
{
    if (ch->queued)
        return;
    ch->qprev = s->qtail;
    ch->qnext = NULL;
    if (s->qtail)
        s->qtail->qnext = ch;
    else
        s->qhead = ch;
    s->qtail = ch;
    ch->queued = true;
    if (!reactor_timer_armed(&s->pump_timer))
        reactor_timer_start(s->a->r, &s->pump_timer, 0, host_pump, s);
}

/* Forget a channel. A parked request is cancelled only when the host
 * closed it or went away, never when it was answered. */
static void
chan_drop(struct chan *ch, bool cancel)
{
    struct host *s = ch->s;
    struct chan **pp = chan_slot(s, ch->id);

    if (*pp == ch)
        *pp = ch->hnext;
    queue_remove(s, ch);
    s->nchans--;
    if (cancel && ch->cancel)
        ch->cancel(ch->cancel_arg);
    if (ch->ops)
        ch->ops->free(ch->src);
    free(ch->end_msg);
    free(ch);
}

void
host_ack(struct chan *ch, uint64_t offset, const struct source_ops *ops,
            void *src)
{
    uint8_t body[8];
    struct proto_writer w;

    proto_writer_init(&w, body, sizeof(body));
    proto_put_u64(&w, offset);
    send_frame(ch->s, PROTO_ACK, ch->id, body, w.len);
    ch->ops = ops;
    ch->src = src;
    host_wake(ch);
}

void
host_wake(struct chan *ch)
{
    ch->want = true;
    if (ch->credit > 0 && ch->ops)
        queue_push(ch->s, ch);
}

void
host_note(struct chan *ch, unsigned code, uint64_t value, const char *msg)
{
    send_msg(ch->s, PROTO_NOTE, ch->id, 0, code, value, msg);
}

void
host_end(struct chan *ch, int err, unsigned reason, const char *msg)
{
    if (ch->ending)
        return;
    ch->ending = true;
    ch->end_err = -err;
    ch->end_reason = reason;
    ch->end_msg = msg ? strdup(msg) : NULL;
    queue_push(ch->s, ch);
}

void
host_reply(struct chan *ch, const void *body, size_t len)
{
    send_frame(ch->s, PROTO_REPLY, ch->id, body, len);
    chan_drop(ch, false);
}

void
host_error(struct chan *ch, int err, const char *fmt, ...)
{
    char msg[PROTO_MAX_MSG];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_msg(ch->s, PROTO_ERROR, ch->id, err < 0 ? -err : EIO, 0, 0, msg);
    chan_drop(ch, false);
}

void
host_park(struct chan *ch, void (*cancel)(void *arg), void *arg)
{
    ch->cancel = cancel;
    ch->cancel_arg = arg;
}

/* ---- the sender ---- */

/* Write what the connection takes. */
static void
flush(struct host *s)
{
    int rc;

    if (!s->dead && (rc = outq_flush(&s->out, s->wfd)) < 0)
        fail(s, "write to host: %s", strerror(-rc));
}

/* One frame from one channel. */
static void
pump_chan(struct host *s, struct chan *ch)
{
    size_t n = ch->credit < PROTO_MAX_DATA ? ch->credit : PROTO_MAX_DATA;
    ssize_t got;

    if (ch->ending) {
        send_msg(s, PROTO_END, ch->id, ch->end_err, ch->end_reason, 0,
                 ch->end_msg);
        chan_drop(ch, false);
        return;
    }
    if (!ch->want || n == 0 || !ch->ops)
        return;
    /* Read into scratch, not into the output buffer: the source may add
     * a note or end to the output while it reads. */
    got = ch->ops->read(ch->src, s->scratch, n);
    if (got > 0) {
        send_frame(s, PROTO_DATA, ch->id, s->scratch, (size_t)got);
        ch->credit -= (uint64_t)got;
        if (ch->credit > 0)
            queue_push(s, ch); /* back of the line: round-robin */
    } else if (got == 0) {
        ch->want = false;
    } else {
        char msg[PROTO_MAX_MSG];
        snprintf(msg, sizeof(msg), "read: %s", strerror((int)-got));
        host_end(ch, (int)got, PROTO_END_ERROR, msg);
    }
}

static void process_input(struct host *s);

static void
host_pump(struct reactor *r, void *arg)
{
    struct host *s = arg;

    for (;;) {
        flush(s);
        if (s->dead)
            return;
        if (!s->qhead || outq_high(&s->out))
            break;
        while (s->qhead && !outq_high(&s->out)) {
            struct chan *ch = s->qhead;
            queue_remove(s, ch);
            pump_chan(s, ch);
            if (s->dead)
                return;
        }
    }
    if (s->closing && outq_len(&s->out) == 0) {
        fail(s, "handshake refused");
        return;
    }
    /* Everything queued was sent or waits for REACTOR_OUT. */
    reactor_timer_stop(r, &s->pump_timer);
    /* Input parked above the mark can go on now. */
    if (s->in_len > 0 && !outq_high(&s->out))
        process_input(s);
    host_update(s);
}

/* ---- the fds ---- */

static void host_io(struct reactor *r, int fd, unsigned events, void *arg);

static void
watch_fd(struct host *s, int fd, unsigned want, unsigned *cur)
{
    if (want == *cur)
        return;
    if (want == 0)
        reactor_unwatch(s->a->r, fd);
    else if (reactor_watch(s->a->r, fd, want, host_io, s) < 0) {
        fail(s, "watch: %s", strerror(errno));
        return;
    }
    *cur = want;
}

static void
host_update(struct host *s)
{
    unsigned rd = 0, wr = 0;

    if (s->dead)
        return;
    if (!s->closing && s->in_len == 0 && !outq_high(&s->out))
        rd = REACTOR_IN;
    if (outq_len(&s->out) > 0)
        wr = REACTOR_OUT;
    if (s->rfd == s->wfd) {
        watch_fd(s, s->rfd, rd | wr, &s->rev);
    } else {
        watch_fd(s, s->rfd, rd, &s->rev);
        watch_fd(s, s->wfd, wr, &s->wev);
    }
}

static void
host_io(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct host *s = arg;

    if (fd == s->wfd && (events & (REACTOR_OUT | REACTOR_ERR))) {
        host_pump(r, s);
        if (s->dead)
            return;
    }
    if (fd != s->rfd || !(events & (REACTOR_IN | REACTOR_ERR)))
        return;
    for (int i = 0; i < READS_PER_TURN && s->in_len == 0 && !s->closing &&
                    !outq_high(&s->out);
         i++) {
        ssize_t n = read(s->rfd, s->in, IN_CAP);
        if (n == 0) {
            s->quiet_end = true; /* the normal end: not worth a log line */
            fail(s, "host closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                fail(s, "read from host: %s", strerror(errno));
            break;
        }
        s->in_off = 0;
        s->in_len = (size_t)n;
        process_input(s);
        if (s->dead)
            return;
    }
    host_update(s);
}

/* ---- dispatch ---- */

static void drop_all(struct host *s, bool cancel);

static void
send_hello_ok(struct host *s)
{
    uint8_t body[64 + 3 * PROTO_MAX_FACT];
    struct proto_writer w;
    struct utsname u;

    if (uname(&u) < 0)
        memset(&u, 0, sizeof(u));
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, PROTO_MAGIC);
    proto_put_u32(&w, PROTO_VERSION);
    proto_put_str(&w, u.sysname, strnlen(u.sysname, sizeof(u.sysname)));
    proto_put_str(&w, u.release, strnlen(u.release, sizeof(u.release)));
    proto_put_str(&w, AGENT_VERSION, strlen(AGENT_VERSION));
    proto_put_u64(&w, s->a->instance);
    send_frame(s, PROTO_HELLO_OK, 0, body, w.len);
}

static void
on_hello(struct host *s, const struct proto_frame *f)
{
    struct proto_reader rd;
    uint32_t magic, vmin, vmax;

    proto_reader_init(&rd, f->body, f->len);
    magic = proto_get_u32(&rd);
    vmin = proto_get_u32(&rd);
    vmax = proto_get_u32(&rd);
    if (proto_get_done(&rd) < 0 || magic != PROTO_MAGIC || f->channel) {
        fail(s, "malformed hello");
        return;
    }
    /* A hello on a live session is a new host on a port that has no
     * connection boundary (virtio-serial): start over. */
    drop_all(s, true);
    s->max_id = 0;
    if (vmin > PROTO_VERSION || vmax < PROTO_VERSION) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "protocol version mismatch (host: %u-%u, agent: %u)", vmin,
                 vmax, PROTO_VERSION);
        send_msg(s, PROTO_ERROR, 0, EPROTONOSUPPORT, 0, 0, msg);
        s->closing = true;
        return;
    }
    s->hello = true;
    send_hello_ok(s);
}

static struct chan *
chan_new(struct host *s, uint32_t id, bool stream)
{
    struct chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->s = s;
    ch->id = id;
    ch->stream = stream;
    struct chan **pp = chan_slot(s, id);
    *pp = ch;
    s->nchans++;
    return ch;
}

/* Parse exec's strings into one block: argv, env, then the bytes. */
static int
parse_exec(struct proto_reader *rd, struct job_exec_req *req, char **block,
           size_t body_len)
{
    char cwd[PROTO_MAX_PATH];
    proto_get_str(rd, cwd, sizeof(cwd));
    unsigned argc = proto_get_u16(rd), envc = proto_get_u16(rd);
    if (rd->bad || argc < 1 || argc > PROTO_MAX_ARGS || envc > PROTO_MAX_ARGS)
        return -EPROTO;
    size_t ptrs = (argc + 1 + envc + 1) * sizeof(char *);
    size_t cap = body_len + argc + envc + 1; /* every string + its NUL */
    char *b = malloc(ptrs + cap + sizeof(cwd));
    if (!b)
        return -ENOMEM;
    char **v = (char **)(void *)b, *p = b + ptrs, *end = p + cap;
    for (unsigned i = 0; i < argc + envc; i++) {
        size_t room = (size_t)(end - p);
        proto_get_str(rd, p, room < PROTO_MAX_ARG ? room : PROTO_MAX_ARG);
        if (rd->bad) {
            free(b);
            return -EPROTO;
        }
        v[i < argc ? i : i + 1] = p;
        p += strlen(p) + 1;
    }
    v[argc] = NULL;
    v[argc + 1 + envc] = NULL;
    req->argc = (int)argc;
    req->argv = v;
    req->envc = (int)envc;
    req->env = v + argc + 1;
    req->cwd = NULL;
    if (cwd[0]) {
        strcpy(end, cwd);
        req->cwd = end;
    }
    *block = b;
    return 0;
}

static void
on_stat(struct chan *ch, const char *path)
{
    struct stat st;
    uint8_t body[32];
    struct proto_writer w;

    if (stat(path, &st) < 0) {
        host_error(ch, -errno, "%s: %s", path, strerror(errno));
        return;
    }
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u64(&w, (uint64_t)st.st_size);
    proto_put_u32(&w, st.st_mode);
    proto_put_u64(&w, (uint64_t)((int64_t)st.st_mtim.tv_sec * 1000000000 +
                                 st.st_mtim.tv_nsec));
    host_reply(ch, body, w.len);
}

/* A frame for an existing channel: credit or close. */
static void
on_existing(struct host *s, const struct proto_frame *f)
{
    struct chan *ch = *chan_slot(s, f->channel);
    struct proto_reader rd;

    proto_reader_init(&rd, f->body, f->len);
    uint32_t credit = f->type == PROTO_CREDIT ? proto_get_u32(&rd) : 0;
    if (proto_get_done(&rd) < 0 || f->channel == 0) {
        fail(s, "malformed %s frame", proto_type_name(f->type));
        return;
    }
    if (!ch) {
        /* Frames crossing our end are fine; unknown future ids are not. */
        if (f->channel > s->max_id)
            fail(s, "%s on channel %u that was never opened",
                 proto_type_name(f->type), f->channel);
        return;
    }
    if (f->type == PROTO_CLOSE) {
        chan_drop(ch, true);
        return;
    }
    ch->credit += credit;
    if (ch->credit > MAX_CREDIT)
        ch->credit = MAX_CREDIT;
    if (ch->want)
        host_wake(ch);
}

static void
dispatch(struct host *s, const struct proto_frame *f)
{
    struct agent *a = s->a;
    struct proto_reader rd;
    char path[PROTO_MAX_PATH];
    struct chan *ch;

    if (!proto_type_from_host(f->type)) {
        fail(s, "host sent agent-only message %s", proto_type_name(f->type));
        return;
    }
    if (f->type == PROTO_HELLO) {
        on_hello(s, f);
        return;
    }
    if (!s->hello) {
        fail(s, "received %s before hello", proto_type_name(f->type));
        return;
    }
    if (f->type == PROTO_CREDIT || f->type == PROTO_CLOSE) {
        on_existing(s, f);
        return;
    }
    if (f->channel == 0 || f->channel <= s->max_id) {
        fail(s, "%s on channel %u: channel ids must increase",
             proto_type_name(f->type), f->channel);
        return;
    }
    s->max_id = f->channel;
    bool stream = f->type == PROTO_OPEN_TAIL || f->type == PROTO_OPEN_FD ||
                  f->type == PROTO_OPEN_PROC;
    ch = chan_new(s, f->channel, stream);
    if (!ch) {
        fail(s, "out of memory for a channel");
        return;
    }
    if (s->nchans > MAX_CHANNELS) {
        host_error(ch, -EMFILE, "too many channels (max %d)", MAX_CHANNELS);
        return;
    }
    proto_reader_init(&rd, f->body, f->len);
    if (stream)
        ch->credit = proto_get_u32(&rd);

    switch (f->type) {
    case PROTO_OPEN_TAIL: {
        struct follow_req req = {.path = path};
        req.start = proto_get_u8(&rd);
        req.flags = proto_get_u8(&rd);
        req.offset = proto_get_u64(&rd);
        proto_get_str(&rd, path, sizeof(path));
        if (proto_get_done(&rd) < 0)
            break;
        if (req.start > PROTO_START_BACK ||
            (req.flags & ~PROTO_TAIL_FOLLOW_DESCRIPTOR) || !path[0]) {
            host_error(ch, -EINVAL, "bad start or flags");
            return;
        }
        follow_open(a, ch, &req);
        return;
    }
    case PROTO_OPEN_FD: {
        uint64_t h = proto_get_u64(&rd);
        if (proto_get_done(&rd) < 0)
            break;
        fileio_stream_open(a, ch, h);
        return;
    }
    case PROTO_OPEN_PROC: {
        uint64_t id = proto_get_u64(&rd);
        unsigned which = proto_get_u8(&rd);
        if (proto_get_done(&rd) < 0)
            break;
        if (which != PROTO_STDOUT && which != PROTO_STDERR) {
            host_error(ch, -EINVAL, "bad output %u (1 stdout, 2 stderr)",
                          which);
            return;
        }
        job_stream_open(a, ch, id, which);
        return;
    }
    case PROTO_EXEC: {
        struct job_exec_req req;
        char *block;
        int err = parse_exec(&rd, &req, &block, f->len);
        if (err == -ENOMEM) {
            host_error(ch, err, "out of memory");
            return;
        }
        if (err < 0 || proto_get_done(&rd) < 0) {
            if (!err)
                free(block);
            break;
        }
        job_exec(a, ch, &req);
        free(block);
        return;
    }
    case PROTO_WAIT:
    case PROTO_STDIN_CLOSE:
    case PROTO_FCLOSE: {
        uint64_t id = proto_get_u64(&rd);
        if (proto_get_done(&rd) < 0)
            break;
        if (f->type == PROTO_WAIT)
            job_wait(a, ch, id);
        else if (f->type == PROTO_STDIN_CLOSE)
            job_stdin_close(a, ch, id);
        else
            fileio_close(a, ch, id);
        return;
    }
    case PROTO_KILL: {
        uint64_t id = proto_get_u64(&rd);
        uint32_t sig = proto_get_u32(&rd);
        if (proto_get_done(&rd) < 0)
            break;
        job_kill(a, ch, id, (int)(sig > 1024 ? 1024 : sig));
        return;
    }
    case PROTO_STDIN:
    case PROTO_FWRITE: {
        uint64_t id = proto_get_u64(&rd);
        const void *p;
        size_t n;
        proto_get_bytes(&rd, &p, &n, PROTO_MAX_DATA);
        if (proto_get_done(&rd) < 0)
            break;
        if (f->type == PROTO_STDIN)
            job_stdin(a, ch, id, p, n);
        else
            fileio_write(a, ch, id, p, n);
        return;
    }
    case PROTO_FOPEN: {
        uint32_t flags = proto_get_u32(&rd), mode = proto_get_u32(&rd);
        proto_get_str(&rd, path, sizeof(path));
        if (proto_get_done(&rd) < 0)
            break;
        if ((flags & ~PROTO_O_ALL) || !path[0] || mode > 07777) {
            host_error(ch, -EINVAL, "bad flags or mode");
            return;
        }
        fileio_open(a, ch, path, flags, mode);
        return;
    }
    case PROTO_FREAD: {
        uint64_t h = proto_get_u64(&rd);
        uint32_t n = proto_get_u32(&rd);
        if (proto_get_done(&rd) < 0)
            break;
        if (n > PROTO_MAX_DATA) {
            host_error(ch, -EINVAL, "count %u over %d", n, PROTO_MAX_DATA);
            return;
        }
        fileio_read(a, ch, h, n);
        return;
    }
    case PROTO_FSEEK: {
        uint64_t h = proto_get_u64(&rd);
        int64_t off = (int64_t)proto_get_u64(&rd);
        unsigned whence = proto_get_u8(&rd);
        if (proto_get_done(&rd) < 0)
            break;
        if (whence > PROTO_SEEK_END) {
            host_error(ch, -EINVAL, "bad whence %u", whence);
            return;
        }
        fileio_seek(a, ch, h, off, whence);
        return;
    }
    case PROTO_STAT:
        proto_get_str(&rd, path, sizeof(path));
        if (proto_get_done(&rd) < 0)
            break;
        on_stat(ch, path);
        return;
    }
    fail(s, "malformed %s body (%zu bytes)", proto_type_name(f->type), f->len);
}

static void
process_input(struct host *s)
{
    while (s->in_len > 0 && !s->dead && !s->closing &&
           !outq_high(&s->out)) {
        struct proto_frame f;
        size_t used;
        int rc = proto_decode(&s->dec, s->in + s->in_off, s->in_len, &used, &f);
        s->in_off += used;
        s->in_len -= used;
        if (rc < 0) {
            fail(s, "bad frame from host: %s",
                 rc == -EMSGSIZE ? "frame too large" : "malformed header");
            return;
        }
        if (rc == 1)
            dispatch(s, &f);
    }
}

/* ---- life ---- */

static void
drop_all(struct host *s, bool cancel)
{
    for (size_t i = 0; i < CHAN_BUCKETS; i++)
        while (s->buckets[i])
            chan_drop(s->buckets[i], cancel);
}

static void
host_closed(struct reactor *r, void *arg)
{
    struct host *s = arg;
    s->closed(s->arg);
}

static void
fail(struct host *s, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (s->dead)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!s->quiet_end || agent_log_verbose())
        agent_log("session ended: %s", msg);
    s->dead = true;
    if (s->rev)
        reactor_unwatch(s->a->r, s->rfd);
    if (s->wev && s->wfd != s->rfd)
        reactor_unwatch(s->a->r, s->wfd);
    s->rev = s->wev = 0;
    reactor_timer_stop(s->a->r, &s->pump_timer);
    reactor_timer_start(s->a->r, &s->close_timer, 0, host_closed, s);
}

int
host_new(struct agent *a, int rfd, int wfd, host_closed_fn *closed,
            void *arg, struct host **out)
{
    struct host *s = calloc(1, sizeof(*s));
    int err = -ENOMEM;

    if (!s)
        goto err_fds;
    s->a = a;
    s->rfd = rfd;
    s->wfd = wfd;
    s->closed = closed;
    s->arg = arg;
    outq_init(&s->out, 0, OUT_HIGH);
    s->in = malloc(IN_CAP);
    s->scratch = malloc(PROTO_MAX_DATA);
    if (!s->in || !s->scratch)
        goto err_free;
    if ((err = proto_decoder_init(&s->dec)) < 0)
        goto err_free;
    host_update(s);
    if (s->dead) {
        err = -EIO;
        goto err_free;
    }
    *out = s;
    return 0;
err_free:
    reactor_timer_stop(a->r, &s->close_timer);
    proto_decoder_fini(&s->dec);
    free(s->scratch);
    outq_fini(&s->out);
    free(s->in);
    free(s);
err_fds:
    close(rfd);
    if (wfd != rfd)
        close(wfd);
    return err;
}

void
host_free(struct host *s)
{
    if (!s)
        return;
    drop_all(s, true);
    if (s->rev)
        reactor_unwatch(s->a->r, s->rfd);
    if (s->wev && s->wfd != s->rfd)
        reactor_unwatch(s->a->r, s->wfd);
    reactor_timer_stop(s->a->r, &s->pump_timer);
    reactor_timer_stop(s->a->r, &s->close_timer);
    close(s->rfd);
    if (s->wfd != s->rfd)
        close(s->wfd);
    proto_decoder_fini(&s->dec);
    free(s->scratch);
    outq_fini(&s->out);
    free(s->in);
    free(s);
}
