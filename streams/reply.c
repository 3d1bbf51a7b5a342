/*
 * reply.c - the ctl reply of SPEC §4.3: "<status> <length>\n" then exactly
 * <length> payload bytes.
 *
 * A payload is one of:
 *  - bytes in memory, copied at creation (messages, small results);
 *  - a range [from, to) of a stream's history, read from the spool when
 *    the reply is read;
 *  - drain records over [from, to): the first record runs from `from`
 *    (which may be inside a frame: the pending bytes) to the end of that
 *    frame, then one record per whole frame up to `to`; each record is
 *    "<n>\n" and its n bytes.
 *
 * History replies never hold their payload in memory: they can cover
 * hundreds of MiB. They hold a reference on the stream instead, which
 * keeps its spool alive until reply_free. A drain reply's length is
 * computed at creation by walking the frames once; reading keeps the
 * position of the record the last read ended in, so sequential reads cost
 * O(len) and a read at an earlier offset restarts from the first record.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

enum payload_kind { PAYLOAD_MEM, PAYLOAD_RANGE, PAYLOAD_DRAIN };

/* A drain record: frame k's bytes [start, end), at payload offset poff. */
struct record {
    uint64_t poff;
    uint64_t k;
    uint64_t start, end;
    char head[24]; /* "<n>\n" */
    size_t head_len;
};

struct reply {
    enum reply_status status;
    enum payload_kind kind;
    char *head;        /* "<status> <length>[ <fields>]\n": head_buf, or */
    char head_buf[32]; /* malloc'd when fields make it longer */
    size_t head_len;
    uint64_t payload_len;
    struct stream *s; /* range and drain: our reference */
    uint64_t from, to;
    struct record first, cur; /* drain: first record, last one read */
    char mem[];               /* mem payload */
};

static const char *const status_names[] = {
        [REPLY_OK] = "ok",       [REPLY_TIMEOUT] = "timeout",
        [REPLY_EOF] = "eof",     [REPLY_CLOSED] = "closed",
        [REPLY_ERROR] = "error",
};

const char *
reply_status_name(enum reply_status st)
{
    if ((unsigned)st >= sizeof(status_names) / sizeof(status_names[0]))
        return "error";
    return status_names[st];
}

/* Allocate a reply with room for extra payload bytes; the caller sets
 * payload_len, then calls reply_finish for the header. */
static struct reply *
reply_alloc(enum reply_status st, enum payload_kind kind, size_t extra)
{
    struct reply *rp;

    if (extra > SIZE_MAX - sizeof(*rp))
        return NULL;
    rp = calloc(1, sizeof(*rp) + extra);
    if (!rp)
        return NULL;
    rp->status = st;
    rp->kind = kind;
    return rp;
}

static void
reply_finish(struct reply *rp)
{
    rp->head = rp->head_buf;
    rp->head_len = (size_t)snprintf(
            rp->head_buf, sizeof(rp->head_buf), "%s %" PRIu64 "\n",
            reply_status_name(rp->status), rp->payload_len);
}

int
reply_set_fields(struct reply *rp, const char *fields)
{
    size_t len = strlen(rp->head_buf) + 1 + strlen(fields) + 1;
    char *h;

    if (!(h = malloc(len + 1)))
        return -ENOMEM;
    /* The length stays where it is: old readers split on the first
     * blank after it (docs/matching.md). */
    rp->head_len = (size_t)snprintf(h, len + 1, "%.*s %s\n",
                                    (int)(strlen(rp->head_buf) - 1),
                                    rp->head_buf, fields);
    if (rp->head != rp->head_buf)
        free(rp->head);
    rp->head = h;
    return 0;
}

int
reply_new_mem(enum reply_status st, const void *buf, size_t len,
              struct reply **out)
{
    struct reply *rp = reply_alloc(st, PAYLOAD_MEM, len);

    if (!rp)
        return -ENOMEM;
    if (len > 0)
        memcpy(rp->mem, buf, len);
    rp->payload_len = len;
    reply_finish(rp);
    *out = rp;
    return 0;
}

