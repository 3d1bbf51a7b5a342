/*
 * match_ref.h - what the scanner must answer, computed with the whole
 * input in view, and random pattern sets to ask it: shared by the
 * scanner's tests (scan.c) and the stream ops' (stream.c). Included by
 * one test program each (static definitions).
 *
 * The reference is PCRE2's DFA matcher run anchored at every start,
 * which lists every match end from that start. Hyperscan and PCRE2 are
 * two independent implementations of the same syntax, so agreement on
 * random patterns and data says the scanner's bookkeeping (chunk edges,
 * held matches, ties, offsets) is right.
 */
#ifndef PROVIUM_TEST_MATCH_REF_H
#define PROVIUM_TEST_MATCH_REF_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "streams.h"

/* Not every includer uses every helper. */
#define MAYBE_UNUSED __attribute__((unused))

static MAYBE_UNUSED struct pattern
lit(const char *s)
{
    return (struct pattern){PATTERN_LITERAL, 0, s, strlen(s)};
}

static MAYBE_UNUSED struct pattern
re(const char *s, unsigned flags)
{
    return (struct pattern){PATTERN_REGEX, flags, s, strlen(s)};
}

/* ---- the reference ------------------------------------------------ */

struct ref {
    pcre2_code *code;
    pcre2_match_data *md;
};

static MAYBE_UNUSED int dfa_ws[20000];

static MAYBE_UNUSED void
ref_compile(struct ref *r, const struct pattern *p)
{
    char buf[4 * 64 + 1];
    const char *src = p->src;
    size_t len = p->len;
    /* All match ends, as DFA matching lists them: no optimisation may
     * drop one. */
    uint32_t opts = PCRE2_NEVER_UTF | PCRE2_NO_AUTO_POSSESS |
                    PCRE2_NO_START_OPTIMIZE | PCRE2_NO_DOTSTAR_ANCHOR;
    int e;
    PCRE2_SIZE eo;

    if (p->kind == PATTERN_LITERAL) {
        cr_assert_leq(p->len, 64);
        for (size_t i = 0; i < p->len; i++)
            sprintf(buf + 4 * i, "\\x%02x", ((const unsigned char *)src)[i]);
        src = buf;
        len = 4 * p->len;
    }
    opts |= p->flags & PATTERN_CASELESS ? PCRE2_CASELESS : 0;
    opts |= p->flags & PATTERN_MULTILINE ? PCRE2_MULTILINE : 0;
    opts |= p->flags & PATTERN_DOTALL ? PCRE2_DOTALL : 0;
    r->code = pcre2_compile((PCRE2_SPTR)src, len, opts, &e, &eo, NULL);
    cr_assert_not_null(r->code);
    r->md = pcre2_match_data_create(1100, NULL);
}

static MAYBE_UNUSED void
ref_free(struct ref *r)
{
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->code);
}

/* Leftmost start of a match of r ending exactly at e in subj[0..len), or
 * -1. */
static MAYBE_UNUSED long
ref_start(struct ref *r, const unsigned char *subj, size_t len, size_t e)
{
    for (size_t s = 0; s < e; s++) {
        int rc =
                pcre2_dfa_match(r->code, subj, len, s, PCRE2_ANCHORED, r->md,
                                NULL, dfa_ws, sizeof dfa_ws / sizeof dfa_ws[0]);
        cr_assert(rc >= 0 || rc == PCRE2_ERROR_NOMATCH, "dfa: %d", rc);
        cr_assert_neq(rc, 0, "ovector too small");
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        for (int k = 0; k < rc; k++)
            if (ov[2 * k + 1] == e)
                return (long)s;
    }
    return -1;
}

struct expect {
    long end; /* -1: no match */
    unsigned index;
    long start;
};

/*
 * What the scanner must answer for data fed with scan_idle() at the
 * offsets marked in idle[] (the end of the data is one too). Matches are
 * tried by end e, ascending; at each end the lowest index wins:
 *
 *  - at an idle point E, the subject is the data cut at E (`$`, `\b` see
 *    the end of the data there); if nothing matches at E in that view,
 *    what matches there once the next byte is known (`a\B`) still counts;
 *  - at E - 1 when data[E-1] is a newline, the view cut at E too (`$`
 *    before a final newline);
 *  - elsewhere the whole data.
 */
