/*
 * proto.c - the agent wire protocol (docs/protocol.md): the message table
 * and the codec that encodes and decodes every body from it, the field
 * writer and reader under it, and the resumable frame decoder. Shared by
 * provium-agent and the host's agent client, so it depends on nothing
 * but libc and the output queue (outq.c). Input is untrusted on both
 * sides: every length is checked before it is used.
 */
#include "proto.h"
#include "streams.h" /* the output queue */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the message table ---- */

/*
 * A field is named by its member in union proto_body; the macro checks
 * at compile time that the member has the C type its wire kind needs
 * (_Generic fails on anything else), so a layout cannot read or write a
 * member as the wrong size.
 */
/* (clang-format cannot lay out a braced initialiser in a macro.) */
/* clang-format off */
#define MEMBER(m, type)                                                        \
    _Generic(((union proto_body *)0)->m, type: offsetof(union proto_body, m))
#define FIELD(kind, m, type, ...) {#m, kind, MEMBER(m, type), 0, __VA_ARGS__}
#define ANY 0, UINT64_MAX

/* Integers: the values allowed, lo, hi (ANY: every value). */
#define U8(m, ...) FIELD(PROTO_U8, m, uint8_t, __VA_ARGS__)
#define U32(m, ...) FIELD(PROTO_U32, m, uint32_t, __VA_ARGS__)
#define U64(m, ...) FIELD(PROTO_U64, m, uint64_t, __VA_ARGS__)
#define I64(m) FIELD(PROTO_I64, m, int64_t, ANY)
/* Strings: lo, hi are the lengths allowed (the terminator not counted). */
#define STR(m, lo, hi) FIELD(PROTO_STR, m, const char *, lo, hi)
#define PATH(m, lo) FIELD(PROTO_PATH, m, const char *, lo, PROTO_MAX_PATH - 1)
#define BYTES(m, hi) FIELD(PROTO_BYTES, m, struct proto_bytes, 0, hi)
#define REST(m, lo, hi) FIELD(PROTO_REST, m, struct proto_bytes, lo, hi)
#define COUNT(m, lo, hi) FIELD(PROTO_COUNT, m, uint16_t, lo, hi)
#define STRV(m, count, hi)                                                     \
    {#m, PROTO_STRV, MEMBER(m, char *const *), MEMBER(count, uint16_t),        \
     0, hi}
/* clang-format on */

#define MSG (PROTO_MAX_MSG - 1)   /* error, note and end messages */
#define FACT (PROTO_MAX_FACT - 1) /* os, kernel, agent version */

/* Host to agent. */
static const struct proto_field body_hello[] = {
        U32(hello.magic, PROTO_MAGIC, PROTO_MAGIC),
        U32(hello.version_min, ANY),
        U32(hello.version_max, ANY),
};
static const struct proto_field body_open_tail[] = {
        U32(open.credit, ANY),
        U8(open.start, 0, PROTO_START_BACK),
        U8(open.flags, 0, PROTO_TAIL_FOLLOW_DESCRIPTOR),
        U64(open.offset, ANY),
        PATH(open.path, 1),
};
static const struct proto_field body_open_fd[] = {
        U32(open.credit, ANY),
        U64(open.handle, ANY),
};
static const struct proto_field body_open_proc[] = {
        U32(open.credit, ANY),
        U64(open.proc, ANY),
        U8(open.which, PROTO_STDOUT, PROTO_STDERR),
};
static const struct proto_field body_credit[] = {
        U32(credit.bytes, ANY),
};
static const struct proto_field body_exec[] = {
        STR(exec.cwd, 0, PROTO_MAX_PATH - 1),
        COUNT(exec.argc, 1, PROTO_MAX_ARGS),
        COUNT(exec.envc, 0, PROTO_MAX_ARGS),
        STRV(exec.argv, exec.argc, PROTO_MAX_ARG - 1),
        STRV(exec.env, exec.envc, PROTO_MAX_ARG - 1),
};
static const struct proto_field body_wait[] = {
        U64(wait.proc, ANY),
};
static const struct proto_field body_kill[] = {
        U64(kill.proc, ANY),
        U32(kill.signal, ANY), /* the agent's kill(2) judges it */
};
static const struct proto_field body_input[] = {
        U64(input.proc, ANY),
        BYTES(input.data, PROTO_MAX_DATA),
};
static const struct proto_field body_stdin_close[] = {
        U64(stdin_close.proc, ANY),
};
static const struct proto_field body_fopen[] = {
        U32(fopen.flags, 0, PROTO_O_ALL),
        U32(fopen.mode, 0, 07777),
        PATH(fopen.path, 1),
};
static const struct proto_field body_fread[] = {
        U64(fread.handle, ANY),
        U32(fread.count, 0, PROTO_MAX_DATA),
};
static const struct proto_field body_fwrite[] = {
        U64(fwrite.handle, ANY),
        BYTES(fwrite.data, PROTO_MAX_DATA),
};
static const struct proto_field body_fseek[] = {
        U64(fseek.handle, ANY),
        I64(fseek.offset),
        U8(fseek.whence, 0, PROTO_SEEK_END),
};
static const struct proto_field body_fclose[] = {
        U64(fclose.handle, ANY),
};
static const struct proto_field body_stat[] = {
        PATH(stat.path, 0),
};

