/*
 * job.c - the processes the host started, one job each (proc#N in
 * messages and on the wire): spawn, output capture, reaping, wait, kill,
 * stdin, and the stdout/stderr stream source. A job is the leader of a
 * process group of its own.
 *
 * Output is captured from the first byte whether or not a stream is open:
 * each pipe is drained into its own unlinked spool file in the agent's
 * spool directory, and every stream reads the spool from byte 0 at its own
 * offset. So a stream opened after the process exited and was waited for
 * still gets everything, agent memory stays bounded, and wait never races
 * a reader.
 *
 * Output that cannot be recorded is never dropped in silence (SPEC §6.3).
 * When a spool reaches proc_spool_max, or a write to it fails (ENOSPC, EIO,
 * ...), recording stops for that output but its pipe is still drained and
 * what is read is thrown away and counted: the process is never blocked
 * forever nor killed by SIGPIPE because of us, and it can finish. Its
 * streams then end, after the recorded bytes, with an error naming the
 * cause ("stdout not recorded past N bytes: spool: No space left on
 * device"), and every wait reply carries the loss.
 *
 * A process ends for wait once it is reaped (pidfd, or SIGCHLD through a
 * signalfd on kernels without pidfd_open) and what it wrote before exiting
 * has been drained. Streams end at pipe EOF.
 *
 * Every process group started here is registered with the keeper
 * (keeper.c), which ends the groups when the agent goes, however it goes.
 */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 1024
#define DRAIN_CHUNK 65536
#define DRAIN_PER_TURN 16 /* chunks per readiness callback */

extern char **environ;

struct pstream;
struct waiter;

struct output {
    int pipe;  /* read end, -1 at EOF */
    int spool; /* unlinked file */
    uint64_t size;
    bool watched;
    int lost;           /* 0 while recording; else the errno that stopped it */
    uint64_t discarded; /* bytes read after that and thrown away */
    struct pstream *streams;
};

struct job {
    struct jobs *js;
    uint64_t id;
    pid_t pid;
    int pidfd; /* -1 when reaped or unsupported */
    bool reaped;
    bool kept; /* its group is registered with the keeper */
    unsigned how, value;
    struct output out[2]; /* stdout, stderr */
    int stdin_fd;
    struct chan *stdin_ch; /* a write waiting for pipe room */
    uint8_t *stdin_buf;
    size_t stdin_len, stdin_done;
    struct waiter *waiters;
    struct job *next;
};

struct pstream {
    struct job *p;
    struct output *o;
    struct chan *ch;
    uint64_t off;
    struct pstream *next;
};

struct waiter {
    struct job *p;
    struct chan *ch;
    struct waiter *next;
};

struct jobs {
    struct agent *a;
    struct job *list; /* newest first */
    size_t count;
    uint64_t next_id;
    bool sigchld; /* reaping through SIGCHLD */
    uint8_t buf[DRAIN_CHUNK];
};

