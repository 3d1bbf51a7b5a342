/*
 * proto.h - the agent wire protocol (docs/protocol.md), shared by
 * provium-agent and the host's agent client: constants, the message
 * table and its codec, the field writer/reader under it, and the
 * resumable frame decoder.
 *
 * A frame is a 9-byte little-endian header {u32 body length, u8 type,
 * u32 channel} followed by the body. Every field has a cap; the decoder
 * rejects a body larger than PROTO_MAX_BODY before reading it.
 *
 * The message table (proto.c) is the definition of the protocol: per
 * type its name, who sends it, what answers it, and the layout of its
 * body (and of its reply), field by field, with each field's caps and
 * range. Both ends encode and decode every body through it
 * (proto_msg_encode, proto_msg_decode) into the structs below, so no
 * body is written by hand on one side and read by hand on the other.
 */
#ifndef PROVIUM_PROTO_H
#define PROVIUM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* 2: hello_ok carries the agent's instance; the wait reply reports
 * output that was not recorded. */
#define PROTO_VERSION 2
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
enum proto_note_code {
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
/* ------------------------------------------------------------------ */
/* Message bodies: one struct per body layout (docs/protocol.md). Each  */
/* member is one field of the table in proto.c, which gives its wire    */
/* order, its caps and its range.                                       */
/* ------------------------------------------------------------------ */

/* Strings are C strings: encoding sends strlen bytes (NULL is ""), and
 * decoding points them into the struct proto_msg decoded into, with
 * the terminator added; a string on the wire never holds a NUL. */

/* A byte string (bytes, or the rest of the body). Encoding sends len
 * bytes at p; decoding points p into the frame's body (valid as long as
 * the frame is: until the next proto_decode). */
struct proto_bytes {
    const void *p;
    size_t len;
};

/* hello (host, channel 0): the protocol versions the host speaks. */
struct proto_hello {
    uint32_t magic; /* PROTO_MAGIC */
    uint32_t version_min, version_max;
};

/* open_tail, open_fd, open_proc (host): open a stream channel. */
struct proto_open {
    uint32_t credit; /* bytes of data the agent may send at first */
    /* open_tail */
    uint8_t start;    /* enum proto_start */
    uint8_t flags;    /* PROTO_TAIL_* */
    uint64_t offset;  /* PROTO_START_OFFSET / _BACK */
    const char *path; /* the file to follow */
    /* open_fd */
    uint64_t handle; /* from fopen */
    /* open_proc */
    uint64_t proc; /* from exec */
    uint8_t which; /* enum proto_which */
};

/* credit (host): more bytes the agent may send on a stream channel. */
struct proto_credit {
    uint32_t bytes;
};

/* exec (host). */
struct proto_exec {
    const char *cwd; /* "" = the agent's */
    uint16_t argc;   /* 1 .. PROTO_MAX_ARGS */
    uint16_t envc;   /* 0 .. PROTO_MAX_ARGS */
    /* argc and envc entries, typed as exec(3) takes them; decoded, each
     * list is also NULL-terminated */
    char *const *argv;
    char *const *env; /* "K=V", added to the agent's environment */
};

/* wait, stdin_close (host): a process. */
struct proto_proc {
    uint64_t proc;
};

/* kill (host). */
struct proto_kill {
    uint64_t proc;
    uint32_t signal;
};

/* stdin (host): bytes for a process's standard input. */
struct proto_input {
    uint64_t proc;
    struct proto_bytes data; /* at most PROTO_MAX_DATA */
};

/* fopen (host). */
struct proto_fopen {
    uint32_t flags; /* PROTO_O_* */
    uint32_t mode;  /* of a created file; 0 = 0644 */
    const char *path;
};

/* fread (host). */
struct proto_fread {
    uint64_t handle;
    uint32_t count; /* at most PROTO_MAX_DATA */
};

/* fwrite (host). */
struct proto_fwrite {
    uint64_t handle;
    struct proto_bytes data; /* at most PROTO_MAX_DATA */
};

/* fseek (host). */
struct proto_fseek {
    uint64_t handle;
    int64_t offset;
    uint8_t whence; /* enum proto_whence */
};

/* fclose (host): a file handle. */
struct proto_handle {
    uint64_t handle;
};

/* stat (host). */
struct proto_stat {
    const char *path;
};

/* hello_ok (agent, channel 0): the handshake's answer. */
struct proto_hello_ok {
    uint32_t magic;   /* PROTO_MAGIC */
    uint32_t version; /* the one chosen */
    const char *os, *kernel, *agent_version;
    /* Random, never 0, fixed for the agent process's life (version 2):
     * the same instance after a reconnect is the same agent. */
    uint64_t instance;
};

/* ack (agent): a stream open succeeded. */
struct proto_ack {
    uint64_t offset; /* where the stream starts in its source */
};

/* note (agent): something the host should know about a stream. */
struct proto_note {
    uint8_t code; /* enum proto_note_code */
    uint64_t value;
    const char *message;
};

/* end (agent): nothing more follows on the stream channel. */
struct proto_end {
    uint32_t err;   /* errno, 0 for a clean end */
    uint8_t reason; /* enum proto_reason */
    const char *message;
};

/* error (agent): a request or an open failed (or the handshake). */
struct proto_error {
    uint32_t err; /* errno, > 0 */
    const char *message;
};

/* Replies (agent), by request. kill, stdin_close, fclose: empty. */
struct proto_exec_reply {
    uint64_t proc;
};
/* wait: what became of one output (stdout, then stderr) (version 2). */
struct proto_output {
    uint64_t recorded;   /* bytes in the agent's spool when it answered */
    uint32_t err;        /* 0: every byte was recorded; else why not */
    uint64_t discarded;  /* bytes read past `recorded` and thrown away */
    const char *message; /* "stdout not recorded past N bytes: ..." */
};
struct proto_wait_reply {
    uint8_t how;    /* enum proto_exit */
    uint32_t value; /* exit code or signal */
    struct proto_output out[2];
};
struct proto_written { /* stdin, fwrite */
    uint32_t written;
};
struct proto_fopen_reply {
    uint64_t handle;
};
struct proto_fread_reply {
    struct proto_bytes data; /* empty at end of file */
};
struct proto_fseek_reply {
    uint64_t offset;
};
struct proto_stat_reply {
    uint64_t size;
    uint32_t mode;
    int64_t mtime_ns;
};

/* Any body: the member named for the type (for a reply, the request's
 * name + _reply). The stdin request's is `input` (stdin is a macro in
 * some C libraries). */
union proto_body {
    struct proto_hello hello;
    struct proto_open open; /* open_tail, open_fd, open_proc */
    struct proto_credit credit;
    struct proto_exec exec;
    struct proto_proc wait;
    struct proto_kill kill;
    struct proto_input input;
    struct proto_proc stdin_close;
    struct proto_fopen fopen;
    struct proto_fread fread;
    struct proto_fwrite fwrite;
    struct proto_fseek fseek;
    struct proto_handle fclose;
    struct proto_stat stat;
    struct proto_hello_ok hello_ok;
    struct proto_ack ack;
    struct proto_bytes data; /* 1 .. PROTO_MAX_DATA bytes */
    struct proto_note note;
    struct proto_end end;
    struct proto_error error;
    struct proto_exec_reply exec_reply;
    struct proto_wait_reply wait_reply;
    struct proto_written input_reply;
    struct proto_fopen_reply fopen_reply;
    struct proto_fread_reply fread_reply;
    struct proto_written fwrite_reply;
    struct proto_fseek_reply fseek_reply;
    struct proto_stat_reply stat_reply;
};

/* A decoded message: the body, and the storage its strings and vectors
 * point into, so that decoding allocates nothing. About 70 KiB: keep one
 * per connection, not on the stack. */
struct proto_msg {
    unsigned type; /* the frame's */
    union proto_body body;
    char why[160]; /* proto_msg_decode's -EINVAL: which value, and why */
    char *vec[2 * (PROTO_MAX_ARGS + 1)];
    char text[PROTO_MAX_BODY];
};

/* ------------------------------------------------------------------ */
/* The message table.                                                  */
/* ------------------------------------------------------------------ */

#define PROTO_TYPE_MAX 128 /* types are below this */

enum proto_kind {
    PROTO_U8,
    PROTO_U16,
    PROTO_U32,
    PROTO_U64,
    PROTO_I64,   /* two's complement in a u64 */
    PROTO_STR,   /* u16 length + bytes, no NUL inside: a C string */
    PROTO_PATH,  /* a str naming a file (too long: ENAMETOOLONG) */
    PROTO_BYTES, /* u32 length + bytes */
    PROTO_REST,  /* the rest of the body */
    PROTO_COUNT, /* u16: how many entries a later PROTO_STRV has */
    PROTO_STRV,  /* that many str */
};

/* One field of a body, in wire order. */
struct proto_field {
    const char *name; /* its member in union proto_body */
    enum proto_kind kind;
    size_t off;   /* of the member in union proto_body */
    size_t count; /* PROTO_STRV: the offset of its PROTO_COUNT */
    /* Integers: the values allowed. PROTO_COUNT: the entries allowed.
     * Strings and byte strings (one entry of a STRV): the lengths. */
    uint64_t min, max;
};

struct proto_layout {
    const struct proto_field *fields;
    size_t n;
};

/* struct proto_def flags */
#define PROTO_FROM_HOST 0x1u  /* the host sends it */
#define PROTO_FROM_AGENT 0x2u /* the agent sends it */
#define PROTO_OPENS 0x4u      /* opens a stream channel: ack or error */
#define PROTO_REQUEST 0x8u    /* opens a request channel: reply or error */
/* A request that may wait on a process or a pipe for as long as that
 * takes: the host gives it no deadline (docs/protocol.md). */
#define PROTO_UNBOUNDED 0x10u

struct proto_def {
    const char *name; /* "open_tail" */
    unsigned flags;
    struct proto_layout body;
    struct proto_layout reply; /* PROTO_REQUEST: the reply's body */
};

/* The table's entry for type, or NULL if the protocol has no such type. */
const struct proto_def *proto_def(unsigned type);
/* An integer field of b (any integer kind, PROTO_COUNT included), by its
 * descriptor: for code that walks the table (the codec, its tests). */
uint64_t proto_field_int(const union proto_body *b,
                         const struct proto_field *f);
void proto_field_set_int(union proto_body *b, const struct proto_field *f,
                         uint64_t v);

/* Name of a type for messages ("data", "open_tail"), "?" if unknown. */
const char *proto_type_name(unsigned type);
/* Is type one the given side may send? */
bool proto_type_from_host(unsigned type);
bool proto_type_from_agent(unsigned type);

/* ------------------------------------------------------------------ */
/* The field writer and reader under the table. Both ends send and     */
/* receive through proto_msg_*; these are for the codec itself and for */
/* tests that forge what a hostile peer could send.                    */
/* ------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------ */
/* Messages through the table: what both ends use.                     */
/* ------------------------------------------------------------------ */

/*
 * For PROTO_REPLY the layout is that of the reply to `request` (the type
 * of the request the channel carries); for every other type request is
 * not used.
 *
 * proto_msg_size: the length of the frame (header included) that would
 * carry body b, after checking b against the table: -EINVAL for a value
 * outside its range or a string shorter than allowed; -E2BIG for a
 * string, byte string or list longer than its cap (-ENAMETOOLONG for a
 * path) or a body over PROTO_MAX_BODY; -EPROTO for a type that has no
 * body of that kind.
 */
ssize_t proto_msg_size(unsigned type, unsigned request,
                       const union proto_body *b);
/* Write the frame into buf (cap bytes: proto_msg_size's are enough, so a
 * sender reserves that much in its output queue and encodes in place).
 * Returns its length, the errors above, or -EMSGSIZE when cap is short. */
ssize_t proto_msg_encode(void *buf, size_t cap, unsigned type, unsigned request,
                         uint32_t channel, const union proto_body *b);
/* What both ends send with: encode the frame in place at the tail of an
 * output queue (streams/outq.c). 0, the errors of proto_msg_size, or
 * -ENOBUFS when the queue will not take it (its limit, or memory). */
struct outq;
int proto_msg_queue(struct outq *q, unsigned type, unsigned request,
                    uint32_t channel, const union proto_body *b);
/*
 * Decode the body of frame f into m (the body's strings point into m,
 * its byte strings into f's body). Returns 0; -EPROTO when the body is
 * malformed for its type (short, a field over its cap, a string holding
 * a NUL, a list count out of range, bytes left over), so the connection
 * cannot go on; or -EINVAL when the body is well formed but a value is
 * outside its range or a string is too short: m->why then says which,
 * and the receiver can answer EINVAL. Malformed wins over a bad value.
 */
int proto_msg_decode(const struct proto_frame *f, unsigned request,
                     struct proto_msg *m);

#endif
