/*
 * test/unit/proto.c - the agent wire codec: round trips, byte-at-a-time
 * decoding, and truncated, oversized and garbage input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static uint8_t out[4 * PROTO_MAX_FRAME];

static size_t
encode_sample(void)
{
    struct proto_writer w;
    proto_writer_init(&w, out, sizeof(out));
    proto_frame_begin(&w, PROTO_OPEN_TAIL, 7);
    proto_put_u32(&w, 1024);
    proto_put_u8(&w, PROTO_START_BACK);
    proto_put_u8(&w, 0);
    proto_put_u64(&w, 42);
    proto_put_str(&w, "/var/log/x", 10);
    cr_assert_gt(proto_frame_end(&w), 0);
    proto_frame_begin(&w, PROTO_DATA, 9);
    proto_put_raw(&w, "hello", 5);
    cr_assert_eq(proto_frame_end(&w), PROTO_HEADER_LEN + 5);
    return w.len;
}

static void
check_sample_frame(const struct proto_frame *f)
{
    struct proto_reader r;
    char path[PROTO_MAX_PATH];
    cr_assert_eq(f->type, PROTO_OPEN_TAIL);
    cr_assert_eq(f->channel, 7);
    proto_reader_init(&r, f->body, f->len);
    cr_assert_eq(proto_get_u32(&r), 1024);
    cr_assert_eq(proto_get_u8(&r), PROTO_START_BACK);
    cr_assert_eq(proto_get_u8(&r), 0);
    cr_assert_eq(proto_get_u64(&r), 42);
    proto_get_str(&r, path, sizeof(path));
    cr_assert_str_eq(path, "/var/log/x");
    cr_assert_eq(proto_get_done(&r), 0);
}

Test(proto, round_trip_whole)
{
    size_t len = encode_sample(), used;
    struct proto_decoder d;
    struct proto_frame f;
    cr_assert_eq(proto_decoder_init(&d), 0);
    cr_assert_eq(proto_decode(&d, out, len, &used, &f), 1);
    check_sample_frame(&f);
    cr_assert_eq(proto_decode(&d, out + used, len - used, &used, &f), 1);
    cr_assert_eq(f.type, PROTO_DATA);
    cr_assert_eq(f.len, 5);
    cr_assert_eq(memcmp(f.body, "hello", 5), 0);
    cr_assert(proto_decoder_idle(&d));
    proto_decoder_fini(&d);
}

Test(proto, byte_at_a_time)
{
    size_t len = encode_sample(), used;
    struct proto_decoder d;
    struct proto_frame f;
    int frames = 0;
    cr_assert_eq(proto_decoder_init(&d), 0);
    for (size_t i = 0; i < len; i++) {
        int rc = proto_decode(&d, out + i, 1, &used, &f);
        cr_assert_eq(used, 1);
        cr_assert_geq(rc, 0);
        if (rc == 1) {
            if (frames++ == 0)
                check_sample_frame(&f);
            else
                cr_assert_eq(memcmp(f.body, "hello", 5), 0);
        }
    }
    cr_assert_eq(frames, 2);
    proto_decoder_fini(&d);
}

Test(proto, every_split_point)
{
    size_t len = encode_sample();
    for (size_t cut = 0; cut <= len; cut++) {
        struct proto_decoder d;
        struct proto_frame f;
        size_t pos = 0, used;
        int frames = 0;
        cr_assert_eq(proto_decoder_init(&d), 0);
        const size_t parts[2][2] = {{0, cut}, {cut, len}};
        for (int p = 0; p < 2; p++) {
            pos = parts[p][0];
            while (pos < parts[p][1]) {
                int rc = proto_decode(&d, out + pos, parts[p][1] - pos, &used,
                                      &f);
                cr_assert_geq(rc, 0);
                pos += used;
                if (rc == 1 && frames++ == 0)
                    check_sample_frame(&f);
            }
        }
        cr_assert_eq(frames, 2, "cut at %zu", cut);
        proto_decoder_fini(&d);
    }
}

Test(proto, truncated_frame_needs_more)
{
    size_t len = encode_sample(), used;
    struct proto_decoder d;
    struct proto_frame f;
    cr_assert_eq(proto_decoder_init(&d), 0);
    cr_assert_eq(proto_decode(&d, out, 12, &used, &f), 0);
    cr_assert_eq(used, 12);
    cr_assert_not(proto_decoder_idle(&d));
    proto_decoder_reset(&d);
    cr_assert(proto_decoder_idle(&d));
    cr_assert_eq(proto_decode(&d, out, len, &used, &f), 1);
    proto_decoder_fini(&d);
}

Test(proto, oversized_rejected_before_body)
{
    uint8_t hdr[PROTO_HEADER_LEN];
    struct proto_decoder d;
    struct proto_frame f;
    size_t used;
    proto_header(hdr, PROTO_MAX_BODY + 1, PROTO_DATA, 1);
    cr_assert_eq(proto_decoder_init(&d), 0);
    cr_assert_eq(proto_decode(&d, hdr, sizeof(hdr), &used, &f), -EMSGSIZE);
    proto_decoder_reset(&d);
    proto_header(hdr, UINT32_MAX, PROTO_DATA, 1);
    cr_assert_eq(proto_decode(&d, hdr, sizeof(hdr), &used, &f), -EMSGSIZE);
    proto_decoder_reset(&d);
    /* The largest legal body is accepted. */
    uint8_t *big = calloc(1, PROTO_MAX_FRAME);
    proto_header(big, PROTO_MAX_BODY, PROTO_DATA, 1);
    cr_assert_eq(proto_decode(&d, big, PROTO_MAX_FRAME, &used, &f), 1);
    cr_assert_eq(f.len, PROTO_MAX_BODY);
    free(big);
    proto_decoder_fini(&d);
}

