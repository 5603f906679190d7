/*
 * kern_conv_poly.c — 3x3 stride-2 convolutions (padding 1) without a lowering.
 *
 * Output (oy, ox) reads input (2 oy + ky - 1, 2 ox + kx - 1). Split the input into its
 * four phase planes P[a][b](y, x) = in(2y + a, 2x + b), each stored with one zero row
 * above and one zero column on the left, rows W1 = ow + 1 wide. Tap (ky, kx) then reads
 * phase ((ky + 1) & 1, (kx + 1) & 1) at (oy + dy, ox + dx) with dy, dx in {-1, 0}, and
 * over an output grid of oh x W1 columns (one column per row computed and dropped) that
 * is the plane itself shifted by (dy + 1) W1 + (dx + 1) floats: a plain strided matrix.
 * So the conv is one product of K = 9 cin whose B rows are read in place, each at its
 * offset into the planes (kern_sgemm_run_ind; weights packed tap by tap at load),
 * where the im2col path wrote and re-read a K = 9 cin lowered matrix (a quarter of
 * ResNet-50's 56x56 3x3/2 conv on one thread). Nine products of K = cin, one per tap,
 * accumulating into C, had been 3-5% slower (C read and written nine times):
 * 1.06-1.07 -> 1.01-1.03 ms for both of ResNet-50's on one thread.
 *
 * Measured, one thread in a ResNet-50 forward: the 56x56 -> 28x28 conv 1.16-1.20 ->
 * 1.07-1.10 ms; on 2 threads 0.65 -> 0.57-0.60 ms and the 28x28 -> 14x14 one 0.62-0.67
 * -> 0.56-0.57 ms. With 64 input channels (ResNet-18's) the per-tap products are short
 * and it comes out even.
 *
 * Per image: the threads split the planes by channels (into thread 0's scratch), then
 * share the products by blocks of output columns (or by output channels when the map
 * is small), each with its own C block in its scratch, and write the kept columns with
 * the epilogue. The order of the sums depends only on the layer, so a batch's rows
 * equal their batch-1 forwards bit for bit. Taken for maps of more than
 * POLY_MIN_COLS outputs: smaller ones go to kern_conv.c's K-sliced groups, which
 * also share the weights across a batch's images.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "kern_claim.h"
#include "kern_internal.h"
#include "mem.h"
#include "kern_sgemm.h"
#include "kern_simd.h"

enum {
  POLY_MIN_COLS = 100,  /* more outputs than this per image */
  POLY_BLOCK = 192,     /* output columns (of the oh x W1 grid) per product block */
  POLY_ROWSPLIT = 160,  /* fewer columns than this per thread: split output channels */
  POLY_ROW_ALIGN = 16
};

int kern_poly_eligible(const kern_conv_t *p) {
#if defined(__AVX512F__)
  return kern_sgemm_available() && p->kh == 3 && p->kw == 3 && p->stride_h == 2 &&
         p->stride_w == 2 && p->pad_t == 1 && p->pad_l == 1 && p->pad_b == 1 &&
         p->pad_r == 1 && (long)p->map_oh * p->map_ow > POLY_MIN_COLS;
#else
  (void)p;
  return 0;
#endif
}

int kern_poly_prepare(kern_conv_t *p) {
  size_t cin = (size_t)p->cin, cout = (size_t)p->cout, k = 9 * cin;
  float *a = malloc(cout * k * sizeof *a);
  if (!a || !(p->gemm_a = cnn_mem_alloc(kern_sgemm_packed_floats(p->cout, (int)k) * sizeof(float)))) {
    free(a);
    free(p->gemm_a);
    p->gemm_a = NULL;
    return CNN_ENOMEM;
  }
  for (size_t co = 0; co < cout; co++) /* tap-major: A[co][t * cin + ci] = W[co][ci][t] */
    for (size_t ci = 0; ci < cin; ci++)
      for (size_t t = 0; t < 9; t++) a[co * k + t * cin + ci] = p->weight[(co * cin + ci) * 9 + t];
  kern_sgemm_pack(a, p->cout, (int)k, k, p->gemm_a);
  free(a);
  p->poly = 1;
  return 0;
}

