/*
 * kern_wino2_avx2.c — the F(2x2, 3x3) transforms of kern_winograd.c for AVX2 builds
 * (AVX-512 builds have their own, and builds with neither keep the portable ones in
 * kern_winograd.c).
 *
 * Eight horizontally adjacent tiles per vector, on row runs of any block. Input: each
 * of a tile's four patch rows is read as 18 floats from the plane (loads masked to the
 * row where the segment reaches outside it) and split into even and
 * odd positions in registers, twice (from columns 0 and 2): patch columns 0..3 of tile
 * k are then lane k of e, o, e2, o2. B^T d B goes straight into V, stores clipped to the
 * run. Output: A^T m A from the 16 M rows, the even and odd columns of each output row
 * interleaved into 16 consecutive floats, epilogue y = act(y + bias + residual),
 * stores clipped to the row. The portable path these replace went through half rows in
 * scratch, split them with scalar code and stored its 16-float vectors with calls to
 * memcpy on maps whose rows hold fewer than 16 tiles (every map from 28x28 down):
 * GoogLeNet at batch 1 on 2 threads, a Zen 3 host, spent 15% of its time there.
 * The same sums in the same order as those transforms. Maps 4 tiles wide (7x7) in blocks
 * of whole images take two tile rows per vector instead (kern_wino_rows8: the vector's
 * halves from two tile rows' patch rows, its outputs to two output rows), where a row
 * run filled half of every vector: forwards alternating one by one (session 14),
 * ResNet-50 batch 1 p50 42.23 -> 41.96 ms (layer4's 3x3 convs), GoogLeNet 15.26 ->
 * 15.14, ResNet-18 16.26 -> 16.11.
 */
#include "kern_winograd.h"

#if KERN_WINO_AVX2

enum { W2_VL = 8, W2_SEG = 2 * W2_VL + 2 }; /* tiles per vector, floats per patch row */

/* Even and odd positions of the 16 floats lo:hi into d[0], d[1]. */
static inline void w2__split(__m256 lo, __m256 hi, __m256 d[2]) {
  d[0] = kern_simd_even8(lo, hi);
  d[1] = kern_simd_odd8(lo, hi);
}

/* B^T d B for the 4x4 patches d[row][column] (lane k: tile k) into V (position x at
 * dst + x * nb), the first n lanes. */
static inline void w2__bt_store(__m256 d[4][4], float *dst, size_t nb, int n) {
  for (int r = 0; r < 4; r++) {
    __m256 a[4]; /* row r of B^T d: d0 - d2, d1 + d2, d2 - d1, d1 - d3 */
    for (int x = 0; x < 4; x++)
      a[x] = r == 0   ? _mm256_sub_ps(d[0][x], d[2][x])
             : r == 1 ? _mm256_add_ps(d[1][x], d[2][x])
             : r == 2 ? _mm256_sub_ps(d[2][x], d[1][x])
                      : _mm256_sub_ps(d[1][x], d[3][x]);
    __m256 out[4] = {_mm256_sub_ps(a[0], a[2]), _mm256_add_ps(a[1], a[2]),
                     _mm256_sub_ps(a[2], a[1]), _mm256_sub_ps(a[1], a[3])};
    for (int x = 0; x < 4; x++) kern_wino_put8(dst + (size_t)(4 * r + x) * nb, out[x], n);
  }
}

/* One vector of up to 8 tiles (n valid) of one plane: V position x at dst + x * nb. */
static void w2__vec8(const wino_job_t *j, const float *plane, int ys, int xs, float *dst,
                     size_t nb, int n) {
  __m256 d[4][4]; /* [patch row][patch column] */
  int inside = xs >= 0 && xs + W2_SEG <= j->w;
  for (int i = 0; i < 4; i++) {
    int y = ys + i;
    if (y < 0 || y >= j->h) {
      for (int x = 0; x < 4; x++) d[i][x] = _mm256_setzero_ps();
      continue;
    }
    const float *r = plane + (size_t)y * (size_t)j->w, *s = r + xs;
    if (inside) {
      w2__split(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8), d[i]);
      w2__split(_mm256_loadu_ps(s + 2), _mm256_loadu_ps(s + 10), d[i] + 2);
    } else { /* loads masked to the row */
      w2__split(kern_wino_load8(r, xs, j->w), kern_wino_load8(r, xs + 8, j->w), d[i]);
      w2__split(kern_wino_load8(r, xs + 2, j->w), kern_wino_load8(r, xs + 10, j->w), d[i] + 2);
    }
  }
  w2__bt_store(d, dst, nb, n);
}

