/*
 * bench/match - the matcher (streams/pattern.c, scan.c) against its
 * baselines, each in the same run, alternating, medians of N runs.
 *
 * The stream is SIZE MiB (default 256) of log-like lowercase lines in
 * 4 KiB frames; the pattern occurs only in the last frame. Every scanner
 * case is measured twice:
 *
 *   mem    frames fed to scan_feed() straight from memory;
 *   spool  frames appended to a spool (streams/spool.c) as an engine
 *          would, the scanner reading the new history back in 64 KiB
 *          chunks every 64 frames, as stream.c's ops do, then scan_idle().
 *
 *   op     the real op (phase B): a stream (streams/stream.c) with a
 *          read_until op parsed from its command line waiting on it,
 *          every frame appended with stream_append(), the loop turning
 *          every 64 frames as an engine's fd callbacks would, as
 *          bench_expect does: the spool write, the scanner fed at append
 *          time, the reply; beside it, "writes": the spool's appends
 *          alone (no matching, no reading back), the op's floor.
 *
 * Cases:
 *   a  the regex `READY [0-9]+ ok`, with and without start tracking,
 *      beside `grep -E -m1` over the same bytes in a file;
 *   b  100 alternatives (50 literals, 50 regexes) beside
 *      `grep -E -m1 -f PATTERNS`;
 *   c  one literal: today's matcher (match.c, memmem + KMP) beside the
 *      scanner on each engine and on the one it picks;
 *   s  what start-of-match tracking costs: regexes of various shapes
 *      with and without it (mem only).
 *
 * grep's file is written once and is in the page cache; its time does not
 * include writing it, the spool cases' time includes writing the spool.
 * At the end: the process's peak RSS.
 *
 * usage: bench_match [-s MiB] [-n runs] [-d dir] [-c abcs]
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
#define VARIANTS 64
#define CHUNK (64 * 1024)
#define MAXRUNS 50

static char *frames;     /* VARIANTS frames of filler */
static char last[FRAME]; /* the last frame: filler, then the needle */
static uint64_t size;
static const char *dir = "/tmp";

static void
fill(char *buf, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[i] = (i % 80 == 79) ? '\n' : (char)('a' + (seed >> 59));
    }
}

static const char *
frame(uint64_t k)
{
    return k + 1 == size / FRAME ? last : frames + (k % VARIANTS) * FRAME;
}

static void
set_needle(const char *needle)
{
    size_t n = strlen(needle);
    memcpy(last, frames, FRAME);
    memcpy(last + FRAME - n - 1, needle, n);
    last[FRAME - 1] = '\n';
}

static void
die(const char *what)
{
    fprintf(stderr, "bench_match: %s\n", what);
    exit(1);
}

/* ---- the contenders ----------------------------------------------- */

/* Today's matcher (one literal), a scanner, or neither (the floor: what
 * the spool costs without any matching). */
struct job {
    const char *name;
    struct pattern_set *ps; /* NULL: today's matcher on lit */
    const char *lit;        /* NULL too: the floor */
};

struct runner {
    struct matcher *m;
    struct scan *sc;
};

static void
runner_start(struct runner *r, const struct job *j)
{
    memset(r, 0, sizeof *r);
    if (!j->ps && !j->lit)
        return;
    if (j->ps ? scan_new(j->ps, 0, &r->sc)
              : matcher_new(j->lit, strlen(j->lit), &r->m))
        die("cannot start a matcher");
}

/* 1 when matched. */
static int
runner_feed(struct runner *r, const void *buf, size_t len)
{
    struct scan_match m;
    size_t end;

    if (r->m)
        return matcher_feed(r->m, buf, len, &end);
    if (!r->sc)
        return 0;
    int rc = scan_feed(r->sc, buf, len, &m);
    if (rc < 0)
        die("scan_feed failed");
    return rc;
}

static int
runner_idle(struct runner *r)
{
    struct scan_match m;
    return r->sc ? scan_idle(r->sc, &m) : 0;
}

static void
runner_stop(struct runner *r)
{
    matcher_free(r->m);
    scan_free(r->sc);
}

