/*
 * main.c - proviumfs: options, start-up checks, the daemon-wide state,
 * and logging (the only file that logs).
 *
 *   proviumfs [-f] [-d] [-o opt,...] [--spool-dir DIR]
 *             [--history-limit BYTES] [--no-host] [--agent PATH]
 *             [--agent-timeout DURATION]
 *             [--vm NAME=ENDPOINT[,console=PATH][,nic=IFACE]...]...
 *             [MOUNTPOINT]
 *
 * One thread, one reactor (streams/reactor.c) serving the FUSE session,
 * the agents, the engines and the timers.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

#define DEFAULT_HISTORY_LIMIT (4ULL << 30)
#define INSTALLED_AGENT "/usr/local/lib/provium/provium-agent"

static const char usage[] =
        "usage: proviumfs [options] [MOUNTPOINT]   (default " FS_DEFAULT_MOUNT
        ")\n"
        "\n"
        "  -f                     stay in the foreground\n"
        "  -d                     FUSE debug output (implies -f)\n"
        "  -o opt,[opt...]        mount options (allow_other forces "
        "default_permissions)\n"
        "  --spool-dir DIR        where stream histories live (default "
        "$TMPDIR or /tmp)\n"
        "  --history-limit BYTES  per-stream history limit (K/M/G suffixes;\n"
        "                         0 = none; default 4G)\n"
        "  --no-host              no built-in `host` VM\n"
        "  --agent PATH           provium-agent for the host VM (default: "
        "$PROVIUM_AGENT,\n"
        "                         ../guest/provium-agent beside this binary, "
        "./provium-agent\n"
        "                         beside it, " INSTALLED_AGENT ")\n"
        "  --agent-timeout DURATION\n"
        "                         deadline of an agent's handshake and of "
        "each request\n"
        "                         (e.g. 500ms, 30s; 0 = none; default 30s)\n"
        "  --vm NAME=ENDPOINT[,console=PATH][,nic=IFACE]...\n"
        "                         register a VM at start (repeatable)\n"
        "  -h, --help             this text\n"
        "  -V, --version          version\n";

static void die(const char *fmt, ...)
        __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "proviumfs: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static bool log_syslog; /* daemonized: stderr is /dev/null */

void
fs_log(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_syslog)
        syslog(LOG_WARNING, "%s", msg);
    else
        fprintf(stderr, "proviumfs: %s\n", msg);
}

size_t
fs_appendf(char *buf, size_t len, const char *fmt, ...)
{
    size_t n = strnlen(buf, len);
    va_list ap;

    if (n + 1 >= len)
        return n;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
    return strnlen(buf, len);
}

bool
fs_req_privileged(struct fs *fs, fuse_req_t req)
{
    return !fs->opt->allow_other || fuse_req_ctx(req)->uid == 0;
}

/* ---- options ------------------------------------------------------ */

static int
parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -EINVAL;
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        end++;
        break;
    case 't':
    case 'T':
        v <<= 40;
        end++;
        break;
    default:
        break;
    }
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The agent beside us: the build tree (fs/proviumfs, guest/provium-agent)
 * or an install that put both in one directory. */
static char *
find_agent(void)
{
    char self[PATH_MAX], path[PATH_MAX + 32], *slash;
    const char *env = getenv("PROVIUM_AGENT");
    ssize_t n;

    if (env && *env)
        return strdup(env);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        if ((slash = strrchr(self, '/'))) {
            *slash = 0;
            snprintf(path, sizeof(path), "%s/../guest/provium-agent", self);
            if (access(path, X_OK) == 0)
                return realpath(path, NULL);
            snprintf(path, sizeof(path), "%s/provium-agent", self);
            if (access(path, X_OK) == 0)
                return strdup(path);
        }
    }
    return strdup(INSTALLED_AGENT);
}

static const char *
opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);

    if (strncmp(argv[*i], name, len) != 0)
        return NULL;
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (argv[*i][len] != 0)
        return NULL;
    if (*i + 1 >= argc)
        die("%s needs a value", name);
    return argv[++*i];
}

enum { KEY_ALLOW_OTHER };

static const struct fuse_opt fuse_keys[] = {
        FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
        FUSE_OPT_END,
};

static int
fuse_key(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct fs_options *o = data;

    if (key == KEY_ALLOW_OTHER)
        o->allow_other = true;
    return 1; /* keep it for the mount */
}

