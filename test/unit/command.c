/*
 * Unit tests for streams/command.c: the command line syntax of SPEC §5
 * (words, quoting, escapes, errors) and durations.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

/* A string literal with its length, so that embedded NULs count. */
#define B(s) s, sizeof(s) - 1

struct good_line {
    const char *line;
    size_t len;
    int argc;
    struct {
        const char *p;
        size_t len;
    } words[6];
};

static const struct good_line good_lines[] = {
        {B("next"), 1, {{B("next")}}},
        {B("next\n"), 1, {{B("next")}}},
        {B("next\r\n"), 1, {{B("next")}}},
        {B("next 1.5"), 2, {{B("next")}, {B("1.5")}}},
        {B("  \tnext \t 1.5\t "), 2, {{B("next")}, {B("1.5")}}},
        {B("read_until \"login: \" 5s"),
         3,
         {{B("read_until")}, {B("login: ")}, {B("5s")}}},
        {B("expect \"\""), 2, {{B("expect")}, {B("")}}},
        {B("\"\" \"\"\n"), 2, {{B("")}, {B("")}}},
        /* every escape */
        {B("x \"\\\\ \\\" \\n \\r \\t \\0 \\x41 \\xfF \\x00\""),
         2,
         {{B("x")}, {B("\\ \" \n \r \t \0 A \xff \0")}}},
        /* quoted parts join unquoted text, as in a shell */
        {B("ab\"c d\"e f"), 2, {{B("abc de")}, {B("f")}}},
        {B("\"a\"\"b\"c"), 1, {{B("abc")}}},
        {B("key=\"a b\""), 1, {{B("key=a b")}}},
        /* a backslash outside quotes is an ordinary byte */
        {B("a\\b a\\n"), 2, {{B("a\\b")}, {B("a\\n")}}},
        /* raw bytes: >= 0x80 anywhere, anything but " and \ inside quotes */
        {B("tail_file host /tmp/\xc3\xbc\xff"),
         3,
         {{B("tail_file")}, {B("host")}, {B("/tmp/\xc3\xbc\xff")}}},
        {B("p \"a\nb\rc\x01\x7f\x80\""),
         2,
         {{B("p")}, {B("a\nb\rc\x01\x7f\x80")}}},
        /* a trailing newline inside quotes is kept, after them dropped */
        {B("p \"a\n\"\n"), 2, {{B("p")}, {B("a\n")}}},
        /* NUL bytes, raw inside quotes */
        {B("p \"\0\"x"), 2, {{B("p")}, {B("\0x")}}},
};

Test(command, good_lines)
{
    for (size_t i = 0; i < sizeof(good_lines) / sizeof(good_lines[0]); i++) {
        const struct good_line *g = &good_lines[i];
        struct command cmd;
        char err[COMMAND_ERR_LEN] = "";
        int ret = command_parse(&cmd, g->line, g->len, err);

        cr_assert_eq(ret, 0, "line %zu: %d %s", i, ret, err);
        cr_expect_eq(cmd.argc, g->argc, "line %zu: argc %d", i, cmd.argc);
        for (int w = 0; w < cmd.argc && w < g->argc; w++) {
            cr_expect_eq(cmd.argv[w].len, g->words[w].len,
                         "line %zu word %d: len %zu", i, w, cmd.argv[w].len);
            cr_expect(memcmp(cmd.argv[w].p, g->words[w].p, g->words[w].len) ==
                              0,
                      "line %zu word %d: %.*s", i, w, (int)cmd.argv[w].len,
                      cmd.argv[w].p);
            cr_expect_eq(cmd.argv[w].p[cmd.argv[w].len], '\0',
                         "line %zu word %d: not NUL-terminated", i, w);
        }
        command_free(&cmd);
        cr_expect_null(cmd.buf);
    }
}

struct bad_line {
    const char *line;
    size_t len;
    int ret;
    const char *err;
};

