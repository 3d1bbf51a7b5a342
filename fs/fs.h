/*
 * fs.h - the internal header of proviumfs, one section per file.
 *
 * proviumfs serves SPEC §3 over the libfuse3 (3.14) low-level API from the
 * project's single-threaded reactor. Conventions as in streams.h: 0 /
 * -errno, time in CLOCK_MONOTONIC microseconds, destructors accept NULL,
 * nothing here logs except main.c.
 *
 * Every FUSE request is answered exactly once: at once by its handler, or
 * later from the loop when it was parked (park.c).
 */
#ifndef PROVIUM_FS_H
#define PROVIUM_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

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
#define FS_TEXT_MAX 65536                   /* a generated text file */
#define FS_CTL_MAX_REPLIES 256 /* unread replies queued on one ctl open */
#define FS_PARK_MAX 64         /* reads parked on one open file */
#define VM_MAX_USERS 64        /* users= of one VM */
#define FS_MAX_UNOPENED 1024   /* clone slots per uid not opened yet */

struct fhandle;
struct handle;
struct park;
struct proc;
struct slot;
struct vm;

/* ------------------------------------------------------------------ */
/* main.c - options, the daemon-wide state, logging.                   */
/* ------------------------------------------------------------------ */

/* A line for the operator: stderr in the foreground, syslog otherwise. */
void fs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

    struct handle *handles; /* file.c: every open file */

    bool stopping;
};

/* ------------------------------------------------------------------ */
/* session.c - the FUSE session on the reactor: mount, the request     */
/* loop, signals, clean unmount.                                       */
/* ------------------------------------------------------------------ */

/* Create the session from args and mount it at fs->opt->mountpoint. */
int session_mount(struct fs *fs, struct fuse_args *args);
/* Watch the session fd and SIGINT/SIGTERM on fs->r. */
int session_start(struct fs *fs);
/* Begin the end (from any callback): close every stream and VM, stop
 * the reactor. Idempotent. */
void session_shutdown(struct fs *fs);
/* After the reactor stopped: answer every parked request, unmount. */
void session_finish(struct fs *fs);
void session_free(struct fs *fs);
/* Reply to an open with FOPEN_DIRECT_IO|FOPEN_STREAM (libfuse 3.14 has no
 * fuse_file_info bit for FOPEN_STREAM). -ENOENT: the open was interrupted
 * and no release will come. */
int session_reply_stream_open(fuse_req_t req, uint64_t fh);

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
/* The oldest parked read's size; its answer goes through park_reply_*. */
size_t park_size(const struct park_queue *q);
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
extern const char tree_readme[];

void tree_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void tree_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tree_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                  struct fuse_file_info *fi);
void tree_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tree_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                  struct fuse_file_info *fi);
void tree_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tree_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);

/* ------------------------------------------------------------------ */
/* file.c - open files: one handle per open, dispatching read, write,  */
/* poll and release to the file's kind.                                */
/* ------------------------------------------------------------------ */

void file_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void file_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
               struct fuse_file_info *fi);
void file_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                off_t off, struct fuse_file_info *fi);
void file_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
               struct fuse_pollhandle *ph);
void file_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* After unmount: free the handles of files the kernel never released. */
void file_free_all(struct fs *fs);

/* Serve [off, off+size) of a text (read at an offset, never blocks). */
void file_reply_text(fuse_req_t req, const char *text, size_t len, size_t size,
                     off_t off);

/* ------------------------------------------------------------------ */
/* data.c - streams/<id>/data: a reader with its own cursor from byte  */
/* 0; reads block (parked) until bytes or the end, EAGAIN under        */
/* O_NONBLOCK; poll.                                                   */
/* ------------------------------------------------------------------ */

struct data;
int data_open(struct fs *fs, struct stream *s, struct data **out);
void data_read(struct data *d, fuse_req_t req, size_t size, int flags);
void data_poll(struct data *d, fuse_req_t req, struct fuse_pollhandle *ph);
void data_free(struct data *d);

/* ------------------------------------------------------------------ */
/* ctl.c - the command/reply queue behind every ctl file (SPEC §4.3):  */
/* each write adds an entry, replies are read back in order on the     */
/* same open, a read waits (parked) for its entry's reply.             */
/* ------------------------------------------------------------------ */

