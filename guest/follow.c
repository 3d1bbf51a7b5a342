/*
 * follow.c - the tail source: a file followed by name (tail -F, the
 * default) or by descriptor (tail -f), woken by inotify only.
 *
 * By name: the directory is watched for the name. When the name comes to
 * refer to another file (rename rotation, or delete and re-create), the
 * new file is opened at once but the old one is read to its end first;
 * then the stream switches, reports "rotated" and reads the new file from
 * byte 0. When the name is gone and the file has no links left, the file
 * was deleted: the rest is read and the stream ends cleanly. A renamed
 * file with no new file at the name yet keeps being read until one
 * appears.
 *
 * Truncation: when the file is found shorter than the largest size seen,
 * reading restarts at 0 and "truncated" is reported. Like tail(1) this
 * cannot see a truncation that is followed by growth past the old size
 * before the agent looks (inotify coalesces the events).
 *
 * What an append costs (issue 12: no syscall that does not move bytes):
 * one inotify read, one pread, then the agent's socket write. Each
 * branch rests on a kernel behaviour:
 *  - a write is one event, IN_MODIFY on the file's watch: the
 *    directory is watched for name events only (watch.c), so the kernel
 *    does not queue its IN_MODIFY with the name. A write does not change
 *    which file the name refers to, so the name is looked at again (a
 *    stat by path) only on the directory's IN_CREATE, IN_MOVED_TO,
 *    IN_MOVED_FROM and IN_DELETE of the name (a rename over it, a delete
 *    and re-create) and on the file's IN_ATTRIB (its link count: unlinked,
 *    renamed over), IN_MOVE_SELF and IN_DELETE_SELF;
 *  - pread of a regular file comes back short only at its end of file
 *    (the page-cache read stops at i_size), so a short read means we have
 *    all it held then: the next read waits for the next event instead of
 *    a second pread and an fstat. A write that lands after the read is
 *    reported after it lands (fsnotify_modify follows the write), a
 *    truncation too (IN_MODIFY from notify_change), so nothing waits for
 *    a later event. Only a read that returns nothing looks at the size
 *    (the truncation check). A file system that returned short reads
 *    before the end (none of the local ones) would be read on at its next
 *    event.
 *
 * Sources that do not behave like growing files are never re-read in a
 * loop (SPEC §6.3); they are read as what they are:
 *  - a FIFO, character device or other non-regular file is read as a
 *    pipe (read(2), woken by epoll). A FIFO waits for its first writer
 *    (a read with no writer yet returns 0, which is not its end: Linux
 *    reports POLLHUP to a FIFO reader only once a writer has come and
 *    gone) and ends at end of file after its last writer. Offsets mean
 *    nothing there: start=N and start=-N are refused.
 *  - a regular file on a pseudo file system (procfs, sysfs, debugfs,
 *    tracefs, securityfs, cgroupfs, efivarfs), or one that reports size 0
 *    but reads data, is generated when read: it is read once, from the
 *    start (or offset N), to its end of file, and the stream ends
 *    cleanly. start=end and start=-N are refused: such a file does not
 *    grow, and its size says nothing. One that would block is woken by
 *    epoll (/proc/kmsg) and never ends.
 *  - a regular file whose reads fail with ESPIPE or EAGAIN (a FUSE file
 *    opened as a stream, like a provium `data` file) is read as a pipe.
 */
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

/* What the file's own watch wants: its writes and truncations, and what
 * may mean it was unlinked or renamed away. */
#define FILE_EVENTS (IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
/* What its directory's watch wants: only events that can change what the
 * name refers to (a write to the file is the file watch's business). */
#define NAME_EVENTS (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)