Test(proto, bad_type_and_channel)
{
    uint8_t hdr[PROTO_HEADER_LEN];
    struct proto_decoder d;
    struct proto_frame f;
    size_t used;
    cr_assert_eq(proto_decoder_init(&d), 0);
    proto_header(hdr, 0, 0, 1);
    cr_assert_eq(proto_decode(&d, hdr, sizeof(hdr), &used, &f), -EPROTO);
    proto_decoder_reset(&d);
    proto_header(hdr, 0, 200, 1);
    cr_assert_eq(proto_decode(&d, hdr, sizeof(hdr), &used, &f), -EPROTO);
    proto_decoder_reset(&d);
    proto_header(hdr, 0, PROTO_CLOSE, 0x80000000u);
    cr_assert_eq(proto_decode(&d, hdr, sizeof(hdr), &used, &f), -EPROTO);
    proto_decoder_fini(&d);
}

Test(proto, garbage_never_crashes)
{
    struct proto_decoder d;
    struct proto_frame f;
    uint8_t buf[4096];
    unsigned seed = 12345;
    cr_assert_eq(proto_decoder_init(&d), 0);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        size_t pos = 0, used;
        while (pos < len) {
            int rc = proto_decode(&d, buf + pos, len - pos, &used, &f);
            cr_assert_leq(used, len - pos);
            pos += used;
            if (rc < 0) {
                proto_decoder_reset(&d);
                pos++;
            } else if (rc == 1) {
                cr_assert_leq(f.len, PROTO_MAX_BODY);
                /* Parse the body as every message shape would. */
                struct proto_reader r;
                char s[PROTO_MAX_PATH];
                const void *p;
                size_t n;
                proto_reader_init(&r, f.body, f.len);
                proto_get_u32(&r);
                proto_get_str(&r, s, sizeof(s));
                proto_get_bytes(&r, &p, &n, PROTO_MAX_DATA);
                (void)proto_get_done(&r);
            } else {
                cr_assert_eq(pos, len);
            }
        }
    }
    proto_decoder_fini(&d);
}

Test(proto, reader_rejects_short_and_trailing)
{
    uint8_t body[] = {3, 0, 'a', 0, 'b'};
    struct proto_reader r;
    char s[16];
    /* String with an embedded NUL. */
    proto_reader_init(&r, body, sizeof(body));
    proto_get_str(&r, s, sizeof(s));
    cr_assert_eq(proto_get_done(&r), -EPROTO);
    /* String that does not fit the destination. */
    uint8_t body2[] = {3, 0, 'a', 'b', 'c'};
    proto_reader_init(&r, body2, sizeof(body2));
    proto_get_str(&r, s, 3);
    cr_assert_eq(proto_get_done(&r), -EPROTO);
    /* Trailing bytes. */
    proto_reader_init(&r, body2, sizeof(body2));
    proto_get_u16(&r);
    cr_assert_eq(proto_get_done(&r), -EPROTO);
    /* Short integer. */
    proto_reader_init(&r, body2, 3);
    proto_get_u32(&r);
    cr_assert_eq(proto_get_done(&r), -EPROTO);
    /* Bytes field longer than the body or its cap. */
    uint8_t body3[] = {0xff, 0xff, 0, 0, 1};
    const void *p;
    size_t n;
    proto_reader_init(&r, body3, sizeof(body3));
    proto_get_bytes(&r, &p, &n, PROTO_MAX_DATA);
    cr_assert_eq(proto_get_done(&r), -EPROTO);
    cr_assert_eq(n, 0);
}

