/*
 * The streaming matcher against memmem over the whole buffer, for random
 * inputs cut into random chunks (1-byte chunks included), with small
 * alphabets and periodic patterns that stress the KMP edges.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

/* Feed buf in random chunks; return the absolute match end or -1. */
static long
stream_find(struct matcher *m, const char *buf, size_t len, int maxchunk)
{
    size_t off = 0, end;
    while (off < len) {
        size_t n = 1 + (size_t)rand() % (size_t)maxchunk;
        if (n > len - off)
            n = len - off;
        if (matcher_feed(m, buf + off, n, &end))
            return (long)(off + end);
        off += n;
    }
    return -1;
}

Test(match, agrees_with_memmem_on_random_chunkings, .timeout = 60)
{
    srand(7);
    for (int i = 0; i < 20000; i++) {
        char buf[512], pat[16];
        size_t len = (size_t)rand() % sizeof buf;
        size_t plen = 1 + (size_t)rand() % sizeof pat;
        int alpha = 1 + rand() % 3;
        for (size_t j = 0; j < len; j++)
            buf[j] = (char)('a' + rand() % alpha);
        for (size_t j = 0; j < plen; j++)
            pat[j] = (char)('a' + rand() % alpha);
        struct matcher *m;
        cr_assert_eq(matcher_new(pat, plen, &m), 0);
        char *hit = memmem(buf, len, pat, plen);
        long want = hit ? (long)(hit - buf) + (long)plen : -1;
        long got = stream_find(m, buf, len, 1 + rand() % 40);
        cr_assert_eq(got, want, "len %zu plen %zu", len, plen);
        matcher_free(m);
    }
}

Test(match, periodic_worst_case)
{
    static char buf[1 << 20];
    char pat[4096];
    memset(buf, 'a', sizeof buf);
    memset(pat, 'a', sizeof pat);
    pat[sizeof pat - 1] = 'b';
    buf[sizeof buf - 1] = 'b';
    struct matcher *m;
    cr_assert_eq(matcher_new(pat, sizeof pat, &m), 0);
    srand(1);
    cr_assert_eq(stream_find(m, buf, sizeof buf, 7), (long)sizeof buf);
    matcher_free(m);
}

Test(match, empty_pattern_matches_at_zero_and_too_long_is_refused)
{
    struct matcher *m;
    size_t end = 99;
    cr_assert_eq(matcher_new("", 0, &m), 0);
    cr_assert_eq(matcher_feed(m, "xyz", 3, &end), 1);
    cr_assert_eq(end, 0);
    matcher_free(m);
    static char big[MATCH_MAX_PATTERN + 1];
    cr_assert_eq(matcher_new(big, sizeof big, &m), -EMSGSIZE);
}

Test(match, binary_bytes_and_reset)
{
    struct matcher *m;
    size_t end;
    cr_assert_eq(matcher_new("\0\xff", 2, &m), 0);
    cr_assert_eq(matcher_feed(m, "x\0", 2, &end), 0);
    matcher_reset(m);
    cr_assert_eq(matcher_feed(m, "\xff", 1, &end), 0, "reset forgot the \\0");
    cr_assert_eq(matcher_feed(m, "\0", 1, &end), 0);
    cr_assert_eq(matcher_feed(m, "\xff", 1, &end), 1);
    cr_assert_eq(end, 1);
    matcher_free(m);
}
