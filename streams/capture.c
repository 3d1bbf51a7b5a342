/*
 * capture.c - the capture engine: packets on a bridge or a VM's NIC,
 * captured in the daemon with libpcap (no tcpdump child; SPEC §5.1, §6.1).
 *
 * The stream's bytes are exactly a classic pcap savefile as
 * `tcpdump -U -w - -s 65535` writes it: frame 0 is the 24-byte global
 * header, then one frame per packet, each a 16-byte record header
 * (ts_sec, ts_usec, caplen, len; host byte order, microseconds) and caplen
 * bytes. Because the header is part of the history, every reader starting
 * at byte 0 reads a valid file however late it joins.
 *
 * The handle is activated, filtered and watched before open() reports
 * success, so a packet sent after the open is acknowledged is in the
 * stream. Readiness is the selectable fd of a non-blocking handle on a
 * TPACKET_V3 ring (see capture_start for why not immediate mode); each
 * readable event dispatches a bounded batch so one busy interface cannot
 * starve the rest of the daemon (the reactor is level triggered: what is
 * left wakes it again).
 *
 * Engine ctx: unused (the reactor is the stream's). Capture streams are
 * created with stream_config.noun = "capture" (engine.c's table says so)
 * so that ops say "capture EOF" / "capture closed". The stream's kind,
 * bridge_capture or nic_capture, is decided here alone (kind=, else a
 * VM's NIC, else what the kernel's driver says) and read back by the
 * daemon through the ops' kind().
 *
 * The live-capture table counts, per interface name, the handles open
 * now: a capture counts from its open until its stop (close) or the end
 * of its source (error, history limit), whichever comes first.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "streams.h"

#define CAPTURE_DEFAULT_SNAPLEN 65535 /* what `tcpdump -s 65535` asks */
#define CAPTURE_MAX_SNAPLEN 262144    /* libpcap's MAXIMUM_SNAPLEN */
#define CAPTURE_BATCH 256 /* packets per readable event, for fairness */
#define CAPTURE_BLOCK_TIMEOUT_MS 1
#define CAPTURE_BUFFER_BYTES (16 << 20)
#define CAPTURE_FILTER_MAX 1024
#define PCAP_FILE_HEADER_LEN 24
#define PCAP_RECORD_HEADER_LEN 16

struct capture {
    struct stream *s;
    struct reactor *r;
    pcap_t *p; /* NULL once capturing stopped */
    int fd;
    bool counted; /* holds one count in the live table */
    bool failed;  /* stream_append refused a record: stop */
    char iface[IFNAMSIZ];
    char kind[8];         /* bridge or nic */
    char stream_kind[16]; /* bridge_capture or nic_capture */
    char filter[CAPTURE_FILTER_MAX];
    int snaplen;
    int linktype;
    unsigned char *rec; /* record header + snaplen bytes, one frame */
    uint64_t records;
    struct pcap_stat stats; /* last pcap_stats(), kept after stopping */
};

/* ---- the live-capture table ---------------------------------------- */

struct capture_live {
    char iface[IFNAMSIZ];
    unsigned n;
};

static struct capture_live *live;
static size_t nlive, live_cap;

static struct capture_live *
live_find(const char *iface)
{
    for (size_t i = 0; i < nlive; i++)
        if (strcmp(live[i].iface, iface) == 0)
            return &live[i];
    return NULL;
}

static int
live_acquire(const char *iface)
{
    struct capture_live *l = live_find(iface);

    if (!l) {
        if (nlive == live_cap) {
            size_t ncap = live_cap ? 2 * live_cap : 8;
            struct capture_live *nl = realloc(live, ncap * sizeof(*nl));
            if (!nl)
                return -ENOMEM;
            live = nl;
            live_cap = ncap;
        }
        l = &live[nlive++];
        snprintf(l->iface, sizeof(l->iface), "%s", iface);
        l->n = 0;
    }
    l->n++;
    return 0;
}

static void
live_release(const char *iface)
{
    struct capture_live *l = live_find(iface);

    if (!l || --l->n > 0)
        return;
    /* Keep the order of first capture: the status listing stays stable. */
    size_t i = (size_t)(l - live);
    memmove(&live[i], &live[i + 1], (nlive - i - 1) * sizeof(*live));
    nlive--;
}

unsigned
capture_count(const char *iface)
{
    struct capture_live *l = iface ? live_find(iface) : NULL;
    return l ? l->n : 0;
}

void
capture_status(char *buf, size_t len)
{
    size_t n = strnlen(buf, len);

    for (size_t i = 0; i < nlive && n + 10 < len; i++) {
        memcpy(buf + n, "capture: ", 10);
        n = text_append(buf, len, live[i].iface);
        snprintf(buf + n, len - n, " %u\n", live[i].n);
        n = strnlen(buf, len);
    }
}

