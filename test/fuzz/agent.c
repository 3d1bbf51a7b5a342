/*
 * test/fuzz/agent.c - libFuzzer target for the agent's side of the wire:
 * guest/host.c (frame decoding, dispatch of every request type, the
 * channel table, credit, the round-robin sender) driven through a real
 * socketpair and real reactor turns, as a host would drive it.
 *
 * The input is what a host sends after its hello (the target sends a
 * valid hello first, so every input reaches dispatch). It is sent a
 * frame at a time, each acted on before the next, so that the model
 * below knows what the agent had seen when it answered; what does not
 * decode is sent as it is (the agent must end the session). The agent's
 * handlers (follow.c, job.c, fileio.c) are replaced by the stubs below:
 * no input can make the fuzzer run a process or touch a file. The stubs
 * answer from the request's own values: stream opens are acknowledged
 * with a source of up to 120 KB of known bytes (or refused), requests get
 * replies or errors, and some waits stay parked until the host closes
 * their channel or goes away.
 *
 * Invariants checked on what the agent sends back:
 *  - it decodes: whole frames, agent-to-host types only, well formed for
 *    their type, hello_ok first (and after every hello);
 *  - data only on stream channels the host opened, after their ack,
 *    never beyond the credit the host gave, and the bytes are the
 *    source's, in order; a clean end only after the whole source;
 *  - a request channel gets one reply or error; nothing follows an end,
 *    an error or a reply on a channel;
 *  - nothing crashes or leaks (ASan; every source freed, every parked
 *    request cancelled when the session ends), and the output for one
 *    input stays bounded.
 *
 * Seeds: test/fuzz/corpus/agent (every host request type, and streams
 * with credit, close and crossing frames) are written by
 *   PROVIUM_FUZZ_SEEDS=test/fuzz/corpus/agent build/fuzz/test/fuzz_agent
 * This target includes guest/host.c itself (so it sees struct chan):
 * a new handler that host.c calls needs a stub here.
 */

/* The session itself, compiled into the target: white box, so the stubs
 * can see a channel's id (struct chan is private to host.c). */
#include "host.c"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include "protomsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK FUZZ_CHECK
#define MAX_CH 8192
#define OUT_BOUND (64u << 20) /* the agent's output for one input */
#define SRC_UNIT 40000        /* a source is 0 to 3 of these */

/* ---- stubs for the agent's handlers -------------------------------- */

static bool verbose;

