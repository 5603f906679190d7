/*
 * kern_eltwise.c — element-wise kernels: ReLU, broadcast Add/Mul, scale-shift,
 * LRN and softmax.
 *
 * Each splits its index space across the pool's threads in contiguous ranges (or
 * whole (n, c) planes) so every thread streams through memory and the inner loops
 * vectorize. Broadcasting first computes per-dimension strides (0 where a dim is
 * broadcast) and merges neighbouring dims that stay contiguous for both inputs,
 * so common cases (same shape, scalar, per-channel) become one or two loops.
 */
#include <math.h>
#include <string.h>

#include "kern_internal.h"

enum { KERN_MAX_DIMS = 8 };

/* ---- ReLU ------------------------------------------------------------------------ */

typedef struct {
  const float *in;
  float *out;
  size_t count;
} relu_job_t;

static void relu__task(void *arg, int tid, int nt) {
  const relu_job_t *j = arg;
  size_t b, e;
  pool_split(j->count, tid, nt, &b, &e);
  for (size_t i = b; i < e; i++) j->out[i] = j->in[i] > 0.0f ? j->in[i] : 0.0f;
}

void kern_relu(const kern_ctx_t *kc, const float *in, float *out, size_t count) {
  relu_job_t j = {in, out, count};
  pool_run(kc->pool, relu__task, &j);
}

/* ---- broadcast binary ------------------------------------------------------------ */

typedef struct {
  kern_binop_t op;
  const float *a, *b;
  float *out;
  int nd;                           /* merged dims */
  size_t dim[KERN_MAX_DIMS];        /* output extent per merged dim */
  size_t sa[KERN_MAX_DIMS], sb[KERN_MAX_DIMS];
  size_t total;
} bin_job_t;

/* Merge dims whose strides let (i, i+1) be walked as one for both inputs. */
static void bin__plan(bin_job_t *j, const int64_t *as, const int64_t *bs, const int64_t *os,
                      int ndim) {
  size_t ra = 1, rb = 1, sa[KERN_MAX_DIMS], sb[KERN_MAX_DIMS];
  for (int i = ndim - 1; i >= 0; i--) {
    sa[i] = as[i] == 1 && os[i] != 1 ? 0 : ra;
    sb[i] = bs[i] == 1 && os[i] != 1 ? 0 : rb;
    ra *= (size_t)as[i];
    rb *= (size_t)bs[i];
  }
  j->nd = 0;
  j->total = 1;
  for (int i = 0; i < ndim; i++) {
    size_t d = (size_t)os[i];
    j->total *= d;
    if (d == 1) continue;
    int k = j->nd - 1;
    if (k >= 0 && j->sa[k] == sa[i] * d && j->sb[k] == sb[i] * d) {
      j->dim[k] *= d;
      j->sa[k] = sa[i];
      j->sb[k] = sb[i];
      continue;
    }
    j->dim[j->nd] = d;
    j->sa[j->nd] = sa[i];
    j->sb[j->nd] = sb[i];
    j->nd++;
  }
  if (j->nd == 0) {
    j->dim[0] = 1;
    j->sa[0] = j->sb[0] = 0;
    j->nd = 1;
  }
}

/* out[i] = a[i*sa] op b[i*sb] for i < len, sa and sb each 0 or 1. */
static void bin__row(kern_binop_t op, const float *a, size_t sa, const float *b, size_t sb,
                     float *o, size_t len) {
  if (sa && sb) {
    if (op == KERN_ADD)
      for (size_t i = 0; i < len; i++) o[i] = a[i] + b[i];
    else
      for (size_t i = 0; i < len; i++) o[i] = a[i] * b[i];
  } else if (sa || sb) {
    const float *v = sa ? a : b;
    float s = sa ? b[0] : a[0];
    if (op == KERN_ADD)
      for (size_t i = 0; i < len; i++) o[i] = v[i] + s;
    else
      for (size_t i = 0; i < len; i++) o[i] = v[i] * s;
  } else {
    float s = op == KERN_ADD ? a[0] + b[0] : a[0] * b[0];
    for (size_t i = 0; i < len; i++) o[i] = s;
  }
}

static void bin__task(void *arg, int tid, int nt) {
  const bin_job_t *j = arg;
  size_t beg, end, idx[KERN_MAX_DIMS], inner = j->dim[j->nd - 1];
  pool_split(j->total, tid, nt, &beg, &end);
  size_t rem = beg, oa = 0, ob = 0;
  for (int k = j->nd - 1; k >= 0; k--) {
    idx[k] = rem % j->dim[k];
    rem /= j->dim[k];
    oa += idx[k] * j->sa[k];
    ob += idx[k] * j->sb[k];
  }
  for (size_t pos = beg; pos < end;) {
    size_t len = inner - idx[j->nd - 1];
    if (len > end - pos) len = end - pos;
    bin__row(j->op, j->a + oa, j->sa[j->nd - 1], j->b + ob, j->sb[j->nd - 1], j->out + pos,
             len);
    pos += len;
    idx[j->nd - 1] += len;
    oa += len * j->sa[j->nd - 1];
    ob += len * j->sb[j->nd - 1];
    for (int k = j->nd - 1; k > 0 && idx[k] == j->dim[k]; k--) { /* carry */
      oa += j->sa[k - 1] - idx[k] * j->sa[k];
      ob += j->sb[k - 1] - idx[k] * j->sb[k];
      idx[k] = 0;
      idx[k - 1]++;
    }
  }
}

