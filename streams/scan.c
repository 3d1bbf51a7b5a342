/*
 * scan.c - the streaming scanner of one read_until / expect / peek: a
 * compiled pattern set (pattern.c) run over the bytes from the op's
 * cursor, fed chunk by chunk, reporting the EARLIEST match end of any
 * pattern (SPEC §9.1), ties going to the lower pattern index.
 *
 * State is fixed per op whatever the stream's size: Hyperscan's stream
 * state (or match.c's KMP state for the single-literal engine), the
 * printk filter's lookahead, and two small rings of recent bytes for
 * the timeout message. Bytes are examined once, never copied beyond
 * those rings, never rescanned.
 *
 * Deciding "earliest, then lowest index". Hyperscan reports the matches
 * ending at one offset during the scan call that scans that offset, but
 * not sorted within the call (a start-of-match pattern's match may come
 * after another pattern's later one), and patterns it flags "unordered",
 * those ending in an assertion about the next byte (`a\b`, `(?m)a$`), are
 * reported only once that byte has been scanned, which can be in the next
 * call. So:
 *
 *  - every callback keeps the best (end, index) seen, and a call always
 *    runs to the end of its bytes (at most one chunk past the match);
 *  - a best match ending before the last byte scanned is final;
 *  - one ending exactly at the last byte scanned is final for an ordered
 *    set; for an unordered one, or one where a pattern can match at the
 *    end of the data, it is held until the next byte has been scanned
 *    (next run) or scan_idle/scan_finish below have looked at the end;
 *    so is one ending just before a final newline when `$` could match
 *    there (PCRE's `$` matches before a newline that ends the data).
 *
 * The end of the data. PCRE's `$`, `\z`, `\Z` and a trailing `\b` match at
 * the end of the subject. On a live stream the subject has no end, so
 * (like pexpect and Tcl expect) the scanner treats "the end of the bytes
 * received so far" as one when its caller says it has caught up with the
 * stream (scan_idle): it asks Hyperscan for the end-of-data matches of a
 * copy of the stream state, and keeps scanning afterwards if there are
 * none. `login: *$` thus matches a prompt that is waiting for input. At
 * the real end of the stream, scan_finish does the same for good.
 *
 * skip=printk. The printk filter (printk.c) sits in front: the patterns
 * see the filtered bytes, in runs. Each run starts at a known raw offset,
 * so every time the distance between raw and filtered offsets grows (a
 * record was removed), the scanner notes (filtered offset, distance) in
 * a ring of SCAN_JUMPS; match ends and starts are mapped back through it.
 * A start older than every remembered jump is reported unknown.
 */
#include <errno.h>
#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

#define SCAN_RING 1024   /* bytes the patterns saw, for "closest" */
#define SCAN_LAST 64     /* raw bytes shown as "last bytes seen" */
#define SCAN_JUMPS 64    /* printk removals remembered for span starts */
#define CLOSEST_MIN 2    /* shortest prefix worth reporting */
#define CLOSEST_AFTER 40 /* bytes shown after it */
#define LIST_SHOWN 64    /* bytes of each pattern of a list in a message */

enum scan_state { RUNNING, MATCHED, FINISHED };

struct scan {
    struct pattern_set *ps;
    const struct pattern_set_info *info;
    hs_stream_t *hs;    /* the op's Hyperscan stream */
    hs_stream_t *spare; /* end-of-data checks run on a copy of it */
    struct matcher *m;  /* the single-literal engine */
    enum scan_state state;
    int err; /* an engine error met while filtering */

    uint64_t raw; /* raw bytes fed */
    uint64_t out; /* bytes the patterns saw */

    bool have; /* best match so far (not yet reported) */
    unsigned best;
    uint64_t best_to, best_from;

    bool skip;
    struct printk pk;
    uint64_t delta; /* raw - filtered offset at the current position */
    struct {
        uint64_t pos, delta;
    } jumps[SCAN_JUMPS];
    unsigned njumps, jnext;
    bool jumps_lost;

    unsigned char ring[SCAN_RING]; /* the newest bytes the patterns saw */
    unsigned char last[SCAN_LAST]; /* the newest raw bytes */
};

