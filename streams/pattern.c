/*
 * pattern.c - compiled pattern sets for read_until / expect / peek
 * (SPEC §9): up to PATTERN_MAX_COUNT literals and PCRE-syntax regexes,
 * compiled together for Hyperscan's streaming mode, kept in a small LRU
 * cache, and checked with PCRE2, which also extracts capture groups.
 *
 * Why two libraries. Hyperscan matches many patterns at once over a
 * stream fed in pieces with a fixed-size state per stream and never looks
 * back, which is the whole point (a 10 GiB console costs what a 10-byte
 * one does). It does not do capture groups, and its errors rarely say
 * where. PCRE2 compiles the same syntax first, so a syntax error gets
 * PCRE2's message and offset; constructs PCRE2 accepts but a stream cannot
 * match (back-references, lookaround, atomic groups, possessive
 * quantifiers, \K, ...) are then refused by Hyperscan and named here with
 * their offset. After a match, PCRE2 runs once on the matched span for the
 * groups.
 *
 * What each pattern costs. A literal's start is its end minus its length
 * and a fixed-width regex's its end minus its width, so neither needs
 * Hyperscan's start-of-match tracking (HS_FLAG_SOM_LEFTMOST), which can
 * slow a scan by two orders of magnitude on patterns like `a.*b` and make
 * their compilation explode. Only variable-width regexes get it, and only
 * when the caller wants spans (docs/benchmarks.md has the numbers).
 *
 * A single literal with no special needs runs on match.c's memmem/KMP
 * matcher or on Hyperscan, whichever docs/benchmarks.md found faster
 * (PATTERN_SINGLE_LITERAL_HS below); callers cannot tell.
 *
 * The cache and the Hyperscan scratch space are per process and not
 * locked: the stream core runs on one thread (the reactor's).
 */
#include <errno.h>
#include <hs/hs.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "streams.h"

/* Measured in test/bench/match.c: Hyperscan's literal engine beats
 * memmem + KMP on one literal too (docs/benchmarks.md). */
#define PATTERN_SINGLE_LITERAL_HS 1

#define CACHE_MAX_SETS 64
#define CACHE_MAX_BYTES (32u << 20)
#define PCRE2_MATCH_LIMIT 10000000u
#define SHOWN_SRC 64 /* pattern bytes quoted in an error message */
#define PATTERN_COMPILERS 2 /* compiler threads at most (see below) */
#define PATTERN_MAX_JOBS 64 /* sets being compiled at once */
/* Reactor time the checks of one set may take (set_prepare). */
#define PATTERN_CHECK_BUDGET (20 * USEC_PER_MSEC)

struct entry {
    struct pattern p; /* p.src points into the set's own copy */
    unsigned width;   /* fixed match width; 0 if variable */
    bool som;         /* Hyperscan reports the match start */
    bool nl;          /* x mode: a final newline ends a #comment */
    bool checked;     /* regex_hs ran (regexes) */
    unsigned groups;  /* capture groups (regexes) */
    pcre2_code *re;   /* regexes: for captures */
    bool jit_tried;
};

struct pattern_set {
    unsigned refs;
    bool adopted; /* counted in live_sets, served by the scratch space */
    struct pattern_set *prev, *next; /* cache list, most recent first */
    bool cached;
    uint64_t hash;
    unsigned opts;
    size_t bytes; /* memory held, for the cache bound */
    struct pattern_set_info info;
    unsigned n;
    struct entry e[];
};

static struct {
    struct pattern_set *head, *tail;
    unsigned sets;
    size_t bytes;
    uint64_t hits, compiles;
} cache;

static hs_scratch_t *scratch;
static unsigned live_sets; /* sets not yet freed: scratch may serve them */

/* ---- messages ----------------------------------------------------- */

/* A message into err (PATTERN_ERR_LEN bytes), cut if it must be. */
static void __attribute__((format(printf, 2, 3)))
errf(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, PATTERN_ERR_LEN, fmt, ap);
    va_end(ap);
}

/* c as it appears in a message, into tmp (5 bytes); returns its length. */
static size_t
escape_byte(unsigned char c, char *tmp)
{
    switch (c) {
    case '\n':
        return (size_t)snprintf(tmp, 5, "\\n");
    case '\r':
        return (size_t)snprintf(tmp, 5, "\\r");
    case '\t':
        return (size_t)snprintf(tmp, 5, "\\t");
    case '\\':
        return (size_t)snprintf(tmp, 5, "\\\\");
    default:
        if (c >= 0x20 && c < 0x7f)
            return (size_t)snprintf(tmp, 5, "%c", c);
        return (size_t)snprintf(tmp, 5, "\\x%02x", c);
    }
}

