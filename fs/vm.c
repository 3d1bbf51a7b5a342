/*
 * vm.c - the VM registry (SPEC §3 vms/, §5.3): the built-in `host` VM
 * served by a provium-agent the daemon spawns, VMs added with `vm add`
 * (an agent endpoint, an optional console socket, the host side of its
 * NICs), removal, the waits for an agent to come up, and the VM's text
 * files (info, streams).
 *
 * A VM is reference counted: the registry holds one while it is
 * registered and every open vms/<name>/ctl holds one, so `vm del` with a
 * ctl open leaves a VM that is `gone`: its commands answer an error. vm
 * ids are never reused, so inodes of a deleted VM are ENOENT even if the
 * name comes back.
 *
 * Opens and commands that arrive while the agent is still connecting
 * (right after mount, after `vm add`, while a crashed host agent is being
 * respawned) wait for it for up to FS_AGENT_WAIT instead of failing.
 *
 * Removal (`vm del`, unmount) ends what the VM's processes (SPEC §6.4):
 * the VM leaves the registry and its streams close at once; then, in the
 * background, every process started through the mount that still runs
 * gets SIGTERM (its group, through the agent), and after VM_KILL_GRACE
 * SIGKILL; then the agent connection is stopped (the host VM's agent is
 * sent SIGTERM and given time to end whatever else it started). Each step
 * is bounded, so a dead or hung agent delays the end by seconds at most.
 *
 * Agent events (connection lost and why, protocol violations, a spawned
 * agent's exit status, unresponsiveness) are logged with the VM's name.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

#define VM_KILL_GRACE (2 * USEC_PER_SEC) /* TERM to KILL */
#define VM_KILL_WAIT (1 * USEC_PER_SEC)  /* KILL to giving up on them */

struct vm *
vm_find(struct fs *fs, const char *name, size_t len)
{
    for (struct vm *vm = fs->vms; vm; vm = vm->next)
        if (strlen(vm->name) == len && memcmp(vm->name, name, len) == 0)
            return vm;
    return NULL;
}

struct vm *
vm_by_id(struct fs *fs, uint64_t id)
{
    for (struct vm *vm = fs->vms; vm; vm = vm->next)
        if (vm->id == id)
            return vm;
    return NULL;
}

bool
vm_agent_up(struct vm *vm)
{
    enum agent_state st;

    if (!vm->agent)
        return false;
    st = agent_client_state(vm->agent);
    return st == AGENT_UP || st == AGENT_UNRESPONSIVE;
}

bool
vm_has_nic(struct vm *vm, const char *iface)
{
    for (size_t i = 0; i < vm->nnics; i++)
        if (strcmp(vm->nics[i], iface) == 0)
            return true;
    return false;
}

/* ---- waiting for the agent ---------------------------------------- */

static void
wait_unlink(struct vm_wait *w)
{
    struct vm_wait **pp = &w->vm->waiters;

    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    reactor_timer_stop(w->vm->fs->r, &w->timer);
    w->vm = NULL;
}

static void
wait_fire(struct vm_wait *w, int err, const char *msg)
{
    vm_wait_fn *fn = w->fn;

    wait_unlink(w);
    fn(w->arg, err, msg);
}

static void
wait_timeout(struct reactor *r, void *arg)
{
    struct vm_wait *w = arg;
    char msg[600];

    snprintf(msg, sizeof(msg),
             "vm `%s`: the VM's agent is not connected (waited %llus)%s%s",
             w->vm->name, (unsigned long long)(FS_AGENT_WAIT / USEC_PER_SEC),
             *agent_client_error(w->vm->agent) ? ": " : "",
             agent_client_error(w->vm->agent));
    wait_fire(w, -ENOTCONN, msg);
}

