/*
 * main.c - proviumfs: options, start-up checks, and the daemon's life
 * from mount to exit.
 *
 *   proviumfs [-f] [-d] [-o opt,...] [--spool-dir DIR]
 *             [--history-limit BYTES] [--slot-timeout DURATION]
 *             [--no-host] [--agent PATH] [--agent-timeout DURATION]
 *             [--reply-threads N]
 *             [--vm NAME=ENDPOINT[,console=PATH][,nic=IFACE]...]...
 *             [MOUNTPOINT]
 *
 * Start-up runs in three passes so that a bad start leaves nothing
 * behind (SPEC §10): parse every option (syntax), check them against the
 * system (the spool directory can hold files, the agent is an executable,
 * the mount point holds no live provium mount), and only then mount.
 * VMs given with --vm are registered before the mount too, so a bad one
 * is refused with nothing mounted. Until the daemon detaches, messages go
 * to stderr; after, to syslog (the journal on a systemd machine; log.c).
 *
 * One thread, one reactor (streams/reactor.c) serving the FUSE session,
 * the agents, the engines and the timers; reply threads only write
 * replies of history bytes (send.c, where the rule is).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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

/* Where `cmake --install` puts the agent (fs/CMakeLists.txt): the
 * configured absolute path, and the same path relative to the directory
 * of the installed proviumfs, which stays right when the tree is moved
 * or installed with another --prefix or DESTDIR. */
#ifndef PROVIUM_AGENT_INSTALLED
#define PROVIUM_AGENT_INSTALLED "/usr/local/libexec/provium/provium-agent"
#endif
#ifndef PROVIUM_AGENT_FROM_BINDIR
#define PROVIUM_AGENT_FROM_BINDIR "../libexec/provium/provium-agent"
#endif

static const char usage[] =
        "usage: proviumfs [options] [MOUNTPOINT]   (default " FS_DEFAULT_MOUNT
        ")\n"
        "\n"
        "  -f                     stay in the foreground (messages on "
        "stderr;\n"
        "                         detached, they go to syslog)\n"
        "  -d                     FUSE debug output (implies -f)\n"
        "  -o opt,[opt...]        mount options (allow_other forces "
        "default_permissions)\n"
        "  --spool-dir DIR        where stream histories live (default "
        "$TMPDIR or /tmp)\n"
        "  --history-limit BYTES  per-stream history limit (K/M/G/T "
        "suffixes;\n"
        "                         0 = none; default 4G)\n"
        "  --slot-timeout DURATION\n"
        "                         reclaim a clone slot not opened in time\n"
        "                         (e.g. 30s, 500ms; default 30s)\n"
        "  --no-host              no built-in `host` VM\n"
        "  --agent PATH           provium-agent for the host VM (default: "
        "$PROVIUM_AGENT,\n"
        "                         the build tree's, then the installed "
        "one:\n"
        "                         " PROVIUM_AGENT_FROM_BINDIR " from this "
        "binary's\n"
        "                         directory, then " PROVIUM_AGENT_INSTALLED
        ")\n"
        "  --agent-timeout DURATION\n"
        "                         deadline of an agent's handshake and of "
        "each request\n"
        "                         (e.g. 500ms, 30s; 0 = none; default 30s)\n"
        "  --reply-threads N      threads writing replies of history bytes\n"
        "                         (0 = the event loop's own; default 2)\n"
        "  --vm NAME=ENDPOINT[,console=PATH][,nic=IFACE]...[,users=UID:UID]\n"
        "                         register a VM at start (repeatable)\n"
        "  -h, --help             this text\n"
        "  -V, --version          version\n";

/* Only before the mount: after it, errors unwind through main's ladder
 * so that the mount is taken down. */
static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_ERR, fmt, ap);
    va_end(ap);
    exit(1);
}

/* ---- parsing the options ------------------------------------------ */

