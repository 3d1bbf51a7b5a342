/*
 * test/fuzz/open.c - libFuzzer target for the open commands: the words
 * after `tail_file VM`, `file_tail_stream VM`, `fd_stream VM`,
 * `proc_stdout_stream VM`, `proc_stderr_stream VM`, `console VM` and
 * `capture IFACE` (SPEC §5.1), parsed by command_parse and the engine
 * registry's engine_parse (the options every open takes, the engine's
 * own option parser through its check) and handed to the engine's open
 * (streams/tail.c, console.c, capture.c) as the daemon does.
 *
 * Input: byte 0 picks the open command (engine_table, mod its size); the
 * rest is appended to its fixed prefix as the command's remaining words. The
 * tail engine talks to a fake agent (a socketpair whose far end answered the
 * handshake and is drained, never answering opens); the console engine
 * to a console socket that does not exist (it retries, never connects);
 * captures are on an interface that does not exist, so no input can
 * capture real traffic.
 *
 * Invariants checked: the parse answers 0 or -EINVAL, a refusal with a
 * message; the request names the command's own entry, and the engine's
 * words exclude site=, test= and keep; open answers 0 or a negative
 * errno; a refusal carries a message (NUL-terminated, within
 * COMMAND_ERR_LEN) and leaves the stream without a source; a success
 * sets a state and a kind, and
 * `opened` runs at most once, never with an error after open succeeded
 * at once; closing the stream stops the source (nothing leaks: ASan);
 * the same words give the same verdict twice.
 *
 * Run: fuzz_open -max_total_time=60 test/fuzz/corpus/open
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct reactor *R;
static struct agent_client *agent;
static struct console *con;
static int agent_peer = -1;
static char spool_dir[256];

struct opened {
    int calls;
    int err;
};

static void
on_opened(struct stream *s, int err, const char *msg, void *arg)
{
    struct opened *o = arg;
    o->calls++;
    o->err = err;
}

/* Read and drop what the client sent the fake agent. */
static void
drain_peer(void)
{
    char buf[65536];
    while (read(agent_peer, buf, sizeof(buf)) > 0)
        ;
}

static void
run_turns(int n)
{
    for (int i = 0; i < n; i++)
        CHECK(reactor_run_once(R, 0) == 0);
}

/* The prefix of engine k's command: its name and the VM or interface. */
static void
prefix(unsigned k, char *buf, size_t len)
{
    const struct engine *e = &engine_table[k];

    snprintf(buf, len, "%s %s ", e->c.name,
             e->ctx == ENGINE_CTX_NONE ? "pvfz-none0" : "vm");
}

/* One open of line; returns its verdict and message. */
static int
open_once(const char *line, size_t len, unsigned k, char *msg)
{
    const struct engine *e = &engine_table[k];
    void *const ctx[] = {[ENGINE_CTX_NONE] = NULL,
                         [ENGINE_CTX_AGENT] = agent,
                         [ENGINE_CTX_CONSOLE] = con};
    struct stream_config cfg = {.spool_dir = spool_dir, .noun = e->noun};
    static struct engine_req req;
    struct command cmd;
    struct stream *s;
    struct opened o = {0};
    void *state = NULL;
    int rc;

    memset(msg, 0x55, COMMAND_ERR_LEN);
    if (command_parse(&cmd, line, len, msg) < 0) {
        CHECK(strnlen(msg, COMMAND_ERR_LEN) < COMMAND_ERR_LEN);
        return 1; /* not a command: nothing to open */
    }
    rc = engine_parse(&cmd, &req, msg);
    if (rc < 0) {
        CHECK(rc == -EINVAL);
        size_t n = strnlen(msg, COMMAND_ERR_LEN);
        CHECK(n > 0 && n < COMMAND_ERR_LEN);
        command_free(&cmd);
        return rc;
    }
    CHECK(req.e == e);
    for (int i = 0; i < req.nopts; i++) {
        struct word v;
        CHECK(!word_option(req.opts[i], "site", &v));
        CHECK(!word_option(req.opts[i], "test", &v));
        CHECK(!word_is(req.opts[i], "keep"));
    }
    CHECK(stream_new(R, &cfg, &s) == 0);
    rc = engine_open(s, ctx[e->ctx], &req, on_opened, &o, &state, msg);
    if (rc < 0) {
        CHECK(rc >= -4095);
        size_t n = strnlen(msg, COMMAND_ERR_LEN);
        CHECK(n > 0 && n < COMMAND_ERR_LEN);
        CHECK(o.calls == 0);
    } else {
        CHECK(rc == 0);
        CHECK(state != NULL);
        CHECK(o.calls <= 1 && (o.calls == 0 || o.err == 0));
        char info[1024] = "";
        engine_info(e, state, info, sizeof(info));
        CHECK(strnlen(info, sizeof(info)) < sizeof(info));
        CHECK(*engine_kind(e, state) != 0);
    }
    stream_close(s);
    stream_unref(s);
    command_free(&cmd);
    run_turns(2);
    CHECK(o.calls <= 1);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[COMMAND_MAX_LINE + 64];
    char msg1[COMMAND_ERR_LEN], msg2[COMMAND_ERR_LEN];

    if (size < 1 || size - 1 > COMMAND_MAX_LINE)
        return 0;
    unsigned k = data[0] % engine_count;
    char pre[64];
    prefix(k, pre, sizeof(pre));
    size_t plen = strlen(pre);
    memcpy(line, pre, plen);
    memcpy(line + plen, data + 1, size - 1);
    int rc1 = open_once(line, plen + size - 1, k, msg1);
    int rc2 = open_once(line, plen + size - 1, k, msg2);
    CHECK(rc1 == rc2);
    if (rc1 < 0 && engine_table[k].ctx != ENGINE_CTX_NONE) /* pcap's text */
        CHECK(strcmp(msg1, msg2) == 0);
    drain_peer();
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int sv[2];
    uint8_t buf[PROTO_MAX_FRAME];
    struct proto_writer w;
    const char *t = getenv("TMPDIR");

    snprintf(spool_dir, sizeof(spool_dir), "%s", t && *t ? t : "/tmp");
    CHECK(reactor_new(&R) == 0);
    /* A fake agent: answer the handshake, then only swallow frames. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    agent_peer = sv[1];
    CHECK(agent_client_new_fd(R, sv[0], &agent) == 0);
    proto_writer_init(&w, buf, sizeof(buf));
    proto_frame_begin(&w, PROTO_HELLO_OK, 0);
    proto_put_u32(&w, PROTO_MAGIC);
    proto_put_u32(&w, PROTO_VERSION);
    proto_put_str(&w, "Linux", 5);
    proto_put_str(&w, "fuzz", 4);
    proto_put_str(&w, "0.1.0", 5);
    proto_put_u64(&w, 0x5eed); /* version 2: the agent's instance */
    ssize_t n = proto_frame_end(&w);
    CHECK(n > 0 && write(agent_peer, buf, (size_t)n) == n);
    for (int i = 0; i < 100 && agent_client_state(agent) != AGENT_UP; i++)
        CHECK(reactor_run_once(R, clock_now() + 10000) == 0);
    CHECK(agent_client_state(agent) == AGENT_UP);
    CHECK(fcntl(agent_peer, F_SETFL, O_NONBLOCK) == 0);
    drain_peer();
    CHECK(console_new(R, "/nonexistent/provium-fuzz/console.sock", spool_dir,
                      &con) == 0);
    return 0;
}