/* ---- capturing ------------------------------------------------------ */

/* Stop capturing now: the handle is closed (the kernel stops queueing
 * for us) and the interface's count released. Statistics are kept. */
static void
capture_halt(struct capture *c)
{
    if (c->p) {
        struct pcap_stat st;
        if (pcap_stats(c->p, &st) == 0)
            c->stats = st;
        reactor_unwatch(c->r, c->fd);
        pcap_close(c->p);
        c->p = NULL;
    }
    if (c->counted) {
        live_release(c->iface);
        c->counted = false;
    }
}

static void
capture_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    struct capture *c = (struct capture *)user;
    uint32_t caplen = h->caplen;

    if (c->failed)
        return;
    /* libpcap never hands out more than the snapshot length; the clamp
     * keeps the copy inside rec whatever it does. */
    if (caplen > (uint32_t)c->snaplen)
        caplen = (uint32_t)c->snaplen;
    /* pcap-savefile(5): 32-bit seconds and microseconds, as pcap_dump()
     * writes them. */
    uint32_t hdr[4] = {(uint32_t)h->ts.tv_sec, (uint32_t)h->ts.tv_usec, caplen,
                       h->len};
    memcpy(c->rec, hdr, sizeof(hdr));
    memcpy(c->rec + sizeof(hdr), bytes, caplen);
    if (stream_append(c->s, c->rec, sizeof(hdr) + caplen) < 0) {
        /* The stream has ended (history limit, spool error) or was
         * closed: it already says why. */
        c->failed = true;
        pcap_breakloop(c->p);
        return;
    }
    c->records++;
}

static void
capture_readable(struct reactor *r, int fd, unsigned events, void *arg)
{
    struct capture *c = arg;
    char msg[COMMAND_ERR_LEN];
    int n = pcap_dispatch(c->p, CAPTURE_BATCH, capture_packet, (u_char *)c);

    if (c->failed) {
        capture_halt(c);
        return;
    }
    if (n >= 0 && !(n == 0 && (events & REACTOR_ERR)))
        return;
    /* A read error, or an error condition libpcap did not turn into one
     * (level-triggered, it would wake us forever). The usual cause is the
     * interface going down or away: libpcap reports ENETDOWN from the
     * socket; which of the two it was is told by the name's existence. */
    int err = if_nametoindex(c->iface) == 0 ? -ENODEV : -ENETDOWN;
    const char *why = n < 0            ? pcap_geterr(c->p)
                      : err == -ENODEV ? "the interface disappeared"
                                       : "socket error (interface down?)";
    snprintf(msg, sizeof(msg), "capture %s: %s", c->iface, why);
    capture_halt(c);
    stream_end(c->s, err, msg);
}

/* ---- open ------------------------------------------------------------ */

/* The 24-byte global header exactly as libpcap writes it for this handle
 * (pcap_dump_fopen maps the DLT to its LINKTYPE, e.g. DLT_RAW). */
static int
file_header(pcap_t *p, unsigned char out[PCAP_FILE_HEADER_LEN])
{
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    int rc = -EIO;

    if (!f)
        return -errno;
    pcap_dumper_t *d = pcap_dump_fopen(p, f);
    if (!d) {
        fclose(f);
        goto out;
    }
    pcap_dump_close(d); /* flushes and closes f */
    if (len == PCAP_FILE_HEADER_LEN) {
        memcpy(out, mem, PCAP_FILE_HEADER_LEN);
        rc = 0;
    }
out:
    free(mem);
    return rc;
}

static int
activate_errno(int status)
{
    switch (status) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
        return -ENODEV;
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED:
        return -EPERM;
    case PCAP_ERROR_IFACE_NOT_UP:
        return -ENETDOWN;
    case PCAP_ERROR_RFMON_NOTSUP:
    case PCAP_ERROR_CANTSET_TSTAMP_TYPE:
    case PCAP_ERROR_TSTAMP_PRECISION_NOTSUP:
        return -ENOTSUP;
    default:
        return -EIO;
    }
}

/* "bridge" if the kernel's driver for iface is the bridge, else "nic".
 * Asked through ethtool on a socket rather than /sys/class/net, which
 * shows the namespace sysfs was mounted in, not the caller's. */
static const char *
iface_kind(const char *iface)
{
    struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool bridge = false;

    if (fd < 0)
        return "nic";
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
    ifr.ifr_data = (char *)&info;
    if (ioctl(fd, SIOCETHTOOL, &ifr) == 0)
        bridge = strcmp(info.driver, "bridge") == 0;
    close(fd);
    return bridge ? "bridge" : "nic";
}