/* Agent to host. */
static const struct proto_field body_hello_ok[] = {
        U32(hello_ok.magic, PROTO_MAGIC, PROTO_MAGIC),
        U32(hello_ok.version, ANY),
        STR(hello_ok.os, 0, FACT),
        STR(hello_ok.kernel, 0, FACT),
        STR(hello_ok.agent_version, 0, FACT),
        U64(hello_ok.instance, 1, UINT64_MAX),
};
static const struct proto_field body_ack[] = {
        U64(ack.offset, ANY),
};
static const struct proto_field body_data[] = {
        REST(data, 1, PROTO_MAX_DATA),
};
static const struct proto_field body_note[] = {
        U8(note.code, ANY),
        U64(note.value, ANY),
        STR(note.message, 0, MSG),
};
static const struct proto_field body_end[] = {
        U32(end.err, ANY),
        U8(end.reason, ANY),
        STR(end.message, 0, MSG),
};
static const struct proto_field body_error[] = {
        U32(error.err, ANY),
        STR(error.message, 0, MSG),
};

/* Replies, by request. */
static const struct proto_field reply_exec[] = {
        U64(exec_reply.proc, ANY),
};
/* clang-format off */
/* What became of one output of the process (version 2). */
#define OUTPUT(i)                                                              \
    U64(wait_reply.out[i].recorded, ANY), U32(wait_reply.out[i].err, ANY),     \
    U64(wait_reply.out[i].discarded, ANY),                                     \
    STR(wait_reply.out[i].message, 0, MSG)
static const struct proto_field reply_wait[] = {
        U8(wait_reply.how, PROTO_EXITED, PROTO_SIGNALED),
        U32(wait_reply.value, ANY),
        OUTPUT(0), /* stdout */
        OUTPUT(1), /* stderr */
};
/* clang-format on */
static const struct proto_field reply_input[] = {
        U32(input_reply.written, ANY),
};
static const struct proto_field reply_fopen[] = {
        U64(fopen_reply.handle, ANY),
};
static const struct proto_field reply_fread[] = {
        BYTES(fread_reply.data, PROTO_MAX_DATA),
};
static const struct proto_field reply_fwrite[] = {
        U32(fwrite_reply.written, ANY),
};
static const struct proto_field reply_fseek[] = {
        U64(fseek_reply.offset, ANY),
};
static const struct proto_field reply_stat[] = {
        U64(stat_reply.size, ANY),
        U32(stat_reply.mode, ANY),
        I64(stat_reply.mtime_ns),
};

/* clang-format off */
#define LAYOUT(f) {f, sizeof(f) / sizeof(f[0])}
#define EMPTY {NULL, 0}
/* clang-format on */
#define HOST PROTO_FROM_HOST
#define AGENT PROTO_FROM_AGENT
#define OPENS (PROTO_FROM_HOST | PROTO_OPENS)
#define REQUEST (PROTO_FROM_HOST | PROTO_REQUEST)
#define UNBOUNDED PROTO_UNBOUNDED

