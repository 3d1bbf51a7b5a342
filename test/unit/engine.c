/*
 * test/unit/engine.c - the engine registry (streams/engine.c) and the
 * command tables it shares with the stream ops (command.c, stream.c):
 * every open command resolves to its own entry, its engine and noun; the
 * options every open takes are taken once and never reach an engine; a
 * bad argument count prints the entry's usage; the detail of SPEC §5.1.
 * Nothing here opens a source: the parse is pure.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "streams.h"

/* Parse line into req: engine_parse's verdict, its message in err. */
static int
parse(const char *line, struct engine_req *req, struct command *cmd, char *err)
{
    cr_assert_eq(command_parse(cmd, line, strlen(line), err), 0, "%s", err);
    return engine_parse(cmd, req, err);
}

static struct engine_req req; /* big: not on the stack */

Test(engine, every_open_name_resolves_to_its_entry)
{
    cr_assert_eq(engine_count, 7, "SPEC §5.1 lists seven open commands");
    for (size_t i = 0; i < engine_count; i++) {
        const struct engine *e = &engine_table[i];
        cr_assert_eq(engine_lookup(e->c.name), e, "%s", e->c.name);
        cr_assert_not_null(e->ops, "%s", e->c.name);
        cr_assert_not_null(e->ops->check, "%s", e->c.name);
        cr_assert_eq(strncmp(e->c.usage, e->c.name, strlen(e->c.name)), 0,
                     "%s: usage starts with the name", e->c.name);
        /* The noun of SPEC §6.2's messages follows the context. */
        cr_assert_str_eq(e->noun, e->ctx == ENGINE_CTX_CONSOLE ? "console"
                                  : e->ctx == ENGINE_CTX_NONE  ? "capture"
                                                               : "stream");
        cr_assert_eq(e->priv == ENGINE_PRIV_NET_RAW, e->ctx == ENGINE_CTX_NONE,
                     "%s", e->c.name);
    }
    cr_assert_null(engine_lookup("tail"));
    cr_assert_null(engine_lookup("bridge_capture"));
}

Test(engine, missing_arguments_print_the_entry_usage)
{
    for (size_t i = 0; i < engine_count; i++) {
        const struct engine *e = &engine_table[i];
        char line[128], err[COMMAND_ERR_LEN], want[COMMAND_ERR_LEN];
        struct command cmd;
        /* The name alone, and the name with only the options every open
         * takes: those are no arguments. */
        for (int k = 0; k < 2; k++) {
            snprintf(line, sizeof(line), "%s%s", e->c.name,
                     k ? " site=a.test.lua:1 keep test=t" : "");
            cr_assert_eq(parse(line, &req, &cmd, err), -EINVAL, "%s", line);
            snprintf(want, sizeof(want), "%s: missing argument (usage: %s)",
                     e->c.name, e->c.usage);
            cr_assert_str_eq(err, want);
            command_free(&cmd);
        }
    }
}

Test(engine, unknown_open_command_lists_every_name)
{
    char err[COMMAND_ERR_LEN];
    struct command cmd;

    cr_assert_eq(parse("tail host /x", &req, &cmd, err), -EINVAL);
    cr_assert_str_eq(err, "unknown open command `tail` (expected tail_file, "
                          "file_tail_stream, fd_stream, proc_stdout_stream, "
                          "proc_stderr_stream, console or capture)");
    command_free(&cmd);
}

Test(engine, common_options_are_taken_once_and_never_reach_the_engine)
{
    char err[COMMAND_ERR_LEN], detail[64];
    struct command cmd;

    cr_assert_eq(parse("tail_file site=x.lua:1 host keep /var/log/m "
                       "start=beginning test=boot site=y.lua:2",
                       &req, &cmd, err),
                 0, "%s", err);
    cr_assert_eq(req.e, engine_lookup("tail_file"));
    cr_assert(word_is(req.target, "host"));
    cr_assert(word_is(req.what, "/var/log/m"));
    cr_assert(req.keep && req.has_site && req.has_test);
    cr_assert(word_is(req.site, "y.lua:2"), "the last site= wins");
    cr_assert(word_is(req.test, "boot"));
    cr_assert_eq(req.nopts, 1);
    cr_assert(word_is(req.opts[0], "start=beginning"));
    engine_detail(&req, detail, sizeof(detail));
    cr_assert_str_eq(detail, "/var/log/m");
    cr_assert_str_eq(engine_kind(req.e, NULL), "tail_file");
    command_free(&cmd);
}