/* ---- rings -------------------------------------------------------- */

/* Store p[0..n) as bytes [at, at+n) of a stream kept in a ring of cap. */
static void
ring_put(unsigned char *ring, size_t cap, uint64_t at, const void *p, size_t n)
{
    const unsigned char *b = p;

    if (n > cap) {
        b += n - cap;
        at += n - cap;
        n = cap;
    }
    size_t o = (size_t)(at % cap), first = n < cap - o ? n : cap - o;
    memcpy(ring + o, b, first);
    memcpy(ring, b + first, n - first);
}

/* The newest min(total, cap) bytes, in order; returns their number. */
static size_t
ring_get(const unsigned char *ring, size_t cap, uint64_t total,
         unsigned char *out)
{
    size_t n = total < cap ? (size_t)total : cap;
    size_t o = (size_t)((total - n) % cap), first = n < cap - o ? n : cap - o;

    memcpy(out, ring + o, first);
    memcpy(out + first, ring, n - first);
    return n;
}

/* ---- the engines -------------------------------------------------- */

static int
on_match(unsigned int id, unsigned long long from, unsigned long long to,
         unsigned int flags, void *ctx)
{
    struct scan *sc = ctx;

    if (!sc->have || to < sc->best_to || (to == sc->best_to && id < sc->best)) {
        sc->have = true;
        sc->best = id;
        sc->best_to = to;
        sc->best_from = from;
    } else if (to == sc->best_to && id == sc->best && from < sc->best_from) {
        sc->best_from = from;
    }
    /* Never stop early: within one scan call Hyperscan may report a match
     * after one that ends later (start-of-match patterns do). */
    return 0;
}

/* Run the patterns over n filtered bytes. */
static int
engine_feed(struct scan *sc, const void *p, size_t n)
{
    if (sc->m) {
        size_t end;
        if (!sc->have && matcher_feed(sc->m, p, n, &end)) {
            sc->have = true;
            sc->best = 0;
            sc->best_to = sc->out + end;
        }
    } else if (sc->hs) {
        hs_error_t rc = hs_scan_stream(sc->hs, p, (unsigned)n, 0,
                                       pattern_scratch(), on_match, sc);
        if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED)
            return rc == HS_NOMEM ? -ENOMEM : -EIO;
    }
    ring_put(sc->ring, SCAN_RING, sc->out, p, n);
    sc->out += n;
    return 0;
}

/*
 * Is the best match so far final? (See the top of the file.) Not while a
 * lower index may still match at its end:
 *  - at the last byte scanned, a late (unordered) pattern, or one that
 *    matches at the end of the data (scan_idle);
 *  - at the byte before a final newline, `$` (it matches before a newline
 *    that ends the data).
 */
static bool
decided(const struct scan *sc)
{
    if (!sc->have)
        return false;
    if (sc->best_to == sc->out)
        return sc->info->ordered && !sc->info->eod;
    if (sc->best_to + 1 == sc->out && sc->info->eod)
        return sc->ring[(sc->out - 1) % SCAN_RING] != '\n';
    return true;
}

/* The end-of-data matches of the bytes scanned so far, on a copy of the
 * stream state (final: on the stream itself). */
static int
engine_eod(struct scan *sc, bool final)
{
    hs_error_t rc;

    if (!sc->hs || !sc->info->eod)
        return 0;
    if (final) {
        rc = hs_reset_stream(sc->hs, 0, pattern_scratch(), on_match, sc);
    } else {
        rc = hs_reset_and_copy_stream(sc->spare, sc->hs, NULL, NULL, NULL);
        if (rc == HS_SUCCESS)
            rc = hs_reset_stream(sc->spare, 0, pattern_scratch(), on_match, sc);
    }
    return rc == HS_SUCCESS ? 0 : rc == HS_NOMEM ? -ENOMEM : -EIO;
}

/* ---- offsets ------------------------------------------------------ */

