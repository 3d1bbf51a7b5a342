/*
 * mount.c - the FUSE session, driven by our reactor instead of libfuse's
 * loop: mount, the request loop, signals, shutdown and unmount.
 *
 * The session fd (/dev/fuse) is non-blocking: a request the kernel
 * reported can be withdrawn before we read it (its caller got a fatal
 * signal), and a blocking read would then hang the whole daemon
 * (reference/fuse.md §1.3). On readable we receive and process requests
 * in bounded batches into one reused buffer, so the engines' fds are not
 * starved by a busy mount; epoll is level-triggered and calls us again
 * for the rest.
 *
 * Shutdown (SIGINT, SIGTERM, or the mount going away): every stream and
 * VM is ended, which answers running ops and wakes blocked readers; the
 * VMs' processes are ended and their agents stopped (bounded, vm.c); a
 * few loop turns let the deferred answers go out; whatever is still
 * parked is answered end-of-file; only then is the session unmounted
 * (libfuse closes /dev/fuse first, then detaches the mount).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define MOUNT_BATCH 64
/* Shutdown waits at most this long for the VMs to end their processes:
 * more than a guest's TERM-grace-KILL (3 s) or the host agent's stop
 * (3 s, then SIGKILL and 1 s). */
#define MOUNT_STOP_MAX (6 * USEC_PER_SEC)
#define MOUNT_NOTIFIER_MAX (2 * USEC_PER_SEC)
static struct fuse_buf mount_buf;

static void
mount_init(void *userdata, struct fuse_conn_info *conn)
{
    /* Writes are commands, never cached; replies are ours to order. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    send_init(userdata, conn);
}

static const struct fuse_lowlevel_ops mount_ops = {
        .init = mount_init,
        .lookup = tree_lookup,
        .getattr = tree_getattr,
        .setattr = tree_setattr,
        .opendir = tree_opendir,
        .readdir = tree_readdir,
        .readdirplus = tree_readdirplus,
        .releasedir = tree_releasedir,
        .rmdir = tree_rmdir,
        .open = file_open,
        .read = file_read,
        .write = file_write,
        .poll = file_poll,
        .release = file_release,
};

int
mount_new(struct fs *fs, struct fuse_args *args)
{
    fs->se = fuse_session_new(args, &mount_ops, sizeof(mount_ops), fs);
    if (!fs->se)
        return -EINVAL; /* libfuse printed why (bad -o option) */
    if (fuse_session_mount(fs->se, fs->opt->mountpoint) != 0) {
        fuse_session_destroy(fs->se);
        fs->se = NULL;
        return -EIO;
    }
    return 0;
}

static void
mount_io(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct fs *fs = arg;

    for (int i = 0; i < MOUNT_BATCH && !fs->stopping; i++) {
        int rc = fuse_session_receive_buf(fs->se, &mount_buf);
        if (rc == -EINTR)
            continue;
        if (rc == -EAGAIN)
            return;
        if (rc <= 0) {
            /* 0: the mount is gone (umount, fusermount3 -u, abort);
             * anything else: /dev/fuse failed. Either way we are done. */
            mount_shutdown(fs);
            return;
        }
        fuse_session_process_buf(fs->se, &mount_buf);
    }
}

static void
mount_signal(struct reactor *r, void *arg)
{
    mount_shutdown(arg);
}

int
mount_start(struct fs *fs)
{
    int fd = fuse_session_fd(fs->se), rc;

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        return -errno;
    /* Signals first: the reply threads inherit a mask that blocks them. */
    if ((rc = reactor_signal(fs->r, SIGINT, mount_signal, fs)) < 0 ||
        (rc = reactor_signal(fs->r, SIGTERM, mount_signal, fs)) < 0 ||
        (rc = send_start(fs, fs->opt->reply_threads)) < 0 ||
        (rc = reactor_watch(fs->r, fd, REACTOR_IN, mount_io, fs)) < 0)
        return rc;
    /* A reader that dies mid-reply must not take the daemon with it. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* The notifier may be inside an invalidation that waits for a page a
 * READ in flight holds: serve requests (boundedly) until it is out, or
 * joining it would wait forever (and so would the READ). */
static void
mount_serve_notifier(struct fs *fs)
{
    uint64_t deadline = clock_now() + MOUNT_NOTIFIER_MAX;
    struct pollfd p = {.events = POLLIN};

    if (!fs->se)
        return;
    p.fd = fuse_session_fd(fs->se);
    while (send_calling(fs) && clock_now() < deadline) {
        if (poll(&p, 1, 10) <= 0)
            continue;
        if (fuse_session_receive_buf(fs->se, &mount_buf) > 0)
            fuse_session_process_buf(fs->se, &mount_buf);
    }
}

static void
shutdown_timeout(struct reactor *r, void *arg)
{
    reactor_stop(r);
}

void
mount_shutdown(struct fs *fs)
{
    if (fs->stopping)
        return;
    fs->stopping = true;
    /* Requests wait now until the unmount answers them: not served, and
     * not left to wake the (level-triggered) loop over and over. */
    if (fs->se)
        reactor_unwatch(fs->r, fuse_session_fd(fs->se));
    slot_close_all(fs, NULL);
    /* VMs end their processes and agents first (vm.c), boundedly: the
     * loop runs on until they are done, or MOUNT_STOP_MAX. */
    if (vm_del_all(fs) || reactor_timer_start(fs->r, &fs->stop_timer,
                                              clock_now() + MOUNT_STOP_MAX,
                                              shutdown_timeout, fs) < 0)
        reactor_stop(fs->r);
}

void
mount_finish(struct fs *fs)
{
    reactor_timer_stop(fs->r, &fs->stop_timer);
    vm_stop_now(fs);
    /* Closing queued the deferred wake-ups that answer blocked readers
     * (each holds a reference on its stream): let them run, boundedly and
     * without waiting (the session fd is no longer served), before
     * whatever is left is answered end-of-file. */
    for (int i = 0; i < 8; i++)
        reactor_run_once(fs->r, 0);
    mount_serve_notifier(fs);
    park_flush_all(fs);
    /* Replies queued go out and the threads end before the fd does. */
    send_stop(fs);
    if (fs->se) {
        reactor_unwatch(fs->r, fuse_session_fd(fs->se));
        fuse_session_unmount(fs->se);
    }
}

void
mount_free(struct fs *fs)
{
    if (fs->se)
        fuse_session_destroy(fs->se);
    fs->se = NULL;
    send_free(fs);
    free(mount_buf.mem);
    mount_buf.mem = NULL;
}
