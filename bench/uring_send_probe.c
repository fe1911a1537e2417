// CPU per 230-byte send over loopback TCP: one sendmsg() each against io_uring SENDMSG entries
// submitted BATCH at a time (docs/benchmarks.md, "One system call for a pass's reads and
// writes"). 32 connections; a child process drains them (its CPU is not counted). The sender's
// user + system time per send is printed, from getrusage.
//   gcc -O2 bench/uring_send_probe.c -o /tmp/uring_probe -luring && /tmp/uring_probe BATCH ITERS
// BATCH 0: sendmsg; 1-32: that many entries per io_uring_submit_and_wait. ITERS: rounds over the
// 32 connections (20000 takes a few seconds).
#define _GNU_SOURCE
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kConns = 32 };

static double cpu_us(int user_only) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  double us = r.ru_utime.tv_sec * 1e6 + r.ru_utime.tv_usec;
  if (!user_only)
    us += r.ru_stime.tv_sec * 1e6 + r.ru_stime.tv_usec;
  return us;
}

static void drain(const int* fds) {
  const int ep = epoll_create1(0);
  for (int i = 0; i < kConns; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
  }
  static char buf[65536];
  struct epoll_event ev[64];
  for (;;) {
    const int n = epoll_wait(ep, ev, 64, -1);
    for (int j = 0; j < n; j++)
      if (recv(ev[j].data.fd, buf, sizeof buf, 0) <= 0)
        _exit(0);
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s BATCH(0-32) ITERS\n", argv[0]);
    return 2;
  }
  const int batch = atoi(argv[1]);
  const long iters = atol(argv[2]);
  if (batch < 0 || batch > kConns || iters <= 0) {
    fprintf(stderr, "BATCH must be 0-32 and ITERS positive\n");
    return 2;
  }
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || getsockname(ls, (struct sockaddr*)&a, &al) != 0 ||
      listen(ls, 64) != 0) {
    perror("listen");
    return 1;
  }
  int c[kConns], s[kConns];
  for (int i = 0; i < kConns; i++) {
    c[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c[i], (struct sockaddr*)&a, sizeof a) != 0) {
      perror("connect");
      return 1;
    }
    s[i] = accept(ls, NULL, NULL);
    const int one = 1;
    setsockopt(c[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  const pid_t kid = fork();
  if (kid == 0)
    drain(s);
  char msg[230];
  memset(msg, 'x', sizeof msg);
  struct io_uring ring;
  if (batch > 0 && io_uring_queue_init(256, &ring, 0) != 0) {
    fprintf(stderr, "io_uring_queue_init failed\n");
    kill(kid, SIGKILL);
    return 1;
  }
  struct iovec v[kConns];
  struct msghdr m[kConns];
  long sent = 0;
  const double t0 = cpu_us(0), u0 = cpu_us(1);
  for (long it = 0; it < iters; it++) {
    for (int i = 0; i < kConns; i++) {
      v[i] = (struct iovec){msg, sizeof msg};
      m[i] = (struct msghdr){.msg_iov = &v[i], .msg_iovlen = 1};
    }
    if (batch == 0) {
      for (int i = 0; i < kConns; i++)
        if (sendmsg(c[i], &m[i], MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
          sent++;
    } else {
      for (int first = 0; first < kConns; first += batch) {
        int k = 0;
        for (int i = first; i < first + batch && i < kConns; i++, k++) {
          struct io_uring_sqe* q = io_uring_get_sqe(&ring);
          io_uring_prep_sendmsg(q, c[i], &m[i], MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        io_uring_submit_and_wait(&ring, k);
        struct io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
          if (cqe->res > 0)
            sent++;
          seen++;
        }
        io_uring_cq_advance(&ring, seen);
      }
    }
    if (it % 64 == 63)
      usleep(200); // lets the drain keep up
  }
  const double t = cpu_us(0) - t0, u = cpu_us(1) - u0;
  printf("batch %2d: %.3f us CPU per send (user %.3f), %ld sends\n", batch, t / sent, u / sent, sent);
  fflush(stdout);
  kill(kid, SIGKILL);
  waitpid(kid, NULL, 0);
  return 0;
}
