/*
 * proto.c - the agent wire codec: field writer, field reader and the
 * resumable frame decoder (docs/protocol.md). Shared by provium-agent and
 * the host's agent client, so it depends on nothing but libc. Input is
 * untrusted on both sides: every length is checked before it is used.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[128] = {
        [PROTO_HELLO] = "hello",
        [PROTO_OPEN_TAIL] = "open_tail",
        [PROTO_OPEN_FD] = "open_fd",
        [PROTO_OPEN_PROC] = "open_proc",
        [PROTO_CREDIT] = "credit",
        [PROTO_CLOSE] = "close",
        [PROTO_EXEC] = "exec",
        [PROTO_WAIT] = "wait",
        [PROTO_KILL] = "kill",
        [PROTO_STDIN] = "stdin",
        [PROTO_STDIN_CLOSE] = "stdin_close",
        [PROTO_FOPEN] = "fopen",
        [PROTO_FREAD] = "fread",
        [PROTO_FWRITE] = "fwrite",
        [PROTO_FSEEK] = "fseek",
        [PROTO_FCLOSE] = "fclose",
        [PROTO_STAT] = "stat",
        [PROTO_HELLO_OK] = "hello_ok",
        [PROTO_ACK] = "ack",
        [PROTO_DATA] = "data",
        [PROTO_NOTE] = "note",
        [PROTO_END] = "end",
        [PROTO_ERROR] = "error",
        [PROTO_REPLY] = "reply",
};

const char *
proto_type_name(unsigned type)
{
    if (type < 128 && type_names[type])
        return type_names[type];
    return "?";
}

bool
proto_type_from_host(unsigned type)
{
    return type >= PROTO_HELLO && type <= PROTO_STAT;
}

bool
proto_type_from_agent(unsigned type)
{
    return type >= PROTO_HELLO_OK && type <= PROTO_REPLY;
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
