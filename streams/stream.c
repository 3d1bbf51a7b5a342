/*
 * stream.c - one stream: its history, the test's consumption cursor with
 * its queue of ops, the readers' cursors, and how the stream ends.
 *
 * The model. Every byte a source produces is appended to the spool, one
 * call per frame, so the history is the stream: nothing is kept in memory
 * and nothing is ever removed while the stream lives. Each consumer is just
 * an offset into it:
 *
 *  - a reader (a `data` file open) has its own offset from byte 0 and gets
 *    whatever lies between its offset and the end of the history;
 *  - the test's cursor (`cur`) is what next / read_until / expect / drain
 *    consume (peek looks without consuming). "Pending bytes" (SPEC §6.2)
 *    are simply the rest of the frame the cursor stands in after a match
 *    ended mid-frame: next returns them as one frame, drain as the first
 *    record. Nothing is copied, so nothing can be lost, duplicated or
 *    reordered.
 *
 * Ops run one at a time in submission order. Only the head op is started
 * (its deadline armed). Whichever comes first of data, end of stream,
 * deadline or close answers it, exactly once, through its done callback;
 * cancelling it (its requester left) answers nothing.
 *
 * Wake-ups are deferred: stream_append() never calls back into ops or
 * readers; it queues one deferred wake per loop turn, so an engine's read
 * callback cannot be re-entered by the FUSE layer and a burst of frames is
 * matched in one pass.
 *
 * Write-behind (spool.c). Appended bytes are history at once but reach
 * the spool's file only when the stream flushes it, once per loop turn,
 * right before the loop polls (reactor_before_poll): after the wake that
 * served this turn's frames to readers and ops from memory, before the
 * loop may block. A flush that fails ends the stream with the error
 * ("history spool write failed: ..."); the bytes it could not write stay
 * history, in memory, so a reader that got them finds them in the log.
 *
 * Matching (read_until, expect, peek; SPEC §9, docs/matching.md). Each op
 * has its compiled pattern set (pattern.c: from the cache, or built on a
 * compiler thread while the op waits) and, once it runs, its own scanner
 * (scan.c), which it keeps across frames and wake-ups: every byte from
 * the cursor on is fed to it exactly once, in order, and never read
 * again. op->scan is how far the history has been fed. Two paths feed it,
 * both on the reactor thread (the only one that touches a stream):
 *
 *  - op_try() reads the history from op->scan to the end of the spool
 *    (the bytes that arrived before the op ran, or while it compiled),
 *    from the file or from the write-behind buffer (spool_pread);
 *  - stream_append() feeds the frame it has just written, from memory,
 *    to the head op when that op has been fed everything before it
 *    (op->scan == the size before the append), and only then: so a byte
 *    is fed by one path or the other, never both, and never out of order.
 *    A match found there is kept in the op (op->matched) and answered by
 *    the deferred wake, never from inside stream_append.
 *
 * Ownership. The registry, every open file, every reader, every queued op,
 * every reply with a history payload, a queued wake and a queued flush
 * hold a reference. The spool is freed with the last one. An op owns its
 * copy of the patterns, its reference on the set, its scanner, and its
 * compile job until done (pattern_job_cancel lets the job go).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

struct stream_op {
    struct stream *s;
    struct stream_op *next;
    enum stream_op_kind kind;
    uint64_t timeout;
    bool started;
    struct reactor_timer timer;
    stream_op_done_fn *done;
    void *arg;

    /* read_until / expect / peek */
    struct pattern *pats; /* our copies, one allocation with their bytes */
    unsigned npats;
    unsigned scan_opts;
    bool marked;             /* reply with the alternative and span */
    struct pattern_set *ps;  /* compiled; NULL while compiling */
    struct pattern_job *job; /* compiling */
    int err;                 /* compiling or scanning failed: answer it */
    char *err_msg;           /* what to say (NULL: strerror) */
    struct scan *sc;         /* from the op's start */
    uint64_t base;           /* the cursor when it started: sc's 0 */
    uint64_t scan;           /* history fed to sc up to here */
    bool matched;
    struct scan_match m;
};

struct stream_reader {
    struct stream *s;
    struct stream_reader *prev, *next;
    uint64_t off;
    bool err_reported;
    bool quiet; /* not counted in nreaders (stream_reader_new_quiet) */
    reactor_fn *fn;
    void *arg;
};

struct stream {
    struct reactor *r;
    unsigned refs;
    struct spool *sp;
    uint64_t limit;
    char noun[16];
    enum stream_state state;
    int end_err;
    char *end_msg;

    uint64_t cur;       /* the test's cursor */
    uint64_t cur_frame; /* frame holding cur; spool_frames() at the end */

    struct stream_op *head, *tail;
    bool running, rerun; /* stream_run() in progress / asked again */
    bool wake_queued;
    bool flush_queued;

    struct stream_reader *readers;
    unsigned nreaders;

    const struct engine_ops *src_ops;
    void *src_state;
};

/* Matching reads history through one buffer: the daemon is one thread. */
static char scratch[64 * 1024];

static void stream_run(struct stream *s);

int
stream_new(struct reactor *r, const struct stream_config *cfg,
           struct stream **out)
{
    struct stream *s = calloc(1, sizeof *s);
    int rc;