/* Raw offset of the byte the patterns saw at filtered offset f. */
static uint64_t
raw_of(const struct scan *sc, uint64_t f)
{
    if (!sc->skip)
        return f;
    for (unsigned k = 0; k < sc->njumps; k++) {
        unsigned j = (sc->jnext + SCAN_JUMPS - 1 - k) % SCAN_JUMPS;
        if (sc->jumps[j].pos <= f)
            return f + sc->jumps[j].delta;
    }
    return sc->jumps_lost ? PATTERN_UNKNOWN : f;
}

static int
report(struct scan *sc, struct scan_match *m)
{
    uint64_t start =
            pattern_set_start(sc->ps, sc->best, sc->best_from, sc->best_to);
    uint64_t last = raw_of(sc, sc->best_to - 1);

    m->index = sc->best;
    /* The last matched byte is recent: it is never past the jump ring. */
    m->end = (last == PATTERN_UNKNOWN ? sc->best_to - 1 + sc->delta : last) + 1;
    m->start = start == PATTERN_UNKNOWN ? PATTERN_UNKNOWN : raw_of(sc, start);
    /* For captures: the byte the patterns saw before the match. */
    m->ctx = start == PATTERN_UNKNOWN || m->start == PATTERN_UNKNOWN ||
                             start == 0
                     ? PATTERN_UNKNOWN
                     : raw_of(sc, start - 1);
    sc->state = MATCHED;
    return 1;
}

static int
report_empty(struct scan *sc, struct scan_match *m)
{
    m->index = (unsigned)sc->info->empty;
    m->start = m->end = 0;
    m->ctx = PATTERN_UNKNOWN;
    sc->state = MATCHED;
    return 1;
}

/* A run of kept bytes from the printk filter. Nonzero stops it. */
static int
on_run(void *arg, const void *p, size_t n, uint64_t raw_off)
{
    struct scan *sc = arg;
    uint64_t delta = raw_off - sc->out;
    int rc;

    if (delta != sc->delta) {
        sc->jumps[sc->jnext].pos = sc->out;
        sc->jumps[sc->jnext].delta = delta;
        sc->jnext = (sc->jnext + 1) % SCAN_JUMPS;
        if (sc->njumps < SCAN_JUMPS)
            sc->njumps++;
        else
            sc->jumps_lost = true;
        sc->delta = delta;
    }
    if ((rc = engine_feed(sc, p, n)) < 0) {
        sc->err = rc;
        return 1;
    }
    return decided(sc);
}

/* ---- the scanner -------------------------------------------------- */

int
scan_new(struct pattern_set *ps, unsigned opts, struct scan **out)
{
    struct scan *sc = calloc(1, sizeof *sc);
    const struct pattern_set_info *info = pattern_set_info(ps);
    int rc = -ENOMEM;

    if (!sc)
        return -ENOMEM;
    sc->ps = pattern_set_ref(ps);
    sc->info = info;
    sc->skip = opts & SCAN_SKIP_PRINTK;
    printk_init(&sc->pk);
    if (info->memmem) {
        const struct pattern *p = pattern_set_pattern(ps, 0);
        if ((rc = matcher_new(p->src, p->len, &sc->m)) < 0)
            goto fail;
    } else if (info->db) {
        if (hs_open_stream(info->db, 0, &sc->hs) != HS_SUCCESS)
            goto fail;
        if (info->eod && hs_open_stream(info->db, 0, &sc->spare) != HS_SUCCESS)
            goto fail;
    }
    *out = sc;
    return 0;
fail:
    scan_free(sc);
    return rc;
}

void
scan_free(struct scan *sc)
{
    if (!sc)
        return;
    if (sc->hs)
        hs_close_stream(sc->hs, NULL, NULL, NULL);
    if (sc->spare)
        hs_close_stream(sc->spare, NULL, NULL, NULL);
    matcher_free(sc->m);
    pattern_set_put(sc->ps);
    free(sc);
}

void
scan_reset(struct scan *sc)
{
    if (sc->hs)
        hs_reset_stream(sc->hs, 0, NULL, NULL, NULL);
    if (sc->m)
        matcher_reset(sc->m);
    printk_init(&sc->pk);
    sc->state = RUNNING;
    sc->err = 0;
    sc->raw = sc->out = sc->delta = 0;
    sc->have = false;
    sc->njumps = sc->jnext = 0;
    sc->jumps_lost = false;
}

