/*
 * send.c - history bytes out to readers, and the cache notifications that
 * may block: the only code of the daemon that runs on other threads.
 *
 * Replies. A READ of `data`, `log` or another history view is answered
 * from a span of the stream's spool (streams.h): the bytes lie in the
 * spool's file. send_span() answers with fuse_reply_data() on a
 * FUSE_BUF_IS_FD buffer; with FUSE_CAP_SPLICE_WRITE libfuse splices the
 * file's page-cache pages into a pipe and the pipe into /dev/fuse, so the
 * bytes are copied once, by the kernel, into the reader's pages, instead
 * of a pread into our buffer and a writev out of it.
 *
 * The splice cap. libfuse 3.14 (fuse_send_data_iov) wants its per-thread
 * pipe to hold three pages plus the reply. A pipe grows past
 * /proc/sys/fs/pipe-max-size (1 MiB) only with CAP_SYS_RESOURCE (root in
 * a container may lack it: F_SETPIPE_SZ gives EPERM here), and after the
 * first failed grow libfuse stops splicing on that thread for good: every
 * later reply goes through a fresh 1 MiB posix_memalign buffer, a pread
 * and a writev (issue 12 measured `cat data` 10x slower). So a spliced
 * reply is at most SEND_SPLICE_MAX = 1 MiB - 16 KiB; callers that may
 * answer short (data, direct_io views) ask send_max() first, and a longer
 * span (a page-cache READ must be answered in full) is copied instead.
 *
 * The fallback. Without FUSE_CAP_SPLICE_WRITE (libfuse built without
 * splice, a kernel that refuses it), or with PROVIUM_NO_SPLICE=1 in the
 * daemon's environment (for tests: the same bytes must come out either
 * way), a reply is a pread into a buffer and fuse_reply_buf. A span in
 * memory (bytes not in the file yet) is always sent from memory, by the
 * reactor.
 *
 * Reply threads. The splice into /dev/fuse is where the copy happens, in
 * the thread that writes the reply: with one thread, 50 readers would
 * share one CPU. With --reply-threads N (N > 0) replies queued during a
 * loop turn are handed out at the start of the next (a deferred call):
 * the reactor sends the last one itself and N threads the rest. A single
 * reader therefore never pays a thread hand-off; many readers spread
 * over the CPUs.
 *
 * The notifier. Invalidating page-cache pages of a file
 * (fuse_lowlevel_notify_inval_inode with an offset) locks each page, and
 * a page stays locked while a READ of it is in flight: from the reactor,
 * which answers that READ, it could deadlock. So page invalidations run
 * on one notifier thread, which may block until the reactor has answered
 * the READ; its completions come back to the reactor through an eventfd.
 * Attribute-only invalidations (offset < 0) take no page or directory
 * lock and are sent by the reactor itself (send_inval_attr).
 *
 * The thread rule. The reactor thread owns every object of the daemon
 * and of the stream core, and alone receives and processes requests
 * (libfuse 3.14 lets threads receive only through its own loop's
 * per-thread channels, which its public API does not expose). A reply
 * thread touches only its job: the request (answered exactly once, by
 * it: the reactor removed the request's interrupt callback before
 * handing it over) and the span's (fd, offset, length). The span stays
 * valid without a reference: a READ in flight keeps its open file (the
 * kernel sends no RELEASE while a read of the file runs), the open file
 * keeps its reader or view, which keeps the stream, which keeps the
 * spool's fd open; and history below the spool's size never changes. The
 * notifier touches only its job (inode, range) and hands the job back.
 * Each thread uses its own libfuse pipe (libfuse keeps one per thread)
 * and its own copy buffer. Shutdown (send_stop) sends what is queued and
 * joins the threads before the session is unmounted.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fs.h"

struct send_job {
    struct send_job *next;
    fuse_req_t req;
    struct stream_span span; /* an fd span */
};

struct send_inval {
    struct send_inval *next;
    fuse_ino_t ino;
    off_t off, len;
    int rc;
    send_done_fn *done;
    void *arg;
};

struct send {
    struct fs *fs;
    bool splice;
    unsigned nthreads;
    pthread_t *threads;
    unsigned started;
    pthread_mutex_t lock;
    pthread_cond_t work, nwork;
    struct send_job *head, *tail; /* for the reply threads */
    bool stop;
    /* Reactor only: replies queued during this loop turn. */
    struct send_job *pending, **pending_tail;
    bool flush_queued;
    /* The notifier: its queue and its completions (under lock). */
    pthread_t notifier;
    bool notifier_started;
    struct send_inval *nhead, *ntail, *ndone;
    bool calling;       /* the notifier is in a call (under lock) */
    unsigned ninflight; /* reactor only: submitted, not yet completed */
    int efd;
};

static struct send *
send_of(struct fs *fs)
{
    return fs->send;
}

bool
send_splicing(const struct fs *fs)
{
    return fs->send && fs->send->splice;
}

size_t
send_max(const struct fs *fs, size_t size)
{
    return send_splicing(fs) && size > SEND_SPLICE_MAX ? SEND_SPLICE_MAX : size;
}