static struct job *
job_find(struct jobs *js, uint64_t id)
{
    for (struct job *p = js->list; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static struct job *
find_or_error(struct agent *a, struct chan *ch, uint64_t id)
{
    struct job *p = job_find(a->jobs, id);
    if (!p)
        host_error(ch, -ESRCH, "proc#%llu: no such process",
                   (unsigned long long)id);
    return p;
}

/* ---- output capture ---- */

static void output_ready(struct reactor *r, int fd, unsigned events, void *arg);

static void
wake_streams(struct output *o)
{
    for (struct pstream *st = o->streams; st; st = st->next)
        host_wake(st->ch);
}

static void
output_close(struct agent *a, struct output *o)
{
    if (o->pipe < 0)
        return;
    if (o->watched)
        reactor_unwatch(a->r, o->pipe);
    o->watched = false;
    close(o->pipe);
    o->pipe = -1;
}

static const char *const output_name[2] = {"stdout", "stderr"};

/* Why recording of o stopped, for stream ends and wait replies. */
static void
loss_text(struct job *p, struct output *o, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s not recorded past %llu bytes: ",
                                output_name[o - p->out],
                                (unsigned long long)o->size);
    if (n >= len)
        return;
    if (o->lost == EFBIG)
        snprintf(buf + n, len - n, "--proc-spool-max reached");
    else
        snprintf(buf + n, len - n, "spool: %s", strerror(o->lost));
}

/* Stop recording o: from now on its pipe is drained into the void. */
static void
output_lose(struct job *p, struct output *o, int err)
{
    char msg[PROTO_MAX_MSG];

    o->lost = err ? err : EIO;
    loss_text(p, o, msg, sizeof(msg));
    agent_log("proc#%llu: %s (the rest is read and discarded)",
              (unsigned long long)p->id, msg);
}

/* Write all of buf at off; returns the bytes written, and *err when that
 * is short (ENOSPC for a spool that takes nothing more). */
static size_t
spool_put(int fd, const uint8_t *buf, size_t len, uint64_t off, int *err)
{
    size_t done = 0;

    *err = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    return done;
}

/* Move what the pipe holds into the spool. Returns when the pipe is
 * empty, at EOF, or after max chunks. */
static void
drain(struct job *p, struct output *o, int max)
{
    struct jobs *js = p->js;
    bool grew = false;

    for (int i = 0; i < max && o->pipe >= 0; i++) {
        ssize_t n = read(o->pipe, js->buf, sizeof(js->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) { /* EOF, or an error that ends the output alike */
            output_close(js->a, o);
            grew = true;
            break;
        }
        size_t keep = (size_t)n, put = 0;
        if (!o->lost) {
            uint64_t room = js->a->proc_spool_max - o->size;
            int err = 0;
            if (keep > room)
                keep = (size_t)room;
            put = spool_put(o->spool, js->buf, keep, o->size, &err);
            o->size += put;
            if (put < keep)
                output_lose(p, o, err);
            else if (put < (size_t)n)
                output_lose(p, o, EFBIG);
            grew = true; /* new bytes, or the end of recording */
        }
        o->discarded += (uint64_t)n - put;
    }
    if (grew)
        wake_streams(o);
}

static void
output_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct job *p = arg;
    struct output *o = fd == p->out[0].pipe ? &p->out[0] : &p->out[1];
    drain(p, o, DRAIN_PER_TURN);
}

/* ---- reaping and wait ---- */

/* The wait reply: how it ended, and what became of its output. */
static void
send_status(struct job *p, struct chan *ch)
{
    char msg[2][PROTO_MAX_MSG];
    union proto_body rp = {
            .wait_reply = {.how = (uint8_t)p->how, .value = p->value}};

    for (int i = 0; i < 2; i++) {
        struct output *o = &p->out[i];
        msg[i][0] = 0;
        if (o->lost)
            loss_text(p, o, msg[i], sizeof(msg[i]));
        rp.wait_reply.out[i] = (struct proto_output){
                .recorded = o->size,
                .err = (uint32_t)o->lost,
                .discarded = o->discarded,
                .message = msg[i],
        };
    }
    host_reply(ch, &rp);
}

/* Tell the keeper about groups that have emptied, so that it never
 * signals a group id the system has since handed to someone else. */
static void
forget_empty_groups(struct jobs *js)
{
    for (struct job *p = js->list; p; p = p->next)
        if (p->kept && p->reaped && kill(-p->pid, 0) < 0 && errno == ESRCH) {
            keeper_forget(p->pid);
            p->kept = false;
        }
}

static void
reaped(struct job *p, int status)
{
    struct agent *a = p->js->a;

    p->reaped = true;
    if (WIFSIGNALED(status)) {
        p->how = PROTO_SIGNALED;
        p->value = (unsigned)WTERMSIG(status);
    } else {
        p->how = PROTO_EXITED;
        p->value = (unsigned)WEXITSTATUS(status);
    }
    if (p->pidfd >= 0) {
        reactor_unwatch(a->r, p->pidfd);
        close(p->pidfd);
        p->pidfd = -1;
    }
    /* What it wrote before exiting is in the pipes now: take it, so
     * that a stream opened after wait replays all of it. */
    for (int i = 0; i < 2; i++)
        drain(p, &p->out[i], 64); /* > the largest pipe buffer */
    while (p->waiters) {
        struct waiter *wt = p->waiters;
        p->waiters = wt->next;
        send_status(p, wt->ch);
        free(wt);
    }
    forget_empty_groups(p->js);
}

static void
try_reap(struct job *p)
{
    int status;
    if (p->reaped)
        return;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid)
        reaped(p, status);
    else if (r < 0 && errno == ECHILD)
        reaped(p, 0); /* reaped by someone else: status unknown */
}

