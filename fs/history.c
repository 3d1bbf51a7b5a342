/*
 * history.c - the regular-file views of a whole history (SPEC §4.2):
 * streams/<id>/log, vms/<name>/procs/<n>/stdout|stderr (a stream's
 * spool) and vms/<name>/console (the VM's console history across its
 * sessions, which also takes writes to the guest's console).
 *
 * st_size is the history's size (tree.c); a read at any offset returns
 * history and never blocks, so `tail -f` (which polls st_size on FUSE,
 * reference/fuse.md §5), `less` and `grep` work. Replies are spans of the
 * spool sent by send.c (spliced, not copied by us).
 *
 * The page cache of `log`. A history never changes below its size, so
 * the kernel may cache `log`: a second `grep` of it reads the page cache
 * and never asks us (a direct_io view costs a round trip per read). It
 * is opened cached with keep_cache once its stream is established (the
 * slot is open: a slot whose open fails gets another stream later), and
 * the connection runs with explicit invalidation (send_init): a size
 * change invalidates nothing by itself. What can go stale is the kernel's
 * page holding the end of the file: a reply that ends inside a page
 * leaves zeros after its end, and so does the kernel itself whenever the
 * size it knows changes (truncate_pagecache zeroes the page holding the
 * new size from there on, growth included). So, per log (struct
 * logcache, allocated at the first cached open):
 *
 *  - `shown` is the largest st_size the kernel was given (tree.c asks
 *    history_log_size for every attribute reply), and replies never go
 *    past it: no page holds history past a size the kernel will be shown
 *    later, so its zeroing at a new size never hits history;
 *  - a reply that ends at `shown` inside a page marks that page as
 *    cached short (`tail_cached`);
 *  - before a larger size is shown, a page cached short is invalidated
 *    (fuse_lowlevel_notify_inval_inode from its page on, send_inval: on
 *    the notifier thread, because it locks each page and a page is
 *    locked while a READ of it is in flight). Until that is done st_size
 *    stays `shown`. A READ of that page already in flight holds its lock,
 *    so the invalidation waits for the reply and drops the page after it;
 *    a READ after the invalidation started may cache it short again: it
 *    is marked again and invalidated again before the size moves.
 *
 * A quiet reader of the stream seeked to `shown` starts the invalidation
 * as soon as the history grows (so tail -f sees the growth at its next
 * poll); a stat that finds the growth first starts it too.
 *
 * Ownership: a view holds a reference on its stream (a closed stream's
 * log stays readable while open) or on its VM (the console history goes
 * with the VM's removal: reads then see end of file, writes ENODEV). A
 * logcache is held by its slot, by each cached open and by an
 * invalidation in flight; it holds the stream through its quiet reader.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs.h"

#define LOG_PAGE 4096ULL /* the kernel's page: the unit a cache holds */

struct logcache {
    struct fs *fs;
    unsigned refs;
    fuse_ino_t ino;
    struct stream *s;
    struct stream_reader *watch; /* quiet; at `shown` while tail_cached */
    uint64_t shown;   /* the largest st_size shown; replies stop there */
    bool tail_cached; /* the page holding `shown` may be cached short */
    bool busy;        /* an invalidation of it is in flight */
};

static void logcache_kick(struct logcache *lc);

static void
logcache_unref(struct logcache *lc)
{
    if (!lc || --lc->refs > 0)
        return;
    stream_reader_free(lc->watch);
    free(lc);
}

static void
logcache_wake(struct reactor *r, void *arg)
{
    struct logcache *lc = arg;

    if (lc->tail_cached && !lc->busy && stream_size(lc->s) > lc->shown)
        logcache_kick(lc);
}

/* Be woken once the history grows past what the kernel was shown. */
static void
logcache_watch(struct logcache *lc)
{
    stream_reader_seek(lc->watch, lc->shown);
    if (stream_state(lc->s) == STREAM_LIVE)
        stream_reader_notify(lc->watch, logcache_wake, lc);
}

static void
logcache_done(void *arg, int rc)
{
    struct logcache *lc = arg;

    lc->busy = false;
    /* Cached short again meanwhile (a READ after the invalidation had
     * passed the page, or one it waited for: which, we cannot tell). */
    if (lc->tail_cached) {
        if (stream_size(lc->s) > lc->shown)
            logcache_kick(lc);
        else
            logcache_watch(lc);
    }
    logcache_unref(lc);
}

/* The history grew past `shown` while its page may be cached short: drop
 * the kernel's pages from that page on; the size moves once done. */
static void
logcache_kick(struct logcache *lc)
{
    if (send_inval(lc->fs, lc->ino, (off_t)(lc->shown & ~(LOG_PAGE - 1)), 0,
                   logcache_done, lc) < 0)
        return; /* st_size stays; tried again at the next stat */
    lc->busy = true;
    lc->tail_cached = false;
    lc->refs++;
    stream_reader_notify(lc->watch, NULL, NULL);
}