/* Copy the span into buf (FS_BUF_SIZE bytes) and reply with it. */
static void
send_copy(fuse_req_t req, const struct stream_span *sp, char *buf)
{
    size_t done = 0;

    while (done < sp->len) {
        ssize_t n = pread(sp->fd, buf + done, sp->len - done,
                          (off_t)(sp->off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fuse_reply_err(req, n < 0 ? errno : EIO);
            return;
        }
        done += (size_t)n;
    }
    fuse_reply_buf(req, buf, done);
}

/* Answer req with the fd span sp, on whatever thread runs this. */
static void
send_now(struct send *s, fuse_req_t req, const struct stream_span *sp,
         char *buf)
{
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(sp->len);

    if (!s->splice || sp->len > SEND_SPLICE_MAX) {
        send_copy(req, sp, buf);
        return;
    }
    bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    bv.buf[0].fd = sp->fd;
    bv.buf[0].pos = (off_t)sp->off;
    /* -errno: the reply could not be written (the reader is gone); the
     * request is freed either way. */
    fuse_reply_data(req, &bv, 0);
}

static void *
send_thread(void *arg)
{
    struct send *s = arg;
    char *buf = NULL;
    struct send_job *j;

    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->work, &s->lock);
        if (!(j = s->head)) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        if (!(s->head = j->next))
            s->tail = NULL;
        pthread_mutex_unlock(&s->lock);
        /* The copy buffer only when copying: most threads never need it. */
        if (!buf && (!s->splice || j->span.len > SEND_SPLICE_MAX) &&
            !(buf = malloc(FS_BUF_SIZE))) {
            fuse_reply_err(j->req, ENOMEM);
        } else {
            send_now(s, j->req, &j->span, buf);
        }
        free(j);
    }
    free(buf);
    return NULL;
}

/* Hand the replies queued this turn out: the reactor sends the last one
 * itself (a lone reader never waits for a thread), the threads the rest. */
static void
send_flush(struct reactor *r, void *arg)
{
    struct send *s = arg;
    struct send_job *rest = s->pending, *last, **pp = &s->pending;

    s->flush_queued = false;
    if (!rest)
        return;
    while ((*pp)->next)
        pp = &(*pp)->next;
    last = *pp;
    *pp = NULL; /* rest: everything before last, maybe nothing */
    rest = s->pending;
    s->pending = NULL;
    s->pending_tail = &s->pending;
    if (rest) {
        struct send_job *t = rest;
        while (t->next)
            t = t->next;
        pthread_mutex_lock(&s->lock);
        if (s->tail)
            s->tail->next = rest;
        else
            s->head = rest;
        s->tail = t;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
    }
    send_now(s, last->req, &last->span, s->fs->buf);
    free(last);
}

void
send_span(struct fs *fs, fuse_req_t req, const struct stream_span *sp)
{
    struct send *s = send_of(fs);
    struct send_job *j;

    if (sp->mem) {
        fuse_reply_buf(req, sp->mem, sp->len);
        return;
    }
    if (s->started == 0 || s->stop) {
        send_now(s, req, sp, fs->buf);
        return;
    }
    if (!(j = malloc(sizeof(*j)))) {
        send_now(s, req, sp, fs->buf);
        return;
    }
    j->next = NULL;
    j->req = req;
    j->span = *sp;
    *s->pending_tail = j;
    s->pending_tail = &j->next;
    if (!s->flush_queued && reactor_defer(fs->r, send_flush, s) == 0)
        s->flush_queued = true;
    if (!s->flush_queued)
        send_flush(fs->r, s); /* out of memory for the deferral: now */
}

/* ---- the notifier --------------------------------------------------- */

static void *
notifier_thread(void *arg)
{
    struct send *s = arg;
    struct send_inval *v;
    uint64_t one = 1;
    bool wake;

    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->nhead && !s->stop)
            pthread_cond_wait(&s->nwork, &s->lock);
        /* Stopping: what is still queued is not sent (send_free). */
        if (s->stop || !(v = s->nhead)) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        if (!(s->nhead = v->next))
            s->ntail = NULL;
        s->calling = true;
        pthread_mutex_unlock(&s->lock);
        /* May block until the reactor answered a READ of these pages. */
        v->rc = fuse_lowlevel_notify_inval_inode(s->fs->se, v->ino, v->off,
                                                 v->len);
        pthread_mutex_lock(&s->lock);
        s->calling = false;
        wake = !s->ndone;
        v->next = s->ndone;
        s->ndone = v;
        pthread_mutex_unlock(&s->lock);
        if (wake && write(s->efd, &one, sizeof(one)) < 0)
            (void)0; /* the counter is full: a wake-up is pending anyway */
    }
    return NULL;
}

