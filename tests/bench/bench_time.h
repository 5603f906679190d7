/*
 * bench_time.h — the clocks and percentiles the benchmark programs share.
 *
 * bench_wall_ms: CLOCK_MONOTONIC, what a caller waits. bench_cpu_ms: this thread's CPU
 * time, which on a shared, noisy machine counts our work and not the time other
 * processes held the core (for single-threaded measurements only). bench_pct sorts v in
 * place and returns its p-quantile (p in [0, 1], nearest rank), n >= 1.
 * Header-only: every file in tests/bench/ is its own program (Makefile).
 */
#ifndef CNN_BENCH_TIME_H
#define CNN_BENCH_TIME_H

#include <stdlib.h>
#include <time.h>

static inline double bench_clock_ms(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static inline double bench_wall_ms(void) { return bench_clock_ms(CLOCK_MONOTONIC); }
static inline double bench_cpu_ms(void) { return bench_clock_ms(CLOCK_THREAD_CPUTIME_ID); }

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static inline double bench_pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return v[(int)(p * (n - 1) + 0.5)];
}

#endif
