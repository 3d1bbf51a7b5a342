/*
 * fs.h - the internal header of proviumfs, one section per file.
 *
 * proviumfs serves SPEC §3 over the libfuse3 (3.14) low-level API from the
 * project's single-threaded reactor. Conventions as in streams.h: 0 /
 * -errno, time in CLOCK_MONOTONIC microseconds, destructors accept NULL,
 * nothing here logs except log.c.
 *
 * Every FUSE request is answered exactly once: at once by its handler, or
 * later from the loop when it was parked (park.c).
 */
#ifndef PROVIUM_FS_H
#define PROVIUM_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "streams.h"

#define FS_VERSION PROVIUM_VERSION /* project(VERSION) in CMakeLists.txt */
#define FS_DEFAULT_MOUNT "/run/provium"
#define FS_SLOT_RECLAIM (30 * USEC_PER_SEC) /* SPEC §4.4; --slot-timeout */
#define FS_AGENT_WAIT (10 * USEC_PER_SEC)   /* an open waits this long */
#define FS_BUF_SIZE (1024 * 1024)           /* a FUSE READ is <= 1 MiB */
/* st_blksize of data, log and the output views: coreutils (cat, cp) read
 * st_blksize at a time (io_blksize), 128 KiB otherwise; 1 MiB is the
 * largest READ (max_pages 256), one round trip per MiB. */
#define FS_BLKSIZE (1024 * 1024)
/* Seconds the kernel may keep the names and attributes that never change
 * while their object lives (tree.c); a going away is told at once. */
#define FS_CACHE_TIMEOUT 3600.0
#define FS_TEXT_MAX 65536                   /* a generated text file */
#define FS_CTL_MAX_REPLIES 256 /* unread replies queued on one ctl open */
#define FS_PARK_MAX 64         /* reads parked on one open file */
#define VM_MAX_USERS 64        /* users= of one VM */
#define FS_MAX_UNOPENED 1024   /* clone slots per uid not opened yet */

struct logcache;
struct park;
struct send;
struct slot;
struct slot_open;
struct vm;

/* ------------------------------------------------------------------ */
/* main.c - options, start-up checks, the daemon-wide state.           */
/* ------------------------------------------------------------------ */

struct fs_options {
    char *mountpoint;
    char *spool_dir;
    uint64_t history_limit;
    uint64_t slot_timeout; /* usec: an unopened clone slot's life */
    bool no_host;
    char *agent_path;
    uint64_t agent_timeout; /* usec; 0 = no deadline (--agent-timeout) */
    bool allow_other;
    bool foreground;
    bool debug;
    char **vms; /* "NAME=ENDPOINT[,console=PATH]" */
    size_t nvms;
    unsigned reply_threads; /* --reply-threads (send.c) */
};

struct fs {
    struct reactor *r;
    struct fuse_session *se;
    const struct fs_options *opt;
    uid_t uid; /* the mount owner: owns everything not a user's stream */
    gid_t gid;
    time_t started;
    char *buf; /* FS_BUF_SIZE bytes of scratch for replies: one thread */

    struct park *parked; /* park.c: every parked request */
    unsigned nparked;

    struct slot **slots; /* slot.c: hash of live slots by id */
    size_t nbuckets;
    size_t nslots;
    uint64_t next_slot_id;

    struct vm *vms; /* vm.c */
    uint64_t next_vm_id;
    struct vm *vms_stopping; /* removed, ending their processes */
    struct reactor_timer stop_timer;

    struct file *files; /* file.c: every open file */
    struct send *send;  /* send.c: reply threads, the notifier */

    bool stopping;
};

/* ------------------------------------------------------------------ */
/* log.c - messages for the operator: stderr in the foreground, syslog */
/* once detached (libfuse's too). The only file that logs.             */
/* ------------------------------------------------------------------ */

