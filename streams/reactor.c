/*
 * reactor.c - the event loop: fd watches, timers, deferred calls, calls
 * before polling, and signals over one epoll instance. The only file that
 * includes <sys/epoll.h>.
 *
 * One turn (reactor_run_once) is:
 *   1. the deferred calls queued before the turn began, in FIFO order;
 *      calls they queue wait for the next turn, so a call that keeps
 *      re-queueing itself cannot starve the fds;
 *   2. expired timers, earliest deadline first;
 *   3. the calls queued to run before polling (reactor_before_poll), in
 *      FIFO order: work that is cheaper done once per turn than once per
 *      event (the spools' write-behind), finished before the loop may
 *      block; calls they queue run before the next poll;
 *   4. one epoll_wait, and dispatch of its events. It blocks (until the
 *      earliest timer or max_deadline) only when steps 1 and 2 ran nothing
 *      and no deferred call is queued: a turn that did work returns
 *      promptly, so that a caller of reactor_run_once() sees its effects;
 *   5. the timers that expired during the wait.
 *
 * Callbacks may unwatch or close any fd and stop or free any timer,
 * including ones whose events sit later in the batch being dispatched.
 * Each epoll event carries the fd and the generation of its watch, and the
 * watch is looked up again before every dispatch (as Redis's ae.c re-reads
 * its fd table after each callback): an event for an fd unwatched
 * meanwhile, or unwatched and watched again under the same number, is
 * dropped.
 *
 * Timers live in a binary min-heap of pointers, 1-based so that
 * heap_index 0 means "not armed"; start and stop are O(log n). Timers with
 * equal deadlines fire in no particular order. Signals arrive through one
 * signalfd per signal, itself an ordinary watch.
 *
 * Nothing here is reentrant: don't run the reactor from inside one of its
 * callbacks.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "streams.h"

#define REACTOR_MAX_EVENTS 64
#define REACTOR_HEAP_INITIAL 64

struct fd_watch {
    reactor_fd_fn *fn; /* NULL: the fd is not watched */
    void *arg;
    unsigned events;
    uint32_t gen; /* bumped by every unwatch; tells stale events apart */
};

struct deferred {
    reactor_fn *fn;
    void *arg;
};

struct defer_queue {
    struct deferred *items;
    size_t len, cap;
};

/* One per signal; allocated separately so the watch's arg stays valid
 * while the list grows. Lives until reactor_free. */
struct sigwatch {
    struct sigwatch *next;
    int signo;
    int fd;
    bool was_blocked; /* restore the mask as we found it on free */
    reactor_fn *fn;
    void *arg;
};

struct reactor {
    int epfd;
    struct fd_watch *watches; /* indexed by fd */
    size_t nwatches;
    struct reactor_timer **heap; /* heap[1..heap_len]; heap[0] unused */
    size_t heap_len, heap_cap;
    struct defer_queue defer;   /* queued for the next turn */
    struct defer_queue running; /* being drained in this turn */
    struct defer_queue prepoll; /* queued for the next poll */
    struct defer_queue prepoll_running;
    struct sigwatch *signals;
    bool stopped;
};

int
reactor_new(struct reactor **out)
{
    struct reactor *r = calloc(1, sizeof(*r));
    int ret;

    if (!r)
        return -ENOMEM;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        ret = -errno;
        goto err;
    }
    /* Room for the usual number of timers up front, so that arming one
     * practically never allocates. */
    r->heap_cap = REACTOR_HEAP_INITIAL;
    r->heap = calloc(r->heap_cap, sizeof(*r->heap));
    if (!r->heap) {
        ret = -ENOMEM;
        goto err;
    }
    *out = r;
    return 0;
err:
    reactor_free(r);
    return ret;
}

/*
 * Free the reactor. Timers still armed are disarmed (their owners must
 * still be alive, as always when a timer is armed); queued deferred calls
 * are dropped, so run a turn first if they release something; signals
 * blocked by reactor_signal() are unblocked again, so one still pending is
 * delivered with its disposition at that point.
 */
