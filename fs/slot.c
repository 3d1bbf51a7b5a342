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
 * Engines are chosen by the open command's name. The words handed to an
 * engine are the command without site=, test= and keep, which are the
 * file system's business; the engine sees argv[1..] (argi = 1): the VM
 * name first for tail and console, the interface for capture.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define SLOT_BUCKETS 4096

struct sctl {
    struct ctl c;
    struct slot *sl;
};

enum open_kind { OPEN_TAIL, OPEN_CONSOLE, OPEN_CAPTURE };

static const struct {
    const char *name;
    enum open_kind kind;
} open_table[] = {
        {"tail_file", OPEN_TAIL},          {"file_tail_stream", OPEN_TAIL},
        {"fd_stream", OPEN_TAIL},          {"proc_stdout_stream", OPEN_TAIL},
        {"proc_stderr_stream", OPEN_TAIL}, {"console", OPEN_CONSOLE},
        {"capture", OPEN_CAPTURE},
};
#define N_OPENS (sizeof(open_table) / sizeof(open_table[0]))

static void reclaim_cb(struct reactor *r, void *arg);
static void open_cancel(struct ctl_entry *e);

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
    if (sl->open_cmd) {
        command_free(sl->open_cmd);
        free(sl->open_cmd);
        sl->open_cmd = NULL;
    }
    if (sl->open_entry) {
        struct ctl_entry *e = sl->open_entry;
        struct reply *rp = NULL;
        sl->open_entry = NULL;
        reply_new_fmt(REPLY_CLOSED, &rp, "stream closed");
        ctl_done(e, rp);
    }
    if (sl->s)
        stream_close(sl->s);
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
    fs_appendf(buf, len, "id: %" PRIu64 "\n", sl->id);
    text_keyval(buf, len, "kind", sl->kind);
    text_keyval(buf, len, "detail", sl->detail ? sl->detail : "");
    text_keyval(buf, len, "vm", sl->vm ? sl->vm->name : "");
    text_keyval(buf, len, "test", sl->test ? sl->test : "");
    text_keyval(buf, len, "site", sl->site ? sl->site : "");
    fs_appendf(buf, len, "state: %s\n", state_name(sl));
    if (sl->s)
        fs_appendf(buf, len,
                   "bytes: %" PRIu64 "\nframes: %" PRIu64 "\nconsumed: %" PRIu64
                   "\npending: %" PRIu64 "\nreaders: %u\n",
                   stream_size(sl->s), stream_frames(sl->s),
                   stream_consumed(sl->s), stream_pending(sl->s),
                   stream_readers(sl->s));
    else
        fs_appendf(buf, len,
                   "bytes: 0\nframes: 0\nconsumed: 0\npending: "
                   "0\nreaders: 0\n");
    fs_appendf(buf, len,
               "owner pid: %d\nowner uid: %u\nkeep: %s\ncreated: %s\n",
               sl->owner ? (int)sl->owner_pid : 0, (unsigned)sl->uid,
               sl->keep ? "yes" : "no", when);
    if (sl->s && stream_end_error(sl->s, &msg))
        text_keyval(buf, len, "error", msg ? msg : "");
    else if (sl->s && msg && stream_state(sl->s) != STREAM_LIVE)
        text_keyval(buf, len, "end", msg);
    if (sl->engine && sl->engine_state && sl->state == SLOT_OPEN &&
        stream_state(sl->s) != STREAM_CLOSED)
        sl->engine->info(sl->engine_state, buf, len);
    return strnlen(buf, len);
}

/* SPEC §7: kind(detail) created at file:line (test "name"), each value
 * escaped so that none can end the line early. */
size_t
slot_describe(struct slot *sl, char *buf, size_t len)
{
    bool quote = strcmp(sl->kind, "tail_file") == 0 ||
                 strcmp(sl->kind, "file_tail_stream") == 0;

    buf[0] = 0;
    fs_appendf(buf, len, "%s(%s", sl->kind, quote ? "\"" : "");
    text_append(buf, len, sl->detail ? sl->detail : "");
    fs_appendf(buf, len, "%s)", quote ? "\"" : "");
    if (sl->site && *sl->site) {
        fs_appendf(buf, len, " created at ");
        text_append(buf, len, sl->site);
    }
    if (sl->test && *sl->test) {
        fs_appendf(buf, len, " (test \"");
        text_append(buf, len, sl->test);
        fs_appendf(buf, len, "\")");
    }
    return strnlen(buf, len);
}