static double
run_mem(const struct job *j)
{
    struct runner r;
    int hit = 0;

    runner_start(&r, j);
    uint64_t t0 = clock_now();
    for (uint64_t k = 0; k < size / FRAME && !hit; k++)
        hit = runner_feed(&r, frame(k), FRAME);
    if (!hit)
        hit = runner_idle(&r);
    double secs = (double)(clock_now() - t0) / 1e6;
    if (!hit)
        die("no match (mem)");
    runner_stop(&r);
    return secs;
}

static double
run_spool(const struct job *j)
{
    static char chunk[CHUNK];
    struct spool *sp;
    struct runner r;
    uint64_t scanned = 0, nframes = size / FRAME;
    int hit = 0;

    if (spool_new(dir, &sp) < 0)
        die("cannot create a spool");
    runner_start(&r, j);
    uint64_t t0 = clock_now();
    for (uint64_t k = 0; k < nframes && !hit; k++) {
        if (spool_append(sp, frame(k), FRAME) < 0)
            die("spool_append failed");
        if (k % 64 != 63 && k + 1 != nframes)
            continue;
        /* What an op does when woken: read the new history, scan it. */
        while (scanned < spool_size(sp) && !hit) {
            ssize_t n = spool_pread(sp, chunk, CHUNK, scanned);
            if (n <= 0)
                die("spool_pread failed");
            hit = runner_feed(&r, chunk, (size_t)n);
            scanned += (uint64_t)n;
        }
        if (!hit)
            hit = runner_idle(&r);
    }
    double secs = (double)(clock_now() - t0) / 1e6;
    if (!hit && (r.m || r.sc))
        die("no match (spool)");
    runner_stop(&r);
    spool_free(sp);
    return secs;
}

/* ---- the real op -------------------------------------------------- */

static bool op_done;

static void
on_op_done(struct stream *s, struct reply *rp, void *arg)
{
    if (!rp || reply_status(rp) != REPLY_OK)
        die("the op did not match");
    reply_free(rp);
    op_done = true;
}

/* A stream with the op of `line` waiting, fed every frame: seconds from
 * the first append to the answer. */
static double
run_op(struct reactor *r, const char *line)
{
    struct stream_config cfg = {.spool_dir = dir, .noun = "stream"};
    static struct stream_op_spec spec;
    char err[COMMAND_ERR_LEN];
    struct command *cmd = malloc(sizeof *cmd);
    struct stream *s;
    uint64_t nframes = size / FRAME;

    if (!cmd || command_parse(cmd, line, strlen(line), err) < 0 ||
        stream_op_parse(cmd, &spec, err) < 0) {
        fprintf(stderr, "bench_match: %s: %s\n", line, err);
        exit(1);
    }
    if (stream_new(r, &cfg, &s) < 0 ||
        stream_op_submit(s, &spec, on_op_done, NULL, NULL) < 0)
        die("cannot set up the stream");
    command_free(cmd);
    free(cmd);
    op_done = false;
    /* The set is in the cache after the first run; the first waits for
     * its compile here, outside the time. */
    while (pattern_jobs())
        reactor_run_once(r, clock_now() + 1000);
    reactor_run_once(r, 0);
    uint64_t t0 = clock_now();
    for (uint64_t k = 0; k < nframes; k++) {
        if (stream_append(s, frame(k), FRAME) < 0)
            die("append failed");
        if (k % 64 == 63)
            reactor_run_once(r, 0);
    }
    while (!op_done)
        reactor_run_once(r, UINT64_MAX);
    double secs = (double)(clock_now() - t0) / 1e6;
    stream_unref(s);
    reactor_run_once(r, 0);
    return secs;
}

static struct reactor *reactor;

/* The spool's writes alone, frame by frame: what the op path cannot
 * avoid until spool writes are coalesced (issue 12). */
