/*
 * command.c - the command line syntax of SPEC §5: words and durations.
 *
 * A command is one line of words separated by blanks (space, tab):
 *  - a trailing "\n" or "\r\n" is dropped; any other newline, CR or
 *    control byte (below 0x20, or 0x7f) outside quotes is an error, since
 *    one write carries one command and a stray newline usually means two
 *    commands were glued together;
 *  - bytes from 0x80 up are ordinary word bytes, so UTF-8 needs no quotes;
 *  - a double quote starts a quoted part that runs to the next unescaped
 *    double quote. Inside it every byte stands for itself (raw newlines
 *    and bytes >= 0x80 too) except the backslash, which starts one of the
 *    escapes \\ \" \n \r \t \0 \xHH (exactly two hex digits; \0 is NUL and
 *    never octal), so any byte, NUL included, can be expressed;
 *  - quoted and unquoted parts join as in a shell: ab"c d"e is the one
 *    word `abc de`, and "" is an empty word;
 *  - outside quotes a backslash is an ordinary byte (no shell escaping):
 *    a\b is the word `a\b`.
 * Byte positions in error messages count from 0 in the line as written.
 *
 * Each word is followed by a NUL in cmd->buf (w.p[w.len] == '\0'), so a
 * word without NULs in it can be handed to functions taking C strings.
 *
 * Durations are a decimal number of seconds or a decimal number followed
 * by ms, s, m or h (exponents allowed, hex floats and other strtod
 * extensions not). NaN, infinities (as text, or by overflowing a double)
 * and negative numbers get Provium's "finite, non-negative" message,
 * whose X is the word as written. Durations above DURATION_MAX_SEC are
 * refused as too large: far past any sensible timeout, and it keeps the
 * value exact in microseconds. The result is rounded to the nearest
 * microsecond.
 */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

#define DURATION_MAX_SEC 1000000000ULL /* about 31 years */
#define DURATION_NUM_MAX 64            /* longest number text worth parsing */
#define QUOTE_MAX 120 /* characters of a word echoed in an error */

static int __attribute__((format(printf, 3, 4)))
fail(char *err, int ret, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, COMMAND_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return ret;
}

static bool
is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * The escape whose backslash is at line[*ip] (with at least one byte
 * after it). Stores the byte it stands for, advances *ip past it.
 */
static int
parse_escape(const unsigned char *line, size_t len, size_t *ip,
             unsigned char *out, char *err)
{
    size_t at = *ip;
    unsigned char c = line[at + 1];
    int hi, lo;

    switch (c) {
    case '\\':
    case '"':
        *out = c;
        break;
    case 'n':
        *out = '\n';
        break;
    case 'r':
        *out = '\r';
        break;
    case 't':
        *out = '\t';
        break;
    case '0':
        *out = '\0';
        break;
    case 'x':
        if (at + 3 >= len || (hi = hex_value(line[at + 2])) < 0 ||
            (lo = hex_value(line[at + 3])) < 0)
            return fail(err, -EINVAL,
                        "bad escape \\x at byte %zu (expected two hex digits)",
                        at);
        *out = (unsigned char)(hi << 4 | lo);
        *ip = at + 4;
        return 0;
    default:
        if (c > ' ' && c < 0x7f)
            return fail(err, -EINVAL, "bad escape \\%c at byte %zu", c, at);
        return fail(err, -EINVAL,
                    "bad escape at byte %zu (byte 0x%02x after the backslash)",
                    at, c);
    }
    *ip = at + 2;
    return 0;
}

/*
 * One word starting at line[*ip] (not a blank): unquoted and quoted parts
 * up to the next blank outside quotes. Appends its bytes at out + *op.
 */
static int
parse_word(const unsigned char *line, size_t len, size_t *ip,
           unsigned char *out, size_t *op, char *err)
{
    size_t i = *ip, o = *op;
    int ret;

    while (i < len && !is_blank(line[i])) {
        unsigned char c = line[i];

        if (c == '"') {
            size_t quote = i++;

            for (;;) {
                if (i == len || (line[i] == '\\' && i + 1 == len))
                    return fail(err, -EINVAL,
                                "unterminated quote starting at byte %zu",
                                quote);
                if (line[i] == '"') {
                    i++;
                    break;
                }
                if (line[i] == '\\') {
                    if ((ret = parse_escape(line, len, &i, &out[o], err)) < 0)
                        return ret;
                    o++;
                } else {
                    out[o++] = line[i++];
                }
            }
        } else if (c == '\n') {
            return fail(err, -EINVAL,
                        "unexpected newline at byte %zu (one command per "
                        "write; quote it as \\n)",
                        i);
        } else if (is_control(c)) {
            return fail(err, -EINVAL,
                        "unexpected control byte 0x%02x at byte %zu (quote "
                        "it as \\x%02x)",
                        c, i, c);
        } else {
            out[o++] = c;
            i++;
        }
    }
    *ip = i;
    *op = o;
    return 0;
}