    if (!s)
        return -ENOMEM;
    if ((rc = spool_new(cfg->spool_dir, &s->sp)) < 0) {
        free(s);
        return rc;
    }
    s->r = r;
    s->refs = 1;
    s->limit = cfg->history_limit;
    snprintf(s->noun, sizeof s->noun, "%s", cfg->noun ? cfg->noun : "stream");
    s->state = STREAM_LIVE;
    *out = s;
    return 0;
}

struct stream *
stream_ref(struct stream *s)
{
    s->refs++;
    return s;
}

static void
stop_source(struct stream *s)
{
    const struct engine_ops *ops = s->src_ops;

    if (!ops)
        return;
    s->src_ops = NULL;
    ops->stop(s->src_state);
    s->src_state = NULL;
}

void
stream_unref(struct stream *s)
{
    if (!s || --s->refs > 0)
        return;
    /* Readers, ops, replies and wakes all hold references: none is left. */
    stop_source(s);
    spool_free(s->sp);
    free(s->end_msg);
    free(s);
}

void
stream_set_source(struct stream *s, const struct engine_ops *ops,
                  void *state)
{
    s->src_ops = ops;
    s->src_state = state;
}

/* ---- wake-ups ---------------------------------------------------- */

static bool
reader_ready(const struct stream_reader *rd)
{
    const struct stream *s = rd->s;

    return rd->off < spool_size(s->sp) || s->state != STREAM_LIVE;
}

static void
notify_readers(struct stream *s)
{
    /* A callback may free any reader, so rescan from the head after each;
     * each call clears one registration, so this ends. */
again:
    for (struct stream_reader *rd = s->readers; rd; rd = rd->next) {
        if (rd->fn && reader_ready(rd)) {
            reactor_fn *fn = rd->fn;
            rd->fn = NULL;
            fn(s->r, rd->arg);
            goto again;
        }
    }
}

static void
wake_cb(struct reactor *r, void *arg)
{
    struct stream *s = arg;

    s->wake_queued = false;
    stream_run(s);
    notify_readers(s);
    stream_unref(s);
}

static void
stream_wake(struct stream *s)
{
    if (s->wake_queued)
        return;
    if (reactor_defer(s->r, wake_cb, s) < 0)
        return; /* out of memory: the op's deadline still answers it */
    s->wake_queued = true;
    stream_ref(s);
}

/* ---- producer side ----------------------------------------------- */

static void
spool_write_failed(struct stream *s, int rc)
{
    char msg[160];
    /* ENOSPC alone could be any device: say which one is full. */
    const char *why = rc == -ENOSPC || rc == -EDQUOT
                              ? " (the spool file system is full)"
                              : "";

    snprintf(msg, sizeof msg, "history spool write failed: %s%s", strerror(-rc),
             why);
    stream_end(s, rc, msg);
}

static void
flush_cb(struct reactor *r, void *arg)
{
    struct stream *s = arg;
    int rc;

    s->flush_queued = false;
    if ((rc = spool_flush(s->sp)) < 0)
        spool_write_failed(s, rc);
    stream_unref(s);
}

/* Flush the spool before the loop next polls. Without memory for the
 * queue entry, flush now: nothing may stay unwritten for longer. */
static void
stream_flush_later(struct stream *s)
{
    int rc;

    if (s->flush_queued)
        return;
    if (reactor_before_poll(s->r, flush_cb, s) == 0) {
        s->flush_queued = true;
        stream_ref(s);
    } else if ((rc = spool_flush(s->sp)) < 0) {
        spool_write_failed(s, rc);
    }
}

/*
 * The frame just appended at offset `at`, from memory, to the head op's
 * scanner: only when the op has been fed every byte before it (see the
 * top of the file). The answer waits for the deferred wake.
 */
static void
op_feed(struct stream_op *op, const void *buf, size_t len, uint64_t at)
{
    int rc;

    if (!op || !op->sc || op->matched || op->err || op->scan != at)
        return;
    rc = scan_feed(op->sc, buf, len, &op->m);
    op->scan = at + len;
    if (rc > 0)
        op->matched = true;
    else if (rc < 0)
        op->err = rc;
}

int
stream_append(struct stream *s, const void *buf, size_t len)
{
    int rc;

    if (s->state != STREAM_LIVE)
        return -EPIPE;
    if (len == 0)
        return 0;
    if (s->limit && len > s->limit - spool_size(s->sp)) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "history limit of %llu bytes reached (a %zu-byte frame "
                 "did not fit)",
                 (unsigned long long)s->limit, len);
        stream_end(s, -EFBIG, msg);
        return -EFBIG;
    }
    uint64_t at = spool_size(s->sp);
    if ((rc = spool_append(s->sp, buf, len)) < 0) {
        spool_write_failed(s, rc);
        return rc;
    }
    if (spool_unflushed(s->sp))
        stream_flush_later(s);
    /* The scanner sees the frame from memory, flushed or not. */
    op_feed(s->head, buf, len, at);
    stream_wake(s);
    return 0;
}

void
stream_end(struct stream *s, int err, const char *msg)
{
    if (s->state != STREAM_LIVE)
        return;
    s->state = STREAM_ENDED;
    s->end_err = err;
    if (msg && *msg)
        s->end_msg = strdup(msg); /* NULL on ENOMEM: strerror is used */
    stream_wake(s);
}

