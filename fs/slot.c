/*
 * slot.c - streams/<id>: the slots clone hands out, the open command that
 * turns a slot into a stream, the stream ops written to its ctl, and the
 * stream's lifetime (SPEC §4.4, §5.1, §5.2).
 *
 * Lifetime. A slot is born by an open of `clone` (id never reused) and is
 * reclaimed after 30 s (--slot-timeout) unless an open command is written
 * to its ctl; a failed open starts that time again. The
 * ctl open that wrote the open command owns the stream: releasing it (the
 * process closed it or died) closes the stream, unless the open said
 * `keep`. `close`, `rmdir streams/<id>`, removal of the stream's VM and
 * unmount close it too. Closing takes the slot out of the registry (its
 * directory is gone at once), ends the stream (blocked data readers get
 * EOF, running ops answer `closed`) and drops the registry's reference;
 * open files keep theirs, so nothing they point at is freed under them.
 *
 * Opening. The open command is parsed by the engine registry
 * (streams/engine.c) into a request: the engine, its context kind (a
 * VM's agent, a VM's console, none), the VM or interface, the path or id,
 * and the options every open takes (site=, test=, keep: the slot's). This
 * file resolves the VM, checks who may open it (access.c), maps a process
 * or handle id to the agent's (procs.c) and hands the request to the
 * engine; it names no engine.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define SLOT_BUCKETS 4096

/* streams/<id>/ctl: one per open of it. */
struct slot_ctl {
    struct ctl c; /* first: the ctl is the file's */
    struct slot *sl;
};

/* A command written to it, while it runs: the open command, or a stream
 * op (op set). */
struct slot_call {
    struct ctl_entry e; /* first: ctl.c's part */
    struct slot *sl;
    struct stream_op *op;
    enum stream_op_kind kind;
};

static void reclaim_cb(struct reactor *r, void *arg);
static void open_free(struct slot_open *o);
static void open_drop(struct ctl_entry *e, bool running);

/* ---- registry ---------------------------------------------------- */

static struct slot **
bucket(struct fs *fs, uint64_t id)
{
    return &fs->slots[id % fs->nbuckets];
}

/* Slots of uid that wait for an open command. Counted only when there
 * could be too many, so a clone costs a scan only under a flood. */
static size_t
unopened(struct fs *fs, uid_t uid)
{
    size_t b = 0, n = 0;

    if (fs->nslots < FS_MAX_UNOPENED)
        return 0;
    for (struct slot *sl = slot_next(fs, &b, NULL); sl;
         sl = slot_next(fs, &b, sl))
        n += sl->state == SLOT_EMPTY && sl->uid == uid;
    return n;
}

int
slot_new(struct fs *fs, uid_t uid, gid_t gid, struct slot **out)
{
    struct slot *sl;

    /* `cat clone` in a loop would otherwise hold memory for 30 s per
     * read, without bound (SPEC §6.3). */
    if (unopened(fs, uid) >= FS_MAX_UNOPENED)
        return -EAGAIN;
    if (!fs->slots) {
        if (!(fs->slots = calloc(SLOT_BUCKETS, sizeof(*fs->slots))))
            return -ENOMEM;
        fs->nbuckets = SLOT_BUCKETS;
    }
    if (!(sl = calloc(1, sizeof(*sl))))
        return -ENOMEM;
    if (reactor_timer_start(fs->r, &sl->reclaim,
                            clock_now() + fs->opt->slot_timeout, reclaim_cb,
                            sl) < 0) {
        free(sl);
        return -ENOMEM;
    }
    sl->fs = fs;
    sl->id = ++fs->next_slot_id;
    sl->refs = 1;
    sl->uid = uid;
    sl->gid = gid;
    sl->created = time(NULL);
    sl->hnext = *bucket(fs, sl->id);
    *bucket(fs, sl->id) = sl;
    fs->nslots++;
    *out = sl;
    return 0;
}

struct slot *
slot_find(struct fs *fs, uint64_t id)
{
    if (!fs->slots)
        return NULL;
    for (struct slot *sl = *bucket(fs, id); sl; sl = sl->hnext)
        if (sl->id == id)
            return sl;
    return NULL;
}