/* A reply to a cached READ ends at end (at most `shown`). */
static void
logcache_record(struct logcache *lc, uint64_t end)
{
    if (end != lc->shown || end % LOG_PAGE == 0 || lc->tail_cached)
        return;
    lc->tail_cached = true;
    if (!lc->busy)
        logcache_watch(lc);
}

uint64_t
history_log_size(struct slot *sl)
{
    struct logcache *lc = sl->lc;
    uint64_t size = stream_size(sl->s);

    if (!lc || size == lc->shown)
        return size;
    if (lc->tail_cached && !lc->busy)
        logcache_kick(lc);
    if (!lc->tail_cached && !lc->busy)
        lc->shown = size;
    return lc->shown;
}

void
history_log_drop(struct slot *sl)
{
    logcache_unref(sl->lc);
    sl->lc = NULL;
}

static struct logcache *
logcache_get(struct fs *fs, struct slot *sl)
{
    struct logcache *lc = sl->lc;

    if (lc)
        return lc;
    if (!(lc = calloc(1, sizeof(*lc))))
        return NULL;
    if (stream_reader_new_quiet(sl->s, &lc->watch) < 0) {
        free(lc);
        return NULL;
    }
    lc->fs = fs;
    lc->refs = 1; /* the slot's */
    lc->ino = tree_ino(N_S_LOG, 0, sl->id);
    lc->s = sl->s;
    /* Nothing of this log is cached yet: whatever size the kernel was
     * shown so far is at most the size now, and every later one at least. */
    lc->shown = stream_size(sl->s);
    sl->lc = lc;
    return lc;
}

/* ---- a stream's history: log, procs/<n>/stdout|stderr --------------- */

static void
reply_copy(fuse_req_t req, struct fs *fs, struct stream *s, size_t size,
           uint64_t off)
{
    ssize_t n = stream_pread(s, fs->buf, size, off);

    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, fs->buf, (size_t)n);
}

static void
stream_view_read(struct file *f, fuse_req_t req, size_t size, off_t off,
                 int flags)
{
    struct stream_span sp;
    ssize_t n;

    if (!f->s) {
        fuse_reply_buf(req, NULL, 0); /* a process without its output */
        return;
    }
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    /* direct_io: a short reply is read(2)'s short count. */
    n = stream_peek(f->s, (uint64_t)off, send_max(f->fs, size), &sp);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else if (n == 0)
        fuse_reply_buf(req, NULL, 0);
    else
        send_span(f->fs, req, &sp);
}

/* A cached READ must be answered in full up to the end: a short reply
 * tells the kernel the file ends there. The end is `shown`. */
static void
log_read(struct file *f, fuse_req_t req, size_t size, off_t off, int flags)
{
    struct logcache *lc = f->lc;
    struct stream_span sp;
    uint64_t have = lc->shown;
    ssize_t n;

    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if ((uint64_t)off >= have) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > have - (uint64_t)off)
        size = (size_t)(have - (uint64_t)off);
    if ((n = stream_peek(lc->s, (uint64_t)off, size, &sp)) < 0) {
        fuse_reply_err(req, (int)-n);
        return;
    }
    /* Recorded before the reply goes (maybe from a reply thread): the
     * page stays locked by this READ until then. */
    logcache_record(lc, (uint64_t)off + size);
    if ((size_t)n < size) /* the span stopped short (file, then memory) */
        reply_copy(req, f->fs, lc->s, size, (uint64_t)off);
    else
        send_span(f->fs, req, &sp);
}

static void
stream_view_release(struct file *f)
{
    stream_unref(f->s);
}

static void
log_release(struct file *f)
{
    logcache_unref(f->lc);
}

static const struct file_ops stream_view_ops = {
        .read = stream_view_read,
        .release = stream_view_release,
};

static const struct file_ops log_ops = {
        .read = log_read,
        .release = log_release,
};

void
history_open(struct file *f, struct stream *s)
{
    f->ops = &stream_view_ops;
    f->s = s ? stream_ref(s) : NULL;
}

bool
history_open_log(struct file *f, struct slot *sl)
{
    struct logcache *lc;
    /* A measurement switch (docs/benchmarks.md): log served direct_io. */
    const char *direct = getenv("PROVIUM_LOG_DIRECT_IO");

    if (sl->state != SLOT_OPEN || (direct && *direct == '1') ||
        !(lc = logcache_get(f->fs, sl))) {
        history_open(f, sl->s); /* direct_io, as the other views */
        return false;
    }
    lc->refs++;
    f->ops = &log_ops;
    f->lc = lc;
    return true;
}

/* ---- a VM's console ------------------------------------------------- */

static void
console_view_read(struct file *f, fuse_req_t req, size_t size, off_t off,
                  int flags)
{
    ssize_t n;

    if (!f->vm->console || off < 0) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    n = console_pread(f->vm->console, f->fs->buf, size, (uint64_t)off);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, f->fs->buf, (size_t)n);
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
