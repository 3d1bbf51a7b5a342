/*
 * Pattern sets (streams/pattern.c): what is refused and how it is named,
 * the caps, the cache, flags, captures.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

static struct pattern
lit(const char *s)
{
    return (struct pattern){PATTERN_LITERAL, 0, s, strlen(s)};
}

static struct pattern
re(const char *s, unsigned flags)
{
    return (struct pattern){PATTERN_REGEX, flags, s, strlen(s)};
}

/* Compile one set, expecting -EINVAL and exactly this message. */
static void
refused(const struct pattern *p, unsigned n, const char *want)
{
    struct pattern_set *ps = NULL;
    char err[PATTERN_ERR_LEN] = "";
    cr_assert_eq(pattern_set_get(p, n, 0, &ps, err), -EINVAL, "%s", want);
    cr_assert_null(ps);
    cr_assert_str_eq(err, want);
}

static void
refused1(struct pattern p, const char *want)
{
    refused(&p, 1, want);
}

Test(pattern, refused_constructs_are_named_with_their_offset)
{
    refused1(re("(a)\\1", 0),
             "regex `(a)\\\\1`: back-reference at offset 3 cannot be "
             "matched in a stream (Hyperscan: Back-references are "
             "unsupported.)");
    refused1(re("x(?<n>a)\\k<n>", 0),
             "regex `x(?<n>a)\\\\k<n>`: back-reference at offset 8 cannot "
             "be matched in a stream (Hyperscan: Back-references are "
             "unsupported.)");
    refused1(re("ab(?<=b)c", 0),
             "regex `ab(?<=b)c`: lookbehind assertion at offset 2 cannot "
             "be matched in a stream (Hyperscan: Zero-width assertions are "
             "not supported.)");
    refused1(re("[(?<=]x(?<!b)c", 0),
             "regex `[(?<=]x(?<!b)c`: lookbehind assertion at offset 7 "
             "cannot be matched in a stream (Hyperscan: Zero-width "
             "assertions are not supported.)");
    refused1(re("a(?=b)", 0),
             "regex `a(?=b)`: lookahead assertion at offset 1 cannot be "
             "matched in a stream (Hyperscan: Zero-width assertions are "
             "not supported.)");
    refused1(re("(?>ab)c", 0),
             "regex `(?>ab)c`: atomic group at offset 0 cannot be matched "
             "in a stream (Hyperscan: Atomic groups are unsupported.)");
    refused1(re("x\\++a++", 0),
             "regex `x\\\\++a++`: possessive quantifier at offset 5 cannot "
             "be matched in a stream (Hyperscan: Possessive quantifiers "
             "are not supported.)");
    refused1(re("a{2}+b", 0),
             "regex `a{2}+b`: possessive quantifier at offset 1 cannot be "
             "matched in a stream (Hyperscan: Possessive quantifiers are "
             "not supported.)");
    refused1(re("ab\\Kc", 0),
             "regex `ab\\\\Kc`: cannot be matched in a stream (Hyperscan: "
             "\\K at index 2 not supported.)");
    /* (?x) in front for Hyperscan must not shift its index. */
    refused1(re("a b \\K c", PATTERN_EXTENDED),
             "regex `a b \\\\K c` (flags x): cannot be matched in a stream "
             "(Hyperscan: \\K at index 4 not supported.)");
}

Test(pattern, syntax_errors_have_pcre2_message_and_offset)
{
    refused1(re("ab(c", 0),
             "regex `ab(c`: missing closing parenthesis at offset 4");
    refused1(re("a{2,1}", 0),
             "regex `a{2,1}`: numbers out of order in {} quantifier at "
             "offset 5");
    refused1(re("(*UTF)a", 0),
             "regex `(*UTF)a`: using UTF is disabled by the application at "
             "offset 6");
    refused1(re("[a", 0),
             "regex `[a`: missing terminating ] for character class at "
             "offset 2");
}