void
stream_close(struct stream *s)
{
    if (s->state == STREAM_CLOSED)
        return;
    stream_ref(s);
    stop_source(s);
    s->state = STREAM_CLOSED;
    stream_run(s); /* answers every queued op "closed" */
    stream_wake(s);
    stream_unref(s);
}

/* ---- state ------------------------------------------------------- */

enum stream_state
stream_state(const struct stream *s)
{
    return s->state;
}

uint64_t
stream_size(const struct stream *s)
{
    return spool_size(s->sp);
}

uint64_t
stream_frames(const struct stream *s)
{
    return spool_frames(s->sp);
}

uint64_t
stream_consumed(const struct stream *s)
{
    return s->cur;
}

/* Start offset of frame k. */
static int
frame_start(struct stream *s, uint64_t k, uint64_t *start)
{
    if (k == 0) {
        *start = 0;
        return 0;
    }
    return spool_frame_end(s->sp, k - 1, start);
}

uint64_t
stream_pending(const struct stream *s)
{
    struct stream *ms = (struct stream *)(uintptr_t)s; /* index cache */
    uint64_t start, end;

    if (s->state == STREAM_CLOSED || s->cur >= spool_size(s->sp))
        return 0;
    if (frame_start(ms, s->cur_frame, &start) < 0 || start == s->cur)
        return 0;
    if (spool_frame_end(ms->sp, s->cur_frame, &end) < 0)
        return 0;
    return end - s->cur;
}

int
stream_end_error(const struct stream *s, const char **msg)
{
    if (msg)
        *msg = s->end_msg  ? s->end_msg
               : s->end_err ? strerror(-s->end_err)
                            : NULL;
    return s->end_err;
}

struct reactor *
stream_reactor(const struct stream *s)
{
    return s->r;
}

struct spool *
stream_spool(struct stream *s)
{
    return s->sp;
}

ssize_t
stream_pread(struct stream *s, void *buf, size_t len, uint64_t off)
{
    return spool_pread(s->sp, buf, len, off);
}

ssize_t
stream_peek(struct stream *s, uint64_t off, size_t max, struct stream_span *out)
{
    return spool_span(s->sp, off, max, out);
}

/* ---- message helpers --------------------------------------------- */

static struct reply *
end_reply(struct stream *s)
{
    struct reply *rp = NULL; /* stays NULL on ENOMEM: see done's contract */
    const char *msg;

    if (stream_end_error(s, &msg))
        reply_new_fmt(REPLY_ERROR, &rp, "%s EOF; %s", s->noun, msg);
    else if (msg)
        reply_new_fmt(REPLY_EOF, &rp, "%s EOF; %s", s->noun, msg);
    else
        reply_new_fmt(REPLY_EOF, &rp, "%s EOF", s->noun);
    return rp;
}

static struct reply *
closed_reply(struct stream *s)
{
    struct reply *rp = NULL;

    reply_new_fmt(REPLY_CLOSED, &rp, "%s closed", s->noun);
    return rp;
}

static const char *
op_name(enum stream_op_kind k)
{
    static const char *const names[] = {
            [STREAM_OP_NEXT] = "next",
            [STREAM_OP_READ_UNTIL] = "read_until",
            [STREAM_OP_EXPECT] = "expect",
            [STREAM_OP_DRAIN] = "drain",
            [STREAM_OP_EOF] = "eof",
            [STREAM_OP_CLOSE] = "close",
            [STREAM_OP_PEEK] = "peek",
    };
    return names[k];
}

static bool
op_matches(enum stream_op_kind k)
{
    return k == STREAM_OP_READ_UNTIL || k == STREAM_OP_EXPECT ||
           k == STREAM_OP_PEEK;
}

static struct reply *
timeout_reply(struct stream_op *op)
{
    struct reply *rp = NULL;
    char t[32], *msg;

    if (op->kind == STREAM_OP_NEXT) {
        duration_format(op->timeout, t, sizeof t);
        reply_new_fmt(REPLY_TIMEOUT, &rp, "next timed out after %s", t);
        return rp;
    }
    /* Provium's words first (SPEC §4.3), then what the scanner saw: the
     * newest bytes, how many, the closest near miss (docs/matching.md). */
    msg = op->sc ? scan_timeout_message(op->sc, op_name(op->kind), op->timeout)
                 : scan_compiling_message(op->pats, op->npats,
                                          op_name(op->kind), op->timeout);
    if (msg)
        reply_new_mem(REPLY_TIMEOUT, msg, strlen(msg), &rp);
    free(msg);
    return rp;
}

/* ---- the test's cursor ------------------------------------------- */

static int
cursor_move(struct stream *s, uint64_t to)
{
    s->cur = to;
    return spool_frame_at(s->sp, to, &s->cur_frame);
}

static void
op_release(struct stream_op *op)
{
    reactor_timer_stop(op->s->r, &op->timer);
    pattern_job_cancel(op->job);
    scan_free(op->sc);
    pattern_set_put(op->ps);
    free(op->pats);
    free(op->err_msg);
    stream_unref(op->s);
    free(op);
}

