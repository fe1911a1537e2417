// What a system call and the page walks after it cost on this machine (docs/benchmarks.md,
// "A pooled connection reused without a peek"). Each iteration makes one getppid() (when SYS
// is 1) and then reads one byte from each of PAGES fixed random pages of a 64 MiB buffer,
// given to the kernel as transparent huge pages when HUGE is 1.
//   gcc -O2 bench/syscall_page_probe.c -o /tmp/probe && /tmp/probe HUGE PAGES SYS
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s HUGE(0|1) PAGES(0-4096) SYS(0|1)\n", argv[0]);
    return 2;
  }
  const int huge = atoi(argv[1]), pages = atoi(argv[2]), sys = atoi(argv[3]);
  if (pages < 0 || pages > 4096) {
    fprintf(stderr, "PAGES must be 0-4096\n");
    return 2;
  }
  const size_t size = 64UL << 20, align = 2UL << 20;
  char* raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  char* buf = (char*)(((unsigned long)raw + align - 1) & ~(align - 1));
  madvise(buf, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  for (size_t i = 0; i < size; i += 4096)
    buf[i] = 1;
  static size_t offsets[4096];
  srand(1);
  for (int i = 0; i < pages; ++i)
    offsets[i] = (size_t)(rand() % (int)(size / 4096)) * 4096 + (size_t)(rand() % 64) * 64;
  volatile long sum = 0;
  const int iterations = 200000;
  const double t0 = now_ns();
  for (int it = 0; it < iterations; ++it) {
    if (sys)
      syscall(SYS_getppid);
    for (int i = 0; i < pages; ++i)
      sum += buf[offsets[i]];
  }
  const double t1 = now_ns();
  long huge_kb = 0;
  FILE* f = fopen("/proc/self/smaps_rollup", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "AnonHugePages: %ld", &huge_kb) == 1)
      break;
  if (f)
    fclose(f);
  printf("huge=%d pages=%d sys=%d: %.1f ns per iteration (AnonHugePages %ld kB)\n", huge, pages,
         sys, (t1 - t0) / iterations, huge_kb);
  return 0;
}