int
command_parse(struct command *cmd, const char *line, size_t len, char *err)
{
    const unsigned char *in = (const unsigned char *)line;
    unsigned char *out;
    size_t i = 0, o = 0;
    int ret;

    cmd->argc = 0;
    cmd->buf = NULL;
    if (len > COMMAND_MAX_LINE)
        return fail(err, -EMSGSIZE, "command too long (%zu bytes, max %d)", len,
                    COMMAND_MAX_LINE);
    if (len > 0 && in[len - 1] == '\n') {
        len--;
        if (len > 0 && in[len - 1] == '\r')
            len--;
    }
    /* Unescaping never grows a word, and each word's NUL takes the place
     * of the blank after it, or of the extra byte for the last word. */
    out = malloc(len + 1);
    if (!out)
        return fail(err, -ENOMEM, "out of memory");
    for (;;) {
        while (i < len && is_blank(in[i]))
            i++;
        if (i == len)
            break;
        if (cmd->argc == COMMAND_MAX_WORDS) {
            ret = fail(err, -EMSGSIZE, "too many words (max %d)",
                       COMMAND_MAX_WORDS);
            goto err;
        }
        size_t start = o;
        if ((ret = parse_word(in, len, &i, out, &o, err)) < 0)
            goto err;
        cmd->argv[cmd->argc++] =
                (struct word){(const char *)out + start, o - start};
        out[o++] = '\0';
    }
    if (cmd->argc == 0) {
        ret = fail(err, -EINVAL, "empty command");
        goto err;
    }
    cmd->buf = (char *)out;
    return 0;
err:
    free(out);
    cmd->argc = 0;
    return ret;
}

void
command_free(struct command *cmd)
{
    if (!cmd)
        return;
    free(cmd->buf);
    cmd->buf = NULL;
    cmd->argc = 0;
}

bool
word_is(struct word w, const char *s)
{
    size_t n = strlen(s);

    return w.len == n && memcmp(w.p, s, n) == 0;
}

bool
word_cstr(struct word w, char *dst, size_t cap)
{
    if (w.len == 0 || w.len >= cap || memchr(w.p, 0, w.len))
        return false;
    memcpy(dst, w.p, w.len);
    dst[w.len] = '\0';
    return true;
}

char *
word_strdup(struct word w)
{
    char *s;

    if (memchr(w.p, 0, w.len) || !(s = malloc(w.len + 1)))
        return NULL;
    memcpy(s, w.p, w.len);
    s[w.len] = '\0';
    return s;
}

bool
word_option(struct word w, const char *key, struct word *value)
{
    size_t n = strlen(key);

    if (w.len <= n || memcmp(w.p, key, n) != 0 || w.p[n] != '=')
        return false;
    *value = (struct word){w.p + n + 1, w.len - n - 1};
    return true;
}

bool
word_u64(struct word w, const char *prefix, uint64_t *v)
{
    char buf[32], *end;
    size_t plen = prefix ? strlen(prefix) : 0;
    const char *p = buf;

    if (!word_cstr(w, buf, sizeof(buf)))
        return false;
    if (prefix && strncmp(buf, prefix, plen) == 0 && buf[plen] == '#')
        p += plen + 1;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    *v = strtoull(p, &end, 10);
    return !*end && errno == 0;
}

/* ---- command tables ---- */

/* The table's i-th entry. */
static const struct command_entry *
entry_at(const void *table, size_t stride, size_t i)
{
    return (const struct command_entry *)(const void *)((const char *)table +
                                                        i * stride);
}