/* One phase plane: (oh + 2) rows of W1 = ow + 1, rounded up to whole vectors. */
static size_t poly__plane(int oh, int ow) {
  return ((size_t)(oh + 2) * (size_t)(ow + 1) + 15) / 16 * 16;
}

/* Floats holding the 9 cin row offsets of the implicit lowering (ptrdiff_t each). */
static size_t poly__offs_floats(const kern_conv_t *p) {
  return (9 * (size_t)p->cin * sizeof(ptrdiff_t) / sizeof(float) + 15) / 16 * 16;
}

/* Thread 0 holds the planes, the row offsets and a C block, so every thread is given
 * as much. */
size_t kern_poly_scratch_floats(const kern_conv_t *p, int oh, int ow) {
  return 4 * (size_t)p->cin * poly__plane(oh, ow) + poly__offs_floats(p) +
         (size_t)p->cout * POLY_BLOCK;
}

typedef struct {
  const kern_ctx_t *kc;
  const kern_conv_t *p;
  const float *in, *residual; /* this image's */
  float *out, *planes;
  const ptrdiff_t *offs; /* B row t cin + ci of the product: planes + offs[.] */
  int h, w, oh, ow;
  size_t plane, q, blocks;
  kern_claim_t claim; /* column blocks, each thread its own range first (kern_claim.h) */
} poly_job_t;

#if defined(__AVX512F__)
/* Channels of tid's share into their four planes, zero margins included. */
static void poly__split(void *arg, int tid, int nt) {
  const poly_job_t *j = arg;
  size_t b, e, w1 = (size_t)j->ow + 1;
  pool_split((size_t)j->p->cin, tid, nt, &b, &e);
  for (size_t ci = b; ci < e; ci++) {
    const float *x = j->in + ci * (size_t)j->h * (size_t)j->w;
    for (int a = 0; a < 2; a++) {
      float *p0 = j->planes + ((size_t)(2 * a) * (size_t)j->p->cin + ci) * j->plane;
      float *p1 = j->planes + ((size_t)(2 * a + 1) * (size_t)j->p->cin + ci) * j->plane;
      for (int y = -1; y <= j->oh; y++) {
        float *r0 = p0 + (size_t)(y + 1) * w1, *r1 = p1 + (size_t)(y + 1) * w1;
        int iy = 2 * y + a;
        if (y < 0 || iy >= j->h) {
          memset(r0, 0, w1 * sizeof *r0), memset(r1, 0, w1 * sizeof *r1);
          continue;
        }
        const float *row = x + (size_t)iy * (size_t)j->w;
        r0[0] = r1[0] = 0.0f;
        for (int jx = 0; jx < j->ow; jx += 16) {
          int left = j->w - 2 * jx, n = j->ow - jx < 16 ? j->ow - jx : 16;
          __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
          __mmask16 m1 = left >= 32 ? (__mmask16)0xFFFF
                         : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
          __m512 lo = _mm512_maskz_loadu_ps(m0, row + 2 * jx);
          __m512 hi = _mm512_maskz_loadu_ps(m1, row + 2 * jx + 16);
          __mmask16 mo = (__mmask16)((1u << n) - 1);
          _mm512_mask_storeu_ps(r0 + 1 + jx, mo, kern_simd_even(lo, hi));
          _mm512_mask_storeu_ps(r1 + 1 + jx, mo, kern_simd_odd(lo, hi));
        }
      }
    }
  }
}

/* Row offsets of the product's B: row t cin + ci is channel ci's phase plane of tap t,
 * shifted by the tap. */
static void poly__offsets(const kern_conv_t *p, size_t plane, int ow, ptrdiff_t *offs) {
  size_t cin = (size_t)p->cin, w1 = (size_t)ow + 1;
  for (int t = 0; t < 9; t++) {
    int ky = t / 3, kx = t % 3, a = (ky + 1) & 1, b = (kx + 1) & 1;
    size_t off = (size_t)(ky == 0 ? 0 : 1) * w1 + (size_t)(kx == 0 ? 0 : 1);
    for (size_t ci = 0; ci < cin; ci++)
      offs[(size_t)t * cin + ci] = (ptrdiff_t)(((size_t)(2 * a + b) * cin + ci) * plane + off);
  }
}

/* Output channels [r0, r1) x grid columns [q0, q1): one product of K = 9 cin into c,
 * its B rows read in place from the planes, then the kept columns to the output with
 * the epilogue. */