static void
pidfd_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    try_reap(arg);
}

static void
on_sigchld(struct reactor *r, void *arg)
{
    struct jobs *js = arg;
    for (struct job *p = js->list; p; p = p->next)
        try_reap(p);
}

static void
waiter_cancel(void *arg)
{
    struct waiter *wt = arg;
    struct waiter **pp = &wt->p->waiters;
    while (*pp != wt)
        pp = &(*pp)->next;
    *pp = wt->next;
    free(wt);
}

void
job_wait(struct agent *a, struct chan *ch, const union proto_body *req)
{
    struct job *p = find_or_error(a, ch, req->wait.proc);
    struct waiter *wt;

    if (!p)
        return;
    if (p->reaped) {
        send_status(p, ch);
        return;
    }
    if (!(wt = calloc(1, sizeof(*wt)))) {
        host_error(ch, -ENOMEM, "out of memory");
        return;
    }
    wt->p = p;
    wt->ch = ch;
    wt->next = p->waiters;
    p->waiters = wt;
    host_park(ch, waiter_cancel, wt);
}

void
job_kill(struct agent *a, struct chan *ch, const union proto_body *req)
{
    struct job *p = find_or_error(a, ch, req->kill.proc);
    /* Any u32 on the wire; kill(2) refuses what is no signal. */
    int sig = (int)(req->kill.signal > 1024 ? 1024 : req->kill.signal);

    if (!p)
        return;
    /* The whole group: the process was started as its leader. */
    if (kill(-p->pid, sig) < 0) {
        host_error(ch, -errno, "proc#%llu: %s", (unsigned long long)p->id,
                   strerror(errno));
        return;
    }
    host_reply(ch, NULL);
}

/* ---- stdin ---- */

static void stdin_ready(struct reactor *r, int fd, unsigned events, void *arg);

static void
stdin_finish(struct job *p, int err)
{
    struct chan *ch = p->stdin_ch;
    union proto_body rp = {.input_reply = {.written = (uint32_t)p->stdin_len}};

    p->stdin_ch = NULL;
    if (err < 0)
        host_error(ch, err, "proc#%llu: %s", (unsigned long long)p->id,
                   strerror(-err));
    else
        host_reply(ch, &rp);
    free(p->stdin_buf);
    p->stdin_buf = NULL;
}

/* Write what the pipe takes; 1 when all is written, 0 to wait, -errno. */
static int
stdin_push(struct job *p)
{
    while (p->stdin_done < p->stdin_len) {
        ssize_t n = write(p->stdin_fd, p->stdin_buf + p->stdin_done,
                          p->stdin_len - p->stdin_done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -errno;
        p->stdin_done += (size_t)n;
    }
    return 1;
}

static void
stdin_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct job *p = arg;
    int rc = stdin_push(p);
    if (rc != 0) {
        reactor_unwatch(r, fd);
        stdin_finish(p, rc < 0 ? rc : 0);
    }
}

static void
stdin_cancel(void *arg)
{
    struct job *p = arg;
    reactor_unwatch(p->js->a->r, p->stdin_fd);
    p->stdin_ch = NULL;
    free(p->stdin_buf);
    p->stdin_buf = NULL;
}

