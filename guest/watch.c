/*
 * watch.c - one inotify instance for the whole agent, shared by every
 * tail and file-handle stream.
 *
 * Why one: inotify instances are limited per user (fs.inotify.
 * max_user_instances, 128 by default), and an agent may follow many
 * files. The kernel gives one watch descriptor per inode per instance, so
 * subscribers sharing a descriptor share its watch: each is added with
 * IN_MASK_ADD (the watch's mask is the union of what its subscribers
 * want) and gets only the events of its own mask. A followed file's
 * directory is watched for name events only, so an append is one event
 * (the file's IN_MODIFY), not two.
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

/* Subscribers by watch descriptor: an event looks at its own descriptor's
 * subscribers only (issue 12: a walk of every subscriber of the agent per
 * event cost tens of µs with 1000 tails). Chained; grown while no event
 * is being dispatched (a callback may add a watch). */
#define BUCKETS_MIN 64

struct watch_sub {
    struct watch *w;
    int wd;
    bool dead;
    uint32_t mask; /* the events this subscriber wants */
    watch_fn *fn;
    void *arg;
    struct watch_sub *next; /* in its bucket */
};

struct watch {
    struct reactor *r;
    int fd;
    int depth;       /* > 0 while dispatching */
    size_t ndead;    /* subscribers marked dead, not swept yet */
    size_t nsubs;    /* in the table, dead ones included */
    size_t nbuckets; /* a power of two */
    struct watch_sub **buckets;
};

static struct watch_sub **
bucket(const struct watch *w, int wd)
{
    return &w->buckets[(size_t)(unsigned)wd & (w->nbuckets - 1)];
}

static bool
wd_in_use(const struct watch *w, int wd)
{
    for (const struct watch_sub *s = *bucket(w, wd); s; s = s->next)
        if (s->wd == wd && !s->dead)
            return true;
    return false;
}

/* Twice the buckets once there are more than two subscribers per bucket.
 * Out of memory: the chains grow longer, nothing else. */
static void
grow(struct watch *w)
{
    size_t n = w->nbuckets * 2;
    struct watch_sub **b;

    if (w->depth > 0 || w->nsubs <= 2 * w->nbuckets ||
        !(b = calloc(n, sizeof(*b))))
        return;
    for (size_t i = 0; i < w->nbuckets; i++) {
        while (w->buckets[i]) {
            struct watch_sub *s = w->buckets[i];
            w->buckets[i] = s->next;
            s->next = b[(size_t)(unsigned)s->wd & (n - 1)];
            b[(size_t)(unsigned)s->wd & (n - 1)] = s;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = n;
}

static void
sweep(struct watch *w)
{
    for (size_t i = 0; i < w->nbuckets && w->ndead > 0; i++) {
        struct watch_sub **pp = &w->buckets[i];
        while (*pp) {
            struct watch_sub *s = *pp;
            if (!s->dead) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            w->ndead--;
            w->nsubs--;
            if (!wd_in_use(w, s->wd))
                inotify_rm_watch(w->fd, s->wd);
            free(s);
        }
    }
    grow(w);
}

static void
deliver(struct watch *w, const struct inotify_event *ev)
{
    const char *name = ev->len ? ev->name : NULL;

    if (ev->mask & IN_Q_OVERFLOW) {
        for (size_t i = 0; i < w->nbuckets; i++)
            for (struct watch_sub *s = w->buckets[i]; s; s = s->next)
                if (!s->dead)
                    s->fn(s->arg, IN_Q_OVERFLOW, NULL);
        return;
    }
    for (struct watch_sub *s = *bucket(w, ev->wd); s; s = s->next)
        if (!s->dead && s->wd == ev->wd && (ev->mask & s->mask))
            s->fn(s->arg, ev->mask, name);
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
    w->nbuckets = BUCKETS_MIN;
    if (!(w->buckets = calloc(w->nbuckets, sizeof(*w->buckets)))) {
        free(w);
        return -ENOMEM;
    }
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
    free(w->buckets);
    free(w);
    return err;
}

void
watch_free(struct watch *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nbuckets; i++) {
        while (w->buckets[i]) {
            struct watch_sub *s = w->buckets[i];
            w->buckets[i] = s->next;
            free(s);
        }
    }
    free(w->buckets);
    reactor_unwatch(w->r, w->fd);
    close(w->fd);
    free(w);
}

int
watch_add(struct watch *w, const char *path, uint32_t mask, watch_fn *fn,
          void *arg, struct watch_sub **out)
{
    struct watch_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    /* IN_MASK_ADD: the inode's watch wants what any of its subscribers
     * wants (the kernel keeps one watch per inode per instance). */
    s->wd = inotify_add_watch(w->fd, path, mask | IN_MASK_ADD);
    if (s->wd < 0) {
        int err = -errno;
        free(s);
        return err;
    }
    s->w = w;
    s->mask = mask;
    s->fn = fn;
    s->arg = arg;
    /* At the head: a subscriber added by a callback does not see the
     * event being delivered (it came before the watch). */
    s->next = *bucket(w, s->wd);
    *bucket(w, s->wd) = s;
    w->nsubs++;
    grow(w);
    *out = s;
    return 0;
}

void
watch_remove(struct watch_sub *sub)
{
    if (!sub)
        return;
    if (sub->dead)
        return;
    sub->dead = true;
    sub->w->ndead++;
    if (sub->w->depth == 0)
        sweep(sub->w);
}