/* The protocol: docs/protocol.md describes it, this is its definition. */
static const struct proto_def defs[PROTO_TYPE_MAX] = {
        [PROTO_HELLO] = {"hello", HOST, LAYOUT(body_hello), EMPTY},
        [PROTO_OPEN_TAIL] = {"open_tail", OPENS, LAYOUT(body_open_tail), EMPTY},
        [PROTO_OPEN_FD] = {"open_fd", OPENS, LAYOUT(body_open_fd), EMPTY},
        [PROTO_OPEN_PROC] = {"open_proc", OPENS, LAYOUT(body_open_proc), EMPTY},
        [PROTO_CREDIT] = {"credit", HOST, LAYOUT(body_credit), EMPTY},
        [PROTO_CLOSE] = {"close", HOST, EMPTY, EMPTY},
        [PROTO_EXEC] = {"exec", REQUEST, LAYOUT(body_exec), LAYOUT(reply_exec)},
        [PROTO_WAIT] = {"wait", REQUEST | UNBOUNDED, LAYOUT(body_wait),
                        LAYOUT(reply_wait)},
        [PROTO_KILL] = {"kill", REQUEST, LAYOUT(body_kill), EMPTY},
        [PROTO_STDIN] = {"stdin", REQUEST | UNBOUNDED, LAYOUT(body_input),
                         LAYOUT(reply_input)},
        [PROTO_STDIN_CLOSE] = {"stdin_close", REQUEST, LAYOUT(body_stdin_close),
                               EMPTY},
        [PROTO_FOPEN] = {"fopen", REQUEST, LAYOUT(body_fopen),
                         LAYOUT(reply_fopen)},
        [PROTO_FREAD] = {"fread", REQUEST | UNBOUNDED, LAYOUT(body_fread),
                         LAYOUT(reply_fread)},
        [PROTO_FWRITE] = {"fwrite", REQUEST | UNBOUNDED, LAYOUT(body_fwrite),
                          LAYOUT(reply_fwrite)},
        [PROTO_FSEEK] = {"fseek", REQUEST, LAYOUT(body_fseek),
                         LAYOUT(reply_fseek)},
        [PROTO_FCLOSE] = {"fclose", REQUEST, LAYOUT(body_fclose), EMPTY},
        [PROTO_STAT] = {"stat", REQUEST, LAYOUT(body_stat), LAYOUT(reply_stat)},

        [PROTO_HELLO_OK] = {"hello_ok", AGENT, LAYOUT(body_hello_ok), EMPTY},
        [PROTO_ACK] = {"ack", AGENT, LAYOUT(body_ack), EMPTY},
        [PROTO_DATA] = {"data", AGENT, LAYOUT(body_data), EMPTY},
        [PROTO_NOTE] = {"note", AGENT, LAYOUT(body_note), EMPTY},
        [PROTO_END] = {"end", AGENT, LAYOUT(body_end), EMPTY},
        [PROTO_ERROR] = {"error", AGENT, LAYOUT(body_error), EMPTY},
        /* Its body is the reply of the channel's request. */
        [PROTO_REPLY] = {"reply", AGENT, EMPTY, EMPTY},
};

const struct proto_def *
proto_def(unsigned type)
{
    return type < PROTO_TYPE_MAX && defs[type].name ? &defs[type] : NULL;
}

const char *
proto_type_name(unsigned type)
{
    const struct proto_def *d = proto_def(type);
    return d ? d->name : "?";
}

bool
proto_type_from_host(unsigned type)
{
    const struct proto_def *d = proto_def(type);
    return d && (d->flags & PROTO_FROM_HOST);
}

bool
proto_type_from_agent(unsigned type)
{
    const struct proto_def *d = proto_def(type);
    return d && (d->flags & PROTO_FROM_AGENT);
}

static void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void
proto_header(void *hdr, uint32_t body_len, unsigned type, uint32_t channel)
{
    uint8_t *h = hdr;
    put_le(h, body_len, 4);
    h[4] = (uint8_t)type;
    put_le(h + 5, channel, 4);
}

void
proto_writer_init(struct proto_writer *w, void *buf, size_t cap)
{
    w->buf = buf;
    w->len = 0;
    w->cap = cap;
    w->frame = 0;
    w->overflow = false;
}

