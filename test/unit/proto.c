/*
 * test/unit/proto.c - the agent wire codec: round trips, byte-at-a-time
 * decoding, and truncated, oversized and garbage input.
 */
#include <criterion/criterion.h>
#include <errno.h>
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
