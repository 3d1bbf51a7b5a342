/*
 * engine.c - the engine registry: every open command of SPEC §5.1, the
 * engine that serves it and what the engine needs from its caller, and
 * the one parser of an open command's words.
 *
 * The daemon (fs/slot.c) and the tests know open commands only through
 * this table: which engine opens a stream (its const ops table, tail.c,
 * console.c, capture.c), the noun its ops use in messages (`stream EOF`,
 * `console closed`), the context it opens in (a VM's agent client, a VM's
 * console, nothing), who may open it on a shared mount, and what the
 * word after the VM names. Adding an open command is one entry here and,
 * when it is a new engine, one file with its ops.
 *
 * The table is a command table (command.c): unknown commands and
 * missing arguments are named with the entry's usage line.
 * engine_parse() turns the words into structured arguments (struct
 * engine_req): the VM or interface, the path or id, the options every
 * open takes (site=, test=, keep: the daemon's, taken here once and never
 * seen by an engine), and the engine's own options, which the engine's
 * check() then parses without any effect. A request that passes is well
 * formed: what can still fail at open is the world (no such file, no
 * agent, no permission), never the syntax. Engines open from that
 * request; nobody formats a command line for an engine to parse again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

#define TAIL_OPTS "[start=end|beginning|start|N|-N] [follow=name|descriptor]"

const struct engine engine_table[] = {
        {{"tail_file", 2, -1, "tail_file VM PATH " TAIL_OPTS, NULL},
         &tail_engine,
         "stream",
         ENGINE_CTX_AGENT,
         ENGINE_PRIV_VM,
         ENGINE_WHAT_PATH,
         0},
        {{"file_tail_stream", 2, -1, "file_tail_stream VM PATH " TAIL_OPTS,
          NULL},
         &tail_engine,
         "stream",
         ENGINE_CTX_AGENT,
         ENGINE_PRIV_VM,
         ENGINE_WHAT_PATH,
         0},
        {{"fd_stream", 2, -1, "fd_stream VM HANDLE", NULL},
         &tail_engine,
         "stream",
         ENGINE_CTX_AGENT,
         ENGINE_PRIV_VM,
         ENGINE_WHAT_HANDLE,
         0},
        {{"proc_stdout_stream", 2, -1, "proc_stdout_stream VM PROC", NULL},
         &tail_engine,
         "stream",
         ENGINE_CTX_AGENT,
         ENGINE_PRIV_VM,
         ENGINE_WHAT_PROC,
         1},
        {{"proc_stderr_stream", 2, -1, "proc_stderr_stream VM PROC", NULL},
         &tail_engine,
         "stream",
         ENGINE_CTX_AGENT,
         ENGINE_PRIV_VM,
         ENGINE_WHAT_PROC,
         2},
        {{"console", 1, -1, "console VM [start=beginning|end]", NULL},
         &console_engine,
         "console",
         ENGINE_CTX_CONSOLE,
         ENGINE_PRIV_VM,
         ENGINE_WHAT_NONE,
         0},
        {{"capture", 1, -1,
          "capture IFACE [kind=bridge|nic] [snaplen=N] [filter=BPF]", NULL},
         &capture_engine,
         "capture",
         ENGINE_CTX_NONE,
         ENGINE_PRIV_NET_RAW,
         ENGINE_WHAT_NONE,
         0},
};
const size_t engine_count = sizeof(engine_table) / sizeof(engine_table[0]);

const struct engine *
engine_find(struct word name)
{
    for (size_t i = 0; i < engine_count; i++)
        if (word_is(name, engine_table[i].c.name))
            return &engine_table[i];
    return NULL;
}

const struct engine *
engine_lookup(const char *name)
{
    return engine_find((struct word){name, strlen(name)});
}

int
engine_parse(const struct command *cmd, struct engine_req *req, char *err)
{
    const struct command_entry *c;
    const struct engine *e;
    int argi, argc = 0, rc;

    memset(req, 0, sizeof(*req));
    rc = command_lookup(engine_table, engine_count, sizeof(*engine_table), cmd,
                        "open", &c, &argi, err);
    if (rc < 0)
        return -EINVAL;
    req->e = e = (const struct engine *)(const void *)c;
    /* Positional words first (wherever the options stand), the options
     * every open takes to the caller, the rest to the engine. */
    for (int i = argi; i < cmd->argc; i++) {
        struct word w = cmd->argv[i], v;
        if (word_option(w, "site", &v)) {
            req->site = v;
            req->has_site = true;
        } else if (word_option(w, "test", &v)) {
            req->test = v;
            req->has_test = true;
        } else if (word_is(w, "keep")) {
            req->keep = true;
        } else if (argc == 0) {
            req->target = w;
            argc++;
        } else if (argc == 1 && e->what != ENGINE_WHAT_NONE) {
            req->what = w;
            argc++;
        } else {
            req->opts[req->nopts++] = w;
        }
    }
    if (argc < e->c.min) {
        command_usage(&e->c, "missing argument", err);
        return -EINVAL;
    }
    if (e->what == ENGINE_WHAT_HANDLE || e->what == ENGINE_WHAT_PROC) {
        bool proc = e->what == ENGINE_WHAT_PROC;
        if (!word_u64(req->what, proc ? "proc" : "file", &req->id) ||
            req->id == 0) {
            snprintf(err, COMMAND_ERR_LEN, "%s: bad %s id `%.*s`", e->c.name,
                     proc ? "process" : "handle",
                     (int)(req->what.len > 32 ? 32 : req->what.len),
                     req->what.p);
            return -EINVAL;
        }
    }
    return e->ops->check(req, err);
}

size_t
engine_detail(const struct engine_req *req, char *buf, size_t len)
{
    struct word w = req->e->what == ENGINE_WHAT_NONE ? req->target : req->what;

    /* A process is shown as proc#N however it was named. */
    if (req->e->what == ENGINE_WHAT_PROC && !memchr(w.p, '#', w.len))
        return (size_t)snprintf(buf, len, "proc#%.*s", (int)w.len, w.p);
    return (size_t)snprintf(buf, len, "%.*s", (int)w.len, w.p);
}

int
engine_open(struct stream *s, void *ctx, const struct engine_req *req,
            engine_opened_fn *opened, void *arg, void **state, char *err)
{
    return req->e->ops->open(s, ctx, req, opened, arg, state, err);
}

int
engine_open_command(struct stream *s, void *ctx, const struct command *cmd,
                    engine_opened_fn *opened, void *arg, void **state,
                    char *err)
{
    struct engine_req *req = malloc(sizeof(*req));
    int rc;

    if (!req) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    rc = engine_parse(cmd, req, err);
    if (rc == 0)
        rc = engine_open(s, ctx, req, opened, arg, state, err);
    free(req);
    return rc;
}

const char *
engine_kind(const struct engine *e, const void *state)
{
    return e->ops->kind && state ? e->ops->kind(state) : e->c.name;
}

void
engine_info(const struct engine *e, void *state, char *buf, size_t len)
{
    e->ops->info(state, buf, len);
}