void
job_stdin(struct agent *a, struct chan *ch, const union proto_body *req)
{
    uint64_t id = req->input.proc;
    size_t len = req->input.data.len;
    struct job *p = find_or_error(a, ch, id);
    int rc;

    if (!p)
        return;
    if (p->stdin_fd < 0) {
        host_error(ch, -EPIPE, "proc#%llu: its stdin is closed",
                   (unsigned long long)id);
        return;
    }
    if (p->stdin_ch) {
        host_error(ch, -EBUSY, "proc#%llu: a stdin write is pending",
                   (unsigned long long)id);
        return;
    }
    if (!(p->stdin_buf = malloc(len ? len : 1))) {
        host_error(ch, -ENOMEM, "out of memory");
        return;
    }
    memcpy(p->stdin_buf, req->input.data.p, len);
    p->stdin_len = len;
    p->stdin_done = 0;
    p->stdin_ch = ch;
    rc = stdin_push(p);
    if (rc == 0)
        rc = reactor_watch(a->r, p->stdin_fd, REACTOR_OUT, stdin_ready, p);
    if (rc != 0) {
        stdin_finish(p, rc < 0 ? rc : 0);
        return;
    }
    host_park(ch, stdin_cancel, p);
}

static void
stdin_close_fd(struct job *p)
{
    if (p->stdin_fd < 0)
        return;
    if (p->stdin_ch) {
        reactor_unwatch(p->js->a->r, p->stdin_fd);
        stdin_finish(p, -ECANCELED);
    }
    close(p->stdin_fd);
    p->stdin_fd = -1;
}

void
job_stdin_close(struct agent *a, struct chan *ch, const union proto_body *req)
{
    struct job *p = find_or_error(a, ch, req->stdin_close.proc);
    if (!p)
        return;
    stdin_close_fd(p);
    host_reply(ch, NULL);
}

/* ---- the stream source ---- */

static ssize_t
pstream_read(void *src, void *buf, size_t len)
{
    struct pstream *st = src;
    struct output *o = st->o;
    char msg[PROTO_MAX_MSG];
    ssize_t n = 0;

    if (st->off < o->size) {
        size_t want = o->size - st->off < len ? o->size - st->off : len;
        n = pread(o->spool, buf, want, (off_t)st->off);
    }
    if (n > 0) {
        st->off += (uint64_t)n;
        return n;
    }
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (st->off < o->size)
        return -EIO; /* the spool lost bytes it had taken */
    if (o->lost) {
        /* Nothing more will be recorded: end now, not at pipe EOF. */
        loss_text(st->p, o, msg, sizeof(msg));
        host_end(st->ch, -o->lost, PROTO_END_ERROR, msg);
    } else if (o->pipe < 0) {
        host_end(st->ch, 0, PROTO_END_EOF, NULL);
    }
    return 0;
}

static void
pstream_free(void *src)
{
    struct pstream *st = src;
    struct pstream **pp = &st->o->streams;
    while (*pp != st)
        pp = &(*pp)->next;
    *pp = st->next;
    free(st);
}

static const struct source_ops pstream_ops = {
        .read = pstream_read,
        .free = pstream_free,
};

void
job_stream_open(struct agent *a, struct chan *ch, const union proto_body *req)
{
    struct job *p = find_or_error(a, ch, req->open.proc);
    struct pstream *st;

    if (!p)
        return;
    if (!(st = calloc(1, sizeof(*st)))) {
        host_error(ch, -ENOMEM, "out of memory");
        return;
    }
    st->p = p;
    st->o = &p->out[req->open.which == PROTO_STDOUT ? 0 : 1];
    st->ch = ch;
    st->next = st->o->streams;
    st->o->streams = st;
    host_ack(ch, 0, &pstream_ops, st);
}

/* ---- spawn ---- */