struct ctl;
struct ctl_entry;

/* Withdraw a running command (its ctl file was released). */
typedef void ctl_cancel_fn(struct ctl_entry *e);
/* The text a read returns when no command is outstanding (a state line
 * or a status). Writes at most len bytes into buf, returns the length. */
typedef size_t ctl_text_fn(void *arg, char *buf, size_t len);

struct ctl_entry {
    struct ctl_entry *next;
    struct ctl *c;
    bool done;
    struct reply *rp; /* the reply, once done (NULL: text) */
    char *text;       /* or a plain text (the state line) */
    size_t len;
    ctl_cancel_fn *cancel; /* while running; NULL once done */
    /* What the command's owner needs while it runs. */
    void *owner;
    struct stream_op *op;
    struct agent_chan *ch;
    struct reactor_timer timer;
    uint64_t id;
    unsigned kind;
    char *aux; /* freed with the entry (e.g. exec's command line) */
    size_t auxlen;
    uid_t uid;    /* who wrote the command (owner of what it creates) */
    uint64_t obj; /* the mount id of the process or handle it acts on */
};

struct ctl {
    struct fs *fs;
    struct ctl_entry *head, *tail;
    unsigned n;       /* entries queued: at most FS_CTL_MAX_REPLIES */
    uint64_t off;     /* into head's reply */
    bool eof_pending; /* a reply was read to its end: one read returns 0 */
    struct park_queue q;
    struct fuse_pollhandle *ph; /* a poller waiting for a reply */
    ctl_text_fn *text;
    void *arg;
};

void ctl_init(struct ctl *c, struct fs *fs, ctl_text_fn *text, void *arg);
/* Cancel every running command, free every reply, answer parked reads. */
void ctl_fini(struct ctl *c);
/* May a command be written? 0, or -EAGAIN when the unread replies are
 * at the cap (SPEC §6.3): the write that reaches it queues, as the last
 * reply, an error saying so; later writes fail until replies are read. */
int ctl_admit(struct ctl *c);
/* A command was written: a new entry at the tail, running (NULL: ENOMEM). */
struct ctl_entry *ctl_push(struct ctl *c);
/* The command of e completed with rp (owned by the ctl from now on; NULL
 * means out of memory and reads as an error). */
