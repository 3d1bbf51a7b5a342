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
 *
 * Deadlines (SPEC §6.3). The handshake, every stream open (until its ack)
 * and every request the agent answers without waiting on anything else
 * must be answered within the client's timeout (agent_client_set_timeout,
 * 30 s by default). `wait`, `stdin`, `fread` and `fwrite` are exempt: they
 * legitimately wait on a process or a pipe for as long as that takes, and
 * their callers have their own bounds (wait's T, FUSE interrupts). A
 * handshake past its deadline drops the connection (retried with
 * backoff). A request past its deadline fails with ETIMEDOUT and the
 * client reports itself `unresponsive` until a frame arrives again; the
 * channel is kept so that a late answer is recognised, and what a late
 * answer created is undone: a process started by a timed-out exec is
 * killed, a file opened by a timed-out fopen is closed, a stream acked
 * after its open timed out is closed.
 *
 * A spawned agent (the host VM) is never waited for with a blocking
 * waitpid: its pidfd is watched on the reactor and it is reaped when it
 * has gone, its exit status reported through the event callback. An
 * orderly stop (agent_client_stop) closes its connection and sends it
 * SIGTERM, so that it can end the processes it started (TERM, grace,
 * KILL), and waits for it, boundedly, before SIGKILL.
 */
#include "streams.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define IN_CAP (256 * 1024)
#define OUT_MAX (4 * 1024 * 1024) /* queued requests for a slow agent */
#define CHAN_BUCKETS 1024
#define BACKOFF_MIN (100 * USEC_PER_MSEC)
#define BACKOFF_MAX (5 * USEC_PER_SEC)
#define ERR_LEN 256
/* An orderly stop waits this long for a spawned agent to end its
 * processes (its keeper's grace is 2 s) and exit, then SIGKILLs it. */
#define STOP_WAIT (3 * USEC_PER_SEC)
#define STOP_KILL_WAIT (1 * USEC_PER_SEC)
/* Requests past their deadline kept for a late answer: past this many
 * the agent is taken for dead and the connection dropped (bounded
 * memory whatever a stuck agent is sent). */
#define MAX_EXPIRED 1024

extern char **environ;

enum endpoint_kind { EP_UNIX, EP_VSOCK, EP_FD, EP_SPAWN };

/* A spawned agent whose connection is gone, until it is reaped. */
struct child {
    struct agent_client *c;
    pid_t pid;
    int pidfd;    /* -1 without pidfd_open: then reaped by a blocking wait */
    unsigned gen; /* c->err_gen when it was let go */
    struct child *next;
};

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
    /* The deadline queue: in send order, so oldest deadline first. */
    uint64_t deadline; /* 0: none */
    TAILQ_ENTRY(agent_chan) dlink;
    bool expired; /* answered ETIMEDOUT; kept to catch a late answer */
};

struct agent_client {
    struct reactor *r;
    enum endpoint_kind kind;
    char *endpoint;
    char *path; /* unix socket, or agent binary */
    char *spool_dir;
    unsigned cid, port;
    pid_t child;     /* the spawned agent of the current connection */
    int child_pidfd; /* -1 if none or unsupported */
    struct child *dying;

    int fd;
    unsigned watched;
    bool connecting; /* non-blocking connect in progress */
    enum agent_state state;
    bool have_facts;
    struct agent_facts facts;
    char error[ERR_LEN];      /* why the connection is down ("" when up) */
    char last_error[ERR_LEN]; /* the last error ever; kept across respawns */
    time_t last_error_at;
    unsigned err_gen;          /* bumped with each new last_error */
    char lost_logged[ERR_LEN]; /* the last loss reported while never up */

    uint64_t timeout; /* handshake and request deadline; 0 = none */
    struct reactor_timer hs_timer, req_timer;
    TAILQ_HEAD(, agent_chan) deadlines;
    unsigned nexpired;

    bool stopping;
    agent_client_stopped_fn *stop_fn;
    void *stop_arg;
    struct reactor_timer stop_timer;

    struct proto_decoder dec;
    struct proto_msg *msg; /* the frame being handled, decoded */
    uint8_t *in;
    struct outq out; /* frames for the agent, at most OUT_MAX bytes */

    uint32_t next_id;
    size_t nchans;
    struct agent_chan *buckets[CHAN_BUCKETS];

    struct backoff retry;
    agent_client_state_fn *state_fn;
    void *state_arg;
    agent_client_event_fn *event_fn;
    void *event_arg;
};

static void client_io(struct reactor *r, int fd, unsigned events, void *arg);
static void client_connect(struct reactor *r, void *arg);