/* Eight floats of row y from column x, masked to the plane (zeros outside it). */
static inline __m256 w2__row8(const wino_job_t *j, const float *plane, int y, int x) {
  if (y < 0 || y >= j->h) return _mm256_setzero_ps();
  return kern_wino_load8(plane + (size_t)y * (size_t)j->w, x, j->w);
}

/* w2__vec8 for tile rows ty and ty + 1 of a map 4 tiles wide (tiles ty * 4 .. + 8, in
 * V's order): lanes 0-3 from patch rows ys.., lanes 4-7 from ys + 2..; the same sums. */
static void w2__vec8_rows(const wino_job_t *j, const float *plane, int ys, int xs, float *dst,
                          size_t nb, int n) {
  __m256 d[4][4];
  for (int i = 0; i < 4; i++) {
    w2__split(w2__row8(j, plane, ys + i, xs), w2__row8(j, plane, ys + 2 + i, xs), d[i]);
    w2__split(w2__row8(j, plane, ys + i, xs + 2), w2__row8(j, plane, ys + 2 + i, xs + 2),
              d[i] + 2);
  }
  w2__bt_store(d, dst, nb, n);
}

void kern_wino2_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v) {
  if (kern_wino_rows8(j, t0, t1))
    kern_wino_input_rows8(j, t0, t1, c0, c1, v, 2, w2__vec8_rows);
  else
    kern_wino_input_vectors8(j, t0, t1, c0, c1, v, 2, w2__vec8);
}

/* aux value that tells w2__out8 its vector holds two tile rows (kern_wino_rows8). */
static const size_t w2__rows_tag;
#define W2_ROWS (&w2__rows_tag)

/* One output vector (kern_wino_out8_fn): M's 16 positions are rows * nb apart. */
static void w2__out8(const wino_job_t *j, const float *mk, size_t rr, size_t nb, size_t rows,
                     const size_t *aux, __m256 bias, size_t o, int x0, int ty, int n) {
  const float *mr = mk + rr * nb;
  size_t stride = rows * nb;
  __m256 s[2][4]; /* A^T m: [output row][transform column] */
  for (int c = 0; c < 4; c++) {
    __m256 m0 = _mm256_loadu_ps(mr + (size_t)c * stride);
    __m256 m1 = _mm256_loadu_ps(mr + (size_t)(4 + c) * stride);
    __m256 m2 = _mm256_loadu_ps(mr + (size_t)(8 + c) * stride);
    __m256 m3 = _mm256_loadu_ps(mr + (size_t)(12 + c) * stride);
    s[0][c] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
    s[1][c] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
  }
  __m256 e[2], od[2];
  for (int i = 0; i < 2; i++) {
    e[i] = _mm256_add_ps(_mm256_add_ps(s[i][0], s[i][1]), s[i][2]);
    od[i] = _mm256_sub_ps(_mm256_sub_ps(s[i][1], s[i][2]), s[i][3]);
  }
  if (aux == W2_ROWS) { /* kern_wino_rows8: lanes 4-7 are tile row ty + 1's */
    int len = 8 < j->ow ? 8 : j->ow;
    for (int i = 0; i < 2; i++) {
      __m256 lo = _mm256_unpacklo_ps(e[i], od[i]), hi = _mm256_unpackhi_ps(e[i], od[i]);
      __m256 row[2] = {_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31)};
      for (int g = 0; g < 2 && 4 * g < n; g++)
        if (2 * (ty + g) + i < j->oh)
          kern_wino_store8(j, row[g], bias, o + (size_t)(2 * (ty + g) + i) * (size_t)j->ow, len);
    }
    return;
  }
  kern_wino_store_rows2(j, e, od, bias, o, x0, ty, n);
}

void kern_wino2_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m) {
  if (kern_wino_rows8(j, t0, t1))
    kern_wino_output_rows8(j, r0, r1, t0, t1, m, W2_ROWS, w2__out8);
  else
    kern_wino_output_vectors8(j, r0, r1, t0, t1, m, NULL, 2, w2__out8);
}

#endif
