/*
 * match.c - find a literal byte pattern in a stream fed chunk by chunk.
 *
 * The matcher never looks back at bytes it was fed earlier, so the cost of
 * read_until over a long stream is linear in the bytes that arrive, not in
 * the size of the accumulated buffer (the original rescanned it on every
 * frame). Inside a chunk, glibc's memmem (two-way, linear) does the work at
 * memory speed; only at chunk edges does a KMP automaton carry a partial
 * match from one chunk to the next:
 *
 *  - while a partial match is open (state q > 0), step KMP byte by byte;
 *    once q falls to 0 no match can start before the current byte;
 *  - with q == 0, memmem the rest of the chunk;
 *  - on a miss, recompute q from the chunk's last (len-1) bytes, which
 *    decide it alone: q < pattern length.
 *
 * Every byte is examined a bounded number of times (KMP's amortised O(1)
 * plus memmem plus at most one re-scan of a pattern-sized tail).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streams.h"

struct matcher {
    size_t len;
    size_t q; /* bytes of the pattern matched by the end of the input */
    unsigned char *pat;
    uint16_t fail[]; /* fail[i]: longest proper border of pat[0..i] */
};

int
matcher_new(const void *pattern, size_t len, struct matcher **out)
{
    struct matcher *m;

    if (len > MATCH_MAX_PATTERN)
        return -EMSGSIZE;
    m = malloc(sizeof *m + len * sizeof m->fail[0] + len + 1);
    if (!m)
        return -ENOMEM;
    m->len = len;
    m->q = 0;
    m->pat = (unsigned char *)&m->fail[len];
    if (len)
        memcpy(m->pat, pattern, len);
    if (len)
        m->fail[0] = 0;
    for (size_t i = 1, k = 0; i < len; i++) {
        while (k > 0 && m->pat[i] != m->pat[k])
            k = m->fail[k - 1];
        if (m->pat[i] == m->pat[k])
            k++;
        m->fail[i] = (uint16_t)k;
    }
    *out = m;
    return 0;
}

void
matcher_free(struct matcher *m)
{
    free(m);
}

void
matcher_reset(struct matcher *m)
{
    m->q = 0;
}

static inline size_t
kmp_step(const struct matcher *m, size_t q, unsigned char c)
{
    while (q > 0 && m->pat[q] != c)
        q = m->fail[q - 1];
    if (m->pat[q] == c)
        q++;
    return q;
}

int
matcher_feed(struct matcher *m, const void *buf, size_t len, size_t *end)
{
    const unsigned char *b = buf;
    size_t i = 0;

    if (m->len == 0) {
        *end = 0;
        return 1;
    }
    while (m->q > 0 && i < len) {
        m->q = kmp_step(m, m->q, b[i++]);
        if (m->q == m->len) {
            m->q = 0;
            *end = i;
            return 1;
        }
    }
    if (i == len)
        return 0;
    const unsigned char *hit = memmem(b + i, len - i, m->pat, m->len);
    if (hit) {
        *end = (size_t)(hit - b) + m->len;
        return 1;
    }
    /* No match: the state at the end depends only on the last len-1
     * bytes, none of which can complete a match. */
    size_t from = len - i > m->len - 1 ? len - (m->len - 1) : i;
    size_t q = 0;
    for (size_t j = from; j < len; j++)
        q = kmp_step(m, q, b[j]);
    m->q = q;
    return 0;
}
