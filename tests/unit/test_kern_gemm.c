/* test_kern_gemm.c — ONNX Gemm (all transposes, alpha/beta, C broadcasts), MatMul,
 * and concurrent single-threaded sgemm calls from several threads.
 * Tolerance: 1e-5 * (sum of |terms|) + 1e-6, as for the convolution (see
 * test_kern_conv.c): far above float32 summation error, far below any wrong index. */
#include <criterion/criterion.h>
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "cnn.h"
#include "ref.h"

static void gemm_check(ref_rng_t *rng, int ta, int tb, int m, int n, int k, int crows,
                       int ccols, int threads) {
  float alpha = ref_uniform(rng, -2, 2), beta = ref_uniform(rng, -2, 2);
  float *a = ref_random(rng, (size_t)m * k, -1, 1), *b = ref_random(rng, (size_t)k * n, -1, 1);
  float *c = crows ? ref_random(rng, (size_t)crows * ccols, -1, 1) : NULL;
  float *y = ref_random(rng, (size_t)m * n, 50, 60);
  double *want = malloc((size_t)m * n * sizeof *want), *mag = malloc((size_t)m * n * sizeof *mag);
  ref_kctx_t t;
  ref_kctx_init(&t, threads, 0);
  kern_gemm(&t.kc, ta, tb, m, n, k, alpha, a, b, beta, c, crows, ccols, y);
  ref_gemm(ta, tb, m, n, k, alpha, a, b, beta, c, crows, ccols, want, mag);
  long bad = ref_mismatch(y, want, mag, (size_t)m * n, 1e-5, 1e-6);
  cr_assert_eq(bad, -1, "ta%d tb%d %dx%dx%d C %dx%d thr %d: [%ld]", ta, tb, m, n, k, crows,
               ccols, threads, bad);
  ref_kctx_deinit(&t);
  free(a), free(b), free(c), free(y), free(want), free(mag);
}

Test(kern_gemm, transposes_and_c_broadcasts) {
  ref_rng_t rng = {11};
  /* m <= 8 with B transposed: the classifier-head dots (four weight rows at a time,
   * then single columns; k over several vector steps and a tail) */
  static const int dims[][3] = {{1, 1000, 64}, {37, 5, 19}, {8, 100, 33}, {64, 64, 1},
                                {3, 2, 7},     {1, 7, 45},  {5, 38, 259}};
  cnn_blas_single_thread();
  for (int d = 0; d < (int)(sizeof dims / sizeof dims[0]); d++)
    for (int tr = 0; tr < 4; tr++)
      for (int cs = 0; cs < 5; cs++) {
        int m = dims[d][0], n = dims[d][1], k = dims[d][2];
        int cshape[5][2] = {{0, 0}, {1, 1}, {1, n}, {m, 1}, {m, n}}; /* NULL, scalar, [N], [M,1], [M,N] */
        gemm_check(&rng, tr & 1, tr >> 1, m, n, k, cshape[cs][0], cshape[cs][1], 1 + (d + cs) % 3);
      }
}

Test(kern_gemm, matmul_batched) {
  ref_rng_t rng = {12};
  cnn_blas_single_thread();
  int batch = 3, m = 5, k = 17, n = 11;
  float *a = ref_random(&rng, (size_t)batch * m * k, -1, 1), *b = ref_random(&rng, (size_t)k * n, -1, 1);
  float *y = malloc((size_t)batch * m * n * sizeof *y);
  double *want = malloc((size_t)m * n * sizeof *want), *mag = malloc((size_t)m * n * sizeof *mag);
  for (int thr = 1; thr <= 3; thr++) {
    ref_kctx_t t;
    ref_kctx_init(&t, thr, 0);
    kern_matmul(&t.kc, a, batch, m, k, b, n, y);
    for (int i = 0; i < batch; i++) {
      ref_gemm(0, 0, m, n, k, 1, a + (size_t)i * m * k, b, 0, NULL, 0, 0, want, mag);
      cr_assert_eq(ref_mismatch(y + (size_t)i * m * n, want, mag, (size_t)m * n, 1e-5, 1e-6), -1);
    }
    ref_kctx_deinit(&t);
  }
  free(a), free(b), free(y), free(want), free(mag);
}

/* Several threads each calling single-threaded OpenBLAS sgemm at once, on shapes big
 * enough to use OpenBLAS's packing buffers: the results must match the reference. */
typedef struct {
  int id, failures;
} blas_thread_t;

static void *blas_worker(void *arg) {
  blas_thread_t *bt = arg;
  ref_rng_t rng = {1000 + (uint64_t)bt->id};
  for (int r = 0; r < 6; r++) {
    int m = 64 + 13 * bt->id + r, n = 96 + 7 * r, k = 200 + 5 * bt->id;
    float *a = ref_random(&rng, (size_t)m * k, -1, 1), *b = ref_random(&rng, (size_t)k * n, -1, 1);
    float *c = malloc((size_t)m * n * sizeof *c);
    double *want = malloc((size_t)m * n * sizeof *want), *mag = malloc((size_t)m * n * sizeof *mag);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
    ref_gemm(0, 0, m, n, k, 1, a, b, 0, NULL, 0, 0, want, mag);
    bt->failures += ref_mismatch(c, want, mag, (size_t)m * n, 1e-5, 1e-6) != -1;
    free(a), free(b), free(c), free(want), free(mag);
  }
  return NULL;
}

Test(kern_gemm, concurrent_single_threaded_sgemm) {
  cnn_blas_single_thread();
  pthread_t th[4];
  blas_thread_t bt[4];
  for (int i = 0; i < 4; i++) {
    bt[i] = (blas_thread_t){i, 0};
    cr_assert_eq(pthread_create(&th[i], NULL, blas_worker, &bt[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(bt[i].failures, 0, "thread %d", i);
  }
}
