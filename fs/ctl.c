/*
 * ctl.c - the command/reply queue behind every ctl file (SPEC §4.3).
 *
 * Why replies are read instead of written back: a FUSE write holds the
 * inode's lock for as long as the daemon takes to answer it, so a write
 * that waited for a pattern would freeze every other writer of the file,
 * and even `echo x > ctl`, in D state (reference/fuse.md §8). So a write
 * only parses and starts the command, and the reply is read later on the
 * same open file:
 *
 *  - each write is parsed here into words and handed to the ctl's owner
 *    (its struct ctl_type: slot.c, vmctl.c, global.c), which looks the
 *    command up in its command table and pushes one entry at the tail,
 *    its own state around it; it completes the entry with ctl_done()
 *    when the command finishes;
 *  - a read serves the head entry's reply "<status> <length>\n<payload>"
 *    from our own offset (the file is FOPEN_STREAM: the kernel's offset
 *    is meaningless), parking while the head is still running;
 *  - once a reply has been read to its end, the next read returns 0 (end
 *    of file) once, so `cat` and `head` stop; writing a new command
 *    cancels that pending end of file;
 *  - a read with nothing outstanding returns the owner's text (a stream's
 *    state line, the daemon status), followed by end of file likewise.
 *
 * An interrupted read answers EINTR and the command keeps running: the
 * next read gets its reply. Releasing the file cancels what still runs.
 *
 * Every ctl file is opened with ctl_file_ops (file.c dispatches to it);
 * the owner embeds the struct ctl and is reached through c->type.
 * Ownership: an entry is the ctl's from ctl_push to the read of its reply
 * (or ctl_fini); the owner's drop hook runs once when it is freed, told
 * whether the command was still running (then it must be withdrawn).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

void
ctl_init(struct ctl *c, struct fs *fs, const struct ctl_type *type)
{
    memset(c, 0, sizeof(*c));
    c->fs = fs;
    c->type = type;
}

static void
entry_free(struct ctl_entry *e)
{
    if (e->drop)
        e->drop(e, !e->done);
    reply_free(e->rp);
    free(e->text);
    free(e);
}

void
ctl_fini(struct ctl *c)
{
    struct ctl_entry *e;

    park_flush(&c->q);
    fuse_pollhandle_destroy(c->ph);
    c->ph = NULL;
    while ((e = c->head)) {
        c->head = e->next;
        entry_free(e);
    }
    c->tail = NULL;
    c->n = 0;
}

static void
entry_append(struct ctl *c, struct ctl_entry *e)
{
    e->c = c;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->n++;
    c->eof_pending = false;
}

int
ctl_admit(struct ctl *c)
{
    if (c->n + 1 < FS_CTL_MAX_REPLIES)
        return 0;
    if (c->n + 1 == FS_CTL_MAX_REPLIES)
        ctl_push_error(c,
                       "%s: too many unread replies (%d): read them first; "
                       "commands written since were not run",
                       strerror(EAGAIN), FS_CTL_MAX_REPLIES);
    return -EAGAIN;
}

struct ctl_entry *
ctl_push(struct ctl *c, size_t size, ctl_drop_fn *drop)
{
    struct ctl_entry *e = calloc(1, size);

    if (e) {
        e->drop = drop;
        entry_append(c, e);
    }
    return e;
}

static uint64_t
entry_len(const struct ctl_entry *e)
{
    return e->rp ? reply_length(e->rp) : e->len;
}

static ssize_t
entry_read(struct ctl_entry *e, void *buf, size_t len, uint64_t off)
{
    if (e->rp)
        return reply_read(e->rp, buf, len, off);
    if (off >= e->len)
        return 0;
    if (len > e->len - off)
        len = (size_t)(e->len - off);
    memcpy(buf, e->text + off, len);
    return (ssize_t)len;
}

/* The text shown when nothing is outstanding, as a done entry. */
static struct ctl_entry *
text_entry(struct ctl *c)
{
    struct ctl_entry *e = calloc(1, sizeof(*e));

    if (!e || !(e->text = malloc(FS_TEXT_MAX))) {
        free(e);
        return NULL;
    }
    e->text[0] = 0;
    e->len = c->type->text(c, e->text, FS_TEXT_MAX);
    e->done = true;
    entry_append(c, e);
    return e;
}

