/*
 * bench_conv.c — kern_conv2d on every distinct ResNet-50 (torchvision v1.5, 224x224)
 * conv shape, at 1 and 2 threads and batch 1 and 8, against a ceiling: one plain
 * cblas_sgemm of the same M, N, K with OpenBLAS's own threading at 2 threads.
 *
 * At 1 thread the times are this thread's CPU time (preemption does not count).
 * Prints the best-of-reps ms and GFLOP/s per shape (the minimum, because the
 * machine is shared and noise only ever adds time), then the ResNet-50 total conv
 * time (each shape weighted by how often it occurs in the network).
 * Usage: build/bench/bench_conv [reps [only-shapes-containing]]   (default 15)
 * BENCH_COLD=1 evicts every cache before each timed call (by writing 96 MB, whose dirty
 * lines are then written back during the call), 2 does so and warms the activations
 * again, 3 flushes only the layer's packed weights (clflush), as a forward meets them,
 * and 4 has the threads rewrite the input in shares before each call, as a row split of
 * the layer before leaves it (each thread's share in its own cache, the rest in the
 * other's: ResNet-50's 1024->256 1x1 on 14x14 at batch 1 on 2 threads, 0.237 -> 0.276 ms).
 */
#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"
#include "cnn.h"
#include "kern_sgemm.h"
#include "kernels.h"

typedef struct {
  const char *name;
  int cin, cout, k, s, pad, h, count, residual;
} shape_t;

static const shape_t shapes[] = {
    {"stem 7x7/2 3->64 @224", 3, 64, 7, 2, 3, 224, 1, 0},
    {"l1 1x1 64->64 @56", 64, 64, 1, 1, 0, 56, 1, 0},
    {"l1 3x3 64->64 @56", 64, 64, 3, 1, 1, 56, 3, 0},
    {"l1 1x1 64->256 @56", 64, 256, 1, 1, 0, 56, 4, 1},
    {"l1 1x1 256->64 @56", 256, 64, 1, 1, 0, 56, 2, 0},
    {"l2 1x1 256->128 @56", 256, 128, 1, 1, 0, 56, 1, 0},
    {"l2 3x3/2 128 @56", 128, 128, 3, 2, 1, 56, 1, 0},
    {"l2 1x1 128->512 @28", 128, 512, 1, 1, 0, 28, 4, 1},
    {"l2 ds 1x1/2 256->512 @56", 256, 512, 1, 2, 0, 56, 1, 0},
    {"l2 1x1 512->128 @28", 512, 128, 1, 1, 0, 28, 3, 0},
    {"l2 3x3 128 @28", 128, 128, 3, 1, 1, 28, 3, 0},
    {"l3 1x1 512->256 @28", 512, 256, 1, 1, 0, 28, 1, 0},
    {"l3 3x3/2 256 @28", 256, 256, 3, 2, 1, 28, 1, 0},
    {"l3 1x1 256->1024 @14", 256, 1024, 1, 1, 0, 14, 6, 1},
    {"l3 ds 1x1/2 512->1024 @28", 512, 1024, 1, 2, 0, 28, 1, 0},
    {"l3 1x1 1024->256 @14", 1024, 256, 1, 1, 0, 14, 5, 0},
    {"l3 3x3 256 @14", 256, 256, 3, 1, 1, 14, 5, 0},
    {"l4 1x1 1024->512 @14", 1024, 512, 1, 1, 0, 14, 1, 0},
    {"l4 3x3/2 512 @14", 512, 512, 3, 2, 1, 14, 1, 0},
    {"l4 1x1 512->2048 @7", 512, 2048, 1, 1, 0, 7, 3, 1},
    {"l4 ds 1x1/2 1024->2048 @14", 1024, 2048, 1, 2, 0, 14, 1, 0},
    {"l4 1x1 2048->512 @7", 2048, 512, 1, 1, 0, 7, 2, 0},
    {"l4 3x3 512 @7", 512, 512, 3, 1, 1, 7, 2, 0},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0], MAXB = 8 };


static float *rnd(size_t n) {
  float *v = aligned_alloc(64, (n * sizeof *v + 63) / 64 * 64);
  if (!v) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) v[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
  return v;
}

enum { BENCH_SETTLE_MS = 500 }; /* untimed calls on a new pool (bench_pool) */

