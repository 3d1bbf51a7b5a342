/*
 * tree.c - the name space of SPEC §3: inode numbers, attributes, lookup,
 * directory listings and rmdir.
 *
 * Inode numbers are computed, not allocated: the node kind and the ids of
 * the VM, stream or process it belongs to are encoded in the number
 * (fs.h), and ids are never reused. So the daemon keeps no inode table and
 * needs no FORGET bookkeeping: resolving a number looks the object up
 * again, and a vanished object is simply ENOENT. What the kernel may
 * cache, and for how long, is said at node_timeouts.
 *
 * Ownership (SPEC §8): everything belongs to the mount owner, except what
 * access_attr() gives to users on a shared mount (allow_other, which
 * forces default_permissions): their streams, VMs and processes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define ID_BITS 36
#define VM_BITS 20
#define ID_MASK ((1ULL << ID_BITS) - 1)
#define VM_MASK ((1ULL << VM_BITS) - 1)

const char tree_readme[] =
        "Provium streams (proviumfs " FS_VERSION ")\n"
        "\n"
        "Every flow of bytes out of a test VM is a stream; every stream is a\n"
        "directory here. Open one from the shell:\n"
        "\n"
        "  id=$(cat clone)                       # allocate a stream id\n"
        "  exec 3<>streams/$id/ctl               # keep it: closing ends it\n"
        "  echo 'tail_file host /var/log/dpkg.log' >&3\n"
        "  read -r reply <&3; echo $reply        # ok 0\n"
        "  cat streams/$id/data                  # the stream, live, from byte "
        "0\n"
        "  tail -f streams/$id/log               # the history as a file\n"
        "  echo 'expect \"login:\" 30s' >&3; read -r reply <&3\n"
        "\n"
        "Open commands (first write to ctl): tail_file VM PATH [start=...],\n"
        "file_tail_stream, fd_stream VM HANDLE, proc_stdout_stream VM PROC,\n"
        "proc_stderr_stream VM PROC, console VM, capture IFACE; options\n"
        "site=FILE:LINE test=NAME keep (the stream outlives this open).\n"
        "Stream ops: next [T], read_until P [T], expect P [T], drain [T], "
        "eof,\n"
        "close. Replies: \"<status> <length>\\n<payload>\", status ok, "
        "timeout,\n"
        "eof, closed or error.\n"
        "\n"
        "  ctl                   vm add NAME agent=unix:PATH [console=PATH] "
        "[nic=IF]\n"
        "                        vm del NAME; read: daemon status\n"
        "  vms/NAME/ctl          exec, wait, kill, stdin, open, read, write, "
        "seek,\n"
        "                        close, console_write, quiesce\n"
        "  vms/NAME/streams      the VM's live streams\n"
        "  streams/ID/info       kind, detail, state, bytes, ...\n"
        "\n"
        "rmdir streams/ID closes a stream. See proviumfs(8) and docs/fs.md.\n";

fuse_ino_t
tree_ino(enum node node, uint64_t a, uint64_t b)
{
    if (node == N_ROOT)
        return FUSE_ROOT_ID;
    return (fuse_ino_t)node << 56 | (a & VM_MASK) << ID_BITS | (b & ID_MASK);
}

struct ino
tree_decode(fuse_ino_t ino)
{
    struct ino n = {N_NONE, 0, 0};

    if (ino == FUSE_ROOT_ID) {
        n.node = N_ROOT;
        return n;
    }
    n.node = (enum node)(ino >> 56);
    n.a = (ino >> ID_BITS) & VM_MASK;
    n.b = ino & ID_MASK;
    if (n.node <= N_ROOT || n.node > N_S_INFO)
        n.node = N_NONE;
    return n;
}

static struct fs *
req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* ---- attributes --------------------------------------------------- */

static void
set_mode(struct stat *st, mode_t mode, off_t size)
{
    st->st_mode = mode;
    st->st_nlink = S_ISDIR(mode) ? 2 : 1;
    st->st_size = size;
    st->st_blksize = 4096;
    st->st_blocks = (size + 511) / 512;
}

