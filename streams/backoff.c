/*
 * backoff.c - retrying with exponential backoff: a timer whose delay
 * doubles after each attempt, up to a cap, and drops back to the minimum
 * once what is retried works. The agent client reconnects to an agent
 * (and respawns the host VM's) this way, the console reconnects to a
 * VM's chardev socket.
 *
 * Why doubling: a peer that is not there yet (a VM still booting, QEMU
 * not started) is tried quickly at first, then ever more rarely, so that
 * a VM that is gone for good costs a connect attempt every few seconds,
 * not a busy loop; after a success the next loss is retried at once.
 */
#include "streams.h"

void
backoff_init(struct backoff *b, uint64_t min, uint64_t max)
{
    *b = (struct backoff){.min = min, .max = max, .delay = min};
}

int
backoff_schedule(struct reactor *r, struct backoff *b, reactor_fn *fn,
                 void *arg)
{
    int rc = reactor_timer_start(r, &b->timer, clock_now() + b->delay, fn, arg);

    b->delay = b->delay * 2 > b->max ? b->max : b->delay * 2;
    return rc;
}

void
backoff_reset(struct backoff *b)
{
    b->delay = b->min;
}

void
backoff_stop(struct reactor *r, struct backoff *b)
{
    reactor_timer_stop(r, &b->timer);
}