/* Unlink op from the queue (wherever it is). */
static void
op_unlink(struct stream_op *op)
{
    struct stream *s = op->s;
    struct stream_op **pp = &s->head, *prev = NULL;

    while (*pp && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = op->next;
    if (s->tail == op)
        s->tail = prev;
}

/* Answer op: exactly once, then it is gone. */
static void
op_complete(struct stream_op *op, struct reply *rp)
{
    op_unlink(op);
    reactor_timer_stop(op->s->r, &op->timer);
    op->done(op->s, rp, op->arg);
    op_release(op);
}

static struct reply *
error_reply(struct stream *s, int err)
{
    struct reply *rp = NULL;

    reply_new_fmt(REPLY_ERROR, &rp, "%s: %s", s->noun, strerror(-err));
    return rp;
}

/* Drain everything up to the end of the history. */
static struct reply *
drain_now(struct stream *s)
{
    struct reply *rp = NULL;
    uint64_t size = spool_size(s->sp);
    int rc = reply_new_drain(s, s->cur, size, &rp);

    if (rc < 0)
        return error_reply(s, rc);
    if ((rc = cursor_move(s, size)) < 0) {
        reply_free(rp);
        return error_reply(s, rc);
    }
    return rp;
}

/* ---- matching ---------------------------------------------------- */

/* An op that cannot match: answer `error` with why, when its turn comes. */
static void
op_fail(struct stream_op *op, int err, const char *msg)
{
    if (op->err)
        return;
    op->err = err < 0 ? err : -EIO;
    if (msg && *msg &&
        asprintf(&op->err_msg, "%s: %s", op_name(op->kind), msg) < 0)
        op->err_msg = NULL;
}

static struct reply *
op_error_reply(struct stream_op *op)
{
    struct reply *rp = NULL;

    if (op->err_msg)
        reply_new_mem(REPLY_ERROR, op->err_msg, strlen(op->err_msg), &rp);
    else
        rp = error_reply(op->s, op->err);
    return rp;
}

/* The compiler thread built the op's set (pattern.c calls this from the
 * reactor's loop). */
static void
op_compiled(struct pattern_set *ps, int err, const char *msg, void *arg)
{
    struct stream_op *op = arg;

    op->job = NULL;
    if (ps)
        op->ps = ps;
    else
        op_fail(op, err, msg);
    if (op->s->head == op)
        stream_wake(op->s);
}

/* Feed the scanner the history from op->scan to the end: 0, or -errno
 * on a spool read failure. Stops at a match. */
static int
op_scan(struct stream_op *op)
{
    struct stream *s = op->s;
    uint64_t size = spool_size(s->sp);
    int rc;

    while (!op->matched && op->scan < size) {
        size_t want = size - op->scan < sizeof scratch
                              ? (size_t)(size - op->scan)
                              : sizeof scratch;
        ssize_t n = spool_pread(s->sp, scratch, want, op->scan);
        if (n <= 0)
            return n < 0 ? (int)n : -EIO;
        rc = scan_feed(op->sc, scratch, (size_t)n, &op->m);
        op->scan += (uint64_t)n;
        if (rc < 0)
            return rc;
        op->matched = rc > 0;
    }
    return 0;
}

static ssize_t
op_read(void *arg, void *buf, size_t len, uint64_t off)
{
    struct stream_op *op = arg;

    return spool_pread(op->s->sp, buf, len, op->base + off);
}

/* "ALT FROM TO[ G1FROM G1TO ...]" for a marked form's reply: offsets
 * from the op's cursor, `-` where unknown (docs/matching.md). */
static char *
match_fields(struct stream_op *op)
{
    const struct scan_match *m = &op->m;
    unsigned groups = op->ps ? pattern_set_groups(op->ps, m->index) : 0;
    uint64_t *ov = NULL;
    char *out = NULL;
    size_t len = 0;
    int got = 0;
    FILE *f;

    if (groups && (ov = calloc(2 * (size_t)(groups + 1), sizeof *ov)))
        got = scan_captures(op->sc, m, op_read, op, ov, groups + 1);
    if (!(f = open_memstream(&out, &len))) {
        free(ov);
        return NULL;
    }
    fprintf(f, "%u ", m->index + 1);
    if (m->start == PATTERN_UNKNOWN)
        fputs("-", f);
    else
        fprintf(f, "%llu", (unsigned long long)m->start);
    fprintf(f, " %llu", (unsigned long long)m->end);
    for (unsigned g = 1; g <= groups; g++) {
        if (ov && (int)g < got && ov[2 * g] != PATTERN_UNKNOWN)
            fprintf(f, " %llu %llu", (unsigned long long)ov[2 * g],
                    (unsigned long long)ov[2 * g + 1]);
        else
            fputs(" - -", f);
    }
    free(ov);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/*
 * The op matched: its reply, and the cursor moved past the match (not
 * for peek). read_until and peek return the bytes from the cursor to
 * the match end; expect nothing, or in a marked form the match itself.
 */
static struct reply *
match_reply(struct stream_op *op)
{
    struct stream *s = op->s;
    uint64_t end = op->base + op->m.end;
    struct reply *rp = NULL;
    char *fields = NULL;
    int rc;

    if (op->kind != STREAM_OP_EXPECT)
        rc = reply_new_range(s, s->cur, end, &rp);
    else if (op->marked && op->m.start != PATTERN_UNKNOWN)
        rc = reply_new_range(s, op->base + op->m.start, end, &rp);
    else
        rc = reply_new_mem(REPLY_OK, "", 0, &rp);
    if (rc == 0 && op->marked) {
        fields = match_fields(op);
        rc = fields ? reply_set_fields(rp, fields) : -ENOMEM;
        free(fields);
    }
    if (rc == 0 && op->kind != STREAM_OP_PEEK)
        rc = cursor_move(s, end);
    if (rc < 0) {
        reply_free(rp);
        rp = error_reply(s, rc);
    }
    return rp;
}

/* read_until / expect / peek at the head: 1 with *rp when answered. */
static int
op_try_match(struct stream_op *op, struct reply **rp)
{
    struct stream *s = op->s;
    int rc;

    if (!op->err && !op->sc && op->ps) {
        op->base = op->scan = s->cur;
        if ((rc = scan_new(op->ps, op->scan_opts, &op->sc)) < 0)
            op->err = rc;
    }
    if (!op->err && op->sc && (rc = op_scan(op)) < 0)
        op->err = rc;
    if (!op->err && op->sc && !op->matched) {
        /* Everything the history holds was fed: the end of the data for
         * now (`$`), or for good. */
        rc = s->state == STREAM_LIVE ? scan_idle(op->sc, &op->m)
                                     : scan_finish(op->sc, &op->m);
        if (rc < 0)
            op->err = rc;
        op->matched = rc > 0;
    }
    if (op->err) {
        *rp = op_error_reply(op);
        return 1;
    }
    if (op->matched) {
        *rp = match_reply(op);
        return 1;
    }
    return 0; /* no match yet, or still compiling */
}

/*
 * Try to answer the head op from what the stream holds now. Returns true
 * if it was answered. An op that has to wait gets its deadline armed on
 * the first try.
 */
static void op_timer_cb(struct reactor *r, void *arg);

static bool
op_try(struct stream_op *op)
{
    struct stream *s = op->s;
    uint64_t size = spool_size(s->sp), end;
    struct reply *rp = NULL;
    int rc;

    op->started = true;
    switch (op->kind) {
    case STREAM_OP_EOF: {
        bool eof = s->state != STREAM_LIVE && s->cur == size;
        if (s->state == STREAM_CLOSED)
            eof = true;
        reply_new_mem(REPLY_OK, eof ? "true" : "false", eof ? 4 : 5, &rp);
        op_complete(op, rp);
        return true;
    }
    case STREAM_OP_CLOSE:
        reply_new_mem(REPLY_OK, "", 0, &rp);
        op_complete(op, rp);
        stream_close(s);
        return true;
    default:
        break;
    }
    if (s->state == STREAM_CLOSED) {
        op_complete(op, closed_reply(s));
        return true;
    }
    switch (op->kind) {
    case STREAM_OP_NEXT:
        if (s->cur < size) {
            if ((rc = spool_frame_end(s->sp, s->cur_frame, &end)) < 0 ||
                (rc = reply_new_range(s, s->cur, end, &rp)) < 0) {
                op_complete(op, error_reply(s, rc));
                return true;
            }
            s->cur = end;
            s->cur_frame++;
            op_complete(op, rp);
            return true;
        }
        break;
    case STREAM_OP_READ_UNTIL:
    case STREAM_OP_EXPECT:
    case STREAM_OP_PEEK:
        if (op_try_match(op, &rp)) {
            op_complete(op, rp);
            return true;
        }
        break;
    case STREAM_OP_DRAIN:
        if (s->state != STREAM_LIVE) {
            op_complete(op, drain_now(s));
            return true;
        }
        break;
    default:
        break;
    }
    /* An op still compiling at the end waits for its patterns: the bytes
     * it would scan are all there, and they may hold its match. */
    if (s->state != STREAM_LIVE && !op->job) {
        op_complete(op, end_reply(s));
        return true;
    }
    if (!reactor_timer_armed(&op->timer)) {
        /* A zero timeout looks at what is there now: once its patterns
         * are compiled (op_compiled wakes it), not before. */
        if (op->timeout == 0 && op->job)
            return false;
        if (op->timeout == 0) {
            op_complete(op, op->kind == STREAM_OP_DRAIN ? drain_now(s)
                                                        : timeout_reply(op));
            return true;
        }
        if (reactor_timer_start(s->r, &op->timer, clock_now() + op->timeout,
                                op_timer_cb, op) < 0) {
            op_complete(op, error_reply(s, -ENOMEM));
            return true;
        }
    }
    return false;
}

static void
op_timer_cb(struct reactor *r, void *arg)
{
    struct stream_op *op = arg;
    struct stream *s = stream_ref(op->s);

    /* Data that arrived in this very loop turn still counts. */
    if (!op_try(op))
        op_complete(op, op->kind == STREAM_OP_DRAIN ? drain_now(s)
                                                    : timeout_reply(op));
    stream_run(s);
    stream_unref(s);
}

/* Answer ops from the head of the queue for as long as they complete. */
static void
stream_run(struct stream *s)
{
    if (s->running) {
        s->rerun = true;
        return;
    }
    s->running = true;
    stream_ref(s);
    do {
        s->rerun = false;
        while (s->head && op_try(s->head))
            ;
    } while (s->rerun);
    s->running = false;
    stream_unref(s);
}

/* ---- ops --------------------------------------------------------- */

/*
 * The stream ops of SPEC §5.2 and §9 as a command table (command.c): each
 * entry is the command's name, argument counts and usage, its kind, its
 * default timeout, and the parser of its arguments.
 */
struct op_entry;
typedef int op_args_fn(const struct op_entry *op, const struct command *cmd,
                       int argi, struct stream_op_spec *spec, char *err);

struct op_entry {
    struct command_entry c;
    enum stream_op_kind kind;
    uint64_t default_timeout;
    op_args_fn *args; /* NULL: the op takes none */
};

/* [T]: the op's timeout. */
static int
args_timeout(const struct op_entry *op, const struct command *cmd, int argi,
             struct stream_op_spec *spec, char *err)
{
    return argi < cmd->argc
                   ? duration_parse(cmd->argv[argi], &spec->timeout, err)
                   : 0;
}

/* A marker of a marked form: `-ex`, `-re`, `-re/FLAGS` (and, to say
 * what is wrong with it, `-ex/...`). 1 with the kind and flags, 0 if w
 * is none, -EINVAL with a message. */
static int
word_marker(const struct op_entry *op, struct word w, enum pattern_kind *kind,
            unsigned *flags, char *err)
{
    char perr[PATTERN_ERR_LEN];

    if (w.len < 3 || w.p[0] != '-' ||
        !(memcmp(w.p + 1, "re", 2) == 0 || memcmp(w.p + 1, "ex", 2) == 0) ||
        (w.len > 3 && w.p[3] != '/'))
        return 0;
    *kind = w.p[1] == 'r' ? PATTERN_REGEX : PATTERN_LITERAL;
    *flags = 0;
    if (w.len <= 4)
        return w.len == 3 ? 1
                          : (snprintf(err, COMMAND_ERR_LEN,
                                      "%s: `-%.2s/` without flags "
                                      "(expected -re/FLAGS, FLAGS from "
                                      "imsx)",
                                      op->c.name, w.p + 1),
                             -EINVAL);
    if (*kind == PATTERN_LITERAL) {
        snprintf(err, COMMAND_ERR_LEN,
                 "%s: `-ex` takes no flags (a literal is matched exactly; "
                 "use -re/i for caseless)",
                 op->c.name);
        return -EINVAL;
    }
    if (pattern_flags_parse(w.p + 4, w.len - 4, flags, perr) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "%s: %s", op->c.name, perr);
        return -EINVAL;
    }
    return 1;
}

/* The patterns of a marked form: MARKER WORD pairs from argv[argi]. */
static int
args_marked(const struct op_entry *op, const struct command *cmd, int *argi,
            struct stream_op_spec *spec, char *err)
{
    enum pattern_kind kind;
    unsigned flags, n = 0;
    int i = *argi, rc;

    spec->marked = true;
    while (i < cmd->argc &&
           (rc = word_marker(op, cmd->argv[i], &kind, &flags, err)) != 0) {
        if (rc < 0)
            return rc;
        if (i + 1 >= cmd->argc) {
            char what[16], problem[64];
            command_quote(cmd->argv[i], 8, what, sizeof what);
            snprintf(problem, sizeof problem, "`%s` without a pattern after it",
                     what);
            command_usage(&op->c, problem, err);
            return -EINVAL;
        }
        if (n < PATTERN_MAX_COUNT) {
            struct word p = cmd->argv[i + 1];
            spec->pats[n] = (struct pattern){kind, flags, p.p, p.len};
        }
        n++;
        i += 2;
    }
    if (n > PATTERN_MAX_COUNT) {
        snprintf(err, COMMAND_ERR_LEN, "%s: too many patterns (%u, at most %d)",
                 op->c.name, n, PATTERN_MAX_COUNT);
        return -EINVAL;
    }
    spec->npats = n;
    *argi = i;
    return 0;
}

/*
 * read_until / expect / peek (SPEC §5.2, §9.2; docs/matching.md):
 *
 *   OP P [T] [skip=printk]
 *   OP {-ex P | -re P | -re/FLAGS P}... [T] [skip=printk]
 *
 * Today's commands keep their meaning byte for byte: words that are
 * exactly `P` or `P T` with T a duration are a literal P and a timeout,
 * whatever P looks like (`expect -re 5` waits 5 s for `-re`). Every other
 * shape was an error before. A marked form's reply names the alternative
 * and the span; a plain one's is today's.
 */
static int
args_match(const struct op_entry *op, const struct command *cmd, int argi,
           struct stream_op_spec *spec, char *err)
{
    const struct word *w = cmd->argv;
    char tmp[COMMAND_ERR_LEN], perr[PATTERN_ERR_LEN];
    enum pattern_kind kind;
    unsigned flags;
    uint64_t t;
    int i = argi, n = cmd->argc - argi, rc;

    if (n == 1 || (n == 2 && duration_parse(w[argi + 1], &t, tmp) == 0)) {
        i++;
    } else if ((rc = word_marker(op, w[i], &kind, &flags, err)) < 0) {
        return rc;
    } else if (rc == 1) {
        if ((rc = args_marked(op, cmd, &i, spec, err)) < 0)
            return rc;
    } else {
        i++;
    }
    if (!spec->marked) {
        struct word p = w[argi];
        if (p.len > MATCH_MAX_PATTERN) {
            snprintf(err, COMMAND_ERR_LEN,
                     "%s: pattern too long (%zu bytes, at most %d)", op->c.name,
                     p.len, MATCH_MAX_PATTERN);
            return -EINVAL;
        }
        spec->pattern = p.p;
        spec->pattern_len = p.len;
    }
    /* [T]: a word without '=' (options have one, durations never). */
    if (i < cmd->argc && !memchr(w[i].p, '=', w[i].len) &&
        word_marker(op, w[i], &kind, &flags, tmp) == 0) {
        if ((rc = duration_parse(w[i], &spec->timeout, err)) < 0)
            return rc;
        i++;
    }
    for (; i < cmd->argc; i++) {
        struct word v;
        char what[64];
        if (word_option(w[i], "skip", &v)) {
            if (word_is(v, "printk")) {
                spec->scan_opts |= SCAN_SKIP_PRINTK;
                continue;
            }
            if (word_is(v, "none")) {
                spec->scan_opts &= ~SCAN_SKIP_PRINTK;
                continue;
            }
            command_quote(v, 32, what, sizeof what);
            snprintf(err, COMMAND_ERR_LEN,
                     "%s: skip=%s: expected printk or none", op->c.name, what);
            return -EINVAL;
        }
        command_quote(w[i], 32, what, sizeof what);
        if (memchr(w[i].p, '=', w[i].len)) {
            snprintf(tmp, sizeof tmp, "unknown option `%s` (expected skip=)",
                     what);
        } else if (word_marker(op, w[i], &kind, &flags, tmp) != 0) {
            snprintf(tmp, sizeof tmp,
                     "`%s` after the timeout (patterns come first)", what);
        } else {
            snprintf(tmp, sizeof tmp, "too many arguments");
        }
        command_usage(&op->c, tmp, err);
        return -EINVAL;
    }
    if (spec->marked &&
        pattern_set_check(spec->pats, spec->npats, 0, perr) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "%s: %s", op->c.name, perr);
        return -EINVAL;
    }
    return 0;
}

