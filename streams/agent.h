/*
 * agent.h - the host side of the agent protocol (docs/protocol.md), one
 * section per file: the per-VM agent client, and the tail engine that
 * feeds streams from it.
 *
 * Conventions as in streams.h: 0 / -errno, nothing logs, destructors
 * accept NULL. Callbacks run from the reactor; a callback may close its
 * own channel or others, but must not free the client.
 */
#ifndef PROVIUM_AGENT_H
#define PROVIUM_AGENT_H

#include <time.h>

#include "proto.h"
#include "streams.h"

/* ------------------------------------------------------------------ */
/* agent_client.c - one connection to one VM's agent: connect (and     */
/* reconnect with backoff), handshake, channels, flow control, and     */
/* the request/reply ops behind vms/<name>/ctl (SPEC §5.4).           */
/* ------------------------------------------------------------------ */

enum agent_state {
    AGENT_CONNECTING,   /* connecting or handshaking */
    AGENT_UP,           /* handshake done: opens and requests accepted */
    AGENT_UNRESPONSIVE, /* up, but a request passed its deadline and
                           nothing has come since (still accepted) */
    AGENT_DOWN,         /* lost; a reconnect is scheduled */
    AGENT_DEAD,         /* lost for good (an fd client has no endpoint),
                           or stopped */
};

/* The default deadline of the handshake and of each request. */
#define AGENT_DEFAULT_TIMEOUT (30 * USEC_PER_SEC)

const char *agent_state_name(enum agent_state st);

struct agent_facts {
    unsigned version; /* protocol version in use */
    char os[PROTO_MAX_FACT];
    char kernel[PROTO_MAX_FACT];
    char agent_version[PROTO_MAX_FACT];
    /* Random, fixed for the agent process's life: the same instance
     * after a reconnect means the same agent, whose process and handle
     * ids are still valid (docs/protocol.md). Never 0. */
    uint64_t instance;
};

struct agent_client;
struct agent_chan; /* a stream channel or a pending request */

/* Connect to "unix:PATH" (a local agent, or QEMU's virtio-serial chardev
 * socket) or "vsock:CID:PORT"; reconnects whenever the connection is
 * lost. Returns -EINVAL for a malformed endpoint; a connect failure is
 * not an error here (the client retries). */
int agent_client_new(struct reactor *r, const char *endpoint,
                     struct agent_client **out);
/* Use an already-connected fd (now owned by the client); no reconnect. */
int agent_client_new_fd(struct reactor *r, int fd, struct agent_client **out);
/* Spawn `agent_path --stdio [--spool-dir DIR]` over a socketpair (the
 * built-in host VM), with the daemon's environment; respawns it with
 * backoff if it dies. spool_dir may be NULL. */
int agent_client_spawn(struct reactor *r, const char *agent_path,
                       const char *spool_dir, struct agent_client **out);
/* Orderly end: every channel ends (-ECONNABORTED), no reconnect; a
 * spawned agent is sent SIGTERM and end of file, so that it ends the
 * processes it started, and is waited for (3 s, then SIGKILL and 1 s
 * more). fn runs once, from the loop, when that is done: then free. */
typedef void agent_client_stopped_fn(struct agent_client *c, void *arg);
int agent_client_stop(struct agent_client *c, agent_client_stopped_fn *fn,
                      void *arg);
/* Every open channel's callback runs once more (end or reply with
 * -ECONNABORTED) before this returns. A spawned agent still running is
 * sent SIGKILL (its keeper ends its processes) and not waited for. */
void agent_client_free(struct agent_client *c);
/* Deadline of the handshake and of each request that the agent answers
 * on its own (not wait, stdin, fread, fwrite); 0 = none. Default
 * AGENT_DEFAULT_TIMEOUT. */
void agent_client_set_timeout(struct agent_client *c, uint64_t usec);

enum agent_state agent_client_state(const struct agent_client *c);
/* NULL until the first handshake; the last agent's facts afterwards. */
const struct agent_facts *agent_client_facts(const struct agent_client *c);
/* Why the connection is down ("" while it is up). */
const char *agent_client_error(const struct agent_client *c);
/* The last error of any kind ("" if none ever), kept across reconnects,
 * and when it happened. */
const char *agent_client_last_error(const struct agent_client *c, time_t *when);
/* Append "agent: ...", "agent_state: ...", "agent_os: ...", ... lines. */
void agent_client_info(const struct agent_client *c, char *buf, size_t len);
/* fn runs after every state change (tests, the FUSE layer's info). */
typedef void agent_client_state_fn(struct agent_client *c, void *arg);
void agent_client_on_state(struct agent_client *c, agent_client_state_fn *fn,
                           void *arg);
/* fn runs with a line worth logging: the connection lost and why
 * (protocol violations included), a spawned agent's exit status, the
 * agent becoming unresponsive or answering again. */
typedef void agent_client_event_fn(struct agent_client *c, const char *msg,
                                   void *arg);
void agent_client_on_event(struct agent_client *c, agent_client_event_fn *fn,
                           void *arg);

