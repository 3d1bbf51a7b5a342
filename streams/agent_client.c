/*
 * agent_client.c - the host end of one VM's agent connection
 * (docs/protocol.md): connect, handshake, channels multiplexed over the
 * one byte stream, credit-based flow control, and reconnection.
 *
 * The agent is untrusted. Any protocol violation (a frame the decoder
 * rejects, a body that does not parse, an unexpected type, data beyond
 * credit, a channel never opened) ends the connection: every stream of
 * the VM ends with an error naming the violation and every pending
 * request fails, then the client reconnects with backoff. Nothing here
 * can take down the process or touch another VM's client.
 *
 * Channel ids increase and are never reused within a connection, so a
 * frame for a channel we already closed is recognised (id below next_id)
 * and dropped.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define IN_CAP (256 * 1024)
#define OUT_MAX (4 * 1024 * 1024) /* queued requests for a slow agent */
#define CHAN_BUCKETS 1024
#define BACKOFF_MIN (100 * USEC_PER_MSEC)
#define BACKOFF_MAX (5 * USEC_PER_SEC)
#define ERR_LEN 256

enum endpoint_kind { EP_UNIX, EP_VSOCK, EP_FD, EP_SPAWN };

struct agent_chan {
    struct agent_client *c;
    uint32_t id;
    unsigned type; /* the request or open type */
    bool acked;
    bool gone; /* out of the table; freed when no callback is running */
    int in_cb;
    const struct agent_stream_cbs *cbs;
    agent_reply_fn *done;
    void *arg;
    uint64_t credit;  /* what the agent may still send */
    uint64_t unacked; /* consumed but not granted back */
    struct agent_chan *hnext;
};

struct agent_client {
    struct reactor *r;
    enum endpoint_kind kind;
    char *endpoint;
    char *path; /* unix socket, or agent binary */
    char *spool_dir;
    unsigned cid, port;
    pid_t child;

    int fd;
    unsigned watched;
    bool connecting; /* non-blocking connect in progress */
    enum agent_state state;
    bool have_facts;
    struct agent_facts facts;
    char error[ERR_LEN];

    struct proto_decoder dec;
    uint8_t *in;
    uint8_t *out;
    size_t out_off, out_len, out_cap;

    uint32_t next_id;
    size_t nchans;
    struct agent_chan *buckets[CHAN_BUCKETS];

    struct reactor_timer retry;
    uint64_t backoff;
    agent_client_state_fn *state_fn;
    void *state_arg;
};

static void client_io(struct reactor *r, int fd, unsigned events, void *arg);
static void client_connect(struct reactor *r, void *arg);

const char *
agent_state_name(enum agent_state st)
{
    switch (st) {
    case AGENT_CONNECTING:
        return "connecting";
    case AGENT_UP:
        return "up";
    case AGENT_DOWN:
        return "down";
    case AGENT_DEAD:
        return "dead";
    }
    return "?";
}

static void
set_state(struct agent_client *c, enum agent_state st)
{
    if (c->state == st)
        return;
    c->state = st;
    if (c->state_fn)
        c->state_fn(c, c->state_arg);
}

/* ---- channels ---- */

static struct agent_chan **
chan_slot(struct agent_client *c, uint32_t id)
{
    struct agent_chan **pp = &c->buckets[id % CHAN_BUCKETS];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->hnext;
    return pp;
}

/* Take ch out of the table; it is freed once no callback of it runs. */
static void
chan_unlink(struct agent_chan *ch)
{
    struct agent_chan **pp;
    if (ch->gone)
        return;
    pp = chan_slot(ch->c, ch->id);
    if (*pp == ch)
        *pp = ch->hnext;
    ch->gone = true;
    ch->c->nchans--;
}

static void
chan_release(struct agent_chan *ch)
{
    if (ch->gone && ch->in_cb == 0)
        free(ch);
}

uint32_t
agent_chan_id(const struct agent_chan *ch)
{
    return ch->id;
}

/* ---- output ---- */

