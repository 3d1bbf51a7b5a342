/*
 * procs.c - the processes started through the mount (`exec` on
 * vms/<name>/ctl, listed in vms/<name>/procs/) and the agent file handles
 * opened through it: their ids, owners, and the settling of a process's
 * output (SPEC §5.4, §6.4).
 *
 * Processes are remembered (at most PROCS_MAX per VM; the oldest
 * finished ones are forgotten first) with their command line, their exit
 * status (a wait is kept outstanding with the agent from the start) and
 * their stdout/stderr, each recorded from the first byte in a stream of
 * its own: procs/<n>/{status,cmdline,stdout,stderr}.
 *
 * A process is *settled* once the agent's wait has answered and the output
 * the agent had recorded by then has reached the daemon's history (or its
 * stream ended): `wait` on a remembered process answers then (procs_wait),
 * so that procs/<n>/stdout holds everything the process wrote before it
 * exited. Output not recorded, in the agent (its spool full,
 * --proc-spool-max) or here (the daemon's spool full, the history limit),
 * is never silent: the status says so after the exit ("exit 0; stdout not
 * recorded past N bytes: spool: No space left on device") and `wait`
 * answers `error` with that text.
 *
 * Ids (SPEC §6.4). The ids shown on the mount are the daemon's, not the
 * agent's: an agent that restarts (the host agent respawned, a guest
 * rebooted) counts from 1 again, and its "proc 1" is not the process an
 * earlier "proc 1" named. So each VM hands out mount ids in order, never
 * reused in the VM's life, and maps each to the agent's id in the agent
 * instance that was current then (hello_ok's instance). When the agent
 * comes up with another instance, a new session starts (procs_session):
 * every earlier id is stale and answers ESTALE "from an earlier agent
 * session", never another object, and the handles of the old session no
 * longer count. The same instance after a reconnect (a guest agent that
 * outlived the connection) keeps its ids, and the daemon waits again for
 * its running processes. Every process and handle belongs to the uid that
 * created it (access.c decides who else may use it).
 *
 * Ownership: the VM owns its processes and handles (vm->procs,
 * vm->vmhandles); procs_free_all() at the VM's end frees them, ending
 * their output streams and answering their waiters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define PROCS_MAX 256          /* processes remembered per VM */
#define PROCS_MAX_HANDLES 1024 /* as the agent's own cap */

/* ---- processes ---------------------------------------------------- */

struct vmproc *
procs_find(struct vm *vm, uint64_t n)
{
    for (struct vmproc *p = vm->procs; p; p = p->next)
        if (p->n == n)
            return p;
    return NULL;
}

struct vmproc *
procs_next(struct vm *vm, struct vmproc *prev)
{
    return prev ? prev->next : vm->procs;
}

size_t
procs_status(struct vmproc *p, char *buf, size_t len)
{
    buf[0] = 0;
    text_append(buf, len, p->settled && p->status ? p->status : "running");
    return text_appendf(buf, len, "\n");
}

static void waiter_answer(struct procs_waiter *w, enum reply_status st,
                          const char *text);

static void
proc_free(struct vmproc *p)
{
    agent_client_cancel(p->wait_ch);
    while (p->waiters) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "wait: proc#%" PRIu64 " was forgotten: vm `%s` %s", p->n,
                 p->vm->name, p->vm->gone ? "was removed" : "is gone");
        waiter_answer(p->waiters, REPLY_ERROR, msg);
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
    struct vmhandle *h;

    while ((h = vm->vmhandles)) {
        vm->vmhandles = h->next;
        free(h);
    }
    vm->handles = 0;
}