struct follow {
    struct agent *a;
    struct chan *ch;
    char *path, *dir, *base;
    bool by_name;
    bool stream_fd; /* a pipe, FIFO, device or generated file: read(), epoll */
    bool fifo;      /* read() == 0 is its end only after a writer came */
    bool fd_watched;
    int fd;
    dev_t dev;
    ino_t ino;
    uint64_t pos;
    uint64_t seen; /* largest size seen since the (re)start */
    bool drained;  /* the last pread came back short: wait for an event */
    int next_fd;   /* the file now at the name, once fd is drained */
    bool deleted;  /* end once fd is drained */
    struct watch_sub *fsub, *dsub;
};

static void follow_file_event(void *arg, uint32_t mask, const char *name);

/* Watch the inode behind fd: through /proc so that it is the very file
 * we hold even if the name moved on, by name if /proc is not mounted. */
static int
watch_fd_inode(struct follow *f)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
    int err = watch_add(f->a->watch, proc, FILE_EVENTS, follow_file_event, f,
                        &f->fsub);
    if (err == -ENOENT)
        err = watch_add(f->a->watch, f->path, FILE_EVENTS, follow_file_event, f,
                        &f->fsub);
    return err;
}

/* Has the name come to refer to another file, or has ours been deleted? */
static void
check_name(struct follow *f)
{
    struct stat st;

    if (f->next_fd >= 0 || f->deleted)
        return; /* decided already; looked at again after the switch */
    if (stat(f->path, &st) == 0) {
        if (st.st_ino == f->ino && st.st_dev == f->dev)
            return;
        int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
            f->next_fd = fd;
        host_wake(f->ch);
        return;
    }
    if (fstat(f->fd, &st) == 0 && st.st_nlink == 0) {
        f->deleted = true;
        host_wake(f->ch);
    }
    /* Otherwise renamed away: read on, the name may come back. */
}

static void
check_links(struct follow *f)
{
    struct stat st;
    if (fstat(f->fd, &st) == 0 && st.st_nlink == 0) {
        f->deleted = true;
        host_wake(f->ch);
    }
}

static void
follow_file_event(void *arg, uint32_t mask, const char *name)
{
    struct follow *f = arg;

    if (mask & (IN_MODIFY | IN_Q_OVERFLOW)) {
        f->drained = false;
        host_wake(f->ch);
    }
    if (mask & (IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW)) {
        if (f->by_name)
            check_name(f);
        else
            check_links(f);
    }
}

static void
follow_dir_event(void *arg, uint32_t mask, const char *name)
{
    struct follow *f = arg;
    if ((mask & IN_Q_OVERFLOW) ||
        ((mask & NAME_EVENTS) && name && strcmp(name, f->base) == 0))
        check_name(f);
}

static void
fd_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct follow *f = arg;
    reactor_unwatch(r, fd);
    f->fd_watched = false;
    host_wake(f->ch);
}

/* The old file is drained: move to the one now at the name. */
static int
switch_file(struct follow *f)
{
    struct stat st;
    char msg[PROTO_MAX_MSG];

    watch_remove(f->fsub);
    f->fsub = NULL;
    close(f->fd);
    f->fd = f->next_fd;
    f->next_fd = -1;
    if (fstat(f->fd, &st) < 0)
        return -errno;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->pos = 0;
    f->seen = 0;
    f->drained = false;
    snprintf(msg, sizeof(msg), "%s: file rotated, following the new file",
             f->path);
    host_note(f->ch, PROTO_NOTE_ROTATED, (uint64_t)st.st_ino, msg);
    int err = watch_fd_inode(f);
    if (err < 0)
        return err;
    check_name(f); /* it may have moved on again meanwhile */
    return 0;
}

/* Has a writer come to the FIFO since we opened it, and gone? (pipe_poll
 * reports POLLHUP to a reader only then.) */
static bool
fifo_writer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

