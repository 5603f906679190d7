/*
 * ref.h — plain, obviously-correct reference implementations of every kernel in
 * engine/kernels.h (double accumulation, no blocking, no threads), plus helpers
 * the kernel tests share: a deterministic RNG, a kern_ctx_t with scratch, and a
 * magnitude-relative comparison.
 */
#ifndef CNN_TEST_REF_H
#define CNN_TEST_REF_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* ---- helpers ---- */
typedef struct {
  uint64_t s;
} ref_rng_t;
float ref_uniform(ref_rng_t *r, float lo, float hi);
int ref_randint(ref_rng_t *r, int lo, int hi); /* inclusive */
float *ref_random(ref_rng_t *r, size_t count, float lo, float hi); /* malloc'd */

typedef struct {
  kern_ctx_t kc;
  float *bufs[8];
} ref_kctx_t;
/* Pool of nthreads plus 64-byte aligned scratch per thread; asserts on failure. */
void ref_kctx_init(ref_kctx_t *t, int nthreads, size_t scratch_floats);
void ref_kctx_deinit(ref_kctx_t *t);

/* The test model `file` (e.g. "resnet18.onnx") from $CNN_TEST_MODELS, loaded; asserts on
 * failure. Free with cnn_model_destroy. */
struct cnn_model *ref_load_test_model(const char *file);

/* First index i where |got - want| > rtol * mag[i] + atol (mag NULL: |want|), or -1. */
long ref_mismatch(const float *got, const double *want, const double *mag, size_t count,
                  double rtol, double atol);

/* ---- references ---- */
/* out and mag: n*cout*oh*ow; mag = sum |terms| (|w x| + |bias| + |residual|). */
void ref_conv2d(const kern_conv_t *p, const float *in, int n, int h, int w, int oh, int ow,
                const float *residual, double *out, double *mag);
void ref_pool2d(const kern_pool_t *p, int avg, const float *in, int n, int c, int h, int w,
                int oh, int ow, double *out);
void ref_global_avgpool(const float *in, int n, int c, size_t hw, double *out);
void ref_binary(kern_binop_t op, const float *a, const int64_t *as, const float *b,
                const int64_t *bs, const int64_t *os, int ndim, double *out);
void ref_lrn(const float *in, int n, int c, size_t hw, int size, double alpha, double beta,
             double bias, double *out);
void ref_softmax(const float *in, size_t outer, size_t len, size_t inner, double *out);
/* mag = sum |alpha a b| + |beta c| per output */
void ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
              const float *b, float beta, const float *c, int c_rows, int c_cols, double *out,
              double *mag);
void ref_slice(const float *in, const int64_t *in_shape, int ndim, const int64_t *starts,
               const int64_t *steps, const int64_t *out_shape, double *out);

#endif