struct slot *
slot_next(struct fs *fs, size_t *b, struct slot *prev)
{
    if (prev && prev->hnext)
        return prev->hnext;
    if (prev)
        (*b)++;
    for (; fs->slots && *b < fs->nbuckets; (*b)++)
        if (fs->slots[*b])
            return fs->slots[*b];
    return NULL;
}

/* Forget everything an open command set (a failed open, or free). */
static void
slot_clear(struct slot *sl)
{
    free(sl->detail);
    free(sl->site);
    free(sl->test);
    sl->detail = sl->site = sl->test = NULL;
    sl->kind[0] = 0;
    sl->keep = false;
    sl->vm = NULL;
    sl->engine = NULL;
    sl->engine_state = NULL;
    sl->owner = NULL;
}

void
slot_unref(struct slot *sl)
{
    if (!sl || --sl->refs > 0)
        return;
    history_log_drop(sl);
    stream_unref(sl->s);
    slot_clear(sl);
    free(sl);
}

void
slot_close(struct slot *sl)
{
    struct slot **pp;

    if (sl->gone)
        return;
    sl->gone = true;
    for (pp = bucket(sl->fs, sl->id); *pp != sl; pp = &(*pp)->hnext)
        ;
    *pp = sl->hnext;
    sl->fs->nslots--;
    reactor_timer_stop(sl->fs->r, &sl->reclaim);
    vm_wait_cancel(&sl->wait);
    open_free(sl->opening);
    sl->opening = NULL;
    if (sl->open_entry) {
        struct ctl_entry *e = sl->open_entry;
        struct reply *rp = NULL;
        sl->open_entry = NULL;
        reply_new_fmt(REPLY_CLOSED, &rp, "stream closed");
        ctl_done(e, rp);
    }
    if (sl->s)
        stream_close(sl->s);
    /* Its directory is gone: a stat the kernel would answer from its
     * cache (tree.c caches a stream's directory) asks again. */
    tree_gone(sl->fs, (struct ino){N_S, 0, sl->id});
    slot_unref(sl);
}

void
slot_close_all(struct fs *fs, struct vm *vm)
{
    size_t b = 0;
    struct slot *sl = slot_next(fs, &b, NULL), *next;

    while (sl) {
        next = slot_next(fs, &b, sl);
        if (!vm || sl->vm == vm)
            slot_close(sl);
        sl = next;
    }
}

static void
reclaim_cb(struct reactor *r, void *arg)
{
    struct slot *sl = arg;

    if (sl->state == SLOT_EMPTY)
        slot_close(sl);
}

static void
arm_reclaim(struct slot *sl)
{
    /* Re-arming never fails (streams.h): the slot was armed at birth. */
    reactor_timer_start(sl->fs->r, &sl->reclaim,
                        clock_now() + sl->fs->opt->slot_timeout, reclaim_cb,
                        sl);
}

/* ---- text -------------------------------------------------------- */

static const char *
state_name(struct slot *sl)
{
    if (sl->state == SLOT_EMPTY)
        return "unopened";
    if (sl->state == SLOT_OPENING)
        return "opening";
    switch (stream_state(sl->s)) {
    case STREAM_LIVE:
        return "live";
    case STREAM_ENDED:
        return "ended";
    default:
        return "closed";
    }
}