static void fail(struct agent_client *c, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
update_watch(struct agent_client *c)
{
    unsigned want;
    if (c->fd < 0)
        return;
    want = c->connecting ? REACTOR_OUT
                         : REACTOR_IN | (c->out_len ? REACTOR_OUT : 0);
    if (want == c->watched)
        return;
    if (reactor_watch(c->r, c->fd, want, client_io, c) < 0) {
        fail(c, -EIO, "cannot watch the agent connection");
        return;
    }
    c->watched = want;
}

static void
flush(struct agent_client *c)
{
    while (c->out_len > 0 && c->fd >= 0 && !c->connecting) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = write(c->fd, c->out + c->out_off, c->out_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                fail(c, -errno, "write to agent: %s", strerror(errno));
            break;
        }
        c->out_off += (size_t)n;
        c->out_len -= (size_t)n;
    }
    if (c->out_len == 0)
        c->out_off = 0;
    update_watch(c);
}

/* Room for n more bytes of output, or NULL. */
static uint8_t *
out_reserve(struct agent_client *c, size_t n)
{
    if (c->out_len + n > OUT_MAX)
        return NULL;
    if (c->out_cap - c->out_off - c->out_len < n && c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n) {
        size_t cap = c->out_cap ? c->out_cap : 65536;
        while (cap - c->out_len < n)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
            return NULL;
        c->out = p;
        c->out_cap = cap;
    }
    return c->out + c->out_off + c->out_len;
}

/* Queue a frame whose body a writer built in w (a scratch buffer). */
static int
send_frame(struct agent_client *c, unsigned type, uint32_t channel,
           const void *body, size_t len)
{
    uint8_t *p;
    if (len > PROTO_MAX_BODY)
        return -E2BIG;
    if (!(p = out_reserve(c, PROTO_HEADER_LEN + len)))
        return -ENOBUFS;
    proto_header(p, (uint32_t)len, type, channel);
    if (len)
        memcpy(p + PROTO_HEADER_LEN, body, len);
    c->out_len += PROTO_HEADER_LEN + len;
    flush(c);
    return 0;
}

/* ---- connection life ---- */

static void
close_fd(struct agent_client *c)
{
    if (c->fd < 0)
        return;
    if (c->watched)
        reactor_unwatch(c->r, c->fd);
    c->watched = 0;
    close(c->fd);
    c->fd = -1;
    c->connecting = false;
    c->out_off = c->out_len = 0;
    proto_decoder_reset(&c->dec);
    if (c->child > 0) {
        /* A spawned agent whose connection broke is no use any more:
         * make sure it is gone, then reap it (immediate after KILL). */
        kill(c->child, SIGKILL);
        waitpid(c->child, NULL, 0);
        c->child = 0;
    }
}

/* End every channel: streams end, opens and requests fail. */
static void
end_all(struct agent_client *c, int err, const char *msg)
{
    for (size_t i = 0; i < CHAN_BUCKETS; i++) {
        while (c->buckets[i]) {
            struct agent_chan *ch = c->buckets[i];
            chan_unlink(ch);
            ch->in_cb++;
            if (ch->cbs && ch->acked)
                ch->cbs->end(ch->arg, err, PROTO_END_ERROR, msg);
            else if (ch->cbs)
                ch->cbs->opened(ch->arg, err, msg, 0);
            else {
                struct agent_reply rp = {.err = err, .msg = msg};
                ch->done(ch->arg, &rp);
            }
            ch->in_cb--;
            chan_release(ch);
        }
    }
}

static void
fail(struct agent_client *c, int err, const char *fmt, ...)
{
    char msg[ERR_LEN + 32];
    va_list ap;

    if (c->state == AGENT_DOWN || c->state == AGENT_DEAD)
        return; /* already failed: the first reason stands */
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    close_fd(c);
    bool retry = c->kind != EP_FD;
    set_state(c, retry ? AGENT_DOWN : AGENT_DEAD);
    snprintf(msg, sizeof(msg), "agent connection lost: %s", c->error);
    end_all(c, err < 0 ? err : -ECONNRESET, msg);
    if (retry) {
        reactor_timer_start(c->r, &c->retry, clock_now() + c->backoff,
                            client_connect, c);
        c->backoff =
                c->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : c->backoff * 2;
    }
}

static void
send_hello(struct agent_client *c)
{
    uint8_t body[12];
    struct proto_writer w;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, PROTO_MAGIC);
    proto_put_u32(&w, PROTO_VERSION);
    proto_put_u32(&w, PROTO_VERSION);
    c->next_id = 1;
    if (send_frame(c, PROTO_HELLO, 0, body, w.len) < 0)
        fail(c, -ENOBUFS, "cannot send hello");
}

