/*
 * vmctl.c - vms/<name>/ctl (SPEC §5.4) and vms/<name>/procs/: commands
 * run through the VM's agent client, their replies read back on the same
 * open file (ctl.c).
 *
 * Each command is one agent request; requests of one open run
 * concurrently in the agent, but their replies are read in the order the
 * commands were written. `wait PROC [T]` has no default timeout (it waits
 * for the process); with T the request is abandoned at T and answers
 * `timeout`. Releasing the ctl file abandons what still runs.
 *
 * Processes started with `exec` are remembered (at most VMCTL_MAX_PROCS
 * per VM; the oldest finished ones are forgotten first) with their
 * command line, their exit status (a `wait` is kept outstanding from the
 * start) and their stdout/stderr, each recorded from the first byte in a
 * stream of its own: procs/<n>/{status,cmdline,stdout,stderr}.
 *
 * A process is *settled* once the agent's wait has answered and the output
 * the agent had recorded by then has reached the daemon's history (or its
 * stream ended): `wait` on a remembered process answers then, so that
 * procs/<n>/stdout holds everything the process wrote before it exited.
 * Output not recorded, in the agent (its spool full, --proc-spool-max) or
 * here (the daemon's spool full, the history limit), is never silent:
 * the status says so after the exit ("exit 0; stdout not recorded past N
 * bytes: spool: No space left on device") and `wait` answers `error`
 * with that text.
 *
 * Replies: exec → the proc id; open → the handle; read → the bytes;
 * write, stdin → bytes written; seek → the new offset; wait → `exit N` or
 * `signal N`; the others an empty `ok`. Ids are plain numbers; `proc#N`
 * and `file#N` are accepted wherever an id is expected.
 *
 * Ids (SPEC §6.4). The ids shown on the mount are the daemon's, not the
 * agent's: an agent that restarts (the host agent respawned, a guest
 * rebooted) counts from 1 again, and its "proc 1" is not the process an
 * earlier "proc 1" named. So each VM hands out mount ids in order, never
 * reused in the VM's life, and maps each to the agent's id in the agent
 * instance that was current then (hello_ok's instance). When the agent
 * comes up with another instance, a new session starts: every earlier id
 * is stale and answers ESTALE "from an earlier agent session", never
 * another object, and the handles of the old session no longer count.
 * The same instance after a reconnect (a guest agent that outlived the
 * connection) keeps its ids, and the daemon waits again for its running
 * processes. Every process and handle belongs to the uid that created it
 * (access.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define VMCTL_MAX_PROCS 256
#define VMCTL_MAX_HANDLES 1024 /* as the agent's own cap */

struct pwait;

struct proc {
    struct proc *next;
    struct vm *vm;
    uint64_t n;        /* the mount id: procs/<n>, what commands name */
    uint64_t agent_id; /* the agent's id, in instance */
    uint64_t instance;
    uid_t uid; /* who exec'd it */
    char *cmdline;
    size_t cmdlen;
    bool exited;      /* the agent's wait answered: status final */
    bool lost;        /* the connection went while it ran: status unknown
                       * until the agent is back (vm_session) */
    bool settled;     /* exited, and the output recorded by then arrived */
    bool lossy;       /* the status tells of output not recorded */
    bool wait_failed; /* the agent's wait failed for good */
    char *status;     /* once exited: "exit N" ... */
    uint64_t recorded[2];
    char *agent_lost[2]; /* the agent's word on output it did not record */
    struct agent_chan *wait_ch;
    struct stream *out[2]; /* stdout, stderr */
    struct stream_reader *catchup[2];
    struct pwait *waiters; /* `wait` commands answered when settled */
};

/* A `wait` command on a remembered process (in its ctl entry's aux). */
struct pwait {
    struct pwait *next;
    struct proc *p;
    struct ctl_entry *e;
};

/* An agent file handle opened through ctl in the current session. */
struct fhandle {
    struct fhandle *next;
    uint64_t n;        /* the mount id */
    uint64_t agent_id; /* the agent's handle */
    uid_t uid;         /* who opened it */
};

struct vctl {
    struct ctl c;
    struct vm *vm;
};

enum cmd_kind {
    C_EXEC,
    C_WAIT,
    C_KILL,
    C_STDIN,
    C_STDIN_CLOSE,
    C_OPEN,
    C_READ,
    C_WRITE,
    C_SEEK,
    C_CLOSE,
    C_CONSOLE_WRITE,
    C_QUIESCE,
};

/* ---- processes ---------------------------------------------------- */

struct proc *
vm_proc(struct vm *vm, uint64_t n)
{
    for (struct proc *p = vm->procs; p; p = p->next)
        if (p->n == n)
            return p;
    return NULL;
}

struct proc *
vm_proc_next(struct vm *vm, struct proc *prev)
{
    return prev ? prev->next : vm->procs;
}

uint64_t
vm_proc_id(const struct proc *p)
{
    return p->n;
}

uid_t
vm_proc_owner(const struct proc *p)
{
    return p->uid;
}

uid_t
vm_handle_owner(const struct fhandle *h)
{
    return h->uid;
}

