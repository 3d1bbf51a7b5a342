/*
 * The streaming scanner (streams/scan.c): earliest match end, lowest
 * index at ties, spans, the end of the data, skip=printk, timeout
 * messages.
 *
 * The property tests compare it with a reference that has the whole
 * input in view (match_ref.h). SEED=N in the environment replays them
 * with another seed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match_ref.h"

#define REC "[    3.141592] random: crng init done\r\n"

static struct scan *
scanner(const struct pattern *p, unsigned n, unsigned setopts,
        unsigned scanopts)
{
    struct pattern_set *ps;
    struct scan *sc;
    char err[PATTERN_ERR_LEN];

    cr_assert_eq(pattern_set_get(p, n, setopts, &ps, err), 0, "%s", err);
    cr_assert_eq(scan_new(ps, scanopts, &sc), 0);
    pattern_set_put(ps);
    return sc;
}

/* Feed data in chunks of the given sizes (the last one takes the rest),
 * then scan_finish. 1 with *m, or 0. */
static int
run(struct scan *sc, const char *data, size_t len, const size_t *chunks,
    unsigned nchunks, struct scan_match *m)
{
    size_t off = 0;
    int rc;

    for (unsigned k = 0; off < len; k++) {
        size_t n = k < nchunks ? chunks[k] : len - off;
        if (n > len - off)
            n = len - off;
        if ((rc = scan_feed(sc, data + off, n, m)) != 0)
            return rc;
        off += n;
    }
    return scan_finish(sc, m);
}

Test(scan, earliest_end_lowest_index_random, .timeout = 240)
{
    unsigned char d[300];
    bool idle[301];

    srand(getenv("SEED") ? (unsigned)atoi(getenv("SEED")) : 2024);
    for (int iter = 0; iter < 3000; iter++) {
        struct rset rs;
        gen_set(&rs, false, 0);
        size_t len = gen_data(d, sizeof d, &rs);

        /* Random chunks; after some of them the caller has caught up. */
        size_t chunks[300];
        unsigned nch = 0;
        memset(idle, 0, sizeof idle);
        int maxchunk = 1 + rand() % 64;
        for (size_t off = 0; off < len;) {
            size_t k = 1 + (size_t)rand() % (size_t)maxchunk;
            if (k > len - off)
                k = len - off;
            chunks[nch++] = k;
            off += k;
            if (rand() % 3 == 0)
                idle[off] = true;
        }
        idle[len] = true; /* scan_finish */
        struct expect x = reference(rs.refs, rs.n, d, len, idle);

        struct scan *sc;
        cr_assert_eq(scan_new(rs.ps, 0, &sc), 0);
        struct scan_match m;
        int rc = 0;
        size_t off = 0;
        for (unsigned k = 0; k < nch && rc == 0; k++) {
            rc = scan_feed(sc, d + off, chunks[k], &m);
            off += chunks[k];
            if (rc == 0 && idle[off] && off < len)
                rc = scan_idle(sc, &m);
        }
        if (rc == 0)
            rc = scan_finish(sc, &m);
        cr_assert_geq(rc, 0);

        char desc[1024] = "";
        for (unsigned i = 0; i < rs.n; i++) {
            char one[200];
            pattern_describe(&rs.p[i], 0, one, sizeof one);
            strcat(desc, one);
            strcat(desc, "  ");
        }
        if ((x.end < 0) != (rc == 0) ||
            (x.end >= 0 && (m.end != (uint64_t)x.end || m.index != x.index)))
            dump_case(&rs, d, len, chunks, nch, idle);
        if (x.end < 0) {
            cr_assert_eq(rc, 0,
                         "iter %d: no match expected, got %u at %llu "
                         "(%s)",
                         iter, m.index, (unsigned long long)m.end, desc);
        } else {
            cr_assert_eq(rc, 1, "iter %d: expected %u at %ld (%s)", iter,
                         x.index, x.end, desc);
            cr_assert_eq(m.end, (uint64_t)x.end,
                         "iter %d: end %llu, want %ld (%s)", iter,
                         (unsigned long long)m.end, x.end, desc);
            cr_assert_eq(m.index, x.index, "iter %d: index %u, want %u (%s)",
                         iter, m.index, x.index, desc);
            if (start_known(rs.ps, m.index))
                cr_assert_eq(m.start, (uint64_t)x.start,
                             "iter %d: start %llu, want %ld (%s)", iter,
                             (unsigned long long)m.start, x.start, desc);
            else
                cr_assert_eq(m.start, PATTERN_UNKNOWN);
        }
        scan_free(sc);
        rset_free(&rs);
    }
}