void log_vmsg(int prio, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
void log_msg(int prio, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* A warning with context (agent crashes, protocol violations, teardown
 * trouble). */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Route libfuse's messages here too. */
void log_init(void);
/* From now on to syslog (ident proviumfs, facility daemon, with the pid). */
void log_detach(void);
void log_close(void);

/* ------------------------------------------------------------------ */
/* mount.c - the FUSE session on the reactor: mount, the request loop, */
/* signals, clean unmount.                                             */
/* ------------------------------------------------------------------ */

/* Create the session from args and mount it at fs->opt->mountpoint. */
int mount_new(struct fs *fs, struct fuse_args *args);
/* Watch the session fd and SIGINT/SIGTERM on fs->r. */
int mount_start(struct fs *fs);
/* Begin the end (from any callback): close every stream and VM, stop
 * the reactor. Idempotent. */
void mount_shutdown(struct fs *fs);
/* After the reactor stopped: answer every parked request, unmount. */
void mount_finish(struct fs *fs);
void mount_free(struct fs *fs);

/* ------------------------------------------------------------------ */
/* send.c - history bytes out to readers (spliced from the spool, or   */
/* copied), on the reactor or on reply threads; page-cache             */
/* invalidations on the notifier thread. The only threads: the rule is */
/* at the top of send.c.                                               */
/* ------------------------------------------------------------------ */

/* The longest spliced reply: libfuse's pipe must hold it plus three
 * pages, and a pipe is at most 1 MiB without CAP_SYS_RESOURCE. */
#define SEND_SPLICE_MAX (FS_BUF_SIZE - 16 * 1024)
#define SEND_DEFAULT_THREADS 2 /* --reply-threads */

/* From the mount's init: the capabilities replies and caches need. */
void send_init(struct fs *fs, struct fuse_conn_info *conn);
/* Start nthreads reply threads (0: the reactor sends every reply) and the
 * notifier; after daemonizing, before the session fd is served. */
int send_start(struct fs *fs, unsigned nthreads);
/* Are replies spliced? */
bool send_splicing(const struct fs *fs);
/* How much of size a reply that may be short should take: at most
 * SEND_SPLICE_MAX when splicing. */
size_t send_max(const struct fs *fs, size_t size);
/* Answer req (a READ) with the bytes of sp, exactly once, now or from a
 * reply thread; req must have no interrupt callback (park_take). An fd
 * span longer than SEND_SPLICE_MAX is copied. */
void send_span(struct fs *fs, fuse_req_t req, const struct stream_span *sp);
/* An invalidation done: rc as fuse_lowlevel_notify_inval_inode returned
 * (-ENOENT: the kernel holds nothing of the inode), -ESHUTDOWN when not
 * sent. On the reactor. */
typedef void send_done_fn(void *arg, int rc);
/* Invalidate the kernel's cached pages of ino from off (len bytes, 0: to
 * the end) on the notifier thread; done runs later on the reactor.
 * -ENOMEM, -ESHUTDOWN: not queued (done will not run). */
int send_inval(struct fs *fs, fuse_ino_t ino, off_t off, off_t len,
               send_done_fn *done, void *arg);
/* Invalidate the kernel's cached attributes of ino (never blocks: sent
 * by the reactor at once). */
void send_inval_attr(struct fs *fs, fuse_ino_t ino);
/* Is the notifier inside a call (one that may wait for a READ)? */
bool send_calling(struct fs *fs);
/* Shutdown: send what is queued, join the threads, drop the queued
 * invalidations (their done runs with -ESHUTDOWN). */
void send_stop(struct fs *fs);
void send_free(struct fs *fs);

/* ------------------------------------------------------------------ */
/* park.c - parked requests: a read that must wait, answered exactly   */
/* once by whichever of data, EOF, interrupt (EINTR) or unmount comes  */
/* first.                                                              */
/* ------------------------------------------------------------------ */

/* The reads parked on one open file, oldest first. */
struct park_queue {
    struct park *head, *tail;
    unsigned n;
};

/* Park req (a READ of size bytes) at the tail of q. An interrupt answers
 * it EINTR and drops it from q without telling the owner. -ENOMEM, or
 * -EAGAIN when FS_PARK_MAX reads already wait on q (threads sharing one
 * open cannot make the daemon hold requests without bound): the caller
 * answers req. */
int park_add(struct fs *fs, struct park_queue *q, fuse_req_t req, size_t size);
static inline bool
park_empty(const struct park_queue *q)
{
    return q->head == NULL;
}
/* The oldest parked read's size; its answer goes through park_reply_*
 * or park_take. */
size_t park_size(const struct park_queue *q);
/* Take the oldest parked read of q (not empty) out, its interrupt
 * callback removed: the caller answers it (send_span may hand it to a
 * reply thread). */
fuse_req_t park_take(struct park_queue *q);
/* Answer and drop the oldest parked read of q. */
void park_reply_buf(struct park_queue *q, const void *buf, size_t len);
void park_reply_err(struct park_queue *q, int err);
/* Answer every parked read of q with 0 bytes (end of file). */
void park_flush(struct park_queue *q);
/* Shutdown: answer every parked request of the daemon with 0 bytes. */
void park_flush_all(struct fs *fs);

/* ------------------------------------------------------------------ */
/* tree.c - the name space: stateless inode numbers, attributes,       */
/* lookup, readdir, rmdir, and which node an open gets.                */
/* ------------------------------------------------------------------ */

enum node {
    N_NONE,
    N_ROOT,
    N_README,
    N_CLONE,
    N_CTL,
    N_VMS,
    N_STREAMS,
    N_VM,
    N_VM_INFO,
    N_VM_CTL,
    N_VM_CONSOLE,
    N_VM_STREAMS,
    N_VM_PROCS,
    N_PROC,
    N_PROC_STATUS,
    N_PROC_CMDLINE,
    N_PROC_STDOUT,
    N_PROC_STDERR,
    N_S,
    N_S_CTL,
    N_S_DATA,
    N_S_LOG,
    N_S_SITE,
    N_S_INFO,
};

/*
 * An inode number is (node << 56 | a << 36 | b): a is a VM's id, b a
 * stream's id or a process number. Ids are never reused, so a number that
 * names a vanished object is simply ENOENT: no forget bookkeeping.
 */
struct ino {
    enum node node;
    uint64_t a, b;
};

fuse_ino_t tree_ino(enum node node, uint64_t a, uint64_t b);
struct ino tree_decode(fuse_ino_t ino);
/* Attributes of a live node, or -ENOENT. */
int tree_stat(struct fs *fs, struct ino n, struct stat *st);
/* A LOOKUP's answer for a live node: attributes and how long the kernel
 * may keep the name and the attributes; or -ENOENT. */
int tree_entry(struct fs *fs, struct ino n, struct fuse_entry_param *e);
/* Node n went away: drop what the kernel caches of it (attributes;
 * never blocks). */
void tree_gone(struct fs *fs, struct ino n);
extern const char tree_readme[];

void tree_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void tree_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tree_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                  struct fuse_file_info *fi);
void tree_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tree_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                  struct fuse_file_info *fi);
void tree_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi);
void tree_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tree_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);