#define MATCH_USAGE(op)                                                        \
    op " P [T] [skip=printk], or " op " {-ex P|-re[/imsx] P}... [T] "          \
       "[skip=printk]"

static const struct op_entry op_table[] = {
        {{"next", 0, 1, "next [T]", NULL},
         STREAM_OP_NEXT,
         STREAM_DEFAULT_NEXT_TIMEOUT,
         args_timeout},
        {{"read_until", 1, -1, MATCH_USAGE("read_until"), "missing pattern"},
         STREAM_OP_READ_UNTIL,
         STREAM_DEFAULT_UNTIL_TIMEOUT,
         args_match},
        {{"expect", 1, -1, MATCH_USAGE("expect"), "missing pattern"},
         STREAM_OP_EXPECT,
         STREAM_DEFAULT_UNTIL_TIMEOUT,
         args_match},
        {{"peek", 1, -1, MATCH_USAGE("peek"), "missing pattern"},
         STREAM_OP_PEEK,
         STREAM_DEFAULT_UNTIL_TIMEOUT,
         args_match},
        {{"drain", 0, 1, "drain [T]", NULL},
         STREAM_OP_DRAIN,
         STREAM_DEFAULT_DRAIN_TIMEOUT,
         args_timeout},
        {{"eof", 0, 0, "eof", NULL}, STREAM_OP_EOF, 0, NULL},
        {{"close", 0, 0, "close", NULL}, STREAM_OP_CLOSE, 0, NULL},
};