/* A stream open (PROTO_OPEN_TAIL / _FD / _PROC). */
struct agent_open {
    unsigned type;    /* PROTO_OPEN_TAIL, PROTO_OPEN_FD, PROTO_OPEN_PROC */
    const char *path; /* tail */
    unsigned start;   /* tail: enum proto_start */
    uint64_t offset;  /* tail: for START_OFFSET / START_BACK */
    unsigned flags;   /* tail: PROTO_TAIL_* */
    uint64_t id;      /* fd: the handle; proc: the proc id */
    unsigned which;   /* proc: PROTO_STDOUT / PROTO_STDERR */
};

/*
 * Stream callbacks. opened runs once: err 0 (then data/note any number of
 * times, then end exactly once) or -errno with the agent's message (the
 * channel is then gone). After end the channel is gone. None runs after
 * agent_client_close(). Flow control is automatic: credit is granted back
 * as data callbacks return.
 */
struct agent_stream_cbs {
    void (*opened)(void *arg, int err, const char *msg, uint64_t offset);
    void (*data)(void *arg, const void *buf, size_t len);
    void (*note)(void *arg, unsigned code, uint64_t value, const char *msg);
    /* err 0 with reason EOF/DELETED, or -errno with a message. */
    void (*end)(void *arg, int err, unsigned reason, const char *msg);
};

/* -ENOTCONN unless the agent is up; -EINVAL/-ENAMETOOLONG for a bad
 * request. On success *out (optional) is valid until opened fails, end
 * runs, or agent_client_close(). */
int agent_client_open(struct agent_client *c, const struct agent_open *req,
                      const struct agent_stream_cbs *cbs, void *arg,
                      struct agent_chan **out);
/* Close a stream or abandon a request: no callback for it runs after
 * this. NULL ok. */
void agent_client_close(struct agent_chan *ch);
uint32_t agent_chan_id(const struct agent_chan *ch);

/* wait: what became of one output (stdout, stderr) of the process. */
struct agent_output {
    uint64_t recorded;  /* bytes in the agent's spool when it answered */
    int lost;           /* 0, or -errno: recording stopped at `recorded` */
    uint64_t discarded; /* bytes read past that and thrown away, so far */
    /* Why ("stdout not recorded past N bytes: ..."), when lost. */
    char msg[PROTO_MAX_MSG];
};

/* The outcome of a request. err 0 or -errno with msg. */
struct agent_reply {
    int err;
    const char *msg;
    uint64_t value;   /* exec: proc id; fopen: handle; fseek: offset;
                         stdin, fwrite: bytes written; wait: code/signal */
    unsigned how;     /* wait: PROTO_EXITED / PROTO_SIGNALED */
    const void *data; /* fread: bytes (len 0 at end of file) */
    size_t len;
    uint64_t size; /* stat */
    unsigned mode;
    int64_t mtime_ns;
    /* wait: what became of stdout and stderr */
    struct agent_output out[2];
};

/* Runs exactly once per request, unless it was abandoned with
 * agent_client_close(); rp and its pointers live for the call only. */
typedef void agent_reply_fn(void *arg, const struct agent_reply *rp);

/* Requests. Each returns 0 (done runs later) or -errno at once:
 * -ENOTCONN unless up, -E2BIG when the request does not fit a frame,
 * -ENOBUFS when too much is queued for a slow agent. out is optional. */
int agent_client_exec(struct agent_client *c, const char *cwd,
                      char *const argv[], char *const env[],
                      agent_reply_fn *done, void *arg, struct agent_chan **out);
int agent_client_wait(struct agent_client *c, uint64_t proc,
                      agent_reply_fn *done, void *arg, struct agent_chan **out);
int agent_client_kill(struct agent_client *c, uint64_t proc, int sig,
                      agent_reply_fn *done, void *arg, struct agent_chan **out);
int agent_client_stdin(struct agent_client *c, uint64_t proc, const void *buf,
                       size_t len, agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_stdin_close(struct agent_client *c, uint64_t proc,
                             agent_reply_fn *done, void *arg,
                             struct agent_chan **out);
/* flags: PROTO_O_*; mode 0 = 0644 for a created file. */
int agent_client_fopen(struct agent_client *c, const char *path, unsigned flags,
                       unsigned mode, agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_fread(struct agent_client *c, uint64_t handle, size_t n,
                       agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_fwrite(struct agent_client *c, uint64_t handle,
                        const void *buf, size_t len, agent_reply_fn *done,
                        void *arg, struct agent_chan **out);
int agent_client_fseek(struct agent_client *c, uint64_t handle, int64_t off,
                       unsigned whence, agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_fclose(struct agent_client *c, uint64_t handle,
                        agent_reply_fn *done, void *arg,
                        struct agent_chan **out);
int agent_client_stat(struct agent_client *c, const char *path,
                      agent_reply_fn *done, void *arg, struct agent_chan **out);

/* ------------------------------------------------------------------ */
/* tail.c - the tail engine: tail_file, file_tail_stream, fd_stream,   */
/* proc_stdout_stream and proc_stderr_stream streams, fed by a VM's    */
/* agent client (the engine ctx).                                      */
/* ------------------------------------------------------------------ */

/*
 * Opens from engine.c's request: the path (ENGINE_WHAT_PATH) or the
 * agent's id of a handle or process, and the options
 *   start=end|beginning|start|N|-N    (tail_file, file_tail_stream)
 *   follow=name|descriptor            (same; default name, like tail -F)
 */
extern const struct engine_ops tail_engine;

#endif