static uint8_t *
reserve(struct proto_writer *w, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void
proto_frame_begin(struct proto_writer *w, unsigned type, uint32_t channel)
{
    w->frame = w->len;
    uint8_t *p = reserve(w, PROTO_HEADER_LEN);
    if (p)
        proto_header(p, 0, type, channel);
}

ssize_t
proto_frame_end(struct proto_writer *w)
{
    size_t body = w->len - w->frame - PROTO_HEADER_LEN;
    if (w->overflow || w->len < w->frame + PROTO_HEADER_LEN ||
        body > PROTO_MAX_BODY) {
        /* Drop the partial frame so the buffer stays a frame sequence. */
        w->len = w->frame;
        w->overflow = false;
        return -EMSGSIZE;
    }
    put_le(w->buf + w->frame, body, 4);
    return (ssize_t)(w->len - w->frame);
}

void
proto_put_u8(struct proto_writer *w, uint8_t v)
{
    uint8_t *p = reserve(w, 1);
    if (p)
        *p = v;
}

void
proto_put_u16(struct proto_writer *w, uint16_t v)
{
    uint8_t *p = reserve(w, 2);
    if (p)
        put_le(p, v, 2);
}

void
proto_put_u32(struct proto_writer *w, uint32_t v)
{
    uint8_t *p = reserve(w, 4);
    if (p)
        put_le(p, v, 4);
}

void
proto_put_u64(struct proto_writer *w, uint64_t v)
{
    uint8_t *p = reserve(w, 8);
    if (p)
        put_le(p, v, 8);
}

void
proto_put_str(struct proto_writer *w, const char *s, size_t len)
{
    if (len > UINT16_MAX) {
        w->overflow = true;
        return;
    }
    proto_put_u16(w, (uint16_t)len);
    proto_put_raw(w, s, len);
}

void
proto_put_bytes(struct proto_writer *w, const void *p, size_t len)
{
    if (len > PROTO_MAX_BODY) {
        w->overflow = true;
        return;
    }
    proto_put_u32(w, (uint32_t)len);
    proto_put_raw(w, p, len);
}

void
proto_put_raw(struct proto_writer *w, const void *p, size_t len)
{
    uint8_t *d = reserve(w, len);
    if (d && len)
        memcpy(d, p, len);
}

void
proto_reader_init(struct proto_reader *r, const void *body, size_t len)
{
    r->p = body;
    r->len = len;
    r->bad = false;
}

static const uint8_t *
take(struct proto_reader *r, size_t n)
{
    if (r->bad || r->len < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->len -= n;
    return p;
}

uint8_t
proto_get_u8(struct proto_reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? *p : 0;
}

uint16_t
proto_get_u16(struct proto_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)get_le(p, 2) : 0;
}

uint32_t
proto_get_u32(struct proto_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)get_le(p, 4) : 0;
}

uint64_t
proto_get_u64(struct proto_reader *r)
{
    const uint8_t *p = take(r, 8);
    return p ? get_le(p, 8) : 0;
}

void
proto_get_str(struct proto_reader *r, char *dst, size_t cap)
{
    uint16_t n = proto_get_u16(r);
    const uint8_t *p = take(r, n);
    if (!p || n >= cap || memchr(p, 0, n)) {
        r->bad = true;
        if (cap)
            dst[0] = 0;
        return;
    }
    memcpy(dst, p, n);
    dst[n] = 0;
}

void
proto_get_bytes(struct proto_reader *r, const void **p, size_t *len, size_t max)
{
    uint32_t n = proto_get_u32(r);
    const uint8_t *q = n <= max ? take(r, n) : NULL;
    if (!q)
        r->bad = true;
    *p = q;
    *len = q ? n : 0;
}

void
proto_get_rest(struct proto_reader *r, const void **p, size_t *len)
{
    *p = r->p;
    *len = r->bad ? 0 : r->len;
    take(r, *len);
}

int
proto_get_done(const struct proto_reader *r)
{
    return r->bad || r->len ? -EPROTO : 0;
}

int
proto_decoder_init(struct proto_decoder *d)
{
    memset(d, 0, sizeof(*d));
    d->body = malloc(PROTO_MAX_BODY);
    return d->body ? 0 : -ENOMEM;
}

void
proto_decoder_fini(struct proto_decoder *d)
{
    if (!d)
        return;
    free(d->body);
    d->body = NULL;
}

void
proto_decoder_reset(struct proto_decoder *d)
{
    d->hdr_have = 0;
    d->body_len = 0;
    d->body_have = 0;
}