const void *
stream_op_table(size_t *n, size_t *stride)
{
    *n = sizeof(op_table) / sizeof(op_table[0]);
    *stride = sizeof(op_table[0]);
    return op_table;
}

int
stream_op_parse(const struct command *cmd, struct stream_op_spec *spec,
                char *err)
{
    const struct command_entry *c;
    const struct op_entry *op;
    int argi;

    if (cmd->argc < 1) {
        snprintf(err, COMMAND_ERR_LEN, "empty command");
        return -EINVAL;
    }
    if (command_lookup(op_table, sizeof(op_table) / sizeof(op_table[0]),
                       sizeof(op_table[0]), cmd, "stream", &c, &argi, err) < 0)
        return -EINVAL;
    op = (const struct op_entry *)(const void *)c;
    memset(spec, 0, sizeof *spec);
    spec->kind = op->kind;
    spec->timeout = op->default_timeout;
    return op->args ? op->args(op, cmd, argi, spec, err) : 0;
}

/* The op's own copy of the spec's patterns: pats[] (a marked form) or
 * the one literal, in one allocation. */
static int
op_copy_patterns(struct stream_op *op, const struct stream_op_spec *spec)
{
    struct pattern one = {PATTERN_LITERAL, 0, spec->pattern, spec->pattern_len};
    const struct pattern *from = spec->npats ? spec->pats : &one;
    unsigned n = spec->npats ? spec->npats : 1;
    size_t bytes = n * sizeof *op->pats;
    char *p;

    if (n > PATTERN_MAX_COUNT)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++)
        bytes += from[i].len + 1;
    if (!(op->pats = malloc(bytes)))
        return -ENOMEM;
    p = (char *)&op->pats[n];
    for (unsigned i = 0; i < n; i++) {
        op->pats[i] = from[i];
        if (from[i].len)
            memcpy(p, from[i].src, from[i].len);
        p[from[i].len] = '\0';
        op->pats[i].src = p;
        p += from[i].len + 1;
    }
    op->npats = n;
    return 0;
}