/* The ctl file's answer when no command is outstanding. */
static size_t
state_line(void *arg, char *buf, size_t len)
{
    struct slot *sl = ((struct sctl *)arg)->sl;

    buf[0] = 0;
    if (!sl->s || sl->state == SLOT_EMPTY)
        return fs_appendf(buf, len, "%s\n", sl->gone ? "closed" : "unopened");
    return fs_appendf(buf, len,
                      "%s bytes=%" PRIu64 " frames=%" PRIu64
                      " consumed=%" PRIu64 " pending=%" PRIu64 " readers=%u\n",
                      sl->gone ? "closed" : state_name(sl), stream_size(sl->s),
                      stream_frames(sl->s), stream_consumed(sl->s),
                      stream_pending(sl->s), stream_readers(sl->s));
}

/* ---- opening ----------------------------------------------------- */

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

/* Start the engine on sl->open_cmd. Returns what the engine said at once:
 * -EINVAL (a malformed request) or 0 (the outcome is or will be in the
 * open entry). */
static int
start_engine(struct slot *sl)
{
    struct command *cmd = sl->open_cmd;
    char err[COMMAND_ERR_LEN] = "";
    void *ctx = NULL;
    int rc;

    sl->open_cmd = NULL;
    if (sl->vm)
        ctx = sl->engine == &tail_engine ? (void *)sl->vm->agent
                                         : (void *)sl->vm->console;
    /* A process or handle is named by its mount id: the agent gets its
     * own id, resolved now that the agent is up, and only for its owner
     * (SPEC §6.4, §8). */
    if (sl->engine == &tail_engine && cmd->argc > 2 &&
        (strncmp(sl->kind, "proc_", 5) == 0 ||
         strcmp(sl->kind, "fd_stream") == 0)) {
        uint64_t id, n;
        rc = vm_resolve(sl->vm, sl->kind[0] == 'p', cmd->argv[2], sl->open_uid,
                        sl->kind, &id, &n, err);
        if (rc < 0) {
            command_free(cmd);
            free(cmd);
            open_failed(sl, rc, err);
            return rc == -EINVAL ? rc : 0;
        }
        snprintf(sl->agent_id, sizeof(sl->agent_id), "%" PRIu64, id);
        cmd->argv[2] = (struct word){sl->agent_id, strlen(sl->agent_id)};
    }
    /* The engine may answer before it returns; sl stays valid throughout
     * (the caller holds a reference). */
    rc = sl->engine->open(sl->s, ctx, cmd, 1, slot_opened, sl,
                          &sl->engine_state, err);
    command_free(cmd);
    free(cmd);
    if (rc < 0) {
        open_failed(sl, rc, err);
        return rc == -EINVAL ? rc : 0;
    }
    return 0;
}

static void
agent_waited(void *arg, int err, const char *msg)
{
    struct slot *sl = arg;

    if (err < 0) {
        command_free(sl->open_cmd);
        free(sl->open_cmd);
        sl->open_cmd = NULL;
        open_failed(sl, err, msg);
        return;
    }
    sl->refs++;
    start_engine(sl);
    slot_unref(sl);
}

/* Remove site=, test= and keep from cmd into the slot. */
static int
take_options(struct slot *sl, struct command *cmd)
{
    int out = 1;

    for (int i = 1; i < cmd->argc; i++) {
        struct word w = cmd->argv[i], v;
        if (word_option(w, "site", &v)) {
            free(sl->site);
            if (!(sl->site = word_dup(v)))
                return -ENOMEM;
        } else if (word_option(w, "test", &v)) {
            free(sl->test);
            if (!(sl->test = word_dup(v)))
                return -ENOMEM;
        } else if (word_is(w, "keep")) {
            sl->keep = true;
        } else {
            cmd->argv[out++] = w;
        }
    }
    cmd->argc = out;
    return 0;
}

/* The detail of SPEC §5.1 for the opened kind. */
static char *
open_detail(const char *kind, const struct command *cmd)
{
    char buf[64];
    struct word w = cmd->argv[cmd->argc > 2 ? 2 : 1];

    if (strcmp(kind, "console") == 0 || strcmp(kind, "bridge_capture") == 0 ||
        strcmp(kind, "nic_capture") == 0)
        return word_dup(cmd->argv[1]);
    if (strncmp(kind, "proc_", 5) == 0 && w.len < 32 &&
        memchr(w.p, '#', w.len) == NULL) {
        snprintf(buf, sizeof(buf), "proc#%.*s", (int)w.len, w.p);
        return strdup(buf);
    }
    return word_dup(w);
}