size_t
vm_proc_status(struct proc *p, char *buf, size_t len)
{
    buf[0] = 0;
    text_append(buf, len, p->settled && p->status ? p->status : "running");
    return fs_appendf(buf, len, "\n");
}

const char *
vm_proc_cmdline(struct proc *p, size_t *len)
{
    *len = p->cmdlen;
    return p->cmdline;
}

struct stream *
vm_proc_output(struct proc *p, int which)
{
    return which == 1 || which == 2 ? p->out[which - 1] : NULL;
}

static void pwait_answer(struct pwait *w, struct reply *rp);

static void
proc_free(struct proc *p)
{
    agent_client_cancel(p->wait_ch);
    while (p->waiters) {
        struct reply *rp = NULL;
        reply_new_fmt(REPLY_ERROR, &rp,
                      "wait: proc#%" PRIu64 " was forgotten: vm `%s` %s", p->n,
                      p->vm->name, p->vm->gone ? "was removed" : "is gone");
        pwait_answer(p->waiters, rp);
    }
    for (int i = 0; i < 2; i++) {
        stream_reader_free(p->catchup[i]);
        if (p->out[i]) {
            stream_close(p->out[i]);
            stream_unref(p->out[i]);
        }
    }
    free(p->agent_lost[0]);
    free(p->agent_lost[1]);
    free(p->status);
    free(p->cmdline);
    free(p);
}

static void
handles_free(struct vm *vm)
{
    struct fhandle *h;

    while ((h = vm->fhandles)) {
        vm->fhandles = h->next;
        free(h);
    }
    vm->handles = 0;
}

size_t
vm_procs_running(struct vm *vm)
{
    size_t n = 0;

    for (struct proc *p = vm->procs; p; p = p->next)
        n += !p->exited && p->instance == vm->instance;
    return n;
}

static void
signal_sent(void *arg, const struct agent_reply *rp)
{
}

/* Signal every process of the current agent session still running
 * (those of earlier sessions went with their agent). */
void
vm_procs_signal(struct vm *vm, int sig)
{
    for (struct proc *p = vm->procs; p; p = p->next)
        if (!p->exited && p->instance == vm->instance)
            agent_client_kill(vm->agent, p->agent_id, sig, signal_sent, NULL,
                              NULL);
}

void
vm_procs_free(struct vm *vm)
{
    struct proc *p;

    while ((p = vm->procs)) {
        vm->procs = p->next;
        proc_free(p);
    }
    vm->nprocs = 0;
    handles_free(vm);
}

/* ---- settling: the exit status with the fate of the output ------- */

static void proc_settle(struct proc *p);

static void
catchup_ready(struct reactor *r, void *arg)
{
    proc_settle(arg);
}