size_t
pattern_escape(const void *buf, size_t len, size_t max, char *out, size_t cap)
{
    const unsigned char *b = buf;
    size_t o = 0, n = len > max ? max : len, need = 0;
    bool cut = len > n;
    char tmp[5];

    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        need += escape_byte(b[i], tmp);
    /* When it does not all fit, keep room for the "..." that says so. */
    size_t room = need + (cut ? 3 : 0) + 1 <= cap ? cap - 1
                  : cap < 4                       ? 0
                                                  : cap - 4;
    if (need + (cut ? 3 : 0) + 1 > cap)
        cut = true;
    for (size_t i = 0; i < n; i++) {
        size_t t = escape_byte(b[i], tmp);
        if (o + t > room)
            break;
        memcpy(out + o, tmp, t);
        o += t;
    }
    if (cut && o + 4 <= cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

void
pattern_flags_format(unsigned flags, char *buf)
{
    char *o = buf;

    if (flags & PATTERN_CASELESS)
        *o++ = 'i';
    if (flags & PATTERN_MULTILINE)
        *o++ = 'm';
    if (flags & PATTERN_DOTALL)
        *o++ = 's';
    if (flags & PATTERN_EXTENDED)
        *o++ = 'x';
    *o = '\0';
}

int
pattern_flags_parse(const void *s, size_t len, unsigned *flags, char *err)
{
    const char *p = s;

    *flags = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned f;
        switch (p[i]) {
        case 'i':
            f = PATTERN_CASELESS;
            break;
        case 'm':
            f = PATTERN_MULTILINE;
            break;
        case 's':
            f = PATTERN_DOTALL;
            break;
        case 'x':
            f = PATTERN_EXTENDED;
            break;
        default: {
            char e[8];
            pattern_escape(p + i, 1, 1, e, sizeof e);
            errf(err, "unknown regex flag `%s` (expected i, m, s or x)", e);
            return -EINVAL;
        }
        }
        *flags |= f;
    }
    return 0;
}

size_t
pattern_describe(const struct pattern *p, size_t max, char *out, size_t cap)
{
    char src[4 * SHOWN_SRC + 8], fl[8];
    size_t shown = max ? max : p->len;
    /* Escaping can quadruple: use a heap buffer for long patterns. */
    size_t need = 4 * (shown < p->len ? shown : p->len) + 8;
    char *e = need <= sizeof src ? src : malloc(need);
    int n;

    if (!e)
        return (size_t)snprintf(out, cap, "(pattern)");
    pattern_escape(p->src, p->len, shown, e, need);
    if (p->kind == PATTERN_LITERAL) {
        n = snprintf(out, cap, "`%s`", e);
    } else {
        pattern_flags_format(p->flags, fl);
        n = snprintf(out, cap, "regex `%s`%s%s%s", e, *fl ? " (flags " : "", fl,
                     *fl ? ")" : "");
    }
    if (e != src)
        free(e);
    return n < 0 ? 0 : (size_t)n;
}

/* "regex `(a)\1`" or, in a list, "pattern 2: regex `(a)\1`". */
static void
who(const struct pattern *pats, unsigned n, unsigned i, char *buf, size_t len)
{
    size_t o = 0;

    if (n > 1)
        o = (size_t)snprintf(buf, len, "pattern %u: ", i + 1);
    if (o < len)
        pattern_describe(&pats[i], SHOWN_SRC, buf + o, len - o);
}

/* The same for pattern i of a set being built (its own copies). */
static void
who_entry(const struct pattern_set *ps, unsigned i, char *buf, size_t len)
{
    size_t o = 0;

    if (ps->n > 1)
        o = (size_t)snprintf(buf, len, "pattern %u: ", i + 1);
    if (o < len)
        pattern_describe(&ps->e[i].p, SHOWN_SRC, buf + o, len - o);
}

/* ---- naming what Hyperscan refused --------------------------------- */

enum construct {
    C_NONE,
    C_BACKREF,
    C_LOOKAHEAD,
    C_LOOKBEHIND,
    C_ATOMIC,
    C_POSSESSIVE,
};

static const char *const construct_names[] = {
        [C_BACKREF] = "back-reference",
        [C_LOOKAHEAD] = "lookahead assertion",
        [C_LOOKBEHIND] = "lookbehind assertion",
        [C_ATOMIC] = "atomic group",
        [C_POSSESSIVE] = "possessive quantifier",
};

/* Skip a {n}, {n,}, {n,m} quantifier at s[i] ('{'); returns the index
 * after it, or i if it is not one (then '{' is a literal, as in PCRE). */
static size_t
skip_braces(const char *s, size_t len, size_t i)
{
    size_t j = i + 1, digits = 0;

    while (j < len && s[j] >= '0' && s[j] <= '9')
        j++, digits++;
    if (j < len && s[j] == ',') {
        j++;
        while (j < len && s[j] >= '0' && s[j] <= '9')
            j++;
    }
    return digits && j < len && s[j] == '}' ? j + 1 : i;
}

/*
 * Find the first construct of one of the kinds in `want` (a bit mask of
 * 1 << enum construct) in a PCRE2-valid regex. A lexer, not a parser: it
 * knows escapes, \Q..\E, character classes, (?#...) and x-mode comments
 * well enough to name what Hyperscan refused; it never refuses anything
 * by itself. Returns the construct and its offset in *pos, or C_NONE.
 */
static enum construct
construct_find(const char *s, size_t len, bool extended, unsigned want,
               size_t *pos)
{
    size_t i = 0;

    while (i < len) {
        char c = s[i];
        size_t at = i;
        if (c == '\\' && i + 1 < len) {
            char d = s[i + 1];
            if (d == 'Q') { /* literal text up to \E */
                const char *e = memmem(s + i + 2, len - i - 2, "\\E", 2);
                i = e ? (size_t)(e - s) + 2 : len;
                continue;
            }
            if ((d >= '1' && d <= '9') || d == 'k' ||
                (d == 'g' && i + 2 < len && s[i + 2] != '<' &&
                 s[i + 2] != '\'')) {
                if (want & (1u << C_BACKREF)) {
                    *pos = at;
                    return C_BACKREF;
                }
            }
            i += 2;
            continue;
        }
        if (c == '[') { /* a class: up to the first ']' not first in it */
            i++;
            if (i < len && s[i] == '^')
                i++;
            if (i < len && s[i] == ']')
                i++;
            while (i < len && s[i] != ']') {
                if (s[i] == '\\')
                    i++;
                else if (s[i] == '[' && i + 1 < len && s[i + 1] == ':') {
                    const char *e = memmem(s + i, len - i, ":]", 2);
                    if (e)
                        i = (size_t)(e - s) + 1;
                }
                i++;
            }
            i++;
            continue;
        }
        if (extended && (c == '#')) {
            const char *e = memchr(s + i, '\n', len - i);
            i = e ? (size_t)(e - s) + 1 : len;
            continue;
        }
        if (c == '(' && i + 2 < len && s[i + 1] == '?') {
            const char *r = s + i + 2;
            size_t left = len - i - 2;
            enum construct k = C_NONE;
            if (r[0] == '#') {
                const char *e = memchr(r, ')', left);
                i = e ? (size_t)(e - s) + 1 : len;
                continue;
            }
            if (r[0] == '=' || r[0] == '!')
                k = C_LOOKAHEAD;
            else if (left >= 2 && r[0] == '<' && (r[1] == '=' || r[1] == '!'))
                k = C_LOOKBEHIND;
            else if (r[0] == '>')
                k = C_ATOMIC;
            else if (left >= 2 && r[0] == 'P' && r[1] == '=')
                k = C_BACKREF;
            if (k != C_NONE && (want & (1u << k))) {
                *pos = at;
                return k;
            }
            i += 2;
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') {
            size_t after = c == '{' ? skip_braces(s, len, i) : i + 1;
            if (after == i) { /* a literal '{' */
                i++;
                continue;
            }
            if (after < len && s[after] == '+' &&
                (want & (1u << C_POSSESSIVE))) {
                *pos = at;
                return C_POSSESSIVE;
            }
            i = after < len && (s[after] == '?' || s[after] == '+') ? after + 1
                                                                    : after;
            continue;
        }
        i++;
    }
    return C_NONE;
}

/* Which constructs a Hyperscan message is about. */
static unsigned
construct_kinds(const char *msg)
{
    if (strstr(msg, "Back-reference") || strstr(msg, "back reference"))
        return 1u << C_BACKREF;
    if (strstr(msg, "Zero-width assertions"))
        return 1u << C_LOOKAHEAD | 1u << C_LOOKBEHIND;
    if (strstr(msg, "Atomic groups"))
        return 1u << C_ATOMIC;
    if (strstr(msg, "Possessive"))
        return 1u << C_POSSESSIVE;
    return 0;
}

/* Hyperscan's message with "at index N" corrected for the `shift` bytes
 * we put in front of the expression ("(?x)"). */
static void
hs_message(const char *msg, size_t shift, char *out, size_t len)
{
    const char *at = strstr(msg, "at index ");
    unsigned long idx;
    char *end;

    if (!at || !shift) {
        snprintf(out, len, "%s", msg);
        return;
    }
    idx = strtoul(at + 9, &end, 10);
    if (end == at + 9 || idx < shift) {
        snprintf(out, len, "%s", msg);
        return;
    }
    snprintf(out, len, "%.*sat index %lu%s", (int)(at - msg), msg, idx - shift,
             end);
}

/* ---- compiling ---------------------------------------------------- */

static unsigned
hs_flags(unsigned flags)
{
    return (flags & PATTERN_CASELESS ? HS_FLAG_CASELESS : 0) |
           (flags & PATTERN_MULTILINE ? HS_FLAG_MULTILINE : 0) |
           (flags & PATTERN_DOTALL ? HS_FLAG_DOTALL : 0);
}

/*
 * The expression Hyperscan compiles for pattern p (a malloc'd C string):
 * a literal with every byte but [A-Za-z0-9_] as \xHH; a regex as written,
 * behind "(?x)" for the x flag (Hyperscan has no flag for it), and with
 * a final newline when `nl` (Hyperscan, unlike PCRE, wants a #comment to
 * end with one). *shift = bytes put in front.
 */
static char *
hs_expression(const struct pattern *p, bool nl, size_t *shift)
{
    const unsigned char *s = p->src;
    char *out, *o;

    *shift = 0;
    if (p->kind == PATTERN_LITERAL) {
        out = o = malloc(p->len * 4 + 1);
        if (!out)
            return NULL;
        for (size_t i = 0; i < p->len; i++) {
            unsigned char c = s[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_')
                *o++ = (char)c;
            else
                o += sprintf(o, "\\x%02x", c);
        }
        *o = '\0';
        return out;
    }
    bool x = p->flags & PATTERN_EXTENDED;
    out = o = malloc(p->len + 6);
    if (!out)
        return NULL;
    if (x) {
        memcpy(o, "(?x)", 4);
        o += 4;
        *shift = 4;
    }
    memcpy(o, s, p->len);
    o += p->len;
    if (nl)
        *o++ = '\n';
    *o = '\0';
    return out;
}

static uint32_t
pcre2_options(unsigned flags)
{
    return PCRE2_NEVER_UTF | PCRE2_NEVER_UCP |
           (flags & PATTERN_CASELESS ? PCRE2_CASELESS : 0) |
           (flags & PATTERN_MULTILINE ? PCRE2_MULTILINE : 0) |
           (flags & PATTERN_DOTALL ? PCRE2_DOTALL : 0) |
           (flags & PATTERN_EXTENDED ? PCRE2_EXTENDED : 0);
}

/* Check regex i with PCRE2 (syntax, with its message and offset) and
 * fill in its entry. Fast: every regex gets it while the write that
 * carries it is answered. */
static int
regex_pcre(struct pattern_set *ps, unsigned i, char *err)
{
    struct entry *e = &ps->e[i];
    char w[4 * SHOWN_SRC + 64], m[256];
    int code;
    PCRE2_SIZE off;

    who_entry(ps, i, w, sizeof w);
    if (memchr(e->p.src, '\0', e->p.len)) {
        errf(err, "%s: contains a NUL byte (write it as \\x00)", w);
        return -EINVAL;
    }
    e->re = pcre2_compile(e->p.src, e->p.len, pcre2_options(e->p.flags), &code,
                          &off, NULL);
    if (!e->re) {
        if (code == PCRE2_ERROR_NOMEMORY)
            return -ENOMEM;
        pcre2_get_error_message(code, (PCRE2_UCHAR *)m, sizeof m);
        errf(err, "%s: %s at offset %zu", w, m, (size_t)off);
        return -EINVAL;
    }
    uint32_t groups = 0;
    pcre2_pattern_info(e->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    e->groups = groups;
    return 0;
}

/* What Hyperscan thinks of regex i (hs_expression_info: refused
 * constructs, widths, empty matches, late or end-of-data matches).
 * Usually well under a millisecond, but up to a third of a second for
 * nested bounded repeats: see set_prepare's budget. Touches only ps. */
static int
regex_hs(struct pattern_set *ps, unsigned i, bool want_span, char *err)
{
    struct entry *e = &ps->e[i];
    char w[4 * SHOWN_SRC + 64], m[256];

    who_entry(ps, i, w, sizeof w);
    e->checked = true;
    hs_expr_info_t *info = NULL;
    hs_compile_error_t *herr = NULL;
    size_t shift;
    char *x = hs_expression(&e->p, false, &shift);
    if (!x)
        return -ENOMEM;
    hs_error_t rc = hs_expression_info(x, hs_flags(e->p.flags), &info, &herr);
    if (rc != HS_SUCCESS && herr &&
        strstr(herr->message, "Unterminated comment")) {
        /* x mode (flag or inline) is on at the end: PCRE ends a comment
         * there, Hyperscan wants a newline, which x mode ignores. */
        hs_free_compile_error(herr);
        herr = NULL;
        free(x);
        e->nl = true;
        if (!(x = hs_expression(&e->p, true, &shift)))
            return -ENOMEM;
        rc = hs_expression_info(x, hs_flags(e->p.flags), &info, &herr);
    }
    free(x);
    if (rc != HS_SUCCESS) {
        if (!herr)
            return -ENOMEM;
        hs_message(herr->message, shift, m, sizeof m);
        size_t pos;
        enum construct k = construct_find(e->p.src, e->p.len,
                                          e->p.flags & PATTERN_EXTENDED,
                                          construct_kinds(herr->message), &pos);
        if (strstr(herr->message, "never match"))
            errf(err, "%s: can never match (Hyperscan: %s)", w, m);
        else if (k != C_NONE)
            errf(err,
                 "%s: %s at offset %zu cannot be matched in a stream "
                 "(Hyperscan: %s)",
                 w, construct_names[k], pos, m);
        else
            errf(err, "%s: cannot be matched in a stream (Hyperscan: %s)", w,
                 m);
        hs_free_compile_error(herr);
        return -EINVAL;
    }
    if (info->min_width == 0) {
        errf(err,
             "%s: can match the empty string, so it would match at "
             "once; make it match at least one byte",
             w);
        free(info);
        return -EINVAL;
    }
    if (info->min_width == info->max_width)
        e->width = info->min_width;
    else
        e->som = want_span;
    if (info->unordered_matches)
        ps->info.ordered = false;
    if (info->matches_at_eod)
        ps->info.eod = true;
    free(info);
    return 0;
}

/* Compile the Hyperscan database of every pattern but empty literals.
 * A pattern whose start tracking cannot be built loses it (its spans'
 * starts are then unknown) rather than failing the set. Touches nothing
 * but ps (and err): it runs on a compiler thread (below). */
static int
database_build(struct pattern_set *ps, char *err)
{
    unsigned n = 0, *ids = NULL, *flags = NULL, i;
    char **exprs = NULL;
    size_t *lens = NULL;
    bool literal_only = true;
    hs_compile_error_t *herr = NULL;
    hs_database_t *db = NULL;
    int rc = -ENOMEM;

    for (i = 0; i < ps->n; i++)
        if (ps->e[i].p.kind == PATTERN_REGEX)
            literal_only = false;
    exprs = calloc(ps->n, sizeof *exprs);
    ids = calloc(ps->n, sizeof *ids);
    flags = calloc(ps->n, sizeof *flags);
    lens = calloc(ps->n, sizeof *lens);
    if (!exprs || !ids || !flags || !lens)
        goto out;
    for (i = 0; i < ps->n; i++) {
        struct entry *e = &ps->e[i];
        size_t shift;
        if (e->p.kind == PATTERN_LITERAL && e->p.len == 0)
            continue;
        if (literal_only) {
            exprs[n] = (char *)(uintptr_t)e->p.src;
            lens[n] = e->p.len;
        } else {
            exprs[n] = hs_expression(&e->p, e->nl, &shift);
            if (!exprs[n])
                goto out;
        }
        ids[n] = i;
        n++;
    }
    if (n == 0) {
        rc = 0;
        goto out;
    }
    for (;;) {
        bool som = false;
        for (unsigned k = 0; k < n; k++) {
            flags[k] = hs_flags(ps->e[ids[k]].p.flags);
            if (ps->e[ids[k]].som) {
                flags[k] |= HS_FLAG_SOM_LEFTMOST;
                som = true;
            }
        }
        unsigned mode = HS_MODE_STREAM | (som ? HS_MODE_SOM_HORIZON_LARGE : 0);
        hs_error_t hrc;
        if (literal_only)
            hrc = hs_compile_lit_multi((const char *const *)exprs, flags, ids,
                                       lens, n, mode, NULL, &db, &herr);
        else
            hrc = hs_compile_multi((const char *const *)exprs, flags, ids, n,
                                   mode, NULL, &db, &herr);
        if (hrc == HS_SUCCESS)
            break;
        if (!herr)
            goto out;
        int x = herr->expression;
        if (x >= 0 && (unsigned)x < n && ps->e[ids[x]].som) {
            ps->e[ids[x]].som = false;
            hs_free_compile_error(herr);
            herr = NULL;
            continue;
        }
        if (x >= 0 && (unsigned)x < n) {
            char w[4 * SHOWN_SRC + 64];
            who_entry(ps, ids[x], w, sizeof w);
            errf(err, "%s: cannot be matched in a stream (Hyperscan: %s)", w,
                 herr->message);
        } else {
            errf(err, "patterns cannot be compiled together (Hyperscan: %s)",
                 herr->message);
        }
        hs_free_compile_error(herr);
        rc = -EINVAL;
        goto out;
    }
    size_t dbsize = 0, state = 0;
    hs_database_size(db, &dbsize);
    hs_stream_size(db, &state);
    if (dbsize > PATTERN_MAX_DATABASE) {
        errf(err,
             "patterns too large once compiled: %zu bytes of automata "
             "(at most %u); use fewer or simpler patterns",
             dbsize, PATTERN_MAX_DATABASE);
        rc = -EINVAL;
        goto out;
    }
    if (state > PATTERN_MAX_STATE) {
        errf(err,
             "patterns too large once compiled: %zu bytes of stream "
             "state per op (at most %u); use fewer or simpler patterns",
             state, PATTERN_MAX_STATE);
        rc = -EINVAL;
        goto out;
    }
    ps->info.db = db;
    ps->info.state = state;
    ps->bytes += dbsize;
    db = NULL;
    rc = 0;
out:
    hs_free_database(db);
    if (!literal_only && exprs)
        for (i = 0; i < n; i++)
            free(exprs[i]);
    free(exprs);
    free(ids);
    free(flags);
    free(lens);
    return rc;
}

/* Free a set that was never adopted (any thread: it touches nothing
 * shared). */
static void
set_discard(struct pattern_set *ps)
{
    if (!ps)
        return;
    for (unsigned i = 0; i < ps->n; i++)
        pcre2_code_free(ps->e[i].re);
    hs_free_database(ps->info.db);
    free(ps);
}

static void
set_free(struct pattern_set *ps)
{
    bool adopted = ps->adopted;

    set_discard(ps);
    if (adopted && --live_sets == 0) {
        /* Nothing can use the scratch space: give it back. */
        hs_free_scratch(scratch);
        scratch = NULL;
    }
}

/* A built set joins the process (reactor thread): the scratch space
 * grows to suit its database. */
static int
set_adopt(struct pattern_set *ps)
{
    if (ps->info.db && hs_alloc_scratch(ps->info.db, &scratch) != HS_SUCCESS)
        return -ENOMEM;
    ps->adopted = true;
    live_sets++;
    return 0;
}

static uint64_t
set_hash(const struct pattern *pats, unsigned n, unsigned opts)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    unsigned hdr[2] = {n, opts};

#define MIX(p, len)                                                            \
    for (size_t k_ = 0; k_ < (len); k_++)                                      \
    h = (h ^ ((const unsigned char *)(p))[k_]) * 1099511628211ULL
    MIX(hdr, sizeof hdr);
    for (unsigned i = 0; i < n; i++) {
        unsigned meta[2] = {pats[i].kind, pats[i].flags};
        uint64_t len = pats[i].len;
        MIX(meta, sizeof meta);
        MIX(&len, sizeof len);
        MIX(pats[i].src, pats[i].len);
    }
#undef MIX
    return h;
}

static bool
set_equal(const struct pattern_set *ps, const struct pattern *pats, unsigned n,
          unsigned opts)
{
    if (ps->n != n || ps->opts != opts)
        return false;
    for (unsigned i = 0; i < n; i++) {
        const struct pattern *a = &ps->e[i].p, *b = &pats[i];
        if (a->kind != b->kind || a->flags != b->flags || a->len != b->len ||
            (a->len && memcmp(a->src, b->src, a->len)))
            return false;
    }
    return true;
}

/* Two sets of the same patterns and options. */
static bool
set_same(const struct pattern_set *a, const struct pattern_set *b)
{
    if (a->n != b->n || a->opts != b->opts)
        return false;
    for (unsigned i = 0; i < a->n; i++) {
        const struct pattern *x = &a->e[i].p, *y = &b->e[i].p;
        if (x->kind != y->kind || x->flags != y->flags || x->len != y->len ||
            (x->len && memcmp(x->src, y->src, x->len)))
            return false;
    }
    return true;
}

static void
cache_unlink(struct pattern_set *ps)
{
    if (ps->prev)
        ps->prev->next = ps->next;
    else
        cache.head = ps->next;
    if (ps->next)
        ps->next->prev = ps->prev;
    else
        cache.tail = ps->prev;
    ps->prev = ps->next = NULL;
}

static void
cache_push(struct pattern_set *ps)
{
    ps->next = cache.head;
    ps->prev = NULL;
    if (cache.head)
        cache.head->prev = ps;
    cache.head = ps;
    if (!cache.tail)
        cache.tail = ps;
}

/* Drop the least recently used sets until the cache is within bounds. */
static void
cache_trim(unsigned max_sets, size_t max_bytes)
{
    while (cache.tail && (cache.sets > max_sets || cache.bytes > max_bytes)) {
        struct pattern_set *ps = cache.tail;
        cache_unlink(ps);
        ps->cached = false;
        cache.sets--;
        cache.bytes -= ps->bytes;
        pattern_set_put(ps);
    }
}

/*
 * The checks and the cheap half of compiling (reactor thread): copy the
 * patterns, compile each regex with PCRE2 (syntax, groups) and ask
 * Hyperscan what it thinks of it (hs_expression_info: refused
 * constructs, width, empty matches), the latter for as long as `budget`
 * microseconds last (0: no limit). What is left is set_build(), which
 * may take seconds.
 */
static int
set_prepare(const struct pattern *pats, unsigned n, unsigned opts,
            uint64_t budget, struct pattern_set **out, char *err)
{
    size_t srcbytes = 0;
    struct pattern_set *ps;
    int rc;

    for (unsigned i = 0; i < n; i++)
        srcbytes += pats[i].len + 1;
    ps = calloc(1, sizeof *ps + n * sizeof ps->e[0] + srcbytes);
    if (!ps)
        return -ENOMEM;
    ps->refs = 1;
    ps->opts = opts;
    ps->n = n;
    ps->bytes = sizeof *ps + n * sizeof ps->e[0] + srcbytes;
    ps->info.empty = -1;
    ps->info.ordered = true;
    char *copy = (char *)&ps->e[n];
    for (unsigned i = 0; i < n; i++) {
        struct entry *e = &ps->e[i];
        e->p = pats[i];
        if (pats[i].len)
            memcpy(copy, pats[i].src, pats[i].len);
        copy[pats[i].len] = '\0';
        e->p.src = copy;
        copy += pats[i].len + 1;
        if (e->p.kind == PATTERN_LITERAL) {
            e->p.flags = 0;
            e->width = (unsigned)e->p.len;
            if (e->p.len == 0 && ps->info.empty < 0)
                ps->info.empty = (int)i;
        } else if ((rc = regex_pcre(ps, i, err)) < 0) {
            set_discard(ps);
            return rc;
        }
    }
    /* Hyperscan's verdict on each regex, while the budget lasts; the
     * rest is the compiler thread's (set_build), its errors then
     * answered by the op instead of the write. */
    uint64_t deadline = budget ? clock_now() + budget : UINT64_MAX;
    for (unsigned i = 0; i < n; i++) {
        if (ps->e[i].p.kind != PATTERN_REGEX)
            continue;
        if (clock_now() >= deadline)
            break;
        if ((rc = regex_hs(ps, i, !(opts & PATTERN_SET_NO_SPAN), err)) < 0) {
            set_discard(ps);
            return rc;
        }
    }
    /* One literal: maybe match.c's matcher is the faster engine. */
    if (n == 1 && ps->e[0].p.kind == PATTERN_LITERAL &&
        ((opts & PATTERN_SET_ENGINE_MEMMEM) ||
         (!PATTERN_SINGLE_LITERAL_HS && !(opts & PATTERN_SET_ENGINE_HS))))
        ps->info.memmem = true;
    *out = ps;
    return 0;
}

/* Does the set need a Hyperscan database built? Only literals: the
 * build is quick (a few ms for a command line's worth), so it is done at
 * once; a regex can take seconds (docs/matching.md), so it goes to a
 * compiler thread. */
static bool
set_has_regex(const struct pattern_set *ps)
{
    for (unsigned i = 0; i < ps->n; i++)
        if (ps->e[i].p.kind == PATTERN_REGEX)
            return true;
    return false;
}

static int
set_build(struct pattern_set *ps, char *err)
{
    int rc;

    for (unsigned i = 0; i < ps->n; i++)
        if (ps->e[i].p.kind == PATTERN_REGEX && !ps->e[i].checked &&
            (rc = regex_hs(ps, i, !(ps->opts & PATTERN_SET_NO_SPAN), err)) < 0)
            return rc;
    return ps->info.memmem ? 0 : database_build(ps, err);
}

/* The checks every set passes before anything is compiled. */
static int
set_limits(const struct pattern *pats, unsigned n, char *err)
{
    if (n == 0) {
        errf(err, "no pattern");
        return -EINVAL;
    }
    if (n > PATTERN_MAX_COUNT) {
        errf(err, "too many patterns (%u, at most %d)", n, PATTERN_MAX_COUNT);
        return -EINVAL;
    }
    for (unsigned i = 0; i < n; i++) {
        if (pats[i].len > PATTERN_MAX_LEN) {
            char w[4 * SHOWN_SRC + 64];
            who(pats, n, i, w, sizeof w);
            errf(err, "%s: too long (%zu bytes, at most %d)", w, pats[i].len,
                 PATTERN_MAX_LEN);
            return -EINVAL;
        }
        if (pats[i].kind != PATTERN_LITERAL && pats[i].kind != PATTERN_REGEX) {
            errf(err, "pattern %u: unknown kind", i + 1);
            return -EINVAL;
        }
    }
    if (hs_valid_platform() != HS_SUCCESS) {
        errf(err, "regex matching needs a CPU with SSSE3 (Hyperscan)");
        return -ENOTSUP;
    }
    return 0;
}

static struct pattern_set *
cache_find(const struct pattern *pats, unsigned n, unsigned opts, uint64_t h)
{
    for (struct pattern_set *ps = cache.head; ps; ps = ps->next)
        if (ps->hash == h && set_equal(ps, pats, n, opts))
            return ps;
    return NULL;
}

/* A reference to a set of the cache: it moves to the front. */
static struct pattern_set *
cache_use(struct pattern_set *ps)
{
    cache.hits++;
    cache_unlink(ps);
    cache_push(ps);
    return pattern_set_ref(ps);
}

/* An adopted set joins the cache, whose reference is the one it was
 * made with; the caller gets a second one back. */
static struct pattern_set *
cache_add(struct pattern_set *ps, uint64_t h)
{
    cache.compiles++;
    ps->hash = h;
    ps->cached = true;
    cache_push(ps);
    cache.sets++;
    cache.bytes += ps->bytes;
    pattern_set_ref(ps);
    cache_trim(CACHE_MAX_SETS, CACHE_MAX_BYTES);
    return ps;
}

static void jobs_reap(void);

/* The start of both gets: the caps checked, finished compiles taken in,
 * the set's hash in *h. 1 with *out from the cache, 0 if not cached. */
static int
cache_lookup(const struct pattern *pats, unsigned n, unsigned opts,
             uint64_t *h, struct pattern_set **out, char *err)
{
    struct pattern_set *ps;
    int rc;

    if ((rc = set_limits(pats, n, err)) < 0)
        return rc;
    jobs_reap();
    *h = set_hash(pats, n, opts);
    if (!(ps = cache_find(pats, n, opts, *h)))
        return 0;
    *out = cache_use(ps);
    return 1;
}

/* The end of both gets when the set is built here: ps is consumed. */
static int
build_here(struct pattern_set *ps, uint64_t h, struct pattern_set **out,
           char *err)
{
    int rc;

    if ((rc = set_build(ps, err)) < 0 || (rc = set_adopt(ps)) < 0) {
        set_discard(ps);
        return rc;
    }
    *out = cache_add(ps, h);
    return 0;
}

int
pattern_set_get(const struct pattern *pats, unsigned n, unsigned opts,
                struct pattern_set **out, char *err)
{
    struct pattern_set *ps;
    uint64_t h;
    int rc;

    if ((rc = cache_lookup(pats, n, opts, &h, out, err)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = set_prepare(pats, n, opts, 0, &ps, err)) < 0)
        return rc;
    return build_here(ps, h, out, err);
}

/* The set pattern_set_check prepared last: a ctl write is parsed, then
 * its op submitted at once (reactor thread). */
static struct {
    struct pattern_set *ps;
    uint64_t hash;
} checked;

int
pattern_set_check(const struct pattern *pats, unsigned n, unsigned opts,
                  char *err)
{
    struct pattern_set *ps;
    uint64_t h;
    int rc;

    if ((rc = set_limits(pats, n, err)) < 0)
        return rc;
    jobs_reap();
    h = set_hash(pats, n, opts);
    if (cache_find(pats, n, opts, h))
        return 0;
    if ((rc = set_prepare(pats, n, opts, PATTERN_CHECK_BUDGET, &ps, err)) < 0)
        return rc;
    /* The op that follows takes it (pattern_set_get_async). */
    set_discard(checked.ps);
    checked.ps = ps;
    checked.hash = h;
    return 0;
}

/* ---- compiling off the reactor thread ------------------------------- */

/*
 * Hyperscan takes from microseconds to tens of seconds to build a
 * database (large bounded repeats, start tracking on some shapes:
 * docs/matching.md), and the stream core runs on the daemon's one
 * reactor thread, which must never stall. So a set with a regex that is
 * not in the cache is prepared at once (every error a user can make but
 * "too large once compiled" is found there, with its message, while the
 * ctl write is answered) and its database is built by a compiler thread.
 *
 * Jobs. Every job is on jobs.all from its creation until the reactor
 * thread adopts its set into the cache (or drops a failed one): a build
 * is never wasted, even when its op timed out or went away first, so a
 * test that retries an `expect` with a timeout shorter than the compile
 * finds the set compiled (or still compiling: a request for the same
 * set joins the job instead of starting another).
 *
 * Threads and ownership. A compiler thread takes a QUEUED job, builds
 * its set's database touching nothing but that set, marks it FINISHED
 * and, if a requester waits (waited), writes the requester's eventfd,
 * which the requester's reactor watches; it never frees a job. Everything
 * else (the cache, the scratch space, the reactor, freeing) is the
 * reactor thread's: it adopts a finished job's set when the eventfd
 * fires, or, for a job nobody waits for, at the next call into this file
 * (jobs_reap). `state` and `waited` are read and written under
 * jobs.lock; a requester attaches or lets go under it, so the thread
 * writes an eventfd only while its requester still watches it. Compiler
 * threads block every signal (the daemon takes its signals through a
 * signalfd) and end when no job is queued.
 */
enum job_state { JOB_QUEUED, JOB_BUILDING, JOB_FINISHED };

struct pattern_job {
    struct pattern_job *next; /* jobs.all */
    struct pattern_set *ps;   /* prepared; its database being built */
    uint64_t hash;
    enum job_state state; /* under jobs.lock */
    bool waited;          /* under jobs.lock: a requester is attached */
    int rc;               /* the build's, once FINISHED */
    char err[PATTERN_ERR_LEN];
    /* The requester's (reactor thread). */
    int efd;
    struct reactor *r;
    pattern_job_fn *done;
    void *arg;
};

static struct {
    pthread_mutex_t lock;
    struct pattern_job *all; /* newest first */
    unsigned njobs, threads;
} jobs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *
compiler_main(void *unused)
{
    for (;;) {
        struct pattern_job *job, *pick = NULL;

        pthread_mutex_lock(&jobs.lock);
        for (job = jobs.all; job; job = job->next)
            if (job->state == JOB_QUEUED)
                pick = job; /* the oldest */
        if (!pick) {
            jobs.threads--;
            pthread_mutex_unlock(&jobs.lock);
            return NULL;
        }
        pick->state = JOB_BUILDING;
        pthread_mutex_unlock(&jobs.lock);
        int rc = set_build(pick->ps, pick->err);
        pthread_mutex_lock(&jobs.lock);
        pick->rc = rc;
        pick->state = JOB_FINISHED;
        if (pick->waited) {
            uint64_t one = 1;
            /* An eventfd write fails only past 2^64-2: never here. */
            if (write(pick->efd, &one, sizeof one) < 0)
                pick->rc = -errno;
        }
        pthread_mutex_unlock(&jobs.lock);
    }
}

/* Start a compiler thread unless PATTERN_COMPILERS run (jobs.lock held).
 * -errno when none runs and none could be started. */
static int
compiler_start(void)
{
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    if (jobs.threads >= PATTERN_COMPILERS)
        return 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = -pthread_create(&t, &attr, compiler_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        jobs.threads++;
    return rc == 0 || jobs.threads > 0 ? 0 : rc;
}

/* Take job off jobs.all (jobs.lock held). */
static void
jobs_unlink(struct pattern_job *job)
{
    for (struct pattern_job **pp = &jobs.all; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            jobs.njobs--;
            return;
        }
    }
}

/* Let the requester go: no eventfd write after this (reactor thread). */
static void
job_detach(struct pattern_job *job)
{
    if (job->efd < 0)
        return;
    reactor_unwatch(job->r, job->efd);
    pthread_mutex_lock(&jobs.lock);
    job->waited = false;
    pthread_mutex_unlock(&jobs.lock);
    close(job->efd);
    job->efd = -1;
    job->r = NULL;
    job->done = NULL;
}

/* A finished job, off jobs.all: its set into the cache. Returns the
 * job's result and, on success, a reference in *out (if out). */
static int
job_adopt(struct pattern_job *job, struct pattern_set **out)
{
    struct pattern_set *ps = job->ps, *have = NULL;
    int rc = job->rc;

    job->ps = NULL;
    if (rc == 0 && (rc = set_adopt(ps)) < 0)
        snprintf(job->err, sizeof job->err, "%s", strerror(-rc));
    if (rc < 0) {
        set_discard(ps);
        return rc;
    }
    for (struct pattern_set *c = cache.head; c && !have; c = c->next)
        if (c->hash == job->hash && set_same(c, ps))
            have = c;
    if (have) {
        pattern_set_put(ps);
        ps = cache_use(have);
    } else {
        ps = cache_add(ps, job->hash);
    }
    if (out)
        *out = ps;
    else
        pattern_set_put(ps);
    return 0;
}

static void
job_free(struct pattern_job *job)
{
    set_discard(job->ps);
    free(job);
}

/* Adopt the finished jobs nobody waits for (reactor thread). */
static void
jobs_reap(void)
{
    struct pattern_job *done = NULL, **pp;

    pthread_mutex_lock(&jobs.lock);
    for (pp = &jobs.all; *pp;) {
        struct pattern_job *job = *pp;
        if (job->state == JOB_FINISHED && !job->waited) {
            *pp = job->next;
            jobs.njobs--;
            job->next = done;
            done = job;
        } else {
            pp = &job->next;
        }
    }
    pthread_mutex_unlock(&jobs.lock);
    while (done) {
        struct pattern_job *job = done;
        done = job->next;
        job_adopt(job, NULL);
        job_free(job);
    }
}

/* The eventfd fired: the job finished (reactor thread). */
static void
job_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct pattern_job *job = arg;
    pattern_job_fn *done = job->done;
    void *darg = job->arg;
    struct pattern_set *ps = NULL;
    int rc;

    job_detach(job);
    pthread_mutex_lock(&jobs.lock);
    jobs_unlink(job);
    pthread_mutex_unlock(&jobs.lock);
    rc = job_adopt(job, &ps);
    done(rc < 0 ? NULL : ps, rc, rc < 0 ? job->err : NULL, darg);
    job_free(job);
}

/* Attach a requester to job: 0, or -errno (no eventfd). */
static int
job_attach(struct pattern_job *job, struct reactor *r, pattern_job_fn *done,
           void *arg)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (efd < 0)
        return -errno;
    if (reactor_watch(r, efd, REACTOR_IN, job_ready, job) < 0) {
        close(efd);
        return -ENOMEM;
    }
    job->efd = efd;
    job->r = r;
    job->done = done;
    job->arg = arg;
    pthread_mutex_lock(&jobs.lock);
    job->waited = true;
    if (job->state == JOB_FINISHED) {
        uint64_t one = 1;
        if (write(efd, &one, sizeof one) < 0)
            job->rc = -errno;
    }
    pthread_mutex_unlock(&jobs.lock);
    return 0;
}