/* One pool per thread count for the whole run. A new worker starts on its creator's
 * CPU and the scheduler moved it only after 50-500 ms here: before, the first shapes'
 * 2-thread times were their 1-thread ones. So a new pool first runs the caller's conv
 * untimed for BENCH_SETTLE_MS. */
static pool_t *pools[9]; /* by thread count; main destroys them */
static pool_t *bench_pool(int threads, const kern_ctx_t *kc, const kern_conv_t *p,
                          const float *in, int n, int h, float *out, int o, const float *res) {
  if (threads < 2) return NULL;
  if (threads > 8) exit(1);
  if (!pools[threads]) {
    if (pool_create(threads, &pools[threads])) exit(1);
    kern_ctx_t k = *kc;
    k.pool = pools[threads];
    for (double w0 = bench_wall_ms(); bench_wall_ms() - w0 < BENCH_SETTLE_MS;)
      kern_conv2d(&k, p, in, n, h, h, out, o, o, res);
  }
  return pools[threads];
}

/* BENCH_COLD=1 and 2: evict the caches before each timed call, as a network's forward
 * meets each layer's weights (the sum of all weights is far larger than L3). */
static int g_cold;
static void evict_caches(void) {
  static float *junk;
  enum { JUNK = 24 << 20 }; /* 96 MB */
  if (!junk) junk = rnd(JUNK);
  for (size_t i = 0; i < JUNK; i += 16) junk[i] += 1.0f;
}

/* BENCH_COLD=4: tid t rewrites its share of the input in place. */
typedef struct {
  float *p;
  size_t n;
} touch_job_t;
static void touch_task(void *arg, int tid, int nt) {
  touch_job_t *j = arg;
  size_t b, e;
  pool_split(j->n, tid, nt, &b, &e);
  for (size_t i = b; i < e; i++) j->p[i] += 0.0f;
}

static int out_side(const shape_t *s) { return (s->h + 2 * s->pad - s->k) / s->s + 1; }

static double flops(const shape_t *s, int n) {
  double o = out_side(s);
  return 2.0 * n * s->cout * o * o * s->cin * s->k * s->k;
}

/* Best ms of kern_conv2d for shape s at n images on `threads` threads. */
static double time_conv(const shape_t *s, int n, int threads, int reps) {
  int o = out_side(s);
  kern_conv_t p = {s->cin, s->cout, s->k, s->k, s->s, s->s, s->pad, s->pad, s->pad, s->pad,
                   NULL, NULL, 1, NULL, NULL, o, o, 0, 0, 0, 0, 0, {0}, {0}};
  float *w = rnd((size_t)s->cout * s->cin * s->k * s->k), *bias = rnd((size_t)s->cout);
  float *in = rnd((size_t)n * s->cin * s->h * s->h), *out = rnd((size_t)n * s->cout * o * o);
  float *res = s->residual ? rnd((size_t)n * s->cout * o * o) : NULL;
  p.weight = w, p.bias = bias;
  kern_conv_prepare(&p);
  kern_ctx_t kc;
  size_t sf = kern_conv2d_scratch_floats(&p, s->h, s->h, o, o, threads);
  float *scr[8];
  for (int t = 0; t < threads; t++) scr[t] = rnd(sf ? sf : 1);
  kc.scratch = scr, kc.scratch_floats = sf;
  kc.pool = NULL; /* bench_pool's settling calls copy kc */
  kc.pool = bench_pool(threads, &kc, &p, in, n, s->h, out, o, res);
  double t[64];
  for (int r = -2; r < reps; r++) {
    if (g_cold && g_cold < 3) evict_caches();
    if (g_cold == 3) { /* only the weights flushed (clflush: no dirty junk to write back) */
      size_t planes = p.packed ? (size_t)(p.wino_m + 2) * (size_t)(p.wino_m + 2) : 1; /* U */
      int k = p.packed ? s->cin : s->cin * s->k * s->k;
      size_t bytes = planes * kern_sgemm_packed_floats(s->cout, k) * sizeof(float);
      const char *base = p.packed ? (const char *)p.packed : (const char *)p.gemm_a;
      for (size_t i = 0; base && i < bytes; i += 64) _mm_clflush(base + i);
      _mm_mfence();
    }
    if (g_cold == 4 && kc.pool) { /* the input as a row split leaves it (see the top) */
      touch_job_t tj = {in, (size_t)n * s->cin * s->h * s->h};
      pool_run(kc.pool, touch_task, &tj);
    }
    if (g_cold == 2) { /* weights cold, activations warm */
      volatile float sink = 0;
      for (size_t i = 0; i < (size_t)n * s->cin * s->h * s->h; i += 16) sink += in[i];
      for (size_t i = 0; i < (size_t)n * s->cout * o * o; i += 16) out[i] = 0, sink += res ? res[i] : 0;
    }
    double t0 = threads == 1 ? bench_cpu_ms() : bench_wall_ms(); /* one thread: its CPU time, which preemption does not inflate */
    kern_conv2d(&kc, &p, in, n, s->h, s->h, out, o, o, res);
    if (r >= 0) t[r] = (threads == 1 ? bench_cpu_ms() : bench_wall_ms()) - t0;
  }
  qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
  for (int i = 0; i < threads; i++) free(scr[i]);
  kern_conv_release(&p);
  free(w), free(bias), free(in), free(out), free(res);
  return t[0];
}