/* ------------------------------------------------------------------ */
/* file.c - open files: one struct file per open, dispatching read,    */
/* write, poll and release through the ops table of the file's kind.  */
/* ------------------------------------------------------------------ */

struct ctl;
struct data;
struct file;

/* What a kind of open file does (libfuse's lo_oper). Each handler
 * answers req exactly once (or parks it, park.c). */
struct file_ops {
    /* size is at most FS_BUF_SIZE; flags are the file's current flags. */
    void (*read)(struct file *f, fuse_req_t req, size_t size, off_t off,
                 int flags);
    /* The bytes taken (a short count reaches write(2) as it is) or
     * -errno; the caller answers. NULL: not writable. */
    ssize_t (*write)(struct file *f, fuse_req_t req, const char *buf,
                     size_t size);
    /* NULL: never blocks (always ready). */
    void (*poll)(struct file *f, fuse_req_t req, struct fuse_pollhandle *ph);
    /* Free what the kind holds (f itself is file.c's). */
    void (*release)(struct file *f);
};

struct file {
    struct fs *fs;
    struct file *prev, *next; /* fs->files */
    const struct file_ops *ops;
    /* The kind's object. */
    union {
        struct data *data; /* data.c */
        struct ctl *ctl;   /* ctl.c, embedded in its owner */
        struct stream *s;  /* history.c: a stream's history */
        struct logcache *lc; /* history.c: a cached log */
        struct vm *vm;     /* history.c: a VM's console */
    };
    char *text; /* generated text */
    size_t len;
};

