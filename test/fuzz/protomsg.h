/*
 * protomsg.h - the body layout of every message of docs/protocol.md, for
 * the fuzz targets: parse a body by its type's layout and write it again
 * (a round trip must give the same bytes), and build a valid sample of
 * each type (the seed corpora).
 *
 * Layout letters: b u8, h u16, w u32, q u64, s str (u16 length + bytes),
 * y bytes (u32 length + bytes), r the rest of the body, E exec's strings
 * (argc + envc more s, counts from the two h before). A reply's body
 * depends on its request, so it is taken as r.
 */
#ifndef PROVIUM_TEST_FUZZ_PROTOMSG_H
#define PROVIUM_TEST_FUZZ_PROTOMSG_H

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

static const char *
msg_layout(unsigned type)
{
    switch (type) {
    case PROTO_HELLO: return "www";
    case PROTO_OPEN_TAIL: return "wbbqs";
    case PROTO_OPEN_FD: return "wq";
    case PROTO_OPEN_PROC: return "wqb";
    case PROTO_CREDIT: return "w";
    case PROTO_CLOSE: return "";
    case PROTO_EXEC: return "shhE";
    case PROTO_WAIT: return "q";
    case PROTO_KILL: return "qw";
    case PROTO_STDIN: return "qy";
    case PROTO_STDIN_CLOSE: return "q";
    case PROTO_FOPEN: return "wws";
    case PROTO_FREAD: return "qw";
    case PROTO_FWRITE: return "qy";
    case PROTO_FSEEK: return "qqb";
    case PROTO_FCLOSE: return "q";
    case PROTO_STAT: return "s";
    case PROTO_HELLO_OK: return "wwsssq"; /* version 2: + instance */
    case PROTO_ACK: return "q";
    case PROTO_DATA: return "r";
    case PROTO_NOTE: return "bqs";
    case PROTO_END: return "wbs";
    case PROTO_ERROR: return "ws";
    case PROTO_REPLY: return "r";
    default: return NULL;
    }
}

/* Every type the protocol defines, for the seeds. */
static const unsigned msg_types[] = {
        PROTO_HELLO,    PROTO_OPEN_TAIL, PROTO_OPEN_FD,     PROTO_OPEN_PROC,
        PROTO_CREDIT,   PROTO_CLOSE,     PROTO_EXEC,        PROTO_WAIT,
        PROTO_KILL,     PROTO_STDIN,     PROTO_STDIN_CLOSE, PROTO_FOPEN,
        PROTO_FREAD,    PROTO_FWRITE,    PROTO_FSEEK,       PROTO_FCLOSE,
        PROTO_STAT,     PROTO_HELLO_OK,  PROTO_ACK,         PROTO_DATA,
        PROTO_NOTE,     PROTO_END,       PROTO_ERROR,       PROTO_REPLY,
};
#define N_MSG_TYPES (sizeof(msg_types) / sizeof(msg_types[0]))

/* Parse body by type's layout with proto_reader and write every field
 * again with proto_writer into out (cap bytes). Returns the length
 * written, or -1 if the body is not well formed for its type. */
static long
msg_rewrite(unsigned type, const uint8_t *body, size_t len, uint8_t *out,
            size_t cap)
{
    static char str[65536];
    const char *lay = msg_layout(type);
    struct proto_reader r;
    struct proto_writer w;
    unsigned counts[2] = {0, 0}, nh = 0;

    if (!lay)
        return -1;
    proto_reader_init(&r, body, len);
    proto_writer_init(&w, out, cap);
    for (const char *l = lay; *l && !r.bad; l++) {
        const void *p;
        size_t n;
        switch (*l) {
        case 'b': proto_put_u8(&w, proto_get_u8(&r)); break;
        case 'h': {
            uint16_t v = proto_get_u16(&r);
            if (nh < 2)
                counts[nh++] = v;
            proto_put_u16(&w, v);
            break;
        }
        case 'w': proto_put_u32(&w, proto_get_u32(&r)); break;
        case 'q': proto_put_u64(&w, proto_get_u64(&r)); break;
        case 's':
            proto_get_str(&r, str, sizeof(str));
            if (!r.bad)
                proto_put_str(&w, str, strlen(str));
            break;
        case 'y':
            proto_get_bytes(&r, &p, &n, 0xffffffffu);
            if (!r.bad)
                proto_put_bytes(&w, p, n);
            break;
        case 'r':
            proto_get_rest(&r, &p, &n);
            proto_put_raw(&w, p, n);
            break;
        case 'E':
            for (unsigned i = 0; i < counts[0] + counts[1] && !r.bad; i++) {
                proto_get_str(&r, str, sizeof(str));
                if (!r.bad)
                    proto_put_str(&w, str, strlen(str));
            }
            break;
        }
    }
    if (proto_get_done(&r) < 0)
        return -1;
    FUZZ_CHECK(!w.overflow);
    return (long)w.len;
}

/* A well-formed body must come back byte for byte. */
static void
msg_check_roundtrip(unsigned type, const uint8_t *body, size_t len)
{
    static uint8_t out[PROTO_MAX_BODY + 64];
    long n = msg_rewrite(type, body, len, out, sizeof(out));

    if (n < 0)
        return;
    FUZZ_CHECK((size_t)n == len);
    FUZZ_CHECK(len == 0 || memcmp(out, body, len) == 0);
}

/* A valid frame of the given type on channel ch into out; returns its
 * length. variant varies the values (lengths, counts). */
static size_t
msg_sample(unsigned type, uint32_t ch, unsigned variant, uint8_t *out,
           size_t cap)
{
    static const char *const words[] = {"/var/log/messages", "sh", "-c",
                                        "echo hi", "PATH=/bin", ""};
    struct proto_writer w;
    const char *lay = msg_layout(type);
    unsigned argc = 1 + variant % 3, envc = variant % 2, k = 0;
    ssize_t n;

    proto_writer_init(&w, out, cap);
    proto_frame_begin(&w, type, ch);
    for (const char *l = lay; *l; l++) {
        const char *s = words[(variant + k++) % 5];
        switch (*l) {
        case 'b': proto_put_u8(&w, (uint8_t)(1 + variant % 2)); break;
        case 'h':
            proto_put_u16(&w, (uint16_t)(l == lay + 1 ? argc : envc));
            break;
        case 'w':
            proto_put_u32(&w, type == PROTO_HELLO || type == PROTO_HELLO_OK
                                      ? (l == lay ? PROTO_MAGIC : PROTO_VERSION)
                                      : 4096u + variant);
            break;
        case 'q': proto_put_u64(&w, 1 + variant); break;
        case 's': proto_put_str(&w, s, strlen(s)); break;
        case 'y': proto_put_bytes(&w, s, strlen(s)); break;
        case 'r': proto_put_raw(&w, "line one\n", 9 - variant % 9); break;
        case 'E':
            for (unsigned i = 0; i < argc + envc; i++) {
                const char *a = words[1 + (i + variant) % 4];
                proto_put_str(&w, a, strlen(a));
            }
            break;
        }
    }
    n = proto_frame_end(&w);
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
