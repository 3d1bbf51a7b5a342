/*
 * vmctl.c - vms/<name>/ctl (SPEC §5.4): commands run through the VM's
 * agent client, their replies read back on the same open file (ctl.c).
 * The processes and handles they create are procs.c's.
 *
 * Each command is one agent request; requests of one open run
 * concurrently in the agent, but their replies are read in the order the
 * commands were written. `wait PROC [T]` has no default timeout (it waits
 * for the process); with T the request is abandoned at T and answers
 * `timeout`. Releasing the ctl file abandons what still runs.
 *
 * Replies: exec → the proc id; open → the handle; read → the bytes;
 * write, stdin → bytes written; seek → the new offset; wait → `exit N` or
 * `signal N`; the others an empty `ok`. Ids are plain numbers; `proc#N`
 * and `file#N` are accepted wherever an id is expected.
 *
 * Ids: procs.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

struct vmctl {
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

/* ---- wait on a remembered process ---------------------------------- */

/* A `wait` on a process started through the mount is answered by
 * procs.c when the process settles; the waiter lives in the entry's aux
 * until then. */
static void
pwait_answered(void *arg, enum reply_status st, const char *text)
{
    struct ctl_entry *e = arg;
    struct vmctl *vc = e->owner;
    struct reply *rp = NULL;

    reactor_timer_stop(vc->vm->fs->r, &e->timer);
    free(e->aux);
    e->aux = NULL;
    reply_new_mem(st, text, strlen(text), &rp);
    ctl_done(e, rp);
}

static int
pwait_start(struct ctl_entry *e, struct vmproc *p)
{
    struct procs_waiter *w = calloc(1, sizeof(*w));

    if (!w)
        return -ENOMEM;
    e->aux = (char *)w;
    procs_wait(p, w, pwait_answered, e);
    return 0;
}

static void
pwait_drop(struct ctl_entry *e)
{
    procs_wait_cancel((struct procs_waiter *)(void *)e->aux);
    free(e->aux);
    e->aux = NULL;
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
    struct vmctl *vc = e->owner;
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
                         : procs_add(vm, rp->value, e->uid, e->aux, e->auxlen);
        e->aux = NULL; /* procs_add took it */
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
        uint64_t n = procs_handle_add(vm, rp->value, e->uid);
        if (n)
            reply_new_fmt(REPLY_OK, &r, "%" PRIu64, n);
        else
            reply_new_fmt(REPLY_ERROR, &r,
                          "open: %s (at most %d open handles per VM)",
                          strerror(EMFILE), 1024);
        break;
    }
    case C_CLOSE:
        procs_handle_forget(vm, e->obj);
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
    struct vmctl *vc = e->owner;

    agent_client_close(e->ch);
    e->ch = NULL;
    reactor_timer_stop(vc->vm->fs->r, &e->timer);
    if (e->kind == C_WAIT && e->aux)
        pwait_drop(e);
}

static void
wait_timed_out(struct reactor *r, void *arg)
{
    struct ctl_entry *e = arg;
    struct reply *rp = NULL;
    char t[32];

    agent_client_close(e->ch);
    e->ch = NULL;
    if (e->aux)
        pwait_drop(e);
    duration_format(e->id, t, sizeof(t));
    reply_new_fmt(REPLY_TIMEOUT, &rp, "wait timed out after %s", t);
    ctl_done(e, rp);
}

/* ---- parsing ------------------------------------------------------ */

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
    if (word_u64(w, NULL, &n) && n > 0 && n < 65) {
        *sig = (int)n;
        return 0;
    }
    return -EINVAL;
}

static int
do_exec(struct vmctl *vc, struct ctl_entry *e, const struct command *cmd,
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
do_open(struct vmctl *vc, struct ctl_entry *e, const struct command *cmd,
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
vmctl_start(struct vmctl *vc, struct ctl_entry *e, const struct command *cmd,
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
    rc = procs_resolve(vc->vm, e->kind < C_OPEN, w1, e->uid, cmd_names[e->kind],
                    &id, &e->obj, err);
    if (rc == -EINVAL)
        goto usage;
    if (rc < 0)
        return rc;
    switch (e->kind) {
    case C_WAIT: {
        struct vmproc *pr;
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
        if ((pr = procs_find(vc->vm, e->obj)) && !pr->wait_failed)
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
        if (cmd->argc != 3 || !word_u64(w2, NULL, &n) || n > PROTO_MAX_DATA)
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
vmctl_text(void *arg, char *buf, size_t len)
{
    struct vmctl *vc = arg;

    return vm_info(vc->vm, buf, len);
}

int
vmctl_open(struct vm *vm, struct vmctl **out)
{
    struct vmctl *vc = calloc(1, sizeof(*vc));

    if (!vc)
        return -ENOMEM;
    ctl_init(&vc->c, vm->fs, vmctl_text, vc);
    vc->vm = vm;
    vm->refs++;
    *out = vc;
    return 0;
}

struct ctl *
vmctl_ctl(struct vmctl *vc)
{
    return &vc->c;
}

/* A command waiting for the agent to come up. */
struct pending {
    struct vm_wait w;
    struct vmctl *vc;
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
    } else if ((rc = vmctl_start(p->vc, e, &p->cmd, cerr)) < 0) {
        reply_new_fmt(REPLY_ERROR, &rp, "%s", *cerr ? cerr : strerror(-rc));
        ctl_done(e, rp);
    }
    command_free(&p->cmd);
    free(p);
}

int
vmctl_write(struct vmctl *vc, fuse_req_t req, const char *buf, size_t len)
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
    rc = vmctl_start(vc, e, cmd, err);
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
vmctl_free(struct vmctl *vc)
{
    if (!vc)
        return;
    ctl_fini(&vc->c);
    vm_unref(vc->vm);
    free(vc);
}