/* Best ms of one cblas_sgemm with M = cout, N = n*oh*ow, K (OpenBLAS threads). */
static double time_sgemm(const shape_t *s, int n, int reps) {
  int o = out_side(s), m = s->cout, k = s->cin * s->k * s->k, cols = n * o * o;
  float *a = rnd((size_t)m * k), *b = rnd((size_t)k * cols), *c = rnd((size_t)m * cols);
  double t[64];
  for (int r = -2; r < reps; r++) {
    double t0 = bench_wall_ms();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, cols, k, 1, a, k, b, cols, 0, c,
                cols);
    if (r >= 0) t[r] = bench_wall_ms() - t0;
  }
  qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
  free(a), free(b), free(c);
  return t[0];
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 15;
  const char *only = argc > 2 ? argv[2] : NULL;
  if (reps < 1 || reps > 64) reps = 15;
  static const int cfg[4][2] = {{1, 1}, {1, 2}, {8, 1}, {8, 2}}; /* batch, threads */
  static double ours[NSHAPES][4], ceil_ms[NSHAPES][2];
  g_cold = getenv("BENCH_COLD") ? atoi(getenv("BENCH_COLD")) : 0;
  cnn_blas_single_thread();
  for (int i = 0; i < NSHAPES; i++)
    for (int c = 0; c < 4 && (!only || strstr(shapes[i].name, only)); c++) ours[i][c] = time_conv(&shapes[i], cfg[c][0], cfg[c][1], reps);
  for (int t = 0; t < 9; t++) pool_destroy(pools[t]);
  openblas_set_num_threads(2); /* the ceiling runs last: OpenBLAS's threads spin after use */
  for (int i = 0; i < NSHAPES; i++)
    for (int b = 0; b < 2 && (!only || strstr(shapes[i].name, only)); b++) ceil_ms[i][b] = time_sgemm(&shapes[i], b ? MAXB : 1, reps);
  printf("%-28s %3s | %-15s %-15s %-15s | %-15s %-15s %-15s\n", "shape (bias+relu[+res])", "x",
         "b1 t1 ms GF/s", "b1 t2 ms GF/s", "b1 sgemm2t", "b8 t1 ms GF/s", "b8 t2 ms GF/s",
         "b8 sgemm2t");
  double tot[6] = {0}, totf = 0;
  for (int i = 0; i < NSHAPES; i++) {
    const shape_t *s = &shapes[i];
    if (only && !strstr(s->name, only)) continue;
    double f1 = flops(s, 1) / 1e6, f8 = flops(s, MAXB) / 1e6; /* MFLOP: / ms = GFLOP/s */
    double v[6] = {ours[i][0], ours[i][1], ceil_ms[i][0], ours[i][2], ours[i][3], ceil_ms[i][1]};
    printf("%-28s %3d |", s->name, s->count);
    for (int c = 0; c < 6; c++) {
      printf(" %6.3f %6.1f  ", v[c], (c < 3 ? f1 : f8) / v[c]);
      tot[c] += s->count * v[c];
      if (c == 2) printf("|");
    }
    printf("\n");
    totf += s->count * f1;
  }
  printf("ResNet-50 conv total (%.2f GFLOP/img): b1 t1 %.2f ms, b1 t2 %.2f ms, b1 sgemm2t %.2f ms;"
         " b8 t1 %.2f ms, b8 t2 %.2f ms, b8 sgemm2t %.2f ms (%.2f ms/img at t2)\n",
         totf / 1e3, tot[0], tot[1], tot[2], tot[3], tot[4], tot[5], tot[4] / MAXB);
  return 0;
}