static const struct bad_line bad_lines[] = {
        {B(""), -EINVAL, "empty command"},
        {B("\n"), -EINVAL, "empty command"},
        {B("\r\n"), -EINVAL, "empty command"},
        {B(" \t "), -EINVAL, "empty command"},
        {B("next\n\n"), -EINVAL,
         "unexpected newline at byte 4 (one command per write; quote it as "
         "\\n)"},
        {B("next\nclose"), -EINVAL,
         "unexpected newline at byte 4 (one command per write; quote it as "
         "\\n)"},
        {B("next\r"), -EINVAL,
         "unexpected control byte 0x0d at byte 4 (quote it as \\x0d)"},
        {B("a\x01"), -EINVAL,
         "unexpected control byte 0x01 at byte 1 (quote it as \\x01)"},
        {B("a\x7f"), -EINVAL,
         "unexpected control byte 0x7f at byte 1 (quote it as \\x7f)"},
        {B("a \0"), -EINVAL,
         "unexpected control byte 0x00 at byte 2 (quote it as \\x00)"},
        {B("read_until \"abc"), -EINVAL,
         "unterminated quote starting at byte 11"},
        {B("read_until \"abc\n"), -EINVAL,
         "unterminated quote starting at byte 11"},
        {B("x \"abc\\\""), -EINVAL, "unterminated quote starting at byte 2"},
        {B("x \"abc\\"), -EINVAL, "unterminated quote starting at byte 2"},
        {B("\""), -EINVAL, "unterminated quote starting at byte 0"},
        {B("x \"\\q\""), -EINVAL, "bad escape \\q at byte 3"},
        {B("x \"\\a\""), -EINVAL, "bad escape \\a at byte 3"},
        {B("x \"\\\x01\""), -EINVAL,
         "bad escape at byte 3 (byte 0x01 after the backslash)"},
        {B("x \"\\ \""), -EINVAL,
         "bad escape at byte 3 (byte 0x20 after the backslash)"},
        {B("x \"\\x4\""), -EINVAL,
         "bad escape \\x at byte 3 (expected two hex digits)"},
        {B("x \"\\xg0\""), -EINVAL,
         "bad escape \\x at byte 3 (expected two hex digits)"},
        {B("x \"\\x"), -EINVAL,
         "bad escape \\x at byte 3 (expected two hex digits)"},
};

Test(command, bad_lines)
{
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        const struct bad_line *b = &bad_lines[i];
        struct command cmd;
        char err[COMMAND_ERR_LEN] = "";
        int ret = command_parse(&cmd, b->line, b->len, err);

        cr_expect_eq(ret, b->ret, "line %zu: %d", i, ret);
        cr_expect_str_eq(err, b->err, "line %zu", i);
        cr_expect_eq(cmd.argc, 0, "line %zu", i);
        cr_expect_null(cmd.buf, "line %zu", i);
    }
}

Test(command, limits)
{
    static char line[COMMAND_MAX_LINE + 2];
    struct command cmd;
    char err[COMMAND_ERR_LEN];
    int ret;

    /* The longest write is fine; the limit counts a trailing newline. */
    memset(line, 'a', COMMAND_MAX_LINE);
    line[COMMAND_MAX_LINE] = '\n';
    ret = command_parse(&cmd, line, COMMAND_MAX_LINE, err);
    cr_assert_eq(ret, 0, "%s", err);
    cr_expect_eq(cmd.argv[0].len, COMMAND_MAX_LINE);
    command_free(&cmd);

    ret = command_parse(&cmd, line, COMMAND_MAX_LINE + 1, err);
    cr_expect_eq(ret, -EMSGSIZE);
    cr_expect_null(cmd.buf);
    cr_expect_str_eq(err, "command too long (65537 bytes, max 65536)");

    /* COMMAND_MAX_WORDS words, then one more. */
    for (int i = 0; i < COMMAND_MAX_WORDS + 1; i++) {
        line[2 * i] = 'w';
        line[2 * i + 1] = ' ';
    }
    ret = command_parse(&cmd, line, 2 * COMMAND_MAX_WORDS, err);
    cr_assert_eq(ret, 0, "%s", err);
    cr_expect_eq(cmd.argc, COMMAND_MAX_WORDS);
    command_free(&cmd);
    ret = command_parse(&cmd, line, 2 * COMMAND_MAX_WORDS + 1, err);
    cr_expect_eq(ret, -EMSGSIZE);
    char want[64];
    snprintf(want, sizeof want, "too many words (max %d)", COMMAND_MAX_WORDS);
    cr_expect_str_eq(err, want);
    cr_expect_null(cmd.buf);

    /* The worst case for the output buffer: only empty words. */
    for (int i = 0; i < COMMAND_MAX_WORDS; i++)
        memcpy(line + 3 * i, "\"\" ", 3);
    ret = command_parse(&cmd, line, 3 * COMMAND_MAX_WORDS - 1, err);
    cr_assert_eq(ret, 0, "%s", err);
    cr_expect_eq(cmd.argc, COMMAND_MAX_WORDS);
    command_free(&cmd);
    command_free(NULL);
}