size_t
slot_info(struct slot *sl, char *buf, size_t len)
{
    char when[32];
    struct tm tm;
    const char *msg;

    /* Detail, site, test, the end message and the engine's lines come
     * from users and guests: escaped, one line each (text.c). */
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
             gmtime_r(&sl->created, &tm));
    buf[0] = 0;
    text_appendf(buf, len, "id: %" PRIu64 "\n", sl->id);
    text_keyval(buf, len, "kind", sl->kind);
    text_keyval(buf, len, "detail", sl->detail ? sl->detail : "");
    text_keyval(buf, len, "vm", sl->vm ? sl->vm->name : "");
    text_keyval(buf, len, "test", sl->test ? sl->test : "");
    text_keyval(buf, len, "site", sl->site ? sl->site : "");
    text_appendf(buf, len, "state: %s\n", state_name(sl));
    if (sl->s)
        text_appendf(buf, len,
                     "bytes: %" PRIu64 "\nframes: %" PRIu64
                     "\nconsumed: %" PRIu64 "\npending: %" PRIu64
                     "\nreaders: %u\n",
                     stream_size(sl->s), stream_frames(sl->s),
                     stream_consumed(sl->s), stream_pending(sl->s),
                     stream_readers(sl->s));
    else
        text_appendf(buf, len,
                     "bytes: 0\nframes: 0\nconsumed: 0\npending: "
                     "0\nreaders: 0\n");
    text_appendf(buf, len,
                 "owner pid: %d\nowner uid: %u\nkeep: %s\ncreated: %s\n",
                 sl->owner ? (int)sl->owner_pid : 0, (unsigned)sl->uid,
                 sl->keep ? "yes" : "no", when);
    if (sl->s && stream_end_error(sl->s, &msg))
        text_keyval(buf, len, "error", msg ? msg : "");
    else if (sl->s && msg && stream_state(sl->s) != STREAM_LIVE)
        text_keyval(buf, len, "end", msg);
    if (sl->engine && sl->engine_state && sl->state == SLOT_OPEN &&
        stream_state(sl->s) != STREAM_CLOSED)
        engine_info(sl->engine, sl->engine_state, buf, len);
    return strnlen(buf, len);
}

/* SPEC §7: kind(detail) created at file:line (test "name"), each value
 * escaped so that none can end the line early. */
size_t
slot_describe(struct slot *sl, char *buf, size_t len)
{
    bool quote = sl->engine && sl->engine->what == ENGINE_WHAT_PATH;

    buf[0] = 0;
    text_appendf(buf, len, "%s(%s", sl->kind, quote ? "\"" : "");
    text_append(buf, len, sl->detail ? sl->detail : "");
    text_appendf(buf, len, "%s)", quote ? "\"" : "");
    if (sl->site && *sl->site) {
        text_appendf(buf, len, " created at ");
        text_append(buf, len, sl->site);
    }
    if (sl->test && *sl->test) {
        text_appendf(buf, len, " (test \"");
        text_append(buf, len, sl->test);
        text_appendf(buf, len, "\")");
    }
    return strnlen(buf, len);
}

/* The ctl file's answer when no command is outstanding. */
static size_t
state_line(struct ctl *c, char *buf, size_t len)
{
    struct slot *sl = ((struct slot_ctl *)(void *)c)->sl;

    buf[0] = 0;
    if (!sl->s || sl->state == SLOT_EMPTY)
        return text_appendf(buf, len, "%s\n", sl->gone ? "closed" : "unopened");
    return text_appendf(
            buf, len,
            "%s bytes=%" PRIu64 " frames=%" PRIu64 " consumed=%" PRIu64
            " pending=%" PRIu64 " readers=%u\n",
            sl->gone ? "closed" : state_name(sl), stream_size(sl->s),
            stream_frames(sl->s), stream_consumed(sl->s), stream_pending(sl->s),
            stream_readers(sl->s));
}

/* ---- opening ----------------------------------------------------- */

/* An open command being opened: its words and the request parsed from
 * them (the request points into the words). Kept while the open waits
 * for the VM's agent. */
struct slot_open {
    struct command cmd;
    struct engine_req req;
};

static void
open_free(struct slot_open *o)
{
    if (!o)
        return;
    command_free(&o->cmd);
    free(o);
}

static char *
word_dup(struct word w)
{
    char *s = malloc(w.len + 1);

    if (s) {
        memcpy(s, w.p, w.len);
        s[w.len] = 0;
        /* A NUL inside would cut the text short: harmless, it is only
         * shown back. */
    }
    return s;
}

static void
discard_cb(struct reactor *r, void *arg)
{
    struct stream *s = arg;

    stream_close(s);
    stream_unref(s);
}

/* The open failed: answer its entry, drop the stream, back to unopened. */
static void
open_failed(struct slot *sl, int err, const char *msg)
{
    struct stream *s = sl->s;
    struct reply *rp = NULL;

    sl->s = NULL;
    sl->state = SLOT_EMPTY;
    slot_clear(sl);
    arm_reclaim(sl);
    if (sl->open_entry) {
        reply_new_fmt(REPLY_ERROR, &rp, "%s",
                      msg && *msg ? msg : strerror(-err));
        ctl_done(sl->open_entry, rp);
        sl->open_entry = NULL;
    }
    /* The engine may be calling us from its own callback: let it return
     * before its state goes. */
    if (s && reactor_defer(sl->fs->r, discard_cb, s) < 0)
        discard_cb(sl->fs->r, s);
}