/* Answer parked reads in order for as long as replies are there. */
static void
ctl_serve(struct ctl *c)
{
    char *buf = c->fs->buf;

    while (!park_empty(&c->q)) {
        struct ctl_entry *e = c->head;
        size_t want = park_size(&c->q);
        ssize_t n;

        if (!e && c->eof_pending) {
            c->eof_pending = false;
            park_reply_buf(&c->q, NULL, 0);
            continue;
        }
        if (!e && !(e = text_entry(c))) {
            park_reply_err(&c->q, ENOMEM);
            continue;
        }
        if (c->eof_pending && c->off == 0) {
            /* The reply before this one was read to its end and nothing
             * was written since: end of file once, then this one. */
            c->eof_pending = false;
            park_reply_buf(&c->q, NULL, 0);
            continue;
        }
        if (!e->done)
            return;
        n = entry_read(e, buf, want < FS_BUF_SIZE ? want : FS_BUF_SIZE, c->off);
        if (n < 0) {
            park_reply_err(&c->q, (int)-n);
            continue;
        }
        c->off += (uint64_t)n;
        if (c->off >= entry_len(e)) {
            c->head = e->next;
            if (!c->head)
                c->tail = NULL;
            c->n--;
            entry_free(e);
            c->off = 0;
            c->eof_pending = true;
        }
        park_reply_buf(&c->q, buf, (size_t)n);
    }
}

void
ctl_done(struct ctl_entry *e, struct reply *rp)
{
    if (!rp)
        reply_new_fmt(REPLY_ERROR, &rp, "out of memory");
    e->rp = rp;
    e->done = true;
    if (e->c->ph && e == e->c->head) {
        fuse_lowlevel_notify_poll(e->c->ph);
        fuse_pollhandle_destroy(e->c->ph);
        e->c->ph = NULL;
    }
    ctl_serve(e->c);
}

void
ctl_push_reply(struct ctl *c, struct reply *rp)
{
    struct ctl_entry *e = ctl_push(c, sizeof(*e), NULL);

    if (!e) {
        reply_free(rp);
        return;
    }
    ctl_done(e, rp);
}

void
ctl_push_error(struct ctl *c, const char *fmt, ...)
{
    char msg[1024];
    struct reply *rp = NULL;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_new_mem(REPLY_ERROR, msg, strlen(msg), &rp);
    ctl_push_reply(c, rp);
}

static void
ctl_read(struct file *f, fuse_req_t req, size_t size, off_t off, int flags)
{
    struct ctl *c = f->ctl;
    bool waiting =
            park_empty(&c->q) && c->head && !c->head->done && !c->eof_pending;
    int rc;

    if (waiting && (flags & O_NONBLOCK)) {
        fuse_reply_err(req, EAGAIN);
        return;
    }
    /* The status text describes the daemon before this read parks. */
    if (park_empty(&c->q) && !c->head && !c->eof_pending && !text_entry(c)) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if ((rc = park_add(c->fs, &c->q, req, size)) < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    ctl_serve(c);
}

static void
ctl_poll(struct file *f, fuse_req_t req, struct fuse_pollhandle *ph)
{
    struct ctl *c = f->ctl;
    bool ready = !c->head || c->head->done || c->eof_pending;

    if (ph) {
        fuse_pollhandle_destroy(c->ph);
        c->ph = NULL;
        if (ready) {
            fuse_lowlevel_notify_poll(ph);
            fuse_pollhandle_destroy(ph);
        } else {
            c->ph = ph;
        }
    }
    fuse_reply_poll(req,
                    POLLOUT | POLLWRNORM | (ready ? POLLIN | POLLRDNORM : 0));
}

/* A write is one command: parsed here, run by the owner. */
static ssize_t
ctl_write(struct file *f, fuse_req_t req, const char *buf, size_t size)
{
    struct ctl *c = f->ctl;
    struct command *cmd;
    char err[COMMAND_ERR_LEN];
    int rc;

    /* Every command queues a reply: none beyond the cap (SPEC §6.3). */
    if ((rc = ctl_admit(c)) < 0)
        return rc;
    if (!(cmd = malloc(sizeof(*cmd))))
        return -ENOMEM;
    if ((rc = command_parse(cmd, buf, size, err)) < 0) {
        free(cmd);
        ctl_push_error(c, "%s", err);
        return rc;
    }
    rc = c->type->write(c, req, cmd);
    return rc < 0 ? rc : (ssize_t)size;
}

static void
ctl_release(struct file *f)
{
    struct ctl *c = f->ctl;

    if (!c)
        return;
    ctl_fini(c);
    if (c->type->release)
        c->type->release(c);
    free(c); /* the owner's block, the ctl first */
}

const struct file_ops ctl_file_ops = {
        .read = ctl_read,
        .write = ctl_write,
        .poll = ctl_poll,
        .release = ctl_release,
};

void *
ctl_open(struct file *f, struct fs *fs, const struct ctl_type *type,
         size_t size)
{
    struct ctl *c = calloc(1, size);

    f->ops = &ctl_file_ops;
    if (c) {
        ctl_init(c, fs, type);
        f->ctl = c;
    }
    return c;
}
