/*
 * streams.h - the internal header of the stream core, one section per file.
 *
 * Conventions used throughout (see STYLE.md):
 *  - errors are 0 / -errno; positive values are counts;
 *  - time is uint64_t microseconds of CLOCK_MONOTONIC, deadlines absolute;
 *  - destructors accept NULL;
 *  - nothing here logs or exits: callers decide.
 */
#ifndef PROVIUM_STREAMS_H
#define PROVIUM_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "proto.h"

/* ------------------------------------------------------------------ */
/* clock.c - time: uint64_t microseconds of CLOCK_MONOTONIC.           */
/* ------------------------------------------------------------------ */

#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MSEC 1000ULL

uint64_t clock_now(void); /* CLOCK_MONOTONIC in microseconds */

/* ------------------------------------------------------------------ */
/* reactor.c - the event loop: fd watches, timers, deferred calls,     */
/* signals. The only file that includes <sys/epoll.h>.                 */
/* ------------------------------------------------------------------ */

struct reactor;

#define REACTOR_IN 0x1u  /* readable (or peer hung up: read to find out) */
#define REACTOR_OUT 0x2u /* writable */
#define REACTOR_ERR 0x4u /* error or hang-up reported by the kernel */

typedef void reactor_fd_fn(struct reactor *r, int fd, unsigned events,
                           void *arg);
typedef void reactor_fn(struct reactor *r, void *arg);

/*
 * A timer is embedded in its owner's object. Zero-initialise it;
 * reactor_timer_start() arms or re-arms it, reactor_timer_stop() disarms it
 * (harmless when not armed). The callback runs once per arming, after the
 * timer has been disarmed, so it may re-arm the timer or free its owner.
 * Arming can fail (-ENOMEM) only when the reactor's heap array must grow
 * past the most timers ever armed at once; re-arming never fails.
 */
struct reactor_timer {
    uint64_t deadline;   /* absolute, clock_now() scale */
    size_t heap_index;   /* 0 = not armed; else 1-based index in the heap */
    reactor_fn *fn;
    void *arg;
};

int reactor_new(struct reactor **out);
void reactor_free(struct reactor *r);

/* Watch fd for events (REACTOR_IN|REACTOR_OUT); a second call for the
 * same fd replaces events, fn and arg. */
int reactor_watch(struct reactor *r, int fd, unsigned events,
                  reactor_fd_fn *fn, void *arg);
/* Stop watching fd. Safe to call from any callback, including fd's own;
 * no callback for fd runs after it returns. Call before close(fd). */
void reactor_unwatch(struct reactor *r, int fd);

int reactor_timer_start(struct reactor *r, struct reactor_timer *t,
                        uint64_t deadline, reactor_fn *fn, void *arg);
void reactor_timer_stop(struct reactor *r, struct reactor_timer *t);
static inline bool
reactor_timer_armed(const struct reactor_timer *t)
{
    return t->heap_index != 0;
}

/* Run fn(arg) on the next loop turn, before any fd is polled again.
 * Deferred calls run in the order they were queued. */
int reactor_defer(struct reactor *r, reactor_fn *fn, void *arg);
/* Run fn(arg) once, right before the loop next polls its fds (after this
 * turn's deferred calls and timers, so before it may block): work batched
 * per turn, such as a spool's write-behind. In the order queued; a call
 * queued by such a call runs before the following poll. Queued calls are
 * dropped by reactor_free, as deferred calls are. */
int reactor_before_poll(struct reactor *r, reactor_fn *fn, void *arg);

/* Deliver signo through a signalfd: the signal is blocked in the calling
 * thread and fn runs from the loop when it arrives. */
int reactor_signal(struct reactor *r, int signo, reactor_fn *fn, void *arg);

/* Run until reactor_stop(). Returns 0, or -errno if epoll itself fails. */
int reactor_run(struct reactor *r);
/* Run one turn: deferred calls, expired timers, the calls before polling,
 * then poll fds. The poll
 * waits, at most until max_deadline (0 = don't wait, UINT64_MAX = wait
 * forever), only when the turn found no deferred call or timer to run. */
int reactor_run_once(struct reactor *r, uint64_t max_deadline);
void reactor_stop(struct reactor *r);
bool reactor_stopped(const struct reactor *r);

/* ------------------------------------------------------------------ */
/* backoff.c - retrying with exponential backoff (reconnects).         */
/* ------------------------------------------------------------------ */

/* Embedded in its owner; backoff_init before use. */
struct backoff {
    struct reactor_timer timer;
    uint64_t min, max; /* the first delay, and the cap */
    uint64_t delay;    /* the delay of the next attempt */
};

void backoff_init(struct backoff *b, uint64_t min, uint64_t max);
/* Run fn(arg) after the current delay, and double the next delay (at
 * most max). Returns reactor_timer_start's result. */
int backoff_schedule(struct reactor *r, struct backoff *b, reactor_fn *fn,
                     void *arg);
/* It worked: the next attempt after a loss comes after the minimum. */
void backoff_reset(struct backoff *b);
/* Cancel a scheduled attempt (harmless when none is). */
void backoff_stop(struct reactor *r, struct backoff *b);

/* ------------------------------------------------------------------ */
/* outq.c - bytes queued for a non-blocking fd: reserve, fill, commit, */
/* flush; a limit and a high-water mark.                               */
/* ------------------------------------------------------------------ */

/* Embedded in its owner; outq_init before use, outq_fini to free. */
struct outq {
    uint8_t *buf;
    size_t off, len, cap; /* queued bytes are buf[off, off + len) */
    size_t limit;         /* most bytes queued; 0 = no limit */
    size_t mark;          /* high-water mark: see outq_high */
    bool not_socket;      /* the fd takes write(2), not send(2) */
};

void outq_init(struct outq *q, size_t limit, size_t mark);
void outq_fini(struct outq *q);
/* Drop what is queued (the connection it was for is gone). */
void outq_clear(struct outq *q);
/* Room for n more bytes at the tail, valid until the next call on q; NULL
 * past the limit or when memory ran out. Nothing is queued until
 * outq_commit. */
void *outq_reserve(struct outq *q, size_t n);
/* Queue the first n bytes of the room last reserved. */
void outq_commit(struct outq *q, size_t n);
/* Reserve, copy and commit: 0 or -ENOBUFS. */
int outq_put(struct outq *q, const void *buf, size_t len);
/* Write what fd takes now. Returns 0 (all written, or the fd would
 * block: see outq_len) or -errno (EPIPE, ECONNRESET, ...: the bytes
 * stay queued). Never raises SIGPIPE on a socket. */
int outq_flush(struct outq *q, int fd);
/* Bytes queued, and what the limit leaves. */
static inline size_t
outq_len(const struct outq *q)
{
    return q->len;
}
size_t outq_room(const struct outq *q);
/* At or above the high-water mark: stop producing until it drains. */
static inline bool
outq_high(const struct outq *q)
{
    return q->len >= q->mark;
}

/* ------------------------------------------------------------------ */
/* command.c - the command line syntax of SPEC §5: words separated by */
/* blanks, double-quoted words with C escapes, durations.              */
/* ------------------------------------------------------------------ */

