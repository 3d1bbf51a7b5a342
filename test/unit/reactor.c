/*
 * Unit tests for streams/reactor.c: timers, deferred calls, fd watches and
 * signals, including callbacks that change the reactor under its feet.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "streams.h"

static struct reactor *r;

static void
setup(void)
{
    cr_assert_eq(reactor_new(&r), 0);
}

static void
teardown(void)
{
    reactor_free(r);
    r = NULL;
}

TestSuite(reactor, .init = setup, .fini = teardown, .timeout = 10);

/* Run turns until *done or the deadline, failing on the latter. */
static void
run_until(const bool *done, uint64_t timeout)
{
    uint64_t deadline = clock_now() + timeout;

    while (!*done) {
        cr_assert_lt(clock_now(), deadline, "timed out");
        cr_assert_eq(reactor_run_once(r, deadline), 0);
    }
}

/* ---- clock ---- */

Test(reactor, clock_is_monotonic_usec)
{
    struct timespec ts;
    uint64_t a = clock_now(), b, mono;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    mono = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    b = clock_now();
    cr_expect_leq(a, mono);
    cr_expect_leq(mono, b);
}

/* ---- timers ---- */

struct log {
    int order[64];
    int n;
};

static struct log tlog;

struct tagged_timer {
    struct reactor_timer t;
    int tag;
    int rearm; /* times left to re-arm itself */
    struct reactor_timer *victim;
};

static void
log_fire(struct reactor *rr, void *arg)
{
    struct tagged_timer *tt = arg;

    cr_assert(!reactor_timer_armed(&tt->t), "armed in its own callback");
    tlog.order[tlog.n++] = tt->tag;
}

Test(reactor, timers_fire_in_deadline_order)
{
    static const int delays_ms[] = {30, 10, 50, 20, 40};
    struct tagged_timer tt[5] = {0};
    uint64_t now = clock_now();
    bool done = false;

    tlog.n = 0;
    for (int i = 0; i < 5; i++) {
        tt[i].tag = delays_ms[i];
        cr_assert_eq(reactor_timer_start(r, &tt[i].t,
                                         now + delays_ms[i] * USEC_PER_MSEC,
                                         log_fire, &tt[i]),
                     0);
        cr_assert(reactor_timer_armed(&tt[i].t));
    }
    while (!done) {
        cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
        done = tlog.n == 5;
    }
    cr_expect_geq(clock_now(), now + 50 * USEC_PER_MSEC, "fired early");
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tlog.order[i], 10 * (i + 1), "position %d: %d", i,
                     tlog.order[i]);
}

static uint64_t last_deadline;
static int fired;

static void
check_order(struct reactor *rr, void *arg)
{
    struct reactor_timer *t = arg;

    cr_assert_geq(t->deadline, last_deadline);
    last_deadline = t->deadline;
    fired++;
}

/* Many timers, half of them stopped or moved: the heap stays a heap. */
Test(reactor, heap_under_churn)
{
    enum { N = 2000 };
    static struct reactor_timer t[N];
    int armed = 0;

    srand(42);
    for (int i = 0; i < N; i++)
        cr_assert_eq(reactor_timer_start(r, &t[i], 1 + rand() % 5000,
                                         check_order, &t[i]),
                     0);
    for (int i = 0; i < N; i++) {
        switch (rand() % 3) {
        case 0:
            reactor_timer_stop(r, &t[i]);
            reactor_timer_stop(r, &t[i]); /* harmless twice */
            cr_assert(!reactor_timer_armed(&t[i]));
            break;
        case 1: /* re-arm while armed: moves it */
            reactor_timer_start(r, &t[i], 1 + rand() % 5000, check_order,
                                &t[i]);
            break;
        }
    }
    for (int i = 0; i < N; i++)
        armed += reactor_timer_armed(&t[i]);
    last_deadline = 0;
    fired = 0;
    /* All deadlines are long past: one turn runs them all, in order. */
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_eq(fired, armed);
    for (int i = 0; i < N; i++)
        cr_expect(!reactor_timer_armed(&t[i]));
}

static void
stop_victim(struct reactor *rr, void *arg)
{
    struct tagged_timer *tt = arg;

    tlog.order[tlog.n++] = tt->tag;
    reactor_timer_stop(rr, tt->victim);
}

