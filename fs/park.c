/*
 * park.c - parked requests: READs that cannot be answered yet (a data
 * file with no bytes, a ctl reply still running).
 *
 * A parked request sits on its open file's queue (oldest first, so
 * concurrent readers of one open are served in order) and on the
 * daemon-wide list (so shutdown can answer them all). It is answered
 * exactly once, by whichever comes first:
 *  - its owner, through park_reply_buf/_err or park_flush (data, end of
 *    stream, reply ready, stream closed);
 *  - a FUSE interrupt (Ctrl-C, `timeout`, SIGSTOP): EINTR at once. Without
 *    this the reader would sit in D state until the next byte
 *    (reference/fuse.md §2);
 *  - shutdown: park_flush_all answers 0 bytes (end of file).
 * Every path unlinks the request from both lists before replying, and
 * libfuse drops the interrupt callback with the reply, so no path can run
 * after another. The reactor is single-threaded: no locking.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs.h"

struct park {
    struct fs *fs;
    fuse_req_t req;
    size_t size;
    struct park_queue *q;
    struct park *qnext;       /* in q */
    struct park *prev, *next; /* in fs->parked */
};

static void
park_unlink(struct park *p)
{
    struct park_queue *q = p->q;
    struct park **pp = &q->head, *before = NULL;

    while (*pp && *pp != p) {
        before = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp)
        *pp = p->qnext;
    if (q->tail == p)
        q->tail = before;
    q->n--;
    if (p->prev)
        p->prev->next = p->next;
    else
        p->fs->parked = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->fs->nparked--;
}

/* Runs from fuse_session_process_buf (an INTERRUPT request) with the
 * request's lock held: replying is fine, re-registering is not. */
static void
park_interrupted(fuse_req_t req, void *data)
{
    struct park *p = data;

    park_unlink(p);
    free(p);
    fuse_reply_err(req, EINTR);
}

int
park_add(struct fs *fs, struct park_queue *q, fuse_req_t req, size_t size)
{
    struct park *p;

    if (q->n >= FS_PARK_MAX)
        return -EAGAIN;
    if (!(p = calloc(1, sizeof(*p))))
        return -ENOMEM;
    p->fs = fs;
    p->req = req;
    p->size = size;
    p->q = q;
    if (q->tail)
        q->tail->qnext = p;
    else
        q->head = p;
    q->tail = p;
    q->n++;
    p->next = fs->parked;
    if (fs->parked)
        fs->parked->prev = p;
    fs->parked = p;
    fs->nparked++;
    /* If the interrupt already came, this answers (and frees) p at once:
     * p must be fully linked by now and is not touched afterwards. */
    fuse_req_interrupt_func(req, park_interrupted, p);
    return 0;
}

size_t
park_size(const struct park_queue *q)
{
    return q->head ? q->head->size : 0;
}

fuse_req_t
park_take(struct park_queue *q)
{
    struct park *p = q->head;
    fuse_req_t req = p->req;

    park_unlink(p);
    free(p);
    /* From now on only the caller answers req, maybe from a reply thread:
     * an interrupt arriving meanwhile must not find p (freed) nor answer
     * req a second time. libfuse takes req's lock for this, so it cannot
     * race with an interrupt being delivered. */
    fuse_req_interrupt_func(req, NULL, NULL);
    return req;
}

void
park_reply_buf(struct park_queue *q, const void *buf, size_t len)
{
    if (q->head)
        fuse_reply_buf(park_take(q), buf, len);
}

void
park_reply_err(struct park_queue *q, int err)
{
    if (q->head)
        fuse_reply_err(park_take(q), err);
}

void
park_flush(struct park_queue *q)
{
    while (q->head)
        fuse_reply_buf(park_take(q), NULL, 0);
}

void
park_flush_all(struct fs *fs)
{
    while (fs->parked)
        park_flush(fs->parked->q);
}