/* ---- chunk edges -------------------------------------------------- */

Test(scan, regex_straddling_every_frame_split, .timeout = 120)
{
    static char win[4096];
    const char *hit = "READY 12345 ok";
    size_t at = 2000, hl = strlen(hit);
    struct pattern p[] = {re("READY [0-9]+ ok", 0)};
    struct pattern l[] = {lit(hit)};
    struct scan *sc[3] = {
            scanner(p, 1, 0, 0),
            scanner(l, 1, PATTERN_SET_ENGINE_HS, 0),
            scanner(l, 1, PATTERN_SET_ENGINE_MEMMEM, 0),
    };

    srand(5);
    for (size_t i = 0; i < sizeof win; i++)
        win[i] = (char)("abcdefgh READY\n"[rand() % 15]);
    memcpy(win + at, hit, hl);
    for (int e = 0; e < 3; e++) {
        for (size_t k = 0; k <= sizeof win; k++) {
            for (size_t mid = 0; mid < 3; mid += 2) {
                size_t chunks[] = {k, mid ? 1 : sizeof win};
                struct scan_match m;
                scan_reset(sc[e]);
                cr_assert_eq(run(sc[e], win, sizeof win, chunks, 2, &m), 1,
                             "engine %d split at %zu", e, k);
                cr_assert_eq(m.index, 0);
                cr_assert_eq(m.end, at + hl, "split at %zu: end %llu", k,
                             (unsigned long long)m.end);
                cr_assert_eq(m.start, at, "split at %zu", k);
                cr_assert_eq(scan_bytes(sc[e]), k >= at + hl ? k
                                                : k + (mid ? 1 : 0) >= at + hl
                                                        ? k + 1
                                                        : sizeof win);
            }
        }
        scan_free(sc[e]);
    }
}

/* ---- ties --------------------------------------------------------- */

static void
expect_match(const struct pattern *p, unsigned n, const char *const *chunks,
             bool idle_after, unsigned index, uint64_t start, uint64_t end)
{
    struct scan *sc = scanner(p, n, 0, 0);
    struct scan_match m;
    int rc = 0;
    for (int k = 0; chunks[k] && rc == 0; k++)
        rc = scan_feed(sc, chunks[k], strlen(chunks[k]), &m);
    if (rc == 0 && idle_after)
        rc = scan_idle(sc, &m);
    cr_assert_eq(rc, 1, "no match (first pattern `%s`)",
                 (const char *)p[0].src);
    cr_assert_eq(m.index, index, "index %u, want %u (first pattern `%s`)",
                 m.index, index, (const char *)p[0].src);
    cr_assert_eq(m.start, start, "start %llu, want %llu",
                 (unsigned long long)m.start, (unsigned long long)start);
    cr_assert_eq(m.end, end, "end %llu, want %llu", (unsigned long long)m.end,
                 (unsigned long long)end);
    scan_free(sc);
}

