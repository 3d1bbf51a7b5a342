/*
 * clock.c - the time base of the whole tree: microseconds of
 * CLOCK_MONOTONIC in a uint64_t. Timers, deadlines and timeouts are
 * absolute values on this clock (STYLE: time never goes back and is never
 * the wall clock, which an administrator or NTP may step).
 */
#include <time.h>

#include "streams.h"

uint64_t
clock_now(void)
{
    struct timespec ts;

    /* Cannot fail: CLOCK_MONOTONIC always exists and ts is valid. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}