/* A byte count with an optional K/M/G/T suffix (powers of 1024).
 * -EINVAL: not one; -ERANGE: more than 64 bits hold. */
static int
parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "KMGT";
    const char *u;
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    if (!isdigit((unsigned char)*s)) /* no sign, no blanks */
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -errno;
    if (*end && (u = strchr(units, toupper((unsigned char)*end)))) {
        shift = 10 * (unsigned)(u - units + 1);
        end++;
    }
    if (*end)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
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
        die("%s needs a value (see --help)", name);
    return argv[++*i];
}

static void
add_arg(struct fuse_args *args, const char *arg)
{
    if (fuse_opt_add_arg(args, arg) < 0)
        die("out of memory");
}

static char *
xstrdup(const char *s)
{
    char *d = strdup(s);

    if (!d)
        die("out of memory");
    return d;
}

/* libfuse's flags that mean something to a low-level daemon with its own
 * loop (-s, single-threaded, is what we are anyway). */
static bool
fuse_flag(const char *a)
{
    return strcmp(a, "-f") == 0 || strcmp(a, "-d") == 0 ||
           strcmp(a, "-s") == 0 || (strncmp(a, "-o", 2) == 0 && a[2]);
}

static void
print_help(void)
{
    fputs(usage, stdout);
    printf("\nMount options (-o), as for every libfuse file system:\n");
    fflush(stdout);
    fuse_lowlevel_help();
}

static void
print_version(void)
{
    printf("proviumfs %s\nFUSE library version %s\n", FS_VERSION,
           fuse_pkgversion());
    fflush(stdout);
    fuse_lowlevel_version();
}

/* Pass 1, syntax: our long options come out of argv; the rest, checked
 * to be libfuse's, goes to args. Anything else is refused here, before
 * anything is touched. */
static void
parse_options(int argc, char **argv, struct fs_options *o,
              struct fuse_args *args, const char **mountpoint)
{
    const char *v;
    bool positional = false;
    char **vms;
    int rc;

    o->history_limit = DEFAULT_HISTORY_LIMIT;
    o->agent_timeout = AGENT_DEFAULT_TIMEOUT;
    o->slot_timeout = FS_SLOT_RECLAIM;
    o->reply_threads = SEND_DEFAULT_THREADS;
    add_arg(args, argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (positional || a[0] != '-') {
            if (*mountpoint)
                die("one mount point only, got `%s` and `%s` (see --help)",
                    *mountpoint, a);
            *mountpoint = a;
            add_arg(args, a);
        } else if (strcmp(a, "--") == 0) {
            positional = true;
        } else if ((v = opt_value(argc, argv, &i, "--spool-dir"))) {
            free(o->spool_dir);
            o->spool_dir = xstrdup(v);
        } else if ((v = opt_value(argc, argv, &i, "--history-limit"))) {
            if ((rc = parse_size(v, &o->history_limit)) == -ERANGE)
                die("--history-limit `%s`: too large (at most 16777215T, "
                    "what 64 bits hold; 0 = no limit)",
                    v);
            if (rc < 0)
                die("--history-limit `%s`: not a size (a number of bytes "
                    "with an optional K, M, G or T suffix, e.g. 512M, 4G; "
                    "0 = no limit)",
                    v);
        } else if ((v = opt_value(argc, argv, &i, "--agent-timeout"))) {
            char err[COMMAND_ERR_LEN];
            struct word w = {v, strlen(v)};
            if (duration_parse(w, &o->agent_timeout, err) < 0)
                die("--agent-timeout `%s`: %s", v, err);
        } else if ((v = opt_value(argc, argv, &i, "--slot-timeout"))) {
            char err[COMMAND_ERR_LEN];
            struct word w = {v, strlen(v)};
            if (duration_parse(w, &o->slot_timeout, err) < 0)
                die("--slot-timeout `%s`: %s", v, err);
            if (o->slot_timeout == 0)
                die("--slot-timeout `%s`: must be more than 0", v);
        } else if ((v = opt_value(argc, argv, &i, "--reply-threads"))) {
            char *end;
            unsigned long n;
            errno = 0;
            n = strtoul(v, &end, 10);
            if (!*v || *end || errno || n > 64 || *v == '-')
                die("--reply-threads `%s`: a number of threads from 0 to 64",
                    v);
            o->reply_threads = (unsigned)n;
        } else if ((v = opt_value(argc, argv, &i, "--agent"))) {
            free(o->agent_path);
            o->agent_path = xstrdup(v);
        } else if ((v = opt_value(argc, argv, &i, "--vm"))) {
            if (!(vms = realloc(o->vms, (o->nvms + 1) * sizeof(*vms))))
                die("out of memory");
            o->vms = vms;
            o->vms[o->nvms++] = xstrdup(v);
        } else if (strcmp(a, "--no-host") == 0) {
            o->no_host = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help();
            exit(0);
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            print_version();
            exit(0);
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc)
                die("-o needs a value (see --help)");
            add_arg(args, a);
            add_arg(args, argv[++i]);
        } else if (fuse_flag(a)) {
            add_arg(args, a);
        } else {
            die("unknown option `%s` (see --help)", a);
        }
    }
    if (!*mountpoint)
        *mountpoint = FS_DEFAULT_MOUNT;
}

