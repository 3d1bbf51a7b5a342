/*
 * bench/expect - cost of `expect` on a long stream, beside grep.
 *
 * A pattern appears only after SIZE bytes (default 256 MiB) delivered in
 * 4 KiB frames. We time, in the same run and alternating:
 *
 *   stream:  stream_append() of every frame into a live stream on which an
 *            `expect` op is waiting, the loop turning every 64 frames as an
 *            engine's fd callbacks would, until the op is answered;
 *   grep:    `grep -F -m1 PATTERN FILE` over the same bytes in a file that
 *            is already in the page cache.
 *
 * The stream's time includes writing its history to the spool; grep's does
 * not include writing its file. Prints each run, the medians, their ratio,
 * and the process's peak RSS (the history lives in the spool, not memory).
 *
 * usage: bench_expect [-s MiB] [-n runs] [-d spooldir]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "streams.h"

#define FRAME 4096
static const char pattern[] = "provium-bench-needle-7f3a";

static void
fill(char *buf, size_t len, uint64_t seed)
{
    /* Log-like lines of printable text that never contain the pattern. */
    for (size_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[i] = (i % 80 == 79) ? '\n' : (char)('a' + (seed >> 59));
    }
}

static bool done;

static void
on_done(struct stream *s, struct reply *rp, void *arg)
{
    if (!rp || reply_status(rp) != REPLY_OK) {
        fprintf(stderr, "bench_expect: expect did not succeed\n");
        exit(1);
    }
    reply_free(rp);
    done = true;
}

static double
run_stream(struct reactor *r, const char *dir, uint64_t size,
           const char *frames, size_t nvariants)
{
    struct stream_config cfg = {.spool_dir = dir, .noun = "stream"};
    struct stream_op_spec spec = {.kind = STREAM_OP_EXPECT,
                                  .timeout = 600 * USEC_PER_SEC,
                                  .pattern = pattern,
                                  .pattern_len = sizeof pattern - 1};
    struct stream *s;
    char last[FRAME];
    uint64_t nframes = size / FRAME;

    if (stream_new(r, &cfg, &s) < 0 ||
        stream_op_submit(s, &spec, on_done, NULL, NULL) < 0) {
        fprintf(stderr, "bench_expect: cannot set up stream\n");
        exit(1);
    }
    done = false;
    uint64_t t0 = clock_now();
    for (uint64_t k = 0; k + 1 < nframes; k++) {
        if (stream_append(s, frames + (k % nvariants) * FRAME, FRAME) < 0) {
            fprintf(stderr, "bench_expect: append failed\n");
            exit(1);
        }
        if (k % 64 == 63)
            reactor_run_once(r, 0);
    }
    memcpy(last, frames, FRAME);
    memcpy(last + FRAME - sizeof pattern, pattern, sizeof pattern - 1);
    last[FRAME - 1] = '\n';
    stream_append(s, last, FRAME);
    while (!done)
        reactor_run_once(r, UINT64_MAX);
    double secs = (double)(clock_now() - t0) / 1e6;
    stream_unref(s);
    return secs;
}

static void
write_file(const char *path, uint64_t size, const char *frames,
           size_t nvariants)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char last[FRAME];
    uint64_t nframes = size / FRAME;

    if (fd < 0) {
        perror(path);
        exit(1);
    }
    for (uint64_t k = 0; k + 1 < nframes; k++)
        if (write(fd, frames + (k % nvariants) * FRAME, FRAME) != FRAME)
            exit(1);
    memcpy(last, frames, FRAME);
    memcpy(last + FRAME - sizeof pattern, pattern, sizeof pattern - 1);
    last[FRAME - 1] = '\n';
    if (write(fd, last, FRAME) != FRAME)
        exit(1);
    close(fd);
}

static double
run_grep(const char *path)
{
    uint64_t t0 = clock_now();
    pid_t pid = fork();
    int st;

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("grep", "grep", "-F", "-m1", pattern, path, (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_expect: grep failed\n");
        exit(1);
    }
    return (double)(clock_now() - t0) / 1e6;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    uint64_t mib = 256;
    int runs = 5, c;
    const char *dir = "/tmp";

    while ((c = getopt(argc, argv, "s:n:d:")) != -1) {
        switch (c) {
        case 's': mib = strtoull(optarg, NULL, 10); break;
        case 'n': runs = atoi(optarg); break;
        case 'd': dir = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-s MiB] [-n runs] [-d dir]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 50 || mib < 1)
        return 2;

    /* 64 distinct frames, reused round-robin: the generator's cost stays
     * out of the measurement and the memory footprint stays small. */
    enum { VARIANTS = 64 };
    char *frames = malloc((size_t)VARIANTS * FRAME);
    for (int v = 0; v < VARIANTS; v++)
        fill(frames + (size_t)v * FRAME, FRAME, (uint64_t)v + 1);

    char path[4096];
    snprintf(path, sizeof path, "%s/bench-expect-grep.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    uint64_t size = mib << 20;
    write_file(path, size, frames, VARIANTS);
    run_grep(path); /* warm the page cache */

    struct reactor *r;
    if (reactor_new(&r) < 0)
        return 1;
    double ts[50], tg[50];
    printf("run  stream_s  grep_s  ratio\n");
    for (int i = 0; i < runs; i++) {
        ts[i] = run_stream(r, dir, size, frames, VARIANTS);
        tg[i] = run_grep(path);
        printf("%3d  %8.3f  %6.3f  %5.2f\n", i + 1, ts[i], tg[i],
               ts[i] / tg[i]);
    }
    unlink(path);
    qsort(ts, (size_t)runs, sizeof ts[0], cmp);
    qsort(tg, (size_t)runs, sizeof tg[0], cmp);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("size %llu MiB in %d-byte frames, %d runs\n",
           (unsigned long long)mib, FRAME, runs);
    printf("median stream %.3f s (%.0f MB/s), grep %.3f s (%.0f MB/s), "
           "ratio %.2f\n",
           ts[runs / 2], (double)size / 1e6 / ts[runs / 2], tg[runs / 2],
           (double)size / 1e6 / tg[runs / 2], ts[runs / 2] / tg[runs / 2]);
    printf("peak RSS %ld KiB\n", ru.ru_maxrss);
    reactor_free(r);
    free(frames);
    return 0;
}