Test(engine, ids_and_details)
{
    static const struct {
        const char *line;
        uint64_t id;
        const char *detail;
    } good[] = {
            {"proc_stdout_stream host 7", 7, "proc#7"},
            {"proc_stderr_stream host proc#12", 12, "proc#12"},
            {"fd_stream host file#3", 3, "file#3"},
            {"fd_stream host 4", 4, "4"},
            {"console vm1 start=end", 0, "vm1"},
            {"capture br0 kind=nic", 0, "br0"},
    };
    static const struct {
        const char *line, *msg;
    } bad[] = {
            {"proc_stdout_stream host x",
             "proc_stdout_stream: bad process id `x`"},
            {"fd_stream host proc#1", "fd_stream: bad handle id `proc#1`"},
            {"proc_stderr_stream host 0",
             "proc_stderr_stream: bad process id `0`"},
            {"fd_stream host 1 start=end", "unknown option `start=end`"},
            {"tail_file host /x start=sideways", "start: expected end"},
            {"console vm1 start=middle", "start: expected beginning or end"},
            {"capture a/b", "capture: bad interface name"},
            {"capture br0 kind=wifi", "kind: expected bridge or nic"},
    };
    char err[COMMAND_ERR_LEN], detail[64];
    struct command cmd;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cr_assert_eq(parse(good[i].line, &req, &cmd, err), 0, "%s: %s",
                     good[i].line, err);
        cr_assert_eq(req.id, good[i].id, "%s", good[i].line);
        engine_detail(&req, detail, sizeof(detail));
        cr_assert_str_eq(detail, good[i].detail, "%s", good[i].line);
        command_free(&cmd);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(parse(bad[i].line, &req, &cmd, err), -EINVAL, "%s",
                     bad[i].line);
        cr_assert_eq(strncmp(err, bad[i].msg, strlen(bad[i].msg)), 0,
                     "%s: got `%s`", bad[i].line, err);
        command_free(&cmd);
    }
}

/* Every stream op: a bad count names the op and prints its usage. The
 * matching ops take any number of words (a list of patterns): for them
 * `P T X` is one too many. */
Test(engine, stream_ops_print_their_usage_for_a_bad_count)
{
    size_t n, stride;
    const char *table = stream_op_table(&n, &stride);

    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++) {
        const struct command_entry *e = (const void *)(table + i * stride);
        char line[128], err[COMMAND_ERR_LEN], want[COMMAND_ERR_LEN];
        struct stream_op_spec spec;
        struct command cmd;
        if (e->min > 0) {
            snprintf(line, sizeof(line), "%s", e->name);
            cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0);
            cr_assert_eq(stream_op_parse(&cmd, &spec, err), -EINVAL, "%s",
                         line);
            snprintf(want, sizeof(want), "%s: %s (usage: %s)", e->name,
                     e->missing ? e->missing : "missing argument", e->usage);
            cr_assert_str_eq(err, want);
            command_free(&cmd);
        }
        snprintf(line, sizeof(line), "%s", e->name);
        for (int k = 0; k <= (e->max < 0 ? 2 : e->max); k++)
            strcat(line, " 1");
        cr_assert_eq(command_parse(&cmd, line, strlen(line), err), 0);
        cr_assert_eq(stream_op_parse(&cmd, &spec, err), -EINVAL, "%s", line);
        snprintf(want, sizeof(want), "%s: too many arguments (usage: %s)",
                 e->name, e->usage);
        cr_assert_str_eq(err, want);
        command_free(&cmd);
    }
}

/* A table entry named by two words ("vm add") matches both. */
Test(engine, two_word_commands)
{
    static const struct command_entry t[] = {
            {"vm add", 1, -1, "vm add NAME ...", NULL},
            {"vm del", 1, 1, "vm del NAME", NULL},
    };
    const struct command_entry *e;
    char err[COMMAND_ERR_LEN];
    struct command cmd;
    int argi;

    cr_assert_eq(command_parse(&cmd, "vm del x", 8, err), 0);
    cr_assert_eq(
            command_lookup(t, 2, sizeof(t[0]), &cmd, "global", &e, &argi, err),
            0, "%s", err);
    cr_assert_eq(e, &t[1]);
    cr_assert_eq(argi, 2);
    command_free(&cmd);
    cr_assert_eq(command_parse(&cmd, "vm del x y", 10, err), 0);
    cr_assert_eq(
            command_lookup(t, 2, sizeof(t[0]), &cmd, "global", &e, &argi, err),
            -EINVAL);
    cr_assert_str_eq(err, "vm del: too many arguments (usage: vm del NAME)");
    command_free(&cmd);
    cr_assert_eq(command_parse(&cmd, "vm", 2, err), 0);
    cr_assert_eq(
            command_lookup(t, 2, sizeof(t[0]), &cmd, "global", &e, &argi, err),
            -ENOENT);
    cr_assert_str_eq(err, "unknown global command `vm` (expected vm add or "
                          "vm del)");
    command_free(&cmd);
}
