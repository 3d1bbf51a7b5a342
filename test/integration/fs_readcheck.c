/*
 * fs_readcheck.c - a property test of the read path of proviumfs (issue
 * 12): while frames arrive, readers of `data` and `log` with random read
 * sizes (1 byte to 2 MiB) and random offsets must get exactly the bytes
 * appended, in order, nothing missing, nothing stale.
 *
 *   fs_readcheck STREAMDIR SOURCE SEED MIB DATA_READERS LOG_READERS
 *
 * SOURCE is the file the stream tails (start=beginning, empty at first).
 * A writer thread appends MIB MiB to it in writes of random sizes (1 byte
 * to 256 KiB) with random pauses, then deletes it (the stream ends). The
 * bytes are a function of their offset (gen(SEED, i)), so every reader
 * checks every byte it gets without sharing anything with the writer:
 *
 *  - DATA_READERS threads read `data` from its start with random sizes
 *    until end of file; each must end with exactly MIB MiB, all checked;
 *  - LOG_READERS threads pread `log` at random offsets (some past the
 *    end) with random sizes: a read below the size fstat gave just before
 *    must not be short of it, every byte must be the one appended there
 *    (a stale page of the kernel's cache shows as zeros or old bytes);
 *  - one thread follows `log` as tail -f does: read to end of file, fstat,
 *    read on as the size grows; it must read MIB MiB, all checked.
 *
 * Read sizes are drawn log-uniformly from 1 byte to 2 MiB, so every
 * magnitude occurs (and so do reads larger than a FUSE request, which the
 * kernel splits). Output: one line per failure (the first few) and a
 * summary; exit 0 when everything held, 1 otherwise, 2 on bad usage.
 * Every wait is bounded (60 s for the whole run).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_READ (2u << 20)
#define MAX_WRITE (256u << 10)
#define DEADLINE_MS 60000
#define MAX_READERS 256

static const char *dir, *source;
static uint64_t seed, total;
static atomic_int failures;
static atomic_bool writer_done;
static long start_ms;

static long
ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
late(void)
{
    return ms_now() - start_ms > DEADLINE_MS;
}

static uint64_t
mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The byte appended at offset i. */
static inline unsigned char
gen(uint64_t i)
{
    return (unsigned char)(mix(seed ^ (i >> 3)) >> ((i & 7) * 8));
}

static void
fill(unsigned char *p, uint64_t off, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p[k] = gen(off + k);
}

/* A thread's random numbers. */
static uint64_t
rnd(uint64_t *state)
{
    return mix((*state)++);
}

/* 1 .. max, log-uniform: every magnitude as likely. */
static size_t
rnd_size(uint64_t *state, size_t max)
{
    unsigned bits = (unsigned)(rnd(state) % 22); /* 2^0 .. 2^21 */
    size_t hi = (size_t)1 << bits, n = 1 + rnd(state) % hi;

    return n > max ? max : n;
}

static void __attribute__((format(printf, 1, 2)))
failure(const char *fmt, ...)
{
    va_list ap;

    if (atomic_fetch_add(&failures, 1) >= 10)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Are buf's n bytes the ones at off? Reports the first wrong one. */
static bool
check(const char *who, const unsigned char *buf, uint64_t off, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (buf[k] != gen(off + k)) {
            failure("%s: byte %" PRIu64 " is 0x%02x, want 0x%02x (in a read "
                    "of %zu at %" PRIu64 ")",
                    who, off + k, buf[k], gen(off + k), n, off);
            return false;
        }
    }
    return true;
}

static void *
writer(void *arg)
{
    uint64_t st = seed ^ 0x5752495445ULL, off = 0;
    unsigned char *buf = malloc(MAX_WRITE);
    int fd = open(source, O_WRONLY | O_APPEND);

    if (fd < 0 || !buf) {
        failure("writer: open %s: %s", source, strerror(errno));
        goto out;
    }
    while (off < total && !late()) {
        size_t n = rnd_size(&st, MAX_WRITE);
        if (n > total - off)
            n = (size_t)(total - off);
        fill(buf, off, n);
        if (write(fd, buf, n) != (ssize_t)n) {
            failure("writer: write: %s", strerror(errno));
            break;
        }
        off += n;
        if (rnd(&st) % 8 == 0)
            usleep((useconds_t)(rnd(&st) % 2000)); /* let readers catch up */
    }
    close(fd);
    /* Deleted: the agent ends the stream once it has sent every byte. */
    unlink(source);
out:
    free(buf);
    atomic_store(&writer_done, true);
    return NULL;
}

