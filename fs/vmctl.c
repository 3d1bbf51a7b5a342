/*
 * vmctl.c - vms/<name>/ctl (SPEC §5.4): commands run through the VM's
 * agent client, their replies read back on the same open file (ctl.c).
 * The processes and handles they create are procs.c's.
 *
 * The commands are a command table (tmux's cmd_table): name, argument
 * counts, usage line, whether it goes through the agent (then it waits up
 * to FS_AGENT_WAIT for the agent to come up), what its first argument
 * names (a process, a handle: resolved to the agent's id, and checked
 * for its owner, by procs.c), how it starts and how the agent's answer
 * becomes its reply. Each command written is a struct vmctl_call: the
 * ctl entry and the state the command needs while it runs.
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
 * and `file#N` are accepted wherever an id is expected. Errors name the
 * command once, then the object: `kill: proc#9: No such process`.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* vms/<name>/ctl: one per open of it. */
struct vmctl {
    struct ctl c; /* first: the ctl is the file's */
    struct vm *vm;
};

struct vmctl_cmd;

/* One command written, while it runs. */
struct vmctl_call {
    struct ctl_entry e; /* first: ctl.c's part */
    struct vmctl *vc;
    const struct vmctl_cmd *cmd;
    uid_t uid;             /* who wrote it (owner of what it creates) */
    uint64_t obj;          /* the mount id of its process or handle */
    uint64_t agent_id;     /* the agent's id for it */
    struct agent_chan *ch; /* the agent request */
    struct vm_wait up;     /* waiting for the agent to come up */
    struct command *words; /* the command, kept while waiting for it */
    uint64_t timeout;      /* wait T */
    struct reactor_timer timer;
    struct procs_waiter waiter; /* wait on a process started here */
    char *cmdline;              /* exec: procs/<n>/cmdline, until taken */
    size_t cmdlen;
};

/* What a command's first argument names. */
enum vmctl_id { ID_NONE, ID_PROC, ID_HANDLE };

/* Start call: 0 (the reply is or will be in the entry), or -errno with
 * err (-EINVAL: malformed). cmd->argv[1] is the first argument. */
typedef int vmctl_start_fn(struct vmctl_call *call, const struct command *cmd,
                           char *err);
/* The agent answered a request (no error): the reply for it. */
typedef void vmctl_reply_fn(struct vmctl_call *call,
                            const struct agent_reply *rp, struct reply **out);

struct vmctl_cmd {
    struct command_entry c;
    bool agent;       /* talks to the agent: waits for it to be up */
    enum vmctl_id id; /* resolved into call->agent_id before start */
    vmctl_start_fn *start;
    vmctl_reply_fn *reply; /* NULL: an empty ok */
};

static const struct vmctl_cmd vmctl_cmds[];

/* ---- the agent's answers ----------------------------------------- */

static void
request_done(void *arg, const struct agent_reply *rp)
{
    struct vmctl_call *call = arg;
    const char *name = call->cmd->c.name;
    struct reply *r = NULL;

    call->ch = NULL;
    reactor_timer_stop(call->vc->vm->fs->r, &call->timer);
    if (rp->err < 0) {
        const char *msg = rp->msg && *rp->msg ? rp->msg : strerror(-rp->err);
        size_t n = strlen(name);
        /* One "exec: " prefix: an agent that already names the request
         * (older agents did) is not prefixed a second time. */
        bool named = strncmp(msg, name, n) == 0 && msg[n] == ':' &&
                     msg[n + 1] == ' ';
        reply_new_fmt(REPLY_ERROR, &r, "%s%s%s", named ? "" : name,
                      named ? "" : ": ", msg);
    } else if (call->cmd->reply) {
        call->cmd->reply(call, rp, &r);
    } else {
        reply_new_mem(REPLY_OK, "", 0, &r);
    }
    ctl_done(&call->e, r);
}

static void
reply_exec(struct vmctl_call *call, const struct agent_reply *rp,
           struct reply **out)
{
    struct vm *vm = call->vc->vm;
    uint64_t n = vm->gone ? 0
                          : procs_add(vm, rp->value, call->uid, call->cmdline,
                                      call->cmdlen);