int
scan_feed(struct scan *sc, const void *buf, size_t len, struct scan_match *m)
{
    int rc;

    if (sc->state != RUNNING)
        return -EINVAL;
    if (sc->info->empty >= 0)
        return report_empty(sc, m);
    ring_put(sc->last, SCAN_LAST, sc->raw, buf, len);
    sc->raw += len;
    if (sc->skip) {
        printk_filter(&sc->pk, buf, len, on_run, sc);
        if (sc->err)
            return sc->err;
    } else if ((rc = engine_feed(sc, buf, len)) < 0) {
        return rc;
    }
    return decided(sc) ? report(sc, m) : 0;
}

int
scan_idle(struct scan *sc, struct scan_match *m)
{
    int rc;

    if (sc->state != RUNNING)
        return -EINVAL;
    if (sc->info->empty >= 0)
        return report_empty(sc, m);
    /* Bytes held back as a possible record start: the next byte says
     * what they are; until then the patterns have not seen the end. */
    if (sc->skip && printk_holding(&sc->pk))
        return 0;
    if ((rc = engine_eod(sc, false)) < 0)
        return rc;
    return sc->have ? report(sc, m) : 0;
}

int
scan_finish(struct scan *sc, struct scan_match *m)
{
    int rc;

    if (sc->state != RUNNING)
        return -EINVAL;
    if (sc->info->empty >= 0)
        return report_empty(sc, m);
    if (sc->skip) {
        printk_flush(&sc->pk, on_run, sc);
        if (sc->err)
            return sc->err;
        if (decided(sc))
            return report(sc, m);
    }
    if ((rc = engine_eod(sc, true)) < 0)
        return rc;
    if (sc->have)
        return report(sc, m);
    sc->state = FINISHED;
    return 0;
}

uint64_t
scan_bytes(const struct scan *sc)
{
    return sc->raw;
}

uint64_t
scan_records(const struct scan *sc)
{
    return sc->pk.records;
}

const struct pattern_set *
scan_patterns(const struct scan *sc)
{
    return sc->ps;
}

/* ---- capture groups ------------------------------------------------ */

/* The span the patterns saw, filtered again (skip=printk), with where
 * each run of kept bytes came from. */
struct refilter_run {
    size_t at;    /* filtered offset in the span */
    uint64_t raw; /* raw offset of its first byte, in the span */
};

struct refilter {
    unsigned char *out;
    size_t n;
    struct refilter_run *runs;
    size_t nruns;
};

static int
refilter_emit(void *arg, const void *buf, size_t len, uint64_t raw_off)
{
    struct refilter *rf = arg;

    rf->runs[rf->nruns].at = rf->n;
    rf->runs[rf->nruns].raw = raw_off;
    rf->nruns++;
    memcpy(rf->out + rf->n, buf, len);
    rf->n += len;
    return 0;
}

/* Raw offset (in the span) of the byte at filtered offset f < rf->n. */
static uint64_t
refilter_raw(const struct refilter *rf, size_t f)
{
    size_t lo = 0, hi = rf->nruns;

    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (rf->runs[mid].at <= f)
            lo = mid;
        else
            hi = mid;
    }
    return rf->runs[lo].raw + (f - rf->runs[lo].at);
}