static void poly__block(const poly_job_t *j, int r0, int r1, size_t q0, size_t q1, float *c) {
  const kern_conv_t *p = j->p;
  size_t w1 = (size_t)j->ow + 1, nc = q1 - q0;
  kern_sgemm_run_ind(p->gemm_a, 9 * p->cin, r0, r1, j->planes + q0, j->offs, nc, c, nc, NULL);
  size_t cols = (size_t)j->oh * (size_t)j->ow;
  for (size_t oy = q0 / w1; oy * w1 < q1; oy++) {
    size_t s = oy * w1 > q0 ? oy * w1 : q0, end = oy * w1 + (size_t)j->ow;
    if (end > q1) end = q1;
    if (s >= end) continue;
    size_t ox = s - oy * w1, len = end - s;
    for (int r = r0; r < r1; r++) {
      size_t o = (size_t)r * cols + oy * (size_t)j->ow + ox;
      memcpy(j->out + o, c + (size_t)(r - r0) * nc + (s - q0), len * sizeof(float));
      kern_conv_epi_row(j->out + o, j->residual ? j->residual + o : NULL,
                        p->bias ? p->bias[r] : 0.0f, len, p->relu);
    }
  }
}

/* The C block of thread tid: after the planes and offsets in thread 0's scratch. */
static float *poly__c(const poly_job_t *j, int tid) {
  return j->kc->scratch[tid] +
         (tid == 0 ? 4 * (size_t)j->p->cin * j->plane + poly__offs_floats(j->p) : 0);
}

static void poly__by_cols(void *arg, int tid, int nt) {
  poly_job_t *j = arg;
  (void)nt;
  for (size_t u; kern_claim_next(&j->claim, tid, &u);) {
    size_t q0 = u * POLY_BLOCK, q1 = q0 + POLY_BLOCK < j->q ? q0 + POLY_BLOCK : j->q;
    poly__block(j, 0, j->p->cout, q0, q1, poly__c(j, tid));
  }
}

static void poly__by_rows(void *arg, int tid, int nt) {
  const poly_job_t *j = arg;
  int r0, r1;
  (void)nt;
  if (!kern_row_share(j->kc, j->p->cout, POLY_ROW_ALIGN, tid, &r0, &r1)) return;
  for (size_t q0 = 0; q0 < j->q; q0 += POLY_BLOCK)
    poly__block(j, r0, r1, q0, q0 + POLY_BLOCK < j->q ? q0 + POLY_BLOCK : j->q, poly__c(j, tid));
}
#endif

void kern_poly_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                      int w, float *out, int oh, int ow, const float *residual) {
#if defined(__AVX512F__)
  int nt = kern_threads(kc);
  poly_job_t j = {.kc = kc, .p = p, .h = h, .w = w, .oh = oh, .ow = ow};
  j.plane = poly__plane(oh, ow);
  j.q = (size_t)oh * (size_t)(ow + 1);
  j.blocks = (j.q + POLY_BLOCK - 1) / POLY_BLOCK;
  j.planes = kc->scratch[0];
  ptrdiff_t *offs = (ptrdiff_t *)(void *)(j.planes + 4 * (size_t)p->cin * j.plane);
  poly__offsets(p, j.plane, ow, offs);
  j.offs = offs;
  int rows = nt > 1 && (j.q / (size_t)nt < POLY_ROWSPLIT) && p->cout >= nt * POLY_ROW_ALIGN;
  size_t in_img = (size_t)p->cin * (size_t)h * (size_t)w, out_img = kern_conv_out_img(p, (size_t)oh * (size_t)ow);
  for (int img = 0; img < n; img++) {
    j.in = in + (size_t)img * in_img;
    j.out = out + (size_t)img * out_img;
    j.residual = residual ? residual + (size_t)img * out_img : NULL;
    kern_claim_init(&j.claim, j.blocks, nt);
    pool_run(kc->pool, poly__split, &j);
    pool_run(kc->pool, rows ? poly__by_rows : poly__by_cols, &j);
    if (rows) kern_row_learn(kc, p->cout, POLY_ROW_ALIGN);
  }
#else
  (void)kc, (void)p, (void)in, (void)n, (void)h, (void)w, (void)out, (void)oh, (void)ow,
      (void)residual;
#endif
}