Test(command, words)
{
    struct word w = {"start=-100", 10}, v;

    cr_expect(word_is(w, "start=-100"));
    cr_expect_not(word_is(w, "start"));
    cr_expect_not(word_is(w, "start=-1000"));
    cr_expect(word_option(w, "start", &v));
    cr_expect_eq(v.len, 4);
    cr_expect(memcmp(v.p, "-100", 4) == 0);
    cr_expect_not(word_option(w, "star", &v));
    cr_expect_not(word_option(w, "start=", &v));
    cr_expect_not(word_option((struct word){"keep", 4}, "keep", &v));
    cr_expect(word_option((struct word){"test=", 5}, "test", &v));
    cr_expect_eq(v.len, 0);
    cr_expect(word_is((struct word){"", 0}, ""));
    cr_expect_not(word_is((struct word){"a\0b", 3}, "a"));
}

struct good_duration {
    const char *text;
    uint64_t usec;
};

static const struct good_duration good_durations[] = {
        {"0", 0},
        {"10", 10000000},
        {"1.5", 1500000},
        {".5", 500000},
        {"5.", 5000000},
        {"+2", 2000000},
        {"-0", 0},
        {"250ms", 250000},
        {"0.5ms", 500},
        {"2s", 2000000},
        {"1.5m", 90000000},
        {"1h", 3600000000},
        {"0.25h", 900000000},
        {"1e3ms", 1000000},
        {"1E-3", 1000},
        {"1e+1s", 10000000},
        {"0.0000004", 0},
        {"0.0000006", 1},
        {"1e-400", 0},
        {"000000000000000000000000000000000001", 1000000},
        {"1000000000", 1000000000000000},
        {"16666666.6666666m", 999999999999996},
};

Test(duration, good)
{
    for (size_t i = 0; i < sizeof(good_durations) / sizeof(good_durations[0]);
         i++) {
        const struct good_duration *g = &good_durations[i];
        char err[COMMAND_ERR_LEN] = "";
        uint64_t usec = 12345;
        int ret = duration_parse((struct word){g->text, strlen(g->text)}, &usec,
                                 err);

        cr_expect_eq(ret, 0, "%s: %s", g->text, err);
        cr_expect_eq(usec, g->usec, "%s: %llu", g->text,
                     (unsigned long long)usec);
    }
}

static const char *const unparsable[] = {
        "",    "abc",    "5x",      "ms",   "s",     "5S",   "5 s",  " 5",
        "5 ",  "0x10",   "0x1p3",   "1e",   "1e+",   "e5",   ".",    ".s",
        "+",   "-",      "--1",     "1..2", "1.2.3", "5sec", "5mss", "5hm",
        "1,5", "nan(1)", "infinit", "in",   "\xff",
};

Test(duration, unparsable)
{
    for (size_t i = 0; i < sizeof(unparsable) / sizeof(unparsable[0]); i++) {
        char err[COMMAND_ERR_LEN] = "", want[COMMAND_ERR_LEN];
        uint64_t usec = 12345;
        const char *t = unparsable[i];
        int ret = duration_parse((struct word){t, strlen(t)}, &usec, err);

        snprintf(want, sizeof(want),
                 "duration: cannot parse `%s` (expected number or "
                 "`Nms`/`Ns`/`Nm`/`Nh`)",
                 strcmp(t, "\xff") == 0 ? "\\xff" : t);
        cr_expect_eq(ret, -EINVAL, "%s", t);
        cr_expect_str_eq(err, want);
        cr_expect_eq(usec, 12345, "%s: output touched", t);
    }
}

static const char *const not_finite[] = {
        "-1",   "-1s",  "-0.5ms",   "-1e-9",      "inf", "+inf",
        "-inf", "INF",  "Infinity", "infinityms", "nan", "NaN",
        "-nan", "NaNs", "1e400",    "1e309h",
};

Test(duration, not_finite_or_negative)
{
    for (size_t i = 0; i < sizeof(not_finite) / sizeof(not_finite[0]); i++) {
        char err[COMMAND_ERR_LEN] = "", want[COMMAND_ERR_LEN];
        uint64_t usec = 12345;
        const char *t = not_finite[i];
        int ret = duration_parse((struct word){t, strlen(t)}, &usec, err);

        snprintf(want, sizeof(want),
                 "duration: must be a finite, non-negative number (got %s)", t);
        cr_expect_eq(ret, -EINVAL, "%s", t);
        cr_expect_str_eq(err, want);
        cr_expect_eq(usec, 12345, "%s: output touched", t);
    }
}

