/*
 * printk.c - remove kernel log records from a byte stream, as it flows.
 *
 * A serial console interleaves the kernel's log with user output at any
 * byte: `log[    3.141592] random: crng init done\r\nin:` is a login
 * prompt cut by one record. With `skip=printk` (SPEC §9.1) the patterns
 * see `login:` instead. A record is, exactly:
 *
 *     '['  0-16 spaces  1-12 digits  '.'  1-9 digits  ']'
 *     then every byte up to and including the next '\n'
 *
 * wherever the '[' stands (start of line or not). The console's "\r\n"
 * needs no special case: the '\r' is one of the bytes before the '\n'.
 * The newline that ended the line before a record is not part of it, so
 * filtering never joins two real lines.
 *
 * The filter keeps no history. Until the ']' arrives, a candidate's bytes
 * are undecided: inside one input they simply stay part of the current run
 * of kept bytes; at the end of an input they are copied to a small hold
 * buffer (at most PRINTK_HOLD_MAX bytes, the longest possible candidate),
 * released as kept bytes if the next input shows they are not a record,
 * dropped if it shows they are. Kept bytes reach the caller as runs, each
 * a contiguous range of the raw input with the raw offset of its first
 * byte, so the caller can map offsets in the filtered bytes back to the
 * raw stream.
 */
#include <string.h>

#include "streams.h"

#define MAX_SPACES 16
#define MAX_SECS 12
#define MAX_FRAC 9

enum {
    PK_TEXT,   /* outside any record */
    PK_OPEN,   /* '[' and spaces */
    PK_SECS,   /* seconds digits */
    PK_FRAC,   /* '.' and fraction digits */
    PK_RECORD, /* a confirmed record: dropping up to the '\n' */
};

void
printk_init(struct printk *pk)
{
    memset(pk, 0, sizeof *pk);
    pk->state = PK_TEXT;
}

bool
printk_holding(const struct printk *pk)
{
    return pk->state == PK_OPEN || pk->state == PK_SECS || pk->state == PK_FRAC;
}

/* One byte of a candidate: the next state, PK_RECORD when c confirms the
 * record, PK_TEXT when c shows it is none (c itself is then not used). */
static int
candidate_step(struct printk *pk, unsigned char c)
{
    bool digit = c >= '0' && c <= '9';

    switch (pk->state) {
    case PK_OPEN:
        if (c == ' ')
            return ++pk->spaces <= MAX_SPACES ? PK_OPEN : PK_TEXT;
        if (digit) {
            pk->secs = 1;
            return PK_SECS;
        }
        return PK_TEXT;
    case PK_SECS:
        if (digit)
            return ++pk->secs <= MAX_SECS ? PK_SECS : PK_TEXT;
        return c == '.' ? PK_FRAC : PK_TEXT;
    case PK_FRAC:
        if (digit)
            return ++pk->frac <= MAX_FRAC ? PK_FRAC : PK_TEXT;
        return c == ']' && pk->frac > 0 ? PK_RECORD : PK_TEXT;
    default:
        return PK_TEXT;
    }
}

static int
emit_hold(struct printk *pk, printk_emit_fn *emit, void *arg)
{
    size_t n = pk->nhold;

    pk->nhold = 0;
    return n ? emit(arg, pk->hold, n, pk->hold_raw) : 0;
}

/*
 * Invariants inside the loop: b[run..i) are kept bytes not yet emitted
 * (when a candidate is open they include it, from cand on); cand is the
 * index in b of the open candidate's '[', or SIZE_MAX when it began in an
 * earlier input (its first bytes are then in the hold buffer and run is
 * 0: nothing of this input was emitted yet).
 */
int
printk_filter(struct printk *pk, const void *buf, size_t len,
              printk_emit_fn *emit, void *arg)
{
    const unsigned char *b = buf;
    uint64_t base = pk->raw;
    size_t i = 0, run = 0, cand = printk_holding(pk) ? SIZE_MAX : 0;
    int rc;

    pk->raw += len;
    while (i < len) {
        if (pk->state == PK_TEXT) {
            const unsigned char *p = memchr(b + i, '[', len - i);
            if (!p) {
                i = len;
                break;
            }
            cand = (size_t)(p - b);
            i = cand + 1;
            pk->state = PK_OPEN;
            pk->spaces = pk->secs = pk->frac = 0;
            continue;
        }
        if (pk->state == PK_RECORD) {
            const unsigned char *p = memchr(b + i, '\n', len - i);
            i = p ? (size_t)(p - b) + 1 : len;
            run = i;
            if (p)
                pk->state = PK_TEXT;
            continue;
        }
        int next = candidate_step(pk, b[i]);
        if (next == PK_RECORD) {
            /* Emit what was kept before the record, drop the rest. */
            if (cand != SIZE_MAX && cand > run &&
                (rc = emit(arg, b + run, cand - run, base + run)))
                return rc;
            pk->nhold = 0;
            pk->records++;
            pk->state = PK_RECORD;
            run = ++i;
        } else if (next == PK_TEXT) {
            /* Not a record: its bytes are kept. Those of an earlier input
             * go out first; b[run..i) stays in the run. b[i] is looked at
             * again as text (it may be a '['). */
            if (cand == SIZE_MAX && (rc = emit_hold(pk, emit, arg)))
                return rc;
            pk->state = PK_TEXT;
        } else {
            pk->state = next;
            i++;
        }
    }
    if (pk->state == PK_TEXT)
        return run < len ? emit(arg, b + run, len - run, base + run) : 0;
    if (pk->state == PK_RECORD)
        return 0;
    /* A candidate is still open: hold its bytes of this input. */
    if (cand != SIZE_MAX) {
        if (cand > run && (rc = emit(arg, b + run, cand - run, base + run)))
            return rc;
        pk->hold_raw = base + cand;
        run = cand;
    }
    memcpy(pk->hold + pk->nhold, b + run, len - run);
    pk->nhold += len - run;
    return 0;
}

int
printk_flush(struct printk *pk, printk_emit_fn *emit, void *arg)
{
    int rc = 0;

    if (printk_holding(pk))
        rc = emit_hold(pk, emit, arg);
    pk->state = PK_TEXT;
    return rc;
}

struct strip_out {
    unsigned char *p;
    size_t n;
};

static int
strip_emit(void *arg, const void *buf, size_t len, uint64_t raw_off)
{
    struct strip_out *o = arg;

    memcpy(o->p + o->n, buf, len);
    o->n += len;
    return 0;
}

size_t
printk_strip(const void *in, size_t len, void *out)
{
    struct printk pk;
    struct strip_out o = {out, 0};

    printk_init(&pk);
    printk_filter(&pk, in, len, strip_emit, &o);
    printk_flush(&pk, strip_emit, &o);
    return o.n;
}