/* Append "; <text>" to p->status. */
static void status_add(struct proc *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
status_add(struct proc *p, const char *fmt, ...)
{
    size_t n = p->status ? strlen(p->status) : 0;
    char more[PROTO_MAX_MSG + 64];
    va_list ap;
    char *s;

    va_start(ap, fmt);
    vsnprintf(more, sizeof(more), fmt, ap);
    va_end(ap);
    if (!(s = realloc(p->status, n + strlen(more) + 3)))
        return;
    sprintf(s + n, "%s%s", n ? "; " : "", more);
    p->status = s;
}

/* Settled once each output's history holds what the agent had recorded
 * when it answered wait, or has ended. Until then a reader placed just
 * before that size tells us when it gets there. */
static void
proc_settle(struct proc *p)
{
    static const char *const names[2] = {"stdout", "stderr"};
    bool waiting = false;

    if (p->settled || !p->exited)
        return;
    for (int i = 0; i < 2; i++) {
        struct stream *s = p->out[i];
        if (!s || stream_state(s) != STREAM_LIVE ||
            stream_size(s) >= p->recorded[i]) {
            stream_reader_free(p->catchup[i]);
            p->catchup[i] = NULL;
            continue;
        }
        if (!p->catchup[i] && stream_reader_new(s, &p->catchup[i]) < 0)
            continue; /* out of memory: settle without it */
        stream_reader_seek(p->catchup[i], p->recorded[i] - 1);
        stream_reader_notify(p->catchup[i], catchup_ready, p);
        waiting = true;
    }
    if (waiting)
        return;
    /* Where each output stopped being recorded, if it did: here (short
     * of what the agent had), else in the agent. */
    for (int i = 0; i < 2; i++) {
        struct stream *s = p->out[i];
        const char *why = NULL;
        if (p->recorded[i] > 0 && !s) {
            status_add(p, "%s not recorded: its history could not be created",
                       names[i]);
        } else if (s && stream_size(s) < p->recorded[i] &&
                   stream_end_error(s, &why) < 0) {
            status_add(p, "%s not recorded past %" PRIu64 " bytes: %s",
                       names[i], stream_size(s), why ? why : "stream error");
        } else if (p->agent_lost[i]) {
            status_add(p, "%s", p->agent_lost[i]);
        } else {
            continue;
        }
        p->lossy = true;
    }
    p->settled = true;
    while (p->waiters) {
        struct reply *rp = NULL;
        reply_new_mem(p->lossy ? REPLY_ERROR : REPLY_OK, p->status,
                      p->status ? strlen(p->status) : 0, &rp);
        pwait_answer(p->waiters, rp);
    }
}

static void
proc_waited(void *arg, const struct agent_reply *rp)
{
    struct proc *p = arg;

    p->wait_ch = NULL;
    if (rp->err < 0 && !vm_agent_up(p->vm)) {
        /* Lost with the connection: it may still run, and its agent may
         * come back (vm_session decides). Waiters keep waiting. */
        p->lost = true;
        return;
    }
    p->exited = true;
    p->lost = false;
    if (rp->err < 0) {
        status_add(p, "unknown: %s", rp->msg);
        p->lossy = true;
        p->wait_failed = true;
        p->recorded[0] = p->recorded[1] = 0;
    } else {
        status_add(p, "%s %" PRIu64,
                   rp->how == PROTO_SIGNALED ? "signal" : "exit", rp->value);
        for (int i = 0; i < 2; i++) {
            p->recorded[i] = rp->out[i].recorded;
            if (rp->out[i].lost < 0)
                p->agent_lost[i] = strdup(rp->out[i].msg);
        }
    }
    proc_settle(p);
    vm_proc_exited(p->vm);
}

/* The agent is up: the same instance as before keeps its ids and is
 * asked again about the processes it was running; another one starts a
 * new session, and what the old one ran is final ("unknown"). */
void
vm_session(struct vm *vm)
{
    const struct agent_facts *f = agent_client_facts(vm->agent);
    uint64_t instance = f ? f->instance : 0;

    if (vm->instance && instance == vm->instance) {
        for (struct proc *p = vm->procs; p; p = p->next) {
            if (!p->lost || p->instance != instance)
                continue;
            p->lost = false;
            free(p->status);
            p->status = NULL;
            if (agent_client_wait(vm->agent, p->agent_id, proc_waited, p,
                                  &p->wait_ch) < 0) {
                struct agent_reply rp = {
                        .err = -ENOTCONN,
                        .msg = "the VM's agent is not connected"};
                proc_waited(p, &rp);
            }
        }
        return;
    }
    vm->instance = instance;
    vm->proc_floor = vm->last_proc;
    vm->handle_floor = vm->last_handle;
    handles_free(vm);
    for (struct proc *p = vm->procs; p; p = p->next) {
        if (p->lost) {
            struct agent_reply rp = {
                    .err = -ESTALE,
                    .msg = "its agent session ended (the agent restarted)"};
            free(p->status);
            p->status = NULL;
            p->lost = false;
            proc_waited(p, &rp);
        }
    }
}

static void
output_opened(struct stream *s, int err, const char *msg, void *arg)
{
    if (err < 0)
        stream_end(s, err, msg);
}

/* Record stdout or stderr of p from its first byte. */
static void
proc_capture(struct proc *p, int which)
{
    struct fs *fs = p->vm->fs;
    struct stream_config cfg = {.spool_dir = fs->opt->spool_dir,
                                .history_limit = fs->opt->history_limit,
                                .noun = "stream"};
    struct command cmd;
    char line[64], err[COMMAND_ERR_LEN];
    void *state;

    snprintf(line, sizeof(line), "%s vm %" PRIu64,
             which == 1 ? "proc_stdout_stream" : "proc_stderr_stream",
             p->agent_id);
    if (stream_new(fs->r, &cfg, &p->out[which - 1]) < 0)
        return;
    if (command_parse(&cmd, line, strlen(line), err) < 0 ||
        tail_engine.open(p->out[which - 1], p->vm->agent, &cmd, 1,
                         output_opened, NULL, &state, err) < 0)
        stream_end(p->out[which - 1], -EIO, err);
    command_free(&cmd);
}

/* Forget the oldest finished processes beyond the cap. */
static void
procs_trim(struct vm *vm)
{
    while (vm->nprocs >= VMCTL_MAX_PROCS) {
        struct proc **pp = &vm->procs, **oldest = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->settled && !(*pp)->waiters)
                oldest = pp; /* the list is newest first */
        if (!oldest)
            return;
        struct proc *p = *oldest;
        *oldest = p->next;
        proc_free(p);
        vm->nprocs--;
    }
}

/* Remember the process the agent started as agent_id: its mount id, or
 * 0 when memory ran out. Takes cmdline. */
static uint64_t
proc_add(struct vm *vm, uint64_t agent_id, uid_t uid, char *cmdline,
         size_t cmdlen)
{
    struct proc *p = calloc(1, sizeof(*p));

    if (!p) {
        free(cmdline);
        return 0;
    }
    procs_trim(vm);
    p->vm = vm;
    p->n = ++vm->last_proc;
    p->agent_id = agent_id;
    p->instance = vm->instance;
    p->uid = uid;
    p->cmdline = cmdline;
    p->cmdlen = cmdlen;
    p->next = vm->procs;
    vm->procs = p;
    vm->nprocs++;
    proc_capture(p, 1);
    proc_capture(p, 2);
    if (agent_client_wait(vm->agent, agent_id, proc_waited, p, &p->wait_ch) <
        0) {
        struct agent_reply rp = {.err = -ENOTCONN,
                                 .msg = "the VM's agent is not connected"};
        proc_waited(p, &rp);
    }
    return p->n;
}

