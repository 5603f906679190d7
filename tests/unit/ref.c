/*
 * ref.c — naive references for the kernel tests (see ref.h). Written for obvious
 * correctness, never speed: every output is computed independently from the
 * definition, in double precision, with explicit bounds tests.
 */
#include "ref.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnn.h"

float ref_uniform(ref_rng_t *r, float lo, float hi) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return lo + (hi - lo) * (float)((r->s >> 40) * (1.0 / 16777216.0));
}

int ref_randint(ref_rng_t *r, int lo, int hi) {
  return lo + (int)(ref_uniform(r, 0.0f, 0.999999f) * (float)(hi - lo + 1));
}

float *ref_random(ref_rng_t *r, size_t count, float lo, float hi) {
  float *v = malloc((count ? count : 1) * sizeof *v);
  cr_assert_not_null(v);
  for (size_t i = 0; i < count; i++) v[i] = ref_uniform(r, lo, hi);
  return v;
}

void ref_kctx_init(ref_kctx_t *t, int nthreads, size_t scratch_floats) {
  cr_assert(nthreads >= 1 && nthreads <= 8);
  cr_assert_eq(pool_create(nthreads, &t->kc.pool), 0);
  size_t bytes = ((scratch_floats * sizeof(float)) + 63) / 64 * 64;
  for (int i = 0; i < nthreads; i++) {
    t->bufs[i] = aligned_alloc(64, bytes ? bytes : 64);
    cr_assert_not_null(t->bufs[i]);
  }
  t->kc.scratch = t->bufs;
  t->kc.scratch_floats = scratch_floats;
}

void ref_kctx_deinit(ref_kctx_t *t) {
  for (int i = 0; i < pool_threads(t->kc.pool); i++) free(t->bufs[i]);
  pool_destroy(t->kc.pool);
}

long ref_mismatch(const float *got, const double *want, const double *mag, size_t count,
                  double rtol, double atol) {
  for (size_t i = 0; i < count; i++) {
    double m = mag ? mag[i] : fabs(want[i]);
    if (!(fabs((double)got[i] - want[i]) <= rtol * m + atol)) return (long)i;
  }
  return -1;
}

void ref_conv2d(const kern_conv_t *p, const float *in, int n, int h, int w, int oh, int ow,
                const float *residual, double *out, double *mag) {
  for (int b = 0; b < n; b++)
    for (int co = 0; co < p->cout; co++)
      for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
          double s = p->bias ? p->bias[co] : 0.0, m = fabs(s);
          for (int ci = 0; ci < p->cin; ci++)
            for (int ky = 0; ky < p->kh; ky++)
              for (int kx = 0; kx < p->kw; kx++) {
                int iy = oy * p->stride_h - p->pad_t + ky, ix = ox * p->stride_w - p->pad_l + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                double t = (double)p->weight[((co * p->cin + ci) * p->kh + ky) * p->kw + kx] *
                           in[((size_t)(b * p->cin + ci) * h + iy) * w + ix];
                s += t;
                m += fabs(t);
              }
          size_t o = (((size_t)b * p->cout + co) * oh + oy) * ow + ox;
          if (residual) {
            s += residual[o];
            m += fabs(residual[o]);
          }
          out[o] = p->relu && s < 0 ? 0.0 : s;
          mag[o] = m;
        }
}

void ref_pool2d(const kern_pool_t *p, int avg, const float *in, int n, int c, int h, int w,
                int oh, int ow, double *out) {
  for (int pl = 0; pl < n * c; pl++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        double best = -INFINITY, sum = 0;
        int valid = 0, padded = 0;
        for (int ky = 0; ky < p->kh; ky++)
          for (int kx = 0; kx < p->kw; kx++) {
            int iy = oy * p->stride_h - p->pad_t + ky, ix = ox * p->stride_w - p->pad_l + kx;
            if (iy < h + p->pad_b && ix < w + p->pad_r) padded++;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            double v = in[((size_t)pl * h + iy) * w + ix];
            best = v > best ? v : best;
            sum += v;
            valid++;
          }
        double r = avg ? sum / (p->count_include_pad ? padded : valid) : best;
        out[((size_t)pl * oh + oy) * ow + ox] = r;
      }
}

void ref_global_avgpool(const float *in, int n, int c, size_t hw, double *out) {
  for (int pl = 0; pl < n * c; pl++) {
    double s = 0;
    for (size_t i = 0; i < hw; i++) s += in[pl * hw + i];
    out[pl] = s / (double)hw;
  }
}