int
pattern_set_get_async(const struct pattern *pats, unsigned n, unsigned opts,
                      struct reactor *r, pattern_job_fn *done, void *arg,
                      struct pattern_set **out, struct pattern_job **jobp,
                      char *err)
{
    struct pattern_set *ps;
    struct pattern_job *job;
    uint64_t h;
    int rc;

    if ((rc = cache_lookup(pats, n, opts, &h, out, err)) != 0)
        return rc < 0 ? rc : 0;
    /* Being compiled for an op that gave up on it: wait for that. */
    pthread_mutex_lock(&jobs.lock);
    for (job = jobs.all; job; job = job->next)
        if (!job->waited && job->hash == h && set_equal(job->ps, pats, n, opts))
            break;
    pthread_mutex_unlock(&jobs.lock);
    if (job && job_attach(job, r, done, arg) == 0) {
        *jobp = job;
        return 1;
    }
    if (checked.ps && checked.hash == h &&
        set_equal(checked.ps, pats, n, opts)) {
        ps = checked.ps;
        checked.ps = NULL;
    } else if ((rc = set_prepare(pats, n, opts, PATTERN_CHECK_BUDGET, &ps,
                                 err)) < 0) {
        return rc;
    }
    if (!set_has_regex(ps))
        goto at_once; /* literals build in milliseconds */
    if (jobs.njobs >= PATTERN_MAX_JOBS) {
        set_discard(ps);
        errf(err,
             "too many pattern sets being compiled (%u); try again when "
             "they are done",
             (unsigned)PATTERN_MAX_JOBS);
        return -EBUSY;
    }
    if (!(job = calloc(1, sizeof *job)))
        goto at_once;
    job->ps = ps;
    job->hash = h;
    job->efd = -1;
    if (job_attach(job, r, done, arg) < 0) {
        free(job);
        goto at_once;
    }
    pthread_mutex_lock(&jobs.lock);
    rc = compiler_start();
    if (rc == 0) {
        job->next = jobs.all;
        jobs.all = job;
        jobs.njobs++;
    }
    pthread_mutex_unlock(&jobs.lock);
    if (rc < 0) {
        job_detach(job);
        job->ps = NULL;
        job_free(job);
        goto at_once;
    }
    *jobp = job;
    return 1;
at_once:
    /* Literals only, or no thread or fd to be had: build it here. */
    return build_here(ps, h, out, err);
}

