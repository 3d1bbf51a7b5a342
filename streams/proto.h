/*
 * proto.h - the agent wire protocol (docs/protocol.md), shared by
 * provium-agent and the host's agent client: constants, the field
 * writer/reader, and the resumable frame decoder.
 *
 * A frame is a 9-byte little-endian header {u32 body length, u8 type,
 * u32 channel} followed by the body. Every field has a cap; the decoder
 * rejects a body larger than PROTO_MAX_BODY before reading it.
 */
#ifndef PROVIUM_PROTO_H
#define PROVIUM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_VERSION 2 /* 2: hello_ok carries the agent's instance; the wait
                          * reply reports output that was not recorded */
#define PROTO_MAGIC 0x4d565250u /* "PRVM" as little-endian bytes */

#define PROTO_HEADER_LEN 9
#define PROTO_MAX_DATA 65536 /* data frames, read/write/stdin payloads */
#define PROTO_MAX_BODY (PROTO_MAX_DATA + 512)
#define PROTO_MAX_FRAME (PROTO_HEADER_LEN + PROTO_MAX_BODY)
#define PROTO_MAX_PATH 4096 /* path fields, NUL excluded */
#define PROTO_MAX_MSG 1024  /* error / note messages */
#define PROTO_MAX_FACT 256  /* os, kernel, agent version */
#define PROTO_MAX_ARGS 256  /* argv entries; env entries likewise */
#define PROTO_MAX_ARG 4096  /* one argv or env entry */
#define PROTO_MAX_CHANNEL 0x7fffffffu
#define PROTO_DEFAULT_WINDOW (1024u * 1024u) /* initial credit, bytes */

/* Message types. Host-to-agent are 1..63, agent-to-host 64..127. */
enum proto_type {
    PROTO_HELLO = 1,        /* ch 0: magic, version_min, version_max */
    PROTO_OPEN_TAIL = 2,    /* credit, start, flags, offset, path */
    PROTO_OPEN_FD = 3,      /* credit, handle */
    PROTO_OPEN_PROC = 4,    /* credit, proc, which */
    PROTO_CREDIT = 5,       /* bytes */
    PROTO_CLOSE = 6,        /* (empty): cancel the channel */
    PROTO_EXEC = 7,         /* cwd, argc, envc, argv..., env... */
    PROTO_WAIT = 8,         /* proc */
    PROTO_KILL = 9,         /* proc, signal */
    PROTO_STDIN = 10,       /* proc, bytes */
    PROTO_STDIN_CLOSE = 11, /* proc */
    PROTO_FOPEN = 12,       /* flags, mode, path */
    PROTO_FREAD = 13,       /* handle, count */
    PROTO_FWRITE = 14,      /* handle, bytes */
    PROTO_FSEEK = 15,       /* handle, offset (i64), whence */
    PROTO_FCLOSE = 16,      /* handle */
    PROTO_STAT = 17,        /* path */

    PROTO_HELLO_OK = 64, /* ch 0: magic, version, os, kernel, agent version,
                            instance */
    PROTO_ACK = 65,      /* stream open succeeded: u64 start offset */
    PROTO_DATA = 66,     /* raw bytes, 1..PROTO_MAX_DATA */
    PROTO_NOTE = 67,     /* code, value, message */
    PROTO_END = 68,      /* errno (0 = clean), reason, message */
    PROTO_ERROR = 69,    /* errno (> 0), message: a request failed */
    PROTO_REPLY = 70,    /* a request succeeded: body per request */
};

/* PROTO_OPEN_TAIL start modes. */
enum proto_start {
    PROTO_START_END = 0,       /* bytes appended after the open */
    PROTO_START_BEGINNING = 1, /* from byte 0 */
    PROTO_START_OFFSET = 2,    /* from byte `offset` */
    PROTO_START_BACK = 3,      /* `offset` bytes before the end, >= 0 */
};

/* PROTO_OPEN_TAIL flags. */
#define PROTO_TAIL_FOLLOW_DESCRIPTOR 0x1u /* like tail -f, not tail -F */

/* PROTO_OPEN_PROC which. */
enum proto_which {
    PROTO_STDOUT = 1,
    PROTO_STDERR = 2,
};

/* PROTO_NOTE codes. */
enum proto_note {
    PROTO_NOTE_TRUNCATED = 1, /* value: the size seen; restarted at 0 */
    PROTO_NOTE_ROTATED = 2,   /* value: inode of the new file */
};

/* PROTO_END reasons. */
enum proto_reason {
    PROTO_END_EOF = 0,     /* the source ended (pipe EOF, handle closed) */
    PROTO_END_DELETED = 1, /* the tailed file was deleted */
    PROTO_END_CLOSED = 2,  /* the host closed the channel */
    PROTO_END_ERROR = 3,   /* errno and message say why */
};

/* PROTO_FOPEN flags. */
#define PROTO_O_READ 0x1u
#define PROTO_O_WRITE 0x2u
#define PROTO_O_CREATE 0x4u
#define PROTO_O_APPEND 0x8u
#define PROTO_O_TRUNCATE 0x10u
#define PROTO_O_ALL 0x1fu

