/*
 * transport.c - where provium-agent's host connection comes from.
 *
 *  unix:PATH    a listening Unix socket (tests, local agents)
 *  vsock:PORT   a listening AF_VSOCK socket (any CID)
 *  virtio:NAME  the virtio-serial port named NAME (QEMU virtserialport
 *               name=...), found under /sys/class/virtio-ports
 *  stdio        stdin/stdout (the daemon's built-in host VM)
 *
 * One host at a time: while a session runs, the listening socket is not
 * watched, so a second host waits in the backlog.
 *
 * virtio-serial has no accept: the port is always open, and the kernel
 * reports POLLHUP for as long as no host is connected to its chardev
 * (drivers/char/virtio_console.c), with no wake-up of its own when only
 * the host side connects that epoll could wait for without spinning on
 * the level-triggered hang-up. So while no host is connected the port is
 * re-checked on a timer (VIRTIO_RETRY); once one is, the session reads it
 * like a socket and read() returning 0 marks the host going away.
 */
#include "guest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define VIRTIO_RETRY (250 * USEC_PER_MSEC)

enum transport_kind { T_UNIX, T_VSOCK, T_VIRTIO, T_STDIO };

struct transport {
    struct reactor *r;
    enum transport_kind kind;
    int fd; /* listening socket or virtio port, -1 if none */
    char *name;
    bool stdio_used;
    struct reactor_timer timer;
    transport_conn_fn *fn;
    void *arg;
};

static void
on_accept(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct transport *t = arg;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (c < 0) {
        if (errno != EAGAIN && errno != EINTR)
            agent_log("accept: %s", strerror(errno));
        return;
    }
    reactor_unwatch(r, fd);
    t->fn(c, c, t->arg);
}

static int
listen_unix(struct transport *t, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0)
        return -errno;
    unlink(path); /* a socket left by an earlier agent */
    if (bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(t->fd, 4) < 0)
        return -errno;
    return 0;
}

static int
listen_vsock(struct transport *t, const char *port)
{
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY};
    char *end;
    unsigned long p = strtoul(port, &end, 10);

    if (!*port || *end || p > UINT32_MAX)
        return -EINVAL;
    sa.svm_port = (unsigned)p;
    t->fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0)
        return -errno;
    if (bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(t->fd, 4) < 0)
        return -errno;
    return 0;
}

/* /dev/vportNpM whose sysfs name is t->name, opened; -errno if none. */
static int
virtio_open(const struct transport *t)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    int fd = -ENOENT;

    if (!d)
        return -ENOENT;
    while ((e = readdir(d))) {
        char path[512], name[256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name",
                 e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        bool match = fgets(name, sizeof(name), f) &&
                     strcmp(strtok(name, "\n") ? name : "", t->name) == 0;
        fclose(f);
        if (!match)
            continue;
        snprintf(path, sizeof(path), "/dev/%s", e->d_name);
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            fd = -errno;
        break;
    }
    closedir(d);
    return fd;
}

static void
virtio_check(struct reactor *r, void *arg)
{
    struct transport *t = arg;
    struct pollfd p;

    if (t->fd < 0) {
        int fd = virtio_open(t);
        if (fd < 0) {
            reactor_timer_start(r, &t->timer, clock_now() + VIRTIO_RETRY,
                                virtio_check, t);
            return;
        }
        t->fd = fd;
    }
    p = (struct pollfd){.fd = t->fd, .events = POLLIN | POLLOUT};
    if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR))) {
        reactor_timer_start(r, &t->timer, clock_now() + VIRTIO_RETRY,
                            virtio_check, t);
        return;
    }
    int c = dup(t->fd);
    if (c < 0) {
        agent_log("dup: %s", strerror(errno));
        reactor_timer_start(r, &t->timer, clock_now() + VIRTIO_RETRY,
                            virtio_check, t);
        return;
    }
    t->fn(c, c, t->arg);
}

static void
stdio_start(struct reactor *r, void *arg)
{
    struct transport *t = arg;
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
    t->stdio_used = true;
    t->fn(0, 1, t->arg);
}

bool
transport_resume(struct transport *t)
{
    switch (t->kind) {
    case T_UNIX:
    case T_VSOCK:
        if (reactor_watch(t->r, t->fd, REACTOR_IN, on_accept, t) < 0)
            return false;
        return true;
    case T_VIRTIO:
        /* The session closed its dup: poll the port until a host is
         * connected again. */
        reactor_timer_start(t->r, &t->timer, clock_now() + VIRTIO_RETRY,
                            virtio_check, t);
        return true;
    case T_STDIO:
        return !t->stdio_used;
    }
    return false;
}

int
transport_new(struct reactor *r, const char *spec, transport_conn_fn *fn,
              void *arg, struct transport **out)
{
    struct transport *t = calloc(1, sizeof(*t));
    int err = 0;

    if (!t)
        return -ENOMEM;
    t->r = r;
    t->fd = -1;
    t->fn = fn;
    t->arg = arg;
    if (strncmp(spec, "unix:", 5) == 0) {
        t->kind = T_UNIX;
        err = listen_unix(t, spec + 5);
    } else if (strncmp(spec, "vsock:", 6) == 0) {
        t->kind = T_VSOCK;
        err = listen_vsock(t, spec + 6);
    } else if (strncmp(spec, "virtio:", 7) == 0) {
        t->kind = T_VIRTIO;
        if (!(t->name = strdup(spec + 7)))
            err = -ENOMEM;
    } else if (strcmp(spec, "stdio") == 0) {
        t->kind = T_STDIO;
    } else {
        err = -EINVAL;
    }
    if (err < 0)
        goto err;
    if (t->kind == T_STDIO)
        reactor_timer_start(r, &t->timer, 0, stdio_start, t);
    else if (t->kind == T_VIRTIO)
        reactor_timer_start(r, &t->timer, 0, virtio_check, t);
    else if (!transport_resume(t))
        err = -EIO;
    if (err < 0)
        goto err;
    *out = t;
    return 0;
err:
    transport_free(t);
    return err;
}

void
transport_free(struct transport *t)
{
    if (!t)
        return;
    reactor_timer_stop(t->r, &t->timer);
    if (t->fd >= 0) {
        reactor_unwatch(t->r, t->fd);
        close(t->fd);
    }
    free(t->name);
    free(t);
}