int
reply_new_fmt(enum reply_status st, struct reply **out, const char *fmt, ...)
{
    struct reply *rp;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    rp = reply_alloc(st, PAYLOAD_MEM, (size_t)n + 1);
    if (!rp)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(rp->mem, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rp->payload_len = (uint64_t)n;
    reply_finish(rp);
    *out = rp;
    return 0;
}

int
reply_new_range(struct stream *s, uint64_t from, uint64_t to,
                struct reply **out)
{
    struct reply *rp;

    if (from > to || to > stream_size(s))
        return -EINVAL;
    rp = reply_alloc(REPLY_OK, PAYLOAD_RANGE, 0);
    if (!rp)
        return -ENOMEM;
    rp->s = stream_ref(s);
    rp->from = from;
    rp->to = to;
    rp->payload_len = to - from;
    reply_finish(rp);
    *out = rp;
    return 0;
}

/* ---- drain records ---- */

/* Fill in rec->end and the record header for frame rec->k from
 * rec->start. A frame passing `to` means `to` is no frame boundary. */
static int
record_load(struct reply *rp, struct record *rec)
{
    int ret = spool_frame_end(stream_spool(rp->s), rec->k, &rec->end);

    if (ret < 0)
        return ret;
    if (rec->end <= rec->start || rec->end > rp->to)
        return -EINVAL;
    rec->head_len = (size_t)snprintf(rec->head, sizeof(rec->head),
                                     "%" PRIu64 "\n", rec->end - rec->start);
    return 0;
}

static uint64_t
record_size(const struct record *rec)
{
    return rec->head_len + (rec->end - rec->start);
}

static int
record_next(struct reply *rp, struct record *rec)
{
    rec->poff += record_size(rec);
    rec->start = rec->end;
    rec->k++;
    return record_load(rp, rec);
}

int
reply_new_drain(struct stream *s, uint64_t from, uint64_t to,
                struct reply **out)
{
    struct reply *rp;
    struct record rec;
    int ret;

    if (from > to || to > stream_size(s))
        return -EINVAL;
    rp = reply_alloc(REPLY_OK, PAYLOAD_DRAIN, 0);
    if (!rp)
        return -ENOMEM;
    rp->s = stream_ref(s);
    rp->from = from;
    rp->to = to;
    if (from < to) {
        rec = (struct record){.start = from};
        if ((ret = spool_frame_at(stream_spool(s), from, &rec.k)) < 0 ||
            (ret = record_load(rp, &rec)) < 0)
            goto err;
        rp->first = rec;
        while (rec.end < to) {
            if ((ret = record_next(rp, &rec)) < 0)
                goto err;
        }
        rp->payload_len = rec.poff + record_size(&rec);
        rp->cur = rp->first;
    }
    reply_finish(rp);
    *out = rp;
    return 0;
err:
    reply_free(rp);
    return ret;
}

/* Payload bytes [poff, poff + len) of a drain reply; len is within it. */
static ssize_t
drain_read(struct reply *rp, char *buf, size_t len, uint64_t poff)
{
    struct spool *sp = stream_spool(rp->s);
    struct record *rec = &rp->cur;
    size_t done = 0;
    int ret;

    if (poff < rec->poff)
        *rec = rp->first;
    while (done < len) {
        uint64_t at = poff + done - rec->poff;
        size_t n;

        if (at >= record_size(rec)) {
            if ((ret = record_next(rp, rec)) < 0)
                return done > 0 ? (ssize_t)done : ret;
            continue;
        }
        if (at < rec->head_len) {
            n = rec->head_len - (size_t)at;
            if (n > len - done)
                n = len - done;
            memcpy(buf + done, rec->head + at, n);
        } else {
            ssize_t got;

            n = len - done;
            if (n > record_size(rec) - at)
                n = (size_t)(record_size(rec) - at);
            got = spool_pread(sp, buf + done, n,
                              rec->start + (at - rec->head_len));
            if (got <= 0) /* 0: the history is shorter than its index */
                return done > 0 ? (ssize_t)done : got < 0 ? got : -EIO;
            n = (size_t)got;
        }
        done += n;
    }
    return (ssize_t)done;
}

/* Payload bytes [poff, poff + len) of a range reply; len is within it. */
static ssize_t
range_read(struct reply *rp, char *buf, size_t len, uint64_t poff)
{
    size_t done = 0;

    while (done < len) {
        ssize_t got = stream_pread(rp->s, buf + done, len - done,
                                   rp->from + poff + done);

        if (got <= 0)
            return done > 0 ? (ssize_t)done : got < 0 ? got : -EIO;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

ssize_t
reply_read(struct reply *rp, void *buf, size_t len, uint64_t off)
{
    uint64_t total = reply_length(rp);
    size_t done = 0;
    ssize_t got = 0;

    if (off >= total)
        return 0;
    if (len > total - off)
        len = (size_t)(total - off);
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    if (off < rp->head_len) {
        done = rp->head_len - (size_t)off;
        if (done > len)
            done = len;
        memcpy(buf, rp->head + off, done);
    }
    if (done < len) {
        char *p = (char *)buf + done;
        uint64_t poff = off + done - rp->head_len;

        switch (rp->kind) {
        case PAYLOAD_MEM:
            memcpy(p, rp->mem + poff, len - done);
            got = (ssize_t)(len - done);
            break;
        case PAYLOAD_RANGE:
            got = range_read(rp, p, len - done, poff);
            break;
        case PAYLOAD_DRAIN:
            got = drain_read(rp, p, len - done, poff);
            break;
        }
        /* Like read(2): an error after some bytes is reported by the
         * next call, which starts where it happened. */
        if (got < 0)
            return done > 0 ? (ssize_t)done : got;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

void
reply_free(struct reply *rp)
{
    if (!rp)
        return;
    if (rp->s)
        stream_unref(rp->s);
    if (rp->head != rp->head_buf)
        free(rp->head);
    free(rp);
}

enum reply_status
reply_status(const struct reply *rp)
{
    return rp->status;
}

uint64_t
reply_length(const struct reply *rp)
{
    return rp->head_len + rp->payload_len;
}

int
reply_collect(struct reply *rp, char **buf, size_t *len)
{
    uint64_t total = reply_length(rp);
    size_t done = 0;
    char *p;

    if (total >= SIZE_MAX)
        return -EFBIG;
    /* NUL-terminated for the convenience of tests; *len excludes it. */
    p = malloc((size_t)total + 1);
    if (!p)
        return -ENOMEM;
    while (done < total) {
        ssize_t got = reply_read(rp, p + done, (size_t)total - done, done);

        if (got <= 0) {
            free(p);
            return got < 0 ? (int)got : -EIO;
        }
        done += (size_t)got;
    }
    p[done] = '\0';
    *buf = p;
    *len = done;
    return 0;
}