int
scan_captures(struct scan *sc, const struct scan_match *m, scan_read_fn *rd,
              void *arg, uint64_t *ovec, unsigned max)
{
    unsigned groups = pattern_set_groups(sc->ps, m->index);
    size_t len, off = 0, *ov = NULL;
    unsigned char *raw = NULL;
    struct refilter rf = {0};
    int rc;

    if (groups == 0 || max == 0)
        return 0;
    if (m->start == PATTERN_UNKNOWN || m->end < m->start)
        return -ENOENT;
    if (m->end - m->start > PATTERN_MAX_CAPTURE_SPAN)
        return -E2BIG;
    len = (size_t)(m->end - m->start);
    if (!(raw = malloc(len + 1)) ||
        !(ov = malloc(2 * (groups + 1) * sizeof *ov))) {
        rc = -ENOMEM;
        goto out;
    }
    /* The byte before the match, for \b and (?m)^; none at the start. */
    if (m->ctx != PATTERN_UNKNOWN) {
        ssize_t got = rd(arg, raw, 1, m->ctx);
        if (got == 1)
            off = 1;
    }
    for (size_t have = 0; have < len;) {
        ssize_t got = rd(arg, raw + off + have, len - have, m->start + have);
        if (got <= 0) {
            rc = got < 0 ? (int)got : -EIO;
            goto out;
        }
        have += (size_t)got;
    }
    const unsigned char *subject = raw;
    if (sc->skip) {
        /* A match starts and ends with a byte the patterns saw, so the
         * records inside it are whole: filtering the span alone gives
         * the bytes they saw. */
        struct printk pk;
        if (!(rf.out = malloc(len + 1)) ||
            !(rf.runs = malloc((len + 1) * sizeof *rf.runs))) {
            rc = -ENOMEM;
            goto out;
        }
        if (off)
            refilter_emit(&rf, raw, 1, 0);
        printk_init(&pk);
        printk_filter(&pk, raw + off, len, refilter_emit, &rf);
        printk_flush(&pk, refilter_emit, &rf);
        subject = rf.out;
        if (off) { /* the context byte is not in the span */
            rf.runs[0].raw = 0;
            for (size_t k = 1; k < rf.nruns; k++)
                rf.runs[k].raw += 1;
        }
        len = rf.n - off;
    }
    rc = pattern_set_captures(sc->ps, m->index, subject, off, off + len, ov,
                              groups + 1);
    if (rc < 0)
        goto out;
    unsigned n = (unsigned)rc < max ? (unsigned)rc : max;
    for (unsigned g = 0; g < n; g++) {
        size_t a = ov[2 * g], b = ov[2 * g + 1];
        if (a == PATTERN_UNSET) {
            ovec[2 * g] = ovec[2 * g + 1] = PATTERN_UNKNOWN;
            continue;
        }
        /* Offsets in the subject (context byte first) to raw offsets
         * from the scanner's start. */
        uint64_t ra, rb;
        if (!sc->skip) {
            ra = a - off;
            rb = b - off;
        } else {
            ra = a < off + len ? refilter_raw(&rf, a) - off : m->end - m->start;
            rb = b > a ? refilter_raw(&rf, b - 1) - off + 1 : ra;
        }
        ovec[2 * g] = m->start + ra;
        ovec[2 * g + 1] = m->start + rb;
    }
    rc = (int)n;
out:
    free(raw);
    free(ov);
    free(rf.out);
    free(rf.runs);
    return rc;
}

/* ---- the timeout message ------------------------------------------ */

struct closest {
    unsigned index; /* pattern */
    size_t len;     /* bytes of its prefix seen */
    size_t end;     /* where in the window the prefix ends */
};

/* The longest prefix of literal p seen in win (the latest if several),
 * by KMP over the window. */
static int
closest_in(const struct pattern *p, const unsigned char *win, size_t n,
           size_t *len, size_t *end)
{
    const unsigned char *pat = p->src;
    size_t *fail = malloc(p->len * sizeof *fail), q = 0;

    if (!fail)
        return -ENOMEM;
    fail[0] = 0;
    for (size_t i = 1, k = 0; i < p->len; i++) {
        while (k > 0 && pat[i] != pat[k])
            k = fail[k - 1];
        if (pat[i] == pat[k])
            k++;
        fail[i] = k;
    }
    *len = 0;
    for (size_t j = 0; j < n; j++) {
        while (q > 0 && (q == p->len || pat[q] != win[j]))
            q = fail[q - 1];
        if (pat[q] == win[j])
            q++;
        if (q >= *len) {
            *len = q;
            *end = j + 1;
        }
    }
    free(fail);
    return 0;
}

static void
put_escaped(FILE *f, const void *buf, size_t len, size_t max)
{
    size_t cap = 4 * (len < max ? len : max) + 8;
    char *e = malloc(cap);

    if (!e)
        return;
    pattern_escape(buf, len, max, e, cap);
    fputs(e, f);
    free(e);
}

