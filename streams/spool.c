/*
 * spool.c - the history of one stream, on disk.
 *
 * Bytes go to an unlinked file; frame boundaries go to a second unlinked
 * file as an array of little-endian u64 end offsets. Memory stays small and
 * fixed whatever the stream's size: a write-behind buffer for the newest
 * index entries and a read cache for one block of older ones, allocated
 * the first time an older frame is looked up (most streams never do: a
 * reader of `data` or `log` needs no frame boundaries). A frame is found
 * by its number in O(1) and by a byte offset with a binary search.
 *
 * Write-behind. One pwrite per frame was half of what an `expect` on a
 * busy stream cost (issue 12: 4 KiB frames): appended bytes are gathered
 * in memory and written by spool_flush, which the owner calls once per
 * loop turn (stream.c, from reactor_before_poll), so a turn's frames go
 * out in one write of up to WB_MAX bytes, and memory stays bounded: by
 * WB_MAX per spool, and in all by what the loop took in during one turn,
 * whatever the number of streams. A frame that does not fit flushes what
 * is buffered first; a frame of WB_MAX or more is written directly. The
 * buffer is freed by every flush that empties it (an idle stream holds
 * none) and allocated again at the size the last one reached (a busy
 * stream does not regrow it every turn).
 *
 * The history is [0, size): [0, written) in the data file, [written, size)
 * in the buffer. spool_pread, spool_span and the index serve both, so a
 * reader or a matcher never waits for a flush. A flush that fails (the
 * file system full) writes what it can, keeps the rest in memory, still
 * part of the history and served from there, and returns the error; the
 * next flush or append tries again, and an append that finds the buffer
 * full and cannot flush it is refused (all or nothing, as always). So a
 * byte that was ever readable stays readable: nothing a reader was given
 * is lost, and the owner (stream.c) ends the stream with the error.
 *
 * Bytes below the size never change and the data file is never shortened
 * below `written` (a failed direct write is cut back to it), so an fd
 * span (spool_span) handed out stays valid while the spool lives: a reply
 * can splice it from the file without copying, from another thread. A
 * memory span is valid until the next spool_append or spool_flush.
 *
 * The files are unlinked at creation (O_TMPFILE where the file system has
 * it) so a crashed daemon leaves nothing behind in the spool directory.
 * provium-agent makes its process output spools the same way
 * (spool_tmpfile), so it links this file too.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streams.h"

#define INDEX_BLOCK 512 /* entries per buffer: 4 KiB */
#define INDEX_FIRST 16  /* the write-behind buffer's first size: it grows */
#define WB_MIN (4 * 1024)   /* the data buffer's first size */
#define WB_MAX (256 * 1024) /* and its largest: one write per flush */

struct spool {
    int data_fd;
    int index_fd;
    uint64_t size;    /* the history's, buffered bytes included */
    uint64_t written; /* [0, written) is in data_fd */
    char *wb;         /* [written, size), wb_cap bytes of room */
    size_t wb_cap;
    size_t wb_last; /* wb_cap when the last buffer was freed */
    uint64_t frames;
    uint64_t flushed; /* index entries already in index_fd */
    uint64_t *tail;   /* entries [flushed, frames), tail_cap of them */
    size_t tail_cap;  /* grows to INDEX_BLOCK: a quiet stream stays small */
    uint64_t cache_first;       /* first entry number held in cache */
    size_t cache_len;           /* 0 = empty */
    uint64_t *cache;            /* INDEX_BLOCK entries, allocated lazily */
};

int
spool_tmpfile(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* Some file systems (and old kernels) lack O_TMPFILE. */
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return -errno;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/provium-spool.XXXXXX", dir) >=
        (int)sizeof path)
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

int
spool_new(const char *dir, struct spool **out)
{
    struct spool *sp = calloc(1, sizeof *sp);
    int rc;

    if (!sp)
        return -ENOMEM;
    sp->data_fd = sp->index_fd = -1;
    if (!dir || !*dir)
        dir = "/tmp";
    if ((rc = spool_tmpfile(dir)) < 0)
        goto fail;
    sp->data_fd = rc;
    if ((rc = spool_tmpfile(dir)) < 0)
        goto fail;
    sp->index_fd = rc;
    *out = sp;
    return 0;
fail:
    spool_free(sp);
    return rc;
}

void
spool_free(struct spool *sp)
{
    if (!sp)
        return;
    if (sp->data_fd >= 0)
        close(sp->data_fd);
    if (sp->index_fd >= 0)
        close(sp->index_fd);
    free(sp->cache);
    free(sp->tail);
    free(sp->wb);
    free(sp);
}

static int
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Move the write-behind buffer to the index file. */
static int
flush_tail(struct spool *sp)
{
    uint64_t le[INDEX_BLOCK];
    size_t n = (size_t)(sp->frames - sp->flushed);

    for (size_t i = 0; i < n; i++)
        le[i] = htole64(sp->tail[i]);
    int rc = pwrite_all(sp->index_fd, le, n * sizeof le[0],
                        sp->flushed * sizeof le[0]);
    if (rc < 0)
        return rc;
    sp->flushed = sp->frames;
    return 0;
}