static void
job_free(struct job *p)
{
    struct agent *a = p->js->a;
    if (p->kept && p->reaped && kill(-p->pid, 0) < 0 && errno == ESRCH)
        keeper_forget(p->pid);
    for (int i = 0; i < 2; i++) {
        output_close(a, &p->out[i]);
        if (p->out[i].spool >= 0)
            close(p->out[i].spool);
    }
    stdin_close_fd(p);
    if (p->pidfd >= 0) {
        reactor_unwatch(a->r, p->pidfd);
        close(p->pidfd);
    }
    free(p);
}

/* Make room for one more process: forget the oldest finished one that
 * nobody is reading or waiting for. */
static int
evict(struct jobs *js)
{
    struct job **victim = NULL;
    if (js->count < MAX_PROCS)
        return 0;
    for (struct job **pp = &js->list; *pp; pp = &(*pp)->next) {
        struct job *p = *pp;
        if (p->reaped && !p->waiters && p->out[0].pipe < 0 &&
            p->out[1].pipe < 0 && !p->out[0].streams && !p->out[1].streams)
            victim = pp;
    }
    if (!victim)
        return -EAGAIN;
    struct job *p = *victim;
    *victim = p->next;
    js->count--;
    job_free(p);
    return 0;
}

/* environ with the request's K=V entries added or replaced. */
static char **
build_env(const struct proto_exec *req)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + (size_t)req->envc + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) + 1 : 0;
        bool replaced = false;
        for (size_t j = 0; j < req->envc && klen; j++)
            if (strncmp(req->env[j], environ[i], klen) == 0)
                replaced = true;
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < req->envc; j++)
        env[k++] = req->env[j];
    env[k] = NULL;
    return env;
}

/* The PATH the program is looked up in: the request's, else ours. */
static const char *
lookup_path(char **env)
{
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], "PATH=", 5) == 0)
            return env[i] + 5;
    return "";
}

/* argv[0] as a path to execute: as given when it holds a '/', else the
 * first executable regular file of that name in path (as execvp does, but
 * with the PATH the process will have, and with an error that says what
 * was looked for). */
static int
resolve(const char *name, const char *path, char *out, size_t len, char *msg)
{
    bool denied = false;
    struct stat st;

    if (strchr(name, '/')) {
        snprintf(out, len, "%s", name);
        return 0;
    }
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        int n = end == p ? snprintf(out, len, "%s", name)
                         : snprintf(out, len, "%.*s/%s", (int)(end - p), p,
                                    name);
        if (n > 0 && (size_t)n < len && stat(out, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            if (access(out, X_OK) == 0)
                return 0;
            denied = true;
        }
        if (!*end)
            break;
        p = end;
    }
    if (denied) {
        snprintf(msg, PROTO_MAX_MSG, "%s: found in PATH but not executable",
                 name);
        return -EACCES;
    }
    snprintf(msg, PROTO_MAX_MSG, "%s: command not found (PATH=%s)", name, path);
    return -ENOENT;
}

static int
spawn(struct job *p, const struct proto_exec *req, int fds[3][2], char *msg)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    char **env = build_env(req);
    char prog[PROTO_MAX_PATH];
    struct stat st;
    int err;

    if (!env)
        return -ENOMEM;
    /* A missing cwd would make posix_spawn fail with ENOENT, which would
     * read as a missing program. An empty one is the agent's. */
    if (req->cwd[0]) {
        err = stat(req->cwd, &st) < 0 ? -errno
              : S_ISDIR(st.st_mode)   ? 0
                                      : -ENOTDIR;
        if (err < 0) {
            snprintf(msg, PROTO_MAX_MSG, "cwd %s: %s", req->cwd,
                     strerror(-err));
            free(env);
            return err;
        }
    }
    if ((err = resolve(req->argv[0], lookup_path(env), prog, sizeof(prog),
                       msg)) < 0) {
        free(env);
        return err;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, fds[0][0], 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1][1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[2][1], 2);
    if (req->cwd[0])
        posix_spawn_file_actions_addchdir_np(&fa, req->cwd);
    /* Its own group, so that kill reaches its children; no signal mask
     * or dispositions of ours (SIGCHLD blocked, SIGPIPE ignored). */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                            POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    err = -posix_spawn(&p->pid, prog, &fa, &attr, req->argv, env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (err < 0)
        snprintf(msg, PROTO_MAX_MSG, "%.900s: %s", prog, strerror(-err));
    return err;
}

