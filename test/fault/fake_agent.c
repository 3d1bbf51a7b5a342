/*
 * fake_agent.c - an agent that misbehaves on purpose, for the fault
 * tests: it listens on a Unix socket as provium-agent --listen would.
 *
 *   fake_agent PATH silent   accept, read, never answer (not even hello)
 *   fake_agent PATH mute     answer hello with hello_ok, then read and
 *                            ignore every request
 *
 * Each accepted connection prints "accepted N" on stdout (flushed), so a
 * test can count the daemon's reconnects. Runs until killed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

#define MAX_CONNS 16

static struct proto_msg hello; /* a host's, decoded */

static void
hello_ok(int fd, uint32_t version)
{
    uint8_t buf[128];
    union proto_body b = {.hello_ok = {.magic = PROTO_MAGIC,
                                       .version = version,
                                       .os = "Fake",
                                       .kernel = "0",
                                       .agent_version = "mute",
                                       .instance = 0x6d757465ULL}};
    ssize_t n = proto_msg_encode(buf, sizeof(buf), PROTO_HELLO_OK, 0, 0, &b);

    if (n > 0 && write(fd, buf, (size_t)n) != n)
        perror("fake_agent: write");
}

int
main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct pollfd p[1 + MAX_CONNS];
    struct proto_decoder dec[1 + MAX_CONNS];
    static uint8_t buf[65536];
    int n = 1, accepted = 0;
    bool mute;

    if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path) ||
        (strcmp(argv[2], "silent") && strcmp(argv[2], "mute"))) {
        fprintf(stderr, "usage: fake_agent PATH silent|mute\n");
        return 2;
    }
    mute = strcmp(argv[2], "mute") == 0;
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    p[0].fd = socket(AF_UNIX, SOCK_STREAM, 0);
    p[0].events = POLLIN;
    if (p[0].fd < 0 || bind(p[0].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(p[0].fd, 4) < 0) {
        perror("fake_agent: listen");
        return 1;
    }
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("fake_agent: poll");
            return 1;
        }
        if ((p[0].revents & POLLIN) && n < 1 + MAX_CONNS) {
            int fd = accept(p[0].fd, NULL, NULL);
            if (fd >= 0) {
                p[n].fd = fd;
                p[n].events = POLLIN;
                p[n].revents = 0;
                if (proto_decoder_init(&dec[n]) < 0)
                    return 1;
                n++;
                printf("accepted %d\n", ++accepted);
                fflush(stdout);
            }
        }
        for (int i = 1; i < n; i++) {
            if (!p[i].revents)
                continue;
            ssize_t r = read(p[i].fd, buf, sizeof(buf));
            if (r <= 0) { /* the host went away: forget it */
                close(p[i].fd);
                proto_decoder_fini(&dec[i]);
                p[i] = p[n - 1];
                dec[i] = dec[n - 1];
                n--;
                i--;
                continue;
            }
            size_t pos = 0, used;
            struct proto_frame f;
            while (mute && pos < (size_t)r) {
                int rc = proto_decode(&dec[i], buf + pos, (size_t)r - pos,
                                      &used, &f);
                pos += used;
                if (rc < 0)
                    break;
                if (rc == 1 && f.type == PROTO_HELLO &&
                    proto_msg_decode(&f, 0, &hello) == 0)
                    hello_ok(p[i].fd, hello.body.hello.version_max);
            }
        }
    }
}