/* ---- checking the options against the system ---------------------- */

/* An absolute path: fuse_daemonize() changes to "/", so a relative
 * spool directory or agent would be another file after it. */
static char *
absolute(const char *what, const char *path)
{
    char *abs = realpath(path, NULL);

    if (!abs)
        die("%s %s: %s", what, path, strerror(errno));
    return abs;
}

/* The spool directory: a history is created there exactly as every
 * stream's will be (spool.c: an unlinked file). */
static void
check_spool_dir(struct fs_options *o)
{
    struct spool *sp;
    struct stat st;
    char *abs;
    int rc;

    /* Kept in o at once: die() leaves nothing unreachable for LSan. */
    abs = absolute("--spool-dir", o->spool_dir);
    free(o->spool_dir);
    o->spool_dir = abs;
    if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode))
        die("--spool-dir %s: not a directory", abs);
    if ((rc = spool_new(abs, &sp)) < 0)
        die("--spool-dir %s: cannot create a stream history there: %s", abs,
            strerror(-rc));
    spool_free(sp);
}

/* The agent for the host VM when --agent is not given, first that
 * exists: $PROVIUM_AGENT; the build tree's (fs/proviumfs beside
 * guest/provium-agent); the install's, relative to this binary, then
 * at the configured path. NULL: none; *looked says where we looked. */
static char *
find_agent(char *looked, size_t len)
{
    char self[PATH_MAX], path[PATH_MAX + 64], *slash;
    const char *env = getenv("PROVIUM_AGENT");
    static const char *const beside[] = {
            "../guest/provium-agent",
            PROVIUM_AGENT_FROM_BINDIR,
            "provium-agent",
    };
    ssize_t n;

    if (env && *env) {
        snprintf(looked, len, "PROVIUM_AGENT=%s", env);
        return access(env, F_OK) == 0 ? xstrdup(env) : NULL;
    }
    snprintf(looked, len, "%s", PROVIUM_AGENT_INSTALLED);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        if ((slash = strrchr(self, '/'))) {
            *slash = 0;
            for (size_t i = 0; i < sizeof(beside) / sizeof(*beside); i++) {
                snprintf(path, sizeof(path), "%s/%s", self, beside[i]);
                if (access(path, X_OK) == 0)
                    return xstrdup(path);
            }
            snprintf(looked, len, "%s/%s, %s", self, PROVIUM_AGENT_FROM_BINDIR,
                     PROVIUM_AGENT_INSTALLED);
        }
    }
    return access(PROVIUM_AGENT_INSTALLED, F_OK) == 0
                   ? xstrdup(PROVIUM_AGENT_INSTALLED)
                   : NULL;
}

