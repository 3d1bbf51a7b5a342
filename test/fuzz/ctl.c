/*
 * test/fuzz/ctl.c - libFuzzer target for what a stream's ctl file does
 * with a sequence of writes: each command line goes through
 * command_parse and stream_op_parse and, when it parses, is submitted to
 * a real stream (streams/stream.c) whose source the input also drives.
 * The replies are checked against a model of the stream.
 *
 * Input: byte 0 picks the history limit (0: none, else a multiple of 64
 * bytes), then records, each a tag byte and its operands:
 *   tag % 6 == 0  append a frame: a length byte L, then L + 1 bytes
 *             1   a ctl write: the bytes up to '\n' (or the end)
 *             2   run the reactor a few turns
 *             3   end the source (clean, or with an error)
 *             4   read what a data reader has and compare it
 *             5   cancel an outstanding op (its requester went away)
 * Non-zero timeouts become an hour, so that only the input decides what
 * happens (a timeout of 0 answers at once). After a write whose patterns
 * compile on a compiler thread, the target waits for the compile, so a
 * run depends on the input alone. Regexes with a number of 4 digits or
 * more are left out, as in fuzz_pattern (Hyperscan takes seconds on
 * large bounded repeats; the compile is off the reactor thread, but the
 * fuzzer would crawl).
 *
 * Invariants checked:
 *  - every submitted op is answered exactly once (never when cancelled),
 *    in submission order, with a reply whose wire form is
 *    "<status> <length>\n" then exactly length bytes;
 *  - the test cursor never moves back, never passes the history, and
 *    moves only with an ok reply;
 *  - next/read_until return exactly the history bytes they consumed;
 *    read_until/expect consume up to the earliest end of a match of
 *    their pattern; drain's records are the consumed bytes, in order;
 *  - the marked forms (`-ex`/`-re` lists, SPEC §9) and peek: the reply's
 *    fields name an alternative of the list and a span that ends where
 *    the op stopped (read_until and expect consumed exactly up to it,
 *    peek nothing); read_until and peek return the bytes up to it,
 *    expect the match itself; a literal's span is its bytes, no literal
 *    of the list ends earlier; a regex (PCRE2, compiled here) matches
 *    the span exactly, anchored at both ends; each group lies inside the
 *    match (without skip=printk, which changes what the patterns see);
 *  - eof is true only when the source ended and nothing is left (or the
 *    stream is closed);
 *  - the history (and a data reader) holds exactly the frames appended
 *    until the limit or the end, in order; an append past the limit
 *    ends the stream, and the reader then gets EFBIG once.
 *
 * Run: fuzz_ctl -max_total_time=60 test/fuzz/corpus/ctl
 */
#include <errno.h>
#include <stdbool.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 256
#define MAX_HISTORY (1 << 20)

struct op {
    struct model *m;
    unsigned seq;
    enum stream_op_kind kind;
    char *pattern;
    size_t pattern_len;
    /* A marked form: its patterns (copies) and options. */
    bool marked, skip;
    unsigned npats;
    struct pattern *pats;
    struct stream_op *handle;
    bool answered, cancelled;
};

struct model {
    struct reactor *r;
    struct stream *s;
    uint8_t history[MAX_HISTORY];
    size_t size;     /* bytes appended and accepted */
    uint64_t cur;    /* the test cursor as of the last answer */
    unsigned next_seq;
    struct op ops[MAX_OPS];
    unsigned nops;
    bool ended, closed;
    int end_err; /* what a reader gets once at the end */
};

static struct model M;

/* Does pattern occur in buf[0, len) so that it ends at or before len? */
static bool
occurs(const uint8_t *buf, size_t len, const char *p, size_t plen)
{
    return plen == 0 || (len >= plen && memmem(buf, len, p, plen) != NULL);
}

/* Does the regex match subj[from, to) exactly (the subject starting at
 * the op's cursor, for ^ and \b)? */
