/*
 * test/unit/backoff.c - reconnect backoff (streams/backoff.c): delays
 * double from the minimum to the cap, a success starts over, the timer
 * runs the callback and can be stopped.
 */
#include <criterion/criterion.h>

#include "streams.h"

static int fired;

static void
on_fire(struct reactor *r, void *arg)
{
    fired++;
}

/* The delay the armed timer was given, within the scheduling slack. */
static uint64_t
armed_delay(const struct backoff *b, uint64_t before)
{
    cr_assert(reactor_timer_armed(&b->timer));
    return b->timer.deadline - before;
}

Test(backoff, doubles_to_the_cap_and_resets, .timeout = 10)
{
    struct reactor *r;
    struct backoff b;
    static const uint64_t want[] = {100, 200, 400, 800, 1000, 1000};

    cr_assert_eq(reactor_new(&r), 0);
    backoff_init(&b, 100 * USEC_PER_MSEC, 1000 * USEC_PER_MSEC);
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        uint64_t now = clock_now();
        cr_assert_eq(backoff_schedule(r, &b, on_fire, NULL), 0);
        uint64_t d = armed_delay(&b, now);
        cr_assert(d >= want[i] * USEC_PER_MSEC &&
                          d < want[i] * USEC_PER_MSEC + 50 * USEC_PER_MSEC,
                  "attempt %zu: %llu us", i, (unsigned long long)d);
    }
    backoff_reset(&b);
    uint64_t now = clock_now();
    cr_assert_eq(backoff_schedule(r, &b, on_fire, NULL), 0);
    cr_assert_lt(armed_delay(&b, now), 150 * USEC_PER_MSEC);
    backoff_stop(r, &b);
    cr_assert_not(reactor_timer_armed(&b.timer));
    backoff_stop(r, &b); /* harmless when not armed */
    reactor_free(r);
}

Test(backoff, the_timer_runs_the_callback, .timeout = 10)
{
    struct reactor *r;
    struct backoff b;

    cr_assert_eq(reactor_new(&r), 0);
    backoff_init(&b, 1 * USEC_PER_MSEC, 2 * USEC_PER_MSEC);
    fired = 0;
    cr_assert_eq(backoff_schedule(r, &b, on_fire, NULL), 0);
    uint64_t deadline = clock_now() + USEC_PER_SEC;
    while (!fired && clock_now() < deadline)
        cr_assert_eq(reactor_run_once(r, deadline), 0);
    cr_assert_eq(fired, 1);
    reactor_free(r);
}