bool
proto_decoder_idle(const struct proto_decoder *d)
{
    return d->hdr_have == 0;
}

static int
check_header(struct proto_decoder *d)
{
    d->body_len = (uint32_t)get_le(d->hdr, 4);
    unsigned type = d->hdr[4];
    uint32_t channel = (uint32_t)get_le(d->hdr + 5, 4);
    if (d->body_len > PROTO_MAX_BODY)
        return -EMSGSIZE;
    if (!proto_type_from_host(type) && !proto_type_from_agent(type))
        return -EPROTO;
    if (channel > PROTO_MAX_CHANNEL)
        return -EPROTO;
    return 0;
}

static void
emit(struct proto_decoder *d, const uint8_t *body, struct proto_frame *f)
{
    f->type = d->hdr[4];
    f->channel = (uint32_t)get_le(d->hdr + 5, 4);
    f->body = body;
    f->len = d->body_len;
    proto_decoder_reset(d);
}

int
proto_decode(struct proto_decoder *d, const void *buf, size_t len, size_t *used,
             struct proto_frame *f)
{
    const uint8_t *in = buf;
    size_t pos = 0;
    int err;

    *used = 0;
    if (d->hdr_have < PROTO_HEADER_LEN) {
        size_t n = PROTO_HEADER_LEN - d->hdr_have;
        if (n > len)
            n = len;
        if (n)
            memcpy(d->hdr + d->hdr_have, in, n);
        d->hdr_have += n;
        pos += n;
        *used = pos;
        if (d->hdr_have < PROTO_HEADER_LEN)
            return 0;
        if ((err = check_header(d)) < 0)
            return err;
        d->body_have = 0;
        /* Whole body already in the input: hand it out without a copy,
         * which is what keeps a bulk tail at memory speed. */
        if (len - pos >= d->body_len) {
            emit(d, in + pos, f);
            *used = pos + f->len;
            return 1;
        }
    }
    size_t n = d->body_len - d->body_have;
    if (n > len - pos)
        n = len - pos;
    if (n)
        memcpy(d->body + d->body_have, in + pos, n);
    d->body_have += n;
    pos += n;
    *used = pos;
    if (d->body_have < d->body_len)
        return 0;
    emit(d, d->body, f);
    return 1;
}

/* ---- messages through the table ---- */

/* The layout a frame of type carries: a reply's is its request's. */
static const struct proto_layout *
layout_of(unsigned type, unsigned request)
{
    const struct proto_def *d = proto_def(type);

    if (d && type == PROTO_REPLY) {
        d = proto_def(request);
        return d && (d->flags & PROTO_REQUEST) ? &d->reply : NULL;
    }
    return d ? &d->body : NULL;
}

/* The member a field names: loaded and stored with memcpy, as the C type
 * the layout's macro checked it has. */
#define LOAD(v, b, off) memcpy(&(v), (const char *)(b) + (off), sizeof(v))
#define STORE(b, off, v) memcpy((char *)(b) + (off), &(v), sizeof(v))

/* Wire width of an integer kind. */
static int
width(enum proto_kind kind)
{
    switch (kind) {
    case PROTO_U8:
        return 1;
    case PROTO_U16:
    case PROTO_COUNT:
        return 2;
    case PROTO_U32:
        return 4;
    default:
        return 8;
    }
}

uint64_t
proto_field_int(const union proto_body *b, const struct proto_field *f)
{
    uint8_t v8;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64; /* an int64_t is read as its bits */

    switch (width(f->kind)) {
    case 1:
        return LOAD(v8, b, f->off), v8;
    case 2:
        return LOAD(v16, b, f->off), v16;
    case 4:
        return LOAD(v32, b, f->off), v32;
    default:
        return LOAD(v64, b, f->off), v64;
    }
}

void
proto_field_set_int(union proto_body *b, const struct proto_field *f,
                    uint64_t v)
{
    uint8_t v8 = (uint8_t)v;
    uint16_t v16 = (uint16_t)v;
    uint32_t v32 = (uint32_t)v;

    switch (width(f->kind)) {
    case 1:
        STORE(b, f->off, v8);
        break;
    case 2:
        STORE(b, f->off, v16);
        break;
    case 4:
        STORE(b, f->off, v32);
        break;
    default:
        STORE(b, f->off, v);
        break;
    }
}

