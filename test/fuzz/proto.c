/*
 * test/fuzz/proto.c - libFuzzer target for the agent wire codec
 * (streams/proto.c): the input is a byte stream as it would arrive on an
 * agent connection.
 *
 * Invariants checked on every input:
 *  - decoding it in one piece, one byte at a time and in chunks of sizes
 *    drawn from the input give exactly the same frames (type, channel,
 *    body bytes, end offset) and the same error at the same offset: the
 *    decoder is resumable at every byte;
 *  - proto_decode never reports more used than given, consumes all of
 *    its input when it answers "need more", and hands out no body over
 *    PROTO_MAX_BODY;
 *  - every frame written again with proto_writer (header + body) is the
 *    input's bytes;
 *  - every body the message table takes for its type (a reply: for any
 *    request) decodes with proto_msg_decode and is encoded again by
 *    proto_msg_encode to the same bytes; one with a value out of range
 *    says which.
 *
 * Seeds: test/fuzz/corpus/proto has one valid frame of every message
 * type, and a few streams of several; they are written by
 *   PROVIUM_FUZZ_SEEDS=test/fuzz/corpus/proto build/fuzz/test/fuzz_proto
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "protomsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_FRAMES 4096

struct frame {
    unsigned type;
    uint32_t channel;
    size_t len;
    size_t end;      /* input offset just past the frame */
    uint64_t digest; /* of the body bytes */
};

struct run {
    struct frame f[MAX_FRAMES];
    size_t n;
    int err;        /* 0, or the error that stopped decoding */
    size_t err_at;  /* input offset when it was reported */
    bool idle;      /* between frames at the end of the input */
};

static uint64_t
digest(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ n;
}

/* Decode data in chunks: chunk(i) gives the size of the i-th feed. */
static void
decode_run(struct proto_decoder *d, const uint8_t *data, size_t size,
           size_t (*chunk)(size_t i, void *arg), void *arg, struct run *out,
           bool check_frames)
{
    size_t pos = 0, feed = 0;

    proto_decoder_reset(d);
    memset(out, 0, sizeof(*out));
    while (pos < size) {
        size_t end = pos + chunk(feed++, arg);
        if (end > size || end <= pos)
            end = size;
        while (pos < end) {
            struct proto_frame f;
            size_t used;
            int rc = proto_decode(d, data + pos, end - pos, &used, &f);
            FUZZ_CHECK(used <= end - pos);
            pos += used;
            if (rc < 0) {
                FUZZ_CHECK(rc == -EMSGSIZE || rc == -EPROTO);
                out->err = rc;
                out->err_at = pos;
                out->idle = false;
                return;
            }
            if (rc == 0) {
                FUZZ_CHECK(pos == end); /* "need more": all consumed */
                continue;
            }
            FUZZ_CHECK(rc == 1);
            FUZZ_CHECK(f.len <= PROTO_MAX_BODY);
            FUZZ_CHECK(pos >= PROTO_HEADER_LEN + f.len);
            FUZZ_CHECK(proto_type_from_host(f.type) ||
                       proto_type_from_agent(f.type));
            FUZZ_CHECK(f.channel <= PROTO_MAX_CHANNEL);
            FUZZ_CHECK(strcmp(proto_type_name(f.type), "?") != 0);
            if (out->n < MAX_FRAMES)
                out->f[out->n++] = (struct frame){
                        .type = f.type,
                        .channel = f.channel,
                        .len = f.len,
                        .end = pos,
                        .digest = digest(f.body, f.len),
                };
            if (!check_frames)
                continue;
            /* The frame written again is the input's bytes. */
            static uint8_t again[PROTO_MAX_FRAME];
            struct proto_writer w;
            proto_writer_init(&w, again, sizeof(again));
            proto_frame_begin(&w, f.type, f.channel);
            proto_put_raw(&w, f.body, f.len);
            FUZZ_CHECK(proto_frame_end(&w) ==
                       (ssize_t)(PROTO_HEADER_LEN + f.len));
            FUZZ_CHECK(memcmp(again, data + pos - PROTO_HEADER_LEN - f.len,
                              PROTO_HEADER_LEN + f.len) == 0);
            if (f.type != PROTO_REPLY)
                msg_check_roundtrip(f.type, 0, f.body, f.len);
            else /* a reply's layout is its request's: try them all */
                for (unsigned r = 0; r < PROTO_TYPE_MAX; r++)
                    if (proto_def(r) && (proto_def(r)->flags & PROTO_REQUEST))
                        msg_check_roundtrip(f.type, r, f.body, f.len);
        }
    }
    out->idle = proto_decoder_idle(d);
}

static size_t
whole(size_t i, void *arg)
{
    return SIZE_MAX / 2;
}

static size_t
one(size_t i, void *arg)
{
    return 1;
}

/* Chunk sizes 1..97 from a generator seeded by the input. */
static size_t
drawn(size_t i, void *arg)
{
    uint64_t *x = arg;
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return 1 + (size_t)(*x % 97);
}

static void
same_runs(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        FUZZ_CHECK(a->f[i].type == b->f[i].type);
        FUZZ_CHECK(a->f[i].channel == b->f[i].channel);
        FUZZ_CHECK(a->f[i].len == b->f[i].len);
        FUZZ_CHECK(a->f[i].end == b->f[i].end);
        FUZZ_CHECK(a->f[i].digest == b->f[i].digest);
    }
    FUZZ_CHECK(a->err == b->err);
    FUZZ_CHECK(a->err_at == b->err_at);
    FUZZ_CHECK(a->idle == b->idle);
}

static struct proto_decoder dec;
static struct run runs[3];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t x = digest(data, size) | 1;

    decode_run(&dec, data, size, whole, NULL, &runs[0], true);
    decode_run(&dec, data, size, one, NULL, &runs[1], false);
    same_runs(&runs[0], &runs[1]);
    decode_run(&dec, data, size, drawn, &x, &runs[2], false);
    same_runs(&runs[0], &runs[2]);
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("PROVIUM_FUZZ_SEEDS");
    static uint8_t buf[4 * PROTO_MAX_FRAME];

    if (proto_decoder_init(&dec) < 0)
        abort();
    if (!dir)
        return 0;
    /* One frame of each type; then each type's variants back to back.
     * A reply is the reply to an exec here; "reply-<request>" seeds have
     * every request's. */
    for (size_t i = 0; i < N_MSG_TYPES; i++) {
        unsigned t = msg_types[i], req = t == PROTO_REPLY ? PROTO_EXEC : 0;
        char name[64];
        size_t len = msg_sample(t, req,
                                t == PROTO_HELLO || t == PROTO_HELLO_OK
                                        ? 0
                                        : 1 + (uint32_t)i,
                                0, buf, sizeof(buf));
        snprintf(name, sizeof(name), "%s", proto_type_name(t));
        seed_write(dir, name, buf, len);
        size_t off = 0;
        for (unsigned v = 0; v < 4; v++)
            off += msg_sample(t, req, 7 + v, v, buf + off, sizeof(buf) - off);
        snprintf(name, sizeof(name), "%s-x4", proto_type_name(t));
        seed_write(dir, name, buf, off);
        if (proto_def(t)->flags & PROTO_REQUEST) {
            len = msg_sample(PROTO_REPLY, t, 1, 1, buf, sizeof(buf));
            snprintf(name, sizeof(name), "reply-%s", proto_type_name(t));
            seed_write(dir, name, buf, len);
        }
    }
    exit(0);
}
