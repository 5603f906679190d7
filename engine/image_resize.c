/*
 * image_resize.c — PIL's antialiased bilinear resample, bit for bit: the
 * coefficient tables and the window plan (the passes are image_resize_pass.c).
 *
 * Mirrors Pillow's ImagingResample (Resample.c): per output pixel, a triangle
 * filter whose support is scaled by the downscale factor (support = max(scale,
 * 1)), centred at (i + 0.5) * scale, taps from round(center - support) to
 * round(center + support), weights normalised then converted to 22-bit fixed
 * point; horizontal pass first into an 8-bit intermediate, then vertical, each
 * rounding and clamping to uint8. A pass that keeps its side runs as one tap of
 * weight 1.0, which gives the source bytes back, as Pillow's skipped pass does.
 *
 * Only a window of the virtual resized image is computed (the center crop):
 * the horizontal pass only for the source rows the window's vertical taps
 * read and only for the window's columns, the vertical pass only for its rows.
 * Every output pixel is independent, so the pixels are those of the full
 * resize. Memory: coefficient tables and the intermediate rows are allocated
 * once per call (setup), never per pixel, and freed before returning.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_internal.h"
#include "image_resize.h"

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
    k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << RESIZE_PREC_BITS)
                           : 0.5 + v * (1 << RESIZE_PREC_BITS));
  }
  bounds[0] = xmin;
  bounds[1] = xmax;
}

static int coeffs_alloc(resize_coeffs_t *c, int n, int ksize) {
  c->n = n;
  c->ksize = ksize;
  c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
  c->k = malloc((size_t)n * (size_t)ksize * sizeof *c->k);
  return c->bounds && c->k ? 0 : -1;
}

/* Coefficients for outputs [first, first + n) of an in_size -> out_size pass. */
static int coeffs_init(resize_coeffs_t *c, int in_size, int out_size, int first, int n) {
  double scale = (double)in_size / out_size;
  double support = scale < 1.0 ? 1.0 : scale;
  int ksize = (int)ceil(support) * 2 + 1;
  double *w = malloc((size_t)ksize * sizeof *w);
  if (coeffs_alloc(c, n, ksize) < 0 || !w) {
    free(w);
    return -1;
  }
  for (int i = 0; i < n; i++)
    coeffs_one(in_size, scale, support, first + i, ksize, w, c->bounds + 2 * i,
               c->k + (size_t)i * ksize);
  free(w);
  return 0;
}

/* Identity pass (side unchanged): one tap of weight 1.0 per output. */
static int coeffs_identity(resize_coeffs_t *c, int first, int n) {
  if (coeffs_alloc(c, n, 1) < 0)
    return -1;
  for (int i = 0; i < n; i++) {
    c->bounds[2 * i] = first + i;
    c->bounds[2 * i + 1] = 1;
    c->k[i] = 1 << RESIZE_PREC_BITS;
  }
  return 0;
}

/* One output's vector window and its weights, shifted right by the distance
 * the window start moved left (image_resize.h). */
static void coeffs_expand_one(const resize_coeffs_t *c, int x, int start, int32_t *lanes) {
  int lead = c->bounds[2 * x] - start, taps = 4 * c->groups;
  const int32_t *k = c->k + (size_t)x * c->ksize;
  for (int t = 0; t < taps; t++) {
    int j = t - lead;
    int32_t w = j >= 0 && j < c->bounds[2 * x + 1] ? k[j] : 0;
    int32_t *q = lanes + (size_t)(t / 4) * RESIZE_GROUP_LANES + 4 * (t % 4);
    q[0] = q[1] = q[2] = w;
    q[3] = 0;
  }
}

/* Builds the vector form when the row holds a whole window (in_size >= 4 *
 * groups); otherwise leaves groups = 0 and the scalar pass runs. */
static int coeffs_vectorize(resize_coeffs_t *c, int in_size) {
  int most = 1, n4 = (c->n + 3) & ~3;
  for (int i = 0; i < c->n; i++)
    most = c->bounds[2 * i + 1] > most ? c->bounds[2 * i + 1] : most;
  int groups = (most + 3) / 4;
  if (in_size < 4 * groups)
    return 0;
  size_t lanes = (size_t)n4 * groups * RESIZE_GROUP_LANES;
  c->start = malloc((size_t)n4 * sizeof *c->start);
  c->kv = aligned_alloc(64, lanes * sizeof *c->kv);
  if (!c->start || !c->kv)
    return -1;
  c->groups = groups;
  for (int i = 0; i < n4; i++) {
    int x = i < c->n ? i : c->n - 1, lo = c->bounds[2 * x];
    c->start[i] = lo < in_size - 4 * groups ? lo : in_size - 4 * groups;
    coeffs_expand_one(c, x, c->start[i], c->kv + (size_t)i * groups * RESIZE_GROUP_LANES);
  }
  return 0;
}

static void coeffs_deinit(resize_coeffs_t *c) {
  free(c->bounds);
  free(c->k);
  free(c->start);
  free(c->kv);
}

static int resize_plan(resize_coeffs_t *h, resize_coeffs_t *v, int sw, int sh, int rw, int rh,
                       int x0, int y0, int ww, int wh) {
  int hok = rw == sw ? coeffs_identity(h, x0, ww) : coeffs_init(h, sw, rw, x0, ww);
  int vok = rh == sh ? coeffs_identity(v, y0, wh) : coeffs_init(v, sh, rh, y0, wh);
  if (hok < 0 || vok < 0)
    return -1;
  return RESIZE_SIMD ? coeffs_vectorize(h, sw) : 0;
}

/* Horizontal then vertical pass through an intermediate of the source rows
 * [first, last) at window width, plus (vector form) a padded copy of the
 * source's last row. */
static int resize_run(const uint8_t *src, int sw, int sh, const resize_coeffs_t *h,
                      const resize_coeffs_t *v, uint8_t *dst, size_t dst_stride) {
  int ww = h->n, wh = v->n, first = v->bounds[0];
  int last = v->bounds[2 * (wh - 1)] + v->bounds[2 * (wh - 1) + 1];
  size_t stride = (size_t)((ww + 3) & ~3) * 3 + 4, row = (size_t)sw * 3;
  size_t tmp_size = (size_t)(last - first) * stride;
  uint8_t *tmp = malloc(tmp_size + (h->groups ? row + 16 : 0));
  if (!tmp)
    return -1;
  uint8_t *lastrow = NULL;
  if (h->groups && last == sh) {
    lastrow = tmp + tmp_size;
    memcpy(lastrow, src + (size_t)(sh - 1) * row, row);
    memset(lastrow + row, 0, 16);
  }
  image__resize_hpass(src, sw, sh, first, last - first, h, lastrow, tmp, stride);
  image__resize_vpass(tmp, stride, ww * 3, first, v, dst, dst_stride);
  free(tmp);
  return 0;
}

int image__resample_window(const uint8_t *src, int sw, int sh, int rw, int rh, int x0, int y0,
                           int ww, int wh, uint8_t *dst, size_t dst_stride, cnn_error_t *err) {
  resize_coeffs_t h = {0}, v = {0};
  int rc = resize_plan(&h, &v, sw, sh, rw, rh, x0, y0, ww, wh);
  if (rc == 0)
    rc = resize_run(src, sw, sh, &h, &v, dst, dst_stride);
  coeffs_deinit(&h);
  coeffs_deinit(&v);
  return rc < 0 ? cnn_error_set(err, CNN_ENOMEM, "out of memory resizing %dx%d to %dx%d", sw,
                                sh, rw, rh)
                : 0;
}
