/*
 * agent.h - the internal header of provium-agent, one section per file.
 *
 * The agent is one thread and one reactor (streams/reactor.c). A session
 * is one host connection; it multiplexes channels (docs/protocol.md). A
 * stream channel reads from a source (a followed file, a process's output
 * spool, a file handle) through the two functions of struct source_ops;
 * the session decides when to read, so flow control lives in one place.
 *
 * Errors are 0 / -errno. Messages for the host are written into a
 * caller-provided buffer of PROTO_MAX_MSG bytes.
 */
#ifndef PROVIUM_GUEST_AGENT_H
#define PROVIUM_GUEST_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "streams.h"

#define AGENT_VERSION "0.1.0"

struct watch;
struct procs;
struct handles;
struct session;
struct chan;

/* The agent-wide state: what outlives a host connection. */
struct agent {
    struct reactor *r;
    struct watch *watch;
    struct procs *procs;
    struct handles *handles;
    const char *spool_dir;   /* process output spools */
    uint64_t proc_spool_max; /* bytes per output stream */
    uint64_t instance;       /* random, never 0: see agent_instance() */
    bool verbose;
};

/* ------------------------------------------------------------------ */
/* main.c - options, transport selection, logging.                    */
/* ------------------------------------------------------------------ */

void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* -v given: also log the ordinary (host connects, host goes away). */
bool agent_verbose(void);
/* A random non-zero number for this agent process (hello_ok's instance):
 * a host that sees another one after a reconnect knows the agent was
 * restarted and that every process and handle id it had is stale. */
uint64_t agent_instance(void);

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
/* session.c - one host connection: handshake, decoding, dispatch,     */
/* channels, credit and the round-robin sender.                        */
/* ------------------------------------------------------------------ */

/* How a stream channel gets bytes. */
struct source_ops {
    /* Read up to len bytes: > 0 bytes, 0 = none now (the source calls
     * session_wake() when there may be more, or session_end()), or -errno
     * (the channel then ends with that error). */
    ssize_t (*read)(void *src, void *buf, size_t len);
    /* The channel is gone (ended, closed by the host, session over). */
    void (*free)(void *src);
};

typedef void session_closed_fn(void *arg);

int session_new(struct agent *a, int rfd, int wfd, session_closed_fn *closed,
                void *arg, struct session **out);
void session_free(struct session *s);

/* Stream channels. */
void session_ack(struct chan *ch, uint64_t offset, const struct source_ops *ops,
                 void *src);
/* The source may have bytes: put the channel on the send queue. */
void session_wake(struct chan *ch);
void session_note(struct chan *ch, unsigned code, uint64_t value,
                  const char *msg);
/* End the stream after everything already read; the source is freed. */
void session_end(struct chan *ch, int err, unsigned reason, const char *msg);

/* Request channels: answer exactly once with _reply or _error. */
void session_reply(struct chan *ch, const void *body, size_t len);
/* Also the failure of a stream open. err is -errno. */
void session_error(struct chan *ch, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The request will be answered later. cancel(arg) runs if the host
 * closes the channel or goes away first; the answer must not follow. */
void session_park(struct chan *ch, void (*cancel)(void *arg), void *arg);

/* ------------------------------------------------------------------ */
/* watch.c - one inotify instance shared by every watcher.            */
/* ------------------------------------------------------------------ */

struct watch_sub;
/* mask: inotify event bits (IN_Q_OVERFLOW when events were lost: re-check
 * everything); name: the entry for directory events, else NULL. */
typedef void watch_fn(void *arg, uint32_t mask, const char *name);

int watch_new(struct reactor *r, struct watch **out);
void watch_free(struct watch *w);
/* Watch path (a file, a directory, or /proc/self/fd/N for a descriptor).
 * Returns 0 and *out, or -errno. */
int watch_add(struct watch *w, const char *path, watch_fn *fn, void *arg,
              struct watch_sub **out);
/* Safe from any callback; no call for sub after it returns. NULL ok. */
void watch_remove(struct watch_sub *sub);

/* ------------------------------------------------------------------ */
/* follow.c - tail a file by name (tail -F) or by descriptor.         */
/* ------------------------------------------------------------------ */

struct follow_req {
    const char *path;
    unsigned start; /* enum proto_start */
    uint64_t offset;
    unsigned flags; /* PROTO_TAIL_* */
};

/* Open the file and ack the channel, or answer the error. */
void follow_open(struct agent *a, struct chan *ch,
                 const struct follow_req *req);

/* ------------------------------------------------------------------ */
/* proc.c - processes: spawn, output spools, reaping, wait, kill,     */
/* stdin, and the output stream source.                                */
/* ------------------------------------------------------------------ */

struct proc_exec_req {
    const char *cwd; /* NULL: the agent's */
    int argc;
    char **argv; /* argc entries then NULL */
    int envc;
    char **env; /* "K=V" overrides */
};

int procs_new(struct agent *a, struct procs **out);
void procs_free(struct procs *ps);
void proc_exec(struct agent *a, struct chan *ch,
               const struct proc_exec_req *req);
void proc_wait(struct agent *a, struct chan *ch, uint64_t id);
void proc_kill(struct agent *a, struct chan *ch, uint64_t id, int sig);
void proc_stdin(struct agent *a, struct chan *ch, uint64_t id, const void *buf,
                size_t len);
void proc_stdin_close(struct agent *a, struct chan *ch, uint64_t id);
void proc_stream_open(struct agent *a, struct chan *ch, uint64_t id,
                      unsigned which);

/* ------------------------------------------------------------------ */
/* handle.c - guest files by handle, and streaming a handle.          */
/* ------------------------------------------------------------------ */

int handles_new(struct agent *a, struct handles **out);
void handles_free(struct handles *hs);
void handle_open(struct agent *a, struct chan *ch, const char *path,
                 unsigned flags, unsigned mode);
void handle_read(struct agent *a, struct chan *ch, uint64_t h, size_t n);
void handle_write(struct agent *a, struct chan *ch, uint64_t h, const void *buf,
                  size_t len);
void handle_seek(struct agent *a, struct chan *ch, uint64_t h, int64_t off,
                 unsigned whence);
void handle_close(struct agent *a, struct chan *ch, uint64_t h);
void handle_stream_open(struct agent *a, struct chan *ch, uint64_t h);

#endif