/* The interface and the options into c: the capture engine's parser
 * (check and open both run it). */
static int
capture_parse(const struct engine_req *req, struct capture *c, char *err)
{
    struct word name = req->target;
    char num[16], *end;

    c->snaplen = CAPTURE_DEFAULT_SNAPLEN;
    if (!word_cstr(name, c->iface, sizeof(c->iface)) ||
        memchr(name.p, '/', name.len)) {
        snprintf(err, COMMAND_ERR_LEN,
                 "capture: bad interface name `%.*s` (1 to %d bytes)",
                 (int)(name.len > 32 ? 32 : name.len), name.p, IFNAMSIZ - 1);
        return -EINVAL;
    }
    for (int i = 0; i < req->nopts; i++) {
        struct word w = req->opts[i], v;
        if (word_option(w, "kind", &v)) {
            if (!word_is(v, "bridge") && !word_is(v, "nic")) {
                snprintf(err, COMMAND_ERR_LEN, "kind: expected bridge or nic");
                return -EINVAL;
            }
            snprintf(c->kind, sizeof(c->kind), "%.*s", (int)v.len, v.p);
        } else if (word_option(w, "snaplen", &v)) {
            long n = 0;
            if (word_cstr(v, num, sizeof(num)) && num[0] >= '0' &&
                num[0] <= '9') {
                errno = 0;
                n = strtol(num, &end, 10);
                if (*end || errno)
                    n = 0;
            }
            if (n < 1 || n > CAPTURE_MAX_SNAPLEN) {
                snprintf(err, COMMAND_ERR_LEN,
                         "snaplen: expected 1 to %d bytes (got `%.*s`)",
                         CAPTURE_MAX_SNAPLEN, (int)(v.len > 32 ? 32 : v.len),
                         v.p);
                return -EINVAL;
            }
            c->snaplen = (int)n;
        } else if (word_option(w, "filter", &v)) {
            if (!word_cstr(v, c->filter, sizeof(c->filter))) {
                snprintf(err, COMMAND_ERR_LEN,
                         "filter: empty, too long (max %d bytes) or "
                         "contains NUL",
                         CAPTURE_FILTER_MAX - 1);
                return -EINVAL;
            }
        } else {
            snprintf(err, COMMAND_ERR_LEN, "unknown option `%.*s`",
                     (int)(w.len > 64 ? 64 : w.len), w.p);
            return -EINVAL;
        }
    }
    return 0;
}

static int
capture_check(const struct engine_req *req, char *err)
{
    struct capture c = {0};

    return capture_parse(req, &c, err);
}

/* Activate the handle with the options; on failure a message naming the
 * interface is in err. */
static int
capture_start(struct capture *c, char *err)
{
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    struct bpf_program prog;
    int status, rc;

    if (!(c->p = pcap_create(c->iface, errbuf))) {
        snprintf(err, COMMAND_ERR_LEN, "capture %s: %s", c->iface, errbuf);
        return -EIO;
    }
    /* Not immediate mode, on purpose: libpcap then falls back to
     * TPACKET_V2, whose ring slots are sized for the largest packet (64
     * KiB on a veth with offloads, so a 2 MiB ring holds 32 packets) and
     * which wakes us per packet. It lost packets at a fifth of tcpdump's
     * rate (docs/benchmarks.md). TPACKET_V3 packs packets into blocks and
     * the block timeout bounds the delay instead: 1 ms, rounded up by the
     * kernel to one tick. A larger ring than libpcap's 2 MiB default
     * absorbs bursts while the spool is written.
     * Promiscuous as tcpdump is by default, so a bridge shows the
     * traffic it forwards, not only what is addressed to the host. */
    if (pcap_set_snaplen(c->p, c->snaplen) < 0 ||
        pcap_set_timeout(c->p, CAPTURE_BLOCK_TIMEOUT_MS) < 0 ||
        pcap_set_buffer_size(c->p, CAPTURE_BUFFER_BYTES) < 0 ||
        pcap_set_promisc(c->p, 1) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "capture %s: %s", c->iface,
                 pcap_geterr(c->p));
        return -EIO;
    }
    status = pcap_activate(c->p);
    if (status < 0) {
        const char *what = pcap_statustostr(status);
        const char *detail = pcap_geterr(c->p);
        bool both = *detail && strcmp(detail, what) != 0;
        snprintf(err, COMMAND_ERR_LEN, "capture %s: %s%s%s%s", c->iface, what,
                 both ? " (" : "", both ? detail : "", both ? ")" : "");
        return activate_errno(status);
    }
    if (c->filter[0]) {
        if (pcap_compile(c->p, &prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
            snprintf(err, COMMAND_ERR_LEN, "capture %s: bad filter `%.64s`: %s",
                     c->iface, c->filter, pcap_geterr(c->p));
            return -EINVAL;
        }
        /* libpcap drains what the socket queued before the kernel filter
         * was attached, so no unfiltered packet slips in. */
        rc = pcap_setfilter(c->p, &prog);
        pcap_freecode(&prog);
        if (rc < 0) {
            snprintf(err, COMMAND_ERR_LEN, "capture %s: filter: %s", c->iface,
                     pcap_geterr(c->p));
            return -EINVAL;
        }
    }
    if (pcap_setnonblock(c->p, 1, errbuf) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "capture %s: %s", c->iface, errbuf);
        return -EIO;
    }
    if ((c->fd = pcap_get_selectable_fd(c->p)) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "capture %s: no selectable fd",
                 c->iface);
        return -ENOTSUP;
    }
    /* The kernel may keep a larger snapshot than asked (it does for some
     * link types); the file header and the clamp use what libpcap says. */
    c->snaplen = pcap_snapshot(c->p);
    c->linktype = pcap_datalink(c->p);
    return 0;
}