#define CHUNKS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(scan, same_end_the_lower_index_wins)
{
    struct pattern a[] = {lit("ab"), lit("b")};
    struct pattern b[] = {lit("b"), lit("ab")};
    struct pattern c[] = {re("[a-z]b", 0), lit("ab")};
    struct pattern d[] = {lit("zzz"), re("x+ab", 0), lit("ab")};
    expect_match(a, 2, CHUNKS("xab"), false, 0, 1, 3);
    expect_match(a, 2, CHUNKS("xa", "b"), false, 0, 1, 3);
    expect_match(b, 2, CHUNKS("xab"), false, 0, 2, 3);
    expect_match(b, 2, CHUNKS("xa", "b", "c"), false, 0, 2, 3);
    expect_match(c, 2, CHUNKS("xa", "b"), false, 0, 1, 3);
    expect_match(d, 3, CHUNKS("xxa", "b"), false, 1, 0, 4);
    /* Earliest end first, whatever the index. */
    struct pattern e[] = {lit("abc"), lit("b")};
    expect_match(e, 2, CHUNKS("abc"), false, 1, 1, 2);
}

Test(scan, late_patterns_still_win_ties)
{
    /* a\b is known only once the byte after `a` is: it may arrive in the
     * next chunk, after `a` (index 1) was seen ending at the same place. */
    struct pattern p[] = {re("a\\b", 0), lit("a")};
    struct pattern q[] = {lit("a"), re("a\\b", 0)};
    expect_match(p, 2, CHUNKS("xa", " "), false, 0, 1, 2);
    expect_match(p, 2, CHUNKS("xa", "b"), false, 1, 1, 2);
    expect_match(q, 2, CHUNKS("xa", " "), false, 0, 1, 2);
    /* Caught up: the end of the data is a word boundary. */
    expect_match(p, 2, CHUNKS("xa"), true, 0, 1, 2);
    struct pattern m[] = {re("(?m)a$", 0), lit("a")};
    expect_match(m, 2, CHUNKS("xa", "\nq"), false, 0, 1, 2);
    expect_match(m, 2, CHUNKS("xa", "q"), false, 1, 1, 2);
    /* `$` before a newline that ends the data. */
    struct pattern n[] = {re("xa$", 0), lit("a")};
    expect_match(n, 2, CHUNKS("x", "a\n"), true, 0, 0, 2);
    expect_match(n, 2, CHUNKS("x", "a\n", "b"), false, 1, 1, 2);
}

/* ---- the end of the data ------------------------------------------ */

Test(scan, dollar_matches_where_the_stream_waits)
{
    struct pattern p[] = {re("login: *$", 0)};
    struct scan *sc = scanner(p, 1, 0, 0);
    struct scan_match m;

    cr_assert_eq(scan_feed(sc, "debian login: ", 14, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 1);
    cr_assert_eq(m.start, 7);
    cr_assert_eq(m.end, 14);

    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "login: x", 8, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 0, "not at the end: x follows");
    cr_assert_eq(scan_feed(sc, "\nlogin: \nfoo", 12, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 0, "the newline is not final");
    cr_assert_eq(scan_feed(sc, "\nlogin:", 7, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 1);
    cr_assert_eq(m.start, 21);
    cr_assert_eq(m.end, 27);
    cr_assert_eq(scan_feed(sc, "x", 1, &m), -EINVAL, "done after a match");

    /* At the end of the stream for good. */
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "login:", 6, &m), 0);
    cr_assert_eq(scan_finish(sc, &m), 1);
    cr_assert_eq(m.end, 6);
    scan_free(sc);

    struct pattern z[] = {re("ok\\z", 0)};
    sc = scanner(z, 1, 0, 0);
    cr_assert_eq(scan_feed(sc, "ok\n", 3, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 0, "\\z: not before a final newline");
    cr_assert_eq(scan_feed(sc, "ok", 2, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 1);
    cr_assert_eq(m.end, 5);
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "okx", 3, &m), 0);
    cr_assert_eq(scan_finish(sc, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), -EINVAL, "finished");
    scan_free(sc);
}

