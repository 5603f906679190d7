/*
 * kernels.h — the numeric kernels the graph executor calls, float32 NCHW.
 *
 * Kernels know shapes and pointers, not graphs. Each takes a kern_ctx_t giving the
 * thread pool and per-thread scratch (sized at context creation from the
 * *_scratch_floats queries, so no kernel allocates). Every kernel splits its work
 * across the pool's threads itself and returns when the output is complete.
 * Outputs never alias inputs unless the comment says in-place is allowed.
 * tests/unit checks each one against the naive reference in tests/unit/ref.c.
 */
#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"

typedef struct {
  pool_t *pool;
  float **scratch;       /* scratch[tid]: scratch_floats floats, 64-byte aligned */
  size_t scratch_floats; /* per thread */
} kern_ctx_t;

/* ---- convolution -------------------------------------------------------------- */

/* 2-D convolution, group 1, dilation 1; BatchNorm already folded in by the loader.
 * Epilogue fused in one pass over the output: y = act(conv + bias + residual). */
enum { KERN_CONV_GROUPS = 4 }; /* most outputs one conv writes (kern_conv2d_groups) */

typedef struct {
  int cin, cout, kh, kw;
  int stride_h, stride_w;
  int pad_t, pad_l, pad_b, pad_r;
  const float *weight; /* cout x cin x kh x kw (ONNX layout), owned by the model */
  const float *bias;   /* cout floats or NULL */
  int relu;            /* 1: max(0, y) */
  void *packed;        /* Winograd-transformed weights; set by kern_conv_prepare */
  float *gemm_a;       /* weights packed for kern_sgemm (AVX-512); set by kern_conv_prepare */
  int map_oh, map_ow;  /* output map size when known (0: not), for the Winograd variant */
  int wino_m;          /* set by kern_conv_prepare: Winograd output tile 2 or 4, else 0 */
  int poly;            /* set by kern_conv_prepare: 3x3/2 from phase planes (gemm_a tap-major) */
  int s2rows;          /* set by kern_conv_prepare: wide stride-2 kernels row by row (gemm_a) */
  size_t out_img;      /* floats from one image's output to the next, and the residual's
                        * (0: cout*oh*ow, dense). Larger when the output is a channel slice
                        * of a wider map (a Concat written in place, graph_concat.c). */
  int ngroups;         /* 0: one output. Else (direct 1x1 convs only: 1x1, stride 1, no
                        * padding) output rows [group_row[g], group_row[g + 1]) are output g
                        * of kern_conv2d_groups, each boundary a multiple of 8 (siblings
                        * reading one input merged into one product, graph_siblings.c) */
  int group_row[KERN_CONV_GROUPS + 1];
  size_t group_out_img[KERN_CONV_GROUPS]; /* output g's image stride (0: dense) */
} kern_conv_t;

/* 1 for a 1x1, stride-1, unpadded conv: it multiplies its input directly (no lowering),
 * and only such convs may have row groups. */
int kern_conv_direct(const kern_conv_t *p);
/* At model load: prepare weights (e.g. pack or transform). Returns 0 or CNN_ENOMEM. */
int kern_conv_prepare(kern_conv_t *p);
void kern_conv_release(kern_conv_t *p);
/* Per-thread scratch the conv needs for an input of h x w with output oh x ow. */
size_t kern_conv2d_scratch_floats(const kern_conv_t *p, int h, int w, int oh, int ow,
                                  int nthreads);
/* in: n x cin x h x w; out: n x cout x oh x ow; residual: NULL or shaped like out. */
void kern_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                 int w, float *out, int oh, int ow, const float *residual);
/* A conv with row groups (p->ngroups > 0): outs[g] receives rows [group_row[g],
 * group_row[g + 1]) as an n x rows x oh x ow map (images group_out_img[g] apart when
 * set). No residual. With the engine's sgemm (kern_sgemm_available) each output holds the
 * same bits as that row range of kern_conv2d. */
void kern_conv2d_groups(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n,
                        int h, int w, float *const *outs, int oh, int ow);

/* ---- pooling -------------------------------------------------------------------- */

/* Output size is computed by the caller (floor or ceil mode). A window may run past
 * the padded input in ceil mode; such positions are ignored. For average pooling
 * with count_include_pad the divisor counts the padding (pad_t/pad_l/pad_b/pad_r)
 * but never positions beyond the padded input, as PyTorch and ONNX Runtime do. */