    if (!vm->gone)
        call->cmdline = NULL; /* procs_add took it */
    if (n)
        reply_new_fmt(REPLY_OK, out, "%" PRIu64, n);
    else
        reply_new_fmt(REPLY_ERROR, out, "exec: %s", strerror(ENOMEM));
}

/* wait on a process the mount does not remember: the agent's word. */
static void
reply_wait(struct vmctl_call *call, const struct agent_reply *rp,
           struct reply **out)
{
    bool lost = rp->out[0].lost < 0 || rp->out[1].lost < 0;

    reply_new_fmt(lost ? REPLY_ERROR : REPLY_OK, out, "%s %" PRIu64 "%s%s%s%s",
                  rp->how == PROTO_SIGNALED ? "signal" : "exit", rp->value,
                  rp->out[0].lost < 0 ? "; " : "",
                  rp->out[0].lost < 0 ? rp->out[0].msg : "",
                  rp->out[1].lost < 0 ? "; " : "",
                  rp->out[1].lost < 0 ? rp->out[1].msg : "");
}

static void
reply_open(struct vmctl_call *call, const struct agent_reply *rp,
           struct reply **out)
{
    uint64_t n = procs_handle_add(call->vc->vm, rp->value, call->uid);

    if (n)
        reply_new_fmt(REPLY_OK, out, "%" PRIu64, n);
    else
        reply_new_fmt(REPLY_ERROR, out,
                      "open: %s (at most %d open handles per VM)",
                      strerror(EMFILE), 1024);
}

static void
reply_close(struct vmctl_call *call, const struct agent_reply *rp,
            struct reply **out)
{
    procs_handle_forget(call->vc->vm, call->obj);
    reply_new_mem(REPLY_OK, "", 0, out);
}

static void
reply_bytes(struct vmctl_call *call, const struct agent_reply *rp,
            struct reply **out)
{
    reply_new_mem(REPLY_OK, rp->data, rp->len, out);
}

/* stdin, write, seek: the count or the offset. */
static void
reply_value(struct vmctl_call *call, const struct agent_reply *rp,
            struct reply **out)
{
    reply_new_fmt(REPLY_OK, out, "%" PRIu64, rp->value);
}

/* ---- the commands ------------------------------------------------ */

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

/* "NAME: bad WHAT `W` (usage: ...)". */
static int
bad_word(struct vmctl_call *call, const char *what, struct word w, char *err)
{
    char problem[128];

    snprintf(problem, sizeof(problem), "bad %s `%.*s`", what,
             (int)(w.len > 32 ? 32 : w.len), w.p);
    command_usage(&call->cmd->c, problem, err);
    return -EINVAL;
}

static struct agent_client *
agent(struct vmctl_call *call)
{
    return call->vc->vm->agent;
}