const char *
agent_client_state_name(enum agent_state st)
{
    switch (st) {
    case AGENT_CONNECTING:
        return "connecting";
    case AGENT_UP:
        return "up";
    case AGENT_UNRESPONSIVE:
        return "unresponsive";
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

/* Opens and requests are accepted: up, or up but slow to answer. */
static bool
usable(const struct agent_client *c)
{
    return c->state == AGENT_UP || c->state == AGENT_UNRESPONSIVE;
}

static void event(struct agent_client *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Something the daemon should log (nothing here logs). */
static void
event(struct agent_client *c, const char *fmt, ...)
{
    char msg[ERR_LEN + 128];
    va_list ap;

    if (!c->event_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->event_fn(c, msg, c->event_arg);
}

static void
set_last_error(struct agent_client *c, const char *msg)
{
    snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
    c->last_error_at = time(NULL);
    c->err_gen++;
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

static void deadline_remove(struct agent_chan *ch);

/* Take ch out of the table; it is freed once no callback of it runs. */
static void
chan_unlink(struct agent_chan *ch)
{
    struct agent_chan **pp;
    if (ch->gone)
        return;
    deadline_remove(ch);
    if (ch->expired)
        ch->c->nexpired--;
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
agent_client_chan_id(const struct agent_chan *ch)
{
    return ch->id;
}

/* ---- deadlines ---- */

static void fail(struct agent_client *c, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void deadlines_expired(struct reactor *r, void *arg);

static void
deadline_arm(struct agent_client *c)
{
    struct agent_chan *first = TAILQ_FIRST(&c->deadlines);

    if (first)
        reactor_timer_start(c->r, &c->req_timer, first->deadline,
                            deadlines_expired, c);
    else
        reactor_timer_stop(c->r, &c->req_timer);
}

/* Requests that wait on a process or a pipe, not on the agent alone. */
static bool
deadline_exempt(unsigned type)
{
    return proto_def(type)->flags & PROTO_UNBOUNDED;
}

static void
deadline_add(struct agent_chan *ch)
{
    struct agent_client *c = ch->c;

    if (!c->timeout || deadline_exempt(ch->type))
        return;
    ch->deadline = clock_now() + c->timeout;
    TAILQ_INSERT_TAIL(&c->deadlines, ch, dlink);
    if (TAILQ_FIRST(&c->deadlines) == ch)
        deadline_arm(c);
}

static void
deadline_remove(struct agent_chan *ch)
{
    struct agent_client *c = ch->c;
    bool was_head = TAILQ_FIRST(&c->deadlines) == ch;

    if (!ch->deadline)
        return;
    TAILQ_REMOVE(&c->deadlines, ch, dlink);
    ch->deadline = 0;
    if (was_head)
        deadline_arm(c);
}

/* Fail what is past its deadline; the agent is then `unresponsive`. The
 * channels stay in the table, answered, to catch a late answer. */
static void
deadlines_expired(struct reactor *r, void *arg)
{
    struct agent_client *c = arg;
    uint64_t now = clock_now();
    char msg[128], t[32];
    bool any = false;

    duration_format(c->timeout, t, sizeof(t));
    snprintf(msg, sizeof(msg), "the agent did not answer within %s", t);
    struct agent_chan *ch;
    while ((ch = TAILQ_FIRST(&c->deadlines)) && ch->deadline <= now) {
        deadline_remove(ch);
        ch->expired = true;
        c->nexpired++;
        any = true;
        ch->in_cb++;
        if (ch->cbs) {
            const struct agent_stream_cbs *cbs = ch->cbs;
            ch->cbs = NULL;
            cbs->opened(ch->arg, -ETIMEDOUT, msg, 0);
        } else if (ch->done) {
            struct agent_reply rp = {.err = -ETIMEDOUT, .msg = msg};
            agent_reply_fn *done = ch->done;
            ch->done = NULL;
            done(ch->arg, &rp);
        }
        ch->in_cb--;
        chan_release(ch);
    }
    if (c->nexpired > MAX_EXPIRED) {
        fail(c, -ETIMEDOUT, "%u requests unanswered past their deadline",
             c->nexpired);
        return;
    }
    if (any && c->state == AGENT_UP) {
        char why[ERR_LEN];
        snprintf(why, sizeof(why),
                 "the agent did not answer a request within "
                 "%s",
                 t);
        set_last_error(c, why);
        set_state(c, AGENT_UNRESPONSIVE);
        event(c, "unresponsive: %s", why);
    }
    deadline_arm(c);
}

/* ---- output ---- */

static void
update_watch(struct agent_client *c)
{
    unsigned want;
    if (c->fd < 0)
        return;
    want = c->connecting ? REACTOR_OUT
                         : REACTOR_IN | (outq_len(&c->out) ? REACTOR_OUT : 0);
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
    int rc;

    if (c->fd < 0 || c->connecting)
        return;
    if ((rc = outq_flush(&c->out, c->fd)) < 0) {
        fail(c, rc, "write to agent: %s", strerror(-rc));
        return;
    }
    update_watch(c);
}

/* Queue a message and send what the connection takes: 0, the table's
 * -EINVAL / -E2BIG / -ENAMETOOLONG for a body it refuses, or -ENOBUFS
 * when too much is queued for a slow agent. */
static int
send_msg(struct agent_client *c, unsigned type, unsigned request,
         uint32_t channel, const union proto_body *b)
{
    int err = proto_msg_queue(&c->out, type, request, channel, b);

    if (err == 0)
        flush(c);
    return err;
}

/* ---- spawned agents: reaping ---- */

static void
child_status(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static void stop_done(struct agent_client *c);

/* The child has gone: say how, and finish a stop that waited for it. */
static void
child_reaped(struct agent_client *c, struct child *ch, int status)
{
    char how[96];

    child_status(status, how, sizeof(how));
    if (!c->stopping || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        event(c, "agent (pid %d) %s", (int)ch->pid, how);
    /* The connection's loss said why from our side; this is the rest. */
    if (ch->gen == c->err_gen && !c->stopping) {
        char msg[ERR_LEN];
        snprintf(msg, sizeof(msg), "%.120s (agent pid %d %.80s)", c->last_error,
                 (int)ch->pid, how);
        snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
        if (c->state == AGENT_DOWN || c->state == AGENT_DEAD)
            snprintf(c->error, sizeof(c->error), "%s", msg);
    }
}

static void
child_unlink(struct agent_client *c, struct child *ch)
{
    struct child **pp = &c->dying;
    while (*pp != ch)
        pp = &(*pp)->next;
    *pp = ch->next;
    if (ch->pidfd >= 0) {
        reactor_unwatch(c->r, ch->pidfd);
        close(ch->pidfd);
    }
    free(ch);
}

static void
child_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct child *ch = arg;
    struct agent_client *c = ch->c;
    int status;

    if (waitpid(ch->pid, &status, WNOHANG) != ch->pid)
        return; /* a pidfd is readable only once the child exited */
    child_reaped(c, ch, status);
    child_unlink(c, ch);
    if (c->stopping && !c->dying)
        stop_done(c);
}

/* The current spawned agent is let go: its connection is closed. sig
 * (SIGKILL after a failure, SIGTERM for an orderly stop) makes sure it
 * goes; it is reaped from the reactor when it has. */
static void
child_release(struct agent_client *c, int sig)
{
    struct child *ch;

    if (c->child <= 0)
        return;
    kill(c->child, sig);
    ch = calloc(1, sizeof(*ch));
    if (!ch || c->child_pidfd < 0 ||
        reactor_watch(c->r, c->child_pidfd, REACTOR_IN, child_ready, ch) < 0) {
        /* No way to wait for it on the reactor: make sure it is gone and
         * reap it now (quick after SIGKILL). */
        int status;
        free(ch);
        kill(c->child, SIGKILL);
        if (waitpid(c->child, &status, 0) == c->child && c->event_fn) {
            char how[96];
            child_status(status, how, sizeof(how));
            event(c, "agent (pid %d) %s", (int)c->child, how);
        }
        if (c->child_pidfd >= 0)
            close(c->child_pidfd);
    } else {
        ch->c = c;
        ch->pid = c->child;
        ch->pidfd = c->child_pidfd;
        ch->gen = c->err_gen;
        ch->next = c->dying;
        c->dying = ch;
    }
    c->child = 0;
    c->child_pidfd = -1;
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
    outq_clear(&c->out);
    proto_decoder_reset(&c->dec);
    reactor_timer_stop(c->r, &c->hs_timer);
    /* A spawned agent whose connection broke is no use any more (it may
     * be hung, or have broken the protocol): SIGKILL. Its keeper ends
     * the processes it started. An orderly stop asks with SIGTERM. */
    child_release(c, c->stopping ? SIGTERM : SIGKILL);
}

/* End every channel: streams end, opens and requests fail. */
static void
end_all(struct agent_client *c, int err, const char *msg)
{
    for (size_t i = 0; i < CHAN_BUCKETS; i++) {
        while (c->buckets[i]) {
            struct agent_chan *ch = c->buckets[i];
            chan_unlink(ch);
            if (ch->expired) { /* its caller has had its answer */
                chan_release(ch);
                continue;
            }
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
    set_last_error(c, c->error);
    bool retry = c->kind != EP_FD && !c->stopping;
    /* A VM whose agent is not there yet fails the same way every few
     * seconds: say it once, until it has been up or fails otherwise. */
    if (strcmp(c->lost_logged, c->error) != 0) {
        event(c, "agent connection lost: %s%s", c->error,
              retry ? "; reconnecting" : "");
        snprintf(c->lost_logged, sizeof(c->lost_logged), "%s", c->error);
    }
    close_fd(c);
    set_state(c, retry ? AGENT_DOWN : AGENT_DEAD);
    snprintf(msg, sizeof(msg), "agent connection lost: %s", c->error);
    end_all(c, err < 0 ? err : -ECONNRESET, msg);
    if (retry)
        backoff_schedule(c->r, &c->retry, client_connect, c);
}

static void
send_hello(struct agent_client *c)
{
    union proto_body b = {.hello = {.magic = PROTO_MAGIC,
                                    .version_min = PROTO_VERSION,
                                    .version_max = PROTO_VERSION}};
    c->next_id = 1;
    if (send_msg(c, PROTO_HELLO, 0, 0, &b) < 0)
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
    /* Our environment, so that processes started on the host VM see the
     * PATH, HOME and LANG of whoever started the daemon (the agent fills
     * in defaults for what is missing). */
    err = -posix_spawn(&c->child, c->path, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (err < 0) {
        c->child = 0;
        close(sv[0]);
        return err;
    }
    c->child_pidfd = (int)syscall(SYS_pidfd_open, c->child, 0);
    if (c->child_pidfd >= 0)
        fcntl(c->child_pidfd, F_SETFD, FD_CLOEXEC);
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
handshake_expired(struct reactor *r, void *arg)
{
    struct agent_client *c = arg;
    char t[32];

    duration_format(c->timeout, t, sizeof(t));
    fail(c, -ETIMEDOUT, "the agent did not complete the handshake within %s",
         t);
}

/* Connecting and the handshake together must end within the timeout. */
static void
handshake_deadline(struct agent_client *c)
{
    if (c->timeout && c->fd >= 0 && c->state == AGENT_CONNECTING)
        reactor_timer_start(c->r, &c->hs_timer, clock_now() + c->timeout,
                            handshake_expired, c);
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
    handshake_deadline(c);
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

/* An errno from the agent, as callers can hand it to strerror or FUSE. */
static int
agent_errno(uint32_t e)
{
    return e == 0 ? 0 : -(int)(e < 4096 ? e : EIO);
}

/* The handshake: hello_ok, or an error refusing it; nothing else. */
static void
on_handshake(struct agent_client *c, const struct proto_frame *f)
{
    const union proto_body *b = &c->msg->body;

    if (f->channel == 0 && f->type == PROTO_ERROR &&
        proto_msg_decode(f, 0, c->msg) == 0) {
        int err = agent_errno(b->error.err);
        fail(c, err ? err : -EPROTONOSUPPORT, "handshake refused: %s",
             b->error.message);
        return;
    }
    if (f->channel != 0 || f->type != PROTO_HELLO_OK) {
        violation(c, "%s before hello_ok", proto_type_name(f->type));
        return;
    }
    /* The table checks the magic and that the instance is not 0. */
    if (proto_msg_decode(f, 0, c->msg) < 0 ||
        b->hello_ok.version != PROTO_VERSION) {
        violation(c, "bad hello_ok");
        return;
    }
    c->facts.version = b->hello_ok.version;
    snprintf(c->facts.os, sizeof(c->facts.os), "%s", b->hello_ok.os);
    snprintf(c->facts.kernel, sizeof(c->facts.kernel), "%s",
             b->hello_ok.kernel);
    snprintf(c->facts.agent_version, sizeof(c->facts.agent_version), "%s",
             b->hello_ok.agent_version);
    c->facts.instance = b->hello_ok.instance;
    c->have_facts = true;
    backoff_reset(&c->retry);
    c->error[0] = 0;
    c->lost_logged[0] = 0;
    reactor_timer_stop(c->r, &c->hs_timer);
    set_state(c, AGENT_UP);
}

static void
grant(struct agent_chan *ch)
{
    union proto_body b = {.credit = {.bytes = (uint32_t)ch->unacked}};
    /* Grant back in half-window steps: few credit frames, and the agent
     * never stalls while we have consumed what it sent. */
    if (ch->unacked < PROTO_DEFAULT_WINDOW / 2 || ch->gone)
        return;
    if (send_msg(ch->c, PROTO_CREDIT, 0, ch->id, &b) == 0) {
        ch->credit += ch->unacked;
        ch->unacked = 0;
    }
}

/* A reply's body as the callers of requests see it (struct agent_reply). */
static void
reply_of(unsigned request, const union proto_body *b, struct agent_reply *rp)
{
    switch (request) {
    case PROTO_EXEC:
        rp->value = b->exec_reply.proc;
        break;
    case PROTO_FOPEN:
        rp->value = b->fopen_reply.handle;
        break;
    case PROTO_FSEEK:
        rp->value = b->fseek_reply.offset;
        break;
    case PROTO_STDIN:
        rp->value = b->input_reply.written;
        break;
    case PROTO_FWRITE:
        rp->value = b->fwrite_reply.written;
        break;
    case PROTO_FREAD:
        rp->data = b->fread_reply.data.p;
        rp->len = b->fread_reply.data.len;
        break;
    case PROTO_STAT:
        rp->size = b->stat_reply.size;
        rp->mode = b->stat_reply.mode;
        rp->mtime_ns = b->stat_reply.mtime_ns;
        break;
    case PROTO_WAIT:
        rp->how = b->wait_reply.how;
        rp->value = b->wait_reply.value;
        for (int i = 0; i < 2; i++) {
            const struct proto_output *w = &b->wait_reply.out[i];
            struct agent_output *o = &rp->out[i];
            o->recorded = w->recorded;
            o->lost = agent_errno(w->err);
            o->discarded = w->discarded;
            snprintf(o->msg, sizeof(o->msg), "%s", w->message);
            if (o->lost && !o->msg[0])
                snprintf(o->msg, sizeof(o->msg),
                         "%s not recorded past %llu bytes: %s",
                         i ? "stderr" : "stdout",
                         (unsigned long long)o->recorded, strerror(-o->lost));
        }
        break;
    default: /* kill, stdin_close, fclose: empty */
        break;
    }
}

static void
ignore_reply(void *arg, const struct agent_reply *rp)
{
}

static int request(struct agent_client *c, unsigned type,
                   const union proto_body *b, agent_reply_fn *done, void *arg,
                   struct agent_chan **out);

/* The answer to a request whose caller already got ETIMEDOUT: undo what
 * it created, so that nothing lives on that nobody knows of. */
static void
late_answer(struct agent_client *c, struct agent_chan *ch,
            const struct proto_frame *f)
{
    const union proto_body *b = &c->msg->body;
    union proto_body undo = {0};

    chan_unlink(ch);
    if (f->type == PROTO_ACK) {
        send_msg(c, PROTO_CLOSE, 0, ch->id, &undo);
    } else if (f->type == PROTO_REPLY && ch->type == PROTO_EXEC &&
               proto_msg_decode(f, ch->type, c->msg) == 0) {
        undo.kill = (struct proto_kill){.proc = b->exec_reply.proc,
                                        .signal = SIGKILL};
        request(c, PROTO_KILL, &undo, ignore_reply, NULL, NULL);
        event(c, "killed proc#%llu: its exec had timed out",
              (unsigned long long)undo.kill.proc);
    } else if (f->type == PROTO_REPLY && ch->type == PROTO_FOPEN &&
               proto_msg_decode(f, ch->type, c->msg) == 0) {
        undo.fclose.handle = b->fopen_reply.handle;
        request(c, PROTO_FCLOSE, &undo, ignore_reply, NULL, NULL);
    }
    chan_release(ch);
}

/*
 * What each message from the agent does to the channel it came on (the
 * frame's body decoded with the table). Each returns false when the
 * message has no business on that channel now (the caller then ends the
 * connection); a callback it runs may cancel the channel, so it holds
 * the channel (in_cb) across the call.
 */
typedef bool on_msg_fn(struct agent_client *c, struct agent_chan *ch,
                       const union proto_body *b);

static bool
on_ack(struct agent_client *c, struct agent_chan *ch, const union proto_body *b)
{
    if (!ch->cbs || ch->acked)
        return false;
    ch->acked = true;
    deadline_remove(ch);
    ch->in_cb++;
    ch->cbs->opened(ch->arg, 0, NULL, b->ack.offset);
    ch->in_cb--;
    chan_release(ch);
    return true;
}

static bool
on_data(struct agent_client *c, struct agent_chan *ch,
        const union proto_body *b)
{
    size_t len = b->data.len;

    if (!ch->cbs || !ch->acked)
        return false;
    if (len > ch->credit) {
        violation(c,
                  "%zu bytes of data beyond the %llu of credit on "
                  "channel %u",
                  len, (unsigned long long)ch->credit, ch->id);
        return true;
    }
    ch->credit -= len;
    ch->in_cb++;
    ch->cbs->data(ch->arg, b->data.p, len);
    ch->unacked += len;
    grant(ch); /* may fail the connection: hold ch until after */
    ch->in_cb--;
    chan_release(ch);
    return true;
}

static bool
on_note(struct agent_client *c, struct agent_chan *ch,
        const union proto_body *b)
{
    if (!ch->cbs || !ch->acked)
        return false;
    ch->in_cb++;
    if (ch->cbs->note)
        ch->cbs->note(ch->arg, b->note.code, b->note.value, b->note.message);
    ch->in_cb--;
    chan_release(ch);
    return true;
}

static bool
on_end(struct agent_client *c, struct agent_chan *ch, const union proto_body *b)
{
    if (!ch->cbs || !ch->acked)
        return false;
    chan_unlink(ch);
    ch->in_cb++;
    ch->cbs->end(ch->arg, agent_errno(b->end.err), b->end.reason,
                 b->end.message);
    ch->in_cb--;
    chan_release(ch);
    return true;
}

static bool
on_error(struct agent_client *c, struct agent_chan *ch,
         const union proto_body *b)
{
    int err = agent_errno(b->error.err);

    if (ch->cbs && ch->acked)
        return false;
    if (err == 0)
        err = -EIO;
    chan_unlink(ch);
    ch->in_cb++;
    if (ch->cbs) {
        ch->cbs->opened(ch->arg, err, b->error.message, 0);
    } else {
        struct agent_reply rp = {.err = err, .msg = b->error.message};
        ch->done(ch->arg, &rp);
    }
    ch->in_cb--;
    chan_release(ch);
    return true;
}

static bool
on_reply(struct agent_client *c, struct agent_chan *ch,
         const union proto_body *b)
{
    struct agent_reply rp = {0};

    if (ch->cbs)
        return false;
    reply_of(ch->type, b, &rp);
    chan_unlink(ch);
    ch->in_cb++;
    ch->done(ch->arg, &rp);
    ch->in_cb--;
    chan_release(ch);
    return true;
}

static on_msg_fn *const on_msg[PROTO_TYPE_MAX] = {
        [PROTO_ACK] = on_ack,     [PROTO_DATA] = on_data,
        [PROTO_NOTE] = on_note,   [PROTO_END] = on_end,
        [PROTO_ERROR] = on_error, [PROTO_REPLY] = on_reply,
};

static void
on_frame(struct agent_client *c, const struct proto_frame *f)
{
    struct agent_chan *ch;

    if (!proto_type_from_agent(f->type)) {
        violation(c, "agent sent host-only message %s",
                  proto_type_name(f->type));
        return;
    }
    if (c->state == AGENT_UNRESPONSIVE) {
        set_state(c, AGENT_UP);
        event(c, "the agent answers again");
    }
    if (c->state == AGENT_CONNECTING) {
        on_handshake(c, f);
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
    if (ch->expired) {
        late_answer(c, ch, f);
        return;
    }
    /* A reply's layout is that of the channel's request. */
    if (!on_msg[f->type] || proto_msg_decode(f, ch->type, c->msg) < 0 ||
        !on_msg[f->type](c, ch, &c->msg->body))
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
        /* A short read took all there was: another would only say
         * EAGAIN (issue 12: a syscall per wake-up that moves nothing).
         * The watch is level-triggered, so later bytes call us back. */
        if ((size_t)n < IN_CAP)
            return;
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
    c->child_pidfd = -1;
    TAILQ_INIT(&c->deadlines);
    backoff_init(&c->retry, BACKOFF_MIN, BACKOFF_MAX);
    outq_init(&c->out, OUT_MAX, OUT_MAX);
    c->timeout = AGENT_DEFAULT_TIMEOUT;
    c->state = AGENT_CONNECTING;
    if (!(c->endpoint = strdup(endpoint)) || !(c->in = malloc(IN_CAP)) ||
        !(c->msg = malloc(sizeof(*c->msg))))
        goto err;
    if ((err = proto_decoder_init(&c->dec)) < 0)
        goto err;
    *out = c;
    return 0;
err:
    free(c->msg);
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
    handshake_deadline(c);
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

static void
stop_done(struct agent_client *c)
{
    agent_client_stopped_fn *fn = c->stop_fn;

    reactor_timer_stop(c->r, &c->stop_timer);
    if (!fn)
        return;
    c->stop_fn = NULL;
    fn(c, c->stop_arg);
}

static void
stop_timer_fired(struct reactor *r, void *arg)
{
    stop_done(arg);
}

static void
stop_kill(struct reactor *r, void *arg)
{
    struct agent_client *c = arg;

    for (struct child *ch = c->dying; ch; ch = ch->next) {
        event(c,
              "agent (pid %d) did not exit within %llus of SIGTERM: "
              "SIGKILL",
              (int)ch->pid, (unsigned long long)(STOP_WAIT / USEC_PER_SEC));
        kill(ch->pid, SIGKILL);
    }
    reactor_timer_start(r, &c->stop_timer, clock_now() + STOP_KILL_WAIT,
                        stop_timer_fired, c);
}

int
agent_client_stop(struct agent_client *c, agent_client_stopped_fn *fn,
                  void *arg)
{
    if (c->stopping)
        return -EALREADY;
    c->stopping = true;
    c->stop_fn = fn;
    c->stop_arg = arg;
    backoff_stop(c->r, &c->retry);
    close_fd(c); /* a spawned agent gets SIGTERM and end of file */
    set_state(c, AGENT_DEAD);
    end_all(c, -ECONNABORTED, "agent client closed");
    if (c->dying)
        return reactor_timer_start(c->r, &c->stop_timer,
                                   clock_now() + STOP_WAIT, stop_kill, c);
    return reactor_timer_start(c->r, &c->stop_timer, 0, stop_timer_fired, c);
}

void
agent_client_free(struct agent_client *c)
{
    if (!c)
        return;
    backoff_stop(c->r, &c->retry);
    reactor_timer_stop(c->r, &c->hs_timer);
    reactor_timer_stop(c->r, &c->req_timer);
    reactor_timer_stop(c->r, &c->stop_timer);
    c->kind = EP_FD; /* no reconnect from the ends below */
    c->state_fn = NULL;
    c->event_fn = NULL;
    c->stop_fn = NULL;
    close_fd(c);
    c->state = AGENT_DEAD;
    end_all(c, -ECONNABORTED, "agent client closed");
    /* Normally reaped already (agent_client_stop); otherwise they have
     * had SIGKILL, and a dying one is left to exit on its own rather than
     * waited for here. */
    while (c->dying) {
        struct child *ch = c->dying;
        kill(ch->pid, SIGKILL);
        waitpid(ch->pid, NULL, WNOHANG);
        child_unlink(c, ch);
    }
    proto_decoder_fini(&c->dec);
    free(c->msg);
    free(c->in);
    outq_fini(&c->out);
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
agent_client_set_timeout(struct agent_client *c, uint64_t usec)
{
    c->timeout = usec;
    reactor_timer_stop(c->r, &c->hs_timer);
    handshake_deadline(c);
}

void
agent_client_on_event(struct agent_client *c, agent_client_event_fn *fn,
                      void *arg)
{
    c->event_fn = fn;
    c->event_arg = arg;
}

const char *
agent_client_last_error(const struct agent_client *c, time_t *when)
{
    if (when)
        *when = c->last_error_at;
    return c->last_error;
}

void
agent_client_info(const struct agent_client *c, char *buf, size_t len)
{
    char num[32], t[32] = "", when[PROTO_MAX_MSG + 64];
    struct tm tm;

    /* Every fact and the error may come from the guest: escaped, so that
     * a kernel string cannot add an `agent_state:` line of its own. */
    text_keyval(buf, len, "agent", c->endpoint);
    text_keyval(buf, len, "agent_state", agent_client_state_name(c->state));
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
    /* Kept across reconnects and respawns: a crash that was repaired at
     * once is still worth knowing about. */
    if (c->last_error[0]) {
        if (gmtime_r(&c->last_error_at, &tm))
            strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(when, sizeof(when), "%s (at %s)", c->last_error, t);
        text_keyval(buf, len, "agent_last_error", when);
    }
}

/* ---- public: channels ---- */

/* Open a channel of the given type: send its first message (body b,
 * checked by the message table) and enter it, with a stream's callbacks
 * or a request's done, in the channel table. */
static int
chan_start(struct agent_client *c, unsigned type, const union proto_body *b,
           const struct agent_stream_cbs *cbs, agent_reply_fn *done, void *arg,
           struct agent_chan **out)
{
    struct agent_chan *ch;
    int err;

    if (!(ch = calloc(1, sizeof(*ch))))
        return -ENOMEM;
    ch->c = c;
    ch->type = type;
    ch->id = c->next_id;
    ch->cbs = cbs;
    ch->done = done;
    ch->arg = arg;
    ch->credit = cbs ? PROTO_DEFAULT_WINDOW : 0;
    if ((err = send_msg(c, type, 0, ch->id, b)) < 0) {
        free(ch);
        return err;
    }
    /* send_msg may have failed the connection (EPIPE): then the request
     * is already lost, but the caller must still hear of it. */
    if (!usable(c)) {
        free(ch);
        return -ENOTCONN;
    }
    c->next_id++;
    struct agent_chan **pp = chan_slot(c, ch->id);
    *pp = ch;
    c->nchans++;
    deadline_add(ch);
    if (out)
        *out = ch;
    return 0;
}

void
agent_client_cancel(struct agent_chan *ch)
{
    if (!ch)
        return;
    if (!ch->gone) {
        struct agent_client *c = ch->c;
        union proto_body none = {0};
        chan_unlink(ch);
        /* Best effort: if the agent is gone, so is its channel. */
        if (c->fd >= 0)
            send_msg(c, PROTO_CLOSE, 0, ch->id, &none);
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
    const struct proto_def *d = proto_def(req->type);
    union proto_body b = {.open = {.credit = PROTO_DEFAULT_WINDOW,
                                   .start = (uint8_t)req->start,
                                   .flags = (uint8_t)req->flags,
                                   .offset = req->offset,
                                   .path = req->path,
                                   .handle = req->id,
                                   .proc = req->id,
                                   .which = (uint8_t)req->which}};

    if (!usable(c))
        return -ENOTCONN;
    if (!cbs || !cbs->opened || !cbs->data || !cbs->end || !d ||
        !(d->flags & PROTO_OPENS))
        return -EINVAL;
    return chan_start(c, req->type, &b, cbs, NULL, arg, out);
}

/* A request: the table checks its body (-EINVAL, -E2BIG, -ENAMETOOLONG)
 * before anything else. */
static int
request(struct agent_client *c, unsigned type, const union proto_body *b,
        agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    ssize_t len = proto_msg_size(type, 0, b);

    if (len < 0)
        return (int)len;
    if (!usable(c))
        return -ENOTCONN;
    if (!done)
        return -EINVAL;
    return chan_start(c, type, b, NULL, done, arg, out);
}

int
agent_client_exec(struct agent_client *c, const char *cwd, char *const argv[],
                  char *const env[], agent_reply_fn *done, void *arg,
                  struct agent_chan **out)
{
    size_t argc = 0, envc = 0;

    while (argv && argv[argc])
        argc++;
    while (env && env[envc])
        envc++;
    /* The table caps the counts; this keeps them from wrapping first. */
    if (argc > UINT16_MAX || envc > UINT16_MAX)
        return -E2BIG;
    union proto_body b = {.exec = {.cwd = cwd,
                                   .argc = (uint16_t)argc,
                                   .envc = (uint16_t)envc,
                                   .argv = argv,
                                   .env = env}};
    return request(c, PROTO_EXEC, &b, done, arg, out);
}

int
agent_client_wait(struct agent_client *c, uint64_t proc, agent_reply_fn *done,
                  void *arg, struct agent_chan **out)
{
    union proto_body b = {.wait = {.proc = proc}};
    return request(c, PROTO_WAIT, &b, done, arg, out);
}

int
agent_client_kill(struct agent_client *c, uint64_t proc, int sig,
                  agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    union proto_body b = {.kill = {.proc = proc, .signal = (uint32_t)sig}};
    if (sig < 0 || sig > 64)
        return -EINVAL;
    return request(c, PROTO_KILL, &b, done, arg, out);
}

int
agent_client_stdin(struct agent_client *c, uint64_t proc, const void *buf,
                   size_t len, agent_reply_fn *done, void *arg,
                   struct agent_chan **out)
{
    union proto_body b = {.input = {.proc = proc, .data = {buf, len}}};
    return request(c, PROTO_STDIN, &b, done, arg, out);
}

int
agent_client_stdin_close(struct agent_client *c, uint64_t proc,
                         agent_reply_fn *done, void *arg,
                         struct agent_chan **out)
{
    union proto_body b = {.stdin_close = {.proc = proc}};
    return request(c, PROTO_STDIN_CLOSE, &b, done, arg, out);
}

int
agent_client_fopen(struct agent_client *c, const char *path, unsigned flags,
                   unsigned mode, agent_reply_fn *done, void *arg,
                   struct agent_chan **out)
{
    union proto_body b = {
            .fopen = {.flags = flags, .mode = mode, .path = path}};
    return request(c, PROTO_FOPEN, &b, done, arg, out);
}

int
agent_client_fread(struct agent_client *c, uint64_t handle, size_t n,
                   agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    union proto_body b = {.fread = {.handle = handle}};
    /* More than a frame holds: a short read, as read(2) may give. */
    b.fread.count = (uint32_t)(n > PROTO_MAX_DATA ? PROTO_MAX_DATA : n);
    return request(c, PROTO_FREAD, &b, done, arg, out);
}

int
agent_client_fwrite(struct agent_client *c, uint64_t handle, const void *buf,
                    size_t len, agent_reply_fn *done, void *arg,
                    struct agent_chan **out)
{
    union proto_body b = {.fwrite = {.handle = handle, .data = {buf, len}}};
    return request(c, PROTO_FWRITE, &b, done, arg, out);
}

int
agent_client_fseek(struct agent_client *c, uint64_t handle, int64_t off,
                   unsigned whence, agent_reply_fn *done, void *arg,
                   struct agent_chan **out)
{
    union proto_body b = {
            .fseek = {.handle = handle, .offset = off, .whence = whence}};
    if (whence > UINT8_MAX)
        return -EINVAL;
    return request(c, PROTO_FSEEK, &b, done, arg, out);
}

int
agent_client_fclose(struct agent_client *c, uint64_t handle,
                    agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    union proto_body b = {.fclose = {.handle = handle}};
    return request(c, PROTO_FCLOSE, &b, done, arg, out);
}

int
agent_client_stat(struct agent_client *c, const char *path,
                  agent_reply_fn *done, void *arg, struct agent_chan **out)
{
    union proto_body b = {.stat = {.path = path}};
    return request(c, PROTO_STAT, &b, done, arg, out);
}
