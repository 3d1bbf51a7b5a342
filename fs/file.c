/*
 * file.c - open files: what an open of each node gets (fi->fh points at a
 * struct file), and read, write, poll and release through the file's ops
 * table, one per kind (libfuse's lo_oper, Redis's ConnectionType):
 *
 *  - live files are opened FOPEN_DIRECT_IO|FOPEN_STREAM: reads reach us
 *    whatever st_size says and their result is read(2)'s result; there is
 *    no file position, so processes sharing the open (fork, dup) never
 *    serialise on f_pos_lock behind a parked read (reference/fuse.md §3):
 *    streams/<id>/data (data.c's data_file_ops) and every ctl (ctl.c's
 *    ctl_file_ops, whatever owns the ctl: a slot, a VM, the mount);
 *  - history views are regular files with a true, growing st_size, read
 *    at any offset, never blocking (tail -f, less, grep work):
 *    streams/<id>/log, procs/<n>/stdout|stderr and a VM's console
 *    (history.c); direct_io, except `log` once its stream is established:
 *    cached, with the stale end page invalidated as the history grows
 *    (history.c says how);
 *  - generated text (README, clone, info, site, streams, status, cmdline)
 *    is generated once at open, so one open reads a consistent snapshot
 *    (text_file_ops, here).
 * Files that are not writable refuse a write open with EACCES even
 * without default_permissions (then the kernel checks no mode bits).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "fs.h"

#define FOPEN_DIRECT_IO_BIT (1u << 0) /* include/uapi/linux/fuse.h */
#define FOPEN_STREAM_BIT (1u << 4)

/* struct fuse_open_out of the kernel ABI (libfuse3-dev does not install
 * fuse_kernel.h): what fuse_reply_open sends, with flags we choose. */
struct open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id;
};

/* Reply to an open with FOPEN_DIRECT_IO|FOPEN_STREAM (libfuse 3.14 has no
 * fuse_file_info bit for FOPEN_STREAM). -ENOENT: the open was interrupted
 * and no release will come. */
static int
reply_live_open(fuse_req_t req, uint64_t fh)
{
    struct open_out out = {
            .fh = fh,
            .open_flags = FOPEN_DIRECT_IO_BIT | FOPEN_STREAM_BIT,
    };
    struct iovec iov = {.iov_base = &out, .iov_len = sizeof(out)};

    return fuse_reply_iov(req, &iov, 1);
}

static struct fs *
req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static struct file *
fh(struct fuse_file_info *fi)
{
    return (struct file *)(uintptr_t)fi->fh;
}

static void
file_free(struct file *f)
{
    if (!f)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else if (f->fs)
        f->fs->files = f->next;
    if (f->next)
        f->next->prev = f->prev;
    if (f->ops && f->ops->release)
        f->ops->release(f);
    free(f->text);
    free(f);
}

/* ---- generated text ------------------------------------------------- */