/* Offset in a tensor of shape `s` of the element at output index `idx`. */
static size_t ref__bcast_off(const int64_t *s, const int64_t *idx, int ndim) {
  size_t off = 0;
  for (int d = 0; d < ndim; d++) off = off * (size_t)s[d] + (size_t)(s[d] == 1 ? 0 : idx[d]);
  return off;
}

void ref_binary(kern_binop_t op, const float *a, const int64_t *as, const float *b,
                const int64_t *bs, const int64_t *os, int ndim, double *out) {
  size_t total = 1;
  for (int d = 0; d < ndim; d++) total *= (size_t)os[d];
  for (size_t i = 0; i < total; i++) {
    int64_t idx[8];
    size_t rem = i;
    for (int d = ndim - 1; d >= 0; d--) {
      idx[d] = (int64_t)(rem % (size_t)os[d]);
      rem /= (size_t)os[d];
    }
    double x = a[ref__bcast_off(as, idx, ndim)], y = b[ref__bcast_off(bs, idx, ndim)];
    out[i] = op == KERN_ADD ? x + y : x * y;
  }
}

void ref_lrn(const float *in, int n, int c, size_t hw, int size, double alpha, double beta,
             double bias, double *out) {
  for (int b = 0; b < n; b++)
    for (int ch = 0; ch < c; ch++)
      for (size_t i = 0; i < hw; i++) {
        double s = 0;
        for (int cc = ch - (size - 1) / 2; cc <= ch + size / 2; cc++) {
          if (cc < 0 || cc >= c) continue;
          double v = in[((size_t)b * c + cc) * hw + i];
          s += v * v;
        }
        size_t o = ((size_t)b * c + ch) * hw + i;
        out[o] = in[o] / pow(bias + alpha / size * s, beta);
      }
}

void ref_softmax(const float *in, size_t outer, size_t len, size_t inner, double *out) {
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < inner; i++) {
      double m = -INFINITY, s = 0;
      for (size_t l = 0; l < len; l++) m = fmax(m, in[(o * len + l) * inner + i]);
      for (size_t l = 0; l < len; l++) s += exp(in[(o * len + l) * inner + i] - m);
      for (size_t l = 0; l < len; l++)
        out[(o * len + l) * inner + i] = exp(in[(o * len + l) * inner + i] - m) / s;
    }
}

void ref_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
              const float *b, float beta, const float *c, int c_rows, int c_cols, double *out,
              double *mag) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0, g = 0;
      for (int l = 0; l < k; l++) {
        double x = ta ? a[(size_t)l * m + i] : a[(size_t)i * k + l];
        double y = tb ? b[(size_t)j * k + l] : b[(size_t)l * n + j];
        s += x * y;
        g += fabs(x * y);
      }
      s *= alpha;
      g *= fabs(alpha);
      if (c) {
        double cv = c[(c_rows == 1 ? 0 : (size_t)i * c_cols) + (c_cols == 1 ? 0 : j)];
        s += beta * cv;
        g += fabs(beta * cv);
      }
      out[(size_t)i * n + j] = s;
      mag[(size_t)i * n + j] = g;
    }
}

void ref_slice(const float *in, const int64_t *in_shape, int ndim, const int64_t *starts,
               const int64_t *steps, const int64_t *out_shape, double *out) {
  size_t total = 1;
  for (int d = 0; d < ndim; d++) total *= (size_t)out_shape[d];
  for (size_t i = 0; i < total; i++) {
    size_t rem = i, off = 0, stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
      int64_t o = (int64_t)(rem % (size_t)out_shape[d]);
      rem /= (size_t)out_shape[d];
      int64_t src = starts[d] + o * steps[d];
      cr_assert(src >= 0 && src < in_shape[d], "slice reference index out of range");
      off += (size_t)src * stride;
      stride *= (size_t)in_shape[d];
    }
    out[i] = in[off];
  }
}

struct cnn_model *ref_load_test_model(const char *file) {
  const char *dir = getenv("CNN_TEST_MODELS");
  cr_assert_not_null(dir, "CNN_TEST_MODELS is not set (make unit sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  cnn_model_t *m = NULL;
  cnn_error_t err;
  cr_assert_eq(cnn_model_load(path, &m, &err), 0, "%s: %s", path, err.msg);
  return m;
}