void file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
               struct fuse_file_info *fi);
void file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                off_t off, struct fuse_file_info *fi);
void file_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
               struct fuse_pollhandle *ph);
void file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* After unmount: free the files the kernel never released. */
void file_free_all(struct fs *fs);

/* Serve [off, off+size) of a text (read at an offset, never blocks). */
void file_reply_text(fuse_req_t req, const char *text, size_t len, size_t size,
                     off_t off);

/* ------------------------------------------------------------------ */
/* history.c - regular-file views of a whole history: streams/<id>/log,*/
/* procs/<n>/stdout|stderr, vms/<name>/console (SPEC §4.2).            */
/* ------------------------------------------------------------------ */

/* A view of s's history (NULL: a process whose output has no stream). */
void history_open(struct file *f, struct stream *s);
/* streams/<id>/log: cached (true: the open is not direct_io, keeps the
 * cache) once the slot is open, else as history_open. */
bool history_open_log(struct file *f, struct slot *sl);
/* The log's st_size: the history's size, or less while the kernel's
 * cached pages past an earlier end are being invalidated. */
uint64_t history_log_size(struct slot *sl);
/* The slot is freed: drop its log's cache state. */
void history_log_drop(struct slot *sl);
/* The VM's console history; writes go to the guest's console. */
void history_open_console(struct file *f, struct vm *vm);

/* ------------------------------------------------------------------ */
/* data.c - streams/<id>/data: a reader with its own cursor from byte  */
/* 0; reads block (parked) until bytes or the end, EAGAIN under        */
/* O_NONBLOCK; poll.                                                   */
/* ------------------------------------------------------------------ */

int data_open(struct fs *fs, struct stream *s, struct file *f);

/* ------------------------------------------------------------------ */
/* ctl.c - the command/reply queue behind every ctl file (SPEC §4.3):  */
/* each write is one command run by the file's owner, replies are read */
/* back in order on the same open, a read waits (parked) for its       */
/* entry's reply.                                                      */
/* ------------------------------------------------------------------ */

struct ctl_entry;

/* The owner's hook, once, when an entry is freed: running says the
 * command had not completed (its ctl file was released): withdraw it.
 * Frees what the owner's state holds, not e. */
typedef void ctl_drop_fn(struct ctl_entry *e, bool running);

/* One command written and its reply. Owners allocate their typed state
 * around it (ctl_push's size; the entry first). */
struct ctl_entry {
    struct ctl_entry *next;
    struct ctl *c;
    bool done;
    struct reply *rp; /* the reply, once done (NULL: text) */
    char *text;       /* or a plain text (the state line) */
    size_t len;
    ctl_drop_fn *drop;
};

/* What owns a ctl file (Redis's ConnectionType): the stream's slot, a
 * VM, the mount. */
struct ctl_type {
    /* One command line, parsed (maybe empty): run it, pushing one entry
     * (a reply, or a running command). Takes cmd (malloc'd). Returns 0,
     * or -errno for the write (-EINVAL: malformed, with an error reply
     * pushed saying why). */
    int (*write)(struct ctl *c, fuse_req_t req, struct command *cmd);
    /* The text a read returns when no command is outstanding (a state
     * line, a status): at most len bytes into buf, returns the length. */
    size_t (*text)(struct ctl *c, char *buf, size_t len);
    /* The file was released (every entry already dropped): drop what
     * the owner holds (ctl.c frees the block). NULL: nothing. */
    void (*release)(struct ctl *c);
};