#define COMMAND_MAX_LINE 65536 /* bytes in one command write */
#define COMMAND_MAX_WORDS 1024 /* 256 marked patterns fit */
/* Room for a pattern error (PATTERN_ERR_LEN) and its op's name. */
#define COMMAND_ERR_LEN 1024

struct word {
    const char *p; /* not NUL-terminated in general; may contain NULs */
    size_t len;
};

struct command {
    int argc;
    struct word argv[COMMAND_MAX_WORDS];
    char *buf; /* owns the unescaped bytes argv points into */
};

/*
 * Split one command line (a trailing "\n" or "\r\n" is allowed) into
 * words. Returns 0, or -EINVAL / -EMSGSIZE with a message naming the
 * problem in err (COMMAND_ERR_LEN bytes). On success the caller frees with
 * command_free(); on failure nothing needs freeing.
 */
int command_parse(struct command *cmd, const char *line, size_t len,
                  char *err);
void command_free(struct command *cmd);

/* Does word w equal the C string s? */
bool word_is(struct word w, const char *s);
/* Copy w into dst as a C string: false if w is empty, holds a NUL, or
 * does not fit in cap bytes with its terminator. */
bool word_cstr(struct word w, char *dst, size_t cap);
/* A malloc'd C string copy of w; NULL if w holds a NUL or memory ran out. */
char *word_strdup(struct word w);
/* If w is "key=value" with the given key, point *value at the value. */
bool word_option(struct word w, const char *key, struct word *value);
/* A decimal number without sign ("N"), or with a prefix "prefix#N" too
 * (ids: "proc#3", "file#2"); false when w is anything else or too big. */
bool word_u64(struct word w, const char *prefix, uint64_t *v);

/*
 * Command tables (tmux's cmd_entry): each ctl file and the stream ops
 * list their commands as entries that begin with a struct command_entry,
 * followed by the owner's own fields (its handler, its flags). The
 * lookup finds the entry, checks the argument count and names the
 * problem with the entry's usage line.
 */
struct command_entry {
    const char *name;    /* one word, or two: "vm add" */
    int min, max;        /* argument words after the name; max -1: any */
    const char *usage;   /* the usage line, name included */
    const char *missing; /* a missing argument's message ("missing
                          * pattern"); NULL: "missing argument" */
};

/* Find cmd's entry among n entries stride bytes apart: 0 with *out and
 * *argi (cmd->argv index of the first argument); -EINVAL with *out when
 * the argument count is wrong ("NAME: missing argument (usage: USAGE)",
 * "NAME: too many arguments (usage: USAGE)"); -ENOENT when there is no
 * such command ("unknown WHAT command `X` (expected a, b or c)"). */
int command_lookup(const void *table, size_t n, size_t stride,
                   const struct command *cmd, const char *what,
                   const struct command_entry **out, int *argi, char *err);
/* "NAME: PROBLEM (usage: USAGE)" into err (COMMAND_ERR_LEN). */
void command_usage(const struct command_entry *e, const char *problem,
                   char *err);
/* The names of the table's entries for a message: "a, b or c". */
size_t command_names(const void *table, size_t n, size_t stride, char *buf,
                     size_t len);
/* At most max bytes of w, C-escaped (\n \r \t \\ \xHH) for a message. */
size_t command_quote(struct word w, size_t max, char *buf, size_t size);

/*
 * Parse a duration: "1.5" (seconds), "250ms", "2s", "1.5m", "1h".
 * Messages are Provium's:
 *   duration: cannot parse `X` (expected number or `Nms`/`Ns`/`Nm`/`Nh`)
 *   duration: must be a finite, non-negative number (got X)
 * Returns 0 and *usec, or -EINVAL with the message in err.
 */