static int
slot_open(struct sctl *sc, fuse_req_t req, struct command *cmd)
{
    struct slot *sl = sc->sl;
    struct fs *fs = sl->fs;
    struct stream_config cfg = {
            .spool_dir = fs->opt->spool_dir,
            .history_limit = fs->opt->history_limit,
            .noun = "stream",
    };
    struct word name = cmd->argv[0], v;
    struct vm *vm = NULL;
    char why[256];
    size_t i;
    int rc;

    for (i = 0; i < N_OPENS; i++)
        if (word_is(name, open_table[i].name))
            break;
    if (i == N_OPENS) {
        ctl_push_error(&sc->c,
                       "unknown open command `%.*s` (expected tail_file, "
                       "file_tail_stream, fd_stream, proc_stdout_stream, "
                       "proc_stderr_stream, console or capture)",
                       (int)(name.len > 64 ? 64 : name.len), name.p);
        rc = -EINVAL;
        goto fail;
    }
    if ((rc = take_options(sl, cmd)) < 0) {
        ctl_push_error(&sc->c, "out of memory");
        goto fail;
    }
    if (cmd->argc < 2 || (open_table[i].kind == OPEN_TAIL && cmd->argc < 3)) {
        ctl_push_error(&sc->c, "%s: missing argument (usage: %s)",
                       open_table[i].name,
                       open_table[i].kind == OPEN_TAIL      ? "KIND VM WHAT"
                       : open_table[i].kind == OPEN_CONSOLE ? "console VM"
                                                            : "capture IFACE");
        rc = -EINVAL;
        goto fail;
    }
    snprintf(sl->kind, sizeof(sl->kind), "%s", open_table[i].name);
    switch (open_table[i].kind) {
    case OPEN_TAIL:
    case OPEN_CONSOLE:
        vm = vm_find(fs, cmd->argv[1].p, cmd->argv[1].len);
        if (!vm) {
            ctl_push_error(&sc->c, "vm `%.*s`: %s",
                           (int)(cmd->argv[1].len > 64 ? 64 : cmd->argv[1].len),
                           cmd->argv[1].p, strerror(ENOENT));
            rc = 0;
            goto fail;
        }
        if (access_vm(vm, access_uid(req), why, sizeof(why)) < 0) {
            ctl_push_error(&sc->c, "vm `%s`: %s (%s)", vm->name,
                           strerror(EPERM), why);
            rc = 0;
            goto fail;
        }
        if (open_table[i].kind == OPEN_TAIL) {
            sl->engine = &tail_engine;
        } else {
#if PROVIUM_HAVE_CONSOLE
            sl->engine = &console_engine;
#endif
            if (!sl->engine || !vm->console) {
                ctl_push_error(&sc->c, "console %s: %s", vm->name,
                               sl->engine ? "the VM has no console= socket"
                                          : "console not available in this "
                                            "build");
                rc = 0;
                goto fail;
            }
            cfg.noun = "console";
        }
        break;
    case OPEN_CAPTURE: {
        char iface[64];
        snprintf(iface, sizeof(iface), "%.*s",
                 (int)(cmd->argv[1].len > 63 ? 63 : cmd->argv[1].len),
                 cmd->argv[1].p);
        for (vm = fs->vms; vm && !vm_has_nic(vm, iface); vm = vm->next)
            ;
        /* Without kind=: a VM's NIC, else what the interface is (the
         * capture engine decides the same way, so info agrees). */
#if PROVIUM_HAVE_CAPTURE
        snprintf(sl->kind, sizeof(sl->kind), "%s_capture",
                 vm ? "nic" : capture_iface_kind(iface));
#else
        snprintf(sl->kind, sizeof(sl->kind), "%s",
                 vm ? "nic_capture" : "bridge_capture");
#endif
        for (int k = 2; k < cmd->argc; k++) {
            if (word_option(cmd->argv[k], "kind", &v))
                snprintf(sl->kind, sizeof(sl->kind), "%s",
                         word_is(v, "nic") ? "nic_capture" : "bridge_capture");
        }
#if PROVIUM_HAVE_CAPTURE
        sl->engine = &capture_engine;
#endif
        if (!sl->engine) {
            ctl_push_error(&sc->c,
                           "capture %s: capture not available in "
                           "this build",
                           iface);
            rc = 0;
            goto fail;
        }
        if (!access_privileged(fs, access_uid(req))) {
            ctl_push_error(&sc->c,
                           "capture %s: %s (captures need "
                           "CAP_NET_RAW; only root may capture on a "
                           "shared mount)",
                           iface, strerror(EPERM));
            rc = 0;
            goto fail;
        }
        cfg.noun = "capture";
        break;
    }
    }
    if (!(sl->detail = open_detail(sl->kind, cmd))) {
        ctl_push_error(&sc->c, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = stream_new(fs->r, &cfg, &sl->s)) < 0) {
        ctl_push_error(&sc->c, "cannot create the stream's history in %s: %s",
                       fs->opt->spool_dir, strerror(-rc));
        goto fail;
    }
    if (!(sl->open_entry = ctl_push(&sc->c))) {
        stream_unref(sl->s);
        sl->s = NULL;
        rc = -ENOMEM;
        goto fail;
    }
    sl->open_entry->owner = sl;
    sl->open_entry->cancel = open_cancel;
    sl->vm = vm;
    sl->state = SLOT_OPENING;
    sl->owner = sc;
    sl->owner_pid = fuse_req_ctx(req)->pid;
    sl->open_uid = access_uid(req);
    sl->open_cmd = cmd;
    reactor_timer_stop(fs->r, &sl->reclaim);
    if (sl->engine == &tail_engine && !vm_agent_up(vm)) {
        vm_wait_up(vm, &sl->wait, agent_waited, sl);
        return 0;
    }
    return start_engine(sl);
fail:
    slot_clear(sl);
    command_free(cmd);
    free(cmd);
    return rc;
}