static void
slot_opened(struct stream *s, int err, const char *msg, void *arg)
{
    struct slot *sl = arg;
    struct reply *rp = NULL;

    if (sl->s != s || sl->state != SLOT_OPENING)
        return;
    if (err < 0) {
        open_failed(sl, err, msg);
        return;
    }
    sl->state = SLOT_OPEN;
    if (sl->open_entry) {
        reply_new_mem(REPLY_OK, "", 0, &rp);
        ctl_done(sl->open_entry, rp);
        sl->open_entry = NULL;
    }
}

/* What the engine opens in (engine.c's context kinds). */
static void *
engine_ctx(struct slot *sl)
{
    switch (sl->engine->ctx) {
    case ENGINE_CTX_AGENT:
        return sl->vm->agent;
    case ENGINE_CTX_CONSOLE:
        return sl->vm->console;
    default:
        return NULL;
    }
}

/* Start the engine on sl->opening. Returns what the engine said at once:
 * -EINVAL (a malformed request) or 0 (the outcome is or will be in the
 * open entry). */
static int
start_engine(struct slot *sl)
{
    struct slot_open *o = sl->opening;
    struct engine_req *req = &o->req;
    char err[COMMAND_ERR_LEN] = "";
    int rc;

    sl->opening = NULL;
    /* A process or handle is named by its mount id: the agent gets its
     * own id, resolved now that the agent is up, and only for its owner
     * (SPEC §6.4, §8). */
    if (req->e->what == ENGINE_WHAT_PROC ||
        req->e->what == ENGINE_WHAT_HANDLE) {
        uint64_t n;
        rc = procs_resolve(sl->vm, req->e->what == ENGINE_WHAT_PROC, req->what,
                           sl->open_uid, req->e->c.name, &req->id, &n, err);
        if (rc < 0) {
            open_free(o);
            open_failed(sl, rc, err);
            return rc == -EINVAL ? rc : 0;
        }
    }
    /* The engine may answer before it returns; sl stays valid throughout
     * (the caller holds a reference). */
    rc = engine_open(sl->s, engine_ctx(sl), req, slot_opened, sl,
                     &sl->engine_state, err);
    open_free(o);
    if (rc < 0) {
        open_failed(sl, rc, err);
        return rc == -EINVAL ? rc : 0;
    }
    snprintf(sl->kind, sizeof(sl->kind), "%s",
             engine_kind(sl->engine, sl->engine_state));
    return 0;
}

static void
agent_waited(void *arg, int err, const char *msg)
{
    struct slot *sl = arg;

    if (err < 0) {
        open_free(sl->opening);
        sl->opening = NULL;
        open_failed(sl, err, msg);
        return;
    }
    sl->refs++;
    start_engine(sl);
    slot_unref(sl);
}

/* The VM an open names, checked for uid: 0, or an error pushed on the
 * ctl (the write still succeeds: the command was well formed). */
static int
open_vm(struct slot_ctl *sc, const struct engine_req *req, uid_t uid,
        struct vm **out)
{
    struct fs *fs = sc->sl->fs;
    const struct engine *e = req->e;
    struct vm *vm = NULL;
    char why[256], iface[64];

    if (e->ctx != ENGINE_CTX_NONE) {
        vm = vm_find(fs, req->target.p, req->target.len);
        if (!vm) {
            ctl_push_error(&sc->c, "vm `%.*s`: %s",
                           (int)(req->target.len > 64 ? 64 : req->target.len),
                           req->target.p, strerror(ENOENT));
            return -ENOENT;
        }
    } else if (word_cstr(req->target, iface, sizeof(iface))) {
        /* A capture on one of a VM's NICs counts as the VM's. */
        for (vm = fs->vms; vm && !vm_has_nic(vm, iface); vm = vm->next)
            ;
    }
    if (access_open(fs, e, vm, uid, why, sizeof(why)) < 0) {
        if (e->ctx != ENGINE_CTX_NONE)
            ctl_push_error(&sc->c, "vm `%s`: %s (%s)", vm->name,
                           strerror(EPERM), why);
        else
            ctl_push_error(&sc->c, "%s %.*s: %s (%s)", e->c.name,
                           (int)(req->target.len > 63 ? 63 : req->target.len),
                           req->target.p, strerror(EPERM), why);
        return -EPERM;
    }
    if (e->ctx == ENGINE_CTX_CONSOLE && !vm->console) {
        ctl_push_error(&sc->c, "console %s: the VM has no console= socket",
                       vm->name);
        return -ENODEV;
    }
    *out = vm;
    return 0;
}