Test(pattern, other_refusals)
{
    refused1(re("a*", 0),
             "regex `a*`: can match the empty string, so it would match at "
             "once; make it match at least one byte");
    struct pattern nul = {PATTERN_REGEX, 0, "a\0b", 3};
    refused1(nul, "regex `a\\x00b`: contains a NUL byte (write it as \\x00)");
    refused1(re("a{70000}", 0),
             "regex `a{70000}`: number too big in {} quantifier at offset "
             "7");
    refused1(re("a{40000}", 0),
             "regex `a{40000}`: cannot be matched in a stream (Hyperscan: "
             "Bounded repeat is too large.)");
    /* In a list, the pattern is numbered from 1. */
    struct pattern two[] = {lit("ok"), re("(x)\\1", 0)};
    refused(two, 2,
            "pattern 2: regex `(x)\\\\1`: back-reference at offset 3 cannot "
            "be matched in a stream (Hyperscan: Back-references are "
            "unsupported.)");
    char err[PATTERN_ERR_LEN];
    unsigned flags;
    cr_assert_eq(pattern_flags_parse("isq", 3, &flags, err), -EINVAL);
    cr_assert_str_eq(err, "unknown regex flag `q` (expected i, m, s or x)");
    cr_assert_eq(pattern_flags_parse("xmsi", 4, &flags, err), 0);
    char buf[8];
    pattern_flags_format(flags, buf);
    cr_assert_str_eq(buf, "imsx");
}

Test(pattern, extended_comments_and_quoting)
{
    /* PCRE ends an x-mode #comment at the end of the pattern; Hyperscan
     * wants a newline there, which must not change other patterns. */
    struct pattern p[] = {re("a b # c", PATTERN_EXTENDED),
                          re("(?x) d e # f", 0),
                          re("x\\Qy z", PATTERN_EXTENDED)};
    struct pattern_set *ps;
    struct scan *sc;
    struct scan_match m;
    char err[PATTERN_ERR_LEN];

    cr_assert_eq(pattern_set_get(p, 3, 0, &ps, err), 0, "%s", err);
    cr_assert_eq(scan_new(ps, 0, &sc), 0);
    cr_assert_eq(scan_feed(sc, "xy z\n", 5, &m), 1);
    cr_assert_eq(m.index, 2);
    cr_assert_eq(m.end, 4, "\\Q..: no newline added");
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "..de", 4, &m), 1);
    cr_assert_eq(m.index, 1);
    scan_reset(sc);
    cr_assert_eq(scan_feed(sc, "ab", 2, &m), 1);
    cr_assert_eq(m.index, 0);
    scan_free(sc);
    pattern_set_put(ps);
}

Test(pattern, caps_on_count_and_length)
{
    static struct pattern many[PATTERN_MAX_COUNT + 1];
    static char names[PATTERN_MAX_COUNT + 1][8];
    struct pattern_set *ps;
    char err[PATTERN_ERR_LEN];

    for (int i = 0; i <= PATTERN_MAX_COUNT; i++) {
        snprintf(names[i], sizeof names[i], "w%d", i);
        many[i] = lit(names[i]);
    }
    refused(many, PATTERN_MAX_COUNT + 1,
            "too many patterns (257, at most 256)");
    cr_assert_eq(pattern_set_get(many, PATTERN_MAX_COUNT, 0, &ps, err), 0, "%s",
                 err);
    pattern_set_put(ps);

    static char big[PATTERN_MAX_LEN + 2];
    memset(big, 'a', sizeof big - 1);
    struct pattern p = {PATTERN_LITERAL, 0, big, PATTERN_MAX_LEN + 1};
    char want[PATTERN_ERR_LEN];
    snprintf(want, sizeof want,
             "`%.64s...`: too long (4097 bytes, at most 4096)", big);
    refused1(p, want);
    p.len = PATTERN_MAX_LEN;
    cr_assert_eq(pattern_set_get(&p, 1, 0, &ps, err), 0, "%s", err);
    pattern_set_put(ps);
    refused(NULL, 0, "no pattern");
}

Test(pattern, cap_on_compiled_automata, .timeout = 120)
{
    /* (X{100}){150} compiles in a few ms; 12 distinct ones make ~2.5 MB
     * of automata, 13 ~4.6 MB (Hyperscan 5.4). */
    static char src[13][32];
    struct pattern p[13];
    for (int i = 0; i < 13; i++) {
        snprintf(src[i], sizeof src[i], "(%c{100}){150}", 'a' + i);
        p[i] = re(src[i], 0);
    }
    struct pattern_set *ps = NULL;
    char err[PATTERN_ERR_LEN];
    cr_assert_eq(pattern_set_get(p, 13, 0, &ps, err), -EINVAL);
    unsigned long got;
    cr_assert_eq(sscanf(err,
                        "patterns too large once compiled: %lu bytes of "
                        "automata (at most 4194304); use fewer or simpler "
                        "patterns",
                        &got),
                 1, "%s", err);
    cr_assert_gt(got, 4194304);
    cr_assert_eq(pattern_set_get(p, 12, 0, &ps, err), 0, "%s", err);
    pattern_set_put(ps);
}