void kern_binary(const kern_ctx_t *kc, kern_binop_t op, const float *a, const int64_t *ashape,
                 const float *b, const int64_t *bshape, float *out, const int64_t *oshape,
                 int ndim) {
  bin_job_t j;
  j.op = op;
  j.a = a;
  j.b = b;
  j.out = out;
  bin__plan(&j, ashape, bshape, oshape, ndim);
  if (j.total) pool_run(kc->pool, bin__task, &j);
}

/* ---- scale-shift -------------------------------------------------------------------- */

typedef struct {
  const float *in, *scale, *shift;
  float *out;
  int c;
  size_t planes, hw;
} ss_job_t;

/* Threads share the elements, not whole planes: an image's 3 planes (GoogLeNet's input
 * re-normalization) would leave one thread two of them. */
static void ss__task(void *arg, int tid, int nt) {
  const ss_job_t *j = arg;
  size_t b, e;
  if (j->hw == 0) return;
  pool_split(j->planes * j->hw, tid, nt, &b, &e);
  for (size_t p = b / j->hw; b < e; p++) {
    size_t i0 = b - p * j->hw, i1 = e - p * j->hw < j->hw ? e - p * j->hw : j->hw;
    float s = j->scale[p % (size_t)j->c], t = j->shift[p % (size_t)j->c];
    const float *x = j->in + p * j->hw;
    float *y = j->out + p * j->hw;
    for (size_t i = i0; i < i1; i++) y[i] = x[i] * s + t;
    b = (p + 1) * j->hw;
  }
}

void kern_scale_shift(const kern_ctx_t *kc, const float *in, int n, int c, size_t hw,
                      const float *scale, const float *shift, float *out) {
  ss_job_t j = {in, scale, shift, out, c, (size_t)n * (size_t)c, hw};
  pool_run(kc->pool, ss__task, &j);
}

/* ---- LRN ---------------------------------------------------------------------------- */

typedef struct {
  const float *in;
  float *out;
  int c, size;
  size_t planes, hw;
  float alpha, beta, bias;
} lrn_job_t;

/* s^-beta; the exponents nets use (0.75 in GoogLeNet/AlexNet) avoid powf. */
static void lrn__apply(const float *x, const float *sq, float *y, size_t len, float beta) {
  if (beta == 0.75f) {
    for (size_t i = 0; i < len; i++) {
      float r = 1.0f / sqrtf(sq[i]);
      y[i] = x[i] * r * sqrtf(r);
    }
  } else if (beta == 0.5f) {
    for (size_t i = 0; i < len; i++) y[i] = x[i] / sqrtf(sq[i]);
  } else if (beta == 1.0f) {
    for (size_t i = 0; i < len; i++) y[i] = x[i] / sq[i];
  } else {
    for (size_t i = 0; i < len; i++) y[i] = x[i] * powf(sq[i], -beta);
  }
}

/* The window sum goes into y first, then y is overwritten with the result. */
static void lrn__plane(const lrn_job_t *j, size_t p) {
  size_t img = p / (size_t)j->c;
  int ch = (int)(p % (size_t)j->c);
  int c0 = ch - (j->size - 1) / 2, c1 = ch + j->size / 2 + 1;
  c0 = c0 < 0 ? 0 : c0;
  c1 = c1 > j->c ? j->c : c1;
  const float *base = j->in + img * (size_t)j->c * j->hw;
  float *y = j->out + p * j->hw;
  float k = j->alpha / (float)j->size;
  for (size_t i = 0; i < j->hw; i++) y[i] = 0.0f;
  for (int cc = c0; cc < c1; cc++) {
    const float *x = base + (size_t)cc * j->hw;
    for (size_t i = 0; i < j->hw; i++) y[i] += x[i] * x[i];
  }
  for (size_t i = 0; i < j->hw; i++) y[i] = j->bias + k * y[i];
  lrn__apply(j->in + p * j->hw, y, y, j->hw, j->beta);
}

static void lrn__task(void *arg, int tid, int nt) {
  const lrn_job_t *j = arg;
  size_t b, e;
  pool_split(j->planes, tid, nt, &b, &e);
  for (size_t p = b; p < e; p++) lrn__plane(j, p);
}

void kern_lrn(const kern_ctx_t *kc, const float *in, int n, int c, size_t hw, int size,
              float alpha, float beta, float bias, float *out) {
  lrn_job_t j = {in, out, c, size, (size_t)n * (size_t)c, hw, alpha, beta, bias};
  pool_run(kc->pool, lrn__task, &j);
}

/* ---- softmax -------------------------------------------------------------------------- */

typedef struct {
  const float *in;
  float *out;
  size_t outer, len, inner;
} sm_job_t;

static void sm__line(const float *x, float *y, size_t len, size_t st) {
  float m = -INFINITY;
  for (size_t i = 0; i < len; i++) m = x[i * st] > m ? x[i * st] : m;
  float s = 0.0f;
  for (size_t i = 0; i < len; i++) {
    y[i * st] = expf(x[i * st] - m);
    s += y[i * st];
  }
  float r = 1.0f / s;
  for (size_t i = 0; i < len; i++) y[i * st] *= r;
}

static void sm__task(void *arg, int tid, int nt) {
  const sm_job_t *j = arg;
  size_t b, e;
  pool_split(j->outer * j->inner, tid, nt, &b, &e);
  for (size_t l = b; l < e; l++) {
    size_t o = l / j->inner, i = l % j->inner, off = o * j->len * j->inner + i;
    sm__line(j->in + off, j->out + off, j->len, j->inner);
  }
}

void kern_softmax(const kern_ctx_t *kc, const float *in, size_t outer, size_t len,
                  size_t inner, float *out) {
  sm_job_t j = {in, out, outer, len, inner};
  if (len) pool_run(kc->pool, sm__task, &j);
}