int duration_parse(struct word w, uint64_t *usec, char *err);
/* Format usec as Provium would print a timeout ("10s", "500ms", "1.5s"). */
void duration_format(uint64_t usec, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* text.c - values from guests and users made safe to show in line-    */
/* based text (info, streams, status files): control characters,       */
/* backslash and malformed UTF-8 as \xHH, so no value can forge a line. */
/* ------------------------------------------------------------------ */

/* Escape len bytes of src into dst (cap bytes, NUL included); stops
 * before an escape or character that would not fit. Returns the length
 * written. The output is at most 4 * len bytes. */
size_t text_escape(char *dst, size_t cap, const void *src, size_t len);
/* Append the escaped C string s (NULL: nothing) at strnlen(buf, len);
 * returns the new length. */
size_t text_append(char *buf, size_t len, const char *s);
/* Append printf output as it is (the daemon's own words, never a value
 * from outside) at strnlen(buf, len); returns the new length. */
size_t text_appendf(char *buf, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Append the line "key: <escaped value>\n"; returns the new length. */
size_t text_keyval(char *buf, size_t len, const char *key, const char *value);

/* ------------------------------------------------------------------ */
/* spool.c - append-only history of one stream in an unlinked file,   */
/* with the frame boundaries kept in a second unlinked file. Memory    */
/* is bounded: write-behind buffers for the bytes (flushed by the      */
/* owner once per loop turn) and for the index.                        */
/* ------------------------------------------------------------------ */

struct spool;

/*
 * A span: where history bytes are, so that a reply can be sent from them
 * without copying them first (the daemon splices fd spans to /dev/fuse).
 * Either the bytes lie in fd at off (mem == NULL), or they are in memory
 * at mem (bytes not written to the file yet). For fd spans: the bytes of
 * [off, off + len) never change and fd stays open for as long as the
 * stream (or spool) it came from lives, so the span may be used from
 * another thread while something keeps the stream alive; never close fd.
 * Memory spans are valid only until control returns to the reactor: a
 * caller that sends from another thread copies them first.
 */
struct stream_span {
    const void *mem; /* NULL: the bytes are in fd at off */
    int fd;
    uint64_t off; /* history offset (the file offset for fd spans) */
    size_t len;
};

/* Create a spool in dir (two spool_tmpfile files). */
int spool_new(const char *dir, struct spool **out);
/* An unlinked read-write file in dir (O_TMPFILE, or mkostemp + unlink on
 * a file system without it), close-on-exec: its fd, or -errno. Nothing
 * is left in dir whatever becomes of the process. */
int spool_tmpfile(const char *dir);
void spool_free(struct spool *sp);
/* Append one frame (len > 0). All or nothing: -errno leaves the spool as
 * it was. The bytes may stay in memory until spool_flush (they are
 * history at once: every read below serves them). */
int spool_append(struct spool *sp, const void *buf, size_t len);
/* Write the buffered bytes to the file; call once per loop turn after
 * appending. 0, or -errno: then what could not be written stays in
 * memory, still history, and the next flush tries again. */
int spool_flush(struct spool *sp);
/* Bytes appended and not yet in the file. */
uint64_t spool_unflushed(const struct spool *sp);
uint64_t spool_size(const struct spool *sp);
uint64_t spool_frames(const struct spool *sp);
/* End offset of frame k (k < spool_frames). Frame k covers
 * [spool_frame_end(k-1), spool_frame_end(k)), frame -1 ending at 0. */
int spool_frame_end(struct spool *sp, uint64_t k, uint64_t *end);
/* Index of the frame containing byte off (off < size), by binary search;
 * off == size gives spool_frames(). */
int spool_frame_at(struct spool *sp, uint64_t off, uint64_t *k);
/* Read history bytes at off; short only at the end of history. */
ssize_t spool_pread(struct spool *sp, void *buf, size_t len, uint64_t off);
/* Where the history bytes from off are, at most max of them, in one
 * piece: the span's length (> 0), or 0 at or past the end. A span never
 * runs from the file into memory: a memory span (bytes not flushed yet)
 * is valid until the next spool_append or spool_flush. */
ssize_t spool_span(struct spool *sp, uint64_t off, size_t max,
                   struct stream_span *out);

/* ------------------------------------------------------------------ */
/* match.c - streaming literal matcher: bytes are fed chunk by chunk,   */
/* a match straddling chunks is found, each byte is examined O(1)      */
/* times (KMP at chunk edges, memmem inside).                          */
/* ------------------------------------------------------------------ */

#define MATCH_MAX_PATTERN 4096

struct matcher;

int matcher_new(const void *pattern, size_t len, struct matcher **out);
void matcher_free(struct matcher *m);
/* Forget everything fed so far. */
void matcher_reset(struct matcher *m);
/* Feed the next len bytes. Returns 1 and *end = number of bytes of this
 * chunk up to and including the end of the first match, or 0 if no match
 * ends in this chunk. After a match the matcher is reset. An empty pattern
 * matches at once (*end = 0). */
int matcher_feed(struct matcher *m, const void *buf, size_t len,
                 size_t *end);

/* ------------------------------------------------------------------ */
/* pattern.c - pattern sets for read_until / expect / peek (SPEC §9):   */
/* up to 256 literals and PCRE-syntax regexes compiled together for    */
/* Hyperscan's streaming mode, cached (LRU); captures with PCRE2.      */
/* ------------------------------------------------------------------ */

#define PATTERN_MAX_COUNT 256
#define PATTERN_MAX_LEN MATCH_MAX_PATTERN   /* source bytes of one pattern */
#define PATTERN_MAX_DATABASE (4u << 20)     /* compiled bytes of one set */
#define PATTERN_MAX_STATE (16u << 10)       /* stream state bytes per op */
#define PATTERN_MAX_CAPTURE_SPAN (1u << 20) /* bytes captures run over */
#define PATTERN_ERR_LEN 512
#define PATTERN_UNKNOWN UINT64_MAX /* an offset that is not known */
#define PATTERN_UNSET SIZE_MAX     /* a capture group that took no part */

enum pattern_kind {
    PATTERN_LITERAL, /* bytes, matched exactly */
    PATTERN_REGEX,   /* PCRE syntax, no look-back (docs/matching.md) */
};

/* Regex flags, PCRE's (?imsx); literals take none. */
#define PATTERN_CASELESS 0x1u  /* i */
#define PATTERN_MULTILINE 0x2u /* m: ^ and $ at every line too */
#define PATTERN_DOTALL 0x4u    /* s: . matches \n */
#define PATTERN_EXTENDED 0x8u  /* x: blanks and #comments ignored */

struct pattern {
    enum pattern_kind kind;
    unsigned flags;
    const void *src; /* len bytes; a literal may hold any byte */
    size_t len;
};

/* Set options (part of the cache key). */
#define PATTERN_SET_NO_SPAN 0x1u /* match starts not wanted: no SOM */
/* Benchmarks and tests only: run one literal on this engine. */
#define PATTERN_SET_ENGINE_HS 0x2u
#define PATTERN_SET_ENGINE_MEMMEM 0x4u

struct pattern_set;

/*
 * A compiled set for pats[0..n) (copied), from the cache or compiled now.
 * Returns 0 and a reference in *out (release with pattern_set_put), or
 * -EINVAL with a message in err (PATTERN_ERR_LEN) naming the pattern and
 * the problem: a syntax error (PCRE2's message and offset), a construct a
 * stream cannot match (named, with its offset and Hyperscan's message), a
 * regex that can match the empty string, a NUL in a regex, or a cap
 * (count, length, compiled size); -ENOMEM; -ENOTSUP on a CPU Hyperscan
 * cannot run on (no SSSE3).
 */
int pattern_set_get(const struct pattern *pats, unsigned n, unsigned opts,
                    struct pattern_set **out, char *err);
/* The checks of pattern_set_get without building the set: every error a
 * pattern can have but "too large once compiled" (milliseconds: no
 * Hyperscan database is built; a cached set passes at once). */
int pattern_set_check(const struct pattern *pats, unsigned n, unsigned opts,
                      char *err);

/*
 * pattern_set_get for the reactor thread, which must not stall: a set in
 * the cache, or of literals only, is returned at once (0, *out); a set
 * with a regex is checked at once (-EINVAL with err as pattern_set_get;
 * -EBUSY when PATTERN_MAX_JOBS sets are being compiled) and its
 * database built on a compiler thread: 1 and *job, then done() runs once
 * from r's loop, with a reference to the set, or NULL and -errno with a
 * message (a set too large once compiled). After pattern_job_cancel (only
 * before done) done is never called; the build goes on and its set
 * still reaches the cache. Everything here but the build itself runs on
 * the calling (reactor) thread.
 */
typedef void pattern_job_fn(struct pattern_set *ps, int err, const char *msg,
                            void *arg);
struct pattern_job;
int pattern_set_get_async(const struct pattern *pats, unsigned n, unsigned opts,
                          struct reactor *r, pattern_job_fn *done, void *arg,
                          struct pattern_set **out, struct pattern_job **job,
                          char *err);
void pattern_job_cancel(struct pattern_job *job);
/* Sets being compiled, or compiled and not yet in the cache (tests). */
unsigned pattern_jobs(void);
struct pattern_set *pattern_set_ref(struct pattern_set *ps);
void pattern_set_put(struct pattern_set *ps);
unsigned pattern_set_count(const struct pattern_set *ps);
/* Pattern i as compiled (src points into the set, NUL-terminated). */
const struct pattern *pattern_set_pattern(const struct pattern_set *ps,
                                          unsigned i);

/* What the scanner (scan.c) needs to run a set. */
struct pattern_set_info {
    void *db;     /* hs_database_t; NULL when Hyperscan is not used */
    bool memmem;  /* the set is one literal run on match.c's matcher */
    int empty;    /* index of the first empty literal, or -1 */
    bool ordered; /* Hyperscan reports every match during the scan of its
                   * last byte (no `a\b`, `(?m)a$` style pattern) */
    bool eod;     /* some pattern can match at the end of the data */
    size_t state; /* Hyperscan stream state bytes */
};
const struct pattern_set_info *pattern_set_info(const struct pattern_set *ps);
/* Start of pattern i's match ending at `to`, given Hyperscan's `from`
 * (used only for patterns with start tracking); PATTERN_UNKNOWN for a
 * variable-width regex in a PATTERN_SET_NO_SPAN set. */
uint64_t pattern_set_start(const struct pattern_set *ps, unsigned i,
                           uint64_t from, uint64_t to);
/* Does pattern i have Hyperscan's start-of-match tracking? */
bool pattern_set_som(const struct pattern_set *ps, unsigned i);
/* The thread's Hyperscan scratch space, big enough for every live set. */
void *pattern_scratch(void);

/* Capture groups of regex i (0 for literals). */
unsigned pattern_set_groups(const struct pattern_set *ps, unsigned i);
/*
 * The groups of regex i for a match the scanner found at [from, to) of
 * subject. Bytes of subject before `from` are context (give the byte
 * before the match when there is one, for \b and ^); the match must end
 * at `to`, which is taken as the end of the subject. Fills ovec with
 * offset pairs for group 0 (the match) .. min(groups, max - 1), unset
 * groups as PATTERN_UNSET. Returns the number of pairs, -ENOENT if PCRE2
 * does not match that span as Hyperscan did, -E2BIG past
 * PATTERN_MAX_CAPTURE_SPAN or PCRE2's match limit, -ENOMEM.
 */
int pattern_set_captures(struct pattern_set *ps, unsigned i,
                         const void *subject, size_t from, size_t to,
                         size_t *ovec, unsigned max);

/* "imsx" letters to flags; -EINVAL with a message for anything else. */
int pattern_flags_parse(const void *s, size_t len, unsigned *flags, char *err);
/* Flags as letters into buf (at least 5 bytes). */
void pattern_flags_format(unsigned flags, char *buf);
/* C-escape up to max bytes of buf into out (cap bytes, NUL-terminated),
 * "..." marking a cut; returns the length written. */
size_t pattern_escape(const void *buf, size_t len, size_t max, char *out,
                      size_t cap);
/* A pattern for messages: `lit` or regex `src` (flags i); at most max
 * source bytes shown (0 = all). Returns what snprintf would. */
size_t pattern_describe(const struct pattern *p, size_t max, char *out,
                        size_t cap);

struct pattern_cache_stats {
    unsigned sets;
    size_t bytes;
    uint64_t hits, compiles;
};
void pattern_cache_stats(struct pattern_cache_stats *st);
/* Drop every cached set (sets in use live on until released). */
void pattern_cache_flush(void);

/* ------------------------------------------------------------------ */
/* printk.c - a streaming filter that removes kernel log records       */
/* ("[    3.141592] text\r\n") wherever they start in the bytes.      */
/* ------------------------------------------------------------------ */

#define PRINTK_HOLD_MAX 40 /* longest possible record start held back */

/* A run of kept bytes: len > 0, the raw offset of its first byte.
 * Nonzero stops the filter (which is then unusable). */
typedef int printk_emit_fn(void *arg, const void *buf, size_t len,
                           uint64_t raw_off);

struct printk {
    int state;
    unsigned spaces, secs, frac;
    uint64_t raw;     /* raw bytes consumed */
    uint64_t records; /* records removed */
    uint64_t hold_raw;
    size_t nhold;
    unsigned char hold[PRINTK_HOLD_MAX];
};

void printk_init(struct printk *pk);
/* Filter the next len bytes: emit every run of kept bytes, in order.
 * Returns 0, or the first nonzero emit() return. */
int printk_filter(struct printk *pk, const void *buf, size_t len,
                  printk_emit_fn *emit, void *arg);
/* The stream ended: bytes held as a possible record start are kept. */
int printk_flush(struct printk *pk, printk_emit_fn *emit, void *arg);
/* Are bytes held back because they may start a record? */
bool printk_holding(const struct printk *pk);
/* Filter a whole buffer into out (at most len bytes); returns the
 * length kept. */
size_t printk_strip(const void *in, size_t len, void *out);

/* ------------------------------------------------------------------ */
/* scan.c - the streaming scanner of one op: a pattern set run over the */
/* bytes from the op's cursor, fed chunk by chunk, finding the earliest */
/* match end (ties: the lower index) with fixed state; optional printk  */
/* filter; the timeout message.                                         */
/* ------------------------------------------------------------------ */

#define SCAN_SKIP_PRINTK 0x1u /* skip=printk */

struct scan_match {
    unsigned index; /* the pattern (0-based) */
    uint64_t start; /* first matched byte, PATTERN_UNKNOWN if not known */
    uint64_t end;   /* just past the match */
    uint64_t ctx;   /* the byte the patterns saw before the match (for
                     * captures), PATTERN_UNKNOWN if none or not known */
    /* Offsets are raw (kernel records included), from the scanner's
     * start. */
};

struct scan;

/* A scanner for ps (it takes its own reference). */
int scan_new(struct pattern_set *ps, unsigned opts, struct scan **out);
void scan_free(struct scan *sc);
/* Start over at offset 0 with the same patterns. */
void scan_reset(struct scan *sc);
/*
 * Feed the next len bytes. Returns 1 with *m when the earliest match is
 * known (its end lies in the bytes fed so far; the scanner is then done:
 * free or reset it), 0 when none is yet, -errno on an engine failure. A
 * match ending at the very last byte fed may be known only at the next
 * byte or at scan_idle() (see scan.c).
 */
int scan_feed(struct scan *sc, const void *buf, size_t len,
              struct scan_match *m);
/* The caller has fed every byte the stream holds for now: `$`, `\z` and a
 * trailing `\b` match here (docs/matching.md). Same returns as scan_feed;
 * feeding may go on after 0. */
int scan_idle(struct scan *sc, struct scan_match *m);
/* The stream ended: last matches (end-of-data, held printk lookahead).
 * Same returns; nothing may be fed afterwards. */
int scan_finish(struct scan *sc, struct scan_match *m);
uint64_t scan_bytes(const struct scan *sc);   /* raw bytes fed */
uint64_t scan_records(const struct scan *sc); /* kernel records skipped */
const struct pattern_set *scan_patterns(const struct scan *sc);
/*
 * The timeout message of op ("read_until", "expect", "peek"), malloc'd:
 *   read_until timed out waiting for `P`; timeout 10s; last bytes seen:
 *   `...`; N bytes scanned[; kernel log records skipped: N][; closest:
 *   `PRE` then `...`]
 * (SPEC §4.3, §9.2; docs/matching.md). NULL when memory ran out.
 */
char *scan_timeout_message(const struct scan *sc, const char *op,
                           uint64_t timeout);
/* The same when the op timed out before its patterns were compiled. */
char *scan_compiling_message(const struct pattern *pats, unsigned n,
                             const char *op, uint64_t timeout);

/* Read len raw bytes at off (from the scanner's start); short only at
 * the end of what was fed. */
typedef ssize_t scan_read_fn(void *arg, void *buf, size_t len, uint64_t off);
/*
 * The capture groups of match m (a regex's), from PCRE2 on the matched
 * span only, read back through rd (with skip=printk, filtered again:
 * the groups are those of the bytes the patterns saw). Fills ovec with
 * raw offset pairs (from the scanner's start) for group 0 (the match)
 * .. min(groups, max - 1); a group that took no part is PATTERN_UNKNOWN.
 * Returns the number of pairs (0 for a pattern without groups), -ENOENT
 * if the start is unknown or PCRE2 does not agree, -E2BIG for a span
 * over PATTERN_MAX_CAPTURE_SPAN, -errno from rd or memory.
 */
int scan_captures(struct scan *sc, const struct scan_match *m, scan_read_fn *rd,
                  void *arg, uint64_t *ovec, unsigned max);

/* ------------------------------------------------------------------ */
/* reply.c - the ctl reply: "<status> <length>\n" then the payload.     */
/* A payload is either in memory or a range of a stream's history,     */
/* optionally encoded as drain records "<n>\n<n bytes>" per frame.      */
/* ------------------------------------------------------------------ */

enum reply_status {
    REPLY_OK,
    REPLY_TIMEOUT,
    REPLY_EOF,
    REPLY_CLOSED,
    REPLY_ERROR,
};

const char *reply_status_name(enum reply_status st);

struct reply;
struct stream;

/* A reply whose payload is len bytes copied from buf. */
int reply_new_mem(enum reply_status st, const void *buf, size_t len,
                  struct reply **out);
/* printf-style message payload. */
int reply_new_fmt(enum reply_status st, struct reply **out, const char *fmt,
                  ...) __attribute__((format(printf, 3, 4)));
/* ok reply whose payload is history bytes [from, to) of stream s. The
 * reply holds a reference on s (so on its spool) until reply_free. */
int reply_new_range(struct stream *s, uint64_t from, uint64_t to,
                    struct reply **out);
/* ok reply for drain: the frames of s covering [from, to), the first one
 * starting at from (pending bytes), each as a "<n>\n<n bytes>" record.
 * to must be a frame boundary. Holds a reference on s. */
int reply_new_drain(struct stream *s, uint64_t from, uint64_t to,
                    struct reply **out);
/* Add fields after the length on the status line (a matched
 * alternative and its span: "ok 12 2 3 9\n"); the framing is as before. */
int reply_set_fields(struct reply *rp, const char *fields);
void reply_free(struct reply *rp);

enum reply_status reply_status(const struct reply *rp);
uint64_t reply_length(const struct reply *rp); /* header + payload */
/* Copy reply bytes [off, off+len) into buf; returns bytes copied (0 at the
 * end) or -errno. Sequential reads are O(len). */
ssize_t reply_read(struct reply *rp, void *buf, size_t len, uint64_t off);
/* Whole reply into a malloc'd buffer (tests, small replies). */
int reply_collect(struct reply *rp, char **buf, size_t *len);

/* ------------------------------------------------------------------ */
/* stream.c - one stream: history, the test's consumption cursor and   */
/* its op queue, readers with their own cursors, end and close.        */
/* ------------------------------------------------------------------ */

#define STREAM_DEFAULT_NEXT_TIMEOUT (10 * USEC_PER_SEC)
#define STREAM_DEFAULT_UNTIL_TIMEOUT (10 * USEC_PER_SEC)
#define STREAM_DEFAULT_DRAIN_TIMEOUT (500 * USEC_PER_MSEC)

struct stream;

struct stream_config {
    const char *spool_dir;  /* where the history file lives */
    uint64_t history_limit; /* bytes; 0 = unlimited */
    const char *noun;       /* "stream", "console" or "capture" (messages) */
};

enum stream_state {
    STREAM_LIVE,   /* the source may produce more */
    STREAM_ENDED,  /* the source ended (cleanly or with an error) */
    STREAM_CLOSED, /* closed by the test: no more ops */
};

int stream_new(struct reactor *r, const struct stream_config *cfg,
               struct stream **out);
/* Streams are reference counted: each reader, each open ctl file and the
 * registry hold one. The last unref frees the spool. */
struct stream *stream_ref(struct stream *s);
void stream_unref(struct stream *s);

/* Producer side (engines). One call = one frame. Returns 0, or -EFBIG when
 * the frame would pass the history limit (the stream then ends with an
 * error saying so and the frame is not recorded), -EPIPE when the stream
 * has already ended or been closed, or another -errno from the spool (the
 * stream then ends with that error). */
int stream_append(struct stream *s, const void *buf, size_t len);
/* The source ended: err 0 for a clean end, or -errno. msg (copied, may be
 * NULL) says why; ops at the end report "<noun> EOF; <msg>" (status eof
 * for a clean end, error otherwise). Idempotent: first one wins. */
void stream_end(struct stream *s, int err, const char *msg);
/* Close: the stream ends if live, pending bytes are dropped, a running op
 * is answered "closed", queued and later ops answer "closed". */
void stream_close(struct stream *s);

enum stream_state stream_state(const struct stream *s);
uint64_t stream_size(const struct stream *s);
uint64_t stream_frames(const struct stream *s);
uint64_t stream_consumed(const struct stream *s); /* test cursor offset */
uint64_t stream_pending(const struct stream *s);  /* bytes pending */
/* The end error (0 for a clean end or a live stream) and, in *msg, the
 * end reason (NULL if none was given for a clean end). */
int stream_end_error(const struct stream *s, const char **msg);
struct spool *stream_spool(struct stream *s);
/* The reactor the stream was created on (engines watch their fds there). */
struct reactor *stream_reactor(const struct stream *s);
/* Read history at off (the log file). Never blocks. */
ssize_t stream_pread(struct stream *s, void *buf, size_t len, uint64_t off);
/* Where the history from off is (stream_span, spool section), at most max
 * bytes in one piece: its length, or 0 at or past the end. Never blocks.
 * The span may be shorter than what lies there (it never crosses from
 * the file into memory): ask again from off + len for the rest. */
ssize_t stream_peek(struct stream *s, uint64_t off, size_t max,
                    struct stream_span *out);

/* Ops on the test's cursor (SPEC §5.2). */
enum stream_op_kind {
    STREAM_OP_NEXT,
    STREAM_OP_READ_UNTIL,
    STREAM_OP_EXPECT,
    STREAM_OP_DRAIN,
    STREAM_OP_EOF,
    STREAM_OP_CLOSE,
    STREAM_OP_PEEK,
};

struct stream_op_spec {
    enum stream_op_kind kind;
    uint64_t timeout; /* usec */
    /* read_until / expect / peek: pats[0..npats) when npats > 0 (a marked
     * form), else the one literal pattern (a plain form). Copied by the
     * op. */
    const void *pattern;
    size_t pattern_len;
    unsigned npats;
    struct pattern pats[PATTERN_MAX_COUNT];
    unsigned scan_opts; /* SCAN_SKIP_PRINTK */
    bool marked;        /* reply with the alternative and the span */
};

/* Parse a stream op command (next/read_until/expect/peek/drain/eof/close
 * with their arguments and default timeouts) by the ops' command table.
 * The spec's patterns point into cmd; a marked form's patterns are
 * checked (pattern_set_check: syntax, refused constructs, caps). Returns
 * 0 or -EINVAL with a message in err. */
int stream_op_parse(const struct command *cmd, struct stream_op_spec *spec,
                    char *err);
/* The ops' command table (entries begin with a struct command_entry):
 * tests check every entry's usage. */
const void *stream_op_table(size_t *n, size_t *stride);

/* Called exactly once per queued op with its reply; the callee owns rp.
 * rp is NULL only when memory ran out building it: treat as "error".
 * Never called from inside stream_op_submit(). */
typedef void stream_op_done_fn(struct stream *s, struct reply *rp, void *arg);

struct stream_op;
/* Queue an op; ops run one at a time in queue order. *opp (optional)
 * receives a handle valid until done runs or stream_op_cancel returns.
 * A matching op's patterns start compiling now (pattern.c; on a compiler
 * thread if they must); a set that cannot be compiled is answered
 * `error` with the reason in the op's turn. */
int stream_op_submit(struct stream *s, const struct stream_op_spec *spec,
                     stream_op_done_fn *done, void *arg,
                     struct stream_op **opp);
/* Withdraw an op (its requester went away). done is not called. A running
 * op is stopped without consuming anything. */
void stream_op_cancel(struct stream_op *op);
/* Hand a queued or running op to another requester, who gets its reply
 * instead: for an op that must run although the file that wrote it went
 * away (`echo close > ctl`). */
void stream_op_redirect(struct stream_op *op, stream_op_done_fn *done,
                        void *arg);

/* Readers: independent cursors from byte 0 (the data file). */
struct stream_reader;
int stream_reader_new(struct stream *s, struct stream_reader **out);
/* A reader not counted by stream_readers(): the daemon's own watch on
 * the history's growth (seek it to a size, ask to be notified). */
int stream_reader_new_quiet(struct stream *s, struct stream_reader **out);
void stream_reader_free(struct stream_reader *rd);
/* Read at the reader's cursor: bytes (>0), 0 at the end of a stream that
 * ended cleanly or was closed, the end error (-errno) once at the end of a
 * stream that ended with an error, or -EAGAIN when nothing is available
 * yet. Coalesces frames. */
ssize_t stream_reader_read(struct stream_reader *rd, void *buf, size_t len);
/*
 * The zero-copy form of stream_reader_read: where the next bytes at the
 * cursor are (at most max, in one piece; see stream_span for how long the
 * span stays valid), without moving the cursor. Returns the span's length
 * (> 0; *out filled), or what stream_reader_read would: 0 at the end,
 * the end error once (it counts as delivered when peek returns it), or
 * -EAGAIN. The caller sends the bytes and then calls stream_reader_advance
 * with what it took (at most the span's length; less is fine, the rest is
 * peeked again). The span may be shorter than what is available: a
 * caller wanting more peeks again after advancing. max 0 with bytes
 * available returns 0 as read(2) of 0 bytes does.
 */
ssize_t stream_reader_peek(struct stream_reader *rd, size_t max,
                           struct stream_span *out);
void stream_reader_advance(struct stream_reader *rd, size_t n);
/* Bytes available to this reader without blocking; true also at end. */
bool stream_reader_ready(const struct stream_reader *rd);
uint64_t stream_reader_offset(const struct stream_reader *rd);
/* Move the cursor, possibly past the end: the reader is then ready once
 * the history grows past off (a way to be told when it reaches a size). */
void stream_reader_seek(struct stream_reader *rd, uint64_t off);
/* Ask for one call of fn when the reader becomes ready (data, end, close).
 * A later call replaces the earlier; fn == NULL cancels. fn runs from a
 * deferred call, never inside stream_append. */
void stream_reader_notify(struct stream_reader *rd, reactor_fn *fn,
                          void *arg);
unsigned stream_readers(const struct stream *s);

/* ------------------------------------------------------------------ */
/* engine.c - the engine registry: every open command (SPEC §5.1) with */
/* its engine, noun, context and privilege, and the one parser of an   */
/* open command's words. Each engine is one file exporting a const ops */
/* table (tail.c, console.c, capture.c); the core knows none by name.  */
/* ------------------------------------------------------------------ */

/* Called exactly once when an asynchronous open completes: err 0 (the
 * source is live and feeding the stream) or -errno with a message. */
typedef void engine_opened_fn(struct stream *s, int err, const char *msg,
                              void *arg);

/* What an engine opens in: the caller hands it over as open's ctx. */
enum engine_ctx {
    ENGINE_CTX_NONE,    /* nothing (capture: the interface is named) */
    ENGINE_CTX_AGENT,   /* the VM's struct agent_client, up (wait for it) */
    ENGINE_CTX_CONSOLE, /* the VM's struct console */
};

/* Who may open it on a shared mount (the daemon's fs/access.c). */
enum engine_priv {
    ENGINE_PRIV_VM,      /* the VM's owners */
    ENGINE_PRIV_NET_RAW, /* CAP_NET_RAW, which is root's there */
};

/* What the word after the VM names. */
enum engine_what {
    ENGINE_WHAT_NONE,   /* nothing: `console VM`, `capture IFACE` */
    ENGINE_WHAT_PATH,   /* a path in the guest */
    ENGINE_WHAT_HANDLE, /* an agent file handle: "N" or "file#N" */
    ENGINE_WHAT_PROC,   /* a process: "N" or "proc#N" */
};

struct engine_ops;

/* One open command: a command table entry (its name is the stream's
 * kind by default; min counts the VM or interface and the PATH, HANDLE
 * or PROC) and what the engine needs. */
struct engine {
    struct command_entry c;
    const struct engine_ops *ops;
    const char *noun; /* "stream", "console", "capture": stream_config */
    enum engine_ctx ctx;
    enum engine_priv priv;
    enum engine_what what;
    unsigned which; /* ENGINE_WHAT_PROC: 1 stdout, 2 stderr */
};

extern const struct engine engine_table[]; /* in SPEC §5.1's order */
extern const size_t engine_count;

/* An open command, parsed: what an engine opens from. Words point into
 * the parsed command, which must outlive the request. */
struct engine_req {
    const struct engine *e;
    struct word target; /* the VM's name, or the interface (capture) */
    struct word what;   /* PATH, HANDLE or PROC as written; empty if none */
    /* HANDLE, PROC: the id as written, which the daemon replaces with
     * the agent's own id (its ids are the mount's, fs/procs.c). */
    uint64_t id;
    /* capture: the interface is a VM's NIC, so its kind is nic unless
     * kind= says otherwise (the daemon knows the VMs). */
    bool vm_nic;
    /* The options every open takes; the daemon's, no engine's. */
    bool has_site, has_test, keep;
    struct word site, test;
    /* The engine's own options (start=, kind=, ...), in order. */
    int nopts;
    struct word opts[COMMAND_MAX_WORDS];
};

struct engine_ops {
    const char *name; /* "tail", "console", "capture" */
    /* Check req's target and options: 0, or -EINVAL with a message in
     * err (COMMAND_ERR_LEN). No effect: the engine's option parser. */
    int (*check)(const struct engine_req *req, char *err);
    /*
     * Start a source feeding s for req (checked) in ctx (req->e->ctx).
     * Returns -errno with a message in err: -EINVAL only for what check
     * cannot know (a capture filter pcap refuses); otherwise 0, *state
     * set, and opened() is called exactly once later (or before open
     * returns). On success the engine calls stream_set_source() itself.
     */
    int (*open)(struct stream *s, void *ctx, const struct engine_req *req,
                engine_opened_fn *opened, void *arg, void **state, char *err);
    /* Stop the source and free state; no callback into s afterwards. */
    void (*stop)(void *state);
    /* Append "key: value\n" lines describing the source to buf. */
    void (*info)(void *state, char *buf, size_t len);
    /* The stream's kind when the engine decides it at open (capture:
     * bridge_capture or nic_capture); NULL: the open command's name. */
    const char *(*kind)(const void *state);
};

/* The open command named name (NULL: none). */
const struct engine *engine_find(struct word name);
const struct engine *engine_lookup(const char *name);
/* Parse an open command's words (the command name first): 0, or -EINVAL
 * with a message in err (COMMAND_ERR_LEN): an unknown command, a missing
 * argument (with the usage), a bad id, or what the engine's check says. */
int engine_parse(const struct command *cmd, struct engine_req *req, char *err);
/* The stream's detail of SPEC §5.1 (path, handle, proc#N, VM name or
 * interface) as snprintf would. */
size_t engine_detail(const struct engine_req *req, char *buf, size_t len);
/* req->e's engine opens s (see engine_ops.open). */
int engine_open(struct stream *s, void *ctx, const struct engine_req *req,
                engine_opened_fn *opened, void *arg, void **state, char *err);
/* engine_parse, then engine_open as written: ids are the agent's, no VM
 * is looked up (ctx is given). For tests, benchmarks and the fuzz
 * target; the daemon resolves the VM and ids in between. */
int engine_open_command(struct stream *s, void *ctx, const struct command *cmd,
                        engine_opened_fn *opened, void *arg, void **state,
                        char *err);
/* The stream's kind (SPEC §5.1) once open returned state (NULL before:
 * the command's name). */
const char *engine_kind(const struct engine *e, const void *state);
/* Append e's "key: value" lines about the source in state. */
void engine_info(const struct engine *e, void *state, char *buf, size_t len);

/* Attach the engine state to the stream: stream_close() (and the last
 * unref) calls ops->stop(state) once. */
void stream_set_source(struct stream *s, const struct engine_ops *ops,
                       void *state);

/* ------------------------------------------------------------------ */
/* console.c - a VM's console: the daemon's one connection to the VM's  */
/* QEMU chardev socket, held from `vm add` to `vm del`, reconnecting    */
/* when the VM comes back; everything read is recorded in the VM's      */
/* console history and fanned out to every console stream.             */
/* ------------------------------------------------------------------ */

struct console;

/* Start connecting to the chardev Unix socket at path (a missing socket
 * is retried with backoff, not an error). */
int console_new(struct reactor *r, const char *path, const char *spool_dir,
                struct console **out);
/* Ends every console stream of this console ("console EOF"). */
void console_free(struct console *c);
#define CONSOLE_WRITE_QUEUE (64 * 1024) /* bytes queued for the guest */
/* Send bytes to the guest console (console_write, writes to the
 * vms/<name>/console file). Never blocks: like write(2) it returns the
 * number of bytes queued, short when the bounded queue is nearly full,
 * -EAGAIN when it is full, -ENOTCONN while disconnected. */
int console_write(struct console *c, const void *buf, size_t len);
/* Bytes console_write would take now in full (0 while disconnected): an
 * all-or-nothing writer checks this first. */
size_t console_write_room(const struct console *c);
/* The whole console history across sessions (vms/<name>/console). */
uint64_t console_size(const struct console *c);
ssize_t console_pread(struct console *c, void *buf, size_t len, uint64_t off);
/* Append "console: PATH\nconsole_state: ...\n" lines. */
void console_info(const struct console *c, char *buf, size_t len);
unsigned console_streams(const struct console *c);

/* Engine of `console VM [start=beginning|end]`; ctx is the VM's struct
 * console. */
extern const struct engine_ops console_engine;

/* ------------------------------------------------------------------ */
/* capture.c - packet capture with libpcap in the daemon: the stream's  */
/* bytes are a classic pcap savefile, header first, one frame per       */
/* record. Live captures are counted per interface.                    */
/* ------------------------------------------------------------------ */

/* Engine of `capture IFACE [kind=bridge|nic] [snaplen=N] [filter=BPF]`;
 * no ctx. Without kind=: nic for a VM's NIC (req->vm_nic), else bridge
 * when the kernel's driver for IFACE is the bridge, else nic. */
extern const struct engine_ops capture_engine;
/* Live captures on iface (0 when none). */
unsigned capture_count(const char *iface);
/* Append one "capture: IFACE N" line per interface with live captures. */
void capture_status(char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* agent_client.c - one connection to one VM's agent: connect (and     */
/* reconnect with backoff), handshake, channels, flow control, and     */
/* the request/reply ops behind vms/<name>/ctl (SPEC §5.4).           */
/* ------------------------------------------------------------------ */

/* The host side of the agent protocol (docs/protocol.md). Callbacks run
 * from the reactor; a callback may cancel its own channel or others, but
 * must not free the client. */

enum agent_state {
    AGENT_CONNECTING,   /* connecting or handshaking */
    AGENT_UP,           /* handshake done: opens and requests accepted */
    AGENT_UNRESPONSIVE, /* up, but a request passed its deadline and
                           nothing has come since (still accepted) */
    AGENT_DOWN,         /* lost; a reconnect is scheduled */
    AGENT_DEAD,         /* lost for good (an fd client has no endpoint),
                           or stopped */
};

/* The default deadline of the handshake and of each request. */
#define AGENT_DEFAULT_TIMEOUT (30 * USEC_PER_SEC)

const char *agent_client_state_name(enum agent_state st);

struct agent_facts {
    unsigned version; /* protocol version in use */
    char os[PROTO_MAX_FACT];
    char kernel[PROTO_MAX_FACT];
    char agent_version[PROTO_MAX_FACT];
    /* Random, fixed for the agent process's life: the same instance
     * after a reconnect means the same agent, whose process and handle
     * ids are still valid (docs/protocol.md). Never 0. */
    uint64_t instance;
};

struct agent_client;
struct agent_chan; /* a stream channel or a pending request */

/* Connect to "unix:PATH" (a local agent, or QEMU's virtio-serial chardev
 * socket) or "vsock:CID:PORT"; reconnects whenever the connection is
 * lost. Returns -EINVAL for a malformed endpoint; a connect failure is
 * not an error here (the client retries). */
int agent_client_new(struct reactor *r, const char *endpoint,
                     struct agent_client **out);
/* Use an already-connected fd (now owned by the client); no reconnect. */
int agent_client_new_fd(struct reactor *r, int fd, struct agent_client **out);
/* Spawn `agent_path --stdio [--spool-dir DIR]` over a socketpair (the
 * built-in host VM), with the daemon's environment; respawns it with
 * backoff if it dies. spool_dir may be NULL. */
int agent_client_spawn(struct reactor *r, const char *agent_path,
                       const char *spool_dir, struct agent_client **out);
/* Orderly end: every channel ends (-ECONNABORTED), no reconnect; a
 * spawned agent is sent SIGTERM and end of file, so that it ends the
 * processes it started, and is waited for (3 s, then SIGKILL and 1 s
 * more). fn runs once, from the loop, when that is done: then free. */
typedef void agent_client_stopped_fn(struct agent_client *c, void *arg);
int agent_client_stop(struct agent_client *c, agent_client_stopped_fn *fn,
                      void *arg);
/* Every open channel's callback runs once more (end or reply with
 * -ECONNABORTED) before this returns. A spawned agent still running is
 * sent SIGKILL (its keeper ends its processes) and not waited for. */
void agent_client_free(struct agent_client *c);
/* Deadline of the handshake and of each request that the agent answers
 * on its own (not wait, stdin, fread, fwrite); 0 = none. Default
 * AGENT_DEFAULT_TIMEOUT. */
void agent_client_set_timeout(struct agent_client *c, uint64_t usec);

enum agent_state agent_client_state(const struct agent_client *c);
/* NULL until the first handshake; the last agent's facts afterwards. */
const struct agent_facts *agent_client_facts(const struct agent_client *c);
/* Why the connection is down ("" while it is up). */
const char *agent_client_error(const struct agent_client *c);
/* The last error of any kind ("" if none ever), kept across reconnects,
 * and when it happened. */
const char *agent_client_last_error(const struct agent_client *c, time_t *when);
/* Append "agent: ...", "agent_state: ...", "agent_os: ...", ... lines. */
void agent_client_info(const struct agent_client *c, char *buf, size_t len);
/* fn runs after every state change (tests, the FUSE layer's info). */
typedef void agent_client_state_fn(struct agent_client *c, void *arg);
void agent_client_on_state(struct agent_client *c, agent_client_state_fn *fn,
                           void *arg);
/* fn runs with a line worth logging: the connection lost and why
 * (protocol violations included), a spawned agent's exit status, the
 * agent becoming unresponsive or answering again. */
typedef void agent_client_event_fn(struct agent_client *c, const char *msg,
                                   void *arg);
void agent_client_on_event(struct agent_client *c, agent_client_event_fn *fn,
                           void *arg);

/* A stream open (PROTO_OPEN_TAIL / _FD / _PROC). */
struct agent_open {
    unsigned type;    /* PROTO_OPEN_TAIL, PROTO_OPEN_FD, PROTO_OPEN_PROC */
    const char *path; /* tail */
    unsigned start;   /* tail: enum proto_start */
    uint64_t offset;  /* tail: for START_OFFSET / START_BACK */
    unsigned flags;   /* tail: PROTO_TAIL_* */
    uint64_t id;      /* fd: the handle; proc: the proc id */
    unsigned which;   /* proc: PROTO_STDOUT / PROTO_STDERR */
};

/*
 * Stream callbacks. opened runs once: err 0 (then data/note any number of
 * times, then end exactly once) or -errno with the agent's message (the
 * channel is then gone). After end the channel is gone. None runs after
 * agent_client_cancel(). Flow control is automatic: credit is granted back
 * as data callbacks return.
 */
struct agent_stream_cbs {
    void (*opened)(void *arg, int err, const char *msg, uint64_t offset);
    void (*data)(void *arg, const void *buf, size_t len);
    void (*note)(void *arg, unsigned code, uint64_t value, const char *msg);
    /* err 0 with reason EOF/DELETED, or -errno with a message. */
    void (*end)(void *arg, int err, unsigned reason, const char *msg);
};

/* -ENOTCONN unless the agent is up; -EINVAL/-ENAMETOOLONG for a bad
 * request. On success *out (optional) is valid until opened fails, end
 * runs, or agent_client_cancel(). */
int agent_client_open(struct agent_client *c, const struct agent_open *req,
                      const struct agent_stream_cbs *cbs, void *arg,
                      struct agent_chan **out);
/* Close a stream or abandon a request: no callback for it runs after
 * this. NULL ok. */
void agent_client_cancel(struct agent_chan *ch);
uint32_t agent_client_chan_id(const struct agent_chan *ch);

/* wait: what became of one output (stdout, stderr) of the process. */
struct agent_output {
    uint64_t recorded;  /* bytes in the agent's spool when it answered */
    int lost;           /* 0, or -errno: recording stopped at `recorded` */
    uint64_t discarded; /* bytes read past that and thrown away, so far */
    /* Why ("stdout not recorded past N bytes: ..."), when lost. */
    char msg[PROTO_MAX_MSG];
};

/* The outcome of a request. err 0 or -errno with msg. */
struct agent_reply {
    int err;
    const char *msg;
    uint64_t value;   /* exec: proc id; fopen: handle; fseek: offset;
                         stdin, fwrite: bytes written; wait: code/signal */
    unsigned how;     /* wait: PROTO_EXITED / PROTO_SIGNALED */
    const void *data; /* fread: bytes (len 0 at end of file) */
    size_t len;
    uint64_t size; /* stat */
    unsigned mode;
    int64_t mtime_ns;
    /* wait: what became of stdout and stderr */
    struct agent_output out[2];
};

/* Runs exactly once per request, unless it was abandoned with
 * agent_client_cancel(); rp and its pointers live for the call only. */
typedef void agent_reply_fn(void *arg, const struct agent_reply *rp);

/* Requests. Each returns 0 (done runs later) or -errno at once:
 * -ENOTCONN unless up, -E2BIG when the request does not fit a frame,
 * -ENOBUFS when too much is queued for a slow agent. out is optional. */
int agent_client_exec(struct agent_client *c, const char *cwd,
                      char *const argv[], char *const env[],
                      agent_reply_fn *done, void *arg, struct agent_chan **out);
int agent_client_wait(struct agent_client *c, uint64_t proc,
                      agent_reply_fn *done, void *arg, struct agent_chan **out);
int agent_client_kill(struct agent_client *c, uint64_t proc, int sig,
                      agent_reply_fn *done, void *arg, struct agent_chan **out);
int agent_client_stdin(struct agent_client *c, uint64_t proc, const void *buf,
                       size_t len, agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_stdin_close(struct agent_client *c, uint64_t proc,
                             agent_reply_fn *done, void *arg,
                             struct agent_chan **out);
/* flags: PROTO_O_*; mode 0 = 0644 for a created file. */
int agent_client_fopen(struct agent_client *c, const char *path, unsigned flags,
                       unsigned mode, agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_fread(struct agent_client *c, uint64_t handle, size_t n,
                       agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_fwrite(struct agent_client *c, uint64_t handle,
                        const void *buf, size_t len, agent_reply_fn *done,
                        void *arg, struct agent_chan **out);
int agent_client_fseek(struct agent_client *c, uint64_t handle, int64_t off,
                       unsigned whence, agent_reply_fn *done, void *arg,
                       struct agent_chan **out);
int agent_client_fclose(struct agent_client *c, uint64_t handle,
                        agent_reply_fn *done, void *arg,
                        struct agent_chan **out);
int agent_client_stat(struct agent_client *c, const char *path,
                      agent_reply_fn *done, void *arg, struct agent_chan **out);

/* ------------------------------------------------------------------ */
/* tail.c - the tail engine: tail_file, file_tail_stream, fd_stream,   */
/* proc_stdout_stream and proc_stderr_stream streams, fed by a VM's    */
/* agent client (the engine ctx).                                      */
/* ------------------------------------------------------------------ */

/*
 * Opens from engine.c's request: the path (ENGINE_WHAT_PATH) or the
 * agent's id of a handle or process, and the options
 *   start=end|beginning|start|N|-N    (tail_file, file_tail_stream)
 *   follow=name|descriptor            (same; default name, like tail -F)
 */
extern const struct engine_ops tail_engine;

#endif