/* ---- handles and ids ---------------------------------------------- */

static struct fhandle *
handle_find(struct vm *vm, uint64_t n, struct fhandle ***pp)
{
    struct fhandle **hp = &vm->fhandles;

    for (; *hp; hp = &(*hp)->next)
        if ((*hp)->n == n) {
            if (pp)
                *pp = hp;
            return *hp;
        }
    return NULL;
}

static void
ignore_reply(void *arg, const struct agent_reply *rp)
{
}

/* Remember the handle the agent opened: its mount id, or 0 at the cap
 * (then the agent's handle is closed again). */
static uint64_t
handle_add(struct vm *vm, uint64_t agent_id, uid_t uid)
{
    struct fhandle *h = NULL;

    if (vm->handles >= VMCTL_MAX_HANDLES || !(h = calloc(1, sizeof(*h)))) {
        agent_client_fclose(vm->agent, agent_id, ignore_reply, NULL, NULL);
        return 0;
    }
    h->n = ++vm->last_handle;
    h->agent_id = agent_id;
    h->uid = uid;
    h->next = vm->fhandles;
    vm->fhandles = h;
    vm->handles++;
    return h->n;
}

static void
handle_forget(struct vm *vm, uint64_t n)
{
    struct fhandle **pp, *h = handle_find(vm, n, &pp);

    if (h) {
        *pp = h->next;
        free(h);
        vm->handles--;
    }
}

static bool parse_u64(struct word w, const char *prefix, uint64_t *v);

int
vm_resolve(struct vm *vm, bool proc, struct word w, uid_t uid, const char *what,
           uint64_t *agent_id, uint64_t *n, char *err)
{
    const char *noun = proc ? "proc" : "file";
    uint64_t floor = proc ? vm->proc_floor : vm->handle_floor;
    struct proc *p = NULL;
    struct fhandle *h = NULL;
    char why[256];
    int rc;

    if (!parse_u64(w, noun, n) || *n == 0) {
        snprintf(err, COMMAND_ERR_LEN, "%s: bad %s id `%.*s`", what,
                 proc ? "process" : "handle", (int)(w.len > 32 ? 32 : w.len),
                 w.p);
        return -EINVAL;
    }
    if (proc)
        p = vm_proc(vm, *n);
    else
        h = handle_find(vm, *n, NULL);
    if ((p && p->instance != vm->instance) || (!p && !h && *n <= floor)) {
        snprintf(err, COMMAND_ERR_LEN,
                 "%s: %s#%" PRIu64 ": %s (from an earlier agent session)", what,
                 noun, *n, strerror(ESTALE));
        return -ESTALE;
    }
    if (!p && !h) {
        rc = proc ? ESRCH : EBADF;
        snprintf(err, COMMAND_ERR_LEN, "%s: %s#%" PRIu64 ": %s%s", what, noun,
                 *n, strerror(rc),
                 proc && *n <= vm->last_proc
                         ? " (forgotten: the oldest finished processes "
                           "are, beyond 256 per VM)"
                         : "");
        return -rc;
    }
    rc = p ? access_proc(vm, p, uid, why, sizeof(why))
           : access_handle(vm, h, uid, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, COMMAND_ERR_LEN, "%s: %s#%" PRIu64 ": %s (%.160s)", what,
                 noun, *n, strerror(-rc), why);
        return rc;
    }
    *agent_id = p ? p->agent_id : h->agent_id;
    return 0;
}

/* ---- wait on a remembered process ---------------------------------- */

static void
pwait_unlink(struct pwait *w)
{
    struct pwait **pp = &w->p->waiters;

    while (*pp != w)
        pp = &(*pp)->next;
    *pp = w->next;
    w->e->aux = NULL;
    free(w);
}

static void
pwait_answer(struct pwait *w, struct reply *rp)
{
    struct ctl_entry *e = w->e;

    reactor_timer_stop(w->p->vm->fs->r, &e->timer);
    pwait_unlink(w);
    ctl_done(e, rp);
}

/* wait PROC on a process started through the mount: answered when it
 * settles, with its status. */
static int
pwait_start(struct ctl_entry *e, struct proc *p)
{
    struct pwait *w;
    struct reply *rp = NULL;

    if (p->settled) {
        reactor_timer_stop(p->vm->fs->r, &e->timer);
        reply_new_mem(p->lossy ? REPLY_ERROR : REPLY_OK, p->status,
                      p->status ? strlen(p->status) : 0, &rp);
        ctl_done(e, rp);
        return 0;
    }
    if (!(w = calloc(1, sizeof(*w))))
        return -ENOMEM;
    w->p = p;
    w->e = e;
    w->next = p->waiters;
    p->waiters = w;
    e->aux = (char *)w;
    return 0;
}

/* ---- replies ------------------------------------------------------ */