Test(proto, writer_overflow_is_reported)
{
    uint8_t small[16];
    struct proto_writer w;
    proto_writer_init(&w, small, sizeof(small));
    proto_frame_begin(&w, PROTO_DATA, 1);
    proto_put_raw(&w, "0123456789", 10);
    cr_assert_eq(proto_frame_end(&w), -EMSGSIZE);
    cr_assert_eq(w.len, 0);
    /* A body over the protocol cap fails even with room in the buffer. */
    uint8_t *big = malloc(2 * PROTO_MAX_FRAME);
    uint8_t *src = calloc(1, PROTO_MAX_BODY + 1);
    proto_writer_init(&w, big, 2 * PROTO_MAX_FRAME);
    proto_frame_begin(&w, PROTO_DATA, 1);
    proto_put_raw(&w, src, PROTO_MAX_BODY + 1);
    cr_assert_eq(proto_frame_end(&w), -EMSGSIZE);
    free(src);
    free(big);
}

/* ---- the message table: every message, both ways ---- */

/* Storage for a sample body's strings, vectors and byte strings. */
struct store {
    char text[2 * PROTO_MAX_BODY];
    size_t used;
    char *vec[4][PROTO_MAX_ARGS + 1]; /* a sample's two, and a resample */
    int nvec;
};

static uint64_t
width_max(enum proto_kind k)
{
    switch (k) {
    case PROTO_U8:
        return UINT8_MAX;
    case PROTO_U16:
    case PROTO_COUNT:
        return UINT16_MAX;
    case PROTO_U32:
        return UINT32_MAX;
    default:
        return UINT64_MAX;
    }
}

static int
kind_width(enum proto_kind k)
{
    uint64_t m = width_max(k);
    return m == UINT8_MAX ? 1 : m == UINT16_MAX ? 2 : m == UINT32_MAX ? 4 : 8;
}

/* min, max, or a value between: by variant. */
static uint64_t
pick(uint64_t lo, uint64_t hi, unsigned variant)
{
    switch (variant % 3) {
    case 0:
        return lo;
    case 1:
        return hi;
    default:
        return lo + (hi - lo) / 3;
    }
}

static char *
text_of(struct store *st, size_t n, unsigned seed)
{
    char *s = st->text + st->used;
    cr_assert_lt(st->used + n + 1, sizeof(st->text));
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7 + seed) % 26);
    s[n] = 0;
    st->used += n + 1;
    return s;
}

static void
member_put(union proto_body *b, size_t off, const void *v, size_t n)
{
    memcpy((char *)b + off, v, n);
}

static void
member_get(const union proto_body *b, size_t off, void *v, size_t n)
{
    memcpy(v, (const char *)b + off, n);
}

/* Set field f of b to a valid value chosen by variant. A string, byte
 * string or list entry gets `len` bytes when len is not SIZE_MAX. */