static void capture_stop(void *state);

static int
capture_open(struct stream *s, void *ctx, const struct engine_req *req,
             engine_opened_fn *opened, void *arg, void **state, char *err)
{
    unsigned char header[PCAP_FILE_HEADER_LEN];
    struct capture *c;
    int rc;

    if (!(c = calloc(1, sizeof(*c)))) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    c->s = s;
    c->r = stream_reactor(s);
    c->fd = -1;
    if ((rc = capture_parse(req, c, err)) < 0)
        goto fail;
    if (!c->kind[0])
        snprintf(c->kind, sizeof(c->kind), "%s",
                 req->vm_nic ? "nic" : iface_kind(c->iface));
    snprintf(c->stream_kind, sizeof(c->stream_kind), "%s_capture", c->kind);
    if ((rc = capture_start(c, err)) < 0)
        goto fail;
    if (!(c->rec = malloc(PCAP_RECORD_HEADER_LEN + (size_t)c->snaplen))) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = live_acquire(c->iface)) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "out of memory");
        goto fail;
    }
    c->counted = true;
    if ((rc = reactor_watch(c->r, c->fd, REACTOR_IN, capture_readable, c)) <
        0) {
        snprintf(err, COMMAND_ERR_LEN, "capture %s: watch: %s", c->iface,
                 strerror(-rc));
        goto fail;
    }
    /* Last, so that a failed open leaves the stream empty. */
    if ((rc = file_header(c->p, header)) < 0 ||
        (rc = stream_append(s, header, sizeof(header))) < 0) {
        snprintf(err, COMMAND_ERR_LEN, "capture %s: pcap header: %s", c->iface,
                 strerror(-rc));
        goto fail;
    }
    *state = c;
    stream_set_source(s, &capture_engine, c);
    /* Capturing already: acknowledge. */
    opened(s, 0, NULL, arg);
    return 0;
fail:
    capture_stop(c);
    return rc;
}

static void
capture_stop(void *state)
{
    struct capture *c = state;

    if (!c)
        return;
    capture_halt(c);
    free(c->rec);
    free(c);
}

static void
capture_info(void *state, char *buf, size_t len)
{
    struct capture *c = state;
    size_t n = strnlen(buf, len);

    if (c->p) {
        struct pcap_stat st;
        if (pcap_stats(c->p, &st) == 0)
            c->stats = st;
    }
    const char *dlt = pcap_datalink_val_to_name(c->linktype);
    char source[96];
    /* The interface and the filter are users' words: escaped (text.c). */
    snprintf(source, sizeof(source), "capture %s", c->iface);
    text_keyval(buf, len, "source", source);
    text_keyval(buf, len, "capture_iface", c->iface);
    n = strnlen(buf, len);
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n,
                              "capture_kind: %s\n"
                              "capture_snaplen: %d\ncapture_linktype: %s\n"
                              "capture_state: %s\ncapture_packets: %" PRIu64
                              "\ncapture_received: %u\ncapture_drops: %u\n"
                              "capture_ifdrops: %u\n",
                              c->kind, c->snaplen, dlt ? dlt : "?",
                              c->p ? "capturing" : "stopped", c->records,
                              c->stats.ps_recv, c->stats.ps_drop,
                              c->stats.ps_ifdrop);
    if (n < len && c->filter[0])
        text_keyval(buf, len, "capture_filter", c->filter);
}

static const char *
capture_kind(const void *state)
{
    const struct capture *c = state;

    return c->stream_kind;
}

const struct engine_ops capture_engine = {
        .name = "capture",
        .check = capture_check,
        .open = capture_open,
        .stop = capture_stop,
        .info = capture_info,
        .kind = capture_kind,
};
