/*
 * protomsg.h - the message table (streams/proto.c) seen from the fuzz
 * targets: check that a body well formed for its type decodes and
 * encodes again to the same bytes, and build a valid sample frame of
 * each type from the table's layouts (the seed corpora).
 */
#ifndef PROVIUM_TEST_FUZZ_PROTOMSG_H
#define PROVIUM_TEST_FUZZ_PROTOMSG_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Decoded messages are big: one for the checks below. */
static struct proto_msg msg_decoded;

/*
 * Decode a body of type (a reply: the reply to request) with the table.
 * A body the table takes (0) is written again and must be the same
 * bytes; one with a bad value (-EINVAL) must say which. Returns what
 * proto_msg_decode returned.
 */
static int
msg_check_roundtrip(unsigned type, unsigned request, const uint8_t *body,
                    size_t len)
{
    static uint8_t out[PROTO_MAX_FRAME + 64];
    struct proto_frame f = {
            .type = type, .channel = 1, .body = body, .len = len};
    int rc = proto_msg_decode(&f, request, &msg_decoded);

    FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EINVAL);
    if (rc == -EINVAL)
        FUZZ_CHECK(msg_decoded.why[0] != 0);
    if (rc != 0)
        return rc;
    FUZZ_CHECK(proto_msg_size(type, request, &msg_decoded.body) ==
               (ssize_t)(PROTO_HEADER_LEN + len));
    FUZZ_CHECK(proto_msg_encode(out, sizeof(out), type, request, 1,
                                &msg_decoded.body) ==
               (ssize_t)(PROTO_HEADER_LEN + len));
    FUZZ_CHECK(len == 0 || memcmp(out + PROTO_HEADER_LEN, body, len) == 0);
    return 0;
}

/* Every type the protocol defines, for the seeds. */
static const unsigned msg_types[] = {
        PROTO_HELLO,  PROTO_OPEN_TAIL, PROTO_OPEN_FD,     PROTO_OPEN_PROC,
        PROTO_CREDIT, PROTO_CLOSE,     PROTO_EXEC,        PROTO_WAIT,
        PROTO_KILL,   PROTO_STDIN,     PROTO_STDIN_CLOSE, PROTO_FOPEN,
        PROTO_FREAD,  PROTO_FWRITE,    PROTO_FSEEK,       PROTO_FCLOSE,
        PROTO_STAT,   PROTO_HELLO_OK,  PROTO_ACK,         PROTO_DATA,
        PROTO_NOTE,   PROTO_END,       PROTO_ERROR,       PROTO_REPLY,
};
#define N_MSG_TYPES (sizeof(msg_types) / sizeof(msg_types[0]))

/* A valid value for integer field f; variant varies it. */
static uint64_t
msg_sample_int(const struct proto_field *f, unsigned variant)
{
    uint64_t v;

    if (strstr(f->name, "version"))
        return PROTO_VERSION;
    if (f->min == f->max)
        return f->min; /* the magic */
    switch (f->kind) {
    case PROTO_U8:
        v = 1 + variant % 2;
        break;
    case PROTO_U32:
        v = 4096u + variant;
        break;
    default:
        v = 1 + variant;
        break;
    }
    return v < f->min ? f->min : v > f->max ? f->max : v;
}

/* A valid frame of the given type on channel ch into out (a reply: the
 * reply to request); returns its length. variant varies the values
 * (lengths, counts). */
static size_t
msg_sample(unsigned type, unsigned request, uint32_t ch, unsigned variant,
           uint8_t *out, size_t cap)
{
    static char *words[] = {"/var/log/messages", "sh",        "-c",
                            "echo hi",           "PATH=/bin", ""};
    static char *vec[2][4];
    const struct proto_def *d = proto_def(type == PROTO_REPLY ? request : type);
    const struct proto_layout *l = type == PROTO_REPLY ? &d->reply : &d->body;
    union proto_body b;
    unsigned k = 0, nvec = 0;
    ssize_t n;

    memset(&b, 0, sizeof(b));
    for (size_t i = 0; i < l->n; i++) {
        const struct proto_field *f = &l->fields[i];
        char *s = words[(variant + k++) % 5];
        void *m = (char *)&b + f->off;
        switch (f->kind) {
        default: /* integers */
            proto_field_set_int(&b, f, msg_sample_int(f, variant));
            break;
        case PROTO_COUNT: /* exec: 1 to 3 arguments, 0 or 1 env entries */
            proto_field_set_int(&b, f, i == 1 ? 1 + variant % 3 : variant % 2);
            break;
        case PROTO_STR:
        case PROTO_PATH: {
            const char *v = s[0] || !f->min ? s : words[0];
            memcpy(m, &v, sizeof(v));
            break;
        }
        case PROTO_BYTES: {
            struct proto_bytes v = {s, strlen(s)};
            memcpy(m, &v, sizeof(v));
            break;
        }
        case PROTO_REST: {
            struct proto_bytes v = {"line one\n", 9 - variant % 9};
            memcpy(m, &v, sizeof(v));
            break;
        }
        case PROTO_STRV: {
            uint16_t count;
            char **v = vec[nvec++];
            char *const *cv = v;
            memcpy(&count, (char *)&b + f->count, sizeof(count));
            for (unsigned j = 0; j < count; j++)
                v[j] = words[1 + (j + variant) % 4];
            memcpy(m, &cv, sizeof(cv));
            break;
        }
        }
    }
    n = proto_msg_encode(out, cap, type, request, ch, &b);
    FUZZ_CHECK(n > 0);
    return (size_t)n;
}

/* PROVIUM_FUZZ_SEEDS=DIR: write files to DIR and exit (see each target). */
static void
seed_write(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FUZZ_CHECK((f = fopen(path, "wb")) != NULL);
    FUZZ_CHECK(fwrite(buf, 1, len, f) == len);
    fclose(f);
}

#endif