static int
spawn_agent(struct agent_client *c)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    char *argv[5] = {c->path, "--stdio", NULL, NULL, NULL};
    int sv[2], err;

    if (c->spool_dir) {
        argv[2] = "--spool-dir";
        argv[3] = c->spool_dir;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    /* The daemon blocks signals for its signalfds; the agent must not
     * inherit that, nor ignored dispositions. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    err = -posix_spawn(&c->child, c->path, &fa, &attr, argv, NULL);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (err < 0) {
        c->child = 0;
        close(sv[0]);
        return err;
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    c->fd = sv[0];
    return 0;
}

static int
open_socket(struct agent_client *c)
{
    int err;
    if (c->kind == EP_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, c->path);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            return -errno;
        err = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_vm sa = {
                .svm_family = AF_VSOCK, .svm_cid = c->cid, .svm_port = c->port};
        c->fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            return -errno;
        err = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (err < 0 && errno == EINPROGRESS) {
        c->connecting = true;
        return 0;
    }
    return err < 0 ? -errno : 0;
}

static void
client_connect(struct reactor *r, void *arg)
{
    struct agent_client *c = arg;
    int err;

    set_state(c, AGENT_CONNECTING);
    err = c->kind == EP_SPAWN ? spawn_agent(c) : open_socket(c);
    if (err < 0) {
        fail(c, err, "connect %s: %s", c->endpoint, strerror(-err));
        return;
    }
    update_watch(c);
    if (!c->connecting)
        send_hello(c);
}

/* ---- incoming frames ---- */

static void violation(struct agent_client *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
violation(struct agent_client *c, const char *fmt, ...)
{
    char msg[ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail(c, -EPROTO, "protocol violation: %s", msg);
}

static void
on_hello_ok(struct agent_client *c, const struct proto_frame *f)
{
    struct proto_reader rd;
    struct agent_facts facts;

    proto_reader_init(&rd, f->body, f->len);
    uint32_t magic = proto_get_u32(&rd);
    facts.version = proto_get_u32(&rd);
    proto_get_str(&rd, facts.os, sizeof(facts.os));
    proto_get_str(&rd, facts.kernel, sizeof(facts.kernel));
    proto_get_str(&rd, facts.agent_version, sizeof(facts.agent_version));
    facts.instance = proto_get_u64(&rd);
    if (proto_get_done(&rd) < 0 || magic != PROTO_MAGIC ||
        facts.version != PROTO_VERSION || facts.instance == 0) {
        violation(c, "bad hello_ok");
        return;
    }
    c->facts = facts;
    c->have_facts = true;
    c->backoff = BACKOFF_MIN;
    c->error[0] = 0;
    set_state(c, AGENT_UP);
}

/* error and end bodies: errno, [reason,] message. */
static int
parse_err(const struct proto_frame *f, int *err, unsigned *reason, char *msg)
{
    struct proto_reader rd;
    proto_reader_init(&rd, f->body, f->len);
    uint32_t e = proto_get_u32(&rd);
    if (reason)
        *reason = proto_get_u8(&rd);
    proto_get_str(&rd, msg, PROTO_MAX_MSG);
    if (proto_get_done(&rd) < 0)
        return -EPROTO;
    /* Keep errno in the range callers can hand to strerror or FUSE. */
    *err = e == 0 ? 0 : -(int)(e < 4096 ? e : EIO);
    return 0;
}

static void
grant(struct agent_chan *ch)
{
    uint8_t body[4];
    struct proto_writer w;
    /* Grant back in half-window steps: few credit frames, and the agent
     * never stalls while we have consumed what it sent. */
    if (ch->unacked < PROTO_DEFAULT_WINDOW / 2 || ch->gone)
        return;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, (uint32_t)ch->unacked);
    if (send_frame(ch->c, PROTO_CREDIT, ch->id, body, w.len) == 0) {
        ch->credit += ch->unacked;
        ch->unacked = 0;
    }
}

static int
parse_reply(struct agent_chan *ch, const struct proto_frame *f,
            struct agent_reply *rp)
{
    struct proto_reader rd;
    proto_reader_init(&rd, f->body, f->len);
    switch (ch->type) {
    case PROTO_EXEC:
    case PROTO_FOPEN:
    case PROTO_FSEEK:
        rp->value = proto_get_u64(&rd);
        break;
    case PROTO_WAIT:
        rp->how = proto_get_u8(&rd);
        rp->value = proto_get_u32(&rd);
        if (rp->how > PROTO_SIGNALED)
            return -EPROTO;
        break;
    case PROTO_STDIN:
    case PROTO_FWRITE:
        rp->value = proto_get_u32(&rd);
        break;
    case PROTO_FREAD:
        proto_get_bytes(&rd, &rp->data, &rp->len, PROTO_MAX_DATA);
        break;
    case PROTO_STAT:
        rp->size = proto_get_u64(&rd);
        rp->mode = proto_get_u32(&rd);
        rp->mtime_ns = (int64_t)proto_get_u64(&rd);
        break;
    default: /* kill, stdin_close, fclose: empty */
        break;
    }
    return proto_get_done(&rd);
}

static void
on_frame(struct agent_client *c, const struct proto_frame *f)
{
    char msg[PROTO_MAX_MSG];
    struct agent_chan *ch;
    int err;
    unsigned reason;

    if (!proto_type_from_agent(f->type)) {
        violation(c, "agent sent host-only message %s",
                  proto_type_name(f->type));
        return;
    }
    if (c->state != AGENT_UP) {
        if (f->channel == 0 && f->type == PROTO_HELLO_OK) {
            on_hello_ok(c, f);
        } else if (f->channel == 0 && f->type == PROTO_ERROR &&
                   parse_err(f, &err, NULL, msg) == 0) {
            fail(c, err ? err : -EPROTONOSUPPORT, "handshake refused: %s", msg);
        } else {
            violation(c, "%s before hello_ok", proto_type_name(f->type));
        }
        return;
    }
    if (f->channel == 0) {
        violation(c, "%s on channel 0 after the handshake",
                  proto_type_name(f->type));
        return;
    }
    ch = *chan_slot(c, f->channel);
    if (!ch) {
        if (f->channel >= c->next_id)
            violation(c, "%s on channel %u that was never opened",
                      proto_type_name(f->type), f->channel);
        return; /* closed by us; it crossed our close */
    }
    bool stream = ch->cbs != NULL;
    switch (f->type) {
    case PROTO_ACK: {
        struct proto_reader rd;
        proto_reader_init(&rd, f->body, f->len);
        uint64_t off = proto_get_u64(&rd);
        if (!stream || ch->acked || proto_get_done(&rd) < 0)
            break;
        ch->acked = true;
        ch->in_cb++;
        ch->cbs->opened(ch->arg, 0, NULL, off);
        ch->in_cb--;
        chan_release(ch);
        return;
    }
    case PROTO_DATA:
        if (!stream || !ch->acked || f->len == 0)
            break;
        if (f->len > ch->credit) {
            violation(c,
                      "%zu bytes of data beyond the %llu of credit on "
                      "channel %u",
                      f->len, (unsigned long long)ch->credit, ch->id);
            return;
        }
        ch->credit -= f->len;
        ch->in_cb++;
        ch->cbs->data(ch->arg, f->body, f->len);
        ch->unacked += f->len;
        grant(ch); /* may fail the connection: hold ch until after */
        ch->in_cb--;
        chan_release(ch);
        return;
    case PROTO_NOTE: {
        struct proto_reader rd;
        proto_reader_init(&rd, f->body, f->len);
        unsigned code = proto_get_u8(&rd);
        uint64_t value = proto_get_u64(&rd);
        proto_get_str(&rd, msg, sizeof(msg));
        if (!stream || !ch->acked || proto_get_done(&rd) < 0)
            break;
        ch->in_cb++;
        if (ch->cbs->note)
            ch->cbs->note(ch->arg, code, value, msg);
        ch->in_cb--;
        chan_release(ch);
        return;
    }
    case PROTO_END:
        if (!stream || !ch->acked || parse_err(f, &err, &reason, msg) < 0)
            break;
        chan_unlink(ch);
        ch->in_cb++;
        ch->cbs->end(ch->arg, err, reason, msg);
        ch->in_cb--;
        chan_release(ch);
        return;
    case PROTO_ERROR:
        if ((stream && ch->acked) || parse_err(f, &err, NULL, msg) < 0)
            break;
        if (err == 0)
            err = -EIO;
        chan_unlink(ch);
        ch->in_cb++;
        if (stream) {
            ch->cbs->opened(ch->arg, err, msg, 0);
        } else {
            struct agent_reply rp = {.err = err, .msg = msg};
            ch->done(ch->arg, &rp);
        }
        ch->in_cb--;
        chan_release(ch);
        return;
    case PROTO_REPLY: {
        struct agent_reply rp = {0};
        if (stream || parse_reply(ch, f, &rp) < 0)
            break;
        chan_unlink(ch);
        ch->in_cb++;
        ch->done(ch->arg, &rp);
        ch->in_cb--;
        chan_release(ch);
        return;
    }
    }
    violation(c, "unexpected or malformed %s on channel %u (%zu bytes)",
              proto_type_name(f->type), f->channel, f->len);
}

static void
read_input(struct agent_client *c)
{
    /* A few buffers per wake-up, so one busy VM cannot hold the loop. */
    for (int turn = 0; turn < 4 && c->fd >= 0; turn++) {
        ssize_t n = read(c->fd, c->in, IN_CAP);
        if (n == 0) {
            fail(c, -ECONNRESET, "agent closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                fail(c, -errno, "read from agent: %s", strerror(errno));
            return;
        }
        size_t pos = 0;
        int fd = c->fd;
        while (pos < (size_t)n && c->fd == fd) {
            struct proto_frame f;
            size_t used;
            int rc = proto_decode(&c->dec, c->in + pos, (size_t)n - pos, &used,
                                  &f);
            pos += used;
            if (rc < 0) {
                violation(c, "%s",
                          rc == -EMSGSIZE ? "frame larger than the cap"
                                          : "malformed frame header");
                return;
            }
            if (rc == 1)
                on_frame(c, &f);
        }
    }
}

static void
client_io(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct agent_client *c = arg;

    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        c->connecting = false;
        if (err) {
            fail(c, -err, "connect %s: %s", c->endpoint, strerror(err));
            return;
        }
        update_watch(c);
        send_hello(c);
        return;
    }
    if (events & (REACTOR_IN | REACTOR_ERR))
        read_input(c);
    if (c->fd >= 0 && (events & REACTOR_OUT))
        flush(c);
}

/* ---- public: life ---- */

static int
client_alloc(struct reactor *r, const char *endpoint, struct agent_client **out)
{
    struct agent_client *c = calloc(1, sizeof(*c));
    int err = -ENOMEM;

    if (!c)
        return -ENOMEM;
    c->r = r;
    c->fd = -1;
    c->backoff = BACKOFF_MIN;
    c->state = AGENT_CONNECTING;
    if (!(c->endpoint = strdup(endpoint)) || !(c->in = malloc(IN_CAP)))
        goto err;
    if ((err = proto_decoder_init(&c->dec)) < 0)
        goto err;
    *out = c;
    return 0;
err:
    free(c->in);
    free(c->endpoint);
    free(c);
    return err;
}

int
agent_client_new(struct reactor *r, const char *endpoint,
                 struct agent_client **out)
{
    struct agent_client *c;
    int err;

    if ((err = client_alloc(r, endpoint, &c)) < 0)
        return err;
    if (strncmp(endpoint, "unix:", 5) == 0) {
        c->kind = EP_UNIX;
        if (!endpoint[5] ||
            strlen(endpoint + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            goto inval;
        if (!(c->path = strdup(endpoint + 5))) {
            agent_client_free(c);
            return -ENOMEM;
        }
    } else if (strncmp(endpoint, "vsock:", 6) == 0) {
        char *end;
        unsigned long cid = strtoul(endpoint + 6, &end, 10), port;
        if (end == endpoint + 6 || *end != ':' || cid > UINT32_MAX)
            goto inval;
        const char *p = end + 1;
        port = strtoul(p, &end, 10);
        if (end == p || *end || port > UINT32_MAX)
            goto inval;
        c->kind = EP_VSOCK;
        c->cid = (unsigned)cid;
        c->port = (unsigned)port;
    } else {
        goto inval;
    }
    client_connect(r, c);
    *out = c;
    return 0;
inval:
    agent_client_free(c);
    return -EINVAL;
}

int
agent_client_new_fd(struct reactor *r, int fd, struct agent_client **out)
{
    struct agent_client *c;
    char name[32];
    int err;

    snprintf(name, sizeof(name), "fd:%d", fd);
    if ((err = client_alloc(r, name, &c)) < 0) {
        close(fd);
        return err;
    }
    c->kind = EP_FD;
    c->fd = fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    update_watch(c);
    send_hello(c);
    *out = c;
    return 0;
}

int
agent_client_spawn(struct reactor *r, const char *agent_path,
                   const char *spool_dir, struct agent_client **out)
{
    struct agent_client *c;
    char name[PROTO_MAX_PATH + 16];
    int err;

    snprintf(name, sizeof(name), "spawn:%s", agent_path);
    if ((err = client_alloc(r, name, &c)) < 0)
        return err;
    c->kind = EP_SPAWN;
    if (!(c->path = strdup(agent_path)) ||
        (spool_dir && !(c->spool_dir = strdup(spool_dir)))) {
        agent_client_free(c);
        return -ENOMEM;
    }
    client_connect(r, c);
    *out = c;
    return 0;
}

void
agent_client_free(struct agent_client *c)
{
    if (!c)
        return;
    reactor_timer_stop(c->r, &c->retry);
    c->kind = EP_FD; /* no reconnect from the ends below */
    c->state_fn = NULL;
    close_fd(c);
    c->state = AGENT_DEAD;
    end_all(c, -ECONNABORTED, "agent client closed");
    proto_decoder_fini(&c->dec);
    free(c->in);
    free(c->out);
    free(c->endpoint);
    free(c->path);
    free(c->spool_dir);
    free(c);
}

enum agent_state
agent_client_state(const struct agent_client *c)
{
    return c->state;
}

const struct agent_facts *
agent_client_facts(const struct agent_client *c)
{
    return c->have_facts ? &c->facts : NULL;
}

const char *
agent_client_error(const struct agent_client *c)
{
    return c->error;
}

void
agent_client_on_state(struct agent_client *c, agent_client_state_fn *fn,
                      void *arg)
{
    c->state_fn = fn;
    c->state_arg = arg;
}

void
agent_client_info(const struct agent_client *c, char *buf, size_t len)
{
    char num[32];

    /* Every fact and the error may come from the guest: escaped, so that
     * a kernel string cannot add an `agent_state:` line of its own. */
    text_keyval(buf, len, "agent", c->endpoint);
    text_keyval(buf, len, "agent_state", agent_state_name(c->state));
    if (c->have_facts) {
        text_keyval(buf, len, "agent_os", c->facts.os);
        text_keyval(buf, len, "agent_kernel", c->facts.kernel);
        text_keyval(buf, len, "agent_version", c->facts.agent_version);
        snprintf(num, sizeof(num), "%u", c->facts.version);
        text_keyval(buf, len, "agent_protocol", num);
        snprintf(num, sizeof(num), "%016llx",
                 (unsigned long long)c->facts.instance);
        text_keyval(buf, len, "agent_instance", num);
    }
    if (c->error[0])
        text_keyval(buf, len, "agent_error", c->error);
}

/* ---- public: channels ---- */

static struct agent_chan *
chan_new(struct agent_client *c, unsigned type)
{
    struct agent_chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->c = c;
    ch->type = type;
    ch->id = c->next_id;
    return ch;
}

/* Send the request built in body and enter ch in the table. */
static int
chan_start(struct agent_client *c, struct agent_chan *ch,
           const struct proto_writer *w, struct agent_chan **out)
{
    int err;
    if (w->overflow) {
        free(ch);
        return -E2BIG;
    }
    if ((err = send_frame(c, ch->type, ch->id, w->buf, w->len)) < 0) {
        free(ch);
        return err;
    }
    /* send_frame may have failed the connection (EPIPE): then the
     * request is already lost, but the caller must still hear of it. */
    if (c->state != AGENT_UP) {
        free(ch);
        return -ENOTCONN;
    }
    c->next_id++;
    struct agent_chan **pp = chan_slot(c, ch->id);
    *pp = ch;
    c->nchans++;
    if (out)
        *out = ch;
    return 0;
}

void
agent_client_close(struct agent_chan *ch)
{
    if (!ch)
        return;
    if (!ch->gone) {
        struct agent_client *c = ch->c;
        chan_unlink(ch);
        /* Best effort: if the agent is gone, so is its channel. */
        if (c->fd >= 0)
            send_frame(c, PROTO_CLOSE, ch->id, NULL, 0);
    }
    /* From inside its own callback: freed when the callback returns. */
    ch->cbs = NULL;
    ch->done = NULL;
    if (ch->in_cb == 0)
        free(ch);
}

int
agent_client_open(struct agent_client *c, const struct agent_open *req,
                  const struct agent_stream_cbs *cbs, void *arg,
                  struct agent_chan **out)
{
    uint8_t body[32 + PROTO_MAX_PATH];
    struct proto_writer w;
    struct agent_chan *ch;

    if (c->state != AGENT_UP)
        return -ENOTCONN;
    if (!cbs || !cbs->opened || !cbs->data || !cbs->end)
        return -EINVAL;
    if (!(ch = chan_new(c, req->type)))
        return -ENOMEM;
    ch->cbs = cbs;
    ch->arg = arg;
    ch->credit = PROTO_DEFAULT_WINDOW;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, PROTO_DEFAULT_WINDOW);
    switch (req->type) {
    case PROTO_OPEN_TAIL: {
        size_t len = req->path ? strlen(req->path) : 0;
        if (!len || len >= PROTO_MAX_PATH) {
            free(ch);
            return len ? -ENAMETOOLONG : -EINVAL;
        }
        proto_put_u8(&w, (uint8_t)req->start);
        proto_put_u8(&w, (uint8_t)req->flags);
        proto_put_u64(&w, req->offset);
        proto_put_str(&w, req->path, len);
        break;
    }
    case PROTO_OPEN_FD:
        proto_put_u64(&w, req->id);
        break;
    case PROTO_OPEN_PROC:
        proto_put_u64(&w, req->id);
        proto_put_u8(&w, (uint8_t)req->which);
        break;
    default:
        free(ch);
        return -EINVAL;
    }
    return chan_start(c, ch, &w, out);
}

/* Requests: a body of small fields plus at most one big one. */
static int
request(struct agent_client *c, unsigned type, struct proto_writer *w,
        agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    struct agent_chan *ch;
    if (c->state != AGENT_UP)
        return -ENOTCONN;
    if (!done)
        return -EINVAL;
    if (!(ch = chan_new(c, type)))
        return -ENOMEM;
    ch->done = done;
    ch->arg = arg;
    return chan_start(c, ch, w, out);
}

static int
put_cstr(struct proto_writer *w, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len >= max)
        return -E2BIG;
    proto_put_str(w, s, len);
    return 0;
}

int
agent_client_exec(struct agent_client *c, const char *cwd, char *const argv[],
                  char *const env[], agent_reply_fn *done, void *arg,
                  struct agent_chan **out)
{
    uint8_t *body = malloc(PROTO_MAX_BODY);
    struct proto_writer w;
    size_t argc = 0, envc = 0;
    int err = 0;

    if (!body)
        return -ENOMEM;
    while (argv && argv[argc])
        argc++;
    while (env && env[envc])
        envc++;
    if (argc == 0 || argc > PROTO_MAX_ARGS || envc > PROTO_MAX_ARGS) {
        err = argc == 0 ? -EINVAL : -E2BIG;
        goto out;
    }
    proto_writer_init(&w, body, PROTO_MAX_BODY);
    if ((err = put_cstr(&w, cwd ? cwd : "", PROTO_MAX_PATH)) < 0)
        goto out;
    proto_put_u16(&w, (uint16_t)argc);
    proto_put_u16(&w, (uint16_t)envc);
    for (size_t i = 0; i < argc && !err; i++)
        err = put_cstr(&w, argv[i], PROTO_MAX_ARG);
    for (size_t i = 0; i < envc && !err; i++)
        err = put_cstr(&w, env[i], PROTO_MAX_ARG);
    if (!err)
        err = request(c, PROTO_EXEC, &w, done, arg, out);
out:
    free(body);
    return err;
}

static int
id_request(struct agent_client *c, unsigned type, uint64_t id,
           agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    uint8_t body[8];
    struct proto_writer w;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u64(&w, id);
    return request(c, type, &w, done, arg, out);
}

int
agent_client_wait(struct agent_client *c, uint64_t proc, agent_reply_fn *done,
                  void *arg, struct agent_chan **out)
{
    return id_request(c, PROTO_WAIT, proc, done, arg, out);
}

int
agent_client_kill(struct agent_client *c, uint64_t proc, int sig,
                  agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    uint8_t body[12];
    struct proto_writer w;
    if (sig < 0 || sig > 64)
        return -EINVAL;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u64(&w, proc);
    proto_put_u32(&w, (uint32_t)sig);
    return request(c, PROTO_KILL, &w, done, arg, out);
}

static int
data_request(struct agent_client *c, unsigned type, uint64_t id,
             const void *buf, size_t len, agent_reply_fn *done, void *arg,
             struct agent_chan **out)
{
    uint8_t *body;
    struct proto_writer w;
    int err;
    if (len > PROTO_MAX_DATA)
        return -E2BIG;
    if (!(body = malloc(12 + len)))
        return -ENOMEM;
    proto_writer_init(&w, body, 12 + len);
    proto_put_u64(&w, id);
    proto_put_bytes(&w, buf, len);
    err = request(c, type, &w, done, arg, out);
    free(body);
    return err;
}

int
agent_client_stdin(struct agent_client *c, uint64_t proc, const void *buf,
                   size_t len, agent_reply_fn *done, void *arg,
                   struct agent_chan **out)
{
    return data_request(c, PROTO_STDIN, proc, buf, len, done, arg, out);
}

int
agent_client_stdin_close(struct agent_client *c, uint64_t proc,
                         agent_reply_fn *done, void *arg,
                         struct agent_chan **out)
{
    return id_request(c, PROTO_STDIN_CLOSE, proc, done, arg, out);
}

int
agent_client_fopen(struct agent_client *c, const char *path, unsigned flags,
                   unsigned mode, agent_reply_fn *done, void *arg,
                   struct agent_chan **out)
{
    uint8_t body[16 + PROTO_MAX_PATH];
    struct proto_writer w;
    if ((flags & ~PROTO_O_ALL) || !path[0])
        return -EINVAL;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u32(&w, flags);
    proto_put_u32(&w, mode);
    if (put_cstr(&w, path, PROTO_MAX_PATH) < 0)
        return -ENAMETOOLONG;
    return request(c, PROTO_FOPEN, &w, done, arg, out);
}

int
agent_client_fread(struct agent_client *c, uint64_t handle, size_t n,
                   agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    uint8_t body[12];
    struct proto_writer w;
    if (n > PROTO_MAX_DATA)
        n = PROTO_MAX_DATA; /* a short read, as read(2) may give */
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u64(&w, handle);
    proto_put_u32(&w, (uint32_t)n);
    return request(c, PROTO_FREAD, &w, done, arg, out);
}

int
agent_client_fwrite(struct agent_client *c, uint64_t handle, const void *buf,
                    size_t len, agent_reply_fn *done, void *arg,
                    struct agent_chan **out)
{
    return data_request(c, PROTO_FWRITE, handle, buf, len, done, arg, out);
}

int
agent_client_fseek(struct agent_client *c, uint64_t handle, int64_t off,
                   unsigned whence, agent_reply_fn *done, void *arg,
                   struct agent_chan **out)
{
    uint8_t body[17];
    struct proto_writer w;
    if (whence > PROTO_SEEK_END)
        return -EINVAL;
    proto_writer_init(&w, body, sizeof(body));
    proto_put_u64(&w, handle);
    proto_put_u64(&w, (uint64_t)off);
    proto_put_u8(&w, (uint8_t)whence);
    return request(c, PROTO_FSEEK, &w, done, arg, out);
}

int
agent_client_fclose(struct agent_client *c, uint64_t handle,
                    agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    return id_request(c, PROTO_FCLOSE, handle, done, arg, out);
}

int
agent_client_stat(struct agent_client *c, const char *path,
                  agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    uint8_t body[2 + PROTO_MAX_PATH];
    struct proto_writer w;
    proto_writer_init(&w, body, sizeof(body));
    if (put_cstr(&w, path, PROTO_MAX_PATH) < 0)
        return -ENAMETOOLONG;
    return request(c, PROTO_STAT, &w, done, arg, out);
}