/* Our long options come out of argv first; the rest is libfuse's. */
static void prepare_mountpoint(const char *mp);

static void
parse_options(int argc, char **argv, struct fs_options *o,
              struct fuse_args *args)
{
    struct fuse_cmdline_opts copts;
    const char *v, *mountpoint = NULL;
    char **vms;

    o->history_limit = DEFAULT_HISTORY_LIMIT;
    o->agent_timeout = AGENT_DEFAULT_TIMEOUT;
    if (fuse_opt_add_arg(args, argv[0]) < 0)
        die("out of memory");
    for (int i = 1; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--spool-dir"))) {
            free(o->spool_dir); /* the last one given counts */
            o->spool_dir = strdup(v);
        } else if ((v = opt_value(argc, argv, &i, "--history-limit"))) {
            if (parse_size(v, &o->history_limit) < 0)
                die("--history-limit: bad size `%s` (e.g. 512M, 4G, 0)", v);
        } else if ((v = opt_value(argc, argv, &i, "--agent-timeout"))) {
            char err[COMMAND_ERR_LEN];
            struct word w = {v, strlen(v)};
            if (duration_parse(w, &o->agent_timeout, err) < 0)
                die("--agent-timeout: %s", err);
        } else if ((v = opt_value(argc, argv, &i, "--agent"))) {
            free(o->agent_path);
            o->agent_path = strdup(v);
        } else if ((v = opt_value(argc, argv, &i, "--vm"))) {
            if (!(vms = realloc(o->vms, (o->nvms + 1) * sizeof(*vms))))
                die("out of memory");
            o->vms = vms;
            o->vms[o->nvms++] = strdup(v);
        } else if (strcmp(argv[i], "--no-host") == 0) {
            o->no_host = true;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(argv[i], "--version") == 0 ||
                   strcmp(argv[i], "-V") == 0) {
            printf("proviumfs %s (libfuse %s)\n", FS_VERSION,
                   fuse_pkgversion());
            exit(0);
        } else if (fuse_opt_add_arg(args, argv[i]) < 0) {
            die("out of memory");
        } else if (argv[i][0] != '-' && strcmp(argv[i - 1], "-o") != 0) {
            mountpoint = argv[i];
        }
    }
    /* libfuse resolves the mount point with realpath(): it must exist, and
     * a mount left by a daemon that died must be gone, before parsing. */
    prepare_mountpoint(mountpoint ? mountpoint : FS_DEFAULT_MOUNT);
    if (fuse_opt_parse(args, o, fuse_keys, fuse_key) < 0)
        die("bad mount options (see --help)");
    if (fuse_parse_cmdline(args, &copts) != 0)
        die("bad options (see --help)");
    o->foreground = copts.foreground;
    o->debug = copts.debug;
    o->mountpoint =
            copts.mountpoint ? copts.mountpoint : strdup(FS_DEFAULT_MOUNT);
    if (!o->spool_dir)
        o->spool_dir = strdup(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!o->agent_path)
        o->agent_path = find_agent();
    /* SPEC §8: on a shared mount the kernel checks modes, so each
     * stream's files are its owner's alone. */
    if (o->allow_other && fuse_opt_add_arg(args, "-odefault_permissions") < 0)
        die("out of memory");
    if (fuse_opt_add_arg(args, "-ofsname=provium,subtype=provium") < 0)
        die("out of memory");
    if (!o->mountpoint || !o->spool_dir || !o->agent_path)
        die("out of memory");
}

/* ---- start-up checks ---------------------------------------------- */

/* Kernels >= 6.15 abort the whole connection when a request waits longer
 * than fs.fuse.*_request_timeout: a `cat data` parked on a quiet stream
 * would kill the mount. There is no reply that keeps a read alive, so
 * refuse to start instead. */
static void
check_request_timeouts(void)
{
    static const char *const names[] = {"default_request_timeout",
                                        "max_request_timeout"};
    char path[96];
    unsigned long v;

    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/proc/sys/fs/fuse/%s", names[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* older kernel: no such limit */
        if (fscanf(f, "%lu", &v) == 1 && v != 0)
            die("fs.fuse.%s is %lu: the kernel would abort the mount when a "
                "read waits on a quiet stream for %lu s. Set it to 0 "
                "(sysctl -w fs.fuse.%s=0) to run proviumfs.",
                names[i], v, v, names[i]);
        fclose(f);
    }
}