void
reactor_free(struct reactor *r)
{
    if (!r)
        return;
    for (size_t i = 1; i <= r->heap_len; i++)
        r->heap[i]->heap_index = 0;
    while (r->signals) {
        struct sigwatch *sw = r->signals;
        sigset_t set;

        r->signals = sw->next;
        close(sw->fd);
        if (!sw->was_blocked) {
            sigemptyset(&set);
            sigaddset(&set, sw->signo);
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        }
        free(sw);
    }
    if (r->epfd >= 0)
        close(r->epfd);
    free(r->watches);
    free(r->heap);
    free(r->defer.items);
    free(r->running.items);
    free(r->prepoll.items);
    free(r->prepoll_running.items);
    free(r);
}

/* ---- fd watches ---- */

static uint32_t
epoll_events(unsigned events)
{
    return (events & REACTOR_IN ? EPOLLIN : 0) |
           (events & REACTOR_OUT ? EPOLLOUT : 0);
}

static uint64_t
watch_key(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

static int
watches_grow(struct reactor *r, int fd)
{
    size_t n = r->nwatches ? r->nwatches : 64;
    struct fd_watch *w;

    while (n <= (size_t)fd)
        n *= 2;
    w = realloc(r->watches, n * sizeof(*w));
    if (!w)
        return -ENOMEM;
    memset(w + r->nwatches, 0, (n - r->nwatches) * sizeof(*w));
    r->watches = w;
    r->nwatches = n;
    return 0;
}

int
reactor_watch(struct reactor *r, int fd, unsigned events, reactor_fd_fn *fn,
              void *arg)
{
    struct epoll_event ev = {.events = epoll_events(events)};
    struct fd_watch *w;
    int ret;

    if (fd < 0 || !fn || (events & ~(REACTOR_IN | REACTOR_OUT)))
        return -EINVAL;
    if ((size_t)fd >= r->nwatches && (ret = watches_grow(r, fd)) < 0)
        return ret;
    w = &r->watches[fd];
    ev.data.u64 = watch_key(fd, w->gen);
    if (!w->fn) {
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            return -errno; /* EPERM: fd can't be polled (regular file) */
    } else if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
        if (errno != ENOENT)
            return -errno;
        /* The watched fd was closed without reactor_unwatch() and its
         * number reused: closing removed it from the epoll set. Treat it
         * as a new watch, so events of the old file are dropped. */
        ev.data.u64 = watch_key(fd, ++w->gen);
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            ret = -errno;
            *w = (struct fd_watch){.gen = w->gen};
            return ret;
        }
    }
    w->fn = fn;
    w->arg = arg;
    w->events = events;
    return 0;
}