static void
sample_field(const struct proto_field *f, union proto_body *b, unsigned variant,
             struct store *st, size_t len)
{
    uint64_t hi = f->max < width_max(f->kind) ? f->max : width_max(f->kind);
    switch (f->kind) {
    default: /* integers */
        proto_field_set_int(b, f, pick(f->min, hi, variant));
        break;
    case PROTO_COUNT: /* lists stay small: the body must fit a frame */
        proto_field_set_int(b, f, pick(f->min, hi, variant) % 40 + f->min);
        break;
    case PROTO_STR:
    case PROTO_PATH: {
        const char *s = text_of(
                st, len != SIZE_MAX ? len : (size_t)pick(f->min, hi, variant),
                variant);
        member_put(b, f->off, &s, sizeof(s));
        break;
    }
    case PROTO_BYTES:
    case PROTO_REST: {
        size_t n = len != SIZE_MAX ? len : (size_t)pick(f->min, hi, variant);
        char *p = text_of(st, n, variant + 1);
        struct proto_bytes v = {p, n};
        if (n)
            p[n / 2] = 0; /* byte strings may hold a NUL */
        member_put(b, f->off, &v, sizeof(v));
        break;
    }
    case PROTO_STRV: {
        uint16_t count;
        cr_assert_lt(st->nvec, 4);
        char **v = st->vec[st->nvec++];
        member_get(b, f->count, &count, sizeof(count));
        for (size_t k = 0; k < count; k++)
            v[k] = text_of(st, len != SIZE_MAX ? len : (k * 3 + variant) % 9,
                           (unsigned)k);
        v[count] = NULL;
        char *const *cv = v;
        member_put(b, f->off, &cv, sizeof(cv));
        break;
    }
    }
}

static void
sample(const struct proto_layout *l, union proto_body *b, unsigned variant,
       struct store *st)
{
    memset(b, 0, sizeof(*b));
    st->used = 0;
    st->nvec = 0;
    for (size_t i = 0; i < l->n; i++)
        sample_field(&l->fields[i], b, variant + (unsigned)i, st, SIZE_MAX);
}

static const char *
str_of(const union proto_body *b, size_t off)
{
    const char *s;
    member_get(b, off, &s, sizeof(s));
    return s ? s : "";
}

/* Every field of layout l equal in a and b. */
static void
same_body(const struct proto_layout *l, const union proto_body *a,
          const union proto_body *b, const char *what)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct proto_field *f = &l->fields[i];
        switch (f->kind) {
        case PROTO_STR:
        case PROTO_PATH:
            cr_assert_str_eq(str_of(a, f->off), str_of(b, f->off), "%s %s",
                             what, f->name);
            break;
        case PROTO_BYTES:
        case PROTO_REST: {
            struct proto_bytes x, y;
            member_get(a, f->off, &x, sizeof(x));
            member_get(b, f->off, &y, sizeof(y));
            cr_assert_eq(x.len, y.len, "%s %s", what, f->name);
            cr_assert(x.len == 0 || memcmp(x.p, y.p, x.len) == 0, "%s %s", what,
                      f->name);
            break;
        }
        case PROTO_STRV: {
            char *const *x, *const *y;
            uint16_t count;
            member_get(a, f->off, &x, sizeof(x));
            member_get(b, f->off, &y, sizeof(y));
            member_get(a, f->count, &count, sizeof(count));
            for (size_t k = 0; k < count; k++)
                cr_assert_str_eq(x[k], y[k], "%s %s[%zu]", what, f->name, k);
            cr_assert_null(y[count], "%s %s: NULL-terminated", what, f->name);
            break;
        }
        default:
            cr_assert_eq(proto_field_int(a, f), proto_field_int(b, f), "%s %s",
                         what, f->name);
        }
    }
}

/* Every layout of the table: a message type's body, and each request's
 * reply (sent as PROTO_REPLY). */
struct layout_case {
    unsigned type, request;
    const struct proto_layout *l;
    char what[64];
};

static size_t
all_layouts(struct layout_case *cs)
{
    size_t n = 0;
    for (unsigned t = 0; t < PROTO_TYPE_MAX; t++) {
        const struct proto_def *d = proto_def(t);
        if (!d)
            continue;
        cr_assert(d->flags & (PROTO_FROM_HOST | PROTO_FROM_AGENT));
        cr_assert_eq(!!(d->flags & PROTO_FROM_HOST),
                     !(d->flags & PROTO_FROM_AGENT), "%s: one sender", d->name);
        if (t != PROTO_REPLY) {
            cs[n] = (struct layout_case){t, 0, &d->body, ""};
            snprintf(cs[n++].what, sizeof(cs[0].what), "%s", d->name);
        }
        if (d->flags & PROTO_REQUEST) {
            cs[n] = (struct layout_case){PROTO_REPLY, t, &d->reply, ""};
            snprintf(cs[n++].what, sizeof(cs[0].what), "reply to %s", d->name);
        }
    }
    return n;
}

static struct store st, st2;
static struct proto_msg msg, msg2;
static uint8_t frame[PROTO_MAX_FRAME + 64], again[PROTO_MAX_FRAME + 64];

