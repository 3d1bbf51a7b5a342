/*
 * The printk filter (streams/printk.c): what counts as a kernel log
 * record, and the streaming filter against a whole-buffer reference
 * written independently, over random bytes cut into random chunks (runs
 * checked against the raw offsets they claim).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

#define REC "[    3.141592] random: crng init done\r\n"

static size_t
strip(const char *in, char *out)
{
    return printk_strip(in, strlen(in), out);
}

static void
expect_strip(const char *in, const char *want)
{
    char out[512];
    size_t n = strip(in, out);
    out[n] = '\0';
    cr_assert_str_eq(out, want, "strip(\"%s\")", in);
}

Test(printk, what_is_a_record)
{
    expect_strip("log" REC "in:", "login:");
    expect_strip(REC "login:", "login:");
    expect_strip("login:" REC, "login:");
    expect_strip("a\r\n" REC "b", "a\r\nb");         /* line kept */
    expect_strip("[0.000000] x\n[ 1.5]y\nz", "z");   /* two records */
    expect_strip("[12345678.000001]\n", "");         /* empty text */
    expect_strip("[                3.1] x\ny", "y"); /* 16 spaces */
    expect_strip("[                 3.1] x\ny",      /* 17: not one */
                 "[                 3.1] x\ny");
    expect_strip("[123456789012.1] x\ny", "y"); /* 12 digits */
    expect_strip("[1234567890123.1] x\ny", "[1234567890123.1] x\ny");
    expect_strip("[1.123456789] x\ny", "y"); /* 9 digits */
    expect_strip("[1.1234567890] x\ny", "[1.1234567890] x\ny");
    expect_strip("[1.] x\n", "[1.] x\n");
    expect_strip("[.5] x\n", "[.5] x\n");
    expect_strip("[1] x\n", "[1] x\n");
    expect_strip("[ 1 .5] x\n", "[ 1 .5] x\n");
    expect_strip("[[1.5] x\ny", "[y"); /* second '[' */
    expect_strip("[1.5[2.5] x\ny", "[1.5y");
    expect_strip("[3.14] no newline yet", ""); /* to the end */
    expect_strip("abc [3.1", "abc [3.1");      /* held, flushed */
}

Test(printk, binary_bytes_pass_through)
{
    const char in[] = "a\0b\xff[\x00"
                      "1.5] c\nd";
    char out[64];
    size_t n = printk_strip(in, sizeof in - 1, out);
    cr_assert_eq(n, sizeof in - 1);
    cr_assert_eq(memcmp(out, in, n), 0);
}

/* The reference: the grammar applied with the whole buffer in view. */
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

static size_t
reference(const unsigned char *b, size_t n, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (record_at(b, n, i)) {
            const unsigned char *nl = memchr(b + i, '\n', n - i);
            i = nl ? (size_t)(nl - b) + 1 : n;
        } else {
            out[o++] = b[i++];
        }
    }
    return o;
}

struct collect {
    const unsigned char *raw;
    unsigned char *out;
    size_t n;
    uint64_t last_end; /* raw end of the previous run */
};

static int
collect(void *arg, const void *buf, size_t len, uint64_t raw_off)
{
    struct collect *c = arg;
    cr_assert_gt(len, 0);
    cr_assert_geq(raw_off, c->last_end, "runs in raw order");
    cr_assert_eq(memcmp(buf, c->raw + raw_off, len), 0,
                 "a run is the raw bytes at its offset");
    memcpy(c->out + c->n, buf, len);
    c->n += len;
    c->last_end = raw_off + len;
    return 0;
}

Test(printk, streaming_equals_whole_buffer, .timeout = 60)
{
    static const char alpha[] = "[[ ]..0123456789\n\r\nab";
    unsigned char in[600], want[600], got[600];

    srand(11);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)rand() % sizeof in;
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)alpha[rand() % (sizeof alpha - 1)];
        /* Plant real records now and then. */
        if (n > 60 && rand() % 2) {
            size_t at = (size_t)rand() % (n - 45);
            memcpy(in + at, REC, sizeof REC - 1);
        }
        size_t wn = reference(in, n, want);
        struct printk pk;
        struct collect c = {in, got, 0, 0};
        printk_init(&pk);
        int maxchunk = 1 + rand() % 50;
        for (size_t off = 0; off < n;) {
            size_t k = 1 + (size_t)rand() % (size_t)maxchunk;
            if (k > n - off)
                k = n - off;
            cr_assert_eq(printk_filter(&pk, in + off, k, collect, &c), 0);
            off += k;
        }
        printk_flush(&pk, collect, &c);
        cr_assert_eq(c.n, wn, "iteration %d: kept %zu bytes, want %zu", iter,
                     c.n, wn);
        cr_assert_eq(memcmp(got, want, wn), 0, "iteration %d", iter);
    }
}

Test(printk, holding_and_record_count)
{
    struct printk pk;
    char out[64];
    struct collect c = {(const unsigned char *)"", (unsigned char *)out, 0, 0};

    printk_init(&pk);
    const char *in = "ab[  12.5";
    c.raw = (const unsigned char *)in;
    printk_filter(&pk, in, strlen(in), collect, &c);
    cr_assert(printk_holding(&pk));
    cr_assert_eq(c.n, 2, "the candidate is held back");
    cr_assert_eq(pk.records, 0);
    printk_flush(&pk, collect, &c);
    cr_assert_not(printk_holding(&pk));
    cr_assert_eq(c.n, strlen(in), "flushed at the end");
}

static int
stop_at_first(void *arg, const void *buf, size_t len, uint64_t raw_off)
{
    (*(int *)arg)++;
    return 7;
}

Test(printk, emit_can_stop_the_filter)
{
    struct printk pk;
    int calls = 0;
    printk_init(&pk);
    cr_assert_eq(printk_filter(&pk, "a" REC "b", sizeof REC + 1, stop_at_first,
                               &calls),
                 7);
    cr_assert_eq(calls, 1);
}