/* Can a string or byte string of n bytes be sent in field f? */
static int
len_check(const struct proto_field *f, size_t n)
{
    if (n < f->min)
        return -EINVAL;
    if (n > f->max)
        return f->kind == PROTO_PATH ? -ENAMETOOLONG : -E2BIG;
    return 0;
}

/*
 * Check b against layout l and, when w is not NULL, write its fields to
 * w. Returns the body's length or -errno (proto_msg_size's errors).
 */
static ssize_t
encode_body(const struct proto_layout *l, const union proto_body *b,
            struct proto_writer *w)
{
    size_t len = 0;
    int err;

    for (size_t i = 0; i < l->n; i++) {
        const struct proto_field *f = &l->fields[i];
        switch (f->kind) {
        case PROTO_U8:
        case PROTO_U16:
        case PROTO_U32:
        case PROTO_U64:
        case PROTO_I64:
        case PROTO_COUNT: {
            uint64_t v = proto_field_int(b, f);
            if (v < f->min)
                return -EINVAL;
            if (v > f->max)
                return f->kind == PROTO_COUNT ? -E2BIG : -EINVAL;
            len += (size_t)width(f->kind);
            if (w) {
                uint8_t le[8];
                put_le(le, v, width(f->kind));
                proto_put_raw(w, le, (size_t)width(f->kind));
            }
            break;
        }
        case PROTO_STR:
        case PROTO_PATH: {
            const char *s;
            LOAD(s, b, f->off);
            size_t n = s ? strlen(s) : 0;
            if ((err = len_check(f, n)) < 0)
                return err;
            len += 2 + n;
            if (w)
                proto_put_str(w, s, n);
            break;
        }
        case PROTO_BYTES:
        case PROTO_REST: {
            struct proto_bytes v;
            LOAD(v, b, f->off);
            if ((err = len_check(f, v.len)) < 0)
                return err;
            len += (f->kind == PROTO_BYTES ? 4 : 0) + v.len;
            if (w && f->kind == PROTO_BYTES)
                proto_put_bytes(w, v.p, v.len);
            else if (w)
                proto_put_raw(w, v.p, v.len);
            break;
        }
        case PROTO_STRV: {
            char *const *v;
            uint16_t count;
            LOAD(v, b, f->off);
            LOAD(count, b, f->count);
            for (size_t k = 0; k < count; k++) {
                const char *s = v[k];
                size_t n = s ? strlen(s) : 0;
                if ((err = len_check(f, n)) < 0)
                    return err;
                len += 2 + n;
                if (w)
                    proto_put_str(w, s, n);
            }
            break;
        }
        }
        if (len > PROTO_MAX_BODY)
            return -E2BIG;
    }
    return (ssize_t)len;
}

ssize_t
proto_msg_size(unsigned type, unsigned request, const union proto_body *b)
{
    const struct proto_layout *l = layout_of(type, request);
    ssize_t len;

    if (!l)
        return -EPROTO;
    if ((len = encode_body(l, b, NULL)) < 0)
        return len;
    return PROTO_HEADER_LEN + len;
}

/* Write a frame proto_msg_size has checked and measured (len bytes). */
static ssize_t
write_frame(void *buf, size_t len, unsigned type, unsigned request,
            uint32_t channel, const union proto_body *b)
{
    struct proto_writer w;

    proto_writer_init(&w, buf, len);
    proto_frame_begin(&w, type, channel);
    encode_body(layout_of(type, request), b, &w);
    return proto_frame_end(&w);
}

ssize_t
proto_msg_encode(void *buf, size_t cap, unsigned type, unsigned request,
                 uint32_t channel, const union proto_body *b)
{
    ssize_t len = proto_msg_size(type, request, b);

    if (len < 0)
        return len;
    if (cap < (size_t)len)
        return -EMSGSIZE;
    return write_frame(buf, (size_t)len, type, request, channel, b);
}

int
proto_msg_queue(struct outq *q, unsigned type, unsigned request,
                uint32_t channel, const union proto_body *b)
{
    ssize_t len = proto_msg_size(type, request, b);
    void *p;

    if (len < 0)
        return (int)len;
    if (!(p = outq_reserve(q, (size_t)len)))
        return -ENOBUFS;
    write_frame(p, (size_t)len, type, request, channel, b);
    outq_commit(q, (size_t)len);
    return 0;
}