void
file_reply_text(fuse_req_t req, const char *text, size_t len, size_t size,
                off_t off)
{
    if (off < 0 || (size_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > len - (size_t)off)
        size = len - (size_t)off;
    fuse_reply_buf(req, text + off, size);
}

static void
text_read(struct file *f, fuse_req_t req, size_t size, off_t off, int flags)
{
    file_reply_text(req, f->text, f->len, size, off);
}

static const struct file_ops text_file_ops = {
        .read = text_read,
};

/* Generate a text node into f. */
static int
text_open(struct file *f, struct ino n, struct slot *sl, struct vm *vm,
          struct vmproc *p, uid_t uid)
{
    f->ops = &text_file_ops;
    if (!(f->text = malloc(FS_TEXT_MAX)))
        return -ENOMEM;
    f->text[0] = 0;
    switch (n.node) {
    case N_README:
        f->len = (size_t)snprintf(f->text, FS_TEXT_MAX, "%s", tree_readme);
        break;
    case N_VM_INFO:
        f->len = vm_info(vm, f->text, FS_TEXT_MAX);
        break;
    case N_VM_STREAMS:
        f->len = vm_streams(vm, uid, f->text, FS_TEXT_MAX);
        break;
    case N_S_INFO:
        f->len = slot_info(sl, f->text, FS_TEXT_MAX);
        break;
    case N_S_SITE:
        f->len = 0;
        if (sl->site) {
            text_append(f->text, FS_TEXT_MAX, sl->site);
            f->len = text_appendf(f->text, FS_TEXT_MAX, "\n");
        }
        break;
    case N_PROC_STATUS:
        f->len = procs_status(p, f->text, FS_TEXT_MAX);
        break;
    case N_PROC_CMDLINE:
        f->len = p->cmdlen < FS_TEXT_MAX ? p->cmdlen : FS_TEXT_MAX;
        memcpy(f->text, p->cmdline, f->len);
        break;
    default:
        return -EINVAL;
    }
    if (f->len >= FS_TEXT_MAX)
        f->len = strnlen(f->text, FS_TEXT_MAX);
    return 0;
}

/* `cat clone`: a new slot, its id as the text. */
static int
clone_open(fuse_req_t req, struct fs *fs, struct file *f)
{
    struct slot *sl;
    int rc;

    f->ops = &text_file_ops;
    rc = slot_new(fs, access_new_uid(fs, req), access_new_gid(fs, req), &sl);
    if (rc < 0)
        return rc;
    if (!(f->text = malloc(32)))
        return -ENOMEM; /* the slot is reclaimed in 30 s */
    f->len = (size_t)snprintf(f->text, 32, "%" PRIu64 "\n", sl->id);
    return 0;
}

/* ---- the FUSE handlers --------------------------------------------- */

static bool
writable(enum node n)
{
    return n == N_CTL || n == N_VM_CTL || n == N_VM_CONSOLE || n == N_S_CTL;
}

void
file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    struct ino n = tree_decode(ino);
    struct file *f = NULL;
    struct slot *sl = NULL;
    struct vm *vm = NULL;
    struct vmproc *p = NULL;
    struct stat st;
    uid_t uid = access_uid(req);
    bool live = false, cached = false;
    int rc;

    if ((rc = tree_stat(fs, n, &st)) < 0)
        goto fail;
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto fail;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY && !writable(n.node)) {
        rc = -EACCES;
        goto fail;
    }
    if (n.node >= N_VM && n.node <= N_PROC_STDERR)
        vm = vm_by_id(fs, n.a);
    if (n.node >= N_PROC && n.node <= N_PROC_STDERR)
        p = procs_find(vm, n.b);
    if (n.node >= N_S && n.node <= N_S_INFO)
        sl = slot_find(fs, n.b);
    if ((rc = access_file(fs, n.node, vm, sl, p, uid)) < 0)
        goto fail;
    if (!(f = calloc(1, sizeof(*f)))) {
        rc = -ENOMEM;
        goto fail;
    }
    f->fs = fs;
    f->next = fs->files;
    if (fs->files)
        fs->files->prev = f;
    fs->files = f;
    switch (n.node) {
    case N_CLONE:
        rc = clone_open(req, fs, f);
        break;
    case N_CTL:
        rc = global_open(fs, f);
        live = true;
        break;
    case N_VM_CTL:
        rc = vmctl_open(vm, f);
        live = true;
        break;
    case N_S_CTL:
        rc = slot_ctl_open(sl, f);
        live = true;
        break;
    case N_S_DATA:
        rc = data_open(fs, sl->s, f);
        live = true;
        break;
    case N_S_LOG:
        cached = history_open_log(f, sl);
        break;
    case N_PROC_STDOUT:
    case N_PROC_STDERR:
        history_open(f, p->out[n.node == N_PROC_STDOUT ? 0 : 1]);
        break;
    case N_VM_CONSOLE:
        history_open_console(f, vm);
        break;
    default:
        rc = text_open(f, n, sl, vm, p, uid);
        break;
    }
    if (rc < 0)
        goto fail;
    if (live) {
        if (reply_live_open(req, (uintptr_t)f) == -ENOENT)
            file_free(f); /* interrupted: no release will come */
        return;
    }
    fi->fh = (uintptr_t)f;
    /* A cached log keeps its pages across opens: history.c invalidates
     * exactly what went stale. */
    fi->direct_io = !cached;
    fi->keep_cache = cached;
    if (fuse_reply_open(req, fi) == -ENOENT)
        file_free(f);
    return;
fail:
    file_free(f);
    fuse_reply_err(req, -rc);
}

void
file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
          struct fuse_file_info *fi)
{
    struct file *f = fh(fi);

    if (size > FS_BUF_SIZE)
        size = FS_BUF_SIZE;
    f->ops->read(f, req, size, off, fi->flags);
}

void
file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
           off_t off, struct fuse_file_info *fi)
{
    struct file *f = fh(fi);
    ssize_t n = f->ops->write ? f->ops->write(f, req, buf, size) : -EBADF;

    /* What was taken, not what was asked (SPEC §6.3): every file is
     * direct_io, so the kernel hands a short count to write(2) as it is
     * (fuse_direct_io stops at the first short reply). */
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_write(req, (size_t)n);
}

void
file_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
          struct fuse_pollhandle *ph)
{
    struct file *f = fh(fi);

    if (f->ops->poll) {
        f->ops->poll(f, req, ph);
        return;
    }
    /* History and text never block. */
    fuse_pollhandle_destroy(ph);
    fuse_reply_poll(req, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
}

void
file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    file_free(fh(fi));
    fuse_reply_err(req, 0);
}

void
file_free_all(struct fs *fs)
{
    while (fs->files)
        file_free(fs->files);
}