/* Decode a whole frame of buf (as a receiver does) into m. */
static int
decode_frame(const uint8_t *buf, size_t len, unsigned request,
             struct proto_msg *m)
{
    struct proto_decoder d;
    struct proto_frame f;
    size_t used;
    cr_assert_eq(proto_decoder_init(&d), 0);
    cr_assert_eq(proto_decode(&d, buf, len, &used, &f), 1);
    cr_assert_eq(used, len);
    int rc = proto_msg_decode(&f, request, m);
    proto_decoder_fini(&d);
    return rc;
}

Test(proto_table, every_message_encodes_and_decodes_to_itself)
{
    static struct layout_case cases[2 * PROTO_TYPE_MAX];
    size_t ncases = all_layouts(cases);
    cr_assert_eq(ncases, 23 + 11, "every type and every request's reply");
    for (size_t c = 0; c < ncases; c++) {
        for (unsigned v = 0; v < 6; v++) {
            union proto_body b;
            sample(cases[c].l, &b, v, &st);
            ssize_t size = proto_msg_size(cases[c].type, cases[c].request, &b);
            cr_assert_gt(size, 0, "%s: %zd", cases[c].what, size);
            cr_assert_eq(proto_msg_encode(frame, sizeof(frame), cases[c].type,
                                          cases[c].request, 77, &b),
                         size, "%s", cases[c].what);
            cr_assert_eq(frame[4], cases[c].type);
            cr_assert_eq(
                    decode_frame(frame, (size_t)size, cases[c].request, &msg),
                    0, "%s variant %u: %s", cases[c].what, v, msg.why);
            cr_assert_eq(msg.type, cases[c].type);
            same_body(cases[c].l, &b, &msg.body, cases[c].what);
            /* What was decoded is sent again as the same bytes. */
            cr_assert_eq(proto_msg_encode(again, sizeof(again), cases[c].type,
                                          cases[c].request, 77, &msg.body),
                         size);
            cr_assert_eq(memcmp(frame, again, (size_t)size), 0, "%s",
                         cases[c].what);
            /* Short of room by a byte: refused, nothing written. */
            memset(again, 0xee, sizeof(again));
            cr_assert_eq(proto_msg_encode(again, (size_t)size - 1,
                                          cases[c].type, cases[c].request, 77,
                                          &msg.body),
                         -EMSGSIZE);
            cr_assert_eq(again[0], 0xee);
        }
    }
}

/* Is the layout's last field the rest of the body? */
static bool
ends_with_rest(const struct proto_layout *l)
{
    return l->n && l->fields[l->n - 1].kind == PROTO_REST;
}

static int
decode_body(unsigned type, unsigned request, const uint8_t *body, size_t len,
            struct proto_msg *m)
{
    struct proto_frame f = {
            .type = type, .channel = 1, .body = body, .len = len};
    return proto_msg_decode(&f, request, m);
}

Test(proto_table, every_truncation_and_every_extra_byte_is_refused)
{
    static struct layout_case cases[2 * PROTO_TYPE_MAX];
    size_t ncases = all_layouts(cases);
    for (size_t c = 0; c < ncases; c++) {
        union proto_body b;
        const struct proto_layout *l = cases[c].l;
        sample(l, &b, 1, &st); /* the longest values */
        ssize_t size = proto_msg_encode(frame, sizeof(frame), cases[c].type,
                                        cases[c].request, 1, &b);
        cr_assert_gt(size, 0);
        const uint8_t *body = frame + PROTO_HEADER_LEN;
        size_t len = (size_t)size - PROTO_HEADER_LEN;
        /* data: any prefix of at least one byte is a shorter data frame */
        size_t valid_from = ends_with_rest(l) ? 1 : len;
        for (size_t cut = 0; cut < len; cut++) {
            int rc = decode_body(cases[c].type, cases[c].request, body, cut,
                                 &msg);
            if (cut >= valid_from)
                cr_assert_eq(rc, 0, "%s cut at %zu", cases[c].what, cut);
            else
                cr_assert_eq(rc, -EPROTO, "%s cut at %zu of %zu: %d",
                             cases[c].what, cut, len, rc);
        }
        if (!ends_with_rest(l)) {
            frame[size] = 'x';
            cr_assert_eq(decode_body(cases[c].type, cases[c].request, body,
                                     len + 1, &msg),
                         -EPROTO, "%s with a byte more", cases[c].what);
        }
    }
}