/* ---- the ctl file ------------------------------------------------ */

static void
open_cancel(struct ctl_entry *e)
{
    struct slot *sl = e->owner;

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
    struct ctl_entry *e = arg;
    struct slot *sl = e->owner;

    /* The stream closes itself right after answering `close`; the slot
     * follows on the next turn, outside the stream's own code. */
    if (e->kind == STREAM_OP_CLOSE && !sl->gone) {
        sl->refs++;
        if (reactor_defer(sl->fs->r, close_cb, sl) < 0)
            sl->refs--;
    }
    ctl_done(e, rp);
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
op_cancel(struct ctl_entry *e)
{
    struct slot *sl = e->owner;

    /* `echo close > streams/N/ctl` releases the file right after the
     * write, usually before the op's turn: a close still happens (in its
     * turn), only its reply has no reader. Other ops are withdrawn. */
    if (e->kind == STREAM_OP_CLOSE) {
        sl->refs++;
        stream_op_redirect(e->op, close_detached, sl);
        return;
    }
    stream_op_cancel(e->op);
}

int
sctl_open(struct slot *sl, struct sctl **out)
{
    struct sctl *sc = calloc(1, sizeof(*sc));

    if (!sc)
        return -ENOMEM;
    ctl_init(&sc->c, sl->fs, state_line, sc);
    sc->sl = sl;
    sl->refs++;
    *out = sc;
    return 0;
}

struct ctl *
sctl_ctl(struct sctl *sc)
{
    return &sc->c;
}

int
sctl_write(struct sctl *sc, fuse_req_t req, const char *buf, size_t len)
{
    struct slot *sl = sc->sl;
    struct command *cmd = malloc(sizeof(*cmd));
    struct stream_op_spec spec;
    struct ctl_entry *e;
    char err[COMMAND_ERR_LEN];
    int rc;

    if (!cmd)
        return -ENOMEM;
    if ((rc = command_parse(cmd, buf, len, err)) < 0) {
        free(cmd);
        ctl_push_error(&sc->c, "%s", err);
        return rc;
    }
    if (cmd->argc == 0) {
        rc = -EINVAL;
        ctl_push_error(&sc->c, "empty command");
        goto out;
    }
    if (!sl->s) {
        if (sl->gone) {
            struct reply *rp = NULL;
            reply_new_fmt(REPLY_CLOSED, &rp, "stream closed");
            ctl_push_reply(&sc->c, rp);
            rc = 0;
            goto out;
        }
        sl->refs++;
        rc = slot_open(sc, req, cmd); /* takes cmd */
        slot_unref(sl);
        return rc;
    }
    if ((rc = stream_op_parse(cmd, &spec, err)) < 0) {
        ctl_push_error(&sc->c, "%s", err);
        goto out;
    }
    if (!(e = ctl_push(&sc->c))) {
        rc = -ENOMEM;
        goto out;
    }
    e->owner = sl;
    e->kind = spec.kind;
    e->cancel = op_cancel;
    if ((rc = stream_op_submit(sl->s, &spec, op_done, e, &e->op)) < 0) {
        struct reply *rp = NULL;
        reply_new_fmt(REPLY_ERROR, &rp, "%s", strerror(-rc));
        ctl_done(e, rp);
    }
    rc = 0;
out:
    command_free(cmd);
    free(cmd);
    return rc;
}

void
sctl_free(struct sctl *sc)
{
    struct slot *sl;

    if (!sc)
        return;
    sl = sc->sl;
    ctl_fini(&sc->c);
    if (sl->owner == sc) {
        sl->owner = NULL;
        if (!sl->keep)
            slot_close(sl);
    }
    slot_unref(sl);
    free(sc);
}
