/*
 * history.c - the regular-file views of a whole history (SPEC §4.2):
 * streams/<id>/log, vms/<name>/procs/<n>/stdout|stderr (a stream's
 * spool) and vms/<name>/console (the VM's console history across its
 * sessions, which also takes writes to the guest's console).
 *
 * st_size is the history's size (tree.c); a read at any offset returns
 * history and never blocks, so `tail -f` (which polls st_size on FUSE,
 * reference/fuse.md §5), `less` and `grep` work. The files are direct_io
 * (file.c): no stale page cache hides the growth.
 *
 * Ownership: a view holds a reference on its stream (a closed stream's
 * log stays readable while open) or on its VM (the console history goes
 * with the VM's removal: reads then see end of file, writes ENODEV).
 */
#include <errno.h>

#include "fs.h"

static void
reply_history(fuse_req_t req, struct fs *fs, ssize_t n)
{
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, fs->buf, (size_t)n);
}

/* ---- a stream's history: log, procs/<n>/stdout|stderr --------------- */

static void
stream_view_read(struct file *f, fuse_req_t req, size_t size, off_t off,
                 int flags)
{
    if (!f->s) {
        fuse_reply_buf(req, NULL, 0); /* a process without its output */
        return;
    }
    reply_history(
            req, f->fs,
            off < 0 ? -EINVAL
                    : stream_pread(f->s, f->fs->buf, size, (uint64_t)off));
}

static void
stream_view_release(struct file *f)
{
    stream_unref(f->s);
}

static const struct file_ops stream_view_ops = {
        .read = stream_view_read,
        .release = stream_view_release,
};

void
history_open(struct file *f, struct stream *s)
{
    f->ops = &stream_view_ops;
    f->s = s ? stream_ref(s) : NULL;
}

/* ---- a VM's console ------------------------------------------------- */

static void
console_view_read(struct file *f, fuse_req_t req, size_t size, off_t off,
                  int flags)
{
    if (!f->vm->console || off < 0) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    reply_history(
            req, f->fs,
            console_pread(f->vm->console, f->fs->buf, size, (uint64_t)off));
}

/* What was queued, not what was asked (SPEC §6.3): the writer's own loop
 * retries the rest; EAGAIN when nothing fit. */
static ssize_t
console_view_write(struct file *f, fuse_req_t req, const char *buf, size_t size)
{
    if (!f->vm->console || f->vm->gone)
        return -ENODEV;
    return console_write(f->vm->console, buf, size);
}

static void
console_view_release(struct file *f)
{
    vm_unref(f->vm);
}

static const struct file_ops console_view_ops = {
        .read = console_view_read,
        .write = console_view_write,
        .release = console_view_release,
};

void
history_open_console(struct file *f, struct vm *vm)
{
    f->ops = &console_view_ops;
    f->vm = vm;
    vm->refs++;
}