static MAYBE_UNUSED struct expect
reference(struct ref *refs, unsigned n, const unsigned char *d, size_t len,
          const bool *idle)
{
    struct expect x = {-1, 0, -1};

    for (size_t e = 1; e <= len; e++) {
        size_t views[2], nv = 0;
        if (idle[e])
            views[nv++] = e;
        views[nv++] = e + 1 <= len && idle[e + 1] && d[e] == '\n' ? e + 1 : len;
        for (size_t v = 0; v < nv; v++) {
            for (unsigned i = 0; i < n; i++) {
                long s = ref_start(&refs[i], d, views[v], e);
                if (s >= 0) {
                    x.end = (long)e;
                    x.index = i;
                    x.start = s;
                    return x;
                }
            }
        }
    }
    return x;
}

/* ---- random patterns ---------------------------------------------- */

static MAYBE_UNUSED const char data_alpha[] = "abcAX \n";

static MAYBE_UNUSED char
rnd_char(void)
{
    static const char c[] = "abcAX ";
    return c[rand() % (sizeof c - 1)];
}

/*
 * Append a random regex to o and a string it matches to smp (both
 * bounded); no assertions (\b, $) if plain. An assertion's sample is
 * empty, so a planted sample may not match: the reference decides.
 */
static MAYBE_UNUSED void
gen_regex(char *o, size_t cap, char *smp, size_t scap, int depth, bool plain)
{
    size_t n = strlen(o);
    int items = 1 + rand() % 3;

    for (int k = 0; k < items && n + 24 < cap; k++) {
        char piece[96] = "", ps[96] = "";
        int r = rand() % 10;
        if (r < 4 || (r == 8 && plain) || r == 9) {
            piece[0] = ps[0] = rnd_char();
            piece[1] = ps[1] = '\0';
        } else if (r == 4) {
            char a = rnd_char(), b = rnd_char();
            snprintf(piece, sizeof piece, "[%c%c]", a, b);
            snprintf(ps, sizeof ps, "%c", rand() % 2 ? a : b);
        } else if (r == 5) {
            char a = rnd_char(), c;
            do
                c = rnd_char();
            while (c == a);
            snprintf(piece, sizeof piece, "[^%c\\n]", a);
            snprintf(ps, sizeof ps, "%c", c);
        } else if (r == 6) {
            piece[0] = '.';
            ps[0] = rnd_char();
        } else if (r == 7 && depth < 2) {
            char a[96] = "", as[96] = "", b[96] = "", bs[96] = "";
            gen_regex(a, 40, as, sizeof as, depth + 1, plain);
            gen_regex(b, 40, bs, sizeof bs, depth + 1, plain);
            snprintf(piece, sizeof piece, "(%s|%s)", a, b);
            snprintf(ps, sizeof ps, "%s", rand() % 2 ? as : bs);
        } else if (r == 8) {
            snprintf(piece, sizeof piece, "\\b");
        } else {
            piece[0] = ps[0] = rnd_char();
        }
        /* A quantifier on what was just added (not on \b). */
        int reps = 1;
        const char *q = "";
        if (strcmp(piece, "\\b") != 0 && rand() % 4 == 0) {
            static const char *qs[] = {"?", "+", "*", "{1,3}", "{2}"};
            static const int lo[] = {0, 1, 0, 1, 2}, hi[] = {1, 2, 2, 3, 2};
            int w = rand() % 5;
            q = qs[w];
            reps = lo[w] + rand() % (hi[w] - lo[w] + 1);
            if (strlen(piece) > 1 && piece[0] != '[' && piece[0] != '(') {
                /* quantify one char only: wrap */
                char t[128];
                if (snprintf(t, sizeof t, "(%s)", piece) < (int)sizeof piece)
                    strcpy(piece, t);
            }
        }
        if (n + strlen(piece) + strlen(q) + 1 >= cap)
            break;
        n += (size_t)snprintf(o + n, cap - n, "%s%s", piece, q);
        for (int i = 0; i < reps; i++)
            if (strlen(smp) + strlen(ps) + 1 < scap)
                strcat(smp, ps);
    }
    if (!plain && depth == 0 && rand() % 6 == 0 && n + 2 < cap)
        o[n++] = '$';
    o[n] = '\0';
}

/* A random literal into o; returns its length. */
static MAYBE_UNUSED size_t
gen_literal(char *o)
{
    size_t len = 1 + (size_t)rand() % 5;
    for (size_t i = 0; i < len; i++)
        o[i] = data_alpha[rand() % (sizeof data_alpha - 1)];
    o[len] = '\0';
    return len;
}