void
agent_log(const char *fmt, ...)
{
    va_list ap;
    if (!verbose)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool
agent_log_verbose(void)
{
    return false;
}

/* Byte i of the source on channel id: position-dependent, so any loss,
 * duplication or reordering shows. */
static uint8_t
src_byte(uint32_t id, uint64_t i)
{
    return (uint8_t)((i * 131 + id * 7 + (i >> 8)) & 0xff);
}

struct src {
    struct chan *ch;
    uint64_t off, total;
};

static unsigned live_srcs;

static ssize_t
src_read(void *arg, void *buf, size_t len)
{
    struct src *s = arg;
    uint8_t *p = buf;

    if (s->off == s->total) {
        host_end(s->ch, 0, PROTO_END_EOF, NULL);
        return 0;
    }
    if (len > s->total - s->off)
        len = (size_t)(s->total - s->off);
    for (size_t i = 0; i < len; i++)
        p[i] = src_byte(s->ch->id, s->off + i);
    s->off += len;
    return (ssize_t)len;
}

static void
src_free(void *arg)
{
    free(arg);
    live_srcs--;
}

static const struct source_ops src_ops = {.read = src_read, .free = src_free};

static void
stream_open(struct chan *ch, uint64_t key)
{
    if (key % 5 == 4) {
        host_error(ch, -ENOENT, "stub: no such source %llu",
                   (unsigned long long)key);
        return;
    }
    struct src *s = calloc(1, sizeof(*s));
    CHECK(s);
    s->ch = ch;
    s->total = (key % 4) * SRC_UNIT;
    live_srcs++;
    host_ack(ch, key, &src_ops, s);
}

static void
stub_open_tail(struct agent *a, struct chan *ch, const union proto_body *req)
{
    CHECK(req->open.path[0] && req->open.start <= PROTO_START_BACK);
    stream_open(ch, strlen(req->open.path) + req->open.start +
                            req->open.offset);
}

static void
stub_open_fd(struct agent *a, struct chan *ch, const union proto_body *req)
{
    stream_open(ch, req->open.handle);
}

static void
stub_open_proc(struct agent *a, struct chan *ch, const union proto_body *req)
{
    CHECK(req->open.which == PROTO_STDOUT || req->open.which == PROTO_STDERR);
    stream_open(ch, req->open.proc + req->open.which);
}

static uint64_t next_proc;

static void
stub_exec(struct agent *a, struct chan *ch, const union proto_body *req)
{
    const struct proto_exec *x = &req->exec;
    union proto_body rp = {.exec_reply = {.proc = ++next_proc}};

    CHECK(x->cwd && x->argc >= 1 && x->argv[x->argc] == NULL);
    CHECK(x->env[x->envc] == NULL);
    for (unsigned i = 0; i < x->argc; i++)
        CHECK(x->argv[i] != NULL);
    for (unsigned i = 0; i < x->envc; i++)
        CHECK(x->env[i] != NULL);
    if (x->argv[0][0] == 0) {
        host_error(ch, -ENOENT, "stub: exec: empty program");
        return;
    }
    host_reply(ch, &rp);
}

/* Parked waits: never answered by the stub; the session cancels them
 * when the host closes the channel or the session ends. */
struct parked {
    bool used;
};
static struct parked parked[64];
static unsigned nparked;

static void
parked_cancel(void *arg)
{
    struct parked *p = arg;
    CHECK(p->used);
    p->used = false;
    nparked--;
}

static void
stub_wait(struct agent *a, struct chan *ch, const union proto_body *req)
{
    uint64_t id = req->wait.proc;
    union proto_body rp = {
            .wait_reply = {.how = PROTO_EXITED, .value = (uint32_t)id}};

    if (id % 2 == 0) {
        for (size_t i = 0; i < 64; i++)
            if (!parked[i].used) {
                parked[i].used = true;
                nparked++;
                host_park(ch, parked_cancel, &parked[i]);
                return;
            }
    }
    host_reply(ch, &rp);
}

static void
stub_kill(struct agent *a, struct chan *ch, const union proto_body *req)
{
    if (req->kill.proc == 0)
        host_error(ch, -ESRCH, "stub: no process 0");
    else
        host_reply(ch, NULL);
}

static void
stub_stdin(struct agent *a, struct chan *ch, const union proto_body *req)
{
    union proto_body rp = {
            .input_reply = {.written = (uint32_t)req->input.data.len}};
    CHECK(req->input.data.len <= PROTO_MAX_DATA);
    host_reply(ch, &rp);
}

static void
stub_reply_empty(struct agent *a, struct chan *ch, const union proto_body *req)
{
    host_reply(ch, NULL);
}

static void
stub_fopen(struct agent *a, struct chan *ch, const union proto_body *req)
{
    const struct proto_fopen *o = &req->fopen;
    union proto_body rp = {.fopen_reply = {.handle = strlen(o->path)}};
    CHECK(o->path[0] && !(o->flags & ~PROTO_O_ALL) && o->mode <= 07777);
    host_reply(ch, &rp);
}

static void
stub_fread(struct agent *a, struct chan *ch, const union proto_body *req)
{
    static uint8_t data[PROTO_MAX_DATA];
    size_t n = req->fread.count;
    union proto_body rp;

    CHECK(n <= PROTO_MAX_DATA);
    n = req->fread.handle % 2 ? n : 0;
    memset(data, 'r', n);
    rp.fread_reply.data = (struct proto_bytes){data, n};
    host_reply(ch, &rp);
}

static void
stub_fwrite(struct agent *a, struct chan *ch, const union proto_body *req)
{
    union proto_body rp = {
            .fwrite_reply = {.written = (uint32_t)req->fwrite.data.len}};
    host_reply(ch, &rp);
}

static void
stub_fseek(struct agent *a, struct chan *ch, const union proto_body *req)
{
    union proto_body rp = {
            .fseek_reply = {.offset = (uint64_t)req->fseek.offset}};
    CHECK(req->fseek.whence <= PROTO_SEEK_END);
    if (req->fseek.offset < 0)
        host_error(ch, -EINVAL, "stub: negative offset");
    else
        host_reply(ch, &rp);
}

static void
stub_stat(struct agent *a, struct chan *ch, const union proto_body *req)
{
    union proto_body rp = {.stat_reply = {.size = strlen(req->stat.path),
                                          .mode = 0100644,
                                          .mtime_ns = -1}};
    host_reply(ch, &rp);
}

/* The agent's request table (agent.c's), with the stubs. */
static host_request_fn *const stubs[PROTO_TYPE_MAX] = {
        [PROTO_OPEN_TAIL] = stub_open_tail,
        [PROTO_OPEN_FD] = stub_open_fd,
        [PROTO_OPEN_PROC] = stub_open_proc,
        [PROTO_EXEC] = stub_exec,
        [PROTO_WAIT] = stub_wait,
        [PROTO_KILL] = stub_kill,
        [PROTO_STDIN] = stub_stdin,
        [PROTO_STDIN_CLOSE] = stub_reply_empty,
        [PROTO_FOPEN] = stub_fopen,
        [PROTO_FREAD] = stub_fread,
        [PROTO_FWRITE] = stub_fwrite,
        [PROTO_FSEEK] = stub_fseek,
        [PROTO_FCLOSE] = stub_reply_empty,
        [PROTO_STAT] = stub_stat,
};

/* ---- the host side: a model of what it sent ------------------------ */

enum ch_kind { CH_NONE, CH_STREAM, CH_REQUEST };

struct hch {
    enum ch_kind kind;
    unsigned type; /* the open or request that made it */
    bool acked, done, closed;
    uint64_t credit; /* granted, minus data received */
    uint64_t got;    /* data bytes received */
};

static struct hch chans[MAX_CH];
static bool hello_ok;

/* A frame the host sent (and the agent has now acted on). */
static struct proto_msg sent;

static void
host_sent(const struct proto_frame *f)
{
    const struct proto_def *d = proto_def(f->type);
    uint32_t id = f->channel;

    if (id == 0 || id >= MAX_CH || !d)
        return;
    struct hch *c = &chans[id];
    /* A body the table refuses ends the session (malformed) or is
     * answered with an error (a bad value): either way no data. */
    bool ok = proto_msg_decode(f, 0, &sent) == 0;
    if ((d->flags & (PROTO_OPENS | PROTO_REQUEST)) && c->kind == CH_NONE) {
        c->kind = d->flags & PROTO_OPENS ? CH_STREAM : CH_REQUEST;
        c->type = f->type;
        c->credit = ok && (d->flags & PROTO_OPENS) ? sent.body.open.credit : 0;
    } else if (f->type == PROTO_CREDIT && ok && c->kind == CH_STREAM &&
               !c->closed) {
        c->credit += sent.body.credit.bytes;
        if (c->credit > 0xffffffffull)
            c->credit = 0xffffffffull;
    } else if (f->type == PROTO_CLOSE) {
        c->closed = true;
    }
}

/* A frame the agent sent. */
static void
agent_sent(const struct proto_frame *f)
{
    struct hch *rc = f->channel < MAX_CH ? &chans[f->channel] : NULL;

    CHECK(proto_type_from_agent(f->type));
    /* Taken by the table (a reply: as its request's reply, every value
     * in range), and written as the codec writes it. The model keeps no
     * request type past MAX_CH. */
    if (f->type != PROTO_REPLY || (rc && rc->kind == CH_REQUEST))
        CHECK(msg_check_roundtrip(f->type,
                                  f->type == PROTO_REPLY ? rc->type : 0,
                                  f->body, f->len) == 0);
    if (f->type == PROTO_HELLO_OK) {
        /* The answer to a hello: a new session, every channel dropped
         * (what came before it belongs to the old one). */
        CHECK(f->channel == 0);
        memset(chans, 0, sizeof(chans));
        hello_ok = true;
        return;
    }
    CHECK(hello_ok);
    CHECK(f->channel != 0 || f->type == PROTO_ERROR);
    if (f->channel == 0 || f->channel >= MAX_CH)
        return;
    struct hch *c = &chans[f->channel];
    CHECK(!c->done); /* nothing after an end, an error or a reply */
    switch (f->type) {
    case PROTO_ACK:
        CHECK(c->kind == CH_STREAM && !c->acked);
        c->acked = true;
        break;
    case PROTO_DATA:
        CHECK(c->kind == CH_STREAM && c->acked);
        CHECK(f->len > 0 && f->len <= PROTO_MAX_DATA);
        CHECK(f->len <= c->credit);
        c->credit -= f->len;
        for (size_t i = 0; i < f->len; i++)
            CHECK(f->body[i] == src_byte(f->channel, c->got + i));
        c->got += f->len;
        break;
    case PROTO_NOTE:
        CHECK(c->kind == CH_STREAM && c->acked);
        break;
    case PROTO_END:
        CHECK(c->kind == CH_STREAM && c->acked);
        if (msg_decoded.body.end.err == 0)
            CHECK(c->got % SRC_UNIT == 0); /* after the whole source */
        c->done = true;
        break;
    case PROTO_ERROR:
        CHECK(c->kind != CH_NONE && !c->acked);
        c->done = true;
        break;
    case PROTO_REPLY:
        CHECK(c->kind == CH_REQUEST);
        c->done = true;
        break;
    default:
        CHECK(!"an agent type the model does not know");
    }
}

/* ---- the driver ---------------------------------------------------- */

static struct reactor *R;
static struct agent A;
static struct proto_decoder in_dec, out_dec;
static bool closed_cb_ran;

static void
on_closed(void *arg)
{
    closed_cb_ran = true;
}

/* Read what the agent sent and check it. Returns the bytes read. */
static size_t
read_agent(int fd, size_t *total)
{
    static uint8_t buf[256 * 1024];
    size_t got = 0;

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        got += (size_t)n;
        for (size_t pos = 0; pos < (size_t)n;) {
            struct proto_frame f;
            size_t used;
            int rc = proto_decode(&out_dec, buf + pos, (size_t)n - pos, &used,
                                  &f);
            CHECK(rc >= 0); /* the agent never sends a bad frame */
            pos += used;
            if (rc == 1)
                agent_sent(&f);
        }
    }
    *total += got;
    CHECK(*total <= OUT_BOUND);
    return got;
}

