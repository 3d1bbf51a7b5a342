/*
 * test/fuzz/open.c - libFuzzer target for the engines' open commands:
 * the words after `tail_file VM`, `file_tail_stream VM`, `fd_stream VM`,
 * `proc_stdout_stream VM`, `proc_stderr_stream VM`, `console VM` and
 * `capture IFACE` (SPEC §5.1), parsed by command_parse and handed to the
 * engine's open (streams/tail.c, console.c, capture.c) as the daemon
 * does.
 *
 * Input: byte 0 picks the open command (mod 7); the rest is appended to
 * its fixed prefix as the command's remaining words. The tail engine
 * talks to a fake agent (a socketpair whose far end answered the
 * handshake and is drained, never answering opens); the console engine
 * to a console socket that does not exist (it retries, never connects);
 * captures are on an interface that does not exist, so no input can
 * capture real traffic.
 *
 * Invariants checked: open answers 0 or a negative errno; a refusal
 * carries a message (NUL-terminated, within COMMAND_ERR_LEN) and leaves
 * the stream without a source; a success sets a state, and `opened` runs
 * at most once, never with an error after open succeeded at once;
 * closing the stream stops the source (nothing leaks: ASan); the same
 * words give the same verdict twice.
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

static const struct {
    const char *prefix;
    int engine; /* 0 tail, 1 console, 2 capture */
} kinds[] = {
        {"tail_file vm ", 0},          {"file_tail_stream vm ", 0},
        {"fd_stream vm ", 0},          {"proc_stdout_stream vm ", 0},
        {"proc_stderr_stream vm ", 0}, {"console vm ", 1},
        {"capture pvfz-none0 ", 2},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

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

/* One open of line; returns its verdict and message. */
static int
open_once(const char *line, size_t len, int engine, char *msg)
{
    static const struct engine_ops *const ops[] = {&tail_engine,
                                                   &console_engine,
                                                   &capture_engine};
    void *const ctx[] = {agent, con, NULL};
    struct stream_config cfg = {.spool_dir = spool_dir, .noun = "stream"};
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
    CHECK(stream_new(R, &cfg, &s) == 0);
    rc = ops[engine]->open(s, ctx[engine], &cmd, 1, on_opened, &o, &state,
                           msg);
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
        ops[engine]->info(state, info, sizeof(info));
        CHECK(strnlen(info, sizeof(info)) < sizeof(info));
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
    unsigned k = data[0] % N_KINDS;
    size_t plen = strlen(kinds[k].prefix);
    memcpy(line, kinds[k].prefix, plen);
    memcpy(line + plen, data + 1, size - 1);
    int rc1 = open_once(line, plen + size - 1, kinds[k].engine, msg1);
    int rc2 = open_once(line, plen + size - 1, kinds[k].engine, msg2);
    CHECK(rc1 == rc2);
    if (rc1 < 0 && kinds[k].engine != 2) /* pcap's text may vary */
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
