/*
 * tail.c - the tail engine: streams fed through a VM's agent client
 * (tail_file, file_tail_stream, fd_stream, proc_stdout_stream,
 * proc_stderr_stream; SPEC §5.1, §6.1).
 *
 * One agent data frame is one stream frame (SPEC §6.2). The agent's end
 * becomes stream_end: clean for end of file and deletion, an error with
 * the agent's errno and message otherwise; a lost agent connection ends
 * the stream with "agent connection lost: ...". Truncations and rotations
 * are counted for info.
 */
#include "streams.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tail {
    struct stream *s;
    struct agent_chan *ch;
    engine_opened_fn *opened;
    void *arg;
    char kind[24];
    char detail[PROTO_MAX_PATH + 32];
    uint64_t start;
    unsigned truncations, rotations;
    char last_note[PROTO_MAX_MSG];
};

static void
tail_opened(void *arg, int err, const char *msg, uint64_t offset)
{
    struct tail *t = arg;
    char buf[PROTO_MAX_MSG + PROTO_MAX_PATH + 64];

    t->start = offset;
    if (err < 0) {
        size_t dl = strlen(t->detail);
        t->ch = NULL; /* gone with the failure */
        if (!msg || !*msg)
            msg = strerror(-err);
        /* "tail_file /x: why": the agent names the object already
         * ("/x: No such file or directory"), the client does not. */
        if (strncmp(msg, t->detail, dl) == 0 && msg[dl] == ':')
            msg += dl + 1 + (msg[dl + 1] == ' ');
        snprintf(buf, sizeof(buf), "%s %s: %s", t->kind, t->detail, msg);
        t->opened(t->s, err, buf, t->arg);
        return;
    }
    t->opened(t->s, 0, NULL, t->arg);
}

static void
tail_data(void *arg, const void *buf, size_t len)
{
    struct tail *t = arg;
    /* A failed append has ended the stream (history limit, spool error,
     * closed): stop the agent sending more. */
    if (stream_append(t->s, buf, len) < 0) {
        agent_client_cancel(t->ch);
        t->ch = NULL;
    }
}

static void
tail_note(void *arg, unsigned code, uint64_t value, const char *msg)
{
    struct tail *t = arg;
    if (code == PROTO_NOTE_TRUNCATED)
        t->truncations++;
    else if (code == PROTO_NOTE_ROTATED)
        t->rotations++;
    snprintf(t->last_note, sizeof(t->last_note), "%s", msg);
}

static void
tail_end(void *arg, int err, unsigned reason, const char *msg)
{
    struct tail *t = arg;
    char buf[PROTO_MAX_MSG + PROTO_MAX_PATH + 64];

    t->ch = NULL;
    if (err == 0) {
        /* A clean end still says why when there is a why: the reason
         * code, not the guest's text, names a deletion; an end of file
         * with a message ("handle closed") passes the message on. */
        stream_end(t->s, 0,
                   reason == PROTO_END_DELETED  ? "file deleted"
                   : reason == PROTO_END_CLOSED ? "closed by the agent"
                                                : msg);
        return;
    }
    snprintf(buf, sizeof(buf), "%s %s: %s", t->kind, t->detail,
             msg && *msg ? msg : strerror(-err));
    stream_end(t->s, err, buf);
}

static const struct agent_stream_cbs tail_cbs = {
        .opened = tail_opened,
        .data = tail_data,
        .note = tail_note,
        .end = tail_end,
};

static bool
parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return !*end && errno == 0;
}

static int
parse_start(struct word v, struct agent_open *req, char *err)
{
    char buf[32];
    if (!word_cstr(v, buf, sizeof(buf)))
        goto bad;
    if (strcmp(buf, "end") == 0) {
        req->start = PROTO_START_END;
    } else if (strcmp(buf, "beginning") == 0 || strcmp(buf, "start") == 0) {
        req->start = PROTO_START_BEGINNING;
    } else if (buf[0] == '-' && parse_u64(buf + 1, &req->offset)) {
        req->start = PROTO_START_BACK;
    } else if (parse_u64(buf, &req->offset)) {
        req->start = PROTO_START_OFFSET;
    } else {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, COMMAND_ERR_LEN,
             "start: expected end, beginning, start, N or -N (got `%.*s`)",
             (int)(v.len > 64 ? 64 : v.len), v.p);
    return -EINVAL;
}

/* The agent's request for req; path holds PROTO_MAX_PATH bytes. The
 * tail engine's option parser: check and open both run it. */
