/*
 * kern_im2col.c — lowering a block of convolution output columns to a matrix.
 *
 * For one image, column j of the lowered matrix is output position j (row-major
 * over oh x ow) and row k = (ci, ky, kx) holds the input value that kernel tap
 * meets there (0 in the padding). A block [c0, c1) of columns is written densely
 * as a K x (c1 - c0) row-major matrix, so each conv thread lowers only the columns
 * it multiplies, into its own scratch. Rows are filled run by run along an output
 * row: the taps falling in the left padding, the valid middle (a plain copy at
 * stride 1) and the right padding, which keeps the inner loops branch-free. The
 * rows a block needs from the next input plane are prefetched while the current
 * one is lowered: planes lie a whole map apart, a stride the hardware prefetcher
 * does not follow (strided convs, weights cold and input warm as in a forward:
 * BENCH_COLD=2 bench_conv 9.3-10.2 -> 8.4-8.9 ms on one thread).
 */
#include "kern_internal.h"

#include <string.h>
#include "kern_simd.h"

typedef struct {
  const kern_conv_t *p;
  int h, w, ow;
} im2col_geom_t;

/* Output x range [*lo, *hi) whose tap kx lands inside the input row. */
static void im2col__valid_x(const im2col_geom_t *g, int kx, int *lo, int *hi) {
  int sw = g->p->stride_w, off = kx - g->p->pad_l; /* ix = ox*sw + off */
  int a = off >= 0 ? 0 : (-off + sw - 1) / sw;
  int b = g->w - off <= 0 ? 0 : (g->w - off + sw - 1) / sw;
  *lo = a < g->ow ? a : g->ow;
  *hi = b < g->ow ? b : g->ow;
  if (*hi < *lo) *hi = *lo;
}

/* dst[x - a] = base[2x] for x in [a, b): with AVX-512, 16 at a time from a masked
 * load pair (lanes past the last position are never read) and one permute. */
static float *im2col__stride2(const float *base, int a, int b, float *dst) {
#if defined(__AVX512F__)
  int x = a;
  for (; x < b; x += 16) {
    int n = b - x < 16 ? b - x : 16, span = 2 * n - 1; /* positions 2x .. 2x + 2n - 2 */
    const float *src = base + (ptrdiff_t)x * 2;
    __mmask16 m0 = span >= 16 ? 0xFFFF : (__mmask16)((1u << span) - 1);
    __mmask16 m1 = span > 16 ? (__mmask16)((1u << (span - 16)) - 1) : 0;
    __m512 lo = _mm512_maskz_loadu_ps(m0, src), hi = _mm512_maskz_loadu_ps(m1, src + 16);
    _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n) - 1), kern_simd_even(lo, hi));
    dst += n;
  }
  return dst;
#else
  for (int x = a; x < b; x++) *dst++ = base[(ptrdiff_t)x * 2];
  return dst;
#endif
}

/* Output row oy, columns [x0, x1), tap (ky, kx) whose valid x range is [lo, hi). */
static float *im2col__run(const im2col_geom_t *g, const float *plane, int oy, int x0, int x1,
                          int ky, int kx, int lo, int hi, float *dst) {
  int iy = oy * g->p->stride_h - g->p->pad_t + ky;
  if (iy < 0 || iy >= g->h) {
    memset(dst, 0, sizeof *dst * (size_t)(x1 - x0));
    return dst + (x1 - x0);
  }
  int a = lo < x0 ? x0 : (lo > x1 ? x1 : lo);
  int b = hi > x1 ? x1 : (hi < a ? a : hi);
  int sw = g->p->stride_w;
  const float *base = plane + (ptrdiff_t)iy * g->w + kx - g->p->pad_l; /* base[ox*sw] */
  for (int x = x0; x < a; x++) *dst++ = 0.0f;
  if (sw == 1) {
    memcpy(dst, base + a, sizeof *dst * (size_t)(b - a));
    dst += b - a;
  } else if (sw == 2) {
    dst = im2col__stride2(base, a, b, dst);
  } else {
    for (int x = a; x < b; x++) *dst++ = base[(ptrdiff_t)x * sw];
  }
  for (int x = b; x < x1; x++) *dst++ = 0.0f;
  return dst;
}

void kern_im2col(const kern_conv_t *p, const float *img, int h, int w, int ow, size_t c0,
                 size_t c1, float *col) {
  im2col_geom_t g = {p, h, w, ow};
  size_t hw = (size_t)h * (size_t)w;
  int oy0 = (int)(c0 / (size_t)ow), oy1 = (int)((c1 - 1) / (size_t)ow);
  int iy0 = oy0 * p->stride_h - p->pad_t, iy1 = oy1 * p->stride_h - p->pad_t + p->kh;
  if (iy0 < 0) iy0 = 0;
  if (iy1 > h) iy1 = h;
  for (int ci = 0; ci < p->cin; ci++) {
    const float *plane = img + (size_t)ci * hw;
    if (ci + 1 < p->cin && iy1 > iy0) { /* the next plane's rows: planes are far apart */
      const char *r0 = (const char *)(plane + hw + (size_t)iy0 * (size_t)w);
      size_t bytes = (size_t)(iy1 - iy0) * (size_t)w * sizeof(float);
      for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(r0 + b);
    }
    for (int ky = 0; ky < p->kh; ky++) {
      for (int kx = 0; kx < p->kw; kx++) {
        int lo, hi;
        im2col__valid_x(&g, kx, &lo, &hi);
        float *dst = col;
        for (size_t pos = c0; pos < c1;) {
          int oy = (int)(pos / (size_t)ow), x0 = (int)(pos % (size_t)ow);
          int x1 = (size_t)(ow - x0) < c1 - pos ? ow : x0 + (int)(c1 - pos);
          dst = im2col__run(&g, plane, oy, x0, x1, ky, kx, lo, hi, dst);
          pos += (size_t)(x1 - x0);
        }
        col += c1 - c0;
      }
    }
  }
}