struct rset {
    unsigned n;
    struct pattern p[6];
    char src[6][96];
    char sample[6][96]; /* a string each pattern matches (regexes) */
    struct ref refs[6];
    struct pattern_set *ps;
};

/* A random set that compiles (regexes that can match empty are dropped). */
static MAYBE_UNUSED void
gen_set(struct rset *rs, bool plain, unsigned setopts)
{
    char err[PATTERN_ERR_LEN];

    for (;;) {
        rs->n = 1 + (unsigned)rand() % 6;
        for (unsigned i = 0; i < rs->n; i++) {
            if (rand() % 2) {
                size_t len = gen_literal(rs->src[i]);
                rs->p[i] =
                        (struct pattern){PATTERN_LITERAL, 0, rs->src[i], len};
            } else {
                rs->src[i][0] = rs->sample[i][0] = '\0';
                gen_regex(rs->src[i], sizeof rs->src[i], rs->sample[i],
                          sizeof rs->sample[i], 0, plain);
                unsigned f = 0;
                if (rand() % 4 == 0)
                    f |= PATTERN_CASELESS;
                if (!plain && rand() % 4 == 0)
                    f |= PATTERN_MULTILINE;
                if (rand() % 5 == 0)
                    f |= PATTERN_DOTALL;
                rs->p[i] = re(rs->src[i], f);
            }
        }
        int rc = pattern_set_get(rs->p, rs->n, setopts, &rs->ps, err);
        if (rc == 0)
            break;
        cr_assert(strstr(err, "empty string") || strstr(err, "never match"),
                  "unexpected refusal: %s", err);
    }
    for (unsigned i = 0; i < rs->n; i++)
        ref_compile(&rs->refs[i], &rs->p[i]);
}

static MAYBE_UNUSED void
rset_free(struct rset *rs)
{
    for (unsigned i = 0; i < rs->n; i++)
        ref_free(&rs->refs[i]);
    pattern_set_put(rs->ps);
}

/* Random data with samples of the patterns planted here and there. */
static MAYBE_UNUSED size_t
gen_data(unsigned char *d, size_t cap, const struct rset *rs)
{
    size_t len = (size_t)rand() % cap;
    for (size_t i = 0; i < len; i++)
        d[i] = (unsigned char)data_alpha[rand() % (sizeof data_alpha - 1)];
    for (int k = rand() % 4; k > 0 && len > 8; k--) {
        unsigned i = (unsigned)rand() % rs->n;
        const struct pattern *p = &rs->p[i];
        const char *smp = p->kind == PATTERN_LITERAL ? p->src : rs->sample[i];
        size_t sl = p->kind == PATTERN_LITERAL ? p->len : strlen(smp);
        if (sl < len) {
            size_t at = (size_t)rand() % (len - sl);
            memcpy(d + at, smp, sl);
        }
    }
    return len;
}

/* Start as the scanner knows it for pattern i (or -1 if it does not). */
static MAYBE_UNUSED bool
start_known(const struct pattern_set *ps, unsigned i)
{
    const struct pattern *p = pattern_set_pattern(ps, i);
    return p->kind == PATTERN_LITERAL || pattern_set_som(ps, i) ||
           pattern_set_start(ps, i, 0, 1000) != PATTERN_UNKNOWN;
}

/* Print a failing case (data, patterns, chunks) to stderr. */
static MAYBE_UNUSED void
dump_case(const struct rset *rs, const unsigned char *d, size_t len,
          const size_t *chunks, unsigned nch, const bool *idle)
{
    char esc[4096];
    pattern_escape(d, len, len, esc, sizeof esc);
    fprintf(stderr, "data `%s`\n", esc);
    for (unsigned i = 0; i < rs->n; i++) {
        pattern_describe(&rs->p[i], 0, esc, sizeof esc);
        fprintf(stderr, "pattern %u: %s%s\n", i, esc,
                pattern_set_som(rs->ps, i) ? " (som)" : "");
    }
    fprintf(stderr, "chunks:");
    for (unsigned k = 0, off = 0; k < nch; k++) {
        off += (unsigned)chunks[k];
        fprintf(stderr, " %zu%s", chunks[k], idle && idle[off] ? "i" : "");
    }
    fprintf(stderr, "\n");
}

#endif
