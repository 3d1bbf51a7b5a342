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
 *    consume. "Pending bytes" (SPEC §6.2) are simply the rest of the frame
 *    the cursor stands in after a match ended mid-frame: next returns them
 *    as one frame, drain as the first record. Nothing is copied, so nothing
 *    can be lost, duplicated or reordered.
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
 * Ownership. The registry, every open file, every reader, every queued op,
 * every reply with a history payload and a queued wake hold a reference.
 * The spool is freed with the last one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

#define LAST_BYTES_SHOWN 64 /* "last bytes seen" in timeout messages */

struct stream_op {
    struct stream *s;
    struct stream_op *next;
    struct stream_op_spec spec; /* spec.pattern points at our copy */
    struct matcher *m;
    uint64_t scan; /* read_until / expect: history matched up to here */
    bool started;
    struct reactor_timer timer;
    stream_op_done_fn *done;
    void *arg;
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
    if ((rc = spool_append(s->sp, buf, len)) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "history spool write failed: %s",
                 strerror(-rc));
        stream_end(s, rc, msg);
        return rc;
    }
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

/* C-escape bytes for a message; returns a malloc'd string or NULL. */
static char *
escape(const void *buf, size_t len)
{
    const unsigned char *b = buf;
    char *out = malloc(len * 4 + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = b[i];
        switch (c) {
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        default:
            if (c >= 0x20 && c < 0x7f)
                *o++ = (char)c;
            else
                o += sprintf(o, "\\x%02x", c);
        }
    }
    *o = '\0';
    return out;
}

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
        [STREAM_OP_NEXT] = "next",       [STREAM_OP_READ_UNTIL] = "read_until",
        [STREAM_OP_EXPECT] = "expect",   [STREAM_OP_DRAIN] = "drain",
        [STREAM_OP_EOF] = "eof",         [STREAM_OP_CLOSE] = "close",
    };
    return names[k];
}