static off_t
text_size(size_t (*gen)(void *, char *, size_t), void *arg, struct fs *fs)
{
    return (off_t)gen(arg, fs->buf, FS_TEXT_MAX);
}

static size_t
gen_vm_info(void *arg, char *buf, size_t len)
{
    return vm_info(arg, buf, len);
}
static size_t
gen_vm_streams(void *arg, char *buf, size_t len)
{
    /* The size of the full listing: a user shown less reads less. */
    return vm_streams(arg, 0, buf, len);
}
static size_t
gen_slot_info(void *arg, char *buf, size_t len)
{
    return slot_info(arg, buf, len);
}

int
tree_stat(struct fs *fs, struct ino n, struct stat *st)
{
    struct vm *vm = NULL;
    struct slot *sl = NULL;
    struct vmproc *p = NULL;
    struct stream *s;

    memset(st, 0, sizeof(*st));
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_atime = st->st_mtime = st->st_ctime = fs->started;
    if (n.node >= N_VM && n.node <= N_PROC_STDERR && !(vm = vm_by_id(fs, n.a)))
        return -ENOENT;
    if (n.node >= N_PROC && n.node <= N_PROC_STDERR &&
        !(p = procs_find(vm, n.b)))
        return -ENOENT;
    if (n.node >= N_S && n.node <= N_S_INFO) {
        if (!(sl = slot_find(fs, n.b)))
            return -ENOENT;
        st->st_atime = st->st_mtime = st->st_ctime = sl->created;
    }
    st->st_ino = tree_ino(n.node, n.a, n.b);
    switch (n.node) {
    case N_ROOT:
    case N_VMS:
    case N_VM:
    case N_VM_PROCS:
    case N_PROC:
        set_mode(st, S_IFDIR | 0755, 0);
        break;
    case N_STREAMS:
        set_mode(st, S_IFDIR | 0755, 0);
        break;
    case N_README:
        set_mode(st, S_IFREG | 0444, (off_t)strlen(tree_readme));
        break;
    case N_CLONE:
        set_mode(st, S_IFREG | 0444, 0);
        break;
    case N_CTL:
        set_mode(st, S_IFREG | 0644, 0);
        break;
    case N_VM_INFO:
        set_mode(st, S_IFREG | 0444, text_size(gen_vm_info, vm, fs));
        break;
    case N_VM_CTL:
        set_mode(st, S_IFREG | 0600, 0);
        break;
    case N_VM_CONSOLE:
        set_mode(st, S_IFREG | 0600,
                 vm->console ? (off_t)console_size(vm->console) : 0);
        break;
    case N_VM_STREAMS:
        set_mode(st, S_IFREG | 0444, text_size(gen_vm_streams, vm, fs));
        break;
    case N_PROC_STATUS:
        set_mode(st, S_IFREG | 0400, (off_t)procs_status(p, fs->buf, 64));
        break;
    case N_PROC_CMDLINE:
        set_mode(st, S_IFREG | 0400, (off_t)p->cmdlen);
        break;
    case N_PROC_STDOUT:
    case N_PROC_STDERR:
        s = p->out[n.node == N_PROC_STDOUT ? 0 : 1];
        set_mode(st, S_IFREG | 0400, s ? (off_t)stream_size(s) : 0);
        st->st_blksize = FS_BLKSIZE;
        break;
    case N_S:
        set_mode(st, S_IFDIR | 0755, 0);
        break;
    case N_S_CTL:
        set_mode(st, S_IFREG | 0600, 0);
        break;
    case N_S_DATA:
    case N_S_LOG:
        if (!sl->s)
            return -ENOENT;
        set_mode(st, S_IFREG | 0400,
                 n.node == N_S_LOG ? (off_t)history_log_size(sl) : 0);
        st->st_blksize = FS_BLKSIZE;
        break;
    case N_S_SITE:
        set_mode(st, S_IFREG | 0400,
                 sl->site ? (off_t)strlen(sl->site) + 1 : 0);
        break;
    case N_S_INFO:
        set_mode(st, S_IFREG | 0400, text_size(gen_slot_info, sl, fs));
        break;
    default:
        return -ENOENT;
    }
    access_attr(fs, n.node, vm, sl, p, st);
    return 0;
}