void
vm_wait_up(struct vm *vm, struct vm_wait *w, vm_wait_fn *fn, void *arg)
{
    char msg[600];

    memset(w, 0, sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    if (vm_agent_up(vm)) {
        fn(arg, 0, NULL);
        return;
    }
    if (vm->gone || agent_client_state(vm->agent) == AGENT_DEAD) {
        snprintf(msg, sizeof(msg), "vm `%s`: the VM's agent is gone: %s",
                 vm->name, agent_client_error(vm->agent));
        fn(arg, -ENOTCONN, msg);
        return;
    }
    if (reactor_timer_start(vm->fs->r, &w->timer, clock_now() + FS_AGENT_WAIT,
                            wait_timeout, w) < 0) {
        fn(arg, -ENOMEM, "out of memory");
        return;
    }
    w->vm = vm;
    w->next = vm->waiters;
    vm->waiters = w;
}

void
vm_wait_cancel(struct vm_wait *w)
{
    if (w && w->vm)
        wait_unlink(w);
}

/* Wake waiters: all of them, with err. A waiter's callback may cancel
 * others, so take them one at a time from the head. */
static void
wake_waiters(struct vm *vm, int err, const char *msg)
{
    while (vm->waiters)
        wait_fire(vm->waiters, err, msg);
}

static void
agent_state(struct agent_client *c, void *arg)
{
    struct vm *vm = arg;
    char msg[600];

    switch (agent_client_state(c)) {
    case AGENT_UP:
        procs_session(vm); /* before anyone uses an id of the new session */
        wake_waiters(vm, 0, NULL);
        break;
    case AGENT_DEAD:
        snprintf(msg, sizeof(msg), "vm `%s`: the VM's agent is gone: %s",
                 vm->name, agent_client_error(c));
        wake_waiters(vm, -ENOTCONN, msg);
        break;
    default:
        break;
    }
}

/* ---- add / del ---------------------------------------------------- */

static bool
name_ok(struct word w)
{
    if (w.len == 0 || w.len > 63 || word_is(w, ".") || word_is(w, ".."))
        return false;
    for (size_t i = 0; i < w.len; i++) {
        char c = w.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static void
vm_free(struct vm *vm)
{
    agent_client_free(vm->agent);
    free(vm->users);
    free(vm->name);
    free(vm->endpoint);
    free(vm->console_path);
    for (size_t i = 0; i < vm->nnics; i++)
        free(vm->nics[i]);
    free(vm->nics);
    free(vm);
}

void
vm_unref(struct vm *vm)
{
    if (vm && --vm->refs == 0)
        vm_free(vm);
}

static struct vm *
vm_alloc(struct fs *fs, const char *name)
{
    struct vm *vm = calloc(1, sizeof(*vm));

    if (!vm || !(vm->name = strdup(name)) ||
        !(vm->users = malloc(sizeof(*vm->users)))) {
        if (vm)
            free(vm->name);
        free(vm);
        return NULL;
    }
    vm->users[0] = fs->uid; /* the host VM is the mount owner's */
    vm->nusers = 1;
    vm->fs = fs;
    vm->refs = 1;
    vm->id = ++fs->next_vm_id;
    return vm;
}

static void
agent_event(struct agent_client *c, const char *msg, void *arg)
{
    struct vm *vm = arg;

    log_warn("vm `%s`: %s", vm->name, msg);
}

static void
vm_register(struct fs *fs, struct vm *vm)
{
    struct vm **pp = &fs->vms;

    while (*pp) /* in order of addition: `ls vms` and status read so */
        pp = &(*pp)->next;
    *pp = vm;
    agent_client_on_state(vm->agent, agent_state, vm);
    agent_client_on_event(vm->agent, agent_event, vm);
    agent_client_set_timeout(vm->agent, fs->opt->agent_timeout);
}

int
vm_add_host(struct fs *fs, char *err)
{
    struct vm *vm = vm_alloc(fs, "host");
    int rc;

    if (!vm) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    vm->host = true;
    if (!(vm->endpoint = malloc(strlen(fs->opt->agent_path) + 8))) {
        vm_free(vm);
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    sprintf(vm->endpoint, "spawn:%s", fs->opt->agent_path);
    if ((rc = agent_client_spawn(fs->r, fs->opt->agent_path, fs->opt->spool_dir,
                                 &vm->agent)) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "host: cannot start %s: %s",
                 fs->opt->agent_path, strerror(-rc));
        vm_free(vm);
        return rc;
    }
    vm_register(fs, vm);
    return 0;
}

/* users=UID[,UID]... (':' works too: `--vm` uses commas between its
 * options): the VM's owners on a shared mount. */
static int
parse_users(struct vm *vm, struct word v, char *err)
{
    size_t i = 0, n = 0;
    uid_t *users;

    if (!(users = calloc(VM_MAX_USERS, sizeof(*users))))
        return -ENOMEM;
    while (i < v.len) {
        unsigned long long u = 0;
        size_t start = i;
        while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9' && u <= UINT32_MAX)
            u = u * 10 + (unsigned)(v.p[i++] - '0');
        if (i == start || u >= UINT32_MAX || n == VM_MAX_USERS ||
            (i < v.len && v.p[i] != ',' && v.p[i] != ':') ||
            (i < v.len && i + 1 == v.len))
            goto bad;
        users[n++] = (uid_t)u;
        i += i < v.len;
    }
    if (n == 0)
        goto bad;
    free(vm->users);
    vm->users = users;
    vm->nusers = n;
    return 0;
bad:
    free(users);
    snprintf(err, COMMAND_ERR_LEN,
             "vm add: bad users=`%.*s` (expected numeric uids separated by "
             "commas, at most %d)",
             (int)(v.len > 64 ? 64 : v.len), v.p, VM_MAX_USERS);
    return -EINVAL;
}

int
vm_add(struct fs *fs, const struct command *cmd, int argi, uid_t uid, char *err)
{
    struct word name, v;
    struct vm *vm = NULL;
    char **nics;
    int rc = -EINVAL;

    if (argi >= cmd->argc) {
        snprintf(err, COMMAND_ERR_LEN,
                 "vm add: usage: vm add NAME agent=ENDPOINT "
                 "[console=SOCKETPATH] [nic=IFACE]... [users=UID,...]");
        return -EINVAL;
    }
    name = cmd->argv[argi];
    if (!name_ok(name)) {
        snprintf(err, COMMAND_ERR_LEN,
                 "vm add: bad name `%.*s` (1-63 of A-Z a-z 0-9 _ - .)",
                 (int)(name.len > 64 ? 64 : name.len), name.p);
        return -EINVAL;
    }
    if (vm_find(fs, name.p, name.len)) {
        snprintf(err, COMMAND_ERR_LEN, "vm add: `%.*s` exists", (int)name.len,
                 name.p);
        return -EEXIST;
    }
    if (!(vm = calloc(1, sizeof(*vm))))
        goto nomem;
    vm->fs = fs;
    vm->refs = 1;
    if (!(vm->name = word_strdup(name)) ||
        !(vm->users = malloc(sizeof(*vm->users))))
        goto nomem;
    vm->users[0] = uid; /* who added it, unless users= says otherwise */
    vm->nusers = 1;
    for (int i = argi + 1; i < cmd->argc; i++) {
        struct word w = cmd->argv[i];
        char **slot = NULL;
        if (word_option(w, "agent", &v))
            slot = &vm->endpoint;
        else if (word_option(w, "console", &v))
            slot = &vm->console_path;
        if (slot) {
            free(*slot);
            if (!(*slot = word_strdup(v)))
                goto nomem;
            continue;
        }
        if (word_option(w, "users", &v)) {
            if ((rc = parse_users(vm, v, err)) == -ENOMEM)
                goto nomem;
            if (rc < 0)
                goto fail;
            rc = -EINVAL;
            continue;
        }
        if (!word_option(w, "nic", &v) || v.len == 0 || v.len > 15) {
            snprintf(err, COMMAND_ERR_LEN,
                     "vm add: unknown or bad option `%.*s` (expected "
                     "agent=, console=, nic=, users=)",
                     (int)(w.len > 64 ? 64 : w.len), w.p);
            goto fail;
        }
        if (!(nics = realloc(vm->nics, (vm->nnics + 1) * sizeof(*nics))))
            goto nomem;
        vm->nics = nics;
        if (!(vm->nics[vm->nnics] = word_strdup(v)))
            goto nomem;
        vm->nnics++;
    }
    if (!vm->endpoint) {
        snprintf(err, COMMAND_ERR_LEN,
                 "vm add: agent=ENDPOINT is required "
                 "(unix:PATH or vsock:CID:PORT)");
        goto fail;
    }
    if ((rc = agent_client_new(fs->r, vm->endpoint, &vm->agent)) < 0) {
        snprintf(err, COMMAND_ERR_LEN,
                 "vm add: bad endpoint `%s`: %s "
                 "(expected unix:PATH or vsock:CID:PORT)",
                 vm->endpoint, strerror(-rc));
        goto fail;
    }
    if (vm->console_path &&
        (rc = console_new(fs->r, vm->console_path, fs->opt->spool_dir,
                          &vm->console)) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "vm add: console %s: %s",
                 vm->console_path, strerror(-rc));
        goto fail;
    }
    vm->id = ++fs->next_vm_id;
    vm_register(fs, vm);
    return 0;
nomem:
    snprintf(err, COMMAND_ERR_LEN, "out of memory");
    rc = -ENOMEM;
fail:
    if (vm)
        vm_free(vm);
    return rc;
}

/* ---- removal ------------------------------------------------------ */

static void
stopping_unlink(struct vm *vm)
{
    struct vm **pp = &vm->fs->vms_stopping;

    while (*pp && *pp != vm)
        pp = &(*pp)->next;
    if (*pp)
        *pp = vm->next;
    vm->next = NULL;
}

/* The last step: the VM is gone for good. */
static void
vm_stopped(struct vm *vm)
{
    struct fs *fs = vm->fs;

    reactor_timer_stop(fs->r, &vm->stop_timer);
    stopping_unlink(vm);
    procs_free_all(vm);
    agent_client_free(vm->agent);
    vm->agent = NULL;
    if (fs->stopping && !fs->vms_stopping)
        reactor_stop(fs->r);
    vm_unref(vm);
}

static void
agent_stopped(struct agent_client *c, void *arg)
{
    vm_stopped(arg);
}

enum { STOP_TERM = 1, STOP_KILL, STOP_AGENT };

/* One step of the removal; each runs when the previous one is done or
 * its time is up. */
static void
stop_step(struct reactor *r, void *arg)
{
    struct vm *vm = arg;
    bool procs = vm_agent_up(vm) && procs_running(vm) > 0;

    reactor_timer_stop(r, &vm->stop_timer);
    if (vm->stop_phase == 0 && procs && !vm->host) {
        /* The host VM's agent ends everything it started when stopped;
         * a guest's agent outlives us, so ask it. */
        vm->stop_phase = STOP_TERM;
        procs_signal(vm, SIGTERM);
        reactor_timer_start(r, &vm->stop_timer, clock_now() + VM_KILL_GRACE,
                            stop_step, vm);
        return;
    }
    if (vm->stop_phase == STOP_TERM && procs) {
        vm->stop_phase = STOP_KILL;
        log_warn("vm `%s`: %zu process(es) still running %llus after SIGTERM: "
                 "SIGKILL",
                 vm->name, procs_running(vm),
                 (unsigned long long)(VM_KILL_GRACE / USEC_PER_SEC));
        procs_signal(vm, SIGKILL);
        reactor_timer_start(r, &vm->stop_timer, clock_now() + VM_KILL_WAIT,
                            stop_step, vm);
        return;
    }
    vm->stop_phase = STOP_AGENT;
    if (!vm->agent || agent_client_stop(vm->agent, agent_stopped, vm) < 0)
        vm_stopped(vm);
}

void
vm_proc_exited(struct vm *vm)
{
    if (vm->gone &&
        (vm->stop_phase == STOP_TERM || vm->stop_phase == STOP_KILL) &&
        procs_running(vm) == 0)
        reactor_timer_start(vm->fs->r, &vm->stop_timer, 0, stop_step, vm);
}

void
vm_del(struct vm *vm)
{
    struct fs *fs = vm->fs;
    struct vm **pp = &fs->vms;
    char msg[128];

    if (vm->gone)
        return;
    vm->gone = true;
    while (*pp != vm)
        pp = &(*pp)->next;
    *pp = vm->next;
    vm->next = fs->vms_stopping;
    fs->vms_stopping = vm;
    /* Streams first (their sources hold agent channels and the console),
     * then whatever waited; the processes and the agent connection end
     * in the background (stop_step), the registry's reference with them. */
    slot_close_all(fs, vm);
    snprintf(msg, sizeof(msg), "vm `%s` was removed", vm->name);
    wake_waiters(vm, -ENOTCONN, msg);
    console_free(vm->console);
    vm->console = NULL;
    stop_step(fs->r, vm);
}

bool
vm_del_all(struct fs *fs)
{
    while (fs->vms)
        vm_del(fs->vms);
    return fs->vms_stopping == NULL;
}

void
vm_stop_now(struct fs *fs)
{
    while (fs->vms_stopping) {
        struct vm *vm = fs->vms_stopping;
        log_warn("vm `%s`: removal still under way at exit; ending it now",
                 vm->name);
        vm_stopped(vm);
    }
}

/* ---- text --------------------------------------------------------- */

static unsigned
vm_live_streams(struct vm *vm)
{
    size_t b = 0;
    unsigned n = 0;

    for (struct slot *sl = slot_next(vm->fs, &b, NULL); sl;
         sl = slot_next(vm->fs, &b, sl))
        if (sl->vm == vm && sl->state != SLOT_EMPTY)
            n++;
    return n;
}

size_t
vm_info(struct vm *vm, char *buf, size_t len)
{
    buf[0] = 0;
    text_keyval(buf, len, "name", vm->name);
    text_appendf(buf, len, "id: %" PRIu64 "\n", vm->id);
    if (vm->agent)
        agent_client_info(vm->agent, buf, len);
    if (vm->console) {
        console_info(vm->console, buf, len);
    } else {
        /* No console=, or the VM was removed (its console went first). */
        text_keyval(buf, len, "console",
                    vm->console_path ? vm->console_path : "none");
        text_appendf(buf, len, "console_state: %s\n",
                     vm->console_path ? "unavailable" : "none");
    }
    text_appendf(buf, len, "nics:");
    for (size_t i = 0; i < vm->nnics; i++) {
        text_appendf(buf, len, " ");
        text_append(buf, len, vm->nics[i]);
    }
    text_appendf(buf, len, "\nusers:");
    for (size_t i = 0; i < vm->nusers; i++)
        text_appendf(buf, len, "%s%u", i ? "," : " ", (unsigned)vm->users[i]);
    text_appendf(buf, len, "\nstreams: %u\nprocs: %zu\nhandles: %u\n",
                 vm_live_streams(vm), vm->nprocs, vm->handles);
    return strnlen(buf, len);
}

/* One line of vms/<name>/streams or of the quiesce text: SPEC §7's
 * description, or, for a viewer who may not see it (access.c), the kind
 * and whose stream it is. */
static void
describe_for(struct slot *sl, uid_t uid, bool all, char *buf, size_t len)
{
    size_t at = strnlen(buf, len);

    if (at + 2 >= len)
        return;
    if (all || access_slot_text(sl, uid))
        slot_describe(sl, buf + at, len - at - 1);
    else
        text_appendf(buf, len, "%s(<hidden>) of uid %u", sl->kind,
                     (unsigned)sl->uid);
    text_appendf(buf, len, "\n");
}

static size_t
streams_text(struct vm *vm, uid_t uid, bool all, const char *indent, char *buf,
             size_t len)
{
    size_t b = 0;

    for (struct slot *sl = slot_next(vm->fs, &b, NULL); sl;
         sl = slot_next(vm->fs, &b, sl)) {
        if (sl->vm != vm || sl->state == SLOT_EMPTY ||
            strnlen(buf, len) + 8 >= len)
            continue;
        text_appendf(buf, len, "%s", indent);
        describe_for(sl, uid, all, buf, len);
    }
    return strnlen(buf, len);
}

size_t
vm_streams(struct vm *vm, uid_t uid, char *buf, size_t len)
{
    buf[0] = 0;
    return streams_text(vm, uid, access_privileged(vm->fs, uid), "", buf, len);
}

/* SPEC §7's snapshot refusal, or "" when the VM is quiescent. Only the
 * VM's owners may ask (its ctl), and they see every stream of it. */
size_t
vm_quiesce_text(struct vm *vm, char *buf, size_t len)
{
    unsigned n = vm_live_streams(vm);

    buf[0] = 0;
    if (n == 0 && vm->handles == 0)
        return 0;
    text_appendf(buf, len,
                 "vm:snapshot() failed for `%s`: %u open file handle(s), %u "
                 "open stream(s)\n",
                 vm->name, vm->handles, n);
    streams_text(vm, 0, true, "  - ", buf, len);
    text_appendf(buf, len, "  Close streams before snapshotting.");
    return strnlen(buf, len);
}