int
spool_flush(struct spool *sp)
{
    size_t len = (size_t)(sp->size - sp->written), done = 0;
    int rc = 0;

    while (done < len) {
        ssize_t n = pwrite(sp->data_fd, sp->wb + done, len - done,
                           (off_t)(sp->written + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)n;
    }
    sp->written += done;
    if (rc < 0) {
        /* What was not written stays history, in memory, at the front. */
        memmove(sp->wb, sp->wb + done, len - done);
        return rc;
    }
    if (sp->wb) {
        sp->wb_last = sp->wb_cap;
        free(sp->wb);
        sp->wb = NULL;
        sp->wb_cap = 0;
    }
    return 0;
}

/* Room in the buffer for len more bytes (len < WB_MAX, and it fits). */
static int
wb_reserve(struct spool *sp, size_t len)
{
    size_t have = (size_t)(sp->size - sp->written), cap = sp->wb_cap;
    char *p;

    if (have + len <= cap)
        return 0;
    if (!cap)
        cap = sp->wb_last > WB_MIN ? sp->wb_last : WB_MIN;
    while (cap < have + len)
        cap *= 2;
    if (cap > WB_MAX)
        cap = WB_MAX;
    if (!(p = realloc(sp->wb, cap)))
        return -ENOMEM;
    sp->wb = p;
    sp->wb_cap = cap;
    return 0;
}

int
spool_append(struct spool *sp, const void *buf, size_t len)
{
    int rc;

    if (len == 0)
        return -EINVAL;
    if (sp->frames - sp->flushed == sp->tail_cap) {
        if (sp->tail_cap < INDEX_BLOCK) {
            size_t cap = sp->tail_cap ? sp->tail_cap * 2 : INDEX_FIRST;
            uint64_t *t = realloc(sp->tail, cap * sizeof t[0]);
            if (!t)
                return -ENOMEM;
            sp->tail = t;
            sp->tail_cap = cap;
        } else if ((rc = flush_tail(sp)) < 0) {
            return rc;
        }
    }
    if (sp->size - sp->written + len > WB_MAX && (rc = spool_flush(sp)) < 0)
        return rc; /* the buffer is full and stays so: refused */
    if (len >= WB_MAX) {
        /* As large as the buffer: write it as it is. All or nothing:
         * readers never see bytes past size, so a failed truncate only
         * wastes disk. */
        if ((rc = pwrite_all(sp->data_fd, buf, len, sp->written)) < 0) {
            if (ftruncate(sp->data_fd, (off_t)sp->written) < 0)
                (void)0;
            return rc;
        }
        sp->written += len;
    } else {
        if ((rc = wb_reserve(sp, len)) < 0)
            return rc;
        memcpy(sp->wb + (sp->size - sp->written), buf, len);
    }
    sp->size += len;
    sp->tail[sp->frames - sp->flushed] = sp->size;
    sp->frames++;
    return 0;
}

uint64_t
spool_unflushed(const struct spool *sp)
{
    return sp->size - sp->written;
}

uint64_t
spool_size(const struct spool *sp)
{
    return sp->size;
}

uint64_t
spool_frames(const struct spool *sp)
{
    return sp->frames;
}

int
spool_frame_end(struct spool *sp, uint64_t k, uint64_t *end)
{
    if (k >= sp->frames)
        return -ERANGE;
    if (k >= sp->flushed) {
        *end = sp->tail[k - sp->flushed];
        return 0;
    }
    if (sp->cache_len == 0 || k < sp->cache_first ||
        k >= sp->cache_first + sp->cache_len) {
        uint64_t first = k - k % INDEX_BLOCK;
        uint64_t le[INDEX_BLOCK];
        uint64_t want = sp->flushed - first;
        if (want > INDEX_BLOCK)
            want = INDEX_BLOCK;
        if (!sp->cache &&
            !(sp->cache = malloc(INDEX_BLOCK * sizeof sp->cache[0])))
            return -ENOMEM;
        ssize_t n = pread(sp->index_fd, le, want * sizeof le[0],
                          (off_t)(first * sizeof le[0]));
        if (n < 0)
            return -errno;
        if ((size_t)n != want * sizeof le[0])
            return -EIO;
        for (size_t i = 0; i < want; i++)
            sp->cache[i] = le64toh(le[i]);
        sp->cache_first = first;
        sp->cache_len = (size_t)want;
    }
    *end = sp->cache[k - sp->cache_first];
    return 0;
}

int
spool_frame_at(struct spool *sp, uint64_t off, uint64_t *k)
{
    uint64_t lo = 0, hi = sp->frames;

    if (off >= sp->size) {
        *k = sp->frames;
        return 0;
    }
    /* First frame whose end is past off. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, end;
        int rc = spool_frame_end(sp, mid, &end);
        if (rc < 0)
            return rc;
        if (end > off)
            hi = mid;
        else
            lo = mid + 1;
    }
    *k = lo;
    return 0;
}

ssize_t
spool_span(struct spool *sp, uint64_t off, size_t max, struct stream_span *out)
{
    if (off >= sp->size || max == 0)
        return 0;
    if (max > sp->size - off)
        max = (size_t)(sp->size - off);
    if (off < sp->written) {
        /* Never across into the buffer: the file's part is what may be
         * spliced, from another thread. */
        if (max > sp->written - off)
            max = (size_t)(sp->written - off);
        out->mem = NULL;
        out->fd = sp->data_fd;
    } else {
        out->mem = sp->wb + (off - sp->written);
        out->fd = -1;
    }
    out->off = off;
    out->len = max;
    return (ssize_t)max;
}

ssize_t
spool_pread(struct spool *sp, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    size_t done = 0, infile;

    if (off >= sp->size)
        return 0;
    if (len > sp->size - off)
        len = (size_t)(sp->size - off);
    infile = off >= sp->written        ? 0
             : sp->written - off < len ? (size_t)(sp->written - off)
                                       : len;
    while (done < infile) {
        ssize_t n = pread(sp->data_fd, p + done, infile - done,
                          (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the file shrank under us */
        done += (size_t)n;
    }
    if (done < len)
        memcpy(p + done, sp->wb + (off + done - sp->written), len - done);
    return (ssize_t)len;
}
