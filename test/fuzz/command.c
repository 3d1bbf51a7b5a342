/*
 * libFuzzer target for the command syntax (streams/command.c) and what
 * consumes its words: duration_parse and stream_op_parse.
 *
 * Invariants checked on every input:
 *  - command_parse answers 0, -EINVAL, -EMSGSIZE or -ENOMEM; on failure a
 *    message is set and nothing is left allocated;
 *  - on success 1 <= argc <= COMMAND_MAX_WORDS, the words lie in order
 *    inside cmd.buf, each NUL-terminated, their bytes no more than the
 *    input's;
 *  - quoting every word with escapes and parsing again gives the same
 *    words;
 *  - a duration that parses formats to text that parses to the same value;
 *  - a stream op that parses has a known kind and its pattern points into
 *    the command's buffer.
 *
 * Run: fuzz_command -max_total_time=60 test/fuzz/corpus/command
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

static void
check_err(const char *err)
{
    size_t n = strnlen(err, COMMAND_ERR_LEN);

    CHECK(n > 0 && n < COMMAND_ERR_LEN);
}

/* Every word quoted, every byte that could matter escaped. */
static size_t
requote(const struct command *cmd, char *out)
{
    size_t o = 0;

    for (int i = 0; i < cmd->argc; i++) {
        out[o++] = '"';
        for (size_t j = 0; j < cmd->argv[i].len; j++) {
            unsigned char c = (unsigned char)cmd->argv[i].p[j];

            if (c == '"' || c == '\\') {
                out[o++] = '\\';
                out[o++] = (char)c;
            } else if (c < 0x20 || c >= 0x7f) {
                o += (size_t)sprintf(out + o, "\\x%02x", c);
            } else {
                out[o++] = (char)c;
            }
        }
        out[o++] = '"';
        out[o++] = ' ';
    }
    return o;
}

static void
check_words(const struct command *cmd, size_t size)
{
    const char *prev_end = cmd->buf;
    size_t total = 0;

    CHECK(cmd->argc >= 1 && cmd->argc <= COMMAND_MAX_WORDS);
    CHECK(cmd->buf != NULL);
    for (int i = 0; i < cmd->argc; i++) {
        struct word w = cmd->argv[i];

        CHECK(w.len <= size);
        CHECK(w.p >= prev_end && w.p <= cmd->buf + size);
        CHECK(w.p[w.len] == '\0');
        prev_end = w.p + w.len + 1;
        total += w.len;
    }
    CHECK(total <= size);
    CHECK(prev_end <= cmd->buf + size + 1);
}

static void
check_requote(const struct command *cmd)
{
    static char line[4 * COMMAND_MAX_LINE + 3 * COMMAND_MAX_WORDS];
    char err[COMMAND_ERR_LEN];
    struct command again;
    size_t len = requote(cmd, line);
    int ret = command_parse(&again, line, len, err);

    if (len > COMMAND_MAX_LINE) {
        CHECK(ret == -EMSGSIZE);
        return;
    }
    CHECK(ret == 0);
    CHECK(again.argc == cmd->argc);
    for (int i = 0; i < cmd->argc; i++) {
        CHECK(again.argv[i].len == cmd->argv[i].len);
        CHECK(memcmp(again.argv[i].p, cmd->argv[i].p, cmd->argv[i].len) == 0);
    }
    command_free(&again);
}

static void
check_duration(struct word w)
{
    char err[COMMAND_ERR_LEN], text[32];
    uint64_t usec, back;

    if (duration_parse(w, &usec, err) < 0) {
        check_err(err);
        CHECK(strncmp(err, "duration: ", 10) == 0);
        return;
    }
    CHECK(usec <= 1000000000ULL * USEC_PER_SEC);
    duration_format(usec, text, sizeof(text));
    CHECK(duration_parse((struct word){text, strlen(text)}, &back, err) == 0);
    CHECK(back == usec);
}

static void
check_op(const struct command *cmd, size_t size)
{
    struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];

    if (stream_op_parse(cmd, &spec, err) < 0) {
        check_err(err);
        return;
    }
    CHECK(spec.kind >= STREAM_OP_NEXT && spec.kind <= STREAM_OP_PEEK);
    if (spec.pattern) {
        const char *p = spec.pattern;

        CHECK(spec.pattern_len <= MATCH_MAX_PATTERN);
        CHECK(p >= cmd->buf && p + spec.pattern_len <= cmd->buf + size + 1);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct command cmd;
    char err[COMMAND_ERR_LEN];
    int ret;

    memset(err, 0, sizeof(err));
    ret = command_parse(&cmd, (const char *)data, size, err);
    if (ret < 0) {
        CHECK(ret == -EINVAL || ret == -EMSGSIZE || ret == -ENOMEM);
        CHECK(cmd.argc == 0 && cmd.buf == NULL);
        check_err(err);
        return 0;
    }
    check_words(&cmd, size);
    check_requote(&cmd);
    for (int i = 0; i < cmd.argc; i++)
        check_duration(cmd.argv[i]);
    check_op(&cmd, size);
    command_free(&cmd);
    return 0;
}