static const char *const cmd_names[] = {
        [C_EXEC] = "exec",
        [C_WAIT] = "wait",
        [C_KILL] = "kill",
        [C_STDIN] = "stdin",
        [C_STDIN_CLOSE] = "stdin_close",
        [C_OPEN] = "open",
        [C_READ] = "read",
        [C_WRITE] = "write",
        [C_SEEK] = "seek",
        [C_CLOSE] = "close",
        [C_CONSOLE_WRITE] = "console_write",
        [C_QUIESCE] = "quiesce",
};

static void
request_done(void *arg, const struct agent_reply *rp)
{
    struct ctl_entry *e = arg;
    struct vctl *vc = e->owner;
    struct vm *vm = vc->vm;
    struct reply *r = NULL;

    e->ch = NULL;
    reactor_timer_stop(vm->fs->r, &e->timer);
    if (rp->err < 0) {
        const char *msg = rp->msg && *rp->msg ? rp->msg : strerror(-rp->err);
        size_t n = strlen(cmd_names[e->kind]);
        /* One "exec: " prefix: an agent that already names the request
         * (older agents did) is not prefixed a second time. */
        bool named = strncmp(msg, cmd_names[e->kind], n) == 0 &&
                     msg[n] == ':' && msg[n + 1] == ' ';
        reply_new_fmt(REPLY_ERROR, &r, "%s%s%s",
                      named ? "" : cmd_names[e->kind], named ? "" : ": ", msg);
        ctl_done(e, r);
        return;
    }
    switch (e->kind) {
    case C_EXEC: {
        uint64_t n =
                vm->gone ? 0
                         : proc_add(vm, rp->value, e->uid, e->aux, e->auxlen);
        e->aux = NULL; /* proc_add took it */
        if (n)
            reply_new_fmt(REPLY_OK, &r, "%" PRIu64, n);
        else
            reply_new_fmt(REPLY_ERROR, &r, "exec: %s", strerror(ENOMEM));
        break;
    }
    case C_WAIT: { /* a process the mount does not remember */
        bool lost = rp->out[0].lost < 0 || rp->out[1].lost < 0;
        reply_new_fmt(lost ? REPLY_ERROR : REPLY_OK, &r,
                      "%s %" PRIu64 "%s%s%s%s",
                      rp->how == PROTO_SIGNALED ? "signal" : "exit", rp->value,
                      rp->out[0].lost < 0 ? "; " : "",
                      rp->out[0].lost < 0 ? rp->out[0].msg : "",
                      rp->out[1].lost < 0 ? "; " : "",
                      rp->out[1].lost < 0 ? rp->out[1].msg : "");
        break;
    }
    case C_OPEN: {
        uint64_t n = handle_add(vm, rp->value, e->uid);
        if (n)
            reply_new_fmt(REPLY_OK, &r, "%" PRIu64, n);
        else
            reply_new_fmt(REPLY_ERROR, &r,
                          "open: %s (at most %d open handles per VM)",
                          strerror(EMFILE), VMCTL_MAX_HANDLES);
        break;
    }
    case C_CLOSE:
        handle_forget(vm, e->obj);
        reply_new_mem(REPLY_OK, "", 0, &r);
        break;
    case C_READ:
        reply_new_mem(REPLY_OK, rp->data, rp->len, &r);
        break;
    case C_STDIN:
    case C_WRITE:
    case C_SEEK:
        reply_new_fmt(REPLY_OK, &r, "%" PRIu64, rp->value);
        break;
    default:
        reply_new_mem(REPLY_OK, "", 0, &r);
        break;
    }
    ctl_done(e, r);
}

static void
request_cancel(struct ctl_entry *e)
{
    struct vctl *vc = e->owner;

    agent_client_cancel(e->ch);
    e->ch = NULL;
    reactor_timer_stop(vc->vm->fs->r, &e->timer);
    if (e->kind == C_WAIT && e->aux)
        pwait_unlink((struct pwait *)(void *)e->aux);
}

static void
wait_timed_out(struct reactor *r, void *arg)
{
    struct ctl_entry *e = arg;
    struct reply *rp = NULL;
    char t[32];

    agent_client_cancel(e->ch);
    e->ch = NULL;
    if (e->aux)
        pwait_unlink((struct pwait *)(void *)e->aux);
    duration_format(e->id, t, sizeof(t));
    reply_new_fmt(REPLY_TIMEOUT, &rp, "wait timed out after %s", t);
    ctl_done(e, rp);
}

/* ---- parsing ------------------------------------------------------ */

static bool
parse_u64(struct word w, const char *prefix, uint64_t *v)
{
    char buf[32], *end;
    size_t plen = prefix ? strlen(prefix) : 0;
    const char *p = buf;

    if (w.len == 0 || w.len >= sizeof(buf) || memchr(w.p, 0, w.len))
        return false;
    memcpy(buf, w.p, w.len);
    buf[w.len] = 0;
    if (prefix && strncmp(buf, prefix, plen) == 0 && buf[plen] == '#')
        p += plen + 1;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    *v = strtoull(p, &end, 10);
    return !*end && errno == 0;
}