Test(reactor, timer_stopped_by_another_callback)
{
    struct tagged_timer a = {.tag = 1}, b = {.tag = 2}, c = {.tag = 3};

    tlog.n = 0;
    a.victim = &b.t;
    /* Both expired in the same turn; a runs first and stops b. */
    reactor_timer_start(r, &a.t, 1, stop_victim, &a);
    reactor_timer_start(r, &b.t, 2, log_fire, &b);
    reactor_timer_start(r, &c.t, 3, log_fire, &c);
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_eq(tlog.n, 2);
    cr_expect_eq(tlog.order[0], 1);
    cr_expect_eq(tlog.order[1], 3);
    cr_expect(!reactor_timer_armed(&b.t));
}

static void
rearm_self(struct reactor *rr, void *arg)
{
    struct tagged_timer *tt = arg;

    tlog.order[tlog.n++] = tt->tag;
    if (tt->rearm-- > 0)
        cr_assert_eq(reactor_timer_start(rr, &tt->t,
                                         clock_now() + USEC_PER_MSEC,
                                         rearm_self, tt),
                     0);
}

Test(reactor, timer_rearms_in_its_callback)
{
    struct tagged_timer a = {.tag = 7, .rearm = 3};
    uint64_t start = clock_now();

    tlog.n = 0;
    reactor_timer_start(r, &a.t, start + USEC_PER_MSEC, rearm_self, &a);
    while (reactor_timer_armed(&a.t))
        cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_expect_eq(tlog.n, 4);
    cr_expect_geq(clock_now(), start + 4 * USEC_PER_MSEC);
}

static void
rearm_in_past(struct reactor *rr, void *arg)
{
    struct tagged_timer *tt = arg;

    tt->rearm++;
    reactor_timer_start(rr, &tt->t, 0, rearm_in_past, tt);
}

/* A timer that keeps re-arming itself in the past doesn't hang a turn. */
Test(reactor, timer_rearmed_in_past_does_not_spin)
{
    struct tagged_timer a = {0};

    reactor_timer_start(r, &a.t, 0, rearm_in_past, &a);
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_leq(a.rearm, 2);
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_leq(a.rearm, 4);
    cr_expect_geq(a.rearm, 2);
    reactor_timer_stop(r, &a.t);
}

struct owner {
    struct reactor_timer t;
    int *freed;
};

static void
free_owner(struct reactor *rr, void *arg)
{
    struct owner *o = arg;

    (*o->freed)++;
    free(o);
}

Test(reactor, timer_callback_frees_its_owner)
{
    int freed = 0;

    for (int i = 0; i < 10; i++) {
        struct owner *o = calloc(1, sizeof(*o));

        o->freed = &freed;
        reactor_timer_start(r, &o->t, (uint64_t)i, free_owner, o);
    }
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_eq(freed, 10);
}

Test(reactor, free_disarms_timers)
{
    struct reactor_timer t = {0};

    reactor_timer_start(r, &t, UINT64_MAX - 1, log_fire, NULL);
    reactor_free(r);
    r = NULL;
    cr_expect(!reactor_timer_armed(&t));
}

/* reactor_run_once waits no longer than max_deadline. */
Test(reactor, run_once_waits_until_max_deadline)
{
    uint64_t start = clock_now();

    cr_assert_eq(reactor_run_once(r, start + 20 * USEC_PER_MSEC), 0);
    cr_expect_geq(clock_now(), start + 20 * USEC_PER_MSEC);
    cr_expect_lt(clock_now(), start + 2 * USEC_PER_SEC);
    start = clock_now();
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_lt(clock_now(), start + USEC_PER_SEC);
}

/* ---- deferred calls ---- */

static void
log_tag(struct reactor *rr, void *arg)
{
    tlog.order[tlog.n++] = (int)(intptr_t)arg;
}

Test(reactor, defer_runs_in_fifo_order)
{
    tlog.n = 0;
    for (intptr_t i = 1; i <= 40; i++)
        cr_assert_eq(reactor_defer(r, log_tag, (void *)i), 0);
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_assert_eq(tlog.n, 40);
    for (int i = 0; i < 40; i++)
        cr_expect_eq(tlog.order[i], i + 1);
    cr_expect_eq(reactor_defer(r, NULL, NULL), -EINVAL);
}

/* A turn that ran a deferred call or a timer doesn't block in the poll,
 * so the caller sees the effect at once. */
