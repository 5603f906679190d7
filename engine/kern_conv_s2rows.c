/*
 * kern_conv_s2rows.c — stride-2 convolutions with wide kernels (the 7x7/2 stems of
 * ResNet and GoogLeNet) without a lowered matrix: one product per output row, its B
 * rows read in place from the input's column phases.
 *
 * Output (oy, ox) reads input (2 oy + ky - pad_t, 2 ox + kx - pad_l). Write
 * kx - pad_l = 2 off + par (par in {0, 1}): the tap reads column phase par of the input
 * row, E_par(x) = in(2 x + par), at x = ox + off. With each phase row stored from
 * x = -S2R_M on (zero outside the row), tap (ci, ky, kx)'s values along output row oy are
 * a plain run of ow floats at a fixed offset from that row's phase rows: the conv is,
 * row by row, C[cout x ow] = W[cout x cin kh kw] B, with B's rows given by offsets
 * (kern_sgemm_run_ind) and the epilogue (bias, residual, ReLU) applied as the product
 * is stored straight into the output. The weights are packed as for the im2col path
 * (K in ONNX order: ci, ky, kx).
 *
 * The im2col path wrote and re-read a K x columns lowering (147 rows per output column
 * of the stems: 7.4 MB a 224x224 image), from rows it had already split into even and
 * odd columns. Session 32 (Zen 5, 2 threads, processes alternating with the im2col
 * path, per-node minima / medians): ResNet-50's stem at batch 1 0.611 / 0.686 -> 0.599 /
 * 0.664 ms, at batch 8 5.16 / 5.60 -> 4.99 / 5.28 ms; GoogLeNet's at batch 1 0.594 /
 * 0.657 -> 0.589 / 0.645. Each output row is still a short product (K = 147, 112
 * columns), whose per-tile stores keep it at about 400 GFLOP/s. Here each thread
 * splits only the input rows of the output rows it claims (chunks of S2R_ROWS, each
 * thread its own range first, kern_claim.h) into its scratch, 2 (S2R_ROWS - 1) + kh rows
 * of both phases per channel (kern_im2col_split_row, as the im2col path splits them), and
 * multiplies them in place.
 *
 * AVX-512 builds with the engine's sgemm only (others keep the im2col path). The sums
 * run over K in the same order as the im2col product's, so the results are the same
 * bits.
 */
#include <string.h>

#include "cnn.h"
#include "kern_claim.h"
#include "kern_internal.h"
#include "kern_sgemm.h"

enum {
  S2R_ROWS = 8,        /* output rows per claimed chunk */
  S2R_M = KERN_SPLIT_MARGIN, /* phase positions kept left of x = 0: pad_l <= 2 S2R_M - 1 */
  S2R_MAX_K = 1024,    /* cin kh kw at most (the offsets live in scratch) */
  S2R_MAX_OW = 1024    /* output rows at most this wide */
};

int kern_s2rows_eligible(const kern_conv_t *p) {
#if defined(__AVX512F__)
  long k = (long)p->cin * p->kh * p->kw;
  return kern_sgemm_available() && p->stride_h == 2 && p->stride_w == 2 && p->kw >= 5 &&
         p->kh >= 1 && p->pad_l <= 2 * S2R_M - 1 && p->pad_l >= 0 && p->pad_t >= 0 &&
         p->pad_r >= 0 && p->pad_b >= 0 && k <= S2R_MAX_K && p->cout >= 1;
#else
  (void)p;
  return 0;
#endif
}

/* Floats of one phase row: S2R_M positions left of 0, then the larger of what the taps
 * read, ow + (kw - 1 - pad_l) / 2 + 1, and the row's (w + 1) / 2, in whole vectors. */
static size_t s2r__rowlen(const kern_conv_t *p, int w, int ow) {
  int right = (p->kw - 1 - p->pad_l) / 2 + 1; /* largest off + 1 */
  size_t reach = (size_t)ow + (size_t)(right < 1 ? 1 : right), half = ((size_t)w + 1) / 2;
  return ((size_t)S2R_M + (reach > half ? reach : half) + 15) / 16 * 16;
}

/* Input rows a chunk of S2R_ROWS output rows reads. */
static size_t s2r__rows(const kern_conv_t *p) { return 2 * (S2R_ROWS - 1) + (size_t)p->kh; }

static size_t s2r__offs_floats(const kern_conv_t *p) {
  size_t k = (size_t)p->cin * (size_t)p->kh * (size_t)p->kw;
  return (k * sizeof(ptrdiff_t) / sizeof(float) + 15) / 16 * 16;
}

size_t kern_s2rows_scratch_floats(const kern_conv_t *p, int w, int ow) {
  if (ow > S2R_MAX_OW || w > 2 * S2R_MAX_OW + p->kw) return 0;
  return (size_t)p->cin * 2 * s2r__rows(p) * s2r__rowlen(p, w, ow) + s2r__offs_floats(p);
}

