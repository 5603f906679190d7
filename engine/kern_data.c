/*
 * kern_data.c — data movement: Concat, Gather (constant indices), Slice and the
 * subsampled copy of a shortcut's input (graph_shortcut.c).
 *
 * Pure copies, split across threads by contiguous ranges of the output so each
 * thread writes its own bytes; the only arithmetic is index bookkeeping, done
 * once per contiguous run rather than per element.
 */
#include <string.h>

#include "kern_internal.h"

enum { KERN_MAX_DIMS = 8 };

/* ---- concat -------------------------------------------------------------------- */

typedef struct {
  const float *const *ins;
  const int64_t *lens;
  int count;
  size_t outer, inner, row; /* row: output floats per outer index */
  float *out;
} concat_job_t;

static void concat__task(void *arg, int tid, int nt) {
  const concat_job_t *j = arg;
  size_t b, e;
  pool_split(j->outer * j->row, tid, nt, &b, &e);
  for (size_t pos = b; pos < e;) {
    size_t o = pos / j->row, off = pos % j->row, start = 0;
    int i = 0;
    size_t seg = (size_t)j->lens[0] * j->inner;
    while (off >= start + seg) { /* the input whose segment holds off */
      start += seg;
      seg = (size_t)j->lens[++i] * j->inner;
    }
    size_t in_off = off - start, n = seg - in_off;
    if (n > e - pos) n = e - pos;
    memcpy(j->out + pos, j->ins[i] + o * seg + in_off, n * sizeof(float));
    pos += n;
  }
}

void kern_concat(const kern_ctx_t *kc, const float *const *ins, const int64_t *lens, int count,
                 size_t outer, size_t inner, float *out) {
  concat_job_t j = {ins, lens, count, outer, inner, 0, out};
  for (int i = 0; i < count; i++) j.row += (size_t)lens[i] * inner;
  if (j.row && outer) pool_run(kc->pool, concat__task, &j);
}

/* ---- gather -------------------------------------------------------------------- */

typedef struct {
  const float *in;
  size_t axis_len, inner;
  const int64_t *idx;
  size_t nidx, rows;
  float *out;
} gather_job_t;

static void gather__task(void *arg, int tid, int nt) {
  const gather_job_t *j = arg;
  size_t b, e;
  pool_split(j->rows, tid, nt, &b, &e);
  for (size_t r = b; r < e; r++) {
    size_t o = r / j->nidx, src = o * j->axis_len + (size_t)j->idx[r % j->nidx];
    memcpy(j->out + r * j->inner, j->in + src * j->inner, j->inner * sizeof(float));
  }
}

void kern_gather(const kern_ctx_t *kc, const float *in, size_t outer, size_t axis_len,
                 size_t inner, const int64_t *idx, size_t nidx, float *out) {
  gather_job_t j = {in, axis_len, inner, idx, nidx, outer * nidx, out};
  if (j.rows && inner) pool_run(kc->pool, gather__task, &j);
}

/* ---- slice ---------------------------------------------------------------------- */

typedef struct {
  const float *in;
  float *out;
  int nd;
  ptrdiff_t base;                 /* input offset of output element 0 */
  ptrdiff_t step[KERN_MAX_DIMS];  /* input offset per output index, per dim */
  size_t dim[KERN_MAX_DIMS];      /* output extents */
  size_t rows, inner;
} slice_job_t;

static void slice__task(void *arg, int tid, int nt) {
  const slice_job_t *j = arg;
  size_t b, e;
  pool_split(j->rows, tid, nt, &b, &e);
  ptrdiff_t st = j->step[j->nd - 1];
  for (size_t r = b; r < e; r++) {
    ptrdiff_t off = j->base;
    size_t rem = r;
    for (int k = j->nd - 2; k >= 0; k--) {
      off += (ptrdiff_t)(rem % j->dim[k]) * j->step[k];
      rem /= j->dim[k];
    }
    const float *x = j->in + off;
    float *y = j->out + r * j->inner;
    if (st == 1)
      memcpy(y, x, j->inner * sizeof(float));
    else
      for (size_t i = 0; i < j->inner; i++) y[i] = x[(ptrdiff_t)i * st];
  }
}

void kern_slice(const kern_ctx_t *kc, const float *in, const int64_t *in_shape, int ndim,
                const int64_t *starts, const int64_t *steps, const int64_t *out_shape,
                float *out) {
  slice_job_t j = {.in = in, .out = out, .nd = ndim, .rows = 1};
  ptrdiff_t stride = 1;
  for (int k = ndim - 1; k >= 0; k--) {
    j.base += (ptrdiff_t)starts[k] * stride;
    j.step[k] = (ptrdiff_t)steps[k] * stride;
    j.dim[k] = (size_t)out_shape[k];
    stride *= (ptrdiff_t)in_shape[k];
  }
  if (ndim == 0) {
    out[0] = in[0];
    return;
  }
  for (int k = 0; k < ndim - 1; k++) j.rows *= j.dim[k];
  j.inner = j.dim[ndim - 1];
  if (j.rows && j.inner) pool_run(kc->pool, slice__task, &j);
}

/* ---- subsampled copy ------------------------------------------------------------ */

typedef struct {
  const float *in;
  int c, h, w, stride, oh, ow;
  size_t out_img;
  float *out;
  int n_images;
} subsample_job_t;

static void subsample__task(void *arg, int tid, int nt) {
  const subsample_job_t *j = arg;
  size_t b, e, plane = (size_t)j->h * (size_t)j->w, oplane = (size_t)j->oh * (size_t)j->ow;
  pool_split((size_t)j->c * (size_t)j->n_images, tid, nt, &b, &e);
  for (size_t p = b; p < e; p++) {
    size_t img = p / (size_t)j->c, ch = p % (size_t)j->c;
    const float *src = j->in + p * plane;
    float *dst = j->out + img * j->out_img + ch * oplane;
    if (j->stride == 1) {
      memcpy(dst, src, oplane * sizeof(float));
      continue;
    }
    for (int y = 0; y < j->oh; y++) {
      const float *r = src + (size_t)y * (size_t)j->stride * (size_t)j->w;
      float *o = dst + (size_t)y * (size_t)j->ow;
      for (int x = 0; x < j->ow; x++) o[x] = r[(size_t)x * (size_t)j->stride];
    }
  }
}

void kern_subsample(const kern_ctx_t *kc, const float *in, int n, int c, int h, int w,
                    int stride, float *out, int oh, int ow, size_t out_img) {
  subsample_job_t j = {in, c, h, w, stride, oh, ow, out_img, out, n};
  if (n > 0 && c > 0 && oh > 0 && ow > 0) pool_run(kc->pool, subsample__task, &j);
}