struct ctl {
    const struct ctl_type *type;
    struct fs *fs;
    struct ctl_entry *head, *tail;
    unsigned n;       /* entries queued: at most FS_CTL_MAX_REPLIES */
    uint64_t off;     /* into head's reply */
    bool eof_pending; /* a reply was read to its end: one read returns 0 */
    struct park_queue q;
    struct fuse_pollhandle *ph; /* a poller waiting for a reply */
};

/* Every ctl file's read, write, poll and release. */
extern const struct file_ops ctl_file_ops;

void ctl_init(struct ctl *c, struct fs *fs, const struct ctl_type *type);
/* Open f as a ctl file of type: a zeroed block of size bytes (the
 * owner's struct, its struct ctl first), freed at release; NULL: ENOMEM. */
void *ctl_open(struct file *f, struct fs *fs, const struct ctl_type *type,
               size_t size);
/* Drop every entry (withdrawing what runs), answer parked reads. */
void ctl_fini(struct ctl *c);
/* May a command be written? 0, or -EAGAIN when the unread replies are
 * at the cap (SPEC §6.3): the write that reaches it queues, as the last
 * reply, an error saying so; later writes fail until replies are read. */
int ctl_admit(struct ctl *c);
/* A command was written: a new running entry of size bytes (the owner's
 * state, zeroed, the entry first) at the tail; NULL: ENOMEM. */
struct ctl_entry *ctl_push(struct ctl *c, size_t size, ctl_drop_fn *drop);
/* The command of e completed with rp (owned by the ctl from now on; NULL
 * means out of memory and reads as an error). */