/* Write layout l's fields from b to w, ignoring every cap: a body a
 * hostile peer could send. */
static void
forge(const struct proto_layout *l, const union proto_body *b,
      struct proto_writer *w)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct proto_field *f = &l->fields[i];
        switch (f->kind) {
        case PROTO_STR:
        case PROTO_PATH: {
            const char *s = str_of(b, f->off);
            proto_put_str(w, s, strlen(s));
            break;
        }
        case PROTO_BYTES:
        case PROTO_REST: {
            struct proto_bytes v;
            member_get(b, f->off, &v, sizeof(v));
            if (f->kind == PROTO_BYTES)
                proto_put_bytes(w, v.p, v.len);
            else
                proto_put_raw(w, v.p, v.len);
            break;
        }
        case PROTO_STRV: {
            char *const *v;
            uint16_t count;
            member_get(b, f->off, &v, sizeof(v));
            member_get(b, f->count, &count, sizeof(count));
            /* A count forged past the entries sampled: what there is. */
            for (size_t k = 0; k < count && v[k]; k++)
                proto_put_str(w, v[k], strlen(v[k]));
            break;
        }
        default: {
            uint64_t v = proto_field_int(b, f);
            uint8_t le[8];
            for (int k = 0; k < 8; k++)
                le[k] = (uint8_t)(v >> (8 * k));
            proto_put_raw(w, le, (size_t)kind_width(f->kind));
        }
        }
    }
    cr_assert_not(w->overflow);
}

/* The sender refuses b with want_send; a receiver given it anyway
 * answers want_recv. */
static void
refused(const struct layout_case *c, const union proto_body *b, int want_send,
        int want_recv, const char *field, const char *how)
{
    struct proto_writer w;
    cr_assert_eq(proto_msg_size(c->type, c->request, b), want_send, "%s %s %s",
                 c->what, field, how);
    memset(frame, 0xee, 16);
    cr_assert_eq(
            proto_msg_encode(frame, sizeof(frame), c->type, c->request, 1, b),
            want_send, "%s %s %s", c->what, field, how);
    cr_assert_eq(frame[0], 0xee, "nothing written");
    proto_writer_init(&w, frame, sizeof(frame));
    forge(c->l, b, &w);
    int rc = decode_body(c->type, c->request, frame, w.len, &msg2);
    cr_assert_eq(rc, want_recv, "%s %s %s: decoded %d", c->what, field, how,
                 rc);
    if (rc == -EINVAL)
        cr_assert_not_null(strstr(msg2.why, strrchr(field, '.')
                                                    ? strrchr(field, '.') + 1
                                                    : field),
                           "%s: why names the field: %s", c->what, msg2.why);
}

Test(proto_table, every_oversize_field_and_bad_value_is_refused)
{
    static struct layout_case cases[2 * PROTO_TYPE_MAX];
    size_t ncases = all_layouts(cases);
    unsigned checked = 0;
    for (size_t c = 0; c < ncases; c++) {
        const struct proto_layout *l = cases[c].l;
        for (size_t i = 0; i < l->n; i++) {
            const struct proto_field *f = &l->fields[i];
            union proto_body b;
            sample(l, &b, 0, &st2);
            switch (f->kind) {
            case PROTO_STR:
            case PROTO_PATH:
            case PROTO_BYTES:
            case PROTO_REST:
            case PROTO_STRV:
                if (f->max < PROTO_MAX_BODY) {
                    if (f->kind == PROTO_STRV) { /* one entry, too long */
                        uint16_t one = 1;
                        member_put(&b, f->count, &one, sizeof(one));
                    }
                    sample_field(f, &b, 0, &st2, (size_t)f->max + 1);
                    refused(&cases[c], &b,
                            f->kind == PROTO_PATH ? -ENAMETOOLONG : -E2BIG,
                            -EPROTO, f->name, "one byte over its cap");
                    checked++;
                }
                if (f->min > 0) {
                    sample(l, &b, 0, &st2);
                    sample_field(f, &b, 0, &st2, (size_t)f->min - 1);
                    refused(&cases[c], &b, -EINVAL,
                            f->kind == PROTO_REST ? -EPROTO : -EINVAL, f->name,
                            "shorter than allowed");
                    checked++;
                }
                break;
            default: {
                /* A list count out of its range cannot be read; any other
                 * value out of its range is refused as a value. */
                int recv = f->kind == PROTO_COUNT ? -EPROTO : -EINVAL;
                if (f->max < width_max(f->kind)) {
                    proto_field_set_int(&b, f, f->max + 1);
                    refused(&cases[c], &b,
                            f->kind == PROTO_COUNT ? -E2BIG : -EINVAL, recv,
                            f->name, "above its range");
                    checked++;
                }
                if (f->min > 0) {
                    sample(l, &b, 0, &st2);
                    proto_field_set_int(&b, f, f->min - 1);
                    refused(&cases[c], &b, -EINVAL, recv, f->name,
                            "below its range");
                    checked++;
                }
            }
            }
        }
    }
    cr_assert_gt(checked, 30, "the table has caps to check (%u)", checked);
}