Test(pattern, cap_on_stream_state, .timeout = 120)
{
    /* 256 distinct NNN.{400}x keep ~70 bytes of state each. */
    static char src[256][16];
    struct pattern p[256];
    for (int i = 0; i < 256; i++) {
        snprintf(src[i], sizeof src[i], "%03d.{400}x", i);
        p[i] = re(src[i], 0);
    }
    struct pattern_set *ps = NULL;
    char err[PATTERN_ERR_LEN];
    cr_assert_eq(pattern_set_get(p, 256, 0, &ps, err), -EINVAL);
    unsigned long got;
    cr_assert_eq(sscanf(err,
                        "patterns too large once compiled: %lu bytes of "
                        "stream state per op (at most 16384); use fewer or "
                        "simpler patterns",
                        &got),
                 1, "%s", err);
    cr_assert_gt(got, 16384);
}

Test(pattern, the_cache_compiles_a_set_once)
{
    struct pattern p[] = {lit("login:"), re("READY [0-9]+ ok", 0)};
    struct pattern_set *a, *b, *c;
    struct pattern_cache_stats st0, st;
    char err[PATTERN_ERR_LEN];
    char copy[] = "login:";

    pattern_cache_stats(&st0);
    cr_assert_eq(pattern_set_get(p, 2, 0, &a, err), 0, "%s", err);
    for (int i = 0; i < 100; i++) {
        /* Equal bytes from another buffer find the same set. */
        struct pattern q[] = {lit(copy), re("READY [0-9]+ ok", 0)};
        cr_assert_eq(pattern_set_get(q, 2, 0, &b, err), 0);
        cr_assert_eq(b, a);
        pattern_set_put(b);
    }
    pattern_cache_stats(&st);
    cr_assert_eq(st.compiles, st0.compiles + 1);
    cr_assert_eq(st.hits, st0.hits + 100);
    /* Flags, options and order are part of the key. */
    struct pattern q[] = {lit("login:"),
                          re("READY [0-9]+ ok", PATTERN_CASELESS)};
    cr_assert_eq(pattern_set_get(q, 2, 0, &c, err), 0);
    cr_assert_neq(c, a);
    pattern_set_put(c);
    cr_assert_eq(pattern_set_get(p, 2, PATTERN_SET_NO_SPAN, &c, err), 0);
    cr_assert_neq(c, a);
    pattern_set_put(c);

    /* LRU: 64 other sets push `a` out; while held it stays usable. */
    for (int i = 0; i < 70; i++) {
        char w[16];
        snprintf(w, sizeof w, "word%d", i);
        struct pattern one = lit(w);
        cr_assert_eq(pattern_set_get(&one, 1, 0, &b, err), 0);
        pattern_set_put(b);
    }
    pattern_cache_stats(&st);
    cr_assert_leq(st.sets, 64);
    cr_assert_eq(pattern_set_count(a), 2);
    cr_assert_str_eq(pattern_set_pattern(a, 0)->src, "login:");
    uint64_t compiles = st.compiles;
    cr_assert_eq(pattern_set_get(p, 2, 0, &b, err), 0);
    pattern_cache_stats(&st);
    cr_assert_eq(st.compiles, compiles + 1, "evicted: compiled again");
    cr_assert_neq(b, a);
    pattern_set_put(b);
    pattern_set_put(a);
    pattern_cache_flush();
    pattern_cache_stats(&st);
    cr_assert_eq(st.sets, 0);
    cr_assert_eq(st.bytes, 0);
}