static bool
regex_spans(const struct pattern *p, const uint8_t *subj, size_t from,
            size_t to)
{
    uint32_t o = PCRE2_NEVER_UTF | PCRE2_NEVER_UCP |
                 (p->flags & PATTERN_CASELESS ? PCRE2_CASELESS : 0) |
                 (p->flags & PATTERN_MULTILINE ? PCRE2_MULTILINE : 0) |
                 (p->flags & PATTERN_DOTALL ? PCRE2_DOTALL : 0) |
                 (p->flags & PATTERN_EXTENDED ? PCRE2_EXTENDED : 0);
    int e;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile(p->src, p->len, o, &e, &eo, NULL);
    pcre2_match_data *md;
    int rc;

    CHECK(re != NULL); /* the daemon compiled it */
    md = pcre2_match_data_create_from_pattern(re, NULL);
    rc = pcre2_match(re, subj, to, from, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md,
                     NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    /* A match limit (pathological backtracking) proves nothing. */
    return rc > 0 || rc == PCRE2_ERROR_MATCHLIMIT ||
           rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT;
}

/* The fields of a marked form's reply, checked against the op. */
static void
check_marked(struct op *op, const char *fields, const uint8_t *took,
             size_t ntook, const uint8_t *pay, size_t plen, size_t avail)
{
    unsigned alt;
    char from[32];
    unsigned long long to;
    int used = 0;

    CHECK(sscanf(fields, "%u %31s %llu%n", &alt, from, &to, &used) == 3);
    CHECK(alt >= 1 && alt <= op->npats);
    CHECK(to <= avail);
    bool known = strcmp(from, "-") != 0;
    unsigned long long start = known ? strtoull(from, NULL, 10) : 0;
    CHECK(start <= to);
    if (op->kind == STREAM_OP_PEEK)
        CHECK(ntook == 0);
    else
        CHECK(ntook == to);
    if (op->kind == STREAM_OP_EXPECT)
        CHECK(known ? plen == to - start && memcmp(pay, took + start, plen) == 0
                    : plen == 0);
    else
        CHECK(plen == to && memcmp(pay, took, plen) == 0);
    /* Groups: pairs inside the match, or "- -". */
    const char *f = fields + used;
    char a[32], b[32];
    int k;
    while (sscanf(f, " %31s %31s%n", a, b, &k) == 2) {
        if (strcmp(a, "-") != 0 && !op->skip) {
            unsigned long long ga = strtoull(a, NULL, 10),
                               gb = strtoull(b, NULL, 10);
            CHECK(ga <= gb && gb <= to && (!known || ga >= start));
        }
        f += k;
    }
    CHECK(*f == '\0');
    if (op->skip)
        return; /* the patterns saw other bytes than these */
    const struct pattern *p = &op->pats[alt - 1];
    if (p->kind == PATTERN_LITERAL) {
        CHECK(to >= p->len && memcmp(took + to - p->len, p->src, p->len) == 0);
        CHECK(!known || start == to - p->len);
    } else if (known) {
        CHECK(regex_spans(p, took, (size_t)start, (size_t)to));
    }
    /* The earliest end: no literal of the list ends before it. */
    for (unsigned i = 0; i < op->npats; i++) {
        const struct pattern *q = &op->pats[i];
        if (q->kind != PATTERN_LITERAL || q->len == 0)
            continue;
        CHECK(to == 0 || !occurs(took, (size_t)to - 1, q->src, q->len));
        /* ...nor at the same end with a lower index. */
        if (i + 1 < alt)
            CHECK(!(to >= q->len &&
                    memcmp(took + to - q->len, q->src, q->len) == 0));
    }
}

static void
on_done(struct stream *s, struct reply *rp, void *arg)
{
    struct op *op = arg;
    struct model *m = op->m;
    char *buf, head[64];
    size_t len, hl;
    uint64_t now = stream_consumed(s);

    CHECK(!op->answered && !op->cancelled);
    op->answered = true;
    op->handle = NULL;
    /* In order: every earlier op was answered or cancelled. */
    for (unsigned i = 0; i < op->seq; i++)
        CHECK(m->ops[i].answered || m->ops[i].cancelled);
    CHECK(rp != NULL);
    CHECK(reply_collect(rp, &buf, &len) == 0);
    enum reply_status st = reply_status(rp);
    CHECK(reply_length(rp) == len);
    char *nl = memchr(buf, '\n', len);
    CHECK(nl != NULL);
    hl = (size_t)(nl - buf) + 1;
    const uint8_t *pay = (const uint8_t *)buf + hl;
    size_t plen = len - hl;
    snprintf(head, sizeof(head), "%s %zu", reply_status_name(st), plen);
    /* Fields follow the length only in a marked form's ok reply. */
    bool fields = op->marked && st == REPLY_OK;
    CHECK(memcmp(head, buf, strlen(head)) == 0);
    CHECK(fields ? buf[strlen(head)] == ' ' && hl > strlen(head) + 1
                 : hl == strlen(head) + 1);
    *nl = '\0';

    CHECK(now >= m->cur);
    CHECK(now <= stream_size(s));
    CHECK(stream_size(s) == m->size);
    const uint8_t *took = m->history + m->cur;
    size_t ntook = (size_t)(now - m->cur);
    if (st != REPLY_OK)
        CHECK(ntook == 0);
    if (st == REPLY_OK) {
        switch (op->kind) {
        case STREAM_OP_NEXT:
            CHECK(plen > 0 && plen == ntook && memcmp(pay, took, plen) == 0);
            break;
        case STREAM_OP_READ_UNTIL:
        case STREAM_OP_EXPECT:
        case STREAM_OP_PEEK:
            if (op->marked) {
                check_marked(op, buf + strlen(head) + 1, took, ntook, pay, plen,
                             (size_t)(stream_size(s) - m->cur));
                break;
            }
            if (op->kind == STREAM_OP_PEEK) {
                CHECK(ntook == 0);
                /* What read_until would return, nothing consumed. */
                took = pay;
                ntook = plen;
                CHECK(memcmp(pay, m->history + m->cur, plen) == 0);
            } else if (op->kind == STREAM_OP_READ_UNTIL) {
                CHECK(plen == ntook && memcmp(pay, took, plen) == 0);
            } else {
                CHECK(plen == 0);
            }
            if (op->skip)
                break; /* records may lie inside the match */
            CHECK(ntook >= op->pattern_len);
            /* The earliest match end: none ends before the last byte.
             * (No pattern: op->pattern is NULL, and memcmp's arguments must
             * not be, even for 0 bytes.) */
            if (op->pattern_len > 0) {
                CHECK(memcmp(took + ntook - op->pattern_len, op->pattern,
                             op->pattern_len) == 0);
                CHECK(!occurs(took, ntook - 1, op->pattern, op->pattern_len));
            }
            break;
        case STREAM_OP_DRAIN: {
            size_t at = 0, got = 0;
            while (at < plen) {
                char *end;
                unsigned long n = strtoul((const char *)pay + at, &end, 10);
                CHECK(end != (const char *)pay + at && *end == '\n');
                at = (size_t)((const uint8_t *)end - pay) + 1;
                CHECK(n > 0 && n <= plen - at);
                CHECK(got + n <= ntook && memcmp(pay + at, took + got, n) == 0);
                got += n;
                at += n;
            }
            CHECK(got == ntook);
            break;
        }
        case STREAM_OP_EOF:
            CHECK((plen == 4 && memcmp(pay, "true", 4) == 0) ||
                  (plen == 5 && memcmp(pay, "false", 5) == 0));
            if (plen == 4)
                CHECK(stream_state(s) == STREAM_CLOSED ||
                      (stream_state(s) == STREAM_ENDED &&
                       now == stream_size(s)));
            else
                CHECK(stream_state(s) != STREAM_CLOSED);
            break;
        case STREAM_OP_CLOSE:
            CHECK(plen == 0);
            break;
        }
    }
    m->cur = now;
    free(buf);
    reply_free(rp);
}

static void
run_turns(struct reactor *r, int n)
{
    for (int i = 0; i < n; i++)
        CHECK(reactor_run_once(r, 0) == 0);
}

static void
op_free(struct op *op)
{
    free(op->pattern);
    for (unsigned i = 0; op->pats && i < op->npats; i++)
        free((void *)(uintptr_t)op->pats[i].src);
    free(op->pats);
}

/* A number of 4 digits or more: a bounded repeat Hyperscan is slow on. */
static bool
slow_repeat(const void *src, size_t len)
{
    const uint8_t *p = src;
    size_t run = 0;

    for (size_t i = 0; i < len; i++) {
        run = p[i] >= '0' && p[i] <= '9' ? run + 1 : 0;
        if (run >= 4)
            return true;
    }
    return false;
}

static void
ctl_write(struct model *m, const uint8_t *line, size_t len)
{
    struct command cmd;
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];

    if (command_parse(&cmd, (const char *)line, len, err) < 0) {
        CHECK(strnlen(err, sizeof(err)) > 0);
        return;
    }
    if (stream_op_parse(&cmd, &spec, err) < 0 || m->nops == MAX_OPS) {
        command_free(&cmd);
        return;
    }
    for (unsigned i = 0; i < spec.npats; i++)
        if (spec.pats[i].kind == PATTERN_REGEX &&
            slow_repeat(spec.pats[i].src, spec.pats[i].len)) {
            command_free(&cmd);
            return;
        }
    if (spec.timeout > 0)
        spec.timeout = 3600 * USEC_PER_SEC;
    struct op *op = &m->ops[m->nops];
    *op = (struct op){.m = m,
                      .seq = m->nops,
                      .kind = spec.kind,
                      .marked = spec.marked,
                      .skip = spec.scan_opts & SCAN_SKIP_PRINTK,
                      .npats = spec.npats};
    if (spec.pattern_len) {
        CHECK((op->pattern = malloc(spec.pattern_len)) != NULL);
        memcpy(op->pattern, spec.pattern, spec.pattern_len);
        op->pattern_len = spec.pattern_len;
    }
    if (spec.npats) {
        CHECK((op->pats = calloc(spec.npats, sizeof *op->pats)) != NULL);
        for (unsigned i = 0; i < spec.npats; i++) {
            char *c = malloc(spec.pats[i].len + 1);
            CHECK(c != NULL);
            memcpy(c, spec.pats[i].src, spec.pats[i].len);
            c[spec.pats[i].len] = '\0';
            op->pats[i] = spec.pats[i];
            op->pats[i].src = c;
        }
    }
    if (stream_op_submit(m->s, &spec, on_done, op, &op->handle) == 0)
        m->nops++;
    else
        op_free(op);
    command_free(&cmd); /* the op copied the patterns */
    /* A compile on a compiler thread: wait for it (determinism). */
    while (pattern_jobs() > 0)
        CHECK(reactor_run_once(m->r, clock_now() + 10 * USEC_PER_MSEC) == 0);
}