static int
parse_signal(struct word w, int *sig)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
                {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
                {"ALRM", SIGALRM}, {"PIPE", SIGPIPE}};
    uint64_t n;

    if (w.len > 3 && memcmp(w.p, "SIG", 3) == 0) {
        w.p += 3;
        w.len -= 3;
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (word_is(w, sigs[i].name)) {
            *sig = sigs[i].sig;
            return 0;
        }
    if (parse_u64(w, NULL, &n) && n > 0 && n < 65) {
        *sig = (int)n;
        return 0;
    }
    return -EINVAL;
}

static int
do_exec(struct vctl *vc, struct ctl_entry *e, const struct command *cmd,
        char *err)
{
    char *argv[PROTO_MAX_ARGS + 1] = {0}, *env[PROTO_MAX_ARGS + 1] = {0};
    char *cwd = NULL;
    int argc = 0, envc = 0, i = 1, rc = -EINVAL;
    struct word v;
    size_t cl = 0;

    for (; i < cmd->argc; i++) {
        struct word w = cmd->argv[i];
        if (word_is(w, "--")) {
            i++;
            break;
        }
        if (word_option(w, "cwd", &v)) {
            free(cwd);
            if (!(cwd = word_strdup(v)))
                goto bad;
        } else if (word_option(w, "env", &v)) {
            if (envc == PROTO_MAX_ARGS || !memchr(v.p, '=', v.len) ||
                !(env[envc++] = word_strdup(v)))
                goto bad;
        } else {
            break; /* the command starts without `--` */
        }
    }
    for (; i < cmd->argc; i++) {
        if (argc == PROTO_MAX_ARGS || !(argv[argc] = word_strdup(cmd->argv[i])))
            goto bad;
        cl += cmd->argv[i].len + 1;
        argc++;
    }
    if (argc == 0) {
        snprintf(err, COMMAND_ERR_LEN,
                 "exec: usage: exec [cwd=DIR] [env=K=V]... -- ARGV...");
        goto out;
    }
    /* procs/<n>/cmdline: the words, escaped (text.c), joined by blanks,
     * one line. */
    if (!(e->aux = malloc(cl * 4 + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    e->auxlen = 0;
    for (i = 0; i < argc; i++) {
        e->auxlen += text_escape(e->aux + e->auxlen, cl * 4 + 1 - e->auxlen,
                                 argv[i], strlen(argv[i]));
        e->aux[e->auxlen++] = i + 1 < argc ? ' ' : '\n';
    }
    rc = agent_client_exec(vc->vm->agent, cwd ? cwd : "", argv, env,
                           request_done, e, &e->ch);
    goto out;
bad:
    snprintf(err, COMMAND_ERR_LEN,
             "exec: bad, NUL-containing or too many "
             "arguments (env= needs K=V)");
out:
    free(cwd);
    for (i = 0; i < argc; i++)
        free(argv[i]);
    for (i = 0; i < envc; i++)
        free(env[i]);
    return rc;
}

static int
do_open(struct vctl *vc, struct ctl_entry *e, const struct command *cmd,
        char *err)
{
    static const struct {
        const char *name;
        unsigned flag;
    } flags[] = {{"read", PROTO_O_READ},
                 {"write", PROTO_O_WRITE},
                 {"create", PROTO_O_CREATE},
                 {"append", PROTO_O_APPEND},
                 {"truncate", PROTO_O_TRUNCATE}};
    unsigned f = 0;
    char *path;
    int rc;

    if (cmd->argc < 2 || !(path = word_strdup(cmd->argv[1])) || !*path) {
        snprintf(err, COMMAND_ERR_LEN,
                 "open: usage: open PATH [read] "
                 "[write] [create] [append] [truncate]");
        return -EINVAL;
    }
    for (int i = 2; i < cmd->argc; i++) {
        size_t k;
        for (k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
            if (word_is(cmd->argv[i], flags[k].name))
                break;
        if (k == sizeof(flags) / sizeof(flags[0])) {
            snprintf(err, COMMAND_ERR_LEN, "open: unknown flag `%.*s`",
                     (int)(cmd->argv[i].len > 32 ? 32 : cmd->argv[i].len),
                     cmd->argv[i].p);
            free(path);
            return -EINVAL;
        }
        f |= flags[k].flag;
    }
    rc = agent_client_fopen(vc->vm->agent, path, f ? f : PROTO_O_READ, 0,
                            request_done, e, &e->ch);
    free(path);
    return rc;
}

/* Start command cmd as entry e. -EINVAL with err: malformed; other
 * -errno: the agent refused at once. */
static int
vctl_start(struct vctl *vc, struct ctl_entry *e, const struct command *cmd,
           char *err)
{
    struct agent_client *a = vc->vm->agent;
    struct word w1 = cmd->argc > 1 ? cmd->argv[1] : (struct word){"", 0};
    struct word w2 = cmd->argc > 2 ? cmd->argv[2] : (struct word){"", 0};
    uint64_t id, n;
    int sig = SIGTERM, rc;
    char text[FS_TEXT_MAX];

    switch (e->kind) {
    case C_EXEC:
        return do_exec(vc, e, cmd, err);
    case C_OPEN:
        return do_open(vc, e, cmd, err);
    case C_QUIESCE: {
        struct reply *rp = NULL;
        size_t len = vm_quiesce_text(vc->vm, text, sizeof(text));
        if (len)
            reply_new_mem(REPLY_ERROR, text, len, &rp);
        else
            reply_new_mem(REPLY_OK, "", 0, &rp);
        ctl_done(e, rp);
        return 0;
    }
    case C_CONSOLE_WRITE:
        if (cmd->argc != 2)
            break;
#if PROVIUM_HAVE_CONSOLE
        if (vc->vm->console) {
            struct console *con = vc->vm->console;
            struct reply *rp = NULL;
            size_t room = console_write_room(con);
            /* All or nothing (SPEC §6.3): a command is never cut short
             * in silence; the caller learns why and may retry. */
            if (w1.len > CONSOLE_WRITE_QUEUE)
                reply_new_fmt(REPLY_ERROR, &rp,
                              "console_write: %s: %zu bytes never fit the "
                              "console's write queue of %d bytes; split them",
                              strerror(EMSGSIZE), w1.len, CONSOLE_WRITE_QUEUE);
            else if (w1.len > room && console_write(con, "", 0) == 0)
                reply_new_fmt(REPLY_ERROR, &rp,
                              "console_write: %s: the console's write queue "
                              "(%d bytes) holds %zu bytes the guest has not "
                              "taken yet; %zu more do not fit, try again",
                              strerror(EAGAIN), CONSOLE_WRITE_QUEUE,
                              CONSOLE_WRITE_QUEUE - room, w1.len);
            else if ((rc = console_write(con, w1.p, w1.len)) < 0)
                reply_new_fmt(REPLY_ERROR, &rp, "console_write: %s",
                              strerror(-rc));
            else
                reply_new_mem(REPLY_OK, "", 0, &rp);
            ctl_done(e, rp);
            return 0;
        }
#endif
        snprintf(err, COMMAND_ERR_LEN,
                 "console_write: vm `%s` has no "
                 "console",
                 vc->vm->name);
        return -ENODEV;
    default:
        break;
    }
    if (cmd->argc < 2)
        goto usage;
    rc = vm_resolve(vc->vm, e->kind < C_OPEN, w1, e->uid, cmd_names[e->kind],
                    &id, &e->obj, err);
    if (rc == -EINVAL)
        goto usage;
    if (rc < 0)
        return rc;
    switch (e->kind) {
    case C_WAIT: {
        struct proc *pr;
        if (cmd->argc > 3)
            goto usage;
        if (cmd->argc == 3) {
            if ((rc = duration_parse(w2, &e->id, err)) < 0)
                return rc;
            if (reactor_timer_start(vc->vm->fs->r, &e->timer,
                                    clock_now() + e->id, wait_timed_out, e) < 0)
                return -ENOMEM;
        }
        /* A remembered process answers from its own bookkeeping, unless
         * that lost track of it (then the agent may still know it). */
        if ((pr = vm_proc(vc->vm, e->obj)) && !pr->wait_failed)
            rc = pwait_start(e, pr);
        else
            rc = agent_client_wait(a, id, request_done, e, &e->ch);
        if (rc < 0)
            reactor_timer_stop(vc->vm->fs->r, &e->timer);
        return rc;
    }
    case C_KILL:
        if (cmd->argc > 3 || (cmd->argc == 3 && parse_signal(w2, &sig) < 0))
            goto usage;
        return agent_client_kill(a, id, sig, request_done, e, &e->ch);
    case C_STDIN:
        if (cmd->argc != 3)
            goto usage;
        return agent_client_stdin(a, id, w2.p, w2.len, request_done, e, &e->ch);
    case C_STDIN_CLOSE:
        if (cmd->argc != 2)
            goto usage;
        return agent_client_stdin_close(a, id, request_done, e, &e->ch);
    case C_READ:
        if (cmd->argc != 3 || !parse_u64(w2, NULL, &n) || n > PROTO_MAX_DATA)
            goto usage;
        return agent_client_fread(a, id, (size_t)n, request_done, e, &e->ch);
    case C_WRITE:
        if (cmd->argc != 3)
            goto usage;
        return agent_client_fwrite(a, id, w2.p, w2.len, request_done, e,
                                   &e->ch);
    case C_SEEK: {
        unsigned whence = PROTO_SEEK_SET;
        char num[32], *end;
        long long off;
        if (cmd->argc < 3 || cmd->argc > 4 || w2.len == 0 ||
            w2.len >= sizeof(num))
            goto usage;
        memcpy(num, w2.p, w2.len);
        num[w2.len] = 0;
        errno = 0;
        off = strtoll(num, &end, 10);
        if (*end || errno)
            goto usage;
        if (cmd->argc == 4) {
            if (word_is(cmd->argv[3], "cur"))
                whence = PROTO_SEEK_CUR;
            else if (word_is(cmd->argv[3], "end"))
                whence = PROTO_SEEK_END;
            else if (!word_is(cmd->argv[3], "set"))
                goto usage;
        }
        return agent_client_fseek(a, id, off, whence, request_done, e, &e->ch);
    }
    case C_CLOSE:
        if (cmd->argc != 2)
            goto usage;
        return agent_client_fclose(a, id, request_done, e, &e->ch);
    default:
        break;
    }
usage:
    snprintf(err, COMMAND_ERR_LEN,
             "%s: usage: wait PROC [T] | kill PROC [SIG] | stdin PROC DATA | "
             "stdin_close PROC | read H N | write H DATA | seek H OFF "
             "[set|cur|end] | close H | console_write DATA",
             cmd_names[e->kind]);
    return -EINVAL;
}

/* ---- the ctl file ------------------------------------------------- */

static size_t
vctl_text(void *arg, char *buf, size_t len)
{
    struct vctl *vc = arg;

    return vm_info(vc->vm, buf, len);
}

int
vctl_open(struct vm *vm, struct vctl **out)
{
    struct vctl *vc = calloc(1, sizeof(*vc));

    if (!vc)
        return -ENOMEM;
    ctl_init(&vc->c, vm->fs, vctl_text, vc);
    vc->vm = vm;
    vm->refs++;
    *out = vc;
    return 0;
}

struct ctl *
vctl_ctl(struct vctl *vc)
{
    return &vc->c;
}

/* A command waiting for the agent to come up. */
struct pending {
    struct vm_wait w;
    struct vctl *vc;
    struct ctl_entry *e;
    struct command cmd;
};

static void
pending_cancel(struct ctl_entry *e)
{
    struct pending *p = (struct pending *)(void *)e->aux;

    vm_wait_cancel(&p->w);
    command_free(&p->cmd);
    free(p);
    e->aux = NULL;
}

static void
pending_go(void *arg, int err, const char *msg)
{
    struct pending *p = arg;
    struct ctl_entry *e = p->e;
    char cerr[COMMAND_ERR_LEN] = "";
    struct reply *rp = NULL;
    int rc;

    e->aux = NULL;
    e->cancel = request_cancel;
    if (err < 0) {
        reply_new_fmt(REPLY_ERROR, &rp, "%s: %s", cmd_names[e->kind], msg);
        ctl_done(e, rp);
    } else if ((rc = vctl_start(p->vc, e, &p->cmd, cerr)) < 0) {
        reply_new_fmt(REPLY_ERROR, &rp, "%s", *cerr ? cerr : strerror(-rc));
        ctl_done(e, rp);
    }
    command_free(&p->cmd);
    free(p);
}

int
vctl_write(struct vctl *vc, fuse_req_t req, const char *buf, size_t len)
{
    struct command *cmd = malloc(sizeof(*cmd));
    char err[COMMAND_ERR_LEN] = "";
    struct ctl_entry *e;
    size_t k;
    int rc;

    if (!cmd)
        return -ENOMEM;
    if ((rc = command_parse(cmd, buf, len, err)) < 0) {
        free(cmd);
        ctl_push_error(&vc->c, "%s", err);
        return rc;
    }
    for (k = 0; cmd->argc && k < sizeof(cmd_names) / sizeof(cmd_names[0]); k++)
        if (word_is(cmd->argv[0], cmd_names[k]))
            break;
    if (cmd->argc == 0 || k == sizeof(cmd_names) / sizeof(cmd_names[0])) {
        ctl_push_error(
                &vc->c,
                "unknown VM command `%.*s` (expected exec, wait, "
                "kill, stdin, stdin_close, open, read, write, seek, "
                "close, console_write or quiesce)",
                cmd->argc ? (int)(cmd->argv[0].len > 64 ? 64 : cmd->argv[0].len)
                          : 0,
                cmd->argc ? cmd->argv[0].p : "");
        rc = -EINVAL;
        goto out;
    }
    if (vc->vm->gone) {
        ctl_push_error(&vc->c, "%s: vm `%s` was removed", cmd_names[k],
                       vc->vm->name);
        rc = 0;
        goto out;
    }
    if (!(e = ctl_push(&vc->c))) {
        rc = -ENOMEM;
        goto out;
    }
    e->owner = vc;
    e->kind = (unsigned)k;
    e->uid = access_uid(req);
    e->cancel = request_cancel;
    if (k != C_QUIESCE && k != C_CONSOLE_WRITE && !vm_agent_up(vc->vm)) {
        struct pending *p = calloc(1, sizeof(*p));
        if (!p) {
            ctl_done(e, NULL);
            rc = 0;
            goto out;
        }
        p->vc = vc;
        p->e = e;
        p->cmd = *cmd; /* the words point into cmd->buf, which moves too */
        free(cmd);
        e->aux = (char *)p;
        e->cancel = pending_cancel;
        vm_wait_up(vc->vm, &p->w, pending_go, p);
        return 0;
    }
    rc = vctl_start(vc, e, cmd, err);
    if (rc < 0) {
        struct reply *rp = NULL;
        reply_new_fmt(REPLY_ERROR, &rp, "%s",
                      *err              ? err
                      : rc == -ENOTCONN ? "the VM's agent is not connected"
                                        : strerror(-rc));
        ctl_done(e, rp);
        rc = rc == -EINVAL ? rc : 0;
    }
out:
    command_free(cmd);
    free(cmd);
    return rc;
}

void
vctl_free(struct vctl *vc)
{
    if (!vc)
        return;
    ctl_fini(&vc->c);
    vm_unref(vc->vm);
    free(vc);
}
