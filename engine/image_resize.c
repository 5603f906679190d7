/*
 * image_resize.c — PIL's antialiased bilinear resample, bit for bit.
 *
 * Mirrors Pillow's ImagingResample (Resample.c): per output pixel, a triangle
 * filter whose support is scaled by the downscale factor (support = max(scale,
 * 1)), centred at (i + 0.5) * scale, taps from round(center - support) to
 * round(center + support), weights normalised then converted to 22-bit fixed
 * point; horizontal pass first into an 8-bit intermediate, then vertical, each
 * rounding and clamping to uint8. A pass is skipped when that side keeps its
 * size, as Pillow does.
 *
 * Only a window of the virtual resized image is computed (the center crop),
 * which gives identical pixels because every output pixel is independent.
 * Memory: coefficient tables and the intermediate rows are allocated once per
 * call (setup), never per pixel.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_internal.h"

#define PREC_BITS (32 - 8 - 2)

typedef struct {
  int ksize;     /* taps per output pixel (table stride) */
  int *bounds;   /* per output: first input index, tap count */
  int32_t *k;    /* n x ksize fixed-point weights */
} coeffs_t;

static double bilinear(double x) {
  x = fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

static void coeffs_one(int in_size, double scale, double support, int xx, int ksize,
                       double *w, int *bounds, int32_t *k) {
  double fs = scale < 1.0 ? 1.0 : scale, ss = 1.0 / fs, ww = 0.0;
  double center = (xx + 0.5) * scale;
  int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
  xmin = xmin < 0 ? 0 : xmin;
  xmax = (xmax > in_size ? in_size : xmax) - xmin;
  xmax = xmax > ksize ? ksize : xmax;
  for (int x = 0; x < xmax; x++) {
    w[x] = bilinear((x + xmin - center + 0.5) * ss);
    ww += w[x];
  }
  for (int x = 0; x < ksize; x++) {
    double v = x < xmax && ww != 0.0 ? w[x] / ww : 0.0;
    k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PREC_BITS) : 0.5 + v * (1 << PREC_BITS));
  }
  bounds[0] = xmin;
  bounds[1] = xmax;
}

/* Coefficients for outputs [first, first + n) of an in_size -> out_size pass. */
static int coeffs_init(coeffs_t *c, int in_size, int out_size, int first, int n) {
  double scale = (double)in_size / out_size;
  double support = scale < 1.0 ? 1.0 : scale;
  c->ksize = (int)ceil(support) * 2 + 1;
  c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
  c->k = malloc((size_t)n * (size_t)c->ksize * sizeof *c->k);
  double *w = malloc((size_t)c->ksize * sizeof *w);
  if (!c->bounds || !c->k || !w) {
    free(w);
    return -1;
  }
  for (int i = 0; i < n; i++)
    coeffs_one(in_size, scale, support, first + i, c->ksize, w, c->bounds + 2 * i,
               c->k + (size_t)i * c->ksize);
  free(w);
  return 0;
}

/* Identity pass (side unchanged): one tap of weight 1.0 per output. */
static int coeffs_identity(coeffs_t *c, int first, int n) {
  c->ksize = 1;
  c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
  c->k = malloc((size_t)n * sizeof *c->k);
  if (!c->bounds || !c->k)
    return -1;
  for (int i = 0; i < n; i++) {
    c->bounds[2 * i] = first + i;
    c->bounds[2 * i + 1] = 1;
    c->k[i] = 1 << PREC_BITS;
  }
  return 0;
}

static void coeffs_deinit(coeffs_t *c) {
  free(c->bounds);
  free(c->k);
}

static inline uint8_t clip8(int32_t v) {
  if (v >= (1 << PREC_BITS << 8))
    return 255;
  return v <= 0 ? 0 : (uint8_t)(v >> PREC_BITS);
}

/* One output pixel: taps at `src` spaced `step` bytes apart. */
static inline void tap3(const uint8_t *src, size_t step, const int32_t *k, int n, uint8_t *d) {
  int32_t s0 = 1 << (PREC_BITS - 1), s1 = s0, s2 = s0;
  for (int t = 0; t < n; t++, src += step) {
    s0 += src[0] * k[t];
    s1 += src[1] * k[t];
    s2 += src[2] * k[t];
  }
  d[0] = clip8(s0);
  d[1] = clip8(s1);
  d[2] = clip8(s2);
}

static void pass_horizontal(const uint8_t *src, int sw, int y0, int rows, const coeffs_t *h,
                            int ww, uint8_t *tmp) {
  for (int y = 0; y < rows; y++) {
    const uint8_t *row = src + (size_t)(y0 + y) * sw * 3;
    uint8_t *d = tmp + (size_t)y * ww * 3;
    for (int x = 0; x < ww; x++)
      tap3(row + 3 * (size_t)h->bounds[2 * x], 3, h->k + (size_t)x * h->ksize,
           h->bounds[2 * x + 1], d + 3 * x);
  }
}

static void pass_vertical(const uint8_t *tmp, int ww, int y_first, const coeffs_t *v, int wh,
                          uint8_t *dst, size_t dst_stride) {
  size_t stride = (size_t)ww * 3;
  for (int y = 0; y < wh; y++) {
    const uint8_t *col0 = tmp + (size_t)(v->bounds[2 * y] - y_first) * stride;
    const int32_t *k = v->k + (size_t)y * v->ksize;
    for (int x = 0; x < ww; x++)
      tap3(col0 + 3 * x, stride, k, v->bounds[2 * y + 1], dst + y * dst_stride + 3 * x);
  }
}

int image__resample_window(const uint8_t *src, int sw, int sh, int rw, int rh, int x0, int y0,
                           int ww, int wh, uint8_t *dst, size_t dst_stride, cnn_error_t *err) {
  coeffs_t h = {0}, v = {0};
  uint8_t *tmp = NULL;
  int rc = CNN_ENOMEM;
  int hok = rw == sw ? coeffs_identity(&h, x0, ww) : coeffs_init(&h, sw, rw, x0, ww);
  int vok = rh == sh ? coeffs_identity(&v, y0, wh) : coeffs_init(&v, sh, rh, y0, wh);
  if (hok == 0 && vok == 0) {
    int first = v.bounds[0];
    int last = v.bounds[2 * (wh - 1)] + v.bounds[2 * (wh - 1) + 1];
    tmp = malloc((size_t)(last - first) * (size_t)ww * 3 + 1);
    if (tmp) {
      pass_horizontal(src, sw, first, last - first, &h, ww, tmp);
      pass_vertical(tmp, ww, first, &v, wh, dst, dst_stride);
      rc = 0;
    }
  }
  free(tmp);
  coeffs_deinit(&h);
  coeffs_deinit(&v);
  return rc < 0 ? cnn_error_set(err, rc, "out of memory resizing %dx%d to %dx%d", sw, sh, rw, rh)
                : 0;
}
