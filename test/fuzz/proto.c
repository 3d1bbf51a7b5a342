/*
 * test/fuzz/proto.c - libFuzzer target for the agent frame decoder and
 * the body reader: the input is split at a point taken from its first
 * byte, so resumption across calls is exercised too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_body(const struct proto_frame *f)
{
    struct proto_reader r;
    char s[PROTO_MAX_PATH];
    const void *p;
    size_t n;

    proto_reader_init(&r, f->body, f->len);
    switch (f->channel % 3) {
    case 0:
        proto_get_u32(&r);
        proto_get_u8(&r);
        proto_get_u64(&r);
        proto_get_str(&r, s, sizeof(s));
        break;
    case 1:
        proto_get_u64(&r);
        proto_get_bytes(&r, &p, &n, PROTO_MAX_DATA);
        break;
    default:
        proto_get_rest(&r, &p, &n);
        break;
    }
    (void)proto_get_done(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_decoder d;
    static int ready;
    struct proto_frame f;
    size_t split, pos = 0, used;

    if (!ready) {
        if (proto_decoder_init(&d) < 0)
            abort();
        ready = 1;
    }
    proto_decoder_reset(&d);
    if (size == 0)
        return 0;
    split = 1 + data[0] % (size < 64 ? size : 64);
    while (pos < size) {
        size_t end = pos + split < size ? pos + split : size;
        while (pos < end) {
            int rc = proto_decode(&d, data + pos, end - pos, &used, &f);
            if (used > end - pos)
                abort();
            pos += used;
            if (rc < 0) {
                proto_decoder_reset(&d);
                pos++;
            } else if (rc == 1) {
                if (f.len > PROTO_MAX_BODY)
                    abort();
                parse_body(&f);
            }
        }
    }
    return 0;
}