static int
tail_parse(const struct engine_req *req, struct agent_open *out, char *path,
           char *err)
{
    const struct engine *e = req->e;
    bool is_tail = e->what == ENGINE_WHAT_PATH;
    int rc;

    memset(out, 0, sizeof(*out));
    switch (e->what) {
    case ENGINE_WHAT_PATH:
        out->type = PROTO_OPEN_TAIL;
        out->start = PROTO_START_END;
        if (!word_cstr(req->what, path, PROTO_MAX_PATH)) {
            snprintf(err, COMMAND_ERR_LEN, "%s: bad or too long path",
                     e->c.name);
            return -EINVAL;
        }
        out->path = path;
        break;
    case ENGINE_WHAT_HANDLE:
        out->type = PROTO_OPEN_FD;
        out->id = req->id;
        break;
    case ENGINE_WHAT_PROC:
        out->type = PROTO_OPEN_PROC;
        out->which = e->which == 1 ? PROTO_STDOUT : PROTO_STDERR;
        out->id = req->id;
        break;
    default:
        snprintf(err, COMMAND_ERR_LEN, "tail engine: unknown open `%s`",
                 e->c.name);
        return -EINVAL;
    }
    for (int i = 0; i < req->nopts; i++) {
        struct word w = req->opts[i], v;
        if (is_tail && word_option(w, "start", &v)) {
            if ((rc = parse_start(v, out, err)) < 0)
                return rc;
        } else if (is_tail && word_option(w, "follow", &v)) {
            if (word_is(v, "descriptor"))
                out->flags |= PROTO_TAIL_FOLLOW_DESCRIPTOR;
            else if (!word_is(v, "name")) {
                snprintf(err, COMMAND_ERR_LEN,
                         "follow: expected name or descriptor");
                return -EINVAL;
            }
        } else {
            snprintf(err, COMMAND_ERR_LEN, "unknown option `%.*s`",
                     (int)(w.len > 64 ? 64 : w.len), w.p);
            return -EINVAL;
        }
    }
    return 0;
}

static int
tail_check(const struct engine_req *req, char *err)
{
    struct agent_open out;
    char path[PROTO_MAX_PATH];

    return tail_parse(req, &out, path, err);
}

static int
tail_open(struct stream *s, void *ctx, const struct engine_req *req,
          engine_opened_fn *opened, void *arg, void **state, char *err)
{
    struct agent_client *c = ctx;
    struct agent_open areq;
    struct tail *t;
    char path[PROTO_MAX_PATH];
    int rc;

    if (!c) {
        snprintf(err, COMMAND_ERR_LEN, "%s: no agent", req->e->c.name);
        return -EINVAL;
    }
    if ((rc = tail_parse(req, &areq, path, err)) < 0)
        return rc;
    if (!(t = calloc(1, sizeof(*t)))) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    t->s = s;
    t->opened = opened;
    t->arg = arg;
    snprintf(t->kind, sizeof(t->kind), "%s", req->e->c.name);
    if (areq.type == PROTO_OPEN_TAIL)
        snprintf(t->detail, sizeof(t->detail), "%s", path);
    else if (areq.type == PROTO_OPEN_FD)
        snprintf(t->detail, sizeof(t->detail), "file#%" PRIu64, areq.id);
    else
        snprintf(t->detail, sizeof(t->detail), "proc#%" PRIu64, areq.id);
    rc = agent_client_open(c, &areq, &tail_cbs, t, &t->ch);
    if (rc < 0) {
        const char *why = rc == -ENOTCONN ? "the VM's agent is not connected"
                                          : strerror(-rc);
        snprintf(err, COMMAND_ERR_LEN, "%s %.128s: %s", t->kind, t->detail,
                 why);
        free(t);
        return rc;
    }
    *state = t;
    stream_set_source(s, &tail_engine, t);
    return 0;
}

static void
tail_stop(void *state)
{
    struct tail *t = state;
    if (!t)
        return;
    agent_client_cancel(t->ch);
    free(t);
}

static void
tail_info(void *state, char *buf, size_t len)
{
    struct tail *t = state;
    char source[sizeof(t->kind) + sizeof(t->detail)];
    size_t n;

    /* The path and the agent's note are escaped (text.c). */
    snprintf(source, sizeof(source), "%s %s", t->kind, t->detail);
    n = text_keyval(buf, len, "source", source);
    if (n + 1 >= len)
        return;
    n += (size_t)snprintf(buf + n, len - n,
                          "agent_channel: %u\nstart: %" PRIu64
                          "\ntruncations: %u\nrotations: %u\n",
                          t->ch ? agent_client_chan_id(t->ch) : 0, t->start,
                          t->truncations, t->rotations);
    if (n < len && t->last_note[0])
        text_keyval(buf, len, "last_event", t->last_note);
}

const struct engine_ops tail_engine = {
        .name = "tail",
        .check = tail_check,
        .open = tail_open,
        .stop = tail_stop,
        .info = tail_info,
};