Test(duration, too_large)
{
    char err[COMMAND_ERR_LEN];
    uint64_t usec;

    cr_expect_eq(
            duration_parse((struct word){"1000000000.000001", 17}, &usec, err),
            -EINVAL);
    cr_expect_str_eq(err, "duration: too large (got 1000000000.000001, max "
                          "1000000000s)");
    cr_expect_eq(duration_parse((struct word){"300000h", 7}, &usec, err),
                 -EINVAL);
    cr_expect_str_eq(err, "duration: too large (got 300000h, max 1000000000s)");
}

Test(duration, message_quotes_binary_and_long_words)
{
    char err[COMMAND_ERR_LEN], word[300], want[COMMAND_ERR_LEN];
    uint64_t usec;

    cr_expect_eq(duration_parse((struct word){"1\0s\n", 4}, &usec, err),
                 -EINVAL);
    cr_expect_str_eq(err, "duration: cannot parse `1\\x00s\\x0a` (expected "
                          "number or `Nms`/`Ns`/`Nm`/`Nh`)");

    memset(word, '7', sizeof(word));
    cr_expect_eq(duration_parse((struct word){word, sizeof(word)}, &usec, err),
                 -EINVAL);
    snprintf(want, sizeof(want),
             "duration: cannot parse `%.120s...` (expected number or "
             "`Nms`/`Ns`/`Nm`/`Nh`)",
             word);
    cr_expect_str_eq(err, want);
}

/* A locale with a decimal comma: an installed one, or de_DE compiled
 * into a temp dir (LOCPATH) from the `locales` package's sources, so the
 * test runs on a machine where no such locale was generated. */
static bool
comma_locale(char *dir, size_t len)
{
    char cmd[PATH_MAX + 64];
    const char *t = getenv("TMPDIR");

    if (setlocale(LC_NUMERIC, "de_DE.UTF-8") ||
        setlocale(LC_NUMERIC, "fr_FR.UTF-8"))
        return true;
    snprintf(dir, len, "%s/provium-locale-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir))
        return false;
    snprintf(cmd, sizeof(cmd),
             "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1",
             dir);
    if (system(cmd) != 0)
        return false;
    setenv("LOCPATH", dir, 1);
    return setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
}

/* A locale whose decimal point is a comma must not change the syntax. */
Test(duration, ignores_locale)
{
    char err[COMMAND_ERR_LEN], dir[PATH_MAX] = "", cmd[PATH_MAX + 16];
    uint64_t usec = 0;
    bool have = comma_locale(dir, sizeof(dir));

    if (dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
    }
    if (!have)
        cr_skip_test("no locale with a decimal comma, and localedef cannot "
                     "make de_DE.UTF-8 (install the locales package)");
    cr_assert_str_eq(localeconv()->decimal_point, ",");
    cr_expect_eq(duration_parse((struct word){"1.5", 3}, &usec, err), 0);
    cr_expect_eq(usec, 1500000);
}

struct formatted {
    uint64_t usec;
    const char *text;
};

static const struct formatted formatted[] = {
        {0, "0s"},
        {1, "0.001ms"},
        {250, "0.25ms"},
        {1500, "1.5ms"},
        {500000, "500ms"},
        {999999, "999.999ms"},
        {1000000, "1s"},
        {1500000, "1.5s"},
        {1000001, "1.000001s"},
        {10000000, "10s"},
        {90000000, "90s"},
        {120000000, "2m"},
        {3600000000, "1h"},
        {5400000000, "90m"},
        {3601000000, "3601s"},
        {7200000000, "2h"},
        {1000000000000000, "1000000000s"},
};

Test(duration, format_and_round_trip)
{
    for (size_t i = 0; i < sizeof(formatted) / sizeof(formatted[0]); i++) {
        char buf[32], err[COMMAND_ERR_LEN];
        uint64_t back = 1;

        duration_format(formatted[i].usec, buf, sizeof(buf));
        cr_expect_str_eq(buf, formatted[i].text);
        cr_expect_eq(
                duration_parse((struct word){buf, strlen(buf)}, &back, err), 0,
                "%s: %s", buf, err);
        cr_expect_eq(back, formatted[i].usec, "%s", buf);
    }
}

Test(duration, format_truncates)
{
    char buf[4];

    duration_format(1500000, buf, sizeof(buf));
    cr_expect_str_eq(buf, "1.5");
    duration_format(123456789, buf, 1);
    cr_expect_str_eq(buf, "");
}