void ctl_done(struct ctl_entry *e, struct reply *rp);
/* Push an entry already done: a reply known at once. */
void ctl_push_reply(struct ctl *c, struct reply *rp);
/* Push an `error` reply with a printf message. */
void ctl_push_error(struct ctl *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void ctl_read(struct ctl *c, fuse_req_t req, size_t size, int flags);
/* Readable when a read would not park; always writable. */
void ctl_poll(struct ctl *c, fuse_req_t req, struct fuse_pollhandle *ph);

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
    const struct engine_ops *engine;
    void *engine_state;
    char kind[24];
    char *detail, *site, *test;
    bool keep;
    struct sctl *owner; /* the open that wrote the open command */
    pid_t owner_pid;
    uid_t uid; /* who cloned it: owns its files under allow_other */
    gid_t gid;
    uid_t open_uid;    /* who wrote the open command (access.c) */
    char agent_id[24]; /* fd_stream/proc_*: the agent's id, as a word */
    time_t created;
    struct reactor_timer reclaim;
    struct ctl_entry *open_entry; /* the open command's reply, pending */
    struct command *open_cmd;     /* kept while waiting for the agent */
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

/* The ctl file of a slot. */
struct sctl;
int sctl_open(struct slot *sl, struct sctl **out);
int sctl_write(struct sctl *sc, fuse_req_t req, const char *buf, size_t len);
struct ctl *sctl_ctl(struct sctl *sc);
void sctl_free(struct sctl *sc);

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
    struct proc *procs;
    size_t nprocs;
    /* Ids on the mount (vmctl.c, SPEC §6.4): mount ids are given in
     * order per VM and never reused; each stands for an agent id of the
     * agent instance that was current when it was given. */
    uint64_t instance;                 /* the current agent's (0: none yet) */
    uint64_t last_proc, last_handle;   /* the last mount ids given */
    uint64_t proc_floor, handle_floor; /* ids <= these: earlier sessions */
    struct fhandle *fhandles;          /* this session's open handles */
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
/* vmctl.c: a removed VM's process was reaped. */
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
/* vmctl.c - vms/<name>/ctl commands (SPEC §5.4) and the processes     */
/* they start (vms/<name>/procs/).                                     */
/* ------------------------------------------------------------------ */

struct vctl;
/* A process by its mount id (procs/<n>), NULL when unknown. */
struct proc *vm_proc(struct vm *vm, uint64_t n);
/* Iterate the VM's processes. */
struct proc *vm_proc_next(struct vm *vm, struct proc *prev);
uint64_t vm_proc_id(const struct proc *p);
uid_t vm_proc_owner(const struct proc *p);
uid_t vm_handle_owner(const struct fhandle *h);
/* The agent came up (vm.c): a new agent instance starts a new session
 * (every earlier id is stale from now on); the same instance after a
 * reconnect keeps its ids and waits again for its running processes. */
void vm_session(struct vm *vm);
/* Resolve a process (proc = true) or handle id word ("N", "proc#N",
 * "file#N") written by uid to the agent's id. what names the command for
 * the message in err (COMMAND_ERR_LEN). -EINVAL: not an id; -ESTALE: from
 * an earlier agent session; -EPERM: not uid's (access.c); -ESRCH /
 * -EBADF: no such process / handle. */
int vm_resolve(struct vm *vm, bool proc, struct word w, uid_t uid,
               const char *what, uint64_t *agent_id, uint64_t *n, char *err);
size_t vm_proc_status(struct proc *p, char *buf, size_t len);
const char *vm_proc_cmdline(struct proc *p, size_t *len);
/* which: 1 stdout, 2 stderr. NULL when not captured. */
struct stream *vm_proc_output(struct proc *p, int which);
/* Forget the VM's processes (their output streams end). */
void vm_procs_free(struct vm *vm);
/* Processes remembered and not yet reaped; signal them (their groups). */
size_t vm_procs_running(struct vm *vm);
void vm_procs_signal(struct vm *vm, int sig);
int vctl_open(struct vm *vm, struct vctl **out);
int vctl_write(struct vctl *vc, fuse_req_t req, const char *buf, size_t len);
struct ctl *vctl_ctl(struct vctl *vc);
void vctl_free(struct vctl *vc);

/* ------------------------------------------------------------------ */
/* global.c - the top-level ctl file (SPEC §5.3) and daemon status.    */
/* ------------------------------------------------------------------ */

struct gctl;
int gctl_open(struct fs *fs, struct gctl **out);
int gctl_write(struct gctl *gc, fuse_req_t req, const char *buf, size_t len);
struct ctl *gctl_ctl(struct gctl *gc);
void gctl_free(struct gctl *gc);
size_t gctl_status(struct fs *fs, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Optional engines: console.c and capture.c of the stream core may    */
/* not be in the build yet (CMake defines these when they are).        */
/* ------------------------------------------------------------------ */

#ifndef PROVIUM_HAVE_CONSOLE
#define PROVIUM_HAVE_CONSOLE 0
#endif
#ifndef PROVIUM_HAVE_CAPTURE
#define PROVIUM_HAVE_CAPTURE 0
#endif

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
 * may uid use vm (open streams on it, its ctl, its console)? */
int access_vm(const struct vm *vm, uid_t uid, char *why, size_t why_len);
/* May uid use process p / handle h (besides access_vm)? */
int access_proc(const struct vm *vm, const struct proc *p, uid_t uid, char *why,
                size_t why_len);
int access_handle(const struct vm *vm, const struct fhandle *h, uid_t uid,
                  char *why, size_t why_len);
/* May uid open sl's files or remove it? */
bool access_slot(const struct slot *sl, uid_t uid);
/* May uid see the paths, sites and test names of sl (vms/NAME/streams)? */
bool access_slot_text(const struct slot *sl, uid_t uid);
/* Owners and modes of node n for the kernel's default_permissions
 * (st has the defaults of tree.c: the mount owner's). */
void access_attr(const struct fs *fs, enum node n, const struct vm *vm,
                 const struct slot *sl, const struct proc *p, struct stat *st);

/* Helpers shared by the files above. */
/* Append printf output at strlen(buf), bounded by len. */
size_t fs_appendf(char *buf, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
