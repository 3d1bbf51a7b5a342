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
 * Bytes below the size never change and the data file is never shortened
 * below it (a failed append is cut back to the old size), so a span
 * (spool_span) handed out stays valid while the spool lives: a reply can
 * splice it from the file without copying.
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

struct spool {
    int data_fd;
    int index_fd;
    uint64_t size;
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
    if ((rc = pwrite_all(sp->data_fd, buf, len, sp->size)) < 0) {
        /* All or nothing: drop a partial write. Readers never see bytes
         * past size, so a failed truncate only wastes disk. */
        if (ftruncate(sp->data_fd, (off_t)sp->size) < 0)
            (void)0;
        return rc;
    }
    sp->size += len;
    sp->tail[sp->frames - sp->flushed] = sp->size;
    sp->frames++;
    return 0;
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
    out->mem = NULL;
    out->fd = sp->data_fd;
    out->off = off;
    out->len = max;
    return (ssize_t)max;
}

ssize_t
spool_pread(struct spool *sp, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    size_t done = 0;

    if (off >= sp->size)
        return 0;
    if (len > sp->size - off)
        len = (size_t)(sp->size - off);
    while (done < len) {
        ssize_t n = pread(sp->data_fd, p + done, len - done,
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
    return (ssize_t)done;
}
