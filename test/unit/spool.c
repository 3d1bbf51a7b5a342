/*
 * The spool: frames of many sizes past the index's in-memory block,
 * lookups by number and by offset, reads across frames, and that the
 * files are unlinked (nothing left in the spool directory).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streams.h"

Test(spool, frames_past_the_index_buffer_are_found_by_number_and_offset,
     .timeout = 30)
{
    char dir[] = "/tmp/provium-spool-test.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct spool *sp;
    cr_assert_eq(spool_new(dir, &sp), 0);

    /* Nothing visible in the directory: the files are unlinked. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d)))
        entries += e->d_name[0] != '.';
    closedir(d);
    cr_expect_eq(entries, 0);

    enum { N = 5000 };
    static uint64_t ends[N];
    uint64_t off = 0;
    char buf[64];
    for (int k = 0; k < N; k++) {
        size_t n = 1 + (size_t)(k * 7 % 61);
        memset(buf, 'a' + k % 26, n);
        cr_assert_eq(spool_append(sp, buf, n), 0);
        off += n;
        ends[k] = off;
    }
    cr_assert_eq(spool_append(sp, buf, 0), -EINVAL);
    cr_assert_eq(spool_size(sp), off);
    cr_assert_eq(spool_frames(sp), N);
    for (int k = N - 1; k >= 0; k -= 3) { /* backwards: cache misses */
        uint64_t end;
        cr_assert_eq(spool_frame_end(sp, (uint64_t)k, &end), 0);
        cr_assert_eq(end, ends[k], "frame %d", k);
    }
    for (uint64_t o = 0; o < off; o += 97) {
        uint64_t k;
        cr_assert_eq(spool_frame_at(sp, o, &k), 0);
        cr_assert_lt(o, ends[k]);
        cr_assert(k == 0 || ends[k - 1] <= o);
    }
    uint64_t k;
    cr_assert_eq(spool_frame_at(sp, off, &k), 0);
    cr_assert_eq(k, N);
    uint64_t end;
    cr_assert_eq(spool_frame_end(sp, N, &end), -ERANGE);

    /* Reads span frames and stop at the end of history. */
    cr_assert_eq(spool_pread(sp, buf, 10, 0), 10);
    cr_assert_eq(buf[0], 'a');
    cr_assert_eq(buf[1], 'b');
    cr_assert_eq(spool_pread(sp, buf, sizeof buf, off - 5), 5);
    cr_assert_eq(spool_pread(sp, buf, sizeof buf, off), 0);
    spool_free(sp);
    rmdir(dir);
}

Test(spool, missing_directory_is_an_error)
{
    struct spool *sp;
    cr_assert_eq(spool_new("/nonexistent/provium", &sp), -ENOENT);
}

/* ---- write-behind ------------------------------------------------- */

static struct spool *
new_spool(void)
{
    struct spool *sp;

    cr_assert_eq(spool_new("/tmp", &sp), 0);
    return sp;
}

/* Check every way of reading the history against want[0, size): pread at
 * every offset step, and spans, which never run from the file into
 * memory (an fd span's bytes are in the file, read back with pread). */
static void
check_history(struct spool *sp, const char *want, size_t size)
{
    static char got[600 * 1024];
    struct stream_span span;
    size_t off = 0;

    cr_assert_eq(spool_size(sp), size);
    cr_assert_eq(spool_pread(sp, got, sizeof got, 0), (ssize_t)size);
    cr_assert_eq(memcmp(got, want, size), 0);
    while (off < size) {
        ssize_t n = spool_span(sp, off, 100000, &span);
        cr_assert_gt(n, 0);
        cr_assert_eq(span.off, off);
        cr_assert_eq((size_t)n, span.len);
        if (span.mem) {
            cr_assert_geq(off, size - spool_unflushed(sp),
                          "a memory span holds only unflushed bytes");
            cr_assert_eq(memcmp(span.mem, want + off, span.len), 0);
        } else {
            cr_assert_leq(off + span.len, size - spool_unflushed(sp),
                          "an fd span stops where the file does");
            cr_assert_eq(pread(span.fd, got, span.len, (off_t)off),
                         (ssize_t)span.len);
            cr_assert_eq(memcmp(got, want + off, span.len), 0);
        }
        off += span.len;
    }
    cr_assert_eq(spool_span(sp, size, 10, &span), 0);
}

