/*
 * kern_gemm.c — ONNX Gemm and MatMul on top of single-threaded cblas_sgemm.
 *
 * The output is split between threads by rows when M is the larger side and by
 * columns otherwise (a classifier head at batch 1 is M = 1, N = 1000). Each
 * thread first writes beta*C broadcast into its block of Y, then accumulates
 * alpha*op(A)op(B) into it with sgemm (beta 1), so C is read once and Y is
 * written by exactly one thread. No allocation.
 *
 * A classifier head at small batch (A not transposed, B transposed: Y = X W^T with
 * W stored N x K, at most GEMM_DOT_ROWS rows of X) is a few dot products per weight
 * row: gemm__dots computes them directly, four weight rows at a time (gemm__dot4,
 * partial sums one register wide), so each weight row is read once from memory and
 * used for every image while in L1; sgemm would first copy all of W into its packed
 * format, on every call. Every image's row goes through the same gemm__dot4 sums, so
 * a batch's rows equal their batch-1 results bit for bit.
 */
#include <cblas.h>
#include <string.h>

#include "kern_internal.h"

enum { GEMM_COL_ALIGN = 16 };

typedef struct {
  int ta, tb, m, n, k;
  float alpha, beta;
  const float *a, *b, *c;
  int c_rows, c_cols;
  float *y;
} gemm_job_t;

/* Y[r0:r1, n0:n1] = beta * C broadcast; returns the sgemm beta to use next. */
static float gemm__init_c(const gemm_job_t *j, int r0, int r1, int n0, int n1) {
  if (!j->c || j->beta == 0.0f) return 0.0f;
  for (int r = r0; r < r1; r++) {
    const float *crow = j->c + (j->c_rows == 1 ? 0 : (size_t)r * (size_t)j->c_cols);
    float *yrow = j->y + (size_t)r * (size_t)j->n;
    if (j->c_cols == 1)
      for (int col = n0; col < n1; col++) yrow[col] = j->beta * crow[0];
    else
      for (int col = n0; col < n1; col++) yrow[col] = j->beta * crow[col];
  }
  return 1.0f;
}

enum { GEMM_DOT_ROWS = 8, GEMM_DOT_AHEAD = 512 /* floats: prefetch distance per row */ };

/* The dots' vectors are one register wide: 16 lanes with AVX-512, 8 with AVX, 4 with
 * SSE. GCC splits a wider generic vector into pieces but then keeps the accumulators on
 * the stack: with 64-byte vectors an AVX2 build spilled every partial sum, with no FMA,
 * and ResNet-50's head took 4.0 ms at batch 8 (2.9 ms with the weights in cache, 11
 * GFLOP/s on 2 threads) where its 8 MB of weights stream in well under 1 ms. */
#if defined(__AVX512F__)
#define GEMM_VL 16
#elif defined(__AVX__)
#define GEMM_VL 8
#else
#define GEMM_VL 4
#endif
typedef float gemm_vf __attribute__((vector_size(GEMM_VL * sizeof(float))));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* static helpers only: the ABI note is moot */
#endif

/* dot(x, w) over k: 2 GEMM_VL partial sums in two vectors, then the lanes, then the
 * tail. */
static float gemm__dot(const float *x, const float *w, int k) {
  gemm_vf s0 = {0}, s1 = {0};
  int i = 0;
  for (; i + 2 * GEMM_VL <= k; i += 2 * GEMM_VL) {
    gemm_vf a0, a1, b0, b1;
    memcpy(&a0, x + i, sizeof a0), memcpy(&a1, x + i + GEMM_VL, sizeof a1);
    memcpy(&b0, w + i, sizeof b0), memcpy(&b1, w + i + GEMM_VL, sizeof b1);
    s0 += a0 * b0, s1 += a1 * b1;
  }
  s0 += s1;
  float s = 0.0f;
  for (int l = 0; l < GEMM_VL; l++) s += s0[l];
  for (; i < k; i++) s += x[i] * w[i];
  return s;
}

/* Four dots of x with consecutive weight rows w, w + k, ..: eight independent
 * chains of partial sums where one row's dot has two, and four streams for the
 * prefetcher (the weights come from memory: ResNet-50's head is 8 MB). */