static struct reply *
timeout_reply(struct stream_op *op)
{
    struct stream *s = op->s;
    struct reply *rp = NULL;
    uint64_t size = spool_size(s->sp);
    char t[32], seen[LAST_BYTES_SHOWN];

    duration_format(op->spec.timeout, t, sizeof t);
    if (op->spec.kind == STREAM_OP_NEXT) {
        reply_new_fmt(REPLY_TIMEOUT, &rp, "next timed out after %s", t);
        return rp;
    }
    /* Show the newest bytes the op looked at: the end of the history. */
    uint64_t from = size - s->cur > LAST_BYTES_SHOWN ? size - LAST_BYTES_SHOWN
                                                     : s->cur;
    ssize_t n = spool_pread(s->sp, seen, (size_t)(size - from), from);
    char *pat = escape(op->spec.pattern, op->spec.pattern_len);
    char *last = escape(seen, n > 0 ? (size_t)n : 0);
    if (pat && last && n > 0)
        reply_new_fmt(REPLY_TIMEOUT, &rp,
                      "%s timed out waiting for `%s`; timeout %s; "
                      "last bytes seen: `%s%s`",
                      op_name(op->spec.kind), pat, t,
                      from > s->cur ? "..." : "", last);
    else if (pat && last)
        reply_new_fmt(REPLY_TIMEOUT, &rp,
                      "%s timed out waiting for `%s`; timeout %s; "
                      "no bytes seen",
                      op_name(op->spec.kind), pat, t);
    free(pat);
    free(last);
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
    matcher_free(op->m);
    free((void *)(uintptr_t)op->spec.pattern);
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

/* Feed the matcher the history from op->scan on. 1 = match ending at
 * *end, 0 = none yet, -errno on a spool read failure. */
static int
op_scan(struct stream_op *op, uint64_t *end)
{
    struct stream *s = op->s;
    uint64_t size = spool_size(s->sp);

    /* An empty pattern matches at the cursor at once, bytes or not
     * (Provium: "an empty pattern matches at 0"). */
    if (op->spec.pattern_len == 0) {
        *end = op->scan;
        return 1;
    }
    while (op->scan < size) {
        size_t want = size - op->scan < sizeof scratch
                              ? (size_t)(size - op->scan)
                              : sizeof scratch;
        ssize_t n = spool_pread(s->sp, scratch, want, op->scan);
        size_t at;
        if (n <= 0)
            return n < 0 ? (int)n : -EIO;
        if (matcher_feed(op->m, scratch, (size_t)n, &at)) {
            *end = op->scan + at;
            return 1;
        }
        op->scan += (uint64_t)n;
    }
    return 0;
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

    if (!op->started) {
        op->started = true;
        op->scan = s->cur;
    }
    switch (op->spec.kind) {
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
    switch (op->spec.kind) {
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
        rc = op_scan(op, &end);
        if (rc < 0) {
            op_complete(op, error_reply(s, rc));
            return true;
        }
        if (rc == 1) {
            if (op->spec.kind == STREAM_OP_EXPECT)
                rc = reply_new_mem(REPLY_OK, "", 0, &rp);
            else
                rc = reply_new_range(s, s->cur, end, &rp);
            if (rc < 0 || (rc = cursor_move(s, end)) < 0) {
                reply_free(rp);
                rp = error_reply(s, rc);
            }
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
    if (s->state != STREAM_LIVE) {
        op_complete(op, end_reply(s));
        return true;
    }
    if (!reactor_timer_armed(&op->timer)) {
        if (op->spec.timeout == 0) {
            op_complete(op, op->spec.kind == STREAM_OP_DRAIN
                                ? drain_now(s)
                                : timeout_reply(op));
            return true;
        }
        if (reactor_timer_start(s->r, &op->timer,
                                clock_now() + op->spec.timeout, op_timer_cb,
                                op) < 0) {
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
        op_complete(op, op->spec.kind == STREAM_OP_DRAIN ? drain_now(s)
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
 * The stream ops of SPEC §5.2 as a command table (command.c): each entry
 * is the command's name, argument counts and usage, its kind, its default
 * timeout, and the parser of its arguments. An op with other arguments
 * (a pattern list, flags before the pattern) is one entry and one parser.
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

/* P [T]: a literal pattern (pointing into cmd), then the timeout. */
static int
args_pattern(const struct op_entry *op, const struct command *cmd, int argi,
             struct stream_op_spec *spec, char *err)
{
    struct word p = cmd->argv[argi];

    if (p.len > MATCH_MAX_PATTERN) {
        snprintf(err, COMMAND_ERR_LEN,
                 "%s: pattern too long (%zu bytes, at most %d)", op->c.name,
                 p.len, MATCH_MAX_PATTERN);
        return -EINVAL;
    }
    spec->pattern = p.p;
    spec->pattern_len = p.len;
    return args_timeout(op, cmd, argi + 1, spec, err);
}

static const struct op_entry op_table[] = {
        {{"next", 0, 1, "next [T]", NULL},
         STREAM_OP_NEXT,
         STREAM_DEFAULT_NEXT_TIMEOUT,
         args_timeout},
        {{"read_until", 1, 2, "read_until P [T]", "missing pattern"},
         STREAM_OP_READ_UNTIL,
         STREAM_DEFAULT_UNTIL_TIMEOUT,
         args_pattern},
        {{"expect", 1, 2, "expect P [T]", "missing pattern"},
         STREAM_OP_EXPECT,
         STREAM_DEFAULT_UNTIL_TIMEOUT,
         args_pattern},
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

int
stream_op_submit(struct stream *s, const struct stream_op_spec *spec,
                 stream_op_done_fn *done, void *arg, struct stream_op **opp)
{
    struct stream_op *op = calloc(1, sizeof *op);
    int rc;

    if (!op)
        return -ENOMEM;
    op->spec = *spec;
    op->spec.pattern = NULL;
    if (spec->kind == STREAM_OP_READ_UNTIL || spec->kind == STREAM_OP_EXPECT) {
        void *pat = malloc(spec->pattern_len + 1);
        if (!pat) {
            free(op);
            return -ENOMEM;
        }
        if (spec->pattern_len)
            memcpy(pat, spec->pattern, spec->pattern_len);
        op->spec.pattern = pat;
        if ((rc = matcher_new(pat, spec->pattern_len, &op->m)) < 0) {
            free(pat);
            free(op);
            return rc;
        }
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
