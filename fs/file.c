/*
 * file.c - open files: what an open of each node gets (fi->fh points at a
 * struct file), and read, write, poll and release by kind.
 *
 * Three shapes of file:
 *  - live files (streams/<id>/data and every ctl) are opened
 *    FOPEN_DIRECT_IO|FOPEN_STREAM: reads reach us whatever st_size says
 *    and their result is read(2)'s result; there is no file position, so
 *    processes sharing the open (fork, dup) never serialise on f_pos_lock
 *    behind a parked read (reference/fuse.md §3);
 *  - history views (streams/<id>/log, procs/<n>/stdout|stderr, a VM's
 *    console) are regular files with a true, growing st_size, read at any
 *    offset, never blocking; direct_io so that no stale page cache hides
 *    the growth (tail -f, less, grep work);
 *  - generated text (README, info, site, streams, status, cmdline) is
 *    generated once at open, so one open reads a consistent snapshot.
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

struct file {
    struct fs *fs;
    struct file *prev, *next; /* fs->files */
    enum node node;
    struct data *data;
    struct slot_ctl *sctl;
    struct vmctl *vctl;
    struct global *gctl;
    struct stream *s; /* history views */
    struct vm *vm;    /* console */
    char *text;       /* generated text (NULL: README) */
    size_t len;
};

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
file_free(struct file *h)
{
    if (!h)
        return;
    if (h->prev)
        h->prev->next = h->next;
    else if (h->fs)
        h->fs->files = h->next;
    if (h->next)
        h->next->prev = h->prev;
    data_free(h->data);
    slot_ctl_free(h->sctl);
    vmctl_free(h->vctl);
    global_free(h->gctl);
    stream_unref(h->s);
    vm_unref(h->vm);
    free(h->text);
    free(h);
}

static bool
writable(enum node n)
{
    return n == N_CTL || n == N_VM_CTL || n == N_VM_CONSOLE || n == N_S_CTL;
}

/* Generate a text node into h. */
static int
gen_text(struct fs *fs, struct file *h, struct ino n, struct slot *sl,
         struct vm *vm, struct vmproc *p, uid_t uid)
{
    if (!(h->text = malloc(FS_TEXT_MAX)))
        return -ENOMEM;
    h->text[0] = 0;
    switch (n.node) {
    case N_README:
        h->len = (size_t)snprintf(h->text, FS_TEXT_MAX, "%s", tree_readme);
        break;
    case N_VM_INFO:
        h->len = vm_info(vm, h->text, FS_TEXT_MAX);
        break;
    case N_VM_STREAMS:
        h->len = vm_streams(vm, uid, h->text, FS_TEXT_MAX);
        break;
    case N_S_INFO:
        h->len = slot_info(sl, h->text, FS_TEXT_MAX);
        break;
    case N_S_SITE:
        h->len = 0;
        if (sl->site) {
            text_append(h->text, FS_TEXT_MAX, sl->site);
            h->len = text_appendf(h->text, FS_TEXT_MAX, "\n");
        }
        break;
    case N_PROC_STATUS:
        h->len = procs_status(p, h->text, FS_TEXT_MAX);
        break;
    case N_PROC_CMDLINE:
        h->len = p->cmdlen < FS_TEXT_MAX ? p->cmdlen : FS_TEXT_MAX;
        memcpy(h->text, p->cmdline, h->len);
        break;
    default:
        return -EINVAL;
    }
    if (h->len >= FS_TEXT_MAX)
        h->len = strnlen(h->text, FS_TEXT_MAX);
    return 0;
}

static int
clone_open(fuse_req_t req, struct fs *fs, struct file *h)
{
    struct slot *sl;
    int rc;

    rc = slot_new(fs, access_new_uid(fs, req), access_new_gid(fs, req), &sl);
    if (rc < 0)
        return rc;
    if (!(h->text = malloc(32)))
        return -ENOMEM; /* the slot is reclaimed in 30 s */
    h->len = (size_t)snprintf(h->text, 32, "%" PRIu64 "\n", sl->id);
    return 0;
}

