/*
 * text.c - values from guests and users made safe to show in line-based
 * text (SPEC §6.4): the daemon's info files, vms/<name>/streams, status
 * files, the quiesce refusal.
 *
 * Those files are "key: value" lines or one line per stream, read by
 * people, by `grep` and by the Lua library. A value that held a newline
 * (a guest's kernel string, a `site=` option, a path) could add a line of
 * its own choosing: `agent_state: up`, `state: ended`, a fake stream. So
 * every such value is written through text_escape(), one rule for all:
 *
 *  - a control character (0x00-0x1f, 0x7f), the backslash, and any byte
 *    that is not part of well-formed UTF-8 become `\xHH` (lower-case
 *    hex): `\x0a`, `\x1b`, `\x5c`;
 *  - well-formed UTF-8 is kept (paths and test names in any language stay
 *    readable), except the code points that act as controls in a
 *    terminal or an editor: C1 controls U+0080-U+009F, the line and
 *    paragraph separators U+2028/U+2029 and the bidirectional formatting
 *    characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), whose
 *    bytes are escaped one by one.
 *
 * Because the backslash itself is escaped, the rule is reversible: every
 * `\x` in the output starts an escape (lua/provium.lua undoes it).
 *
 * The daemon's own words around those values (keys, numbers, states) are
 * appended with text_appendf(), unescaped: they are ours.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "streams.h"

/* Length of the well-formed UTF-8 sequence at s (at most n bytes) that
 * is safe to show, or 0 when its first byte must be escaped. */
static size_t
utf8_ok(const unsigned char *s, size_t n)
{
    unsigned cp;
    size_t len;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0; /* ASCII is the caller's; 0x80-0xc1, 0xf5-0xff invalid */
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, surrogate */
    if (cp <= 0x9f || cp == 0x2028 || cp == 0x2029 || cp == 0x200e ||
        cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return len;
}

size_t
text_escape(char *dst, size_t cap, const void *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = src;
    size_t o = 0, i = 0;

    if (cap == 0)
        return 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = 1;
        bool esc;

        if (c < 0x80) {
            esc = c < 0x20 || c == 0x7f || c == '\\';
        } else {
            n = utf8_ok(s + i, len - i);
            esc = n == 0;
            if (esc)
                n = 1;
        }
        if (o + (esc ? 4 : n) >= cap)
            break; /* never a partial escape or character */
        if (esc) {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 0xf];
        } else {
            memcpy(dst + o, s + i, n);
            o += n;
        }
        i += n;
    }
    dst[o] = '\0';
    return o;
}

size_t
text_append(char *buf, size_t len, const char *s)
{
    size_t n = strnlen(buf, len);

    if (n + 1 >= len || !s)
        return n;
    return n + text_escape(buf + n, len - n, s, strlen(s));
}

size_t
text_appendf(char *buf, size_t len, const char *fmt, ...)
{
    size_t n = strnlen(buf, len);
    va_list ap;

    if (n + 1 >= len)
        return n;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
    return strnlen(buf, len);
}

size_t
text_keyval(char *buf, size_t len, const char *key, const char *value)
{
    size_t n = strnlen(buf, len), k = strlen(key);

    /* Whole "key: " or nothing, so that a full buffer never ends in a
     * key without its line. */
    if (n + k + 3 >= len)
        return n;
    memcpy(buf + n, key, k);
    memcpy(buf + n + k, ": ", 3);
    n = text_append(buf, len, value);
    if (n + 1 < len) {
        buf[n++] = '\n';
        buf[n] = '\0';
    }
    return n;
}