static double
run_writes(void)
{
    struct spool *sp;
    uint64_t nframes = size / FRAME;

    if (spool_new(dir, &sp) < 0)
        die("cannot create a spool");
    uint64_t t0 = clock_now();
    for (uint64_t k = 0; k < nframes; k++)
        if (spool_append(sp, frame(k), FRAME) < 0)
            die("spool_append failed");
    double secs = (double)(clock_now() - t0) / 1e6;
    spool_free(sp);
    return secs;
}

/* ---- grep --------------------------------------------------------- */

static void
write_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0)
        die("cannot write the grep file");
    for (uint64_t k = 0; k < size / FRAME; k++)
        if (write(fd, frame(k), FRAME) != FRAME)
            die("short write");
    close(fd);
}

static double
run_grep(char *const argv[])
{
    uint64_t t0 = clock_now();
    pid_t pid = fork();
    int st;

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execvp("grep", argv);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("grep found nothing");
    return (double)(clock_now() - t0) / 1e6;
}

/* ---- reporting ---------------------------------------------------- */

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    double s[MAXRUNS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp);
    return s[n / 2];
}

struct column {
    const char *name;
    double t[MAXRUNS];
};

static void
report(const char *title, struct column *c, int ncol, int runs, int base)
{
    printf("\n%s (%llu MiB, %d-byte frames, %d runs)\n", title,
           (unsigned long long)(size >> 20), FRAME, runs);
    printf("run  ");
    for (int k = 0; k < ncol; k++)
        printf(" %12s", c[k].name);
    printf("\n");
    for (int i = 0; i < runs; i++) {
        printf("%4d ", i + 1);
        for (int k = 0; k < ncol; k++)
            printf(" %12.3f", c[k].t[i]);
        printf("\n");
    }
    printf("med  ");
    for (int k = 0; k < ncol; k++)
        printf(" %12.3f", median(c[k].t, runs));
    printf("\nMB/s ");
    for (int k = 0; k < ncol; k++)
        printf(" %12.0f", (double)size / 1e6 / median(c[k].t, runs));
    printf("\nratio");
    for (int k = 0; k < ncol; k++)
        printf(" %12.2f", median(c[k].t, runs) / median(c[base].t, runs));
    printf("   (median / median of %s)\n", c[base].name);
}

static struct pattern_set *
compile(const struct pattern *p, unsigned n, unsigned opts)
{
    struct pattern_set *ps;
    char err[PATTERN_ERR_LEN];
    uint64_t t0 = clock_now();

    if (pattern_set_get(p, n, opts, &ps, err) < 0) {
        fprintf(stderr, "bench_match: %s\n", err);
        exit(1);
    }
    printf("compiled %u pattern(s) in %.1f ms: %zu bytes of stream state\n", n,
           (double)(clock_now() - t0) / 1e3, pattern_set_info(ps)->state);
    return ps;
}

/* ---- the cases ---------------------------------------------------- */

static void
case_a(int runs, char *path)
{
    struct pattern p = {PATTERN_REGEX, 0, "READY [0-9]+ ok", 15};
    struct job span = {"", compile(&p, 1, 0), NULL};
    struct job nospan = {"", compile(&p, 1, PATTERN_SET_NO_SPAN), NULL};
    char re[] = "READY [0-9]+ ok";
    char *argv[] = {"grep", "-E", "-m1", re, path, NULL};
    struct job floor = {"", NULL, NULL};
    struct column c[] = {{.name = "grep -E"},     {.name = "op"},
                         {.name = "mem"},         {.name = "mem nospan"},
                         {.name = "spool"},       {.name = "spool nosp"},
                         {.name = "spool floor"}, {.name = "writes"}};
    const char *line = "read_until -re \"READY [0-9]+ ok\" 1h";

    set_needle("READY 12345 ok");
    write_file(path);
    run_grep(argv);
    printf("op: %s\n", line);
    for (int i = 0; i < runs; i++) {
        c[0].t[i] = run_grep(argv);
        c[1].t[i] = run_op(reactor, line);
        c[2].t[i] = run_mem(&span);
        c[3].t[i] = run_mem(&nospan);
        c[4].t[i] = run_spool(&span);
        c[5].t[i] = run_spool(&nospan);
        c[6].t[i] = run_spool(&floor);
        c[7].t[i] = run_writes();
    }
    report("(a) regex `READY [0-9]+ ok`", c, 8, runs, 0);
    pattern_set_put(span.ps);
    pattern_set_put(nospan.ps);
}