Test(scan, empty_literal_matches_at_once)
{
    struct pattern p[] = {re("abc", 0), lit(""), lit("")};
    struct scan *sc = scanner(p, 3, 0, 0);
    struct scan_match m;
    cr_assert_eq(scan_idle(sc, &m), 1, "even before any byte");
    cr_assert_eq(m.index, 1);
    cr_assert_eq(m.start, 0);
    cr_assert_eq(m.end, 0);
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "abc", 3, &m), 1);
    cr_assert_eq(m.end, 0);
    scan_free(sc);
}

Test(scan, caret_is_the_scanners_start)
{
    struct pattern p[] = {re("^ab", 0)};
    struct pattern q[] = {re("^ab", PATTERN_MULTILINE)};
    struct scan *sc = scanner(p, 1, 0, 0);
    struct scan_match m;
    cr_assert_eq(scan_feed(sc, "xab\nab", 6, &m), 0);
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "a", 1, &m), 0);
    cr_assert_eq(scan_feed(sc, "b", 1, &m), 1);
    scan_free(sc);
    sc = scanner(q, 1, 0, 0);
    cr_assert_eq(scan_feed(sc, "xab\nab", 6, &m), 1);
    cr_assert_eq(m.start, 4);
    scan_free(sc);
}

/* ---- skip=printk -------------------------------------------------- */

Test(scan, skip_printk_splices_at_every_position, .timeout = 60)
{
    const char *want = "login:", *pre = "Debian GNU/Linux 12 vm ttyS0\r\n\r\n";
    size_t pl = strlen(pre), wl = strlen(want), rl = strlen(REC);
    struct pattern sets[][1] = {{lit("login:")}, {re("log[a-z]+: *", 0)}};
    unsigned engines[] = {PATTERN_SET_ENGINE_MEMMEM, PATTERN_SET_ENGINE_HS};

    for (int s = 0; s < 2; s++) {
        for (int e = 0; e < 2; e++) {
            struct scan *sc = scanner(sets[s], 1, engines[e], SCAN_SKIP_PRINTK);
            struct scan *plain = scanner(sets[s], 1, engines[e], 0);
            for (size_t i = 0; i <= wl; i++) {
                char d[256];
                size_t len = (size_t)snprintf(d, sizeof d, "%s%.*s%s%s", pre,
                                              (int)i, want, REC, want + i);
                uint64_t end = i < wl ? len : pl + wl;
                uint64_t start = i == 0 ? pl + rl : pl;
                for (size_t k = 0; k <= len; k++) {
                    size_t chunks[] = {k};
                    struct scan_match m;
                    scan_reset(sc);
                    cr_assert_eq(run(sc, d, len, chunks, 1, &m), 1,
                                 "record at %zu, split at %zu", i, k);
                    cr_assert_eq(m.end, end,
                                 "record at %zu, split at %zu: "
                                 "end %llu",
                                 i, k, (unsigned long long)m.end);
                    cr_assert_eq(m.start, start,
                                 "record at %zu, split at %zu: start %llu", i,
                                 k, (unsigned long long)m.start);
                    cr_assert_eq(scan_records(sc), i < wl ? 1 : 0);
                }
                /* Without skip=printk the record breaks the prompt. */
                struct scan_match m;
                scan_reset(plain);
                cr_assert_eq(run(plain, d, len, NULL, 0, &m),
                             i == 0 || i == wl ? 1 : 0, "plain, at %zu", i);
            }
            scan_free(sc);
            scan_free(plain);
        }
    }
}

Test(scan, skip_printk_never_joins_real_lines)
{
    struct pattern p[] = {lit("login:")};
    const char *cases[] = {"log\r\nin:", "log\n" REC "in:", "log" REC "\nin:",
                           "log\r\n" REC "in:"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct scan *sc = scanner(p, 1, 0, SCAN_SKIP_PRINTK);
        struct scan_match m;
        cr_assert_eq(run(sc, cases[c], strlen(cases[c]), NULL, 0, &m), 0,
                     "case %zu", c);
        scan_free(sc);
    }
}