Test(reactor, turn_with_work_does_not_block)
{
    struct tagged_timer a = {.tag = 1};
    uint64_t start = clock_now();

    tlog.n = 0;
    reactor_defer(r, log_tag, (void *)(intptr_t)5);
    cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_expect_eq(tlog.n, 1);
    reactor_timer_start(r, &a.t, start, log_fire, &a);
    cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_expect_eq(tlog.n, 2);
    cr_expect_lt(clock_now(), start + USEC_PER_SEC);
}

static int defer_runs, fd_runs;

static void
defer_again(struct reactor *rr, void *arg)
{
    defer_runs++;
    cr_assert_eq(reactor_defer(rr, defer_again, arg), 0);
}

static void
count_fd(struct reactor *rr, int fd, unsigned events, void *arg)
{
    char c;

    fd_runs++;
    cr_assert_eq(read(fd, &c, 1), 1);
}

/* A call that re-queues itself runs once per turn; fds still get polled,
 * and the turn doesn't block while calls are queued. */
Test(reactor, defer_does_not_starve_fds)
{
    int p[2];
    uint64_t start = clock_now();

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    cr_assert_eq(write(p[1], "abc", 3), 3);
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_IN, count_fd, NULL), 0);
    defer_runs = fd_runs = 0;
    reactor_defer(r, defer_again, NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_expect_eq(defer_runs, 5);
    cr_expect_eq(fd_runs, 3);
    cr_expect_lt(clock_now(), start + USEC_PER_SEC);
    reactor_unwatch(r, p[0]);
    close(p[0]);
    close(p[1]);
}

/* ---- calls before polling ---- */

static void
defer_tag(struct reactor *rr, void *arg)
{
    log_tag(rr, arg);
    reactor_defer(rr, log_tag, (void *)(intptr_t)((intptr_t)arg + 100));
}

static void
prepoll_again(struct reactor *rr, void *arg)
{
    log_tag(rr, arg);
    cr_assert_eq(reactor_before_poll(rr, log_tag, (void *)(intptr_t)9), 0);
}

static void
log_fd(struct reactor *rr, int fd, unsigned events, void *arg)
{
    char c;

    log_tag(rr, arg);
    cr_assert_eq(read(fd, &c, 1), 1);
}

/* Calls before polling run after the turn's deferred calls and timers and
 * before the fds it polls, in FIFO order, once; one queued from such a
 * call runs before the next poll (the write-behind of a spool is flushed
 * after the readers woken this turn took their bytes, before the loop
 * may block). */
Test(reactor, before_poll_runs_after_work_before_fds)
{
    struct tagged_timer a = {.tag = 2};
    int p[2];

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    cr_assert_eq(write(p[1], "a", 1), 1);
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_IN, log_fd, (void *)7), 0);
    tlog.n = 0;
    cr_assert_eq(reactor_before_poll(r, log_tag, (void *)(intptr_t)3), 0);
    cr_assert_eq(reactor_before_poll(r, prepoll_again, (void *)(intptr_t)4), 0);
    cr_assert_eq(reactor_defer(r, log_tag, (void *)(intptr_t)1), 0);
    reactor_timer_start(r, &a.t, clock_now(), log_fire, &a);
    cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_assert_eq(tlog.n, 5);
    cr_expect_eq(tlog.order[0], 1);
    cr_expect_eq(tlog.order[1], 2);
    cr_expect_eq(tlog.order[2], 3);
    cr_expect_eq(tlog.order[3], 4);
    cr_expect_eq(tlog.order[4], 7);
    cr_assert_eq(write(p[1], "b", 1), 1);
    cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_assert_eq(tlog.n, 7,
                 "the call queued by one before the poll ran "
                 "before the next poll, once");
    cr_expect_eq(tlog.order[5], 9);
    cr_expect_eq(tlog.order[6], 7);
    cr_expect_eq(reactor_before_poll(r, NULL, NULL), -EINVAL);
    reactor_unwatch(r, p[0]);
    close(p[0]);
    close(p[1]);
}

/* A call before polling is no work that keeps the poll from blocking
 * (a spool flush must not make the loop spin), unless it queues a
 * deferred call, which then runs at once. */
