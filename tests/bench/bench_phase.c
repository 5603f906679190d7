/*
 * bench_phase.c — the host's phases beside the engine's speed, for `make bench-phase`.
 *
 *   bench_phase --model FILE.onnx [--threads N] [--batch B] [--windows W] [--forwards F]
 *
 * Why: on the shared 2-vCPU hosts this engine is measured on, a batch-1 forward's time
 * moves by 10-20% over seconds while nothing in the process changes, and a benchmark
 * run (`make bench-peers`, `make bench-http`) lands in whatever phase the host is in.
 * This tool tells the phases apart so a change can be judged per phase, and shows what
 * the host is doing: per window (about a second),
 *   1. cross-core read: a thread on the second allowed CPU writes PHASE_BYTES, a thread
 *      on the first reads them back (timed), then reads its own writes of the same
 *      buffer (timed). The first is as fast as the second while the two vCPUs share a
 *      last-level cache, and 2-3x slower while the host has put them on different ones
 *      (a Zen 4 host: ~11 us against ~32 us for 800 KB, switching every few seconds);
 *   2. each CPU's time for a fixed chain of multiply-adds, both CPUs at once, and at
 *      the end each CPU's slowest window against the best time seen (another VM on the
 *      core's SMT sibling, or a lower clock, shows here);
 *   3. one thread's read bandwidth from memory (PHASE_DRAM_BYTES, beyond the caches),
 *      which the host's other tenants share;
 *   4. F forwards at batch B on the engine's N threads, timed, and the steal time the
 *      kernel counted meanwhile (/proc/stat: the host ran something else on our vCPUs).
 * One line per window, then the forwards' p50 and mean over the windows whose cross-
 * core read was more than twice the fastest window's ("slow") and over the others.
 * The probes pin their two threads (the engine's threads are created before and are not
 * pinned); with fewer than two CPUs allowed only the forwards are timed. Input is fixed
 * pseudo-random data: the engine's speed does not depend on values.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_time.h"
#include "cnn.h"

enum {
  PHASE_BYTES = 800 * 1024, /* about one ResNet-50 layer3 activation at batch 1 */
  PHASE_PROBE_MS = 200,     /* cross-core reads per window: as many as fit in this */
  PHASE_FMA_STEPS = 2000000, /* multiply-add steps per CPU speed probe (~3 ms) */
  PHASE_DRAM_BYTES = 128 << 20, /* read once per window: beyond any last-level cache */
  PHASE_MAX_WINDOWS = 1000,
  PHASE_MAX_FORWARDS = 1000
};

static double now_us(void) { return bench_wall_ms() * 1e3; }

/* ---- probes ---------------------------------------------------------------------- */

enum { CMD_NONE, CMD_WRITE, CMD_FMA, CMD_QUIT };

typedef struct {
  uint64_t *buf;
  size_t words;
  int cpu[2];            /* the reader's (main thread's) and the helper's CPU */
  _Atomic int cmd, seq;  /* main -> helper: command and its sequence number */
  _Atomic int done;      /* helper -> main: last sequence number finished */
  double helper_fma_us;  /* the helper's last speed probe */
  volatile double sink;
} probe_t;

static int pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return sched_setaffinity(0, sizeof s, &s);
}

/* Whole cache lines at a time (GCC vector extensions: one or more SIMD registers on
 * any target), so the reads are limited by where the lines are, not by the loop. */
typedef uint64_t line_t __attribute__((vector_size(64)));

static void fill(probe_t *p, uint64_t v) {
  line_t *l = (line_t *)(void *)p->buf, x = {v, v, v, v, v, v, v, v};
  for (size_t i = 0; i < p->words / 8; i++) l[i] = x;
}

static uint64_t sum_words(const uint64_t *buf, size_t words) {
  const line_t *l = (const line_t *)(const void *)buf;
  line_t s0 = {0}, s1 = {0};
  for (size_t i = 0; i + 1 < words / 8; i += 2) s0 += l[i], s1 += l[i + 1];
  s0 += s1;
  return s0[0] + s0[1] + s0[2] + s0[3] + s0[4] + s0[5] + s0[6] + s0[7];
}

static uint64_t sum(const probe_t *p) { return sum_words(p->buf, p->words); }

/* One thread's read bandwidth from memory, GB/s: the host's other tenants share it. */
static double dram_gbs(const uint64_t *big, volatile double *sink) {
  double t0 = now_us();
  *sink = (double)sum_words(big, PHASE_DRAM_BYTES / sizeof *big);
  return PHASE_DRAM_BYTES / (now_us() - t0) / 1e3;
}

/* Eight independent multiply-add chains: bound by the core's FMA latency and issue.
 * The factor is read from *sink after the first clock read and the result stored there
 * before the second, so the compiler cannot move the loop out of the timed span. */