static int
watch_exit(struct jobs *js, struct job *p)
{
    p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    if (p->pidfd >= 0)
        return reactor_watch(js->a->r, p->pidfd, REACTOR_IN, pidfd_ready, p);
    if (errno != ENOSYS)
        return -errno;
    /* Kernel older than 5.3: SIGCHLD through the reactor's signalfd. */
    if (!js->sigchld) {
        int err = reactor_signal(js->a->r, SIGCHLD, on_sigchld, js);
        if (err < 0)
            return err;
        js->sigchld = true;
    }
    try_reap(p); /* it may be gone already */
    return 0;
}

void
job_exec(struct agent *a, struct chan *ch, const union proto_body *req)
{
    struct jobs *js = a->jobs;
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    struct job *p = NULL;
    const char *what = "exec";
    char msg[PROTO_MAX_MSG] = "";
    int err;

    if ((err = evict(js)) < 0) {
        host_error(ch, err, "too many processes (max %d)", MAX_PROCS);
        return;
    }
    err = -ENOMEM;
    if (!(p = calloc(1, sizeof(*p))))
        goto err;
    p->js = js;
    p->pidfd = p->stdin_fd = -1;
    p->out[0].pipe = p->out[1].pipe = -1;
    p->out[0].spool = p->out[1].spool = -1;
    what = "spool";
    for (int i = 0; i < 2; i++)
        if ((p->out[i].spool = spool_tmpfile(a->spool_dir)) < 0) {
            err = p->out[i].spool;
            goto err_free;
        }
    what = "pipe";
    for (int i = 0; i < 3; i++)
        if (pipe2(fds[i], O_CLOEXEC) < 0) {
            err = -errno;
            goto err_fds;
        }
    if ((err = spawn(p, &req->exec, fds, msg)) < 0)
        goto err_fds;
    keeper_add(p->pid);
    p->kept = true;
    close(fds[0][0]);
    close(fds[1][1]);
    close(fds[2][1]);
    p->stdin_fd = fds[0][1];
    p->out[0].pipe = fds[1][0];
    p->out[1].pipe = fds[2][0];
    fcntl(p->stdin_fd, F_SETFL, O_NONBLOCK);
    p->id = ++js->next_id;
    p->next = js->list;
    js->list = p;
    js->count++;
    for (int i = 0; i < 2; i++) {
        fcntl(p->out[i].pipe, F_SETFL, O_NONBLOCK);
        err = reactor_watch(a->r, p->out[i].pipe, REACTOR_IN, output_ready, p);
        if (err < 0)
            agent_log("proc#%llu: watch output: %s", (unsigned long long)p->id,
                      strerror(-err));
        p->out[i].watched = err == 0;
    }
    if ((err = watch_exit(js, p)) < 0)
        agent_log("proc#%llu: watch exit: %s", (unsigned long long)p->id,
                  strerror(-err));
    union proto_body rp = {.exec_reply = {.proc = p->id}};
    host_reply(ch, &rp);
    return;
err_fds:
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            if (fds[i][j] >= 0)
                close(fds[i][j]);
err_free:
    job_free(p);
err:
    if (msg[0])
        host_error(ch, err, "%s", msg);
    else
        host_error(ch, err, "%s: %s", what, strerror(-err));
}

int
jobs_new(struct agent *a, struct jobs **out)
{
    struct jobs *js = calloc(1, sizeof(*js));
    if (!js)
        return -ENOMEM;
    js->a = a;
    *out = js;
    return 0;
}

void
jobs_free(struct jobs *js)
{
    if (!js)
        return;
    while (js->list) {
        struct job *p = js->list;
        js->list = p->next;
        job_free(p);
    }
    free(js);
}