/* How many words of cmd e's name takes (0: e does not match). */
static int
entry_match(const struct command_entry *e, const struct command *cmd)
{
    const char *sp = strchr(e->name, ' ');

    if (!sp)
        return cmd->argc >= 1 && word_is(cmd->argv[0], e->name) ? 1 : 0;
    /* Two words: "vm add". */
    return cmd->argc >= 2 && (size_t)(sp - e->name) == cmd->argv[0].len &&
                           memcmp(e->name, cmd->argv[0].p, cmd->argv[0].len) ==
                                   0 &&
                           word_is(cmd->argv[1], sp + 1)
                   ? 2
                   : 0;
}

size_t
command_quote(struct word w, size_t max, char *buf, size_t size)
{
    size_t o = 0, n = w.len < max ? w.len : max;

    for (size_t i = 0; i < n && o + 5 < size; i++) {
        unsigned char c = (unsigned char)w.p[i];
        switch (c) {
        case '\n':
            buf[o++] = '\\';
            buf[o++] = 'n';
            break;
        case '\r':
            buf[o++] = '\\';
            buf[o++] = 'r';
            break;
        case '\t':
            buf[o++] = '\\';
            buf[o++] = 't';
            break;
        case '\\':
            buf[o++] = '\\';
            buf[o++] = '\\';
            break;
        default:
            if (c >= 0x20 && c < 0x7f)
                buf[o++] = (char)c;
            else
                o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
    }
    if (size)
        buf[o < size ? o : size - 1] = '\0';
    return o;
}

size_t
command_names(const void *table, size_t n, size_t stride, char *buf, size_t len)
{
    size_t o = 0;

    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s",
                              i == 0       ? ""
                              : i + 1 == n ? " or "
                                           : ", ",
                              entry_at(table, stride, i)->name);
    return o;
}

void
command_usage(const struct command_entry *e, const char *problem, char *err)
{
    snprintf(err, COMMAND_ERR_LEN, "%s: %s (usage: %s)", e->name, problem,
             e->usage);
}

int
command_lookup(const void *table, size_t n, size_t stride,
               const struct command *cmd, const char *what,
               const struct command_entry **out, int *argi, char *err)
{
    char list[160], word[80], msg[COMMAND_ERR_LEN + 320];
    size_t len;

    for (size_t i = 0; i < n; i++) {
        const struct command_entry *e = entry_at(table, stride, i);
        int words = entry_match(e, cmd), args = cmd->argc - words;
        if (!words)
            continue;
        *out = e;
        *argi = words;
        if (args < e->min) {
            command_usage(e, e->missing ? e->missing : "missing argument", err);
            return -EINVAL;
        }
        if (e->max >= 0 && args > e->max) {
            command_usage(e, "too many arguments", err);
            return -EINVAL;
        }
        return 0;
    }
    *out = NULL;
    command_quote(cmd->argc ? cmd->argv[0] : (struct word){"", 0}, 64, word,
                  sizeof(word));
    command_names(table, n, stride, list, sizeof(list));
    snprintf(msg, sizeof(msg), "unknown %s command `%s` (expected %s)", what,
             word, list);
    len = strnlen(msg, COMMAND_ERR_LEN - 1); /* cut to fit, as before */
    memcpy(err, msg, len);
    err[len] = '\0';
    return -ENOENT;
}

/* ---- durations ---- */

/* Render w for a message: printable ASCII as is, other bytes as \xHH, cut
 * with "..." after QUOTE_MAX characters so the message fits its buffer. */
static void
quote_word(struct word w, char *buf, size_t size)
{
    size_t o = 0, i;

    for (i = 0; i < w.len && o < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)w.p[i];

        if (c >= ' ' && c < 0x7f)
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    }
    if (i < w.len)
        o += (size_t)snprintf(buf + o, size - o, "...");
    buf[o] = '\0';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t
skip_digits(const char *s, size_t i, size_t n)
{
    while (i < n && is_digit(s[i]))
        i++;
    return i;
}

/* Case-insensitive: does s[0..n) equal the lower-case word? */
static bool
text_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

enum number_kind { NUMBER_BAD, NUMBER_DECIMAL, NUMBER_NONFINITE };

/*
 * Classify s[0..n): [+-] digits [. digits] [(e|E) [+-] digits], with at
 * least one mantissa digit; or a signed inf/infinity/nan (which Provium's
 * parser accepts as numbers and then refuses as not finite). Everything
 * else strtod would take (hex, leading blanks, "nan(...)") is bad.
 */