/*
 * How long the kernel may keep a name and a node's attributes without
 * asking again. Names never change meaning (stream ids are never reused,
 * the fixed names are fixed), but most attributes do: sizes grow (log:
 * tail -f polls st_size), generated text changes. So only what never
 * changes while the object lives is cached: the top directory's names,
 * the attributes of vms/ and streams/, and each stream's directory
 * (streams/<id>), whose mode, owner and times are fixed at clone; its
 * files' names too (data and log appear once the stream exists: a name
 * looked up before is not cached, ENOENT is not remembered). The mount
 * point and the files at the top are not: after a crash the kernel would
 * answer `stat MOUNTPOINT` or `test -f README` from its cache for an
 * hour, and that is how a new daemon (prepare_mountpoint) and scripts
 * tell a dead mount from a live one (ENOTCONN). A stream's directory
 * going away is told to the kernel (tree_gone: its attributes
 * invalidated, so a stat asks and gets ENOENT); a listing is never
 * cached. `ls -l streams/` then costs READDIRPLUS requests and nothing
 * per stream. VMs are not cached: a name comes back with another id
 * after vm del + vm add.
 */
static void
node_timeouts(enum node n, double *entry, double *attr)
{
    *entry = *attr = 0;
    switch (n) {
    case N_VMS:
    case N_STREAMS:
    case N_S:
        *entry = *attr = FS_CACHE_TIMEOUT;
        break;
    case N_README:
    case N_CLONE:
    case N_CTL:
    case N_S_CTL:
    case N_S_DATA:
    case N_S_LOG:
    case N_S_SITE:
    case N_S_INFO:
        *entry = FS_CACHE_TIMEOUT;
        break;
    default:
        break;
    }
}

int
tree_entry(struct fs *fs, struct ino n, struct fuse_entry_param *e)
{
    int rc;

    memset(e, 0, sizeof(*e));
    if ((rc = tree_stat(fs, n, &e->attr)) < 0)
        return rc;
    e->ino = e->attr.st_ino;
    node_timeouts(n.node, &e->entry_timeout, &e->attr_timeout);
    return 0;
}

void
tree_gone(struct fs *fs, struct ino n)
{
    send_inval_attr(fs, tree_ino(n.node, n.a, n.b));
}

static void
reply_attr(fuse_req_t req, struct ino n)
{
    struct stat st;
    double entry, attr;
    int rc = tree_stat(req_fs(req), n, &st);

    node_timeouts(n.node, &entry, &attr);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, attr);
}

void
tree_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    reply_attr(req, tree_decode(ino));
}

/* Nothing here can be truncated or re-owned; `echo x > ctl` (O_TRUNC)
 * must still succeed, so a size change is accepted and ignored. */
void
tree_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
             struct fuse_file_info *fi)
{
    if (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
                   FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                   FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    reply_attr(req, tree_decode(ino));
}

/* ---- lookup ------------------------------------------------------- */

struct name {
    const char *name;
    enum node node;
};

static const struct name root_names[] = {
        {"README", N_README}, {"clone", N_CLONE},     {"ctl", N_CTL},
        {"vms", N_VMS},       {"streams", N_STREAMS}, {NULL, N_NONE}};
static const struct name vm_names[] = {
        {"info", N_VM_INFO},       {"ctl", N_VM_CTL},
        {"console", N_VM_CONSOLE}, {"streams", N_VM_STREAMS},
        {"procs", N_VM_PROCS},     {NULL, N_NONE}};
static const struct name proc_names[] = {{"status", N_PROC_STATUS},
                                         {"cmdline", N_PROC_CMDLINE},
                                         {"stdout", N_PROC_STDOUT},
                                         {"stderr", N_PROC_STDERR},
                                         {NULL, N_NONE}};
static const struct name slot_names[] = {{"ctl", N_S_CTL},   {"data", N_S_DATA},
                                         {"log", N_S_LOG},   {"site", N_S_SITE},
                                         {"info", N_S_INFO}, {NULL, N_NONE}};

static enum node
find_name(const struct name *t, const char *name)
{
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t->node;
    return N_NONE;
}

/* A decimal id without sign, leading zeros or junk. */
static bool
parse_id(const char *s, uint64_t *id)
{
    char *end;

    if (*s < '1' || *s > '9')
        return false;
    errno = 0;
    *id = strtoull(s, &end, 10);
    return !*end && errno == 0 && *id <= ID_MASK;
}

void
tree_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = req_fs(req);
    struct ino p = tree_decode(parent), c = {N_NONE, p.a, p.b};
    struct fuse_entry_param e;
    struct vm *vm;
    int rc;

