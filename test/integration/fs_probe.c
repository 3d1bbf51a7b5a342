/*
 * fs_probe.c - tiny client for the proviumfs integration tests: the
 * system calls the shell cannot make.
 *
 *   fs_probe nonblock FILE        open O_NONBLOCK, read: prints EAGAIN, a
 *                                 byte count, or EOF
 *   fs_probe poll FILE MS         poll for POLLIN up to MS, then read:
 *                                 prints "ready <ms> <bytes>" or "timeout"
 *   fs_probe epoll FILE MS        the same with epoll
 *   fs_probe read FILE            one blocking read: prints the
 *                                 CLOCK_REALTIME ns when it returned and
 *                                 the byte count (wake-up latency)
 *
 * Exit status 0 unless a call failed unexpectedly.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static long
ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
report_read(int fd, long t0)
{
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0) {
        printf("read-error %s\n", strerror(errno));
        return 1;
    }
    printf("ready %ld %zd\n", ms_now() - t0, n);
    return 0;
}

int
main(int argc, char **argv)
{
    char buf[4096];
    long t0;
    int fd, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: fs_probe nonblock|poll|epoll FILE [MS]\n");
        return 2;
    }
    fd = open(argv[2],
              O_RDONLY | (strcmp(argv[1], "nonblock") == 0 ? O_NONBLOCK : 0));
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    if (strcmp(argv[1], "nonblock") == 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN)
            printf("EAGAIN\n");
        else if (n < 0)
            printf("error %s\n", strerror(errno));
        else if (n == 0)
            printf("EOF\n");
        else
            printf("%zd\n", n);
        return 0;
    }
    if (strcmp(argv[1], "read") == 0) {
        struct timespec ts;
        ssize_t n = read(fd, buf, sizeof(buf));
        clock_gettime(CLOCK_REALTIME, &ts);
        printf("%lld %zd\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
               n);
        return n < 0;
    }
    int ms = argc > 3 ? atoi(argv[3]) : 5000;
    t0 = ms_now();
    if (strcmp(argv[1], "poll") == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        rc = poll(&p, 1, ms);
        if (rc < 0) {
            perror("poll");
            return 1;
        }
        if (rc == 0) {
            printf("timeout\n");
            return 0;
        }
        return report_read(fd, t0);
    }
    if (strcmp(argv[1], "epoll") == 0) {
        struct epoll_event ev = {.events = EPOLLIN}, out;
        int ep = epoll_create1(0);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll");
            return 1;
        }
        rc = epoll_wait(ep, &out, 1, ms);
        if (rc < 0) {
            perror("epoll_wait");
            return 1;
        }
        if (rc == 0) {
            printf("timeout\n");
            return 0;
        }
        return report_read(fd, t0);
    }
    fprintf(stderr, "fs_probe: unknown mode %s\n", argv[1]);
    return 2;
}
