/*
 * kern_internal.h — helpers shared by the kernel files; not part of the contract.
 */
#ifndef CNN_KERN_INTERNAL_H
#define CNN_KERN_INTERNAL_H

#include <stddef.h>

#include "kernels.h"

/* Lower output columns [c0, c1) of one image (cin x h x w) into col, a dense
 * K x (c1 - c0) matrix with K = cin*kh*kw (see kern_im2col.c). */
void kern_im2col(const kern_conv_t *p, const float *img, int h, int w, int ow, size_t c0,
                 size_t c1, float *col, float *tmp);
/* Rows of input channels [ci0, ci1) only (K rows ci0*kh*kw ..), each ldcol floats
 * apart in col; never through the deinterleaved rows. */
void kern_im2col_part(const kern_conv_t *p, const float *img, int h, int w, int ow, size_t c0,
                      size_t c1, int ci0, int ci1, float *col, size_t ldcol);
/* Floats of tmp kern_im2col needs (0: none; tmp may then be NULL): stride-2 rows are
 * lowered from deinterleaved copies of the input rows. */
size_t kern_im2col_tmp_floats(const kern_conv_t *p, int h, int ow);
/* One input row of w floats split into its even and odd columns, each after a margin of M =
 * KERN_SPLIT_MARGIN zeros: e[M + q] = row[2q], o[M + q] = row[2q + 1], zero elsewhere in
 * [0, len). len >= M + (w + 1) / 2. */
enum { KERN_SPLIT_MARGIN = 16 };
void kern_im2col_split_row(const float *row, int w, float *e, float *o, size_t len);

/* Winograd F(2x2, 3x3) or F(4x4, 3x3) for 3x3 stride-1 convs, and a stride-2 variant for
 * 3x3/2 convs onto maps of at least 14x14 (see kern_winograd.c). kern_conv.c
 * prepares it for eligible layers and runs it whenever `packed` holds its weights. */
int kern_wino_eligible(const kern_conv_t *p);
int kern_wino_prepare(kern_conv_t *p); /* sets p->packed; 0 or CNN_ENOMEM */
size_t kern_wino_scratch_floats(const kern_conv_t *p, int ow);
void kern_wino_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                      int w, float *out, int oh, int ow, const float *residual);

/* The other 3x3 stride-2 convs (padding 1) onto maps of more than 100 outputs, from the input's
 * phase planes, without a lowering (see kern_conv_poly.c). */
int kern_poly_eligible(const kern_conv_t *p);
int kern_poly_prepare(kern_conv_t *p); /* sets p->gemm_a (tap-major) and p->poly */
size_t kern_poly_scratch_floats(const kern_conv_t *p, int oh, int ow);
void kern_poly_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                      int w, float *out, int oh, int ow, const float *residual);

/* Stride-2 convs with kernels at least 5 wide (the 7x7 stems), one product per output row
 * from the input's column phases, without a lowering (see kern_conv_s2rows.c). Prepared
 * as the im2col path (gemm_a); kern_conv.c runs it when `s2rows` is set and the scratch
 * holds what kern_s2rows_scratch_floats asks (0: this width cannot). */
int kern_s2rows_eligible(const kern_conv_t *p);
size_t kern_s2rows_scratch_floats(const kern_conv_t *p, int w, int ow);
void kern_s2rows_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n,
                        int h, int w, float *out, int oh, int ow, const float *residual);

/* c[j] = act(c[j] + b + res[j]) over nc floats (kern_conv.c). */
void kern_conv_epi_row(float *c, const float *res, float b, size_t nc, int relu);

static inline int kern_threads(const kern_ctx_t *kc) { return pool_threads(kc->pool); }

/* Floats from one image's output (and residual) to the next: kern_conv_t.out_img. */
static inline size_t kern_conv_out_img(const kern_conv_t *p, size_t cols) {
  return p->out_img ? p->out_img : (size_t)p->cout * cols;
}

/* Thread tid's share [*r0, *r1) of `rows` output channels, cut at multiples of align
 * (the row splits of kern_conv.c, kern_winograd.c and kern_conv_poly.c), weighted by
 * the threads' speeds (pool_split_weighted). Returns 0 when the share is empty. */
static inline int kern_row_share(const kern_ctx_t *kc, int rows, int align, int tid, int *r0,
                                 int *r1) {
  size_t units = ((size_t)rows + (size_t)align - 1) / (size_t)align, b, e;
  pool_split_weighted(kc->pool, units, tid, &b, &e);
  *r0 = (int)(b * (size_t)align);
  *r1 = (int)(e * (size_t)align) < rows ? (int)(e * (size_t)align) : rows;
  return *r0 < *r1;
}

/* After a pool_run of row shares: the threads' speeds in it update the weights. */
static inline void kern_row_learn(const kern_ctx_t *kc, int rows, int align) {
  pool_balance_learn(kc->pool, ((size_t)rows + (size_t)align - 1) / (size_t)align);
}

/* The most rows kern_row_share can give one of nt threads (for sizing scratch). */
static inline size_t kern_row_share_max(int rows, int align, int nt) {
  size_t units = ((size_t)rows + (size_t)align - 1) / (size_t)align;
  size_t m = pool_split_max(units, nt) * (size_t)align;
  return m < (size_t)rows ? m : (size_t)rows;
}

#endif
