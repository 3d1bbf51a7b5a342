/*
 * libFuzzer target for the matcher: pattern sets (streams/pattern.c:
 * PCRE2 and Hyperscan compilation, the refusal messages, the cache), the
 * scanner (streams/scan.c) over the rest of the input, and the printk
 * filter (streams/printk.c) fed the same bytes in random pieces.
 *
 * Input: byte 0 options (bit 0 skip=printk, bit 1 no spans, bits 2-3 the
 * single-literal engine), byte 1 the pattern count - 1 (mod 8), then per
 * pattern a byte (bit 0 regex, bits 1-4 flags imsx) and a length byte
 * (mod 64) followed by that many bytes; whatever remains is the stream.
 *
 * Invariants checked on every input (the first bytes of the stream are
 * also parsed as regex flags):
 *  - pattern_set_get answers 0, or -EINVAL with a non-empty message, or
 *    -ENOMEM;
 *  - a match names a pattern of the set and lies within the bytes fed,
 *    its start (when known) no later than its end; without skip=printk a
 *    literal's match is the literal's bytes;
 *  - the timeout message is built and starts as Provium's;
 *  - the printk filter's runs are the raw bytes at the offsets they
 *    claim, in order, and together what printk_strip keeps.
 *
 * Hyperscan can take seconds to compile a large bounded repeat
 * (`x.{9000}`); regexes with a 4-digit number are skipped here to keep
 * the fuzzer fast (the unit tests cover the caps).
 *
 * Run: fuzz_pattern -max_total_time=60 test/fuzz/corpus/pattern
 */
#include <errno.h>
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

static bool
slow_repeat(const uint8_t *p, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        run = p[i] >= '0' && p[i] <= '9' ? run + 1 : 0;
        if (run >= 4)
            return true;
    }
    return false;
}

struct runs {
    const uint8_t *raw;
    uint8_t *out;
    size_t n;
    uint64_t next; /* no run may start before this raw offset */
};

static int
on_run(void *arg, const void *buf, size_t len, uint64_t raw_off)
{
    struct runs *r = arg;

    CHECK(len > 0);
    CHECK(raw_off >= r->next);
    CHECK(memcmp(buf, r->raw + raw_off, len) == 0);
    memcpy(r->out + r->n, buf, len);
    r->n += len;
    r->next = raw_off + len;
    return 0;
}

/* Filter d in pieces (random sizes, or one byte at a time when seed is
 * 0), checking the runs and the bound on the lookahead. */
static void
check_printk(const uint8_t *d, size_t len, unsigned seed)
{
    uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
    struct printk pk;
    struct runs r = {d, a, 0, 0};

    CHECK(a && b);
    printk_init(&pk);
    for (size_t off = 0; off < len;) {
        seed = seed ? seed * 1103515245u + 12345u : 0;
        size_t k = seed ? 1 + (seed >> 16) % 97 : 1;
        if (k > len - off)
            k = len - off;
        CHECK(printk_filter(&pk, d + off, k, on_run, &r) == 0);
        CHECK(pk.nhold <= PRINTK_HOLD_MAX);
        CHECK(pk.raw == off + k);
        off += k;
    }
    CHECK(printk_flush(&pk, on_run, &r) == 0);
    size_t n = printk_strip(d, len, b);
    CHECK(n == r.n);
    CHECK(n == 0 || memcmp(a, b, n) == 0);
    free(a);
    free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pattern pats[8];
    char err[PATTERN_ERR_LEN];
    struct pattern_set *ps = NULL;
    size_t i = 2;
    unsigned n, opts = 0, scanopts = 0;

    if (size < 2)
        return 0;
    if (data[0] & 1)
        scanopts |= SCAN_SKIP_PRINTK;
    if (data[0] & 2)
        opts |= PATTERN_SET_NO_SPAN;
    if (data[0] & 4)
        opts |= PATTERN_SET_ENGINE_HS;
    else if (data[0] & 8)
        opts |= PATTERN_SET_ENGINE_MEMMEM;
    n = 1 + data[1] % 8;
    for (unsigned k = 0; k < n; k++) {
        if (i + 2 > size)
            return 0;
        uint8_t kind = data[i], len = data[i + 1] % 64;
        i += 2;
        if (i + len > size)
            return 0;
        pats[k].kind = kind & 1 ? PATTERN_REGEX : PATTERN_LITERAL;
        pats[k].flags = (kind >> 1) & 0xf;
        pats[k].src = data + i;
        pats[k].len = len;
        if (pats[k].kind == PATTERN_REGEX && slow_repeat(data + i, len))
            return 0;
        i += len;
    }
    const uint8_t *d = data + i;
    size_t dlen = size - i;
    unsigned seed = data[0] * 31u + data[1];

    check_printk(d, dlen, seed | 1);
    check_printk(d, dlen, 0);

    unsigned flags;
    err[0] = '\0';
    int frc = pattern_flags_parse(d, dlen < 6 ? dlen : 6, &flags, err);
    CHECK(frc == 0 || (frc == -EINVAL && err[0] != '\0'));
    CHECK(flags <= 0xf);

    err[0] = '\0';
    int rc = pattern_set_get(pats, n, opts, &ps, err);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc == -EINVAL)
        CHECK(err[0] != '\0' && strlen(err) < PATTERN_ERR_LEN);
    if (rc < 0)
        return 0;
    CHECK(pattern_set_count(ps) == n);

    struct scan *sc;
    CHECK(scan_new(ps, scanopts, &sc) == 0);
    struct scan_match m;
    size_t fed = 0;
    int got = 0;
    while (fed < dlen && got == 0) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 200;
        if (k > dlen - fed)
            k = dlen - fed;
        got = scan_feed(sc, d + fed, k, &m);
        fed += k;
        if (got == 0 && (seed & 0x300) == 0)
            got = scan_idle(sc, &m);
    }
    if (got == 0) {
        char *msg = scan_timeout_message(sc, "expect", 10 * USEC_PER_SEC);
        CHECK(msg);
        CHECK(strncmp(msg, "expect timed out waiting for ", 29) == 0);
        free(msg);
        got = scan_finish(sc, &m);
    }
    CHECK(got == 0 || got == 1);
    if (got == 1) {
        const struct pattern *p = pattern_set_pattern(ps, m.index);
        CHECK(m.index < n);
        CHECK(m.end <= fed);
        CHECK(m.start == PATTERN_UNKNOWN || m.start <= m.end);
        if (!(scanopts & SCAN_SKIP_PRINTK) && p->kind == PATTERN_LITERAL) {
            CHECK(m.end >= p->len);
            CHECK(m.start == m.end - p->len);
            CHECK(p->len == 0 ||
                  memcmp(d + m.end - p->len, p->src, p->len) == 0);
        }
        if (!(scanopts & SCAN_SKIP_PRINTK) && p->kind == PATTERN_REGEX &&
            m.start != PATTERN_UNKNOWN) {
            size_t ov[2 * 4];
            int c = pattern_set_captures(ps, m.index, d, m.start, m.end, ov, 4);
            CHECK(c > 0 || c == -ENOENT || c == -E2BIG);
            if (c > 0)
                CHECK(ov[0] == m.start && ov[1] == m.end);
        }
    }
    scan_free(sc);
    pattern_set_put(ps);
    return 0;
}