/* The host VM's agent: an executable regular file, found before the
 * mount rather than failing every open after it. */
static void
check_agent(struct fs_options *o)
{
    char looked[2 * PATH_MAX + 64], *abs;
    const char *what = "--agent";
    struct stat st;

    if (o->no_host)
        return;
    if (!o->agent_path) {
        if (!(o->agent_path = find_agent(looked, sizeof(looked))))
            die("no provium-agent for the host VM (looked for %s); give "
                "--agent PATH, or --no-host",
                looked);
        what = "agent";
    }
    if (stat(o->agent_path, &st) < 0)
        die("%s %s: %s", what, o->agent_path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        die("%s %s: not a regular file", what, o->agent_path);
    if (access(o->agent_path, X_OK) < 0)
        die("%s %s: not executable (%s)", what, o->agent_path, strerror(errno));
    abs = absolute(what, o->agent_path);
    free(o->agent_path);
    o->agent_path = abs;
}

/* --vm NAME=...: the name part only; the rest is checked by vm_add()
 * itself, before the mount (main). */
static void
check_vm_names(const struct fs_options *o)
{
    for (size_t i = 0; i < o->nvms; i++) {
        const char *spec = o->vms[i], *eq = strchr(spec, '=');
        if (!eq || eq == spec)
            die("--vm `%s`: expected NAME=ENDPOINT[,console=PATH]"
                "[,nic=IFACE]...",
                spec);
        if (!o->no_host && eq - spec == 4 && strncmp(spec, "host", 4) == 0)
            die("--vm `%s`: `host` is the built-in VM (add --no-host to "
                "define your own)",
                spec);
    }
}

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

/* Pass 2: everything that can be known before mounting. */
static void
check_options(struct fs_options *o)
{
    if (!o->spool_dir)
        o->spool_dir =
                xstrdup(getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
                                                              : "/tmp");
    check_spool_dir(o);
    check_agent(o);
    check_vm_names(o);
    check_request_timeouts();
}

/* ---- the mount point ---------------------------------------------- */

/* /proc/self/mountinfo escapes blanks, tabs, newlines and backslashes in
 * paths as \ooo. */
static void
unescape_octal(char *s)
{
    char *d = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
            s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 3;
        } else {
            *d++ = *s;
        }
    }
    *d = 0;
}

/* Is a provium file system (fstype fuse.provium: we mount with
 * subtype=provium) mounted at the canonical path mp? */
static bool
provium_mounted_at(const char *mp)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char *line = NULL;
    size_t cap = 0;
    bool found = false;

    if (!f)
        return false;
    while (!found && getline(&line, &cap, f) > 0) {
        char *save, *fields[5], *sep = strstr(line, " - ");
        size_t n = 0;
        if (!sep)
            continue;
        *sep = 0;
        for (char *t = strtok_r(line, " ", &save); t && n < 5;
             t = strtok_r(NULL, " ", &save))
            fields[n++] = t;
        if (n < 5)
            continue;
        unescape_octal(fields[4]);
        found = strcmp(fields[4], mp) == 0 &&
                strncmp(sep + 3, "fuse.provium ", 13) == 0;
    }
    free(line);
    fclose(f);
    return found;
}

/* The canonical form of a mount point that may be a dead mount (whose
 * own stat fails ENOTCONN): its parent resolved, its last name kept. */
static void
canonical_mountpoint(const char *mp, char *out, size_t len)
{
    char path[PATH_MAX], *slash, *base, *parent;

    snprintf(path, sizeof(path), "%s", mp);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = 0;
    slash = strrchr(path, '/');
    if (!slash) {
        base = path;
        parent = realpath(".", NULL);
    } else {
        *slash = 0;
        base = slash + 1;
        parent = realpath(slash == path ? "/" : path, NULL);
    }
    if (!parent)
        die("mount point %s: %s", mp, strerror(errno));
    snprintf(out, len, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, base);
    free(parent);
}