void
reactor_unwatch(struct reactor *r, int fd)
{
    struct fd_watch *w;

    if (fd < 0 || (size_t)fd >= r->nwatches || !r->watches[fd].fn)
        return;
    w = &r->watches[fd];
    /* Fails only when fd was already closed, which took it out of the
     * set anyway. The event pointer is ignored for EPOLL_CTL_DEL. */
    (void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
    *w = (struct fd_watch){.gen = w->gen + 1};
}

/*
 * Dispatch one event, if its watch is still the one it was reported for.
 * Hang-up and error are reported as REACTOR_ERR plus whatever of IN/OUT
 * the watch asked for, so that the handler's read or write finds out
 * what happened (EOF, EPIPE, ...).
 */
static void
dispatch(struct reactor *r, const struct epoll_event *ev)
{
    int fd = (int)(uint32_t)ev->data.u64;
    uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
    struct fd_watch *w = &r->watches[fd];
    unsigned events = 0;

    /* Unwatched earlier in this batch, or unwatched and watched again:
     * the event belongs to a watch that is gone. */
    if (!w->fn || w->gen != gen)
        return;
    if (ev->events & EPOLLIN)
        events |= REACTOR_IN;
    if (ev->events & EPOLLOUT)
        events |= REACTOR_OUT;
    if (ev->events & (EPOLLERR | EPOLLHUP))
        events |= REACTOR_ERR | w->events;
    /* An earlier callback of the batch may have narrowed the watch. */
    events &= w->events | REACTOR_ERR;
    if (events)
        w->fn(r, fd, events, w->arg);
}

/* ---- timers ---- */

static void
heap_set(struct reactor *r, size_t i, struct reactor_timer *t)
{
    r->heap[i] = t;
    t->heap_index = i;
}

static void
heap_up(struct reactor *r, size_t i)
{
    struct reactor_timer *t = r->heap[i];

    while (i > 1 && t->deadline < r->heap[i / 2]->deadline) {
        heap_set(r, i, r->heap[i / 2]);
        i /= 2;
    }
    heap_set(r, i, t);
}

static void
heap_down(struct reactor *r, size_t i)
{
    struct reactor_timer *t = r->heap[i];

    for (;;) {
        size_t c = 2 * i;

        if (c > r->heap_len)
            break;
        if (c < r->heap_len && r->heap[c + 1]->deadline < r->heap[c]->deadline)
            c++;
        if (r->heap[c]->deadline >= t->deadline)
            break;
        heap_set(r, i, r->heap[c]);
        i = c;
    }
    heap_set(r, i, t);
}

static void
heap_remove(struct reactor *r, struct reactor_timer *t)
{
    size_t i = t->heap_index;
    struct reactor_timer *last = r->heap[r->heap_len--];

    t->heap_index = 0;
    if (last == t)
        return;
    heap_set(r, i, last);
    heap_up(r, i);
    heap_down(r, last->heap_index);
}

/*
 * Arm t, or move its deadline if armed. The heap never shrinks, so this
 * can fail (-ENOMEM) only when more timers are armed at once than ever
 * before; re-arming an armed timer, or a timer from its own callback,
 * never fails.
 */
int
reactor_timer_start(struct reactor *r, struct reactor_timer *t,
                    uint64_t deadline, reactor_fn *fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    if (t->heap_index) {
        uint64_t old = t->deadline;

        t->deadline = deadline;
        if (deadline < old)
            heap_up(r, t->heap_index);
        else
            heap_down(r, t->heap_index);
        return 0;
    }
    if (r->heap_len + 1 >= r->heap_cap) {
        size_t cap = r->heap_cap * 2;
        struct reactor_timer **heap = realloc(r->heap, cap * sizeof(*heap));

        if (!heap)
            return -ENOMEM;
        r->heap = heap;
        r->heap_cap = cap;
    }
    t->deadline = deadline;
    heap_set(r, ++r->heap_len, t);
    heap_up(r, r->heap_len);
    return 0;
}

void
reactor_timer_stop(struct reactor *r, struct reactor_timer *t)
{
    if (t->heap_index)
        heap_remove(r, t);
}

/*
 * Run the timers whose deadline has passed. At most as many callbacks as
 * timers were armed when this began: a callback that keeps re-arming its
 * timer in the past must not hold the loop here.
 */
static size_t
run_timers(struct reactor *r)
{
    uint64_t now = clock_now();
    size_t budget = r->heap_len, ran = 0;

    while (ran < budget && r->heap_len > 0 && r->heap[1]->deadline <= now) {
        struct reactor_timer *t = r->heap[1];

        heap_remove(r, t);
        t->fn(r, t->arg);
        ran++;
    }
    return ran;
}

/* ---- deferred calls ---- */

static int
queue_call(struct defer_queue *q, reactor_fn *fn, void *arg)
{
    if (!fn)
        return -EINVAL;
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct deferred *items = realloc(q->items, cap * sizeof(*items));

        if (!items)
            return -ENOMEM;
        q->items = items;
        q->cap = cap;
    }
    q->items[q->len++] = (struct deferred){fn, arg};
    return 0;
}

int
reactor_defer(struct reactor *r, reactor_fn *fn, void *arg)
{
    return queue_call(&r->defer, fn, arg);
}

int
reactor_before_poll(struct reactor *r, reactor_fn *fn, void *arg)
{
    return queue_call(&r->prepoll, fn, arg);
}

/* Run what was queued in *queued before now; what these calls queue lands
 * in the other (swapped-in, empty) queue and waits for the next time. */
static size_t
run_queued(struct reactor *r, struct defer_queue *queued,
           struct defer_queue *running)
{
    struct defer_queue q = *running;
    size_t ran;