static double fma_chain_us(volatile double *sink) {
  double a[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  double t0 = now_us();
  double f = *sink * 0.0 + 0.9999999;
  for (int k = 0; k < PHASE_FMA_STEPS; k++)
    for (int i = 0; i < 8; i++) a[i] = a[i] * f + 1e-7;
  *sink = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
  return now_us() - t0;
}

static void *helper_main(void *arg) {
  probe_t *p = arg;
  if (pin(p->cpu[1]) != 0) return NULL;
  for (int seen = 0;;) {
    int s;
    while ((s = atomic_load_explicit(&p->seq, memory_order_acquire)) == seen) sched_yield();
    seen = s;
    int cmd = atomic_load_explicit(&p->cmd, memory_order_relaxed);
    if (cmd == CMD_QUIT) return NULL;
    if (cmd == CMD_WRITE) fill(p, (uint64_t)s);
    if (cmd == CMD_FMA) p->helper_fma_us = fma_chain_us(&p->sink);
    atomic_store_explicit(&p->done, s, memory_order_release);
  }
}

static void helper_cmd(probe_t *p, int cmd) {
  atomic_store_explicit(&p->cmd, cmd, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->seq, 1, memory_order_release);
}

static void helper_wait(probe_t *p) {
  int want = atomic_load_explicit(&p->seq, memory_order_acquire);
  while (atomic_load_explicit(&p->done, memory_order_acquire) != want) sched_yield();
}

/* Mean microseconds to read the helper's fresh writes (*cross) and this thread's own. */
static void probe_read(probe_t *p, double *cross, double *own) {
  double xs = 0, ls = 0;
  int n = 0;
  uint64_t s = 0;
  for (double end = now_us() + PHASE_PROBE_MS * 1e3; now_us() < end; n++) {
    helper_cmd(p, CMD_WRITE);
    helper_wait(p);
    double t0 = now_us();
    s += sum(p);
    xs += now_us() - t0;
    fill(p, (uint64_t)n);
    t0 = now_us();
    s += sum(p);
    ls += now_us() - t0;
  }
  p->sink = (double)s;
  *cross = n ? xs / n : 0;
  *own = n ? ls / n : 0;
}

/* Each CPU's multiply-add chain time, both at once. */
static void probe_fma(probe_t *p, double *us0, double *us1) {
  helper_cmd(p, CMD_FMA);
  *us0 = fma_chain_us(&p->sink);
  helper_wait(p);
  *us1 = p->helper_fma_us;
}

/* The first two CPUs this thread may run on, or -1 when there are fewer than two. */
static int two_cpus(int cpu[2]) {
  cpu_set_t s;
  if (sched_getaffinity(0, sizeof s, &s) != 0) return -1;
  int n = 0;
  for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
    if (CPU_ISSET(c, &s)) cpu[n++] = c;
  return n == 2 ? 0 : -1;
}

/* Milliseconds of steal time (the host running something else on our vCPUs) so far,
 * summed over the CPUs, from /proc/stat; -1 where it cannot be read. */
static double steal_ms(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long v[8] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                 &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  long hz = sysconf(_SC_CLK_TCK);
  return n == 8 && hz > 0 ? (double)v[7] * 1e3 / (double)hz : -1;
}

/* ---- main ------------------------------------------------------------------------ */

typedef struct {
  double cross, own, fma[2], steal, dram;
  double fwd[PHASE_MAX_FORWARDS];
} window_t;

static void report(const char *what, window_t *w, int nw, int forwards, int slow_wanted,
                   double slow_cross) {
  double *all = malloc((size_t)nw * (size_t)forwards * sizeof *all);
  if (!all) return;
  int n = 0, wins = 0;
  double s = 0;
  for (int i = 0; i < nw; i++) {
    if (slow_wanted >= 0 && (w[i].cross > slow_cross) != slow_wanted) continue;
    wins++;
    for (int k = 0; k < forwards; k++) all[n++] = w[i].fwd[k], s += w[i].fwd[k];
  }
  if (n) {
    double p50 = bench_pct(all, n, 0.5), p90 = bench_pct(all, n, 0.9);
    printf("%-5s %3d windows, %4d forwards: p50 %7.2f ms  mean %7.2f  p90 %7.2f\n", what,
           wins, n, p50, s / n, p90);
  } else {
    printf("%-5s   0 windows\n", what);
  }
  free(all);
}

int main(int argc, char **argv) {
  const char *model = NULL;
  int threads = 2, batch = 1, windows = 30, forwards = 10, bad = (argc - 1) % 2;
  for (int i = 1; !bad && i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--windows")) windows = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--forwards")) forwards = atoi(argv[i + 1]);
    else bad = 1;
  }
  if (bad || !model || threads < 1 || batch < 1 || batch > 64 || windows < 1 ||
      windows > PHASE_MAX_WINDOWS || forwards < 1 || forwards > PHASE_MAX_FORWARDS) {
    fprintf(stderr, "usage: bench_phase --model FILE.onnx [--threads N] [--batch 1..64] "
                    "[--windows 1..%d] [--forwards 1..%d]\n",
            PHASE_MAX_WINDOWS, PHASE_MAX_FORWARDS);
    return 2;
  }
  cnn_error_t err = {0};
  cnn_model_t *m = NULL;
  cnn_ctx_t *ctx = NULL;
  cnn_blas_single_thread();
  if (cnn_model_load(model, &m, &err) || cnn_ctx_create(m, batch, threads, &ctx, &err)) {
    fprintf(stderr, "bench_phase: %s: %s\n", model, err.msg);
    return 1;
  }
  const cnn_model_info_t *info = cnn_model_info(m);
  size_t in_floats = (size_t)batch * (size_t)info->in_c * (size_t)info->in_h * (size_t)info->in_w;
  float *in = malloc(in_floats * sizeof *in);
  float *out = malloc((size_t)batch * (size_t)info->num_classes * sizeof *out);
  window_t *w = calloc((size_t)windows, sizeof *w);
  probe_t *p = calloc(1, sizeof *p);
  if (!in || !out || !w || !p) return fprintf(stderr, "bench_phase: out of memory\n"), 1;
  uint64_t *big = aligned_alloc(64, PHASE_DRAM_BYTES);
  if (!big) return fprintf(stderr, "bench_phase: out of memory\n"), 1;
  memset(big, 1, PHASE_DRAM_BYTES);
  uint32_t seed = 12345;
  for (size_t i = 0; i < in_floats; i++) {
    seed = seed * 1664525u + 1013904223u;
    in[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
  for (int i = 0; i < 3; i++)
    if (cnn_forward(ctx, in, batch, out, &err)) return fprintf(stderr, "bench_phase: %s\n", err.msg), 1;

  /* The engine's threads exist now, unpinned; only the probes' two threads get pinned. */
  cpu_set_t mine;
  int probing = two_cpus(p->cpu) == 0 && sched_getaffinity(0, sizeof mine, &mine) == 0;
  pthread_t helper;
  p->words = PHASE_BYTES / sizeof(uint64_t);
  p->buf = probing ? aligned_alloc(64, PHASE_BYTES) : NULL;
  if (probing && (!p->buf || pthread_create(&helper, NULL, helper_main, p) != 0)) probing = 0;
  printf("bench_phase: %s, batch %d, %d engine threads; %s\n", model, batch, threads,
         probing ? "probes on the first two allowed CPUs" : "fewer than two CPUs: forwards only");
  printf("window  cross (own) us  multiply-add per CPU  DRAM GB/s  forwards p50 / mean ms  steal ms\n");

  double best_fma = 0;
  for (int i = 0; i < windows; i++) {
    window_t *x = &w[i];
    if (probing && pin(p->cpu[0]) == 0) {
      probe_read(p, &x->cross, &x->own);
      probe_fma(p, &x->fma[0], &x->fma[1]);
      sched_setaffinity(0, sizeof mine, &mine);
      for (int c = 0; c < 2; c++)
        if (best_fma == 0 || x->fma[c] < best_fma) best_fma = x->fma[c];
    }
    x->dram = dram_gbs(big, &p->sink);
    double s = 0, sorted[PHASE_MAX_FORWARDS], st0 = steal_ms();
    for (int k = 0; k < forwards; k++) {
      double t0 = now_us();
      if (cnn_forward(ctx, in, batch, out, &err)) return fprintf(stderr, "bench_phase: %s\n", err.msg), 1;
      x->fwd[k] = (now_us() - t0) / 1e3;
      s += x->fwd[k];
      sorted[k] = x->fwd[k];
    }
    double st1 = steal_ms();
    x->steal = st0 >= 0 && st1 >= 0 ? st1 - st0 : -1;
    printf("%6d  %8.1f (%5.1f)  %6.0f / %6.0f us  %7.1f   %7.2f / %7.2f  %5.0f\n", i, x->cross,
           x->own, x->fma[0], x->fma[1], x->dram, bench_pct(sorted, forwards, 0.5), s / forwards, x->steal);
    fflush(stdout);
  }
  if (probing) {
    helper_cmd(p, CMD_QUIT);
    pthread_join(helper, NULL);
  }

  double min_cross = 0;
  for (int i = 0; i < windows; i++)
    if (i == 0 || w[i].cross < min_cross) min_cross = w[i].cross;
  printf("\n");
  if (probing) {
    double slow_cross = 2 * min_cross;
    printf("slow: cross-core read above %.1f us (twice the fastest window's)\n", slow_cross);
    report("calm", w, windows, forwards, 0, slow_cross);
    report("slow", w, windows, forwards, 1, slow_cross);
    double worst[2] = {0, 0};
    for (int i = 0; i < windows; i++)
      for (int c = 0; c < 2; c++)
        if (w[i].fma[c] / best_fma > worst[c]) worst[c] = w[i].fma[c] / best_fma;
    printf("multiply-add time, slowest window against the best: CPU %d %.2fx, CPU %d %.2fx\n",
           p->cpu[0], worst[0], p->cpu[1], worst[1]);
  }
  report("all", w, windows, forwards, -1, 0);
  free(big);
  free(p->buf);
  free(p);
  free(w);
  free(in);
  free(out);
  cnn_ctx_destroy(ctx);
  cnn_model_destroy(m);
  return 0;
}