static void
case_b(int runs, char *path)
{
    static char src[100][64];
    struct pattern p[100];
    char ppath[4200];
    FILE *f;

    snprintf(ppath, sizeof ppath, "%s.patterns", path);
    if (!(f = fopen(ppath, "w")))
        die("cannot write the patterns file");
    for (int i = 0; i < 100; i++) {
        if (i < 50)
            snprintf(src[i], sizeof src[i], "needle-%02d-literal-text", i);
        else if (i % 2)
            snprintf(src[i], sizeof src[i],
                     "ERROR %02d: [0-9]+ code=[a-f0-9]{4}", i);
        else
            snprintf(src[i], sizeof src[i],
                     "(fail|panic)ed at [a-z_]+\\.c:[0-9]+ \\(%02d\\)", i);
        p[i] = (struct pattern){i < 50 ? PATTERN_LITERAL : PATTERN_REGEX, 0,
                                src[i], strlen(src[i])};
        fprintf(f, "%s\n", src[i]);
    }
    fclose(f);
    struct job all = {"", compile(p, 100, 0), NULL};
    struct job nospan = {"", compile(p, 100, PATTERN_SET_NO_SPAN), NULL};
    char *argv[] = {"grep", "-E", "-m1", "-f", ppath, path, NULL};
    struct job floor = {"", NULL, NULL};
    struct column c[] = {{.name = "grep -E -f"},  {.name = "op"},
                         {.name = "mem"},         {.name = "mem nospan"},
                         {.name = "spool"},       {.name = "spool nosp"},
                         {.name = "spool floor"}, {.name = "writes"}};
    /* The same list as the op's command line (-ex / -re words). */
    static char line[16384];
    size_t n = (size_t)snprintf(line, sizeof line, "read_until");
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(line + n, sizeof line - n, " %s \"",
                              i < 50 ? "-ex" : "-re");
        for (const char *q = src[i]; *q; q++)
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%c",
                                  *q == '\\' || *q == '"' ? "\\" : "", *q);
        n += (size_t)snprintf(line + n, sizeof line - n, "\"");
    }
    snprintf(line + n, sizeof line - n, " 1h");

    set_needle("ERROR 75: 31337 code=beef");
    write_file(path);
    run_grep(argv);
    for (int i = 0; i < runs; i++) {
        c[0].t[i] = run_grep(argv);
        c[1].t[i] = run_op(reactor, line);
        c[2].t[i] = run_mem(&all);
        c[3].t[i] = run_mem(&nospan);
        c[4].t[i] = run_spool(&all);
        c[5].t[i] = run_spool(&nospan);
        c[6].t[i] = run_spool(&floor);
        c[7].t[i] = run_writes();
    }
    report("(b) 100 alternatives, 50 literals + 50 regexes", c, 8, runs, 0);
    unlink(ppath);
    pattern_set_put(all.ps);
    pattern_set_put(nospan.ps);
}