int
stream_op_submit(struct stream *s, const struct stream_op_spec *spec,
                 stream_op_done_fn *done, void *arg, struct stream_op **opp)
{
    struct stream_op *op = calloc(1, sizeof *op);
    char err[PATTERN_ERR_LEN];
    int rc;

    if (!op)
        return -ENOMEM;
    op->kind = spec->kind;
    op->timeout = spec->timeout;
    if (op_matches(spec->kind)) {
        if ((rc = op_copy_patterns(op, spec)) < 0) {
            free(op);
            return rc;
        }
        op->scan_opts = spec->scan_opts;
        op->marked = spec->marked;
    }
    op->s = stream_ref(s);
    op->done = done;
    op->arg = arg;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    if (opp)
        *opp = op;
    /* The compile starts now, while earlier ops run; whatever it says is
     * answered in the op's turn. */
    if (op_matches(op->kind)) {
        rc = pattern_set_get_async(op->pats, op->npats, 0, s->r, op_compiled,
                                   op, &op->ps, &op->job, err);
        if (rc < 0)
            op_fail(op, rc, err);
    }
    /* Never answer from inside submit: the caller may not be ready. */
    stream_wake(s);
    return 0;
}

void
stream_op_redirect(struct stream_op *op, stream_op_done_fn *done, void *arg)
{
    op->done = done;
    op->arg = arg;
}

