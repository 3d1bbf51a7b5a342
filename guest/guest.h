/*
 * guest.h - the internal header of provium-agent, one section per file.
 *
 * The agent is one thread and one reactor (streams/reactor.c). agent.c
 * holds main and the table of what the agent does for each request. A
 * host connection (host.c) multiplexes channels (docs/protocol.md): it
 * decodes each request with the message table (streams/proto.c) and
 * hands it to its handler (follow.c, job.c, fileio.c), which answers
 * through the connection. A stream channel reads from a source (a
 * followed file, a process's output spool, a file handle) through the two
 * functions of struct source_ops; the connection decides when to read, so
 * flow control lives in one place.
 *
 * Errors are 0 / -errno. Messages for the host are written into a
 * caller-provided buffer of PROTO_MAX_MSG bytes.
 */
#ifndef PROVIUM_GUEST_H
#define PROVIUM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "streams.h"

#define AGENT_VERSION "0.1.0"

struct agent;
struct watch;
struct jobs;
struct fileio;
struct host;
struct chan;

/*
 * What the agent does for one request or stream open: answer it through
 * ch, now or later (host_reply or host_error; for an open, host_ack or
 * host_error). req is its body, decoded and checked against the message
 * table (every value in its range); it lives for the call only.
 */
typedef void host_request_fn(struct agent *a, struct chan *ch,
                             const union proto_body *req);

/* The agent-wide state: what outlives a host connection. */
/* Channels (streams and requests) open at once on one host connection,
 * unless --max-channels says otherwise: 5000 tails of one VM fit. */
#define AGENT_MAX_CHANNELS 65536

struct agent {
    /* The handler of each request and open type: agent.c's table. */
    host_request_fn *const *requests;
    struct reactor *r;
    struct watch *watch;
    struct jobs *jobs;
    struct fileio *files;
    const char *spool_dir;   /* process output spools */
    uint64_t proc_spool_max; /* bytes per output stream */
    unsigned max_channels;   /* open at once on one host connection */
    uint64_t instance;       /* random, never 0: hello_ok's instance */
};

/* ------------------------------------------------------------------ */
/* agent.c - main: options, the request table (what the agent does   */
/* for each request), transport selection, one host connection at a   */
/* time.                                                               */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* agent_log.c - the agent's log on stderr.                           */
/* ------------------------------------------------------------------ */

void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* -v: also log the ordinary (a host connects, a host goes away). */
void agent_log_set_verbose(bool on);
bool agent_log_verbose(void);

/* ------------------------------------------------------------------ */
/* keeper.c - a helper process that ends every process group the agent */
/* started when the agent goes, however it goes (SPEC §6.4).          */
/* ------------------------------------------------------------------ */

/* SIGTERM, then this long for the groups to empty, then SIGKILL. */
#define KEEPER_GRACE (2 * USEC_PER_SEC)

/* Fork the keeper: before the reactor or any other fd exists. */
int keeper_start(void);
/* A new group to end with the agent; a group known to be empty. */
void keeper_add(pid_t pgid);
void keeper_forget(pid_t pgid);
/* Orderly exit: let the keeper end the groups now and wait for it
 * (bounded by KEEPER_GRACE and a second), reaping our children. */
void keeper_finish(void);

/* ------------------------------------------------------------------ */
/* transport.c - where host connections come from: a listening Unix or */
/* vsock socket, a virtio-serial port, or stdin/stdout.               */
/* ------------------------------------------------------------------ */

struct transport;

/* A host connected: rfd/wfd (equal except for stdio) are non-blocking and
 * now owned by the callee. */
typedef void transport_conn_fn(int rfd, int wfd, void *arg);

/* spec: "unix:PATH", "vsock:PORT", "virtio:NAME" or "stdio". */
int transport_new(struct reactor *r, const char *spec, transport_conn_fn *fn,
                  void *arg, struct transport **out);
void transport_free(struct transport *t);
/* The session ended: look for the next host. Returns false when this
 * transport can have no further host (stdio), so the agent should exit. */
bool transport_resume(struct transport *t);