Test(proto_table, a_string_holding_a_nul_is_malformed)
{
    uint8_t body[] = {3, 0, 'a', 0, 'b'}; /* stat's path */
    cr_assert_eq(decode_body(PROTO_STAT, 0, body, sizeof(body), &msg), -EPROTO);
    body[3] = 'x';
    cr_assert_eq(decode_body(PROTO_STAT, 0, body, sizeof(body), &msg), 0);
    cr_assert_str_eq(msg.body.stat.path, "axb");
}

Test(proto_table, names_senders_and_answers)
{
    cr_assert_str_eq(proto_type_name(PROTO_OPEN_TAIL), "open_tail");
    cr_assert_str_eq(proto_type_name(PROTO_REPLY), "reply");
    cr_assert_str_eq(proto_type_name(99), "?");
    cr_assert_null(proto_def(0));
    cr_assert_null(proto_def(PROTO_TYPE_MAX));
    cr_assert(proto_type_from_host(PROTO_STAT));
    cr_assert_not(proto_type_from_agent(PROTO_STAT));
    cr_assert(proto_type_from_agent(PROTO_REPLY));
    cr_assert(proto_def(PROTO_OPEN_PROC)->flags & PROTO_OPENS);
    cr_assert(proto_def(PROTO_FSEEK)->flags & PROTO_REQUEST);
    /* The requests that wait on a process or a pipe (no deadline). */
    unsigned unbounded = 0;
    for (unsigned t = 0; t < PROTO_TYPE_MAX; t++)
        if (proto_def(t) && (proto_def(t)->flags & PROTO_UNBOUNDED))
            unbounded |= 1u << t;
    cr_assert_eq(unbounded, (1u << PROTO_WAIT) | (1u << PROTO_STDIN) |
                                    (1u << PROTO_FREAD) | (1u << PROTO_FWRITE));
    /* A reply's layout is its request's; a type that answers nothing
     * has none. */
    union proto_body b = {.exec_reply = {.proc = 7}};
    cr_assert_eq(proto_msg_size(PROTO_REPLY, PROTO_EXEC, &b),
                 PROTO_HEADER_LEN + 8);
    cr_assert_eq(proto_msg_size(PROTO_REPLY, PROTO_KILL, &b), PROTO_HEADER_LEN);
    cr_assert_eq(proto_msg_size(PROTO_REPLY, PROTO_ACK, &b), -EPROTO);
    cr_assert_eq(proto_msg_size(PROTO_REPLY, 0, &b), -EPROTO);
}

Test(proto_table, wire_bytes_are_version_2s)
{
    /* open_tail as docs/protocol.md lays it out, byte for byte. */
    static const uint8_t want[] = {
            19, 0, 0,   0,   PROTO_OPEN_TAIL,
            7,  0, 0,   0, /* header */
            0,  0, 16,  0, /* credit 1 MiB */
            3,             /* start back */
            1,             /* follow fd */
            42, 0, 0,   0,   0,
            0,  0, 0,             /* offset */
            3,  0, '/', 'x', 'y', /* path */
    };
    union proto_body b = {.open = {.credit = 1u << 20,
                                   .start = PROTO_START_BACK,
                                   .flags = PROTO_TAIL_FOLLOW_DESCRIPTOR,
                                   .offset = 42,
                                   .path = "/xy"}};
    cr_assert_eq(
            proto_msg_encode(frame, sizeof(frame), PROTO_OPEN_TAIL, 0, 7, &b),
            (ssize_t)sizeof(want));
    cr_assert_eq(memcmp(frame, want, sizeof(want)), 0);
}