static ssize_t
read_stream_fd(struct follow *f, void *buf, size_t len)
{
    ssize_t n = read(f->fd, buf, len);
    if (n > 0)
        return n;
    if (n == 0 && !(f->fifo && !fifo_writer_gone(f->fd))) {
        host_end(f->ch, 0, PROTO_END_EOF, NULL);
        return 0;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        return -errno;
    if (!f->fd_watched) {
        int err = reactor_watch(f->a->r, f->fd, REACTOR_IN, fd_ready, f);
        if (err < 0)
            return err;
        f->fd_watched = true;
    }
    return 0;
}

static ssize_t
follow_read(void *src, void *buf, size_t len)
{
    struct follow *f = src;
    struct stat st;
    char msg[PROTO_MAX_MSG];

    if (f->stream_fd)
        return read_stream_fd(f, buf, len);
    /* At the end of the file at the last read, and no event since: no
     * read would find more (see the top). A switch or an end pending
     * reads on: it must find the old file's end itself. */
    if (f->drained && f->next_fd < 0 && !f->deleted)
        return 0;
    for (;;) {
        ssize_t n = pread(f->fd, buf, len, (off_t)f->pos);
        if (n > 0) {
            f->pos += (uint64_t)n;
            if (f->pos > f->seen)
                f->seen = f->pos;
            f->drained = (size_t)n < len;
            return n;
        }
        if (n < 0)
            return errno == EINTR ? 0 : -errno;
        /* At the end of what we hold. */
        if (f->next_fd >= 0) {
            int err = switch_file(f);
            if (err < 0)
                return err;
            continue;
        }
        if (f->deleted) {
            snprintf(msg, sizeof(msg), "%s: file deleted", f->path);
            host_end(f->ch, 0, PROTO_END_DELETED, msg);
            return 0;
        }
        if (fstat(f->fd, &st) < 0)
            return -errno;
        uint64_t size = (uint64_t)st.st_size;
        if (size < f->seen && size < f->pos) {
            snprintf(msg, sizeof(msg),
                     "%s: file truncated (%llu bytes), reading from 0", f->path,
                     (unsigned long long)size);
            host_note(f->ch, PROTO_NOTE_TRUNCATED, size, msg);
            f->pos = 0;
            f->seen = size;
            continue;
        }
        if (size > f->seen)
            f->seen = size;
        return 0;
    }
}

static void
follow_free(void *src)
{
    struct follow *f = src;
    if (!f)
        return;
    watch_remove(f->fsub);
    watch_remove(f->dsub);
    if (f->fd_watched)
        reactor_unwatch(f->a->r, f->fd);
    if (f->fd >= 0)
        close(f->fd);
    if (f->next_fd >= 0)
        close(f->next_fd);
    free(f->path);
    free(f->dir);
    free(f->base);
    free(f);
}

static const struct source_ops follow_ops = {
        .read = follow_read,
        .free = follow_free,
};

static int
split_path(struct follow *f)
{
    char *a = strdup(f->path), *b = strdup(f->path);
    int err = -ENOMEM;
    if (a && b) {
        f->dir = strdup(dirname(a));
        f->base = strdup(basename(b));
        if (f->dir && f->base)
            err = 0;
    }
    free(a);
    free(b);
    return err;
}

/* The pseudo file system fd is on, or NULL. */
static const char *
pseudo_fs(int fd)
{
    struct statfs sfs;

    if (fstatfs(fd, &sfs) < 0)
        return NULL;
    switch ((unsigned long)sfs.f_type) {
    case PROC_SUPER_MAGIC:
        return "procfs";
    case SYSFS_MAGIC:
        return "sysfs";
    case DEBUGFS_MAGIC:
        return "debugfs";
    case TRACEFS_MAGIC:
        return "tracefs";
    case SECURITYFS_MAGIC:
        return "securityfs";
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
        return "cgroupfs";
    case EFIVARFS_MAGIC:
        return "efivarfs";
    default:
        return NULL;
    }
}

enum kind { K_FILE, K_PIPE, K_GENERATED };

/* How to read a regular file: as a growing file, or not (above). */
static enum kind
regular_kind(int fd, const struct stat *st, const char **why)
{
    struct stat again;
    char b;
    ssize_t n;

    if ((*why = pseudo_fs(fd)))
        return K_GENERATED;
    if (st->st_size > 0)
        return K_FILE;
    /* Size 0: empty, or generated. One byte tells (and is read again). */
    n = pread(fd, &b, 1, 0);
    if (n < 0 && (errno == ESPIPE || errno == EAGAIN))
        return K_PIPE;
    if (n == 1 && fstat(fd, &again) == 0 && again.st_size == 0) {
        *why = "a file of size 0 that has data";
        return K_GENERATED;
    }
    return K_FILE;
}

void
follow_open(struct agent *a, struct chan *ch, const union proto_body *body)
{
    const struct proto_open *req = &body->open;
    struct follow *f = calloc(1, sizeof(*f));
    struct stat st;
    const char *why = NULL;
    char msg[PROTO_MAX_MSG] = "";
    int err = -ENOMEM;
    enum kind kind = K_PIPE;

    if (!f)
        goto err;
    f->a = a;
    f->ch = ch;
    f->fd = f->next_fd = -1;
    f->by_name = !(req->flags & PROTO_TAIL_FOLLOW_DESCRIPTOR);
    if (!(f->path = strdup(req->path)) || (err = split_path(f)) < 0)
        goto err_free;
    f->fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f->fd < 0 || fstat(f->fd, &st) < 0) {
        err = -errno;
        goto err_free;
    }
    if (S_ISDIR(st.st_mode)) {
        err = -EISDIR;
        goto err_free;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    if (S_ISREG(st.st_mode))
        kind = regular_kind(f->fd, &st, &why);
    if (kind != K_FILE) {
        bool generated = kind == K_GENERATED;
        f->stream_fd = true;
        f->fifo = S_ISFIFO(st.st_mode);
        err = -EINVAL;
        if (generated && req->start == PROTO_START_END) {
            snprintf(msg, sizeof(msg),
                     "%.600s: a file on %s is generated when read and "
                     "never grows: start=end would wait forever; use "
                     "start=beginning to read it once to its end",
                     req->path, why);
            goto err_free;
        }
        if (generated && req->start == PROTO_START_BACK) {
            snprintf(msg, sizeof(msg),
                     "%.600s: on %s, the size of a file says nothing: "
                     "start=-N does not apply (use start=beginning or "
                     "start=N)",
                     req->path, why);
            goto err_free;
        }
        if (!generated && (req->start == PROTO_START_BACK ||
                           req->start == PROTO_START_OFFSET)) {
            snprintf(msg, sizeof(msg),
                     "%.600s: %s has no offsets: start=N and start=-N do "
                     "not apply (it is read as a pipe; use start=end)",
                     req->path,
                     f->fifo               ? "a FIFO"
                     : S_ISCHR(st.st_mode) ? "a character device"
                                           : "a stream");
            goto err_free;
        }
        if (req->start == PROTO_START_OFFSET &&
            lseek(f->fd, (off_t)req->offset, SEEK_SET) < 0) {
            err = -errno;
            goto err_free;
        }
        host_ack(ch, req->start == PROTO_START_OFFSET ? req->offset : 0,
                 &follow_ops, f);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    switch (req->start) {
    case PROTO_START_END:
        f->pos = size;
        break;
    case PROTO_START_BEGINNING:
        f->pos = 0;
        break;
    case PROTO_START_OFFSET:
        f->pos = req->offset;
        break;
    default:
        f->pos = size > req->offset ? size - req->offset : 0;
        break;
    }
    f->seen = size;
    if ((err = watch_fd_inode(f)) < 0 ||
        (f->by_name && (err = watch_add(a->watch, f->dir, NAME_EVENTS,
                                        follow_dir_event, f, &f->dsub)) < 0)) {
        snprintf(msg, sizeof(msg), "%.600s: cannot watch it: %s", req->path,
                 strerror(-err));
        goto err_free;
    }
    host_ack(ch, f->pos, &follow_ops, f);
    return;
err_free:
    follow_free(f);
err:
    if (msg[0])
        host_error(ch, err, "%s", msg);
    else
        host_error(ch, err, "%s: %s", req->path, strerror(-err));
}