void
pattern_job_cancel(struct pattern_job *job)
{
    if (!job)
        return;
    /* It stays on jobs.all: its set reaches the cache when built. */
    job_detach(job);
    jobs_reap();
}

unsigned
pattern_jobs(void)
{
    unsigned n;

    jobs_reap();
    pthread_mutex_lock(&jobs.lock);
    n = jobs.njobs;
    pthread_mutex_unlock(&jobs.lock);
    return n;
}

struct pattern_set *
pattern_set_ref(struct pattern_set *ps)
{
    ps->refs++;
    return ps;
}

void
pattern_set_put(struct pattern_set *ps)
{
    if (ps && --ps->refs == 0)
        set_free(ps);
}

unsigned
pattern_set_count(const struct pattern_set *ps)
{
    return ps->n;
}

const struct pattern *
pattern_set_pattern(const struct pattern_set *ps, unsigned i)
{
    return &ps->e[i].p;
}

const struct pattern_set_info *
pattern_set_info(const struct pattern_set *ps)
{
    return &ps->info;
}

uint64_t
pattern_set_start(const struct pattern_set *ps, unsigned i, uint64_t from,
                  uint64_t to)
{
    const struct entry *e = &ps->e[i];

    if (e->width)
        return to - e->width;
    return e->som ? from : PATTERN_UNKNOWN;
}