/* The field's name without its message ("start" for "open.start"). */
static const char *
short_name(const struct proto_field *f)
{
    const char *dot = strrchr(f->name, '.');
    return dot ? dot + 1 : f->name;
}

/* The first value of a decoded body that is out of its range. */
static void out_of_range(struct proto_msg *m, int *bad, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
out_of_range(struct proto_msg *m, int *bad, const char *fmt, ...)
{
    va_list ap;

    if (*bad)
        return;
    *bad = -EINVAL;
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
}

/* A string field into m->text. NULL when malformed (r is then bad). */
static char *
get_cstr(struct proto_reader *r, const struct proto_field *f,
         struct proto_msg *m, size_t *text, int *bad)
{
    uint16_t n = proto_get_u16(r);
    const uint8_t *p = take(r, n);
    char *s;

    if (!p || n > f->max || memchr(p, 0, n) ||
        sizeof(m->text) - *text < (size_t)n + 1) {
        r->bad = true;
        return NULL;
    }
    s = m->text + *text;
    memcpy(s, p, n);
    s[n] = 0;
    *text += (size_t)n + 1;
    if (n < f->min)
        out_of_range(m, bad, "%s: %u bytes, at least %llu", short_name(f), n,
                     (unsigned long long)f->min);
    return s;
}

int
proto_msg_decode(const struct proto_frame *f, unsigned request,
                 struct proto_msg *m)
{
    const struct proto_layout *l = layout_of(f->type, request);
    union proto_body *b = &m->body;
    struct proto_reader r;
    size_t text = 0, vec = 0;
    int bad = 0;

    m->type = f->type;
    m->why[0] = 0;
    memset(b, 0, sizeof(*b));
    if (!l)
        return -EPROTO;
    proto_reader_init(&r, f->body, f->len);
    for (size_t i = 0; i < l->n && !r.bad; i++) {
        const struct proto_field *fd = &l->fields[i];
        switch (fd->kind) {
        case PROTO_U8:
        case PROTO_U16:
        case PROTO_U32:
        case PROTO_U64:
        case PROTO_I64:
        case PROTO_COUNT: {
            const uint8_t *p = take(&r, (size_t)width(fd->kind));
            uint64_t v = p ? get_le(p, width(fd->kind)) : 0;
            if (!p)
                break;
            proto_field_set_int(b, fd, v);
            /* A count says how the rest is laid out: out of range, the
             * body cannot be read. Any other value is the handler's to
             * refuse. */
            if (fd->kind == PROTO_COUNT && (v < fd->min || v > fd->max))
                r.bad = true;
            else if (v < fd->min || v > fd->max)
                out_of_range(m, &bad, "%s %llu not in %llu..%llu",
                             short_name(fd), (unsigned long long)v,
                             (unsigned long long)fd->min,
                             (unsigned long long)fd->max);
            break;
        }
        case PROTO_STR:
        case PROTO_PATH: {
            const char *s = get_cstr(&r, fd, m, &text, &bad);
            STORE(b, fd->off, s);
            break;
        }
        case PROTO_BYTES: {
            struct proto_bytes v;
            proto_get_bytes(&r, &v.p, &v.len, fd->max);
            STORE(b, fd->off, v);
            break;
        }
        case PROTO_REST: {
            struct proto_bytes v;
            proto_get_rest(&r, &v.p, &v.len);
            if (v.len < fd->min || v.len > fd->max)
                r.bad = true;
            STORE(b, fd->off, v);
            break;
        }
        case PROTO_STRV: {
            char **v = m->vec + vec;
            char *const *cv = v;
            uint16_t count;
            LOAD(count, b, fd->count);
            if (sizeof(m->vec) / sizeof(m->vec[0]) - vec < (size_t)count + 1) {
                r.bad = true;
                break;
            }
            for (size_t k = 0; k < count && !r.bad; k++)
                v[k] = get_cstr(&r, fd, m, &text, &bad);
            v[count] = NULL;
            vec += (size_t)count + 1;
            STORE(b, fd->off, cv);
            break;
        }
        }
    }
    if (proto_get_done(&r) < 0)
        return -EPROTO;
    return bad;
}