Test(reactor, before_poll_blocks_unless_it_defers)
{
    uint64_t start = clock_now();

    tlog.n = 0;
    cr_assert_eq(reactor_before_poll(r, log_tag, (void *)(intptr_t)1), 0);
    cr_assert_eq(reactor_run_once(r, start + 50 * USEC_PER_MSEC), 0);
    cr_expect_eq(tlog.n, 1);
    cr_expect_geq(clock_now(), start + 50 * USEC_PER_MSEC,
                  "the poll waited for its deadline");
    start = clock_now();
    cr_assert_eq(reactor_before_poll(r, defer_tag, (void *)(intptr_t)2), 0);
    cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_assert_eq(reactor_run_once(r, UINT64_MAX), 0);
    cr_assert_eq(tlog.n, 3);
    cr_expect_eq(tlog.order[2], 102);
    cr_expect_lt(clock_now(), start + USEC_PER_SEC);
}

/* ---- fd watches ---- */

static unsigned seen_events;
static int seen_fd;

static void
record_events(struct reactor *rr, int fd, unsigned events, void *arg)
{
    seen_fd = fd;
    seen_events = events;
    *(bool *)arg = true;
}

Test(reactor, watch_pipe)
{
    int p[2];
    bool done = false;
    char buf[8];

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_IN, record_events, &done), 0);
    /* Nothing to read: the turn times out. */
    cr_assert_eq(reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC), 0);
    cr_expect(!done);

    cr_assert_eq(write(p[1], "hello", 5), 5);
    run_until(&done, USEC_PER_SEC);
    cr_expect_eq(seen_fd, p[0]);
    cr_expect_eq(seen_events, REACTOR_IN);
    cr_assert_eq(read(p[0], buf, sizeof(buf)), 5);

    /* The write end: writable at once. */
    done = false;
    cr_assert_eq(reactor_watch(r, p[1], REACTOR_OUT, record_events, &done), 0);
    run_until(&done, USEC_PER_SEC);
    cr_expect_eq(seen_fd, p[1]);
    cr_expect_eq(seen_events, REACTOR_OUT);
    reactor_unwatch(r, p[1]);

    /* Writer gone: the reader hears IN (read gives EOF) plus ERR. */
    close(p[1]);
    done = false;
    run_until(&done, USEC_PER_SEC);
    cr_expect_eq(seen_fd, p[0]);
    cr_expect_eq(seen_events, REACTOR_IN | REACTOR_ERR);
    cr_expect_eq(read(p[0], buf, sizeof(buf)), 0);

    reactor_unwatch(r, p[0]);
    reactor_unwatch(r, p[0]); /* harmless twice */
    close(p[0]);
}

static void
fail_fd(struct reactor *rr, int fd, unsigned events, void *arg)
{
    cr_assert_fail("replaced or unwatched callback ran for fd %d", fd);
}

Test(reactor, watch_replaces_and_validates)
{
    int p[2];
    bool done = false;

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_IN, fail_fd, NULL), 0);
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_IN, record_events, &done), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    run_until(&done, USEC_PER_SEC);

    /* Narrowed to OUT on a read end: never ready, so no callback. */
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_OUT, fail_fd, NULL), 0);
    cr_assert_eq(reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC), 0);

    cr_expect_eq(reactor_watch(r, -1, REACTOR_IN, fail_fd, NULL), -EINVAL);
    cr_expect_eq(reactor_watch(r, p[0], REACTOR_IN, NULL, NULL), -EINVAL);
    cr_expect_eq(reactor_watch(r, p[0], 0x80, fail_fd, NULL), -EINVAL);
    cr_expect_eq(reactor_watch(r, 1000, REACTOR_IN, fail_fd, NULL), -EBADF);
    reactor_unwatch(r, p[0]);
    close(p[0]);
    close(p[1]);
}

Test(reactor, watch_regular_file_fails)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

    cr_assert_geq(fd, 0);
    cr_expect_eq(reactor_watch(r, fd, REACTOR_IN, fail_fd, NULL), -EPERM);
    close(fd);
}

/* Two readable pipes reported in one batch; whichever callback runs first
 * unwatches and closes the other pipe, then reuses its fd number for a
 * fresh, empty pipe watched by another callback. Neither the old callback
 * nor the new one may see the stale event. */
static int pipes[2][2];
static int batch_runs;

static void
close_other(struct reactor *rr, int fd, unsigned events, void *arg)
{
    int me = (int)(intptr_t)arg, other = 1 - me, old = pipes[other][0];

    batch_runs++;
    reactor_unwatch(rr, fd);
    reactor_unwatch(rr, old);
    close(pipes[other][0]);
    close(pipes[other][1]);
    cr_assert_eq(pipe2(pipes[other], O_CLOEXEC | O_NONBLOCK), 0);
    /* pipe2 takes the lowest free numbers: the ones just closed. */
    cr_assert_eq(pipes[other][0], old);
    cr_assert_eq(reactor_watch(rr, old, REACTOR_IN, fail_fd, NULL), 0);
}