static void *
data_reader(void *arg)
{
    uint64_t st = seed ^ (uint64_t)(uintptr_t)arg << 32, off = 0;
    unsigned char *buf = malloc(MAX_READ);
    char path[4096], who[32];
    int fd;

    snprintf(who, sizeof(who), "data reader %d", (int)(uintptr_t)arg);
    snprintf(path, sizeof(path), "%s/data", dir);
    if (!buf || (fd = open(path, O_RDONLY)) < 0) {
        failure("%s: open: %s", who, strerror(errno));
        free(buf);
        return NULL;
    }
    for (;;) {
        size_t want = rnd_size(&st, MAX_READ);
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            failure("%s: read at %" PRIu64 ": %s", who, off, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if ((size_t)n > want)
            failure("%s: %zd bytes for a read of %zu", who, n, want);
        if (!check(who, buf, off, (size_t)n))
            break;
        off += (uint64_t)n;
        if (late()) {
            failure("%s: still reading after %d s", who, DEADLINE_MS / 1000);
            break;
        }
    }
    if (off != total)
        failure("%s: %" PRIu64 " bytes then end of file, want %" PRIu64, who,
                off, total);
    close(fd);
    free(buf);
    return NULL;
}

static void *
log_reader(void *arg)
{
    uint64_t st = seed ^ 0x4c4f47ULL ^ (uint64_t)(uintptr_t)arg << 40;
    unsigned char *buf = malloc(MAX_READ);
    char path[4096], who[32];
    struct stat sb;
    int fd;
    bool last = false;

    snprintf(who, sizeof(who), "log reader %d", (int)(uintptr_t)arg);
    snprintf(path, sizeof(path), "%s/log", dir);
    if (!buf || (fd = open(path, O_RDONLY)) < 0) {
        failure("%s: open: %s", who, strerror(errno));
        free(buf);
        return NULL;
    }
    while (!late()) {
        if (fstat(fd, &sb) < 0) {
            failure("%s: fstat: %s", who, strerror(errno));
            break;
        }
        uint64_t size = (uint64_t)sb.st_size;
        if (size > total)
            failure("%s: st_size %" PRIu64 " past everything written (%" PRIu64
                    ")",
                    who, size, total);
        /* Mostly inside, sometimes at or past the end. */
        uint64_t off = rnd(&st) % (size + size / 8 + 2);
        size_t want = rnd_size(&st, MAX_READ);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0) {
            failure("%s: pread %zu at %" PRIu64 ": %s", who, want, off,
                    strerror(errno));
            break;
        }
        if (off < size && (uint64_t)n < (want < size - off ? want : size - off))
            failure("%s: pread %zu at %" PRIu64 " got %zd, st_size was %" PRIu64,
                    who, want, off, n, size);
        if (off >= total && n != 0)
            failure("%s: %zd bytes at %" PRIu64 ", past the end", who, n, off);
        if (!check(who, buf, off, (size_t)n))
            break;
        if (last)
            break;
        /* One more round once everything is in: the whole log, settled. */
        last = atomic_load(&writer_done) && size == total;
    }
    if (!last && !atomic_load(&failures))
        failure("%s: the log's st_size never reached %" PRIu64, who, total);
    close(fd);
    free(buf);
    return NULL;
}

/* tail -f: read to the end, fstat, read on as the size grows. */
static void *
log_follower(void *arg)
{
    uint64_t st = seed ^ 0x5441494cULL, off = 0;
    unsigned char *buf = malloc(MAX_READ);
    char path[4096];
    struct stat sb;
    int fd;

    snprintf(path, sizeof(path), "%s/log", dir);
    if (!buf || (fd = open(path, O_RDONLY)) < 0) {
        failure("log follower: open: %s", strerror(errno));
        free(buf);
        return NULL;
    }
    while (off < total && !late()) {
        ssize_t n = read(fd, buf, rnd_size(&st, MAX_READ));
        if (n < 0) {
            failure("log follower: read at %" PRIu64 ": %s", off,
                    strerror(errno));
            break;
        }
        if (n > 0) {
            if (!check("log follower", buf, off, (size_t)n))
                break;
            off += (uint64_t)n;
            continue;
        }
        /* End of file: wait for st_size to pass it, as tail -f polls. */
        if (fstat(fd, &sb) < 0) {
            failure("log follower: fstat: %s", strerror(errno));
            break;
        }
        if ((uint64_t)sb.st_size < off)
            failure("log follower: st_size %" PRIu64 " below what was read (%" PRIu64
                    ")",
                    (uint64_t)sb.st_size, off);
        if ((uint64_t)sb.st_size <= off)
            usleep(1000);
    }
    if (off != total)
        failure("log follower: read %" PRIu64 " bytes, want %" PRIu64, off,
                total);
    close(fd);
    free(buf);
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t w, f, rd[MAX_READERS], lg[MAX_READERS];
    int nd, nl;

    if (argc != 7) {
        fprintf(stderr, "usage: fs_readcheck STREAMDIR SOURCE SEED MIB "
                        "DATA_READERS LOG_READERS\n");
        return 2;
    }
    dir = argv[1];
    source = argv[2];
    seed = strtoull(argv[3], NULL, 0);
    total = strtoull(argv[4], NULL, 0) << 20;
    nd = atoi(argv[5]);
    nl = atoi(argv[6]);
    if (nd < 0 || nl < 0 || nd > MAX_READERS || nl > MAX_READERS || !total)
        return 2;
    start_ms = ms_now();
    /* Readers first: the data readers follow the stream live. */
    for (int i = 0; i < nd; i++)
        pthread_create(&rd[i], NULL, data_reader, (void *)(uintptr_t)i);
    for (int i = 0; i < nl; i++)
        pthread_create(&lg[i], NULL, log_reader, (void *)(uintptr_t)i);
    pthread_create(&f, NULL, log_follower, NULL);
    pthread_create(&w, NULL, writer, NULL);
    pthread_join(w, NULL);
    for (int i = 0; i < nd; i++)
        pthread_join(rd[i], NULL);
    for (int i = 0; i < nl; i++)
        pthread_join(lg[i], NULL);
    pthread_join(f, NULL);
    printf("%s: %" PRIu64 " MiB, %d data readers, %d log readers, 1 "
           "follower: %d failure(s) in %ld ms\n",
           failures ? "FAIL" : "ok", total >> 20, nd, nl,
           atomic_load(&failures), ms_now() - start_ms);
    return failures ? 1 : 0;
}