typedef struct {
  int kh, kw, stride_h, stride_w;
  int pad_t, pad_l, pad_b, pad_r;
  int count_include_pad;
} kern_pool_t;

void kern_maxpool2d(const kern_ctx_t *kc, const kern_pool_t *p, const float *in, int n, int c,
                    int h, int w, float *out, int oh, int ow);
void kern_avgpool2d(const kern_ctx_t *kc, const kern_pool_t *p, const float *in, int n, int c,
                    int h, int w, float *out, int oh, int ow);
/* out[n][c] = mean over hw of in[n][c][:] */
void kern_global_avgpool(const kern_ctx_t *kc, const float *in, int n, int c, size_t hw,
                         float *out);

/* ---- element-wise ------------------------------------------------------------------ */

void kern_relu(const kern_ctx_t *kc, const float *in, float *out, size_t count); /* in-place ok */

typedef enum { KERN_ADD, KERN_MUL } kern_binop_t;
/* Numpy broadcasting; all shapes given with ndim dims (left-padded with 1s by the
 * caller), ndim <= 8. out may alias a when a's shape equals the output's. */
void kern_binary(const kern_ctx_t *kc, kern_binop_t op, const float *a, const int64_t *ashape,
                 const float *b, const int64_t *bshape, float *out, const int64_t *oshape,
                 int ndim);

/* y[n][c][i] = x[n][c][i] * scale[c] + shift[c] (BatchNorm in inference form). In-place ok. */
void kern_scale_shift(const kern_ctx_t *kc, const float *in, int n, int c, size_t hw,
                      const float *scale, const float *shift, float *out);

/* Local response normalization across channels (ONNX LRN):
 * y = x / (bias + alpha/size * sum_{c' in window} x[c']^2)^beta,
 * window = [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to [0, C). */
void kern_lrn(const kern_ctx_t *kc, const float *in, int n, int c, size_t hw, int size,
              float alpha, float beta, float bias, float *out);

/* Softmax over the middle axis of an (outer, len, inner) view. In-place ok. */
void kern_softmax(const kern_ctx_t *kc, const float *in, size_t outer, size_t len,
                  size_t inner, float *out);

/* ---- matrix products ------------------------------------------------------------------ */

/* ONNX Gemm: Y[M,N] = alpha * op(A) op(B) + beta * C, with op = transpose when trans*
 * is set; A is M x K (or K x M), B is K x N (or N x K). C (may be NULL) is broadcast
 * from c_rows x c_cols, each 1 or M / N. Y must not alias A, B or C. */
void kern_gemm(const kern_ctx_t *kc, int trans_a, int trans_b, int m, int n, int k,
               float alpha, const float *a, const float *b, float beta, const float *c,
               int c_rows, int c_cols, float *y);

/* MatMul of `batch` M x K matrices by one shared K x N matrix (batch may be 1):
 * y[b] = a[b] @ bmat. */
void kern_matmul(const kern_ctx_t *kc, const float *a, int batch, int m, int k,
                 const float *bmat, int n, float *y);

/* ---- data movement ------------------------------------------------------------------ */

/* Concat along an axis: view each input as (outer, len_i * inner) and the output as
 * (outer, sum len_i * inner). */
void kern_concat(const kern_ctx_t *kc, const float *const *ins, const int64_t *lens, int count,
                 size_t outer, size_t inner, float *out);

/* Gather along an axis with constant indices (already made non-negative):
 * in viewed as (outer, axis_len, inner); out as (outer, nidx, inner). */
void kern_gather(const kern_ctx_t *kc, const float *in, size_t outer, size_t axis_len,
                 size_t inner, const int64_t *idx, size_t nidx, float *out);

/* Strided slice: out[i0..] = in[start0 + i0*step0, ...] for ndim <= 8 dims; starts are
 * clamped and valid, steps non-zero (may be negative), out_shape already computed. */
void kern_slice(const kern_ctx_t *kc, const float *in, const int64_t *in_shape, int ndim,
                const int64_t *starts, const int64_t *steps, const int64_t *out_shape,
                float *out);

/* out[i][ch][y][x] = in[i][ch][y * stride][x * stride] for n images of c channels: the
 * input of a 1x1 conv of that stride, copied so that another conv's output can sit
 * beside it (graph_shortcut.c). Images are out_img floats apart in out (in is dense). */
void kern_subsample(const kern_ctx_t *kc, const float *in, int n, int c, int h, int w,
                    int stride, float *out, int oh, int ow, size_t out_img);

#endif