Test(scan, skip_printk_lookahead_is_bounded_and_resolved)
{
    struct pattern p[] = {lit("login[")};
    struct scan *sc = scanner(p, 1, 0, SCAN_SKIP_PRINTK);
    struct scan_match m;
    cr_assert_eq(scan_feed(sc, "login[", 6, &m), 0, "`[` may start a record");
    cr_assert_eq(scan_idle(sc, &m), 0);
    cr_assert_eq(scan_feed(sc, "x", 1, &m), 1, "the next byte says it is not");
    cr_assert_eq(m.end, 6);
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "login[  12.", 11, &m), 0);
    cr_assert_eq(scan_finish(sc, &m), 1, "the end of the stream says it too");
    cr_assert_eq(m.end, 6);
    scan_free(sc);

    /* A prompt waiting behind a record that is still arriving. */
    struct pattern q[] = {re("in: *$", 0)};
    sc = scanner(q, 1, 0, SCAN_SKIP_PRINTK);
    cr_assert_eq(scan_feed(sc, "login: [  1.5", 13, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 0, "undecided: not the end yet");
    cr_assert_eq(scan_feed(sc, "] msg\r\n", 7, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 1);
    cr_assert_eq(m.start, 3);
    cr_assert_eq(m.end, 7, "the record after the match stays");
    scan_free(sc);
}

Test(scan, skip_printk_span_start_over_many_records)
{
    struct pattern p[] = {re("A[^Z]*Z", PATTERN_DOTALL)};
    char d[8192];
    for (int nrec = 10; nrec <= 70; nrec += 60) {
        size_t len = 0;
        d[len++] = 'x';
        d[len++] = 'A';
        for (int k = 0; k < nrec; k++)
            len += (size_t)snprintf(d + len, sizeof d - len, "b" REC);
        d[len++] = 'Z';
        struct scan *sc = scanner(p, 1, 0, SCAN_SKIP_PRINTK);
        struct scan_match m;
        cr_assert_eq(run(sc, d, len, NULL, 0, &m), 1);
        cr_assert_eq(m.end, len);
        /* 64 removals are remembered; past that the start is unknown,
         * never wrong. */
        cr_assert_eq(m.start, nrec <= 64 ? 1 : PATTERN_UNKNOWN, "%d records",
                     nrec);
        scan_free(sc);
    }
}

/* The whole-data reference with skip=printk: strip, match, map back. */
static bool
record_at(const unsigned char *b, size_t n, size_t i)
{
    size_t j = i + 1, k;
    if (b[i] != '[')
        return false;
    for (k = 0; j < n && b[j] == ' '; j++, k++)
        ;
    if (k > 16)
        return false;
    for (k = 0; j < n && b[j] >= '0' && b[j] <= '9'; j++, k++)
        ;
    if (k < 1 || k > 12 || j >= n || b[j] != '.')
        return false;
    for (k = 0, j++; j < n && b[j] >= '0' && b[j] <= '9'; j++, k++)
        ;
    return k >= 1 && k <= 9 && j < n && b[j] == ']';
}

Test(scan, skip_printk_random, .timeout = 240)
{
    unsigned char d[400], f[400];
    size_t pos[400];
    bool idle[401];

    srand(getenv("SEED") ? (unsigned)atoi(getenv("SEED")) : 99);
    for (int iter = 0; iter < 1500; iter++) {
        struct rset rs;
        gen_set(&rs, true, 0);
        size_t len = gen_data(d, 250, &rs);
        /* Splice records in at random places. */
        for (int k = rand() % 4; k > 0; k--) {
            static const char *recs[] = {REC, "[ 12.5] x\n", "[0.000001]\r\n"};
            const char *r = recs[rand() % 3];
            size_t rl = strlen(r), at = len ? (size_t)rand() % (len + 1) : 0;
            if (len + rl > sizeof d)
                break;
            memmove(d + at + rl, d + at, len - at);
            memcpy(d + at, r, rl);
            len += rl;
        }
        size_t fl = 0;
        for (size_t i = 0; i < len;) {
            if (record_at(d, len, i)) {
                const unsigned char *nl = memchr(d + i, '\n', len - i);
                i = nl ? (size_t)(nl - d) + 1 : len;
            } else {
                pos[fl] = i;
                f[fl++] = d[i++];
            }
        }
        memset(idle, 0, sizeof idle);
        idle[fl] = true;
        struct expect x = reference(rs.refs, rs.n, f, fl, idle);

        struct scan *sc;
        cr_assert_eq(scan_new(rs.ps, SCAN_SKIP_PRINTK, &sc), 0);
        size_t chunks[400];
        unsigned nch = 0;
        for (size_t off = 0; off < len;) {
            size_t k = 1 + (size_t)rand() % 48;
            if (k > len - off)
                k = len - off;
            chunks[nch++] = k;
            off += k;
        }
        struct scan_match m;
        int rc = run(sc, (const char *)d, len, chunks, nch, &m);
        if (x.end < 0) {
            if (rc != 0)
                dump_case(&rs, d, len, chunks, nch, NULL);
            cr_assert_eq(rc, 0, "iter %d", iter);
        } else {
            cr_assert_eq(rc, 1, "iter %d", iter);
            cr_assert_eq(m.index, x.index, "iter %d", iter);
            if (m.end != pos[x.end - 1] + 1 || m.index != x.index)
                dump_case(&rs, d, len, chunks, nch, NULL);
            cr_assert_eq(m.end, pos[x.end - 1] + 1, "iter %d: end %llu", iter,
                         (unsigned long long)m.end);
            if (start_known(rs.ps, m.index))
                cr_assert_eq(m.start, pos[x.start], "iter %d", iter);
        }
        scan_free(sc);
        rset_free(&rs);
    }
}

/* ---- engines ------------------------------------------------------ */

Test(scan, single_literal_engines_agree, .timeout = 60)
{
    char buf[512], pat[12];
    srand(3);
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = (size_t)rand() % sizeof buf;
        size_t plen = 1 + (size_t)rand() % 10;
        int alpha = 1 + rand() % 3;
        for (size_t j = 0; j < len; j++)
            buf[j] = (char)('a' + rand() % alpha);
        for (size_t j = 0; j < plen; j++)
            pat[j] = (char)('a' + rand() % alpha);
        struct pattern p = {PATTERN_LITERAL, 0, pat, plen};
        char *hit = memmem(buf, len, pat, plen);
        size_t chunks[64];
        unsigned nch = 0;
        for (size_t off = 0; off < len && nch < 64;) {
            chunks[nch] = 1 + (size_t)rand() % 40;
            off += chunks[nch++];
        }
        for (int e = 0; e < 2; e++) {
            struct scan *sc = scanner(
                    &p, 1,
                    e ? PATTERN_SET_ENGINE_HS : PATTERN_SET_ENGINE_MEMMEM, 0);
            struct scan_match m;
            int rc = run(sc, buf, len, chunks, nch, &m);
            cr_assert_eq(rc, hit ? 1 : 0, "engine %d", e);
            if (hit)
                cr_assert_eq(m.end, (uint64_t)(hit - buf) + plen);
            scan_free(sc);
        }
    }
    pattern_cache_flush();
}