void ctl_done(struct ctl_entry *e, struct reply *rp);
/* Push an entry already done: a reply known at once. */
void ctl_push_reply(struct ctl *c, struct reply *rp);
/* Push an `error` reply with a printf message. */
void ctl_push_error(struct ctl *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* vm.c: someone waiting for the VM's agent to be up. fn runs once with 0 (up),
 * or -ENOTCONN with msg (gave up). */
typedef void vm_wait_fn(void *arg, int err, const char *msg);
struct vm_wait {
    struct vm_wait *next;
    struct vm *vm;
    struct reactor_timer timer;
    vm_wait_fn *fn;
    void *arg;
};

/* ------------------------------------------------------------------ */
/* slot.c - streams/<id>: slots from clone, the open command, stream   */
/* ops, ownership and lifetime (SPEC §4.4, §5.1, §5.2).                */
/* ------------------------------------------------------------------ */

enum slot_state {
    SLOT_EMPTY,   /* from clone, no open command yet */
    SLOT_OPENING, /* open command written, engine not answered yet */
    SLOT_OPEN,
};

struct slot {
    struct fs *fs;
    uint64_t id;
    unsigned refs; /* the registry while live, each ctl open */
    bool gone;     /* closed: out of the registry, directory gone */
    enum slot_state state;
    struct slot *hnext;
    struct vm *vm; /* NULL for captures and unopened slots */
    struct stream *s;
    const struct engine *engine; /* the open command (streams/engine.c) */
    void *engine_state;
    char kind[24];
    char *detail, *site, *test;
    bool keep;
    struct slot_ctl *owner; /* the open that wrote the open command */
    pid_t owner_pid;
    uid_t uid; /* who cloned it: owns its files under allow_other */
    gid_t gid;
    uid_t open_uid; /* who wrote the open command (access.c) */
    time_t created;
    struct reactor_timer reclaim;
    struct logcache *lc;          /* history.c: log's page cache, lazily */
    struct ctl_entry *open_entry; /* the open command's reply, pending */
    struct slot_open *opening;    /* kept while waiting for the agent */
    struct vm_wait wait;
};

/* Allocate a slot (clone); reclaimed after opt->slot_timeout (30 s)
 * unless opened. -EAGAIN when uid already has FS_MAX_UNOPENED slots
 * waiting for an open command. */
int slot_new(struct fs *fs, uid_t uid, gid_t gid, struct slot **out);
struct slot *slot_find(struct fs *fs, uint64_t id);
/* End the stream (if any), remove the slot: its directory is gone,
 * readers get EOF, running ops answer `closed`. Idempotent. */
void slot_close(struct slot *sl);
void slot_unref(struct slot *sl);
/* Close every slot (of vm, or all when vm is NULL). */
void slot_close_all(struct fs *fs, struct vm *vm);
/* Iterate live slots: *cursor starts at 0. */
struct slot *slot_next(struct fs *fs, size_t *bucket, struct slot *prev);
/* streams/<id>/info and the §7 description line (values escaped). */
size_t slot_info(struct slot *sl, char *buf, size_t len);
size_t slot_describe(struct slot *sl, char *buf, size_t len);

/* streams/<id>/ctl: the open command, then stream ops. */
int slot_ctl_open(struct slot *sl, struct file *f);

/* ------------------------------------------------------------------ */
/* vm.c - the VM registry: the built-in host VM, vm add / vm del,      */
/* waiting for an agent, the VM's info/streams text, quiesce.          */
/* ------------------------------------------------------------------ */

struct vm {
    struct fs *fs;
    struct vm *next;
    unsigned refs; /* the registry while registered, each ctl open */
    bool gone;     /* deleted: out of the registry */
    uint64_t id;
    char *name;
    char *endpoint;
    char *console_path;
    char **nics;
    size_t nnics;
    bool host;    /* the built-in host VM: its agent runs as the daemon */
    uid_t *users; /* its owners (access.c): users=, else who added it */
    size_t nusers;
    struct agent_client *agent;
    struct console *console;
    struct vmproc *procs; /* procs.c */
    size_t nprocs;
    /* Ids on the mount (procs.c, SPEC §6.4): mount ids are given in
     * order per VM and never reused; each stands for an agent id of the
     * agent instance that was current when it was given. */
    uint64_t instance;                 /* the current agent's (0: none yet) */
    uint64_t last_proc, last_handle;   /* the last mount ids given */
    uint64_t proc_floor, handle_floor; /* ids <= these: earlier sessions */
    struct vmhandle *vmhandles;        /* this session's open handles */
    unsigned handles;                  /* how many */
    struct vm_wait *waiters;
    /* Removal (vm_del): its processes end, then its agent. */
    struct reactor_timer stop_timer;
    unsigned stop_phase;
};

/* Parse "NAME agent=ENDPOINT [console=PATH] [nic=IFACE] [users=UID,...]"
 * words; the VM belongs to the users named, or else to uid. */
int vm_add(struct fs *fs, const struct command *cmd, int argi, uid_t uid,
           char *err);
int vm_add_host(struct fs *fs, char *err);
/* Remove: out of the registry and its streams closed at once; then, in
 * the background and bounded, its processes are ended (TERM, 2 s, KILL)
 * and its agent stopped (a spawned one given time to end its own). */
void vm_del(struct vm *vm);
void vm_unref(struct vm *vm);
/* vm_del of every VM. Returns true when all are stopped already. */
bool vm_del_all(struct fs *fs);
/* Shutdown past its bound: finish every removal at once. */
void vm_stop_now(struct fs *fs);
/* procs.c: a removed VM's process was reaped. */
void vm_proc_exited(struct vm *vm);
/* SPEC §7's snapshot refusal text, or 0 when the VM is quiescent. */
size_t vm_quiesce_text(struct vm *vm, char *buf, size_t len);
struct vm *vm_find(struct fs *fs, const char *name, size_t len);
struct vm *vm_by_id(struct fs *fs, uint64_t id);
bool vm_agent_up(struct vm *vm);
/* Wait (embedded w) for the agent, up to FS_AGENT_WAIT. */
void vm_wait_up(struct vm *vm, struct vm_wait *w, vm_wait_fn *fn, void *arg);
void vm_wait_cancel(struct vm_wait *w);
size_t vm_info(struct vm *vm, char *buf, size_t len);
/* vms/<name>/streams as seen by uid: other users' streams are described
 * only to the VM's owners (access.c). */
size_t vm_streams(struct vm *vm, uid_t uid, char *buf, size_t len);
/* Does a capture on iface count as this VM's (one of its NICs)? */
bool vm_has_nic(struct vm *vm, const char *iface);

/* ------------------------------------------------------------------ */
/* procs.c - the processes started through the mount and the agent     */
/* file handles opened through it: mount ids mapped to the agent's,    */
/* owners, a process's output recorded and settled (SPEC §5.4, §6.4).  */
/* ------------------------------------------------------------------ */

struct procs_waiter;

/* A process started by `exec` (vms/<name>/procs/<n>). */
struct vmproc {
    struct vmproc *next;
    struct vm *vm;
    uint64_t n;        /* the mount id: procs/<n>, what commands name */
    uint64_t agent_id; /* the agent's id, in instance */
    uint64_t instance;
    uid_t uid;     /* who exec'd it (access.c) */
    char *cmdline; /* the words, escaped, joined by blanks, one line */
    size_t cmdlen;
    bool exited;      /* the agent's wait answered: status final */
    bool lost;        /* the connection went while it ran: status unknown
                       * until the agent is back (procs_session) */
    bool settled;     /* exited, and the output recorded by then arrived */
    bool lossy;       /* the status tells of output not recorded */
    bool wait_failed; /* the agent's wait failed for good */
    char *status;     /* once exited: "exit N" ... */
    uint64_t recorded[2];
    char *agent_lost[2]; /* the agent's word on output it did not record */
    struct agent_chan *wait_ch;
    struct stream *out[2]; /* stdout, stderr (NULL: not recorded) */
    struct stream_reader *catchup[2];
    struct procs_waiter *waiters; /* answered when settled */
};

/* An agent file handle opened through ctl in the current session. */
struct vmhandle {
    struct vmhandle *next;
    uint64_t n;        /* the mount id */
    uint64_t agent_id; /* the agent's handle */
    uid_t uid;         /* who opened it (access.c) */
};

/* A process by its mount id (procs/<n>), NULL when unknown. */
struct vmproc *procs_find(struct vm *vm, uint64_t n);
/* Iterate the VM's processes, newest first. */
struct vmproc *procs_next(struct vm *vm, struct vmproc *prev);
/* procs/<n>/status: "running", "exit N", "signal N", "unknown: why". */
size_t procs_status(struct vmproc *p, char *buf, size_t len);
/* Remember the process the agent started as agent_id for uid, and record
 * its output from the first byte: its mount id, or 0 when memory ran
 * out. Takes cmdline (malloc'd). */
uint64_t procs_add(struct vm *vm, uint64_t agent_id, uid_t uid, char *cmdline,
                   size_t cmdlen);
/* Remember a handle the agent opened: its mount id, or 0 at the cap
 * (then the agent's handle is closed again). */
uint64_t procs_handle_add(struct vm *vm, uint64_t agent_id, uid_t uid);
void procs_handle_forget(struct vm *vm, uint64_t n);
/* The agent came up (vm.c): a new agent instance starts a new session
 * (every earlier id is stale from now on); the same instance after a
 * reconnect keeps its ids and waits again for its running processes. */
void procs_session(struct vm *vm);
/* Resolve a process (proc = true) or handle id word ("N", "proc#N",
 * "file#N") written by uid to the agent's id. what names the command for
 * the message in err (COMMAND_ERR_LEN). -EINVAL: not an id; -ESTALE: from
 * an earlier agent session; -EPERM: not uid's (access.c); -ESRCH /
 * -EBADF: no such process / handle. */
int procs_resolve(struct vm *vm, bool proc, struct word w, uid_t uid,
                  const char *what, uint64_t *agent_id, uint64_t *n, char *err);
/* Forget the VM's processes (their output streams end, their waiters
 * are answered) and handles. */
void procs_free_all(struct vm *vm);
/* Processes of the current agent session not yet reaped; signal them
 * (their groups). */
size_t procs_running(struct vm *vm);
void procs_signal(struct vm *vm, int sig);

/* Waiting for a process to settle: fn runs once with the status (ok, or
 * error when output was lost) and its text, or error when the process is
 * forgotten first. At once when it is settled already. */
typedef void procs_wait_fn(void *arg, enum reply_status st, const char *text);
struct procs_waiter {
    struct procs_waiter *next;
    struct vmproc *p; /* NULL once answered or cancelled */
    procs_wait_fn *fn;
    void *arg;
};
void procs_wait(struct vmproc *p, struct procs_waiter *w, procs_wait_fn *fn,
                void *arg);
void procs_wait_cancel(struct procs_waiter *w);

/* ------------------------------------------------------------------ */
/* vmctl.c - vms/<name>/ctl commands (SPEC §5.4).                      */
/* ------------------------------------------------------------------ */

int vmctl_open(struct vm *vm, struct file *f);

/* ------------------------------------------------------------------ */
/* global.c - the top-level ctl file (SPEC §5.3) and daemon status.    */
/* ------------------------------------------------------------------ */

int global_open(struct fs *fs, struct file *f);
size_t global_status(struct fs *fs, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* access.c - who may do what (SPEC §8), in one place: owners of VMs,  */
/* processes, handles and streams on a shared mount, and the owners    */
/* and modes the kernel is shown.                                      */
/* ------------------------------------------------------------------ */

/* Is the mount shared (allow_other)? Without it every check passes. */
bool access_shared(const struct fs *fs);
/* The requester's uid and gid. */
uid_t access_uid(fuse_req_t req);
/* The owner given to what req creates: the requester on a shared mount,
 * else the mount owner. */
uid_t access_new_uid(struct fs *fs, fuse_req_t req);
gid_t access_new_gid(struct fs *fs, fuse_req_t req);
/* May uid do anything (root, the mount owner, or not shared)? */
bool access_privileged(const struct fs *fs, uid_t uid);
/* 0, or -EPERM with the reason in why (why_len bytes) for a message:
 * may uid add and remove VMs (vm add, vm del)? */
int access_vm_admin(const struct fs *fs, uid_t uid, char *why, size_t why_len);
/* 0, or -EPERM with the reason in why (why_len bytes) for a message:
 * may uid use vm (open streams on it, its ctl, its console)? */
int access_vm(const struct vm *vm, uid_t uid, char *why, size_t why_len);
/* May uid use process p / handle h (besides access_vm)? */
int access_proc(const struct vm *vm, const struct vmproc *p, uid_t uid,
                char *why, size_t why_len);
int access_handle(const struct vm *vm, const struct vmhandle *h, uid_t uid,
                  char *why, size_t why_len);
/* May uid open a stream of e on vm (NULL: a capture on no VM's NIC)?
 * 0, or -EPERM with the reason in why. */
int access_open(const struct fs *fs, const struct engine *e,
                const struct vm *vm, uid_t uid, char *why, size_t why_len);
/* May uid open node n (of vm, sl, p as it names them)? 0 or -EACCES:
 * the owners a mode cannot name, checked on every open. */
int access_file(const struct fs *fs, enum node n, const struct vm *vm,
                const struct slot *sl, const struct vmproc *p, uid_t uid);
/* May uid open sl's files or remove it? */
bool access_slot(const struct slot *sl, uid_t uid);
/* May uid see the paths, sites and test names of sl (vms/NAME/streams)? */
bool access_slot_text(const struct slot *sl, uid_t uid);
/* Owners and modes of node n for the kernel's default_permissions
 * (st has the defaults of tree.c: the mount owner's). */
void access_attr(const struct fs *fs, enum node n, const struct vm *vm,
                 const struct slot *sl, const struct vmproc *p,
                 struct stat *st);

#endif