void
file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    struct ino n = tree_decode(ino);
    struct file *h = NULL;
    struct slot *sl = NULL;
    struct vm *vm = NULL;
    struct vmproc *p = NULL;
    struct stat st;
    uid_t uid = access_uid(req);
    char why[256];
    bool live = false;
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
    /* The kernel checked the modes access_attr() gave; the owners a
     * mode cannot name are checked here (access.c). */
    if (n.node >= N_VM && n.node <= N_PROC_STDERR)
        vm = vm_by_id(fs, n.a);
    if (n.node >= N_PROC && n.node <= N_PROC_STDERR) {
        p = procs_find(vm, n.b);
        if (access_proc(vm, p, uid, why, sizeof(why)) < 0) {
            rc = -EACCES;
            goto fail;
        }
    }
    if ((n.node == N_VM_CTL || n.node == N_VM_CONSOLE) &&
        access_vm(vm, uid, why, sizeof(why)) < 0) {
        rc = -EACCES;
        goto fail;
    }
    if (n.node >= N_S && n.node <= N_S_INFO) {
        sl = slot_find(fs, n.b);
        if (!access_slot(sl, uid)) {
            rc = -EACCES;
            goto fail;
        }
    }
    if (!(h = calloc(1, sizeof(*h)))) {
        rc = -ENOMEM;
        goto fail;
    }
    h->node = n.node;
    h->fs = fs;
    h->next = fs->files;
    if (fs->files)
        fs->files->prev = h;
    fs->files = h;
    switch (n.node) {
    case N_CLONE:
        rc = clone_open(req, fs, h);
        break;
    case N_CTL:
        rc = global_open(fs, &h->gctl);
        live = true;
        break;
    case N_VM_CTL:
        rc = vmctl_open(vm, &h->vctl);
        live = true;
        break;
    case N_S_CTL:
        rc = slot_ctl_open(sl, &h->sctl);
        live = true;
        break;
    case N_S_DATA:
        rc = data_open(fs, sl->s, &h->data);
        live = true;
        break;
    case N_S_LOG:
        h->s = stream_ref(sl->s);
        break;
    case N_PROC_STDOUT:
    case N_PROC_STDERR:
        h->s = p->out[n.node == N_PROC_STDOUT ? 0 : 1];
        if (h->s)
            stream_ref(h->s);
        break;
    case N_VM_CONSOLE:
        h->vm = vm;
        vm->refs++;
        break;
    default:
        rc = gen_text(fs, h, n, sl, vm, p, uid);
        break;
    }
    if (rc < 0)
        goto fail;
    if (live) {
        if (reply_live_open(req, (uintptr_t)h) == -ENOENT)
            file_free(h); /* interrupted: no release will come */
        return;
    }
    fi->fh = (uintptr_t)h;
    fi->direct_io = 1;
    if (fuse_reply_open(req, fi) == -ENOENT)
        file_free(h);
    return;
fail:
    file_free(h);
    fuse_reply_err(req, -rc);
}

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
reply_history(fuse_req_t req, struct fs *fs, ssize_t n)
{
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, fs->buf, (size_t)n);
}

void
file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
          struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    struct file *h = fh(fi);

    if (size > FS_BUF_SIZE)
        size = FS_BUF_SIZE;
    if (h->data) {
        data_read(h->data, req, size, fi->flags);
    } else if (h->sctl) {
        ctl_read(slot_ctl_ctl(h->sctl), req, size, fi->flags);
    } else if (h->vctl) {
        ctl_read(vmctl_ctl(h->vctl), req, size, fi->flags);
    } else if (h->gctl) {
        ctl_read(global_ctl(h->gctl), req, size, fi->flags);
    } else if (h->s) {
        reply_history(
                req, fs,
                off < 0 ? -EINVAL
                        : stream_pread(h->s, fs->buf, size, (uint64_t)off));
    } else if (h->node == N_VM_CONSOLE) {
        if (h->vm->console && off >= 0) {
            reply_history(req, fs,
                          console_pread(h->vm->console, fs->buf, size,
                                        (uint64_t)off));
            return;
        }
        fuse_reply_buf(req, NULL, 0);
    } else if (h->text) {
        file_reply_text(req, h->text, h->len, size, off);
    } else {
        fuse_reply_buf(req, NULL, 0); /* a process without captured output */
    }
}

void
file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
           off_t off, struct fuse_file_info *fi)
{
    struct file *h = fh(fi);
    struct ctl *c = h->sctl   ? slot_ctl_ctl(h->sctl)
                    : h->vctl ? vmctl_ctl(h->vctl)
                    : h->gctl ? global_ctl(h->gctl)
                              : NULL;
    int rc = -EBADF;

    /* Every command queues a reply: none beyond the cap (SPEC §6.3). */
    if (c && (rc = ctl_admit(c)) < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (h->sctl)
        rc = slot_ctl_write(h->sctl, req, buf, size);
    else if (h->vctl)
        rc = vmctl_write(h->vctl, req, buf, size);
    else if (h->gctl)
        rc = global_write(h->gctl, req, buf, size);
    else if (h->node == N_VM_CONSOLE) {
        rc = -ENODEV;
        /* What was queued, not what was asked (SPEC §6.3): the file is
         * direct_io, so the kernel hands a short count to write(2) as
         * it is (fuse_direct_io stops at the first short reply) and the
         * writer's own loop retries the rest; EAGAIN when nothing fit. */
        if (h->vm->console && !h->vm->gone) {
            rc = console_write(h->vm->console, buf, size);
            if (rc >= 0) {
                fuse_reply_write(req, (size_t)rc);
                return;
            }
        }
    }
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, size);
}

void
file_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
          struct fuse_pollhandle *ph)
{
    struct file *h = fh(fi);

    if (h->data) {
        data_poll(h->data, req, ph);
        return;
    }
    if (h->sctl || h->vctl || h->gctl) {
        ctl_poll(h->sctl   ? slot_ctl_ctl(h->sctl)
                 : h->vctl ? vmctl_ctl(h->vctl)
                           : global_ctl(h->gctl),
                 req, ph);
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