/* Appended bytes are history at once, in memory until a flush; a flush
 * writes them in one piece and frees the buffer; a frame that does not
 * fit flushes first; a frame as large as the buffer is written as it is.
 * Every read serves both parts. */
Test(spool, write_behind_serves_unflushed_bytes_and_flushes_in_one_write,
     .timeout = 30)
{
    static char want[600 * 1024];
    struct spool *sp = new_spool();
    size_t size = 0;

    for (size_t i = 0; i < sizeof want; i++)
        want[i] = (char)('a' + (i * 7 + i / 13) % 26);
    cr_assert_eq(spool_append(sp, want, 100), 0);
    size = 100;
    cr_expect_eq(spool_unflushed(sp), 100, "the bytes wait in memory");
    check_history(sp, want, size);
    cr_assert_eq(spool_flush(sp), 0);
    cr_expect_eq(spool_unflushed(sp), 0);
    check_history(sp, want, size);
    cr_assert_eq(spool_flush(sp), 0, "an empty flush is fine");
    /* Many small frames: all in memory, then one write. */
    for (int k = 0; k < 50; k++) {
        cr_assert_eq(spool_append(sp, want + size, 1000), 0);
        size += 1000;
    }
    cr_expect_eq(spool_unflushed(sp), 50000);
    check_history(sp, want, size);
    /* Frames up to a full buffer: one that does not fit flushes first. */
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(spool_append(sp, want + size, 60000), 0);
        size += 60000;
        check_history(sp, want, size);
    }
    cr_expect_lt(spool_unflushed(sp), 256 * 1024);
    cr_expect_gt(spool_unflushed(sp), 0);
    /* A frame as large as the buffer goes straight to the file, after
     * what was buffered. */
    cr_assert_eq(spool_append(sp, want + size, 256 * 1024), 0);
    size += 256 * 1024;
    cr_expect_eq(spool_unflushed(sp), 0);
    check_history(sp, want, size);
    cr_assert_eq(spool_append(sp, want + size, 7), 0);
    size += 7;
    check_history(sp, want, size);
    cr_assert_eq(spool_frames(sp), 1 + 50 + 5 + 1 + 1);
    uint64_t end;
    cr_assert_eq(spool_frame_end(sp, spool_frames(sp) - 1, &end), 0);
    cr_expect_eq(end, size, "the index has the unflushed frame");
    spool_free(sp); /* with bytes unflushed: nothing leaks */
}

/* The file system refuses the bytes (here RLIMIT_FSIZE, as a full disk
 * would): a flush writes what it can and keeps the rest in memory, still
 * history and still readable; an append that needs the room is refused,
 * all or nothing; once writes work again the next flush completes the
 * file. */
Test(spool, failed_flush_keeps_the_bytes_as_history, .timeout = 30)
{
    static char want[300 * 1024];
    struct rlimit old, lim;
    struct spool *sp = new_spool();
    size_t size = 0;

    for (size_t i = 0; i < sizeof want; i++)
        want[i] = (char)('A' + i % 53 % 26);
    signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 10000;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int k = 0; k < 6; k++) {
        cr_assert_eq(spool_append(sp, want + size, 3000), 0);
        size += 3000;
    }
    cr_expect_eq(spool_flush(sp), -EFBIG);
    cr_expect_eq(spool_unflushed(sp), 18000 - 10000,
                 "what fitted was written, the rest kept");
    check_history(sp, want, size);
    cr_expect_eq(spool_flush(sp), -EFBIG, "tried again, still refused");
    check_history(sp, want, size);
    /* Frames that fit in the buffer are taken, into memory. */
    cr_assert_eq(spool_append(sp, want + size, 200000), 0);
    size += 200000;
    check_history(sp, want, size);
    /* One that needs a flush is refused, and changes nothing. */
    cr_expect_eq(spool_append(sp, want + size, 60000), -EFBIG);
    cr_expect_eq(spool_frames(sp), 7);
    check_history(sp, want, size);
    /* A direct write refused leaves nothing behind either. */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(spool_flush(sp), 0);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cr_expect_eq(spool_append(sp, want, 256 * 1024), -EFBIG);
    cr_expect_eq(spool_size(sp), size);
    check_history(sp, want, size);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(spool_append(sp, want + size, 5), 0);
    size += 5;
    cr_assert_eq(spool_flush(sp), 0);
    cr_expect_eq(spool_unflushed(sp), 0);
    check_history(sp, want, size);
    spool_free(sp);
}
