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
 *
 * Stride-2 runs of at most 16 outputs (maps of 14x14 and 7x7) take one masked load
 * pair and one permute, the padding masked off, with no per-run loops (ResNet-50's
 * layer4.0 3x3/2 conv at batch 8, one thread: 8.74-8.92 -> 8.53 ms); AVX2 builds one
 * pair per 8 outputs (session 17, Zen 3, ResNet-50 batch 1 on 2 threads, forwards
 * alternating in one process: that conv's median 2.37 -> 2.13 ms, minimum 1.74 ->
 * 1.64; the 1x1/2 shortcuts onto 7x7 1.67 -> 1.62).
 *
 * At stride 2 with kernels 5 or more wide (the 7x7 stems, where AVX-512 builds take
 * kern_conv_s2rows.c instead, with no lowering at all) each input row the block
 * needs is first split once into its even and odd positions, with zero margins,
 * into tmp; every tap's run along an output row is then a plain copy from one of
 * the two at an offset, the padding included, where it used to be a gather per tap
 * (a row serves kw taps and several output rows).
 */
#include "kern_internal.h"

#include <stdint.h>
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

#if defined(__AVX2__) && !defined(__AVX512F__)
/* Even (odd: with `odd`) positions of the 16 floats at s. */
static inline __m256 im2col__pick8(const float *s, int odd) {
  __m256 lo = _mm256_loadu_ps(s), hi = _mm256_loadu_ps(s + 8);
  return odd ? kern_simd_odd8(lo, hi) : kern_simd_even8(lo, hi);
}
#endif

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
  int x = a;
#if defined(__AVX2__)
  /* 8 at a time while the 16 floats read stay before the last position's successor */
  for (; x + 8 < b; x += 8, dst += 8)
    _mm256_storeu_ps(dst, im2col__pick8(base + (ptrdiff_t)x * 2, 0));
#endif
  for (; x < b; x++) *dst++ = base[(ptrdiff_t)x * 2];
  return dst;
#endif
}

#if defined(__AVX512F__)
/* A stride-2 run of n <= 16 outputs whose first tap column is ix0 (maps at most 16
 * wide: 14x14 and 7x7 outputs): its 2n - 1 input positions in one masked load pair,
 * masked to the row [0, w) so the padding reads as zero, the even ones kept. Rows
 * outside the plane store zeros. */
static inline float *im2col__short_s2(const float *row, int w, int ix0, int n, float *dst) {
  __mmask16 out = (__mmask16)((1u << n) - 1);
  if (!row) {
    _mm512_mask_storeu_ps(dst, out, _mm512_setzero_ps());
    return dst + n;
  }
  int lo = ix0 < 0 ? -ix0 : 0, hi = w - ix0; /* lanes [lo, hi) are inside the row */
  if (hi > 2 * n - 1) hi = 2 * n - 1;
  uint32_t in = hi > lo ? (uint32_t)((((uint64_t)1 << hi) - 1) & ~(((uint64_t)1 << lo) - 1)) : 0;
  const float *src = (const float *)((uintptr_t)row + (intptr_t)ix0 * (intptr_t)sizeof(float));
  __m512 a = _mm512_maskz_loadu_ps((__mmask16)(in & 0xFFFF), src);
  __m512 b = _mm512_maskz_loadu_ps((__mmask16)(in >> 16), src + 16);
  _mm512_mask_storeu_ps(dst, out, kern_simd_even(a, b));
  return dst + n;
}
#elif defined(__AVX2__)
/* The AVX2 counterpart, 8 outputs (15 input positions) per masked load pair, for runs
 * of at most 16 outputs: the scalar loop took a run of 7 (7x7 outputs) one float at a
 * time, and ResNet-50's layer4.0 3x3/2 at batch 1 on 2 threads spent a quarter of its
 * time lowering (perf, bench_conv). */
