/*
 * What a wake-up costs on this machine, without any AMQP: a client sends 1,100 bytes over
 * loopback TCP to an echo server (another process, epoll + read + write) and waits for them
 * back, once per millisecond, 10,000 times; it prints the round trip's p50 / p95 / p99 / max
 * in microseconds. The load generator's S5 floor is compared against this
 * (docs/BENCHMARKS.md).
 *
 *   gcc -O2 -o /tmp/vcpu_pingpong scripts/vcpu_pingpong.c
 *   /tmp/vcpu_pingpong MODE CLIENT_CPU SERVER_CPU     (CPU -1: not pinned)
 *
 * MODE bit 1: the client polls its socket without blocking (MSG_DONTWAIT) instead of sleeping
 * in epoll_wait; bit 2: it busy-waits out the millisecond instead of nanosleep. Pinning the
 * two ends to different CPUs makes every wake-up cross vCPUs; pinning both to one keeps them
 * on one.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { N = 10000, MSG = 1100 };

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

static int watch(int fd) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return ep;
}

static void echo(int fd) {
    char buf[65536];
    int ep = watch(fd);
    for (;;) {
        struct epoll_event e;
        epoll_wait(ep, &e, 1, -1);
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) exit(0);
        if (write(fd, buf, (size_t)n) != n) exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODE CLIENT_CPU SERVER_CPU\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]), client_cpu = atoi(argv[2]), server_cpu = atoi(argv[3]);
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof a;
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (void *)&a, &len)) {
        perror("listen");
        return 1;
    }
    if (fork() == 0) {
        pin(server_cpu);
        int c = accept(ls, 0, 0);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        echo(c);
    }
    pin(client_cpu);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (void *)&a, sizeof a)) {
        perror("connect");
        return 1;
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int ep = watch(s);
    char msg[MSG], buf[65536];
    memset(msg, 'x', sizeof msg);
    static long lat[N];
    for (int i = 0; i < N; i++) {
        long t = now_ns();
        if (write(s, msg, sizeof msg) != (ssize_t)sizeof msg) return 1;
        ssize_t got = 0;
        while (got < (ssize_t)sizeof msg) {
            if (mode & 1) {
                ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
                if (n > 0) got += n;
            } else {
                struct epoll_event e;
                epoll_wait(ep, &e, 1, -1);
                ssize_t n = read(s, buf, sizeof buf);
                if (n <= 0) return 1;
                got += n;
            }
        }
        lat[i] = (now_ns() - t) / 1000;
        long next = t + 1000000;
        if (mode & 2) {
            while (now_ns() < next) {}
        } else if (next > now_ns()) {
            struct timespec d = {0, next - now_ns()};
            nanosleep(&d, 0);
        }
    }
    qsort(lat, N, sizeof lat[0], by_value);
    printf("mode %d client cpu %d server cpu %d: p50 %ld p95 %ld p99 %ld max %ld us\n", mode,
           client_cpu, server_cpu, lat[N / 2], lat[N * 95 / 100], lat[N * 99 / 100], lat[N - 1]);
    shutdown(s, SHUT_RDWR);
    return 0;
}