/* ---- timeout messages --------------------------------------------- */

static char *
message(const struct pattern *p, unsigned n, unsigned scanopts,
        const char *data, size_t len, const char *op, uint64_t t)
{
    struct scan *sc = scanner(p, n, 0, scanopts);
    struct scan_match m;
    cr_assert_eq(scan_feed(sc, data, len, &m), 0);
    cr_assert_eq(scan_idle(sc, &m), 0);
    char *msg = scan_timeout_message(sc, op, t);
    cr_assert_not_null(msg);
    scan_free(sc);
    return msg;
}

static void
expect_message(const struct pattern *p, unsigned n, unsigned scanopts,
               const char *data, const char *op, uint64_t t, const char *want)
{
    char *msg = message(p, n, scanopts, data, strlen(data), op, t);
    cr_assert_str_eq(msg, want);
    free(msg);
}

Test(scan, timeout_messages_word_for_word)
{
    struct pattern login[] = {lit("login:")};

    expect_message(login, 1, 0, "", "expect", 10 * USEC_PER_SEC,
                   "expect timed out waiting for `login:`; timeout 10s; no "
                   "bytes seen");
    /* A kernel message cut the prompt: closest says so. */
    expect_message(login, 1, 0, "Debian GNU/Linux 12\r\nlogi" REC, "read_until",
                   1500 * USEC_PER_MSEC,
                   "read_until timed out waiting for `login:`; timeout 1.5s; "
                   "last bytes seen: `Debian GNU/Linux 12\\r\\nlogi[    "
                   "3.141592] random: crng init done\\r\\n`; 64 bytes "
                   "scanned; closest: `logi` then `[    3.141592] random: "
                   "crng init done\\r\\n`");
    /* More than 64 bytes: the last ones, the cut marked. */
    expect_message(login, 1, 0,
                   "0123456789012345678901234567890123456789"
                   "0123456789012345678901234567890123456789 log",
                   "expect", 250 * USEC_PER_MSEC,
                   "expect timed out waiting for `login:`; timeout 250ms; "
                   "last bytes seen: `...01234567890123456789012345678901234567"
                   "8901234567890123456789 log`; 84 bytes "
                   "scanned; closest: `log` at the end");
    /* The latest of equally long prefixes; what follows, cut at 40. */
    expect_message(
            login, 1, 0,
            "login login\nlogin\x01 and then a long long tail of "
            "words and more",
            "expect", USEC_PER_SEC,
            "expect timed out waiting for `login:`; timeout 1s; last "
            "bytes seen: `login login\\nlogin\\x01 and then a long long tail "
            "of words and more`; 62 bytes scanned; closest: `login` "
            "then `\\x01 and then a long long tail of words and...`");
    /* One byte is no near miss. */
    expect_message(login, 1, 0, "llama", "expect", USEC_PER_SEC,
                   "expect timed out waiting for `login:`; timeout 1s; last "
                   "bytes seen: `llama`; 5 bytes scanned");
    /* A list names every pattern; closest names its pattern. */
    struct pattern list[] = {lit("login:"),
                             re("Password: *$", PATTERN_CASELESS), lit("# ")};
    expect_message(list, 3, 0, "pass logi\r\n", "expect", 10 * USEC_PER_SEC,
                   "expect timed out waiting for one of `login:`, regex "
                   "`Password: *$` (flags i), `# `; timeout 10s; last bytes "
                   "seen: `pass logi\\r\\n`; 11 bytes scanned; closest: "
                   "`logi` of `login:` then `\\r\\n`");
    /* skip=printk: the count, and closest over what the patterns saw. */
    expect_message(login, 1, SCAN_SKIP_PRINTK, "logi" REC "n", "peek",
                   2 * USEC_PER_SEC,
                   "peek timed out waiting for `login:`; timeout 2s; last "
                   "bytes seen: `logi[    3.141592] random: crng init "
                   "done\\r\\nn`; 44 bytes scanned; kernel log records "
                   "skipped: 1; closest: `login` at the end");
    /* A single regex. */
    struct pattern r[] = {re("READY [0-9]+ ok", 0)};
    expect_message(r, 1, 0, "READY x", "read_until", USEC_PER_SEC,
                   "read_until timed out waiting for regex `READY [0-9]+ "
                   "ok`; timeout 1s; last bytes seen: `READY x`; 7 bytes "
                   "scanned");
}