static void gemm__dot4(const float *x, const float *w, int k, float out[4]) {
  gemm_vf s[4][2] = {{{0}}};
  int i = 0;
  for (; i + 2 * GEMM_VL <= k; i += 2 * GEMM_VL) {
    gemm_vf a0, a1;
    memcpy(&a0, x + i, sizeof a0), memcpy(&a1, x + i + GEMM_VL, sizeof a1);
    for (int q = 0; q < 4; q++) {
      const float *wq = w + (size_t)q * (size_t)k + i;
      gemm_vf b0, b1;
      memcpy(&b0, wq, sizeof b0), memcpy(&b1, wq + GEMM_VL, sizeof b1);
      for (int f = 0; f < 2 * GEMM_VL; f += 16) /* a line a prefetch (SSE: half a line) */
        __builtin_prefetch(wq + GEMM_DOT_AHEAD + f);
      s[q][0] += a0 * b0, s[q][1] += a1 * b1;
    }
  }
  for (int q = 0; q < 4; q++) {
    gemm_vf t = s[q][0] + s[q][1];
    float v = 0.0f;
    for (int l = 0; l < GEMM_VL; l++) v += t[l];
    for (int p = i; p < k; p++) v += x[p] * w[(size_t)q * (size_t)k + p];
    out[q] = v;
  }
}

/* Y[r0:r1, n0:n1] (+)= alpha * A[r] . B[col] for A not transposed, B transposed. */
static void gemm__dots(const gemm_job_t *j, int r0, int r1, int n0, int n1, float beta) {
  int col = n0;
  for (; col + 4 <= n1; col += 4)
    for (int r = r0; r < r1; r++) {
      float d[4];
      gemm__dot4(j->a + (size_t)r * (size_t)j->k, j->b + (size_t)col * (size_t)j->k, j->k, d);
      float *y = j->y + (size_t)r * (size_t)j->n + col;
      for (int q = 0; q < 4; q++) y[q] = beta != 0.0f ? y[q] + j->alpha * d[q] : j->alpha * d[q];
    }
  for (; col < n1; col++) {
    const float *w = j->b + (size_t)col * (size_t)j->k;
    for (int r = r0; r < r1; r++) {
      float *y = j->y + (size_t)r * (size_t)j->n + col;
      float d = j->alpha * gemm__dot(j->a + (size_t)r * (size_t)j->k, w, j->k);
      *y = beta != 0.0f ? *y + d : d;
    }
  }
}

static void gemm__block(const gemm_job_t *j, int r0, int r1, int n0, int n1) {
  if (r0 >= r1 || n0 >= n1) return;
  float beta = gemm__init_c(j, r0, r1, n0, n1);
  if (!j->ta && j->tb && r1 - r0 <= GEMM_DOT_ROWS) {
    gemm__dots(j, r0, r1, n0, n1, beta);
    return;
  }
  /* op(A) rows r0.. and op(B) columns n0.. as sub-matrices of the originals */
  const float *a = j->ta ? j->a + r0 : j->a + (size_t)r0 * (size_t)j->k;
  const float *b = j->tb ? j->b + (size_t)n0 * (size_t)j->k : j->b + n0;
  int lda = j->ta ? j->m : j->k, ldb = j->tb ? j->k : j->n;
  if (j->k == 0) {
    for (int r = r0; r < r1 && beta == 0.0f; r++)
      for (int col = n0; col < n1; col++) j->y[(size_t)r * (size_t)j->n + col] = 0.0f;
    return;
  }
  cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans,
              j->tb ? CblasTrans : CblasNoTrans, r1 - r0, n1 - n0, j->k, j->alpha, a, lda, b,
              ldb, beta, j->y + (size_t)r0 * (size_t)j->n + n0, j->n);
}

static void gemm__task(void *arg, int tid, int nt) {
  const gemm_job_t *j = arg;
  size_t b, e;
  if (j->m >= j->n) {
    pool_split((size_t)j->m, tid, nt, &b, &e);
    gemm__block(j, (int)b, (int)e, 0, j->n);
  } else {
    size_t units = ((size_t)j->n + GEMM_COL_ALIGN - 1) / GEMM_COL_ALIGN;
    pool_split(units, tid, nt, &b, &e);
    int n0 = (int)(b * GEMM_COL_ALIGN), n1 = (int)(e * GEMM_COL_ALIGN);
    gemm__block(j, 0, j->m, n0, n1 < j->n ? n1 : j->n);
  }
}

void kern_gemm(const kern_ctx_t *kc, int trans_a, int trans_b, int m, int n, int k,
               float alpha, const float *a, const float *b, float beta, const float *c,
               int c_rows, int c_cols, float *y) {
  gemm_job_t j = {trans_a, trans_b, m, n, k, alpha, beta, a, b, c, c_rows, c_cols, y};
  if (m <= 0 || n <= 0) return;
  pool_run(kc->pool, gemm__task, &j);
}

void kern_matmul(const kern_ctx_t *kc, const float *a, int batch, int m, int k,
                 const float *bmat, int n, float *y) {
  /* the batched A matrices are contiguous, so this is one (batch*M) x K product */
  kern_gemm(kc, 0, 0, batch * m, n, k, 1.0f, a, bmat, 0.0f, NULL, 0, 0, y);
}