static void
case_c(int runs, char *path)
{
    char needle[] = "provium-bench-needle-7f3a";
    struct pattern p = {PATTERN_LITERAL, 0, needle, strlen(needle)};
    struct job today = {"", NULL, needle};
    struct job hs = {"", compile(&p, 1, PATTERN_SET_ENGINE_HS), NULL};
    struct job mm = {"", compile(&p, 1, PATTERN_SET_ENGINE_MEMMEM), NULL};
    struct job dflt = {"", compile(&p, 1, 0), NULL};
    char *argv[] = {"grep", "-F", "-m1", needle, path, NULL};
    struct job floor = {"", NULL, NULL};
    struct column c[] = {{.name = "today mem"},   {.name = "hs mem"},
                         {.name = "memmem mem"},  {.name = "scan mem"},
                         {.name = "today spool"}, {.name = "scan spool"},
                         {.name = "spool floor"}, {.name = "grep -F"},
                         {.name = "op"},          {.name = "writes"}};
    char line[128];
    snprintf(line, sizeof line, "read_until %s 1h", needle);

    printf("single literal: the scanner runs on %s\n",
           pattern_set_info(dflt.ps)->memmem ? "memmem + KMP" : "Hyperscan");
    set_needle(needle);
    write_file(path);
    run_grep(argv);
    for (int i = 0; i < runs; i++) {
        c[0].t[i] = run_mem(&today);
        c[1].t[i] = run_mem(&hs);
        c[2].t[i] = run_mem(&mm);
        c[3].t[i] = run_mem(&dflt);
        c[4].t[i] = run_spool(&today);
        c[5].t[i] = run_spool(&dflt);
        c[6].t[i] = run_spool(&floor);
        c[7].t[i] = run_grep(argv);
        c[8].t[i] = run_op(reactor, line);
        c[9].t[i] = run_writes();
    }
    report("(c) one literal", c, 10, runs, 0);
    pattern_set_put(hs.ps);
    pattern_set_put(mm.ps);
    pattern_set_put(dflt.ps);
}

static void
case_s(int runs)
{
    static const char *const res[] = {
            "READY [0-9]+ ok",
            "error [0-9]+.*failed",
            "(?s)XQ.*YQ",
            "[a-z]+QQ[a-z]*x.*y",
    };
    enum { N = sizeof res / sizeof res[0] };
    struct job span[N], nospan[N];
    struct column c[2 * N];
    char names[2 * N][16];

    set_needle("READY 1 ok error 1 failed XQ YQ abQQx y");
    for (int k = 0; k < N; k++) {
        struct pattern p = {PATTERN_REGEX, 0, res[k], strlen(res[k])};
        printf("s%d: regex `%s`\n", k + 1, res[k]);
        span[k] = (struct job){"", compile(&p, 1, 0), NULL};
        nospan[k] = (struct job){"", compile(&p, 1, PATTERN_SET_NO_SPAN), NULL};
        snprintf(names[2 * k], sizeof names[0], "s%d span", k + 1);
        snprintf(names[2 * k + 1], sizeof names[0], "s%d nospan", k + 1);
        c[2 * k].name = names[2 * k];
        c[2 * k + 1].name = names[2 * k + 1];
    }
    for (int i = 0; i < runs; i++) {
        for (int k = 0; k < N; k++) {
            c[2 * k].t[i] = run_mem(&span[k]);
            c[2 * k + 1].t[i] = run_mem(&nospan[k]);
        }
    }
    report("(s) start-of-match tracking, from memory", c, 2 * N, runs, 1);
    for (int k = 0; k < N; k++) {
        pattern_set_put(span[k].ps);
        pattern_set_put(nospan[k].ps);
    }
}

int
main(int argc, char **argv)
{
    uint64_t mib = 256;
    int runs = 5, c;
    const char *cases = "abc";

    while ((c = getopt(argc, argv, "s:n:d:c:")) != -1) {
        switch (c) {
        case 's':
            mib = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            runs = atoi(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'c':
            cases = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s [-s MiB] [-n runs] [-d dir] [-c abcs]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAXRUNS || mib < 1)
        return 2;
    size = mib << 20;
    frames = malloc((size_t)VARIANTS * FRAME);
    if (!frames)
        return 1;
    for (int v = 0; v < VARIANTS; v++)
        fill(frames + (size_t)v * FRAME, FRAME, (uint64_t)v + 1);

    char path[4096];
    snprintf(path, sizeof path, "%s/bench-match-grep.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp failed");
    close(fd);
    if (reactor_new(&reactor) < 0)
        die("cannot make a reactor");
    if (strchr(cases, 'a'))
        case_a(runs, path);
    if (strchr(cases, 'b'))
        case_b(runs, path);
    if (strchr(cases, 'c'))
        case_c(runs, path);
    if (strchr(cases, 's'))
        case_s(runs);
    unlink(path);
    pattern_cache_flush();
    reactor_free(reactor);
    free(frames);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak RSS %ld KiB\n", ru.ru_maxrss);
    return 0;
}