/* Completions, on the reactor, in the order they were submitted. */
static void
send_done(struct send *s)
{
    struct send_inval *v, *rev = NULL;
    uint64_t n;

    if (read(s->efd, &n, sizeof(n)) < 0)
        (void)0; /* EAGAIN: nothing to clear */
    pthread_mutex_lock(&s->lock);
    v = s->ndone;
    s->ndone = NULL;
    pthread_mutex_unlock(&s->lock);
    while (v) {
        struct send_inval *next = v->next;
        v->next = rev;
        rev = v;
        v = next;
    }
    while ((v = rev)) {
        rev = v->next;
        s->ninflight--;
        if (v->done)
            v->done(v->arg, v->rc);
        free(v);
    }
}

static void
send_efd_cb(struct reactor *r, int fd, unsigned events, void *arg)
{
    send_done(arg);
}

int
send_inval(struct fs *fs, fuse_ino_t ino, off_t off, off_t len,
           send_done_fn *done, void *arg)
{
    struct send *s = send_of(fs);
    struct send_inval *v;

    if (!s || !s->notifier_started || s->stop)
        return -ESHUTDOWN;
    if (!(v = calloc(1, sizeof(*v))))
        return -ENOMEM;
    v->ino = ino;
    v->off = off;
    v->len = len;
    v->done = done;
    v->arg = arg;
    pthread_mutex_lock(&s->lock);
    if (s->ntail)
        s->ntail->next = v;
    else
        s->nhead = v;
    s->ntail = v;
    pthread_cond_signal(&s->nwork);
    pthread_mutex_unlock(&s->lock);
    s->ninflight++;
    return 0;
}

void
send_inval_attr(struct fs *fs, fuse_ino_t ino)
{
    if (fs->se && !fs->stopping)
        fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

/* ---- life ----------------------------------------------------------- */

void
send_init(struct fs *fs, struct fuse_conn_info *conn)
{
    const char *no = getenv("PROVIUM_NO_SPLICE");
    bool splice =
            (conn->capable & FUSE_CAP_SPLICE_WRITE) && !(no && *no == '1');

    /* Replies of spool bytes are spliced (see the top); requests are never
     * spliced to us (no write_buf): a command is short. */
    if (splice)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    else
        conn->want &= ~FUSE_CAP_SPLICE_WRITE;
    conn->want &= ~FUSE_CAP_SPLICE_MOVE;
    if (fs->send)
        fs->send->splice = splice;
    /* The page cache of `log` is ours to invalidate, page by page
     * (history.c): no invalidation of the whole file whenever its size
     * changes (auto_inval_data would also cost a GETATTR per read). */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
        conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
}

int
send_start(struct fs *fs, unsigned nthreads)
{
    struct send *s = calloc(1, sizeof(*s));
    sigset_t all, old;
    int rc = 0;

    if (!s)
        return -ENOMEM;
    s->fs = fs;
    s->pending_tail = &s->pending;
    s->efd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->nwork, NULL);
    fs->send = s;
    /* Decided at FUSE_INIT (send_init), before any READ can arrive. */
    if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return -errno;
    if ((rc = reactor_watch(fs->r, s->efd, REACTOR_IN, send_efd_cb, s)) < 0)
        return rc;
    if (nthreads && !(s->threads = calloc(nthreads, sizeof(pthread_t))))
        return -ENOMEM;
    s->nthreads = nthreads;
    /* The threads take no signal: SIGINT and SIGTERM are the reactor's
     * (a signalfd), the rest keep their process-wide disposition. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if ((rc = -pthread_create(&s->notifier, NULL, notifier_thread, s)) == 0)
        s->notifier_started = true;
    for (unsigned i = 0; rc == 0 && i < nthreads; i++)
        if ((rc = -pthread_create(&s->threads[i], NULL, send_thread, s)) == 0)
            s->started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

bool
send_calling(struct fs *fs)
{
    struct send *s = send_of(fs);
    bool calling;

    if (!s)
        return false;
    pthread_mutex_lock(&s->lock);
    calling = s->calling;
    pthread_mutex_unlock(&s->lock);
    return calling;
}

void
send_stop(struct fs *fs)
{
    struct send *s = send_of(fs);

    if (!s || s->stop)
        return;
    if (s->pending)
        send_flush(fs->r, s);
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->nwork);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->started; i++)
        pthread_join(s->threads[i], NULL);
    s->started = 0;
    if (s->notifier_started)
        pthread_join(s->notifier, NULL);
    s->notifier_started = false;
    send_done(s); /* the completions not collected yet */
    /* Invalidations still queued: not sent (the mount is going), their
     * owners told. */
    while (s->nhead) {
        struct send_inval *v = s->nhead;
        s->nhead = v->next;
        s->ninflight--;
        if (v->done)
            v->done(v->arg, -ESHUTDOWN);
        free(v);
    }
    s->ntail = NULL;
    if (s->efd >= 0) {
        reactor_unwatch(fs->r, s->efd);
        close(s->efd);
        s->efd = -1;
    }
}

/* After the reactor's last turn: a deferred send_flush may still have
 * run until then (it finds nothing to send). */
void
send_free(struct fs *fs)
{
    struct send *s = send_of(fs);

    if (!s)
        return;
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->nwork);
    pthread_mutex_destroy(&s->lock);
    free(s->threads);
    free(s);
    fs->send = NULL;
}