static void
put_pattern(FILE *f, const struct pattern *p, size_t max)
{
    size_t cap = 4 * (max ? max : p->len) + 64;
    char *d = malloc(cap);

    if (!d)
        return;
    pattern_describe(p, max, d, cap);
    fputs(d, f);
    free(d);
}

/* "OP timed out waiting for `P`; timeout T" (or "one of A, B"). */
static void
put_waiting(FILE *f, const char *op,
            const struct pattern *(*at)(const void *, unsigned),
            const void *pats, unsigned n, uint64_t timeout)
{
    char t[32];

    fprintf(f, "%s timed out waiting for ", op);
    if (n == 1) {
        put_pattern(f, at(pats, 0), 0);
    } else {
        fputs("one of ", f);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                fputs(", ", f);
            put_pattern(f, at(pats, i), LIST_SHOWN);
        }
    }
    duration_format(timeout, t, sizeof t);
    fprintf(f, "; timeout %s", t);
}

static const struct pattern *
set_at(const void *ps, unsigned i)
{
    return pattern_set_pattern(ps, i);
}

static const struct pattern *
array_at(const void *pats, unsigned i)
{
    return (const struct pattern *)pats + i;
}

char *
scan_compiling_message(const struct pattern *pats, unsigned n, const char *op,
                       uint64_t timeout)
{
    char *msg = NULL;
    size_t msglen = 0;
    FILE *f = open_memstream(&msg, &msglen);

    if (!f)
        return NULL;
    put_waiting(f, op, array_at, pats, n, timeout);
    fputs("; the patterns were still being compiled (Hyperscan); no bytes "
          "scanned",
          f);
    if (fclose(f) != 0) {
        free(msg);
        return NULL;
    }
    return msg;
}

char *
scan_timeout_message(const struct scan *sc, const char *op, uint64_t timeout)
{
    unsigned n = pattern_set_count(sc->ps);
    unsigned char win[SCAN_RING], last[SCAN_LAST];
    struct closest best = {0, 0, 0};
    char *msg = NULL;
    size_t msglen = 0, wn, ln;
    FILE *f = open_memstream(&msg, &msglen);

    if (!f)
        return NULL;
    put_waiting(f, op, set_at, sc->ps, n, timeout);
    if (sc->raw == 0) {
        fputs("; no bytes seen", f);
    } else {
        ln = ring_get(sc->last, SCAN_LAST, sc->raw, last);
        fprintf(f, "; last bytes seen: `%s", sc->raw > ln ? "..." : "");
        put_escaped(f, last, ln, ln);
        fprintf(f, "`; %llu bytes scanned", (unsigned long long)sc->raw);
    }
    if (sc->skip)
        fprintf(f, "; kernel log records skipped: %llu",
                (unsigned long long)sc->pk.records);

    /* Closest: the longest prefix of a literal among the newest bytes
     * the patterns saw; ties go to the lower index. */
    wn = ring_get(sc->ring, SCAN_RING, sc->out, win);
    for (unsigned i = 0; i < n; i++) {
        const struct pattern *p = pattern_set_pattern(sc->ps, i);
        size_t len, end;
        if (p->kind != PATTERN_LITERAL || p->len < CLOSEST_MIN)
            continue;
        if (closest_in(p, win, wn, &len, &end) == 0 && len > best.len) {
            best.index = i;
            best.len = len;
            best.end = end;
        }
    }
    if (best.len >= CLOSEST_MIN) {
        const struct pattern *p = pattern_set_pattern(sc->ps, best.index);
        fputs("; closest: `", f);
        put_escaped(f, p->src, best.len, best.len);
        fputc('`', f);
        if (n > 1) {
            fputs(" of ", f);
            put_pattern(f, p, LIST_SHOWN);
        }
        if (best.end == wn) {
            fputs(" at the end", f);
        } else {
            fputs(" then `", f);
            put_escaped(f, win + best.end, wn - best.end, CLOSEST_AFTER);
            fputc('`', f);
        }
    }
    if (fclose(f) != 0) {
        free(msg);
        return NULL;
    }
    return msg;
}