Test(pattern, start_tracking_only_where_needed)
{
    struct pattern p[] = {lit("abc"), re("READY [0-9]+ ok", 0),
                          re("x[0-9]{3}y", 0), re("ab|cd", 0)};
    struct pattern_set *ps;
    char err[PATTERN_ERR_LEN];

    cr_assert_eq(pattern_set_get(p, 4, 0, &ps, err), 0, "%s", err);
    cr_assert_not(pattern_set_som(ps, 0), "a literal's start is known");
    cr_assert(pattern_set_som(ps, 1), "variable width needs SOM");
    cr_assert_not(pattern_set_som(ps, 2), "fixed width");
    cr_assert_not(pattern_set_som(ps, 3), "fixed width");
    cr_assert_eq(pattern_set_start(ps, 0, 0, 10), 7);
    cr_assert_eq(pattern_set_start(ps, 2, 0, 10), 5);
    cr_assert_eq(pattern_set_start(ps, 1, 4, 10), 4);
    pattern_set_put(ps);
    cr_assert_eq(pattern_set_get(p, 4, PATTERN_SET_NO_SPAN, &ps, err), 0);
    cr_assert_not(pattern_set_som(ps, 1));
    cr_assert_eq(pattern_set_start(ps, 1, 4, 10), PATTERN_UNKNOWN);
    pattern_set_put(ps);
}

Test(pattern, captures_on_the_matched_span)
{
    struct pattern p[] = {lit("x"), re("READY ([0-9]+) (ok|fail)(!)?", 0),
                          re("\\b(in)", 0)};
    struct pattern_set *ps;
    char err[PATTERN_ERR_LEN];
    size_t ov[2 * 8];
    const char *s = "..READY 42 ok.";

    cr_assert_eq(pattern_set_get(p, 3, 0, &ps, err), 0, "%s", err);
    cr_assert_eq(pattern_set_groups(ps, 0), 0);
    cr_assert_eq(pattern_set_groups(ps, 1), 3);
    cr_assert_eq(pattern_set_captures(ps, 1, s, 2, 13, ov, 8), 4);
    size_t want[] = {2, 13, 8, 10, 11, 13, PATTERN_UNSET, PATTERN_UNSET};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(ov[i], want[i], "ovec[%d] = %zu", i, ov[i]);
    /* Capped at max pairs. */
    cr_assert_eq(pattern_set_captures(ps, 1, s, 2, 13, ov, 2), 2);
    /* Context before the span counts: no word boundary inside "login". */
    cr_assert_eq(pattern_set_captures(ps, 2, "login", 3, 5, ov, 8), -ENOENT);
    cr_assert_eq(pattern_set_captures(ps, 2, "log in", 4, 6, ov, 8), 2);
    cr_assert_eq(ov[2], 4);
    cr_assert_eq(pattern_set_captures(ps, 0, s, 0, 1, ov, 8), -EINVAL);
    pattern_set_put(ps);

    /* The span is Hyperscan's: PCRE's own first choice (`a`) would end
     * earlier than the span does. */
    struct pattern q = re("(a|ab)", 0);
    cr_assert_eq(pattern_set_get(&q, 1, 0, &ps, err), 0, "%s", err);
    cr_assert_eq(pattern_set_captures(ps, 0, "ab", 0, 2, ov, 8), 2);
    cr_assert_eq(ov[1], 2);
    cr_assert_eq(ov[3], 2);
    pattern_set_put(ps);
}

Test(pattern, describe_and_escape)
{
    char buf[128];
    struct pattern p = re("a\tb", PATTERN_CASELESS | PATTERN_DOTALL);
    pattern_describe(&p, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "regex `a\\tb` (flags is)");
    struct pattern l = {PATTERN_LITERAL, 0, "\x01\xff\n", 3};
    pattern_describe(&l, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "`\\x01\\xff\\n`");
    pattern_describe(&l, 2, buf, sizeof buf);
    cr_assert_str_eq(buf, "`\\x01\\xff...`");
    cr_assert_eq(pattern_escape("abcdef", 6, 6, buf, 8), 6);
    cr_assert_str_eq(buf, "abcdef", "fits exactly");
    cr_assert_eq(pattern_escape("abcdefg", 7, 7, buf, 8), 7);
    cr_assert_str_eq(buf, "abcdefg", "fits with its NUL");
    cr_assert_eq(pattern_escape("abcdefgh", 8, 8, buf, 8), 7);
    cr_assert_str_eq(buf, "abcd...", "cut to fit the buffer");
    cr_assert_eq(pattern_escape("a\nb", 3, 3, buf, 4), 3);
    cr_assert_str_eq(buf, "...", "no room for an escape and the dots");
}