static int
start_exec(struct vmctl_call *call, const struct command *cmd, char *err)
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
        command_usage(&call->cmd->c, "no command given", err);
        goto out;
    }
    /* procs/<n>/cmdline: the words, escaped (text.c), joined by blanks,
     * one line. */
    if (!(call->cmdline = malloc(cl * 4 + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < argc; i++) {
        call->cmdlen += text_escape(call->cmdline + call->cmdlen,
                                    cl * 4 + 1 - call->cmdlen, argv[i],
                                    strlen(argv[i]));
        call->cmdline[call->cmdlen++] = i + 1 < argc ? ' ' : '\n';
    }
    rc = agent_client_exec(agent(call), cwd ? cwd : "", argv, env, request_done,
                           call, &call->ch);
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

/* wait PROC [T]: a process started here answers when it settles
 * (procs.c), with its status. */
static void
wait_settled(void *arg, enum reply_status st, const char *text)
{
    struct vmctl_call *call = arg;
    struct reply *rp = NULL;

    reactor_timer_stop(call->vc->vm->fs->r, &call->timer);
    reply_new_mem(st, text, strlen(text), &rp);
    ctl_done(&call->e, rp);
}

static void
wait_timed_out(struct reactor *r, void *arg)
{
    struct vmctl_call *call = arg;
    struct reply *rp = NULL;
    char t[32];

    agent_client_cancel(call->ch);
    call->ch = NULL;
    procs_wait_cancel(&call->waiter);
    duration_format(call->timeout, t, sizeof(t));
    reply_new_fmt(REPLY_TIMEOUT, &rp, "wait timed out after %s", t);
    ctl_done(&call->e, rp);
}

static int
start_wait(struct vmctl_call *call, const struct command *cmd, char *err)
{
    struct reactor *r = call->vc->vm->fs->r;
    struct vmproc *p;
    int rc;

    if (cmd->argc == 3) {
        if ((rc = duration_parse(cmd->argv[2], &call->timeout, err)) < 0)
            return rc;
        if (reactor_timer_start(r, &call->timer, clock_now() + call->timeout,
                                wait_timed_out, call) < 0)
            return -ENOMEM;
    }
    /* A remembered process answers from its own bookkeeping, unless that
     * lost track of it (then the agent may still know it). */
    if ((p = procs_find(call->vc->vm, call->obj)) && !p->wait_failed) {
        procs_wait(p, &call->waiter, wait_settled, call);
        return 0;
    }
    rc = agent_client_wait(agent(call), call->agent_id, request_done, call,
                           &call->ch);
    if (rc < 0)
        reactor_timer_stop(r, &call->timer);
    return rc;
}

static int
start_kill(struct vmctl_call *call, const struct command *cmd, char *err)
{
    int sig = SIGTERM;

    if (cmd->argc == 3 && parse_signal(cmd->argv[2], &sig) < 0)
        return bad_word(call, "signal", cmd->argv[2], err);
    return agent_client_kill(agent(call), call->agent_id, sig, request_done,
                             call, &call->ch);
}

static int
start_stdin(struct vmctl_call *call, const struct command *cmd, char *err)
{
    return agent_client_stdin(agent(call), call->agent_id, cmd->argv[2].p,
                              cmd->argv[2].len, request_done, call, &call->ch);
}

static int
start_stdin_close(struct vmctl_call *call, const struct command *cmd, char *err)
{
    return agent_client_stdin_close(agent(call), call->agent_id, request_done,
                                    call, &call->ch);
}

static int
start_open(struct vmctl_call *call, const struct command *cmd, char *err)
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

    if (!(path = word_strdup(cmd->argv[1])) || !*path) {
        free(path);
        return bad_word(call, "path", cmd->argv[1], err);
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
    rc = agent_client_fopen(agent(call), path, f ? f : PROTO_O_READ, 0,
                            request_done, call, &call->ch);
    free(path);
    return rc;
}

static int
start_read(struct vmctl_call *call, const struct command *cmd, char *err)
{
    uint64_t n;

    if (!word_u64(cmd->argv[2], NULL, &n) || n > PROTO_MAX_DATA)
        return bad_word(call, "count", cmd->argv[2], err);
    return agent_client_fread(agent(call), call->agent_id, (size_t)n,
                              request_done, call, &call->ch);
}

static int
start_write(struct vmctl_call *call, const struct command *cmd, char *err)
{
    return agent_client_fwrite(agent(call), call->agent_id, cmd->argv[2].p,
                               cmd->argv[2].len, request_done, call, &call->ch);
}

static int
start_seek(struct vmctl_call *call, const struct command *cmd, char *err)
{
    unsigned whence = PROTO_SEEK_SET;
    char num[32], *end;
    long long off;

    if (!word_cstr(cmd->argv[2], num, sizeof(num)))
        return bad_word(call, "offset", cmd->argv[2], err);
    errno = 0;
    off = strtoll(num, &end, 10);
    if (*end || errno)
        return bad_word(call, "offset", cmd->argv[2], err);
    if (cmd->argc == 4) {
        if (word_is(cmd->argv[3], "cur"))
            whence = PROTO_SEEK_CUR;
        else if (word_is(cmd->argv[3], "end"))
            whence = PROTO_SEEK_END;
        else if (!word_is(cmd->argv[3], "set"))
            return bad_word(call, "whence", cmd->argv[3], err);
    }
    return agent_client_fseek(agent(call), call->agent_id, off, whence,
                              request_done, call, &call->ch);
}

static int
start_close(struct vmctl_call *call, const struct command *cmd, char *err)
{
    return agent_client_fclose(agent(call), call->agent_id, request_done, call,
                               &call->ch);
}

/* console_write DATA: all or nothing (SPEC §6.3): a command is never cut
 * short in silence; the caller learns why and may retry. */
static int
start_console_write(struct vmctl_call *call, const struct command *cmd,
                    char *err)
{
    struct vm *vm = call->vc->vm;
    struct console *con = vm->console;
    struct word w = cmd->argv[1];
    struct reply *rp = NULL;
    size_t room;
    int rc;

    if (!con) {
        snprintf(err, COMMAND_ERR_LEN, "console_write: vm `%s` has no console",
                 vm->name);
        return -ENODEV;
    }
    room = console_write_room(con);
    if (w.len > CONSOLE_WRITE_QUEUE)
        reply_new_fmt(REPLY_ERROR, &rp,
                      "console_write: %s: %zu bytes never fit the "
                      "console's write queue of %d bytes; split them",
                      strerror(EMSGSIZE), w.len, CONSOLE_WRITE_QUEUE);
    else if (w.len > room && console_write(con, "", 0) == 0)
        reply_new_fmt(REPLY_ERROR, &rp,
                      "console_write: %s: the console's write queue "
                      "(%d bytes) holds %zu bytes the guest has not "
                      "taken yet; %zu more do not fit, try again",
                      strerror(EAGAIN), CONSOLE_WRITE_QUEUE,
                      CONSOLE_WRITE_QUEUE - room, w.len);
    else if ((rc = console_write(con, w.p, w.len)) < 0)
        reply_new_fmt(REPLY_ERROR, &rp, "console_write: %s", strerror(-rc));
    else
        reply_new_mem(REPLY_OK, "", 0, &rp);
    ctl_done(&call->e, rp);
    return 0;
}

static int
start_quiesce(struct vmctl_call *call, const struct command *cmd, char *err)
{
    char text[FS_TEXT_MAX];
    struct reply *rp = NULL;
    size_t len = vm_quiesce_text(call->vc->vm, text, sizeof(text));

    if (len)
        reply_new_mem(REPLY_ERROR, text, len, &rp);
    else
        reply_new_mem(REPLY_OK, "", 0, &rp);
    ctl_done(&call->e, rp);
    return 0;
}

static const struct vmctl_cmd vmctl_cmds[] = {
        {{"exec", 1, -1, "exec [cwd=DIR] [env=K=V]... -- ARGV...", NULL},
         true,
         ID_NONE,
         start_exec,
         reply_exec},
        {{"wait", 1, 2, "wait PROC [T]", NULL},
         true,
         ID_PROC,
         start_wait,
         reply_wait},
        {{"kill", 1, 2, "kill PROC [SIG]", NULL},
         true,
         ID_PROC,
         start_kill,
         NULL},
        {{"stdin", 2, 2, "stdin PROC DATA", NULL},
         true,
         ID_PROC,
         start_stdin,
         reply_value},
        {{"stdin_close", 1, 1, "stdin_close PROC", NULL},
         true,
         ID_PROC,
         start_stdin_close,
         NULL},
        {{"open", 1, -1,
          "open PATH [read] [write] [create] [append] [truncate]", NULL},
         true,
         ID_NONE,
         start_open,
         reply_open},
        {{"read", 2, 2, "read H N", NULL},
         true,
         ID_HANDLE,
         start_read,
         reply_bytes},
        {{"write", 2, 2, "write H DATA", NULL},
         true,
         ID_HANDLE,
         start_write,
         reply_value},
        {{"seek", 2, 3, "seek H OFF [set|cur|end]", NULL},
         true,
         ID_HANDLE,
         start_seek,
         reply_value},
        {{"close", 1, 1, "close H", NULL},
         true,
         ID_HANDLE,
         start_close,
         reply_close},
        {{"console_write", 1, 1, "console_write DATA", NULL},
         false,
         ID_NONE,
         start_console_write,
         NULL},
        {{"quiesce", 0, 0, "quiesce", NULL},
         false,
         ID_NONE,
         start_quiesce,
         NULL},
};
#define N_VMCTL_CMDS (sizeof(vmctl_cmds) / sizeof(vmctl_cmds[0]))

/* Resolve the command's process or handle, then start it. */
static int
vmctl_start(struct vmctl_call *call, const struct command *cmd, char *err)
{
    const struct vmctl_cmd *c = call->cmd;
    int rc;

    if (c->id != ID_NONE) {
        rc = procs_resolve(call->vc->vm, c->id == ID_PROC, cmd->argv[1],
                           call->uid, c->c.name, &call->agent_id, &call->obj,
                           err);
        if (rc == -EINVAL)
            return bad_word(call, c->id == ID_PROC ? "process id" : "handle",
                            cmd->argv[1], err);
        if (rc < 0)
            return rc;
    }
    return c->start(call, cmd, err);
}

/* A command that could not start: its reply says why. */
static void
vmctl_failed(struct vmctl_call *call, int rc, const char *err)
{
    struct reply *rp = NULL;

    reply_new_fmt(REPLY_ERROR, &rp, "%s",
                  *err              ? err
                  : rc == -ENOTCONN ? "the VM's agent is not connected"
                                    : strerror(-rc));
    ctl_done(&call->e, rp);
}

/* The wait for the agent is over: start, or say why not. */
static void
agent_waited(void *arg, int err, const char *msg)
{
    struct vmctl_call *call = arg;
    struct command *cmd = call->words;
    char cerr[COMMAND_ERR_LEN] = "";
    struct reply *rp = NULL;
    int rc;

    call->words = NULL;
    if (err < 0) {
        reply_new_fmt(REPLY_ERROR, &rp, "%s: %s", call->cmd->c.name, msg);
        ctl_done(&call->e, rp);
    } else if ((rc = vmctl_start(call, cmd, cerr)) < 0) {
        vmctl_failed(call, rc, cerr);
    }
    command_free(cmd);
    free(cmd);
}

/* The entry goes: withdraw what still runs, free what the call holds. */
static void
vmctl_drop(struct ctl_entry *e, bool running)
{
    struct vmctl_call *call = (struct vmctl_call *)(void *)e;

    agent_client_cancel(call->ch);
    reactor_timer_stop(call->vc->vm->fs->r, &call->timer);
    procs_wait_cancel(&call->waiter);
    vm_wait_cancel(&call->up);
    if (call->words) {
        command_free(call->words);
        free(call->words);
    }
    free(call->cmdline);
}

/* ---- the ctl file ------------------------------------------------- */

static int
vmctl_write(struct ctl *c, fuse_req_t req, struct command *cmd)
{
    struct vmctl *vc = (struct vmctl *)(void *)c;
    const struct command_entry *e;
    struct vmctl_call *call;
    char err[COMMAND_ERR_LEN] = "";
    int argi, rc;

    rc = command_lookup(vmctl_cmds, N_VMCTL_CMDS, sizeof(vmctl_cmds[0]), cmd,
                        "VM", &e, &argi, err);
    if (rc < 0) {
        ctl_push_error(c, "%s", err);
        rc = -EINVAL;
        goto out;
    }
    if (vc->vm->gone) {
        ctl_push_error(c, "%s: vm `%s` was removed", e->name, vc->vm->name);
        rc = 0;
        goto out;
    }
    call = (struct vmctl_call *)(void *)ctl_push(c, sizeof(*call), vmctl_drop);
    if (!call) {
        rc = -ENOMEM;
        goto out;
    }
    call->vc = vc;
    call->cmd = (const struct vmctl_cmd *)(const void *)e;
    call->uid = access_uid(req);
    if (call->cmd->agent && !vm_agent_up(vc->vm)) {
        call->words = cmd; /* kept until the agent is up */
        vm_wait_up(vc->vm, &call->up, agent_waited, call);
        return 0;
    }
    if ((rc = vmctl_start(call, cmd, err)) < 0) {
        vmctl_failed(call, rc, err);
        rc = rc == -EINVAL ? rc : 0;
    }
out:
    command_free(cmd);
    free(cmd);
    return rc;
}

static size_t
vmctl_text(struct ctl *c, char *buf, size_t len)
{
    return vm_info(((struct vmctl *)(void *)c)->vm, buf, len);
}

static void
vmctl_release(struct ctl *c)
{
    vm_unref(((struct vmctl *)(void *)c)->vm);
}

static const struct ctl_type vmctl_type = {
        .write = vmctl_write,
        .text = vmctl_text,
        .release = vmctl_release,
};

int
vmctl_open(struct vm *vm, struct file *f)
{
    struct vmctl *vc = ctl_open(f, vm->fs, &vmctl_type, sizeof(*vc));

    if (!vc)
        return -ENOMEM;
    vc->vm = vm;
    vm->refs++;
    return 0;
}