    *running = *queued;
    *queued = q;
    for (ran = 0; ran < running->len; ran++)
        running->items[ran].fn(r, running->items[ran].arg);
    running->len = 0;
    return ran;
}

/* ---- signals ---- */

static void
signal_ready(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct sigwatch *sw = arg;
    struct signalfd_siginfo si;

    /* One signal per call; level-triggered epoll brings us back for the
     * next. A short read means another reader of the same signal got it
     * first (EAGAIN): nothing to do. */
    if (read(fd, &si, sizeof(si)) != sizeof(si))
        return;
    sw->fn(r, sw->arg);
}

int
reactor_signal(struct reactor *r, int signo, reactor_fn *fn, void *arg)
{
    struct sigwatch *sw;
    sigset_t set, old;
    int ret;

    sigemptyset(&set);
    /* SIGKILL and SIGSTOP can be neither blocked nor read. */
    if (!fn || signo == SIGKILL || signo == SIGSTOP ||
        sigaddset(&set, signo) < 0)
        return -EINVAL;
    for (sw = r->signals; sw; sw = sw->next) {
        if (sw->signo == signo) {
            sw->fn = fn;
            sw->arg = arg;
            return 0;
        }
    }
    sw = calloc(1, sizeof(*sw));
    if (!sw)
        return -ENOMEM;
    sw->signo = signo;
    sw->fn = fn;
    sw->arg = arg;
    /* Blocked, the signal stays pending until the signalfd reads it. */
    ret = pthread_sigmask(SIG_BLOCK, &set, &old);
    if (ret) {
        ret = -ret;
        goto err_free;
    }
    sw->was_blocked = sigismember(&old, signo) == 1;
    sw->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sw->fd < 0) {
        ret = -errno;
        goto err_unblock;
    }
    ret = reactor_watch(r, sw->fd, REACTOR_IN, signal_ready, sw);
    if (ret < 0)
        goto err_close;
    sw->next = r->signals;
    r->signals = sw;
    return 0;
err_close:
    close(sw->fd);
err_unblock:
    if (!sw->was_blocked)
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
err_free:
    free(sw);
    return ret;
}

/* ---- the loop ---- */

/* epoll_wait timeout in ms: rounded up, so that a timer is never found
 * not yet due when the wait ends. */
static int
wait_timeout(struct reactor *r, uint64_t max_deadline)
{
    uint64_t deadline = max_deadline, now, ms;

    if (r->defer.len > 0)
        return 0;
    if (r->heap_len > 0 && r->heap[1]->deadline < deadline)
        deadline = r->heap[1]->deadline;
    if (deadline == UINT64_MAX)
        return -1;
    now = clock_now();
    if (deadline <= now)
        return 0;
    ms = (deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int
reactor_run_once(struct reactor *r, uint64_t max_deadline)
{
    struct epoll_event evs[REACTOR_MAX_EVENTS];
    size_t ran;
    int n;

    ran = run_queued(r, &r->defer, &r->running);
    ran += run_timers(r);
    /* Not counted in ran: work before a poll is no reason not to block
     * (a call that queues a deferred call makes wait_timeout 0). */
    run_queued(r, &r->prepoll, &r->prepoll_running);
    n = epoll_wait(r->epfd, evs, REACTOR_MAX_EVENTS,
                   ran > 0 ? 0 : wait_timeout(r, max_deadline));
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++)
        dispatch(r, &evs[i]);
    run_timers(r);
    return 0;
}

/* Clears an earlier stop, then runs turns until reactor_stop(). */
int
reactor_run(struct reactor *r)
{
    r->stopped = false;
    while (!r->stopped) {
        int ret = reactor_run_once(r, UINT64_MAX);

        if (ret < 0)
            return ret;
    }
    return 0;
}

/* reactor_run() returns after the current turn, which doesn't block: the
 * stop came from a callback, so the turn did run something. */
void
reactor_stop(struct reactor *r)
{
    r->stopped = true;
}

bool
reactor_stopped(const struct reactor *r)
{
    return r->stopped;
}