bool
pattern_set_som(const struct pattern_set *ps, unsigned i)
{
    return ps->e[i].som;
}

void *
pattern_scratch(void)
{
    /* Every live set's database was given to hs_alloc_scratch() when it
     * was built, which grows one scratch to suit them all; it is freed
     * only when no set is left. */
    return scratch;
}

/* ---- captures ----------------------------------------------------- */

unsigned
pattern_set_groups(const struct pattern_set *ps, unsigned i)
{
    return ps->e[i].groups;
}

int
pattern_set_captures(struct pattern_set *ps, unsigned i, const void *subject,
                     size_t from, size_t to, size_t *ovec, unsigned max)
{
    struct entry *e = &ps->e[i];
    pcre2_match_data *md;
    pcre2_match_context *mc;
    int rc;

    if (e->p.kind != PATTERN_REGEX || from > to)
        return -EINVAL;
    if (to - from > PATTERN_MAX_CAPTURE_SPAN)
        return -E2BIG;
    if (!e->jit_tried) {
        e->jit_tried = true;
        pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE); /* optional */
    }
    md = pcre2_match_data_create_from_pattern(e->re, NULL);
    mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        return -ENOMEM;
    }
    pcre2_set_match_limit(mc, PCRE2_MATCH_LIMIT);
    /* The subject ends at the match end: the end must be exactly there,
     * as Hyperscan found it; bytes before `from` are context. */
    rc = pcre2_match(e->re, subject, to, from,
                     PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NO_UTF_CHECK,
                     md, mc);
    if (rc > 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        unsigned n = e->groups + 1 < max ? e->groups + 1 : max;
        for (unsigned g = 0; g < n; g++) {
            bool set = g < (unsigned)rc && ov[2 * g] != PCRE2_UNSET;
            ovec[2 * g] = set ? ov[2 * g] : PATTERN_UNSET;
            ovec[2 * g + 1] = set ? ov[2 * g + 1] : PATTERN_UNSET;
        }
        rc = (int)n;
    } else if (rc == PCRE2_ERROR_NOMEMORY) {
        rc = -ENOMEM;
    } else if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
               rc == PCRE2_ERROR_HEAPLIMIT) {
        rc = -E2BIG;
    } else {
        rc = -ENOENT;
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return rc;
}

/* ---- the cache ---------------------------------------------------- */

void
pattern_cache_stats(struct pattern_cache_stats *st)
{
    st->sets = cache.sets;
    st->bytes = cache.bytes;
    st->hits = cache.hits;
    st->compiles = cache.compiles;
}

void
pattern_cache_flush(void)
{
    cache_trim(0, 0);
}