#if defined(__AVX512F__)
typedef struct {
  const kern_ctx_t *kc;
  const kern_conv_t *p;
  const float *in, *residual;
  float *out;
  int n, h, w, oh, ow;
  size_t rowlen, rows, chunks_img, chunks;
  kern_claim_t claim;
} s2r_job_t;

/* B's row offsets: tap (ci, ky, kx) at channel ci's phase par's row ky (relative to the
 * chunk's first output row), position off + S2R_M. */
static void s2r__offsets(const s2r_job_t *j, ptrdiff_t *offs) {
  const kern_conv_t *p = j->p;
  size_t i = 0;
  for (int ci = 0; ci < p->cin; ci++)
    for (int ky = 0; ky < p->kh; ky++)
      for (int kx = 0; kx < p->kw; kx++, i++) {
        int s = kx - p->pad_l, par = s & 1, off = (s - par) / 2;
        offs[i] = (ptrdiff_t)((((size_t)ci * 2 + (size_t)par) * j->rows + (size_t)ky) * j->rowlen) +
                  (ptrdiff_t)(off + S2R_M);
      }
}

/* Output rows [oy0, oy1) of image img: their input rows split into planes, then one
 * product per output row. */
static void s2r__chunk(const s2r_job_t *j, size_t img, int oy0, int oy1, float *planes,
                       const ptrdiff_t *offs) {
  const kern_conv_t *p = j->p;
  size_t hw = (size_t)j->h * (size_t)j->w, cols = (size_t)j->oh * (size_t)j->ow;
  int iy0 = 2 * oy0 - p->pad_t, nrows = 2 * (oy1 - oy0 - 1) + p->kh;
  for (int ci = 0; ci < p->cin; ci++) {
    const float *plane = j->in + (img * (size_t)p->cin + (size_t)ci) * hw;
    float *e = planes + (size_t)ci * 2 * j->rows * j->rowlen, *o = e + j->rows * j->rowlen;
    for (int r = 0; r < nrows; r++) {
      int iy = iy0 + r;
      float *er = e + (size_t)r * j->rowlen, *orow = o + (size_t)r * j->rowlen;
      if (iy >= 0 && iy < j->h)
        kern_im2col_split_row(plane + (size_t)iy * (size_t)j->w, j->w, er, orow, j->rowlen);
      else
        memset(er, 0, j->rowlen * sizeof *er), memset(orow, 0, j->rowlen * sizeof *orow);
    }
  }
  float *out = j->out + img * kern_conv_out_img(p, cols);
  const float *res = j->residual ? j->residual + img * kern_conv_out_img(p, cols) : NULL;
  int k = p->cin * p->kh * p->kw;
  for (int oy = oy0; oy < oy1; oy++) {
    size_t o = (size_t)oy * (size_t)j->ow;
    kern_sgemm_epi_t epi = {.bias = p->bias, .res = res ? res + o : NULL, .ldr = cols,
                            .relu = p->relu};
    kern_sgemm_run_ind(p->gemm_a, k, 0, p->cout, planes + (size_t)(2 * (oy - oy0)) * j->rowlen,
                       offs, (size_t)j->ow, out + o, cols, &epi);
  }
}

static void s2r__run(void *arg, int tid, int nt) {
  s2r_job_t *j = arg;
  (void)nt;
  float *planes = j->kc->scratch[tid];
  ptrdiff_t *offs = (ptrdiff_t *)(void *)(planes + (size_t)j->p->cin * 2 * j->rows * j->rowlen);
  s2r__offsets(j, offs);
  for (size_t u; kern_claim_next(&j->claim, tid, &u);) {
    size_t img = u / j->chunks_img, c = u % j->chunks_img;
    int oy0 = (int)(c * S2R_ROWS), oy1 = oy0 + S2R_ROWS < j->oh ? oy0 + S2R_ROWS : j->oh;
    s2r__chunk(j, img, oy0, oy1, planes, offs);
  }
}
#endif

void kern_s2rows_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n,
                        int h, int w, float *out, int oh, int ow, const float *residual) {
#if defined(__AVX512F__)
  s2r_job_t j = {.kc = kc, .p = p, .in = in, .residual = residual, .out = out, .n = n,
                 .h = h, .w = w, .oh = oh, .ow = ow};
  if (n <= 0 || oh <= 0 || ow <= 0) return;
  j.rowlen = s2r__rowlen(p, w, ow);
  j.rows = s2r__rows(p);
  j.chunks_img = ((size_t)oh + S2R_ROWS - 1) / S2R_ROWS;
  j.chunks = (size_t)n * j.chunks_img;
  kern_claim_init(&j.claim, j.chunks, kern_threads(kc));
  pool_run(kc->pool, s2r__run, &j);
#else
  (void)kc, (void)p, (void)in, (void)n, (void)h, (void)w, (void)out, (void)oh, (void)ow,
      (void)residual;
#endif
}