/* mkdir -p, and detach a mount left by a proviumfs that died (ENOTCONN:
 * "Transport endpoint is not connected"). */
static void
prepare_mountpoint(const char *mp)
{
    char path[PATH_MAX];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s", mp) >= (int)sizeof(path))
        die("mount point too long");
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            die("mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die("mkdir %s: %s", path, strerror(errno));
    if (stat(mp, &st) < 0 && errno == ENOTCONN) {
        fprintf(stderr,
                "proviumfs: %s: stale mount of a dead daemon; "
                "detaching it\n",
                mp);
        if (umount2(mp, MNT_DETACH) < 0)
            die("umount %s: %s (run: fusermount3 -u %s)", mp, strerror(errno),
                mp);
    }
}

/* Each stream holds two spool fds (history and frame index): a thousand
 * streams need more than the usual soft limit of 1024. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* "NAME=ENDPOINT[,console=PATH][,nic=IF]..." as a `vm add` command. */
static void
add_vm_option(struct fs *fs, const char *spec)
{
    char line[8192], err[COMMAND_ERR_LEN];
    struct command cmd;
    const char *eq = strchr(spec, '=');
    int rc;

    if (!eq || eq == spec)
        die("--vm %s: expected NAME=ENDPOINT[,console=PATH][,nic=IFACE]", spec);
    snprintf(line, sizeof(line), "%.*s agent=%s", (int)(eq - spec), spec,
             eq + 1);
    for (char *p = line; *p; p++)
        if (*p == ',')
            *p = ' ';
    if ((rc = command_parse(&cmd, line, strlen(line), err)) < 0)
        die("--vm %s: %s", spec, err);
    rc = vm_add(fs, &cmd, 0, err);
    command_free(&cmd);
    if (rc < 0)
        die("--vm %s: %s", spec, err);
}

int
main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fs_options opt = {0};
    struct fs fs = {0};
    char err[COMMAND_ERR_LEN];
    int rc, status = 1;

    parse_options(argc, argv, &opt, &args);
    check_request_timeouts();
    raise_fd_limit();
    fs.opt = &opt;
    fs.uid = getuid();
    fs.gid = getgid();
    fs.started = time(NULL);
    if (!(fs.buf = malloc(FS_BUF_SIZE)))
        die("out of memory");
    if (session_mount(&fs, &args) < 0)
        die("cannot mount %s (see the message above)", opt.mountpoint);
    /* Fork before any child or fd of ours exists: the agent must be our
     * child, not the exiting parent's. */
    if (fuse_daemonize(opt.foreground) != 0)
        goto out_session;
    if (!opt.foreground) {
        openlog("proviumfs", LOG_PID, LOG_DAEMON);
        log_syslog = true;
    }
    if ((rc = reactor_new(&fs.r)) < 0) {
        fprintf(stderr, "proviumfs: reactor: %s\n", strerror(-rc));
        goto out_session;
    }
    if ((rc = session_start(&fs)) < 0) {
        fprintf(stderr, "proviumfs: session: %s\n", strerror(-rc));
        goto out_reactor;
    }
    if (!opt.no_host && vm_add_host(&fs, err) < 0) {
        fprintf(stderr, "proviumfs: %s\n", err);
        goto out_vms;
    }
    for (size_t i = 0; i < opt.nvms; i++)
        add_vm_option(&fs, opt.vms[i]);
    fprintf(stderr, "proviumfs: mounted %s (pid %d, spool %s, agent %s)\n",
            opt.mountpoint, (int)getpid(), opt.spool_dir,
            opt.no_host ? "none" : opt.agent_path);
    if ((rc = reactor_run(fs.r)) < 0)
        fprintf(stderr, "proviumfs: event loop: %s\n", strerror(-rc));
    else
        status = 0;
    fprintf(stderr, "proviumfs: unmounting %s\n", opt.mountpoint);
out_vms:
    session_shutdown(&fs);
    session_finish(&fs);
    file_free_all(&fs);
out_reactor:
    reactor_free(fs.r);
out_session:
    if (status != 0 && fs.se)
        fuse_session_unmount(fs.se);
    session_free(&fs);
    free(fs.buf);
    free(fs.slots);
    fuse_opt_free_args(&args);
    free(opt.mountpoint);
    free(opt.spool_dir);
    free(opt.agent_path);
    for (size_t i = 0; i < opt.nvms; i++)
        free(opt.vms[i]);
    free(opt.vms);
    return status;
}
