/*
 * watch.c - one inotify instance for the whole agent, shared by every
 * tail and file-handle stream.
 *
 * Why one: inotify instances are limited per user (fs.inotify.
 * max_user_instances, 128 by default), and an agent may follow many
 * files. The kernel gives one watch descriptor per inode per instance and
 * a second inotify_add_watch() on the same inode replaces its mask, so
 * every watch uses the same mask (the union of what files and directories
 * need) and subscribers sharing a descriptor are kept in one list.
 *
 * Subscribers may be removed from inside any callback: removal marks the
 * subscriber dead and the list is swept once the event batch is done.
 */
#include "guest.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MASK                                                             \
    (IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_CREATE |       \
     IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)

struct watch_sub {
    struct watch *w;
    int wd;
    bool dead;
    watch_fn *fn;
    void *arg;
    struct watch_sub *next;
};

struct watch {
    struct reactor *r;
    int fd;
    int depth; /* > 0 while dispatching */
    bool swept;
    struct watch_sub *subs;
};

static bool
wd_in_use(const struct watch *w, int wd)
{
    for (const struct watch_sub *s = w->subs; s; s = s->next)
        if (s->wd == wd && !s->dead)
            return true;
    return false;
}

static void
sweep(struct watch *w)
{
    struct watch_sub **pp = &w->subs;
    while (*pp) {
        struct watch_sub *s = *pp;
        if (!s->dead) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (s->wd >= 0 && !wd_in_use(w, s->wd))
            inotify_rm_watch(w->fd, s->wd);
        free(s);
    }
}

static void
deliver(struct watch *w, const struct inotify_event *ev)
{
    const char *name = ev->len ? ev->name : NULL;
    for (struct watch_sub *s = w->subs; s; s = s->next) {
        if (s->dead)
            continue;
        if (ev->mask & IN_Q_OVERFLOW)
            s->fn(s->arg, IN_Q_OVERFLOW, NULL);
        else if (s->wd == ev->wd)
            s->fn(s->arg, ev->mask, name);
    }
}

static void
watch_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct watch *w = arg;
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
            __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n <= 0)
        return;
    w->depth++;
    for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
        const struct inotify_event *ev = (const void *)(buf + off);
        /* IN_IGNORED: the kernel dropped the watch (file gone); its
         * subscribers have seen IN_DELETE_SELF or will be removed. */
        if (!(ev->mask & IN_IGNORED))
            deliver(w, ev);
        off += (ssize_t)(sizeof(*ev) + ev->len);
    }
    w->depth--;
    sweep(w);
}

int
watch_new(struct reactor *r, struct watch **out)
{
    struct watch *w = calloc(1, sizeof(*w));
    int err;

    if (!w)
        return -ENOMEM;
    w->r = r;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        err = -errno;
        goto err_free;
    }
    if ((err = reactor_watch(r, w->fd, REACTOR_IN, watch_ready, w)) < 0)
        goto err_close;
    *out = w;
    return 0;
err_close:
    close(w->fd);
err_free:
    free(w);
    return err;
}

void
watch_free(struct watch *w)
{
    if (!w)
        return;
    while (w->subs) {
        struct watch_sub *s = w->subs;
        w->subs = s->next;
        free(s);
    }
    reactor_unwatch(w->r, w->fd);
    close(w->fd);
    free(w);
}

int
watch_add(struct watch *w, const char *path, watch_fn *fn, void *arg,
          struct watch_sub **out)
{
    struct watch_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->wd = inotify_add_watch(w->fd, path, WATCH_MASK);
    if (s->wd < 0) {
        int err = -errno;
        free(s);
        return err;
    }
    s->w = w;
    s->fn = fn;
    s->arg = arg;
    s->next = w->subs;
    w->subs = s;
    *out = s;
    return 0;
}

void
watch_remove(struct watch_sub *sub)
{
    if (!sub)
        return;
    sub->dead = true;
    if (sub->w->depth == 0)
        sweep(sub->w);
}