static inline float *im2col__short_s2(const float *row, int w, int ix0, int n, float *dst) {
  for (int done = 0; done < n; done += 8, ix0 += 16) {
    int m = n - done < 8 ? n - done : 8;
    __m256 v = _mm256_setzero_ps();
    if (row) {
      int lo = ix0 < 0 ? -ix0 : 0, hi = w - ix0; /* lanes [lo, hi) are inside the row */
      if (hi > 2 * m - 1) hi = 2 * m - 1;
      uintptr_t src = (uintptr_t)row + (uintptr_t)((intptr_t)ix0 * (intptr_t)sizeof(float));
      __m256i m0 = _mm256_andnot_si256(kern_simd_lanes8(lo), kern_simd_lanes8(hi));
      __m256i m1 = _mm256_andnot_si256(kern_simd_lanes8(lo - 8), kern_simd_lanes8(hi - 8));
      v = kern_simd_even8(_mm256_maskload_ps((const float *)src, m0),
                          _mm256_maskload_ps((const float *)(src + 8 * sizeof(float)), m1));
    }
    kern_simd_store_n8(dst + done, v, m);
  }
  return dst + n;
}
#endif

/* Output row oy, columns [x0, x1), tap (ky, kx) whose valid x range is [lo, hi). */
static float *im2col__run(const im2col_geom_t *g, const float *plane, int oy, int x0, int x1,
                          int ky, int kx, int lo, int hi, float *dst) {
  int iy = oy * g->p->stride_h - g->p->pad_t + ky;
#if defined(__AVX512F__) || defined(__AVX2__)
  if (g->p->stride_w == 2 && x1 - x0 <= 16)
    return im2col__short_s2(iy < 0 || iy >= g->h ? NULL : plane + (ptrdiff_t)iy * g->w, g->w,
                            2 * x0 + kx - g->p->pad_l, x1 - x0, dst);
#endif
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

/* The input rows [*iy0, *iy1) that output columns [c0, c1) read, clipped to the plane. */
static void im2col__rows(const kern_conv_t *p, int h, int ow, size_t c0, size_t c1, int *iy0,
                         int *iy1) {
  int oy0 = (int)(c0 / (size_t)ow), oy1 = (int)((c1 - 1) / (size_t)ow);
  *iy0 = oy0 * p->stride_h - p->pad_t;
  *iy1 = oy1 * p->stride_h - p->pad_t + p->kh;
  if (*iy0 < 0) *iy0 = 0;
  if (*iy1 > h) *iy1 = h;
}

enum { IM2COL_MARGIN = KERN_SPLIT_MARGIN }; /* zero floats before each deinterleaved row */

/* Length of one deinterleaved row: the margin, ow + kw/2 + 1 positions, a vector of slack. */
static size_t im2col__plen(const kern_conv_t *p, int ow) {
  return ((size_t)IM2COL_MARGIN + (size_t)ow + (size_t)p->kw / 2 + 1 + 16 + 15) / 16 * 16;
}

/* Worth it when a row serves many taps: the 7x7/2 stem went from 1.17-1.20 to
 * 1.04-1.06 ms (bench_conv, one thread), while 3x3/2 layers came out even
 * (1.11-1.23 ms either way) and 1x1/2 shortcuts, which read each row once and skip
 * the odd ones, lost (0.84 -> 0.97 ms). */
static int im2col__split_ok(const kern_conv_t *p) {
  return p->stride_w == 2 && p->kw >= 5 && p->pad_l <= 2 * IM2COL_MARGIN - 2;
}

size_t kern_im2col_tmp_floats(const kern_conv_t *p, int h, int ow) {
  return im2col__split_ok(p) ? (size_t)h * 2 * im2col__plen(p, ow) : 0;
}

/* e[M + q] = row[2q], o[M + q] = row[2q + 1] (M = IM2COL_MARGIN), 0 outside the row
 * (kern_internal.h; kern_conv_s2rows.c splits its rows here too). */
void kern_im2col_split_row(const float *row, int w, float *e, float *o, size_t plen) {
  size_t ne = (size_t)(w + 1) / 2, no = (size_t)w / 2; /* positions inside the row */
  memset(e, 0, IM2COL_MARGIN * sizeof *e);
  memset(o, 0, IM2COL_MARGIN * sizeof *o);
  e += IM2COL_MARGIN, o += IM2COL_MARGIN;
  memset(e + ne, 0, (plen - IM2COL_MARGIN - ne) * sizeof *e);
  memset(o + no, 0, (plen - IM2COL_MARGIN - no) * sizeof *o);
  int q = 0;
#if defined(__AVX512F__)
  for (; 2 * q + 32 <= w; q += 16) {
    __m512 lo = _mm512_loadu_ps(row + 2 * q), hi = _mm512_loadu_ps(row + 2 * q + 16);
    _mm512_storeu_ps(e + q, kern_simd_even(lo, hi));
    _mm512_storeu_ps(o + q, kern_simd_odd(lo, hi));
  }
#elif defined(__AVX2__)
  for (; 2 * q + 16 <= w; q += 8) {
    _mm256_storeu_ps(e + q, im2col__pick8(row + 2 * q, 0));
    _mm256_storeu_ps(o + q, im2col__pick8(row + 2 * q, 1));
  }
#endif
  for (; 2 * q < w; q++) {
    e[q] = row[2 * q];
    if (2 * q + 1 < w) o[q] = row[2 * q + 1];
  }
}

/* n floats from src to dst, whole vectors and a masked tail: runs are short (an
 * output row), so no call per run. */
static inline float *im2col__copy(float *dst, const float *src, int n) {
#if defined(__AVX512F__)
  int k = 0;
  for (; k + 16 <= n; k += 16) _mm512_storeu_ps(dst + k, _mm512_loadu_ps(src + k));
  if (k < n) {
    __mmask16 m = (__mmask16)((1u << (n - k)) - 1);
    _mm512_mask_storeu_ps(dst + k, m, _mm512_maskz_loadu_ps(m, src + k));
  }
#else
  memcpy(dst, src, sizeof *dst * (size_t)n);
#endif
  return dst + n;
}

/* The stride-2 lowering through deinterleaved rows (tmp: kern_im2col_tmp_floats). */
static void im2col__by_split(const kern_conv_t *p, const float *img, int h, int w, int ow,
                             size_t c0, size_t c1, float *col, float *tmp) {
  size_t hw = (size_t)h * (size_t)w, plen = im2col__plen(p, ow);
  int iy0, iy1;
  im2col__rows(p, h, ow, c0, c1, &iy0, &iy1);
  for (int ci = 0; ci < p->cin; ci++) {
    const float *plane = img + (size_t)ci * hw;
    for (int iy = iy0; iy < iy1; iy++) {
      float *e = tmp + (size_t)(iy - iy0) * 2 * plen;
      kern_im2col_split_row(plane + (size_t)iy * (size_t)w, w, e, e + plen, plen);
    }
    for (int ky = 0; ky < p->kh; ky++) {
      for (int kx = 0; kx < p->kw; kx++) {
        int s = kx - p->pad_l, par = s & 1, off = (s - par) / 2; /* ix = 2 (x + off) + par */
        float *dst = col;
        for (size_t pos = c0; pos < c1;) {
          int oy = (int)(pos / (size_t)ow), x0 = (int)(pos % (size_t)ow);
          int x1 = (size_t)(ow - x0) < c1 - pos ? ow : x0 + (int)(c1 - pos);
          int iy = oy * p->stride_h - p->pad_t + ky;
          if (iy < 0 || iy >= h) {
            memset(dst, 0, sizeof *dst * (size_t)(x1 - x0));
            dst += x1 - x0;
          } else {
            const float *src = tmp + (size_t)(iy - iy0) * 2 * plen + (size_t)par * plen;
            dst = im2col__copy(dst, src + IM2COL_MARGIN + x0 + off, x1 - x0);
          }
          pos += (size_t)(x1 - x0);
        }
        col += c1 - c0;
      }
    }
  }
}

void kern_im2col_part(const kern_conv_t *p, const float *img, int h, int w, int ow, size_t c0,
                      size_t c1, int ci0, int ci1, float *col, size_t ldcol) {
  im2col_geom_t g = {p, h, w, ow};
  size_t hw = (size_t)h * (size_t)w;
  int iy0, iy1;
  im2col__rows(p, h, ow, c0, c1, &iy0, &iy1);
  for (int ci = ci0; ci < ci1; ci++) {
    const float *plane = img + (size_t)ci * hw;
    if (ci + 1 < ci1 && iy1 > iy0) { /* the next plane's rows: planes are far apart */
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
        col += ldcol;
      }
    }
  }
}

void kern_im2col(const kern_conv_t *p, const float *img, int h, int w, int ow, size_t c0,
                 size_t c1, float *col, float *tmp) {
  if (tmp && im2col__split_ok(p))
    im2col__by_split(p, img, h, w, ow, c0, c1, col, tmp);
  else
    kern_im2col_part(p, img, h, w, ow, c0, c1, 0, p->cin, col, c1 - c0);
}