/* mkdir -p; refuse a mount point a live proviumfs serves (a second daemon
 * would stack on it and hide it); detach one left by a proviumfs that
 * died (ENOTCONN: "Transport endpoint is not connected"). libfuse
 * resolves the mount point with realpath(), so this runs before it. */
static void
prepare_mountpoint(const char *mp)
{
    char path[PATH_MAX], canon[PATH_MAX + NAME_MAX + 2];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s", mp) >= (int)sizeof(path))
        die("mount point %s: %s", mp, strerror(ENAMETOOLONG));
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            die("mount point %s: mkdir %s: %s", mp, path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die("mount point %s: mkdir: %s", mp, strerror(errno));
    canonical_mountpoint(mp, canon, sizeof(canon));
    if (stat(mp, &st) < 0 && errno == ENOTCONN) {
        if (!provium_mounted_at(canon))
            die("mount point %s: %s (a dead FUSE mount that is not "
                "provium's; run: fusermount3 -u %s)",
                mp, strerror(ENOTCONN), mp);
        log_msg(LOG_WARNING,
                "%s: stale mount of a dead proviumfs; "
                "detaching it",
                mp);
        if (umount2(mp, MNT_DETACH) < 0)
            die("umount %s: %s (run: fusermount3 -u %s)", mp, strerror(errno),
                mp);
        return;
    }
    if (provium_mounted_at(canon))
        die("mount point %s already holds a provium mount served by a "
            "running proviumfs (see %s/ctl); stop it first, or run: "
            "fusermount3 -u %s",
            mp, mp, mp);
    if (stat(mp, &st) < 0)
        die("mount point %s: %s", mp, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        die("mount point %s: not a directory", mp);
}

/* Pass 3: what libfuse parses (-f, -d, -o ...). */
static void parse_fuse_options(struct fs_options *o, struct fuse_args *args);

/* ---- start-up ----------------------------------------------------- */

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

/* A path in a --vm spec made absolute: the daemon changes to "/" when it
 * detaches, and reconnects to the sockets later. */
static void
append_path(char *line, size_t len, const char *key, const char *p)
{
    char cwd[PATH_MAX];

    if (*p == '/' || !*p || !getcwd(cwd, sizeof(cwd)))
        text_appendf(line, len, " %s%s", key, p);
    else
        text_appendf(line, len, " %s%s/%s", key, cwd, p);
}

/* "NAME=ENDPOINT[,console=PATH][,nic=IF]..." registered as `vm add`
 * would: 0, or -errno with the reason in err. */
static int
add_vm_option(struct fs *fs, const char *spec, char *err)
{
    char line[8192] = "", *copy, *save, *tok;
    const char *eq = strchr(spec, '=');
    struct command cmd;
    int rc;

    if (!(copy = strdup(eq + 1)))
        return -ENOMEM;
    text_appendf(line, sizeof(line), "%.*s", (int)(eq - spec), spec);
    for (tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (tok == copy && strncmp(tok, "unix:", 5) == 0)
            append_path(line, sizeof(line), "agent=unix:", tok + 5);
        else if (tok == copy)
            text_appendf(line, sizeof(line), " agent=%s", tok);
        else if (strncmp(tok, "console=", 8) == 0)
            append_path(line, sizeof(line), "console=", tok + 8);
        else
            text_appendf(line, sizeof(line), " %s", tok);
    }
    free(copy);
    if ((rc = command_parse(&cmd, line, strlen(line), err)) < 0)
        return rc;
    rc = vm_add(fs, &cmd, 0, fs->uid, err);
    command_free(&cmd);
    return rc;
}

int
main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fs_options opt = {0};
    struct fs fs = {0};
    const char *mountpoint = NULL;
    char err[COMMAND_ERR_LEN];
    int rc, status = 1;

    log_init();
    parse_options(argc, argv, &opt, &args, &mountpoint);
    check_options(&opt);
    prepare_mountpoint(mountpoint);
    parse_fuse_options(&opt, &args);
    raise_fd_limit();
    fs.opt = &opt;
    fs.uid = getuid();
    fs.gid = getgid();
    fs.started = time(NULL);
    if (!(fs.buf = malloc(FS_BUF_SIZE)))
        die("out of memory");
    if ((rc = reactor_new(&fs.r)) < 0)
        die("reactor: %s", strerror(-rc));
    /* --vm before the mount, so that a bad one leaves nothing mounted.
     * Their sockets and timers live on in the daemonized child. */
    for (size_t i = 0; i < opt.nvms; i++) {
        if (add_vm_option(&fs, opt.vms[i], err) < 0) {
            log_msg(LOG_ERR, "--vm `%s`: %s", opt.vms[i], err);
            goto out_vms;
        }
    }
    if (mount_new(&fs, &args) < 0) {
        log_msg(LOG_ERR, "cannot mount %s (see the message above)",
                opt.mountpoint);
        goto out_vms;
    }
    /* Fork before any child of ours exists: the host agent must be our
     * child, not the exiting parent's. */
    if (fuse_daemonize(opt.foreground) != 0)
        goto out_session;
    if (!opt.foreground)
        log_detach();
    if ((rc = mount_start(&fs)) < 0) {
        log_msg(LOG_ERR, "session: %s", strerror(-rc));
        goto out_session;
    }
    if (!opt.no_host && vm_add_host(&fs, err) < 0) {
        log_msg(LOG_ERR, "%s", err);
        goto out_session;
    }
    log_msg(LOG_INFO, "mounted %s (pid %d, spool %s, agent %s)", opt.mountpoint,
            (int)getpid(), opt.spool_dir,
            opt.no_host ? "none" : opt.agent_path);
    if ((rc = reactor_run(fs.r)) < 0)
        log_msg(LOG_ERR, "event loop: %s", strerror(-rc));
    else
        status = 0;
    log_msg(LOG_INFO, "unmounting %s", opt.mountpoint);
out_session:
    mount_shutdown(&fs);
    mount_finish(&fs);
    file_free_all(&fs);
out_vms:
    /* A start that failed before the mount: the VMs it registered go,
     * and the loop turns that free them run. */
    vm_del_all(&fs);
    for (int i = 0; i < 8; i++)
        reactor_run_once(fs.r, 0);
    reactor_free(fs.r);
    mount_free(&fs);
    free(fs.buf);
    free(fs.slots);
    fuse_opt_free_args(&args);
    free(opt.mountpoint);
    free(opt.spool_dir);
    free(opt.agent_path);
    for (size_t i = 0; i < opt.nvms; i++)
        free(opt.vms[i]);
    free(opt.vms);
    log_close();
    return status;
}

/* ---- libfuse's options -------------------------------------------- */

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

static void
parse_fuse_options(struct fs_options *o, struct fuse_args *args)
{
    struct fuse_cmdline_opts copts;

    if (fuse_opt_parse(args, o, fuse_keys, fuse_key) < 0)
        die("bad mount options (see --help)");
    if (fuse_parse_cmdline(args, &copts) != 0)
        die("bad options (see --help)");
    o->foreground = copts.foreground;
    o->debug = copts.debug;
    o->mountpoint =
            copts.mountpoint ? copts.mountpoint : xstrdup(FS_DEFAULT_MOUNT);
    /* SPEC §8: on a shared mount the kernel checks modes, so each
     * stream's files are its owner's alone. */
    if (o->allow_other)
        add_arg(args, "-odefault_permissions");
    add_arg(args, "-ofsname=provium,subtype=provium");
}