void
stream_op_cancel(struct stream_op *op)
{
    struct stream *s = op->s;
    bool was_head = s->head == op;

    op_unlink(op);
    stream_ref(s);
    op_release(op);
    if (was_head)
        stream_wake(s); /* start the next op */
    stream_unref(s);
}

/* ---- readers ----------------------------------------------------- */

static int
reader_new(struct stream *s, bool quiet, struct stream_reader **out)
{
    struct stream_reader *rd = calloc(1, sizeof *rd);

    if (!rd)
        return -ENOMEM;
    rd->s = stream_ref(s);
    rd->quiet = quiet;
    rd->next = s->readers;
    if (s->readers)
        s->readers->prev = rd;
    s->readers = rd;
    if (!quiet)
        s->nreaders++;
    *out = rd;
    return 0;
}

int
stream_reader_new(struct stream *s, struct stream_reader **out)
{
    return reader_new(s, false, out);
}

int
stream_reader_new_quiet(struct stream *s, struct stream_reader **out)
{
    return reader_new(s, true, out);
}

void
stream_reader_free(struct stream_reader *rd)
{
    struct stream *s;

    if (!rd)
        return;
    s = rd->s;
    if (rd->prev)
        rd->prev->next = rd->next;
    else
        s->readers = rd->next;
    if (rd->next)
        rd->next->prev = rd->prev;
    if (!rd->quiet)
        s->nreaders--;
    free(rd);
    stream_unref(s);
}

ssize_t
stream_reader_peek(struct stream_reader *rd, size_t max,
                   struct stream_span *out)
{
    struct stream *s = rd->s;

    if (rd->off < spool_size(s->sp))
        return max ? spool_span(s->sp, rd->off, max, out) : 0;
    if (s->state == STREAM_LIVE)
        return -EAGAIN;
    if (s->end_err && !rd->err_reported) {
        rd->err_reported = true;
        return s->end_err;
    }
    return 0;
}

void
stream_reader_advance(struct stream_reader *rd, size_t n)
{
    rd->off += n;
}

ssize_t
stream_reader_read(struct stream_reader *rd, void *buf, size_t len)
{
    struct stream_span sp;
    ssize_t n = stream_reader_peek(rd, len, &sp);

    if (n <= 0)
        return n;
    if (sp.mem)
        memcpy(buf, sp.mem, sp.len);
    else if ((n = spool_pread(rd->s->sp, buf, sp.len, sp.off)) <= 0)
        return n < 0 ? n : -EIO;
    stream_reader_advance(rd, (size_t)n);
    return n;
}

bool
stream_reader_ready(const struct stream_reader *rd)
{
    return reader_ready(rd);
}

uint64_t
stream_reader_offset(const struct stream_reader *rd)
{
    return rd->off;
}

void
stream_reader_seek(struct stream_reader *rd, uint64_t off)
{
    rd->off = off;
}

void
stream_reader_notify(struct stream_reader *rd, reactor_fn *fn, void *arg)
{
    rd->fn = fn;
    rd->arg = arg;
    if (fn && reader_ready(rd))
        stream_wake(rd->s);
}

unsigned
stream_readers(const struct stream *s)
{
    return s->nreaders;
}