size_t
procs_running(struct vm *vm)
{
    size_t n = 0;

    for (struct vmproc *p = vm->procs; p; p = p->next)
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
procs_signal(struct vm *vm, int sig)
{
    for (struct vmproc *p = vm->procs; p; p = p->next)
        if (!p->exited && p->instance == vm->instance)
            agent_client_kill(vm->agent, p->agent_id, sig, signal_sent, NULL,
                              NULL);
}

void
procs_free_all(struct vm *vm)
{
    struct vmproc *p;

    while ((p = vm->procs)) {
        vm->procs = p->next;
        proc_free(p);
    }
    vm->nprocs = 0;
    handles_free(vm);
}

/* ---- settling: the exit status with the fate of the output ------- */

static void proc_settle(struct vmproc *p);

static void
catchup_ready(struct reactor *r, void *arg)
{
    proc_settle(arg);
}

/* Append "; <text>" to p->status. */
static void status_add(struct vmproc *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
status_add(struct vmproc *p, const char *fmt, ...)
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
proc_settle(struct vmproc *p)
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
    while (p->waiters)
        waiter_answer(p->waiters, p->lossy ? REPLY_ERROR : REPLY_OK,
                      p->status ? p->status : "");
}

static void
proc_waited(void *arg, const struct agent_reply *rp)
{
    struct vmproc *p = arg;

    p->wait_ch = NULL;
    if (rp->err < 0 && !vm_agent_up(p->vm)) {
        /* Lost with the connection: it may still run, and its agent may
         * come back (procs_session decides). Waiters keep waiting. */
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
procs_session(struct vm *vm)
{
    const struct agent_facts *f = agent_client_facts(vm->agent);
    uint64_t instance = f ? f->instance : 0;

    if (vm->instance && instance == vm->instance) {
        for (struct vmproc *p = vm->procs; p; p = p->next) {
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
    for (struct vmproc *p = vm->procs; p; p = p->next) {
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
proc_capture(struct vmproc *p, int which)
{
    struct fs *fs = p->vm->fs;
    struct engine_req req = {
            .e = engine_lookup(which == 1 ? "proc_stdout_stream"
                                          : "proc_stderr_stream"),
            .id = p->agent_id,
    };
    struct stream_config cfg = {.spool_dir = fs->opt->spool_dir,
                                .history_limit = fs->opt->history_limit,
                                .noun = req.e->noun};
    char err[COMMAND_ERR_LEN];
    void *state;

    if (stream_new(fs->r, &cfg, &p->out[which - 1]) < 0)
        return;
    if (engine_open(p->out[which - 1], p->vm->agent, &req, output_opened, NULL,
                    &state, err) < 0)
        stream_end(p->out[which - 1], -EIO, err);
}

/* Forget the oldest finished processes beyond the cap. */
static void
procs_trim(struct vm *vm)
{
    while (vm->nprocs >= PROCS_MAX) {
        struct vmproc **pp = &vm->procs, **oldest = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->settled && !(*pp)->waiters)
                oldest = pp; /* the list is newest first */
        if (!oldest)
            return;
        struct vmproc *p = *oldest;
        *oldest = p->next;
        proc_free(p);
        vm->nprocs--;
    }
}

/* Remember the process the agent started as agent_id: its mount id, or
 * 0 when memory ran out. Takes cmdline. */
uint64_t
procs_add(struct vm *vm, uint64_t agent_id, uid_t uid, char *cmdline,
          size_t cmdlen)
{
    struct vmproc *p = calloc(1, sizeof(*p));

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

static struct vmhandle *
handle_find(struct vm *vm, uint64_t n, struct vmhandle ***pp)
{
    struct vmhandle **hp = &vm->vmhandles;

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
uint64_t
procs_handle_add(struct vm *vm, uint64_t agent_id, uid_t uid)
{
    struct vmhandle *h = NULL;

    if (vm->handles >= PROCS_MAX_HANDLES || !(h = calloc(1, sizeof(*h)))) {
        agent_client_fclose(vm->agent, agent_id, ignore_reply, NULL, NULL);
        return 0;
    }
    h->n = ++vm->last_handle;
    h->agent_id = agent_id;
    h->uid = uid;
    h->next = vm->vmhandles;
    vm->vmhandles = h;
    vm->handles++;
    return h->n;
}

void
procs_handle_forget(struct vm *vm, uint64_t n)
{
    struct vmhandle **pp, *h = handle_find(vm, n, &pp);

    if (h) {
        *pp = h->next;
        free(h);
        vm->handles--;
    }
}

int
procs_resolve(struct vm *vm, bool proc, struct word w, uid_t uid,
              const char *what, uint64_t *agent_id, uint64_t *n, char *err)
{
    const char *noun = proc ? "proc" : "file";
    uint64_t floor = proc ? vm->proc_floor : vm->handle_floor;
    struct vmproc *p = NULL;
    struct vmhandle *h = NULL;
    char why[256];
    int rc;

    if (!word_u64(w, noun, n) || *n == 0) {
        snprintf(err, COMMAND_ERR_LEN, "%s: bad %s id `%.*s`", what,
                 proc ? "process" : "handle", (int)(w.len > 32 ? 32 : w.len),
                 w.p);
        return -EINVAL;
    }
    if (proc)
        p = procs_find(vm, *n);
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
waiter_unlink(struct procs_waiter *w)
{
    struct procs_waiter **pp = &w->p->waiters;

    while (*pp != w)
        pp = &(*pp)->next;
    *pp = w->next;
    w->p = NULL;
}

static void
waiter_answer(struct procs_waiter *w, enum reply_status st, const char *text)
{
    waiter_unlink(w);
    w->fn(w->arg, st, text);
}

void
procs_wait(struct vmproc *p, struct procs_waiter *w, procs_wait_fn *fn,
           void *arg)
{
    w->fn = fn;
    w->arg = arg;
    w->p = NULL;
    if (p->settled) {
        fn(arg, p->lossy ? REPLY_ERROR : REPLY_OK, p->status ? p->status : "");
        return;
    }
    w->p = p;
    w->next = p->waiters;
    p->waiters = w;
}

void
procs_wait_cancel(struct procs_waiter *w)
{
    if (w && w->p)
        waiter_unlink(w);
}