Test(reactor, unwatch_in_same_batch)
{
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pipe2(pipes[i], O_CLOEXEC | O_NONBLOCK), 0);
        cr_assert_eq(write(pipes[i][1], "x", 1), 1);
        cr_assert_eq(reactor_watch(r, pipes[i][0], REACTOR_IN, close_other,
                                   (void *)(intptr_t)i),
                     0);
    }
    batch_runs = 0;
    /* Both pipes are ready before the turn: one epoll batch has both. */
    cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_eq(batch_runs, 1);
    cr_assert_eq(reactor_run_once(r, clock_now() + 10 * USEC_PER_MSEC), 0);
    cr_expect_eq(batch_runs, 1);
    for (int i = 0; i < 2; i++) {
        reactor_unwatch(r, pipes[i][0]);
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
}

static void
unwatch_self(struct reactor *rr, int fd, unsigned events, void *arg)
{
    (*(int *)arg)++;
    reactor_unwatch(rr, fd);
}

Test(reactor, unwatch_self)
{
    int p[2], runs = 0;

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    cr_assert_eq(reactor_watch(r, p[0], REACTOR_IN, unwatch_self, &runs), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(reactor_run_once(r, 0), 0);
    cr_expect_eq(runs, 1);
    close(p[0]);
    close(p[1]);
}

/* A watch on a high fd number grows the table. */
Test(reactor, watch_high_fd)
{
    int p[2], hi;
    bool done = false;

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    hi = fcntl(p[0], F_DUPFD_CLOEXEC, 700);
    cr_assert_geq(hi, 700);
    cr_assert_eq(reactor_watch(r, hi, REACTOR_IN, record_events, &done), 0);
    cr_assert_eq(write(p[1], "x", 1), 1);
    run_until(&done, USEC_PER_SEC);
    cr_expect_eq(seen_fd, hi);
    reactor_unwatch(r, hi);
    close(hi);
    close(p[0]);
    close(p[1]);
}

/* ---- signals ---- */

static int signals_seen;

static void
count_signal(struct reactor *rr, void *arg)
{
    signals_seen++;
    *(bool *)arg = true;
}

Test(reactor, signal_through_signalfd)
{
    bool done = false;
    sigset_t mask;

    signals_seen = 0;
    cr_assert_eq(reactor_signal(r, SIGUSR1, count_signal, &done), 0);
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    cr_expect(sigismember(&mask, SIGUSR1));
    raise(SIGUSR1);
    run_until(&done, USEC_PER_SEC);
    cr_expect_eq(signals_seen, 1);

    /* Registering again replaces the callback, without a second fd. */
    done = false;
    cr_assert_eq(reactor_signal(r, SIGUSR1, count_signal, &done), 0);
    raise(SIGUSR1);
    run_until(&done, USEC_PER_SEC);
    cr_expect_eq(signals_seen, 2);

    cr_expect_eq(reactor_signal(r, SIGKILL, count_signal, NULL), -EINVAL);
    cr_expect_eq(reactor_signal(r, 0, count_signal, NULL), -EINVAL);
    cr_expect_eq(reactor_signal(r, 1000, count_signal, NULL), -EINVAL);

    /* Freeing the reactor unblocks what it blocked. */
    reactor_free(r);
    r = NULL;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    cr_expect(!sigismember(&mask, SIGUSR1));
}

/* ---- run / stop ---- */

static void
stop_it(struct reactor *rr, void *arg)
{
    reactor_stop(rr);
}

Test(reactor, stop_from_timer)
{
    struct reactor_timer t = {0};

    reactor_timer_start(r, &t, clock_now() + 5 * USEC_PER_MSEC, stop_it, NULL);
    cr_expect_not(reactor_stopped(r));
    cr_assert_eq(reactor_run(r), 0);
    cr_expect(reactor_stopped(r));
}

/* Stopped from a deferred call with nothing else to wake the loop:
 * reactor_run must not block forever in epoll_wait. */
Test(reactor, stop_from_defer)
{
    reactor_defer(r, stop_it, NULL);
    cr_assert_eq(reactor_run(r), 0);
    cr_expect(reactor_stopped(r));
    /* Run again: the old stop is forgotten. */
    reactor_defer(r, stop_it, NULL);
    cr_assert_eq(reactor_run(r), 0);
}