    switch (p.node) {
    case N_ROOT:
        c.node = find_name(root_names, name);
        break;
    case N_VMS:
        if ((vm = vm_find(fs, name, strlen(name)))) {
            c.node = N_VM;
            c.a = vm->id;
        }
        break;
    case N_VM:
        c.node = find_name(vm_names, name);
        break;
    case N_VM_PROCS:
        if (parse_id(name, &c.b))
            c.node = N_PROC;
        break;
    case N_PROC:
        c.node = find_name(proc_names, name);
        break;
    case N_STREAMS:
        if (parse_id(name, &c.b))
            c.node = N_S;
        break;
    case N_S:
        c.node = find_name(slot_names, name);
        break;
    default:
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if (c.node == N_NONE || (rc = tree_entry(fs, c, &e)) < 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fuse_reply_entry(req, &e);
}

/* ---- directories -------------------------------------------------- */

/* A listing: the entries' names and nodes, taken at opendir, so that a
 * listing is a consistent snapshot however it is paged. An entry's
 * cookie (the offset readdir resumes from) is its index + 1, the same
 * for READDIR and READDIRPLUS: the kernel may switch between them in the
 * middle of a listing (readdirplus_auto). */
struct dent {
    struct ino n;
    size_t name; /* offset in the name pool */
};

struct dirsnap {
    struct dent *e;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
};

static int
dir_add(struct dirsnap *d, const char *name, struct ino n)
{
    size_t len = strlen(name) + 1;

    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct dent *e = realloc(d->e, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        d->e = e;
        d->cap = cap;
    }
    if (d->pool_len + len > d->pool_cap) {
        size_t cap = d->pool_cap ? d->pool_cap * 2 : 256;
        char *p;
        while (cap < d->pool_len + len)
            cap *= 2;
        if (!(p = realloc(d->pool, cap)))
            return -ENOMEM;
        d->pool = p;
        d->pool_cap = cap;
    }
    memcpy(d->pool + d->pool_len, name, len);
    d->e[d->n].n = n;
    d->e[d->n].name = d->pool_len;
    d->pool_len += len;
    d->n++;
    return 0;
}

static void
dir_free(struct dirsnap *d)
{
    if (!d)
        return;
    free(d->e);
    free(d->pool);
    free(d);
}

static int
dir_names(struct dirsnap *d, const struct name *t, struct ino self)
{
    int rc = 0;

    for (; t->name && rc == 0; t++)
        rc = dir_add(d, t->name, (struct ino){t->node, self.a, self.b});
    return rc;
}

static int
dir_build(struct fs *fs, struct ino n, struct dirsnap *d)
{
    struct stat st;
    char num[24];
    int rc;

    if ((rc = tree_stat(fs, n, &st)) < 0)
        return rc;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if ((rc = dir_add(d, ".", n)) < 0 ||
        (rc = dir_add(d, "..", (struct ino){N_ROOT, 0, 0})) < 0)
        return rc;
    switch (n.node) {
    case N_ROOT:
        return dir_names(d, root_names, n);
    case N_VMS:
        for (struct vm *vm = fs->vms; vm && rc == 0; vm = vm->next)
            rc = dir_add(d, vm->name, (struct ino){N_VM, vm->id, 0});
        return rc;
    case N_VM:
        return dir_names(d, vm_names, n);
    case N_VM_PROCS: {
        struct vm *vm = vm_by_id(fs, n.a);
        for (struct vmproc *p = procs_next(vm, NULL); p && rc == 0;
             p = procs_next(vm, p)) {
            snprintf(num, sizeof(num), "%" PRIu64, p->n);
            rc = dir_add(d, num, (struct ino){N_PROC, n.a, p->n});
        }
        return rc;
    }
    case N_PROC:
        return dir_names(d, proc_names, n);
    case N_STREAMS: {
        size_t b = 0;
        for (struct slot *sl = slot_next(fs, &b, NULL); sl && rc == 0;
             sl = slot_next(fs, &b, sl)) {
            snprintf(num, sizeof(num), "%" PRIu64, sl->id);
            rc = dir_add(d, num, (struct ino){N_S, 0, sl->id});
        }
        return rc;
    }
    case N_S: {
        struct slot *sl = slot_find(fs, n.b);
        for (const struct name *t = slot_names; t->name && rc == 0; t++)
            if (sl->s || (t->node != N_S_DATA && t->node != N_S_LOG))
                rc = dir_add(d, t->name, (struct ino){t->node, n.a, n.b});
        return rc;
    }
    default:
        return -ENOTDIR;
    }
}

static bool
is_dir_node(enum node n)
{
    return n == N_VM || n == N_PROC || n == N_S || n == N_VMS ||
           n == N_STREAMS || n == N_VM_PROCS || n == N_ROOT;
}

void
tree_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dirsnap *d = calloc(1, sizeof(*d));
    int rc;

    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if ((rc = dir_build(req_fs(req), tree_decode(ino), d)) < 0) {
        dir_free(d);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uintptr_t)d;
    if (fuse_reply_open(req, fi) == -ENOENT)
        dir_free(d); /* interrupted: no RELEASEDIR will come */
}

/* READDIR and READDIRPLUS from entry off on, as many as fit in size. With
 * plus, each entry comes with its attributes and timeouts as a LOOKUP
 * would give them (`ls -l` then asks nothing more); an entry whose object
 * went away since the snapshot comes without (ino 0: the kernel only
 * lists it). "." and ".." never carry attributes. */
static void
dir_reply(fuse_req_t req, struct fuse_file_info *fi, size_t size, off_t off,
          bool plus)
{
    struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
    struct fs *fs = req_fs(req);
    char *buf;
    size_t len = 0;

    if (off < 0 || (size_t)off >= d->n) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > FS_BUF_SIZE)
        size = FS_BUF_SIZE;
    buf = fs->buf; /* the reactor's: the reply is sent before we return */
    for (size_t i = (size_t)off; i < d->n; i++) {
        const char *name = d->pool + d->e[i].name;
        struct ino n = d->e[i].n;
        size_t need;
        if (plus) {
            struct fuse_entry_param e;
            memset(&e, 0, sizeof(e));
            if (i < 2 || tree_entry(fs, n, &e) < 0) {
                e.ino = 0;
                e.attr.st_ino = tree_ino(n.node, n.a, n.b);
                e.attr.st_mode = is_dir_node(n.node) ? S_IFDIR : S_IFREG;
            }
            need = fuse_add_direntry_plus(req, buf + len, size - len, name, &e,
                                          (off_t)(i + 1));
        } else {
            struct stat st = {0};
            st.st_ino = tree_ino(n.node, n.a, n.b);
            st.st_mode = is_dir_node(n.node) ? S_IFDIR : S_IFREG;
            need = fuse_add_direntry(req, buf + len, size - len, name, &st,
                                     (off_t)(i + 1));
        }
        if (need > size - len)
            break; /* it did not fit: the next READDIR starts with it */
        len += need;
    }
    fuse_reply_buf(req, buf, len);
}

void
tree_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
             struct fuse_file_info *fi)
{
    dir_reply(req, fi, size, off, false);
}

void
tree_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    dir_reply(req, fi, size, off, true);
}

void
tree_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    dir_free((struct dirsnap *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

void
tree_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = req_fs(req);
    struct slot *sl;
    uint64_t id;

    if (tree_decode(parent).node != N_STREAMS) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if (!parse_id(name, &id) || !(sl = slot_find(fs, id))) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (!access_slot(sl, access_uid(req))) {
        fuse_reply_err(req, EACCES);
        return;
    }
    slot_close(sl);
    fuse_reply_err(req, 0);
}
