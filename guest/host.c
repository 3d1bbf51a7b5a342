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
#include <sys/queue.h>
#include <sys/utsname.h>
#include <unistd.h>

#define IN_CAP (64 * 1024)
#define OUT_HIGH (256 * 1024)
#define CHAN_BUCKETS 1024
#define MAX_CREDIT 0xffffffffull
#define READS_PER_TURN 4 /* input reads per readiness callback */

struct chan {
    struct host *s;
    uint32_t id;
    unsigned type;                /* the request or open that made it */
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
    bool queued;             /* on the send queue */
    TAILQ_ENTRY(chan) qlink; /* its place there */
    struct chan *hnext;
};

struct host {
    struct agent *a;
    int rfd, wfd;
    unsigned rev, wev; /* events currently watched on rfd / wfd */
    struct proto_decoder dec;
    struct proto_msg *msg; /* the host's frame being handled, decoded */
    uint8_t *in;
    size_t in_off, in_len;
    struct outq out;  /* frames for the host; OUT_HIGH is its mark */
    uint8_t *scratch; /* one source read */
    bool hello, closing, dead, quiet_end;
    uint32_t max_id;
    size_t nchans;
    struct chan *buckets[CHAN_BUCKETS];
    TAILQ_HEAD(, chan) queue; /* channels with something to send */
    struct reactor_timer pump_timer, close_timer;
    host_closed_fn *closed;
    void *arg;
};

static void host_update(struct host *s);
static void host_pump(struct reactor *r, void *arg);

/* ---- output ---- */

