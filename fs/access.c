/*
 * access.c - who may do what on the mount (SPEC §8), in one place.
 *
 * Without allow_other the kernel lets no one but the mount owner in, so
 * every check here passes. On a shared mount (allow_other, which forces
 * default_permissions) every object has an owner:
 *  - a stream belongs to the uid that cloned its slot;
 *  - a VM to the users its `vm add` named (users=UID,...), or else to the
 *    uid that added it (only privileged users add VMs); the built-in host
 *    VM to the mount owner, since its agent runs as the daemon;
 *  - a process to the uid that wrote its `exec`, an agent file handle to
 *    the uid that wrote its `open`.
 * Privileged users (root, the mount owner) may do anything. Anyone else:
 *  - uses a VM (opens streams on it, its ctl and console files: exec,
 *    open, console_write, quiesce, ...) only if it is one of its owners;
 *  - uses a process (its output files and streams, wait, kill, stdin) or
 *    a handle (read, write, seek, close, fd_stream) only if it is theirs,
 *    and its VM's: a VM shared by several users is not a way into each
 *    other's processes;
 *  - opens a stream's files or removes it only if the stream is theirs;
 *  - sees the paths, sites and test names of a stream in
 *    vms/<name>/streams only if the stream is theirs or they own the VM;
 *  - never adds or removes VMs, nor captures (CAP_NET_RAW is the
 *    daemon's, not theirs).
 *
 * Two layers enforce this, both from here: the kernel checks the modes
 * and owners access_attr() gives each node (so `ls -l` tells the truth
 * and an open is refused before it reaches us), and the daemon checks
 * again on every open and every command, because a mode cannot name
 * several users and a command names objects (a process id, a handle)
 * that have no file of their own.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"

bool
access_shared(const struct fs *fs)
{
    return fs->opt->allow_other;
}

uid_t
access_uid(fuse_req_t req)
{
    return fuse_req_ctx(req)->uid;
}

uid_t
access_new_uid(struct fs *fs, fuse_req_t req)
{
    return access_shared(fs) ? fuse_req_ctx(req)->uid : fs->uid;
}

gid_t
access_new_gid(struct fs *fs, fuse_req_t req)
{
    return access_shared(fs) ? fuse_req_ctx(req)->gid : fs->gid;
}

bool
access_privileged(const struct fs *fs, uid_t uid)
{
    return !access_shared(fs) || uid == 0 || uid == fs->uid;
}

int
access_vm_admin(const struct fs *fs, uid_t uid, char *why, size_t why_len)
{
    if (access_privileged(fs, uid))
        return 0;
    snprintf(why, why_len, "only root may add or remove VMs on a shared mount");
    return -EPERM;
}

/* Is uid one of vm's owners? */
static bool
vm_owner(const struct vm *vm, uid_t uid)
{
    for (size_t i = 0; i < vm->nusers; i++)
        if (vm->users[i] == uid)
            return true;
    return false;
}

int
access_vm(const struct vm *vm, uid_t uid, char *why, size_t why_len)
{
    if (access_privileged(vm->fs, uid) || (!vm->host && vm_owner(vm, uid)))
        return 0;
    if (vm->host)
        snprintf(why, why_len,
                 "the host VM's agent runs as the daemon; only root may use "
                 "it on a shared mount");
    else
        snprintf(why, why_len,
                 "vm `%s` belongs to %s%u%s; `vm add %s ... users=UID,...` "
                 "names its users",
                 vm->name, vm->nusers > 1 ? "uids " : "uid ",
                 vm->nusers ? (unsigned)vm->users[0] : 0,
                 vm->nusers > 1 ? ",..." : "", vm->name);
    return -EPERM;
}

/* The owner check shared by processes and handles. */
static int
owned(const struct vm *vm, uid_t owner, uid_t uid, const char *what, char *why,
      size_t why_len)
{
    int rc = access_vm(vm, uid, why, why_len);

    if (rc < 0 || access_privileged(vm->fs, uid) || owner == uid)
        return rc;
    snprintf(why, why_len, "the %s belongs to uid %u", what, (unsigned)owner);
    return -EPERM;
}

int
access_proc(const struct vm *vm, const struct vmproc *p, uid_t uid, char *why,
            size_t why_len)
{
    return owned(vm, p->uid, uid, "process", why, why_len);
}

int
access_handle(const struct vm *vm, const struct vmhandle *h, uid_t uid,
              char *why, size_t why_len)
{
    return owned(vm, h->uid, uid, "file handle", why, why_len);
}

int
access_open(const struct fs *fs, const struct engine *e, const struct vm *vm,
            uid_t uid, char *why, size_t why_len)
{
    if (e->priv == ENGINE_PRIV_VM)
        return access_vm(vm, uid, why, why_len);
    if (access_privileged(fs, uid))
        return 0;
    snprintf(why, why_len,
             "captures need CAP_NET_RAW; only root may "
             "capture on a shared mount");
    return -EPERM;
}

int
access_file(const struct fs *fs, enum node n, const struct vm *vm,
            const struct slot *sl, const struct vmproc *p, uid_t uid)
{
    char why[256];

    /* The kernel checked the modes access_attr() gave; the owners a mode
     * cannot name are checked here. */
    if (n >= N_PROC && n <= N_PROC_STDERR &&
        access_proc(vm, p, uid, why, sizeof(why)) < 0)
        return -EACCES;
    if ((n == N_VM_CTL || n == N_VM_CONSOLE) &&
        access_vm(vm, uid, why, sizeof(why)) < 0)
        return -EACCES;
    if (n >= N_S && n <= N_S_INFO && !access_slot(sl, uid))
        return -EACCES;
    return 0;
}

bool
access_slot(const struct slot *sl, uid_t uid)
{
    return access_privileged(sl->fs, uid) || uid == sl->uid;
}

bool
access_slot_text(const struct slot *sl, uid_t uid)
{
    char why[8];

    return access_slot(sl, uid) ||
           (sl->vm && access_vm(sl->vm, uid, why, sizeof(why)) == 0);
}

void
access_attr(const struct fs *fs, enum node n, const struct vm *vm,
            const struct slot *sl, const struct vmproc *p, struct stat *st)
{
    if (!access_shared(fs))
        return;
    switch (n) {
    case N_STREAMS:
        /* Sticky and world-writable, like /tmp: each user may rmdir only
         * their own streams. */
        st->st_mode = (st->st_mode & ~07777u) | 01777;
        break;
    case N_S:
    case N_S_CTL:
    case N_S_DATA:
    case N_S_LOG:
    case N_S_SITE:
    case N_S_INFO:
        st->st_uid = sl->uid;
        st->st_gid = sl->gid;
        if (n == N_S)
            st->st_mode = (st->st_mode & ~07777u) | 0700;
        break;
    case N_VM_CTL:
    case N_VM_CONSOLE:
        /* One owner: theirs, 0600. Several: a mode cannot name them, so
         * 0666 and the daemon checks every open (file.c). */
        if (!vm->host && vm->nusers == 1)
            st->st_uid = vm->users[0];
        else if (!vm->host && vm->nusers > 1)
            st->st_mode = (st->st_mode & ~07777u) | 0666;
        break;
    case N_PROC_STATUS:
    case N_PROC_CMDLINE:
    case N_PROC_STDOUT:
    case N_PROC_STDERR:
        st->st_uid = p->uid;
        break;
    default:
        break;
    }
}