/* ------------------------------------------------------------------ */
/* host.c - one host connection: handshake, decoding, dispatch,        */
/* channels, credit and the round-robin sender.                        */
/* ------------------------------------------------------------------ */

/* How a stream channel gets bytes. */
struct source_ops {
    /* Read up to len bytes: > 0 bytes, 0 = none now (the source calls
     * host_wake() when there may be more, or host_end()), or -errno
     * (the channel then ends with that error). */
    ssize_t (*read)(void *src, void *buf, size_t len);
    /* The channel is gone (ended, closed by the host, session over). */
    void (*free)(void *src);
};

typedef void host_closed_fn(void *arg);

int host_new(struct agent *a, int rfd, int wfd, host_closed_fn *closed,
             void *arg, struct host **out);
void host_free(struct host *s);

/* Stream channels. */
void host_ack(struct chan *ch, uint64_t offset, const struct source_ops *ops,
              void *src);
/* The source may have bytes: put the channel on the send queue. */
void host_wake(struct chan *ch);
void host_note(struct chan *ch, unsigned code, uint64_t value, const char *msg);
/* End the stream after everything already read; the source is freed. */
void host_end(struct chan *ch, int err, unsigned reason, const char *msg);

/* Request channels: answer exactly once with _reply or _error. reply is
 * the body for the channel's request (exec_reply, wait_reply, ...), NULL
 * for the requests whose reply is empty. */
void host_reply(struct chan *ch, const union proto_body *reply);
/* Also the failure of a stream open. err is -errno. */
void host_error(struct chan *ch, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The request will be answered later. cancel(arg) runs if the host
 * closes the channel or goes away first; the answer must not follow. */
void host_park(struct chan *ch, void (*cancel)(void *arg), void *arg);

/* ------------------------------------------------------------------ */
/* watch.c - one inotify instance shared by every watcher.            */
/* ------------------------------------------------------------------ */

struct watch_sub;
/* mask: inotify event bits (IN_Q_OVERFLOW when events were lost: re-check
 * everything); name: the entry for directory events, else NULL. */
typedef void watch_fn(void *arg, uint32_t mask, const char *name);

int watch_new(struct reactor *r, struct watch **out);
void watch_free(struct watch *w);
/* Watch path (a file, a directory, or /proc/self/fd/N for a descriptor)
 * for the inotify events in mask (fn also gets IN_Q_OVERFLOW). Returns 0
 * and *out, or -errno. */
int watch_add(struct watch *w, const char *path, uint32_t mask, watch_fn *fn,
              void *arg, struct watch_sub **out);
/* Safe from any callback; no call for sub after it returns. NULL ok. */
void watch_remove(struct watch_sub *sub);

/* ------------------------------------------------------------------ */
/* follow.c - tail a file by name (tail -F) or by descriptor.         */
/* ------------------------------------------------------------------ */

/* The open_tail request (host_request_fn): open the file and ack the
 * channel, or answer the error. */
host_request_fn follow_open;

/* ------------------------------------------------------------------ */
/* job.c - the processes the host started (proc#N): spawn, output    */
/* spools, reaping, wait, kill, stdin, and the output stream source.   */
/* ------------------------------------------------------------------ */

int jobs_new(struct agent *a, struct jobs **out);
void jobs_free(struct jobs *js);
/* The requests (host_request_fn): exec, wait, kill, stdin, stdin_close,
 * and open_proc (a stream of a job's stdout or stderr). */
host_request_fn job_exec, job_wait, job_kill, job_stdin, job_stdin_close,
        job_stream_open;

/* ------------------------------------------------------------------ */
/* fileio.c - guest files for the host: stat, and files opened by    */
/* handle (file#N): read, write, seek, close, streaming a handle.     */
/* ------------------------------------------------------------------ */

int fileio_new(struct agent *a, struct fileio **out);
void fileio_free(struct fileio *fio);
/* The requests (host_request_fn): stat, fopen, fread, fwrite, fseek,
 * fclose, and open_fd (a stream of a handle: fd_stream). */
host_request_fn fileio_stat, fileio_open, fileio_read, fileio_write,
        fileio_seek, fileio_close, fileio_stream_open;

#endif