/* Run the agent until nothing moves: reactor turns, output read back. */
static void
settle(int fd, size_t *out_total)
{
    for (int idle = 0; idle < 3;) {
        for (int i = 0; i < 4; i++)
            CHECK(reactor_run_once(R, 0) == 0);
        idle = read_agent(fd, out_total) ? 0 : idle + 1;
    }
}

/* Write all of buf, letting the agent run when the socket is full; stop
 * if the agent ended the session. */
static void
send_all(int fd, const uint8_t *p, size_t n, size_t *out_total)
{
    while (n > 0 && !closed_cb_ran) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        CHECK(w < 0 && (errno == EAGAIN || errno == EPIPE));
        if (errno == EPIPE)
            return;
        settle(fd, out_total);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t hello[64];
    union proto_body hb = {.hello = {.magic = PROTO_MAGIC,
                                     .version_min = PROTO_VERSION,
                                     .version_max = PROTO_VERSION}};
    struct host *s;
    size_t pos = 0, out_total = 0;
    int sv[2];

    memset(chans, 0, sizeof(chans));
    hello_ok = false;
    closed_cb_ran = false;
    next_proc = 0;
    proto_decoder_reset(&in_dec);
    proto_decoder_reset(&out_dec);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                     sv) == 0);
    CHECK(host_new(&A, sv[0], sv[0], on_closed, NULL, &s) == 0);
    ssize_t hl = proto_msg_encode(hello, sizeof(hello), PROTO_HELLO, 0, 0, &hb);
    CHECK(hl > 0);
    send_all(sv[1], hello, (size_t)hl, &out_total);
    settle(sv[1], &out_total);
    CHECK(hello_ok);

    while (pos < size && !closed_cb_ran) {
        struct proto_frame f;
        size_t used;
        int rc = proto_decode(&in_dec, data + pos, size - pos, &used, &f);
        if (rc == 1) {
            host_sent(&f);
            send_all(sv[1], data + pos, used, &out_total);
            settle(sv[1], &out_total);
            pos += used;
        } else {
            send_all(sv[1], data + pos, size - pos, &out_total);
            settle(sv[1], &out_total);
            pos = size;
        }
    }
    host_free(s);
    settle(sv[1], &out_total);
    close(sv[1]);
    CHECK(live_srcs == 0);
    CHECK(nparked == 0);
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("PROVIUM_FUZZ_SEEDS");
    static uint8_t buf[8 * PROTO_MAX_FRAME];

    verbose = getenv("PROVIUM_FUZZ_VERBOSE") != NULL;
    signal(SIGPIPE, SIG_IGN);
    CHECK(reactor_new(&R) == 0);
    A.r = R;
    A.requests = stubs;
    A.spool_dir = "/nonexistent";
    A.instance = 0x5eed; /* hello_ok's (version 2): never 0 */
    CHECK(proto_decoder_init(&in_dec) == 0);
    CHECK(proto_decoder_init(&out_dec) == 0);
    if (!dir)
        return 0;
    /* Every host request alone on channel 1, and all of them on channels
     * 1, 2, ...; then streams with credit, a close crossing data, and a
     * request on a used channel, and a second hello. */
    size_t off = 0;
    uint32_t ch = 1;
    for (size_t i = 0; i < N_MSG_TYPES; i++) {
        unsigned t = msg_types[i];
        char name[64];
        if (!proto_type_from_host(t) || t == PROTO_HELLO ||
            t == PROTO_CREDIT || t == PROTO_CLOSE)
            continue;
        size_t len = msg_sample(t, 0, 1, 1, buf, sizeof(buf));
        snprintf(name, sizeof(name), "%s", proto_type_name(t));
        seed_write(dir, name, buf, len);
        off += msg_sample(t, 0, ch++, (unsigned)i, buf + off, sizeof(buf) - off);
    }
    seed_write(dir, "all-requests", buf, off);
    off = 0;
    for (unsigned v = 0; v < 4; v++)
        off += msg_sample(PROTO_OPEN_TAIL, 0, 1 + v, v, buf + off,
                          sizeof(buf) - off);
    off += msg_sample(PROTO_CREDIT, 0, 2, 3, buf + off, sizeof(buf) - off);
    off += msg_sample(PROTO_CLOSE, 0, 3, 0, buf + off, sizeof(buf) - off);
    off += msg_sample(PROTO_CREDIT, 0, 3, 0, buf + off, sizeof(buf) - off);
    off += msg_sample(PROTO_WAIT, 0, 6, 1, buf + off, sizeof(buf) - off);
    off += msg_sample(PROTO_CLOSE, 0, 6, 0, buf + off, sizeof(buf) - off);
    seed_write(dir, "streams-credit-close", buf, off);
    off = msg_sample(PROTO_WAIT, 0, 4, 1, buf, sizeof(buf));
    off += msg_sample(PROTO_WAIT, 0, 4, 1, buf + off, sizeof(buf) - off);
    seed_write(dir, "channel-reused", buf, off);
    off = msg_sample(PROTO_OPEN_PROC, 0, 1, 2, buf, sizeof(buf));
    off += msg_sample(PROTO_HELLO, 0, 0, 0, buf + off, sizeof(buf) - off);
    off += msg_sample(PROTO_OPEN_PROC, 0, 1, 2, buf + off, sizeof(buf) - off);
    seed_write(dir, "second-hello", buf, off);
    exit(0);
}
