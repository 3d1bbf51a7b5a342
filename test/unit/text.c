/*
 * Unit tests for streams/text.c: the escaping of values shown in info,
 * streams and status files (SPEC §6.4), so that no value forges a line.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "streams.h"

#define B(s) s, sizeof(s) - 1

static const char *
esc(const void *src, size_t len)
{
    static char out[512];

    text_escape(out, sizeof(out), src, len);
    return out;
}

Test(text, plain_text_is_kept)
{
    cr_assert_str_eq(esc(B("/var/log/app.log")), "/var/log/app.log");
    cr_assert_str_eq(esc(B("a.test.lua:12 \"q\" 'x'")),
                     "a.test.lua:12 \"q\" 'x'");
}

Test(text, controls_and_backslash_escaped)
{
    cr_assert_str_eq(esc(B("\x1b[31m\n\nagent_state: up")),
                     "\\x1b[31m\\x0a\\x0aagent_state: up");
    cr_assert_str_eq(esc(B("a.lua:1\nstate: ended")),
                     "a.lua:1\\x0astate: ended");
    cr_assert_str_eq(esc(B("a\\x0ab")), "a\\x5cx0ab");
    cr_assert_str_eq(esc(B("\r\t\x7f\0z")), "\\x0d\\x09\\x7f\\x00z");
}

Test(text, utf8_kept_malformed_escaped)
{
    cr_assert_str_eq(esc(B("/tmp/\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80")),
                     "/tmp/\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80");
    /* stray continuation, truncated sequence, overlong, surrogate */
    cr_assert_str_eq(esc(B("\x80")), "\\x80");
    cr_assert_str_eq(esc(B("\xc3")), "\\xc3");
    cr_assert_str_eq(esc(B("\xc0\xaf")), "\\xc0\\xaf");
    cr_assert_str_eq(esc(B("\xed\xa0\x80")), "\\xed\\xa0\\x80");
    cr_assert_str_eq(esc(B("\xff")), "\\xff");
}

Test(text, terminal_controls_in_utf8_escaped)
{
    /* C1 CSI U+009B, line separator U+2028, RLO U+202E */
    cr_assert_str_eq(esc(B("\xc2\x9b")), "\\xc2\\x9b");
    cr_assert_str_eq(esc(B("\xe2\x80\xa8")), "\\xe2\\x80\\xa8");
    cr_assert_str_eq(esc(B("\xe2\x80\xae")), "\\xe2\\x80\\xae");
    cr_assert_str_eq(esc(B("\xc2\xa0")), "\xc2\xa0"); /* U+00A0 is fine */
}

Test(text, never_a_partial_escape)
{
    char out[6];

    /* "ab" fits, then "\x0a" (4 bytes) would not: stop before it. */
    cr_assert_eq(text_escape(out, sizeof(out), "ab\ncd", 5), 2);
    cr_assert_str_eq(out, "ab");
    cr_assert_eq(text_escape(out, sizeof(out), "\xe2\x82\xac\xe2\x82\xac", 6),
                 3);
    cr_assert_str_eq(out, "\xe2\x82\xac");
    cr_assert_eq(text_escape(out, 1, "x", 1), 0);
    cr_assert_str_eq(out, "");
}

Test(text, keyval_lines)
{
    char buf[64] = "";

    text_keyval(buf, sizeof(buf), "site", "a.lua:1\nstate: ended");
    text_keyval(buf, sizeof(buf), "test", "t");
    cr_assert_str_eq(buf, "site: a.lua:1\\x0astate: ended\ntest: t\n");
    text_append(buf, sizeof(buf), NULL);
    cr_assert_eq(strlen(buf), 38);
}

Test(text, keyval_full_buffer_never_overflows)
{
    char buf[16] = "0123456789";

    text_keyval(buf, sizeof(buf), "detail", "x");
    cr_assert_str_eq(buf, "0123456789"); /* "detail: " does not fit */
    text_keyval(buf, sizeof(buf), "k", "\n\n\n");
    cr_assert_str_eq(buf, "0123456789k: \n"); /* the value cut whole */
}