static void fail(struct host *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Queue one message; the pump sends it. The output has no limit (the
 * mark bounds it), so a failure is memory, or a body the table refuses:
 * a bug of ours. Either way the session ends, loudly. */
static void
send_msg(struct host *s, unsigned type, unsigned request, uint32_t ch,
         const union proto_body *b)
{
    int err;

    if (s->dead)
        return;
    if ((err = proto_msg_queue(&s->out, type, request, ch, b)) < 0) {
        fail(s, "cannot send %s: %s", proto_type_name(type),
             err == -ENOBUFS ? "out of memory for output" : strerror(-err));
        return;
    }
    if (!reactor_timer_armed(&s->pump_timer))
        reactor_timer_start(s->a->r, &s->pump_timer, 0, host_pump, s);
}

/* note, end and error carry a message of at most PROTO_MAX_MSG - 1
 * bytes: a longer one is cut there. */
static const char *
message(char *buf, const char *msg)
{
    snprintf(buf, PROTO_MAX_MSG, "%s", msg ? msg : "");
    return buf;
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
    TAILQ_REMOVE(&s->queue, ch, qlink);
    ch->queued = false;
}

static void
queue_push(struct host *s, struct chan *ch)
{
    if (ch->queued)
        return;
    TAILQ_INSERT_TAIL(&s->queue, ch, qlink);
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
    union proto_body b = {.ack = {.offset = offset}};

    send_msg(ch->s, PROTO_ACK, 0, ch->id, &b);
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
    char text[PROTO_MAX_MSG];
    union proto_body b = {.note = {.code = (uint8_t)code,
                                   .value = value,
                                   .message = message(text, msg)}};

    send_msg(ch->s, PROTO_NOTE, 0, ch->id, &b);
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
host_reply(struct chan *ch, const union proto_body *reply)
{
    static const union proto_body empty;

    send_msg(ch->s, PROTO_REPLY, ch->type, ch->id, reply ? reply : &empty);
    chan_drop(ch, false);
}

void
host_error(struct chan *ch, int err, const char *fmt, ...)
{
    char msg[PROTO_MAX_MSG];
    union proto_body b = {
            .error = {.err = (uint32_t)(err < 0 ? -err : EIO), .message = msg}};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_msg(ch->s, PROTO_ERROR, 0, ch->id, &b);
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
        char text[PROTO_MAX_MSG];
        union proto_body b = {.end = {.err = (uint32_t)ch->end_err,
                                      .reason = (uint8_t)ch->end_reason,
                                      .message = message(text, ch->end_msg)}};
        send_msg(s, PROTO_END, 0, ch->id, &b);
        chan_drop(ch, false);
        return;
    }
    if (!ch->want || n == 0 || !ch->ops)
        return;
    /* Read into scratch, not into the output buffer: the source may add
     * a note or end to the output while it reads. */
    got = ch->ops->read(ch->src, s->scratch, n);
    if (got > 0) {
        union proto_body b = {.data = {s->scratch, (size_t)got}};
        send_msg(s, PROTO_DATA, 0, ch->id, &b);
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
        if (TAILQ_EMPTY(&s->queue) || outq_high(&s->out))
            break;
        while (!TAILQ_EMPTY(&s->queue) && !outq_high(&s->out)) {
            struct chan *ch = TAILQ_FIRST(&s->queue);
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
        /* A short read took all there was: asking again would only say
         * EAGAIN. The watch is level-triggered (reactor.c), so bytes that
         * come later call us back. */
        if ((size_t)n < IN_CAP)
            break;
    }
    host_update(s);
}

/* ---- dispatch ---- */

static void drop_all(struct host *s, bool cancel);

static void
send_hello_ok(struct host *s)
{
    struct utsname u;

    if (uname(&u) < 0)
        memset(&u, 0, sizeof(u));
    union proto_body b = {.hello_ok = {.magic = PROTO_MAGIC,
                                       .version = PROTO_VERSION,
                                       .os = u.sysname,
                                       .kernel = u.release,
                                       .agent_version = AGENT_VERSION,
                                       .instance = s->a->instance}};
    send_msg(s, PROTO_HELLO_OK, 0, 0, &b);
}

static void
on_hello(struct host *s, const struct proto_frame *f)
{
    const struct proto_hello *h = &s->msg->body.hello;

    /* The table checks the magic. */
    if (proto_msg_decode(f, 0, s->msg) < 0 || f->channel) {
        fail(s, "malformed hello");
        return;
    }
    /* A hello on a live session is a new host on a port that has no
     * connection boundary (virtio-serial): start over. */
    drop_all(s, true);
    s->max_id = 0;
    if (h->version_min > PROTO_VERSION || h->version_max < PROTO_VERSION) {
        char msg[128];
        union proto_body b = {
                .error = {.err = EPROTONOSUPPORT, .message = msg}};
        snprintf(msg, sizeof(msg),
                 "protocol version mismatch (host: %u-%u, agent: %u)",
                 h->version_min, h->version_max, PROTO_VERSION);
        send_msg(s, PROTO_ERROR, 0, 0, &b);
        s->closing = true;
        return;
    }
    s->hello = true;
    send_hello_ok(s);
}

static struct chan *
chan_new(struct host *s, uint32_t id, unsigned type)
{
    struct chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->s = s;
    ch->id = id;
    ch->type = type;
    struct chan **pp = chan_slot(s, id);
    *pp = ch;
    s->nchans++;
    return ch;
}

/* A frame for an existing channel: credit or close. */
static void
on_existing(struct host *s, const struct proto_frame *f)
{
    struct chan *ch = *chan_slot(s, f->channel);

    if (proto_msg_decode(f, 0, s->msg) < 0 || f->channel == 0) {
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
    ch->credit += s->msg->body.credit.bytes;
    if (ch->credit > MAX_CREDIT)
        ch->credit = MAX_CREDIT;
    if (ch->want)
        host_wake(ch);
}

/* A request or a stream open: a new channel, the body decoded with the
 * table, and the agent's handler for the type (agent.c's table). */
static void
on_request(struct host *s, const struct proto_frame *f)
{
    host_request_fn *handler = s->a->requests[f->type];
    struct chan *ch;
    int rc;

    if (f->channel == 0 || f->channel <= s->max_id) {
        fail(s, "%s on channel %u: channel ids must increase",
             proto_type_name(f->type), f->channel);
        return;
    }
    s->max_id = f->channel;
    if (!(ch = chan_new(s, f->channel, f->type))) {
        fail(s, "out of memory for a channel");
        return;
    }
    if (s->nchans > s->a->max_channels) {
        host_error(ch, -EMFILE,
                   "too many channels: this agent serves at most %u at once "
                   "(provium-agent --max-channels)",
                   s->a->max_channels);
        return;
    }
    rc = proto_msg_decode(f, 0, s->msg);
    if (rc == -EINVAL) { /* well formed, but a value the agent refuses */
        host_error(ch, rc, "%s: %s", proto_type_name(f->type), s->msg->why);
        return;
    }
    if (rc < 0) {
        fail(s, "malformed %s body (%zu bytes)", proto_type_name(f->type),
             f->len);
        return;
    }
    if (!handler) {
        host_error(ch, -ENOSYS, "%s: not served by this agent",
                   proto_type_name(f->type));
        return;
    }
    if (proto_def(f->type)->flags & PROTO_OPENS)
        ch->credit = s->msg->body.open.credit;
    handler(s->a, ch, &s->msg->body);
}

static void
dispatch(struct host *s, const struct proto_frame *f)
{
    const struct proto_def *d = proto_def(f->type);

    if (!d || !(d->flags & PROTO_FROM_HOST)) {
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
    if (d->flags & (PROTO_OPENS | PROTO_REQUEST))
        on_request(s, f);
    else
        on_existing(s, f); /* credit, close */
}

static void
process_input(struct host *s)
{
    while (s->in_len > 0 && !s->dead && !s->closing && !outq_high(&s->out)) {
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
host_new(struct agent *a, int rfd, int wfd, host_closed_fn *closed, void *arg,
         struct host **out)
{
    struct host *s = calloc(1, sizeof(*s));
    int err = -ENOMEM;

    if (!s) {
        close(rfd);
        if (wfd != rfd)
            close(wfd);
        return -ENOMEM;
    }
    s->a = a;
    s->rfd = rfd;
    s->wfd = wfd;
    s->closed = closed;
    s->arg = arg;
    TAILQ_INIT(&s->queue);
    outq_init(&s->out, 0, OUT_HIGH);
    s->in = malloc(IN_CAP);
    s->scratch = malloc(PROTO_MAX_DATA);
    s->msg = malloc(sizeof(*s->msg));
    if (!s->in || !s->scratch || !s->msg)
        goto err;
    if ((err = proto_decoder_init(&s->dec)) < 0)
        goto err;
    host_update(s);
    if (s->dead) {
        err = -EIO;
        goto err;
    }
    *out = s;
    return 0;
err:
    host_free(s); /* what was made, and rfd and wfd */
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
    free(s->msg);
    free(s->scratch);
    outq_fini(&s->out);
    free(s->in);
    free(s);
}