static void
check_reader(struct model *m, struct stream_reader *rd)
{
    static uint8_t buf[MAX_HISTORY];
    size_t have = (size_t)stream_reader_offset(rd);

    for (;;) {
        ssize_t n = stream_reader_read(rd, buf, sizeof(buf));
        if (n == -EAGAIN) {
            CHECK(stream_state(m->s) == STREAM_LIVE);
            CHECK(have == m->size);
            return;
        }
        if (n < 0) {
            CHECK(n == m->end_err && m->ended && have == m->size);
            continue;
        }
        if (n == 0) {
            CHECK(stream_state(m->s) != STREAM_LIVE && have == m->size);
            return;
        }
        CHECK(have + (size_t)n <= m->size);
        CHECK(memcmp(buf, m->history + have, (size_t)n) == 0);
        have += (size_t)n;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model *m = &M;
    struct reactor *r;
    struct stream_reader *rd;
    const char *tmp = getenv("TMPDIR");
    size_t pos = 1;

    if (size < 1)
        return 0;
    uint64_t limit = (uint64_t)(data[0] & 0x3f) * 64;
    struct stream_config cfg = {.spool_dir = tmp && *tmp ? tmp : "/tmp",
                                .history_limit = limit,
                                .noun = "stream"};
    memset(m, 0, offsetof(struct model, history));
    m->size = 0;
    m->cur = 0;
    m->nops = 0;
    m->ended = m->closed = false;
    m->end_err = 0;
    CHECK(reactor_new(&r) == 0);
    m->r = r;
    CHECK(stream_new(r, &cfg, &m->s) == 0);
    CHECK(stream_reader_new(m->s, &rd) == 0);

    while (pos < size) {
        uint8_t tag = data[pos++] % 6;
        switch (tag) {
        case 0: {
            size_t n = pos < size ? (size_t)data[pos++] + 1 : 1;
            if (n > size - pos)
                n = size - pos;
            if (n == 0)
                break;
            int rc = stream_append(m->s, data + pos, n);
            if (rc == 0) {
                CHECK(!m->ended && !m->closed);
                CHECK(!limit || m->size + n <= limit);
                CHECK(m->size + n <= MAX_HISTORY);
                memcpy(m->history + m->size, data + pos, n);
                m->size += n;
            } else if (rc == -EFBIG) {
                CHECK(limit && m->size + n > limit && !m->ended);
                m->ended = true;
                m->end_err = -EFBIG;
            } else {
                CHECK(rc == -EPIPE && (m->ended || m->closed));
            }
            pos += n;
            break;
        }
        case 1: {
            const uint8_t *nl = memchr(data + pos, '\n', size - pos);
            size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
            ctl_write(m, data + pos, len);
            pos += len + (nl != NULL);
            break;
        }
        case 2:
            run_turns(r, 4);
            break;
        case 3: {
            bool fails = pos < size && (data[pos++] & 1);
            if (stream_state(m->s) == STREAM_LIVE) {
                m->ended = true;
                m->end_err = fails ? -EIO : 0;
            }
            if (fails)
                stream_end(m->s, -EIO, "fuzz: source failed");
            else
                stream_end(m->s, 0, NULL);
            break;
        }
        case 4:
            check_reader(m, rd);
            break;
        case 5:
            if (pos < size && m->nops) {
                struct op *op = &m->ops[data[pos++] % m->nops];
                if (!op->answered && !op->cancelled && op->handle) {
                    stream_op_cancel(op->handle);
                    op->cancelled = true;
                    op->handle = NULL;
                }
            }
            break;
        }
        if (stream_state(m->s) == STREAM_CLOSED)
            m->closed = true;
    }
    run_turns(r, 4);
    /* A reader sees the whole history, then the end if there is one. */
    stream_close(m->s);
    m->closed = true;
    run_turns(r, 8);
    for (unsigned i = 0; i < m->nops; i++) {
        CHECK(m->ops[i].answered || m->ops[i].cancelled);
        op_free(&m->ops[i]);
    }
    stream_reader_free(rd);
    stream_unref(m->s);
    run_turns(r, 2);
    reactor_free(r);
    return 0;
}
