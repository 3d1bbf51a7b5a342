/*
 * The spool: frames of many sizes past the index's in-memory block,
 * lookups by number and by offset, reads across frames, and that the
 * files are unlinked (nothing left in the spool directory).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <dirent.h>
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
