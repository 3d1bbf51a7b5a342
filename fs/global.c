/*
 * global.c - the mount's top-level ctl file (SPEC §5.3): `vm add` and
 * `vm del`, and, read with no command outstanding, the daemon's status
 * (VMs, streams, parked requests, live captures per interface).
 *
 * The commands are a command table (command.c): name, argument counts,
 * usage line, handler. With allow_other only privileged users may add or
 * remove VMs (a VM is a way into a machine, and the host VM runs as the
 * daemon): access.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

size_t
global_status(struct fs *fs, char *buf, size_t len)
{
    buf[0] = 0;
    text_appendf(buf, len, "proviumfs %s\npid: %d\n", FS_VERSION,
                 (int)getpid());
    text_keyval(buf, len, "mount", fs->opt->mountpoint);
    text_appendf(buf, len, "uptime: %llds\n",
                 (long long)(time(NULL) - fs->started));
    text_keyval(buf, len, "spool_dir", fs->opt->spool_dir);
    text_appendf(buf, len, "history_limit: %" PRIu64 "\nshared: %s\n",
                 fs->opt->history_limit, access_shared(fs) ? "yes" : "no");
    text_appendf(buf, len, "vms:");
    for (struct vm *vm = fs->vms; vm; vm = vm->next)
        text_appendf(buf, len, " %s(%s)", vm->name,
                     agent_client_state_name(agent_client_state(vm->agent)));
    text_appendf(buf, len, "\nstreams: %zu\nparked: %u\n", fs->nslots,
                 fs->nparked);
    text_appendf(buf, len, "replies: %s, %u reply thread(s)\n",
                 send_splicing(fs) ? "spliced" : "copied",
                 fs->opt->reply_threads);
    capture_status(buf, len);
    return strnlen(buf, len);
}

/* ---- the commands ---------------------------------------------- */

typedef int global_fn(struct ctl *c, fuse_req_t req, const struct command *cmd,
                      int argi, char *err);

/* One command of the top-level ctl (a command table, command.c). */
struct global_cmd {
    struct command_entry c;
    global_fn *run;
};

static int
global_vm_add(struct ctl *c, fuse_req_t req, const struct command *cmd,
              int argi, char *err)
{
    struct reply *rp = NULL;
    int rc = vm_add(c->fs, cmd, argi, access_uid(req), err);

    if (rc < 0)
        ctl_push_error(c, "%s", err);
    else
        ctl_push_reply(c, (reply_new_mem(REPLY_OK, "", 0, &rp), rp));
    return rc == -EINVAL ? rc : 0;
}

static int
global_vm_del(struct ctl *c, fuse_req_t req, const struct command *cmd,
              int argi, char *err)
{
    struct word name = cmd->argv[argi];
    struct reply *rp = NULL;
    struct vm *vm = vm_find(c->fs, name.p, name.len);

    if (!vm) {
        ctl_push_error(c, "vm del: `%.*s`: %s",
                       (int)(name.len > 64 ? 64 : name.len), name.p,
                       strerror(ENOENT));
        return 0;
    }
    vm_del(vm);
    reply_new_mem(REPLY_OK, "", 0, &rp);
    ctl_push_reply(c, rp);
    return 0;
}

static const struct global_cmd global_cmds[] = {
        {{"vm add", 1, -1,
          "vm add NAME agent=ENDPOINT [console=SOCKETPATH] [nic=IFACE]... "
          "[users=UID,...]",
          NULL},
         global_vm_add},
        {{"vm del", 1, 1, "vm del NAME", NULL}, global_vm_del},
};
#define N_GLOBAL_CMDS (sizeof(global_cmds) / sizeof(global_cmds[0]))

/* ---- the ctl file ------------------------------------------------ */

static int
global_write(struct ctl *c, fuse_req_t req, struct command *cmd)
{
    const struct command_entry *e;
    char err[COMMAND_ERR_LEN];
    int argi, rc;

    rc = command_lookup(global_cmds, N_GLOBAL_CMDS, sizeof(global_cmds[0]), cmd,
                        "global", &e, &argi, err);
    if (rc == -ENOENT) {
        /* Not a command: every usage line. */
        size_t n = 0;
        for (size_t i = 0; i < N_GLOBAL_CMDS && n < sizeof(err); i++)
            n += (size_t)snprintf(
                    err + n, sizeof(err) - n, "%s%s",
                    i ? " | " : "usage: ", global_cmds[i].c.usage);
    }
    if (rc < 0) {
        ctl_push_error(c, "%s", err);
        rc = -EINVAL;
    } else if (access_vm_admin(c->fs, access_uid(req), err, sizeof(err)) < 0) {
        ctl_push_error(c, "%s: %s (%s)", e->name, strerror(EPERM), err);
        rc = 0;
    } else {
        rc = ((const struct global_cmd *)(const void *)e)
                     ->run(c, req, cmd, argi, err);
    }
    command_free(cmd);
    free(cmd);
    return rc;
}

static size_t
global_text(struct ctl *c, char *buf, size_t len)
{
    return global_status(c->fs, buf, len);
}

static const struct ctl_type global_type = {
        .write = global_write,
        .text = global_text,
};

int
global_open(struct fs *fs, struct file *f)
{
    /* The mount is all it needs: a bare ctl. */
    return ctl_open(f, fs, &global_type, sizeof(struct ctl)) ? 0 : -ENOMEM;
}