/* The open command (the slot's first command): cmd is taken. */
static int
slot_open(struct slot_ctl *sc, fuse_req_t req, struct command *cmd)
{
    struct slot *sl = sc->sl;
    struct fs *fs = sl->fs;
    struct slot_open *o = calloc(1, sizeof(*o));
    struct stream_config cfg = {
            .spool_dir = fs->opt->spool_dir,
            .history_limit = fs->opt->history_limit,
    };
    char err[COMMAND_ERR_LEN];
    const struct engine *e;
    struct vm *vm = NULL;
    size_t dlen;
    int rc;

    if (!o) {
        command_free(cmd);
        free(cmd);
        ctl_push_error(&sc->c, "out of memory");
        return -ENOMEM;
    }
    o->cmd = *cmd; /* the words point into cmd->buf, which moves too */
    free(cmd);
    if ((rc = engine_parse(&o->cmd, &o->req, err)) < 0) {
        ctl_push_error(&sc->c, "%s", err);
        goto fail;
    }
    e = o->req.e;
    free(sl->site);
    free(sl->test);
    sl->site = sl->test = NULL;
    if ((o->req.has_site && !(sl->site = word_dup(o->req.site))) ||
        (o->req.has_test && !(sl->test = word_dup(o->req.test)))) {
        ctl_push_error(&sc->c, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    sl->keep = o->req.keep;
    if (open_vm(sc, &o->req, access_uid(req), &vm) < 0) {
        rc = 0;
        goto fail;
    }
    o->req.vm_nic = e->ctx == ENGINE_CTX_NONE && vm;
    sl->engine = e;
    snprintf(sl->kind, sizeof(sl->kind), "%s", e->c.name);
    dlen = engine_detail(&o->req, err, 0) + 1;
    if (!(sl->detail = malloc(dlen))) {
        ctl_push_error(&sc->c, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    engine_detail(&o->req, sl->detail, dlen);
    cfg.noun = e->noun;
    if ((rc = stream_new(fs->r, &cfg, &sl->s)) < 0) {
        ctl_push_error(&sc->c, "cannot create the stream's history in %s: %s",
                       fs->opt->spool_dir, strerror(-rc));
        goto fail;
    }
    if (!(sl->open_entry =
                  ctl_push(&sc->c, sizeof(struct slot_call), open_drop))) {
        stream_unref(sl->s);
        sl->s = NULL;
        rc = -ENOMEM;
        goto fail;
    }
    ((struct slot_call *)(void *)sl->open_entry)->sl = sl;
    sl->vm = vm;
    sl->state = SLOT_OPENING;
    sl->owner = sc;
    sl->owner_pid = fuse_req_ctx(req)->pid;
    sl->open_uid = access_uid(req);
    sl->opening = o;
    reactor_timer_stop(fs->r, &sl->reclaim);
    if (e->ctx == ENGINE_CTX_AGENT && !vm_agent_up(vm)) {
        vm_wait_up(vm, &sl->wait, agent_waited, sl);
        return 0;
    }
    return start_engine(sl);
fail:
    slot_clear(sl);
    open_free(o);
    return rc;
}

/* ---- the ctl file ------------------------------------------------ */

/* The open command's entry goes: if it still ran, nobody waits for it. */
static void
open_drop(struct ctl_entry *e, bool running)
{
    struct slot *sl = ((struct slot_call *)(void *)e)->sl;

    if (running)
        sl->open_entry = NULL;
}

static void
close_cb(struct reactor *r, void *arg)
{
    struct slot *sl = arg;

    slot_close(sl);
    slot_unref(sl);
}

static void
op_done(struct stream *s, struct reply *rp, void *arg)
{
    struct slot_call *call = arg;
    struct slot *sl = call->sl;

    /* The stream closes itself right after answering `close`; the slot
     * follows on the next turn, outside the stream's own code. Whoever
     * reads the reply finds the directory gone: no request can reach us
     * before the slot goes, and the kernel is told now not to answer a
     * stat from its cache (slot_close tells it again, in case a stat was
     * answered in between). */
    if (call->kind == STREAM_OP_CLOSE && !sl->gone) {
        sl->refs++;
        if (reactor_defer(sl->fs->r, close_cb, sl) < 0)
            sl->refs--;
        tree_gone(sl->fs, (struct ino){N_S, 0, sl->id});
    }
    call->op = NULL;
    ctl_done(&call->e, rp);
}

/* A `close` whose writer went away: the slot goes when it has run. */
static void
close_detached(struct stream *s, struct reply *rp, void *arg)
{
    struct slot *sl = arg;

    reply_free(rp);
    if (reactor_defer(sl->fs->r, close_cb, sl) < 0)
        slot_unref(sl);
}

static void
op_drop(struct ctl_entry *e, bool running)
{
    struct slot_call *call = (struct slot_call *)(void *)e;

    if (!running)
        return;
    /* `echo close > streams/N/ctl` releases the file right after the
     * write, usually before the op's turn: a close still happens (in its
     * turn), only its reply has no reader. Other ops are withdrawn. */
    if (call->kind == STREAM_OP_CLOSE) {
        call->sl->refs++;
        stream_op_redirect(call->op, close_detached, call->sl);
        return;
    }
    stream_op_cancel(call->op);
}

/* A stream op (SPEC §5.2), parsed by the ops' command table (stream.c). */
static int
slot_op(struct slot_ctl *sc, struct command *cmd)
{
    struct slot *sl = sc->sl;
    struct stream_op_spec spec;
    struct slot_call *call;
    char err[COMMAND_ERR_LEN];
    int rc;

    if ((rc = stream_op_parse(cmd, &spec, err)) < 0) {
        ctl_push_error(&sc->c, "%s", err);
        return rc;
    }
    call = (struct slot_call *)(void *)ctl_push(&sc->c, sizeof(*call), op_drop);
    if (!call)
        return -ENOMEM;
    call->sl = sl;
    call->kind = spec.kind;
    if ((rc = stream_op_submit(sl->s, &spec, op_done, call, &call->op)) < 0) {
        struct reply *rp = NULL;
        reply_new_fmt(REPLY_ERROR, &rp, "%s", strerror(-rc));
        ctl_done(&call->e, rp);
    }
    return 0;
}

static int
slot_ctl_write(struct ctl *c, fuse_req_t req, struct command *cmd)
{
    struct slot_ctl *sc = (struct slot_ctl *)(void *)c;
    struct slot *sl = sc->sl;
    int rc;

    if (cmd->argc == 0) {
        rc = -EINVAL;
        ctl_push_error(c, "empty command");
    } else if (!sl->s && sl->gone) {
        struct reply *rp = NULL;
        reply_new_fmt(REPLY_CLOSED, &rp, "stream closed");
        ctl_push_reply(c, rp);
        rc = 0;
    } else if (!sl->s) {
        sl->refs++;
        rc = slot_open(sc, req, cmd); /* takes cmd */
        slot_unref(sl);
        return rc;
    } else {
        rc = slot_op(sc, cmd);
    }
    command_free(cmd);
    free(cmd);
    return rc;
}

static void
slot_ctl_release(struct ctl *c)
{
    struct slot_ctl *sc = (struct slot_ctl *)(void *)c;
    struct slot *sl = sc->sl;

    if (sl->owner == sc) {
        sl->owner = NULL;
        if (!sl->keep)
            slot_close(sl);
    }
    slot_unref(sl);
}

static const struct ctl_type slot_ctl_type = {
        .write = slot_ctl_write,
        .text = state_line,
        .release = slot_ctl_release,
};

int
slot_ctl_open(struct slot *sl, struct file *f)
{
    struct slot_ctl *sc = ctl_open(f, sl->fs, &slot_ctl_type, sizeof(*sc));

    if (!sc)
        return -ENOMEM;
    sc->sl = sl;
    sl->refs++;
    return 0;
}