static enum number_kind
number_kind(const char *s, size_t n)
{
    size_t i = 0, m;

    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (text_is(s + i, n - i, "inf") || text_is(s + i, n - i, "infinity") ||
        text_is(s + i, n - i, "nan"))
        return NUMBER_NONFINITE;
    m = i;
    i = skip_digits(s, i, n);
    if (i < n && s[i] == '.')
        i = skip_digits(s, i + 1, n);
    if (i == m || (i == m + 1 && s[m] == '.'))
        return NUMBER_BAD;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = ++i;

        if (i < n && (s[i] == '+' || s[i] == '-'))
            e = ++i;
        i = skip_digits(s, i, n);
        if (i == e)
            return NUMBER_BAD;
    }
    return i == n ? NUMBER_DECIMAL : NUMBER_BAD;
}

static locale_t c_locale;

static void
c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod in the C locale: the process may have set LC_NUMERIC to one
 * whose decimal point is a comma. */
static double
number_value(const char *num)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, c_locale_init);
    return c_locale ? strtod_l(num, NULL, c_locale) : strtod(num, NULL);
}

int
duration_parse(struct word w, uint64_t *usec, char *err)
{
    /* "ms" before "m" and "s": 5ms is neither "5m" + "s" nor "5" + "ms". */
    static const struct {
        const char *suffix;
        double usec;
    } units[] = {
            {"ms", 1e3},
            {"s", 1e6},
            {"m", 60e6},
            {"h", 3600e6},
    };
    char num[DURATION_NUM_MAX + 1], quoted[QUOTE_MAX + 8];
    enum number_kind kind;
    double scale = 1e6, v;
    size_t n = w.len;

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t sl = strlen(units[i].suffix);

        if (n >= sl && memcmp(w.p + n - sl, units[i].suffix, sl) == 0) {
            scale = units[i].usec;
            n -= sl;
            break;
        }
    }
    quote_word(w, quoted, sizeof(quoted));
    kind = n <= DURATION_NUM_MAX ? number_kind(w.p, n) : NUMBER_BAD;
    if (kind == NUMBER_BAD)
        return fail(err, -EINVAL,
                    "duration: cannot parse `%s` (expected number or "
                    "`Nms`/`Ns`/`Nm`/`Nh`)",
                    quoted);
    if (kind == NUMBER_NONFINITE) {
        v = NAN;
    } else {
        memcpy(num, w.p, n);
        num[n] = '\0';
        /* Validated above, so strtod takes it all; overflow gives
         * HUGE_VAL, which is refused as infinite below. */
        v = number_value(num);
    }
    if (!isfinite(v) || v < 0)
        return fail(err, -EINVAL,
                    "duration: must be a finite, non-negative number (got %s)",
                    quoted);
    v *= scale;
    if (v > (double)(DURATION_MAX_SEC * USEC_PER_SEC))
        return fail(err, -EINVAL, "duration: too large (got %s, max %llus)",
                    quoted, DURATION_MAX_SEC);
    *usec = (uint64_t)(v + 0.5);
    return 0;
}

/* whole.frac with the fraction's trailing zeros dropped, and a suffix. */
static void
format_fixed(uint64_t v, uint64_t unit, int digits, const char *suffix,
             char *buf, size_t len)
{
    uint64_t whole = v / unit, frac = v % unit;
    char f[24];
    int n;

    if (frac == 0) {
        snprintf(buf, len, "%" PRIu64 "%s", whole, suffix);
        return;
    }
    n = snprintf(f, sizeof(f), "%0*" PRIu64, digits, frac);
    while (n > 0 && f[n - 1] == '0')
        f[--n] = '\0';
    snprintf(buf, len, "%" PRIu64 ".%s%s", whole, f, suffix);
}

/*
 * Whole hours or minutes as "2h" / "2m", else seconds ("1.5s", "90s"), or
 * below a second milliseconds ("500ms", "0.25ms"). The output parses back
 * to the same value with duration_parse().
 */
void
duration_format(uint64_t usec, char *buf, size_t len)
{
    const uint64_t min = 60 * USEC_PER_SEC, hour = 60 * min;

    if (usec >= hour && usec % hour == 0)
        snprintf(buf, len, "%" PRIu64 "h", usec / hour);
    else if (usec >= min && usec % min == 0)
        snprintf(buf, len, "%" PRIu64 "m", usec / min);
    else if (usec >= USEC_PER_SEC || usec == 0)
        format_fixed(usec, USEC_PER_SEC, 6, "s", buf, len);
    else
        format_fixed(usec, USEC_PER_MSEC, 3, "ms", buf, len);
}