/* PROTO_FSEEK whence. */
enum proto_whence {
    PROTO_SEEK_SET = 0,
    PROTO_SEEK_CUR = 1,
    PROTO_SEEK_END = 2,
};

/* PROTO_REPLY to PROTO_WAIT: how the process ended. */
enum proto_exit {
    PROTO_EXITED = 0,   /* value: exit code */
    PROTO_SIGNALED = 1, /* value: signal number */
};
/* The rest of a wait reply (version 2): for stdout, then stderr,
 * {u64 recorded, u32 errno, u64 discarded, str cause}. errno 0: every
 * byte the process wrote so far was recorded; otherwise output past
 * `recorded` bytes was read and thrown away (`discarded` bytes so far)
 * because of `cause` (e.g. "spool: No space left on device"). */

/* Name of a type for messages ("data", "open_tail"), "?" if unknown. */
const char *proto_type_name(unsigned type);
/* Is type one the given side may send? */
bool proto_type_from_host(unsigned type);
bool proto_type_from_agent(unsigned type);

/*
 * Writer: appends fields to a caller-owned buffer. Overflow is sticky and
 * reported by proto_frame_end(), so a sequence of puts needs one check.
 */
struct proto_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t frame; /* offset of the open frame's header */
    bool overflow;
};

void proto_writer_init(struct proto_writer *w, void *buf, size_t cap);
/* Start a frame: writes a header whose length is filled in by _end. */
void proto_frame_begin(struct proto_writer *w, unsigned type, uint32_t channel);
/* Finish the frame. Returns the frame's total length, or -EMSGSIZE if the
 * body passed PROTO_MAX_BODY or the buffer (the frame is then dropped). */
ssize_t proto_frame_end(struct proto_writer *w);
void proto_put_u8(struct proto_writer *w, uint8_t v);
void proto_put_u16(struct proto_writer *w, uint16_t v);
void proto_put_u32(struct proto_writer *w, uint32_t v);
void proto_put_u64(struct proto_writer *w, uint64_t v);
/* u16 length + bytes. */
void proto_put_str(struct proto_writer *w, const char *s, size_t len);
/* u32 length + bytes. */
void proto_put_bytes(struct proto_writer *w, const void *p, size_t len);
/* Raw bytes, no length (the body of PROTO_DATA). */
void proto_put_raw(struct proto_writer *w, const void *p, size_t len);

/* Fill in a 9-byte header at hdr. */
void proto_header(void *hdr, uint32_t body_len, unsigned type,
                  uint32_t channel);

/*
 * Reader: takes fields from one frame body with bounds checks. Errors are
 * sticky; proto_get_done() returns 0 if every field was well formed and
 * the body was consumed exactly, else -EPROTO.
 */
struct proto_reader {
    const uint8_t *p;
    size_t len;
    bool bad;
};

void proto_reader_init(struct proto_reader *r, const void *body, size_t len);
uint8_t proto_get_u8(struct proto_reader *r);
uint16_t proto_get_u16(struct proto_reader *r);
uint32_t proto_get_u32(struct proto_reader *r);
uint64_t proto_get_u64(struct proto_reader *r);
/* A string field into dst (cap bytes including the NUL); rejects a
 * string that does not fit or contains a NUL byte. */
void proto_get_str(struct proto_reader *r, char *dst, size_t cap);
/* A u32-length bytes field, no copy: *p points into the body. */
void proto_get_bytes(struct proto_reader *r, const void **p, size_t *len,
                     size_t max);
/* The rest of the body (PROTO_DATA). */
void proto_get_rest(struct proto_reader *r, const void **p, size_t *len);
int proto_get_done(const struct proto_reader *r);

/* One decoded frame. body points into the decoder or the input buffer
 * and is valid until the next proto_decode() call. */
struct proto_frame {
    unsigned type;
    uint32_t channel;
    const uint8_t *body;
    size_t len;
};

/* Resumable decoder: holds a partial header or body across calls. */
struct proto_decoder {
    uint8_t hdr[PROTO_HEADER_LEN];
    size_t hdr_have;
    uint32_t body_len;
    size_t body_have;
    uint8_t *body; /* PROTO_MAX_BODY bytes, allocated by _init */
};

int proto_decoder_init(struct proto_decoder *d);
void proto_decoder_fini(struct proto_decoder *d);
/* Forget a partial frame (a new connection). */
void proto_decoder_reset(struct proto_decoder *d);
/* Is the decoder between frames? */
bool proto_decoder_idle(const struct proto_decoder *d);

/*
 * Feed len bytes. *used receives how many were consumed. Returns 1 when a
 * whole frame is in *f (call again with the rest of the input), 0 when all
 * input was consumed without completing a frame ("need more"), -EMSGSIZE
 * for a body over PROTO_MAX_BODY, -EPROTO for a malformed header (type 0,
 * unknown type). After an error the decoder must be reset. Never reads
 * outside buf; never allocates.
 */
int proto_decode(struct proto_decoder *d, const void *buf, size_t len,
                 size_t *used, struct proto_frame *f);

#endif
