/*
 * global.c - the mount's top-level ctl file (SPEC §5.3): `vm add` and
 * `vm del`, and, read with no command outstanding, the daemon's status
 * (VMs, streams, parked requests, live captures per interface).
 *
 * With allow_other only privileged users may add or remove VMs (a VM is
 * a way into a machine, and the host VM runs as the daemon): access.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

struct gctl {
    struct ctl c;
    struct fs *fs;
};

size_t
gctl_status(struct fs *fs, char *buf, size_t len)
{
    buf[0] = 0;
    fs_appendf(buf, len, "proviumfs %s\npid: %d\n", FS_VERSION, (int)getpid());
    text_keyval(buf, len, "mount", fs->opt->mountpoint);
    fs_appendf(buf, len, "uptime: %llds\n",
               (long long)(time(NULL) - fs->started));
    text_keyval(buf, len, "spool_dir", fs->opt->spool_dir);
    fs_appendf(buf, len, "history_limit: %" PRIu64 "\nshared: %s\n",
               fs->opt->history_limit, access_shared(fs) ? "yes" : "no");
    fs_appendf(buf, len, "vms:");
    for (struct vm *vm = fs->vms; vm; vm = vm->next)
        fs_appendf(buf, len, " %s(%s)", vm->name,
                   agent_client_state_name(agent_client_state(vm->agent)));
    fs_appendf(buf, len, "\nstreams: %zu\nparked: %u\n", fs->nslots,
               fs->nparked);
#if PROVIUM_HAVE_CAPTURE
    capture_status(buf, len);
#endif
    return strnlen(buf, len);
}

static size_t
gctl_text(void *arg, char *buf, size_t len)
{
    return gctl_status(((struct gctl *)arg)->fs, buf, len);
}

int
gctl_open(struct fs *fs, struct gctl **out)
{
    struct gctl *gc = calloc(1, sizeof(*gc));

    if (!gc)
        return -ENOMEM;
    gc->fs = fs;
    ctl_init(&gc->c, fs, gctl_text, gc);
    *out = gc;
    return 0;
}

struct ctl *
gctl_ctl(struct gctl *gc)
{
    return &gc->c;
}

int
gctl_write(struct gctl *gc, fuse_req_t req, const char *buf, size_t len)
{
    struct command cmd;
    char err[COMMAND_ERR_LEN];
    struct reply *rp = NULL;
    struct vm *vm;
    int rc;

    if ((rc = command_parse(&cmd, buf, len, err)) < 0) {
        ctl_push_error(&gc->c, "%s", err);
        return rc;
    }
    if (cmd.argc < 3 || !word_is(cmd.argv[0], "vm") ||
        !(word_is(cmd.argv[1], "add") || word_is(cmd.argv[1], "del"))) {
        ctl_push_error(&gc->c, "usage: vm add NAME agent=ENDPOINT "
                               "[console=SOCKETPATH] [nic=IFACE]... "
                               "[users=UID,...] | vm del NAME");
        rc = -EINVAL;
        goto out;
    }
    if (!access_privileged(gc->fs, access_uid(req))) {
        ctl_push_error(&gc->c,
                       "vm %s: %s (only root may add or remove VMs "
                       "on a shared mount)",
                       word_is(cmd.argv[1], "add") ? "add" : "del",
                       strerror(EPERM));
        rc = 0;
        goto out;
    }
    if (word_is(cmd.argv[1], "add")) {
        rc = vm_add(gc->fs, &cmd, 2, access_uid(req), err);
        if (rc < 0)
            ctl_push_error(&gc->c, "%s", err);
        else
            ctl_push_reply(&gc->c, (reply_new_mem(REPLY_OK, "", 0, &rp), rp));
        rc = rc == -EINVAL ? rc : 0;
        goto out;
    }
    if (cmd.argc != 3) {
        ctl_push_error(&gc->c, "usage: vm del NAME");
        rc = -EINVAL;
        goto out;
    }
    if (!(vm = vm_find(gc->fs, cmd.argv[2].p, cmd.argv[2].len))) {
        ctl_push_error(&gc->c, "vm del: `%.*s`: %s",
                       (int)(cmd.argv[2].len > 64 ? 64 : cmd.argv[2].len),
                       cmd.argv[2].p, strerror(ENOENT));
        rc = 0;
        goto out;
    }
    vm_del(vm);
    reply_new_mem(REPLY_OK, "", 0, &rp);
    ctl_push_reply(&gc->c, rp);
    rc = 0;
out:
    command_free(&cmd);
    return rc;
}

void
gctl_free(struct gctl *gc)
{
    if (!gc)
        return;
    ctl_fini(&gc->c);
    free(gc);
}
