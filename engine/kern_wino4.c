/*
 * kern_wino4.c — the transforms of Winograd F(4x4, 3x3) for kern_winograd.c.
 *
 * Each 4x4 block of output comes from a 6x6 input patch: 36 multiplies per tile and
 * channel pair instead of 144 direct (4x; F(2x2) saves 2.25x). The price is accuracy:
 * the transforms hold larger and finer constants, so rounding grows. The
 * interpolation points are chosen for that: 0, 1, -1, 1/2, -2 and infinity (as in
 * Barabasz et al., "Error analysis and improving the accuracy of Winograd
 * convolution", 2020) rather than Lavin's 0, +-1, +-2, which measure 2.5x worse
 * (tests/bench/winograd_error.py: max error 1.5e-6 against 3.8e-6, F(2x2) 2.7e-7, on
 * a 256-channel layer). kern_winograd.c therefore takes F(4x4) only where it pays:
 * maps of at least 56x56 outputs (ResNet layer1, GoogLeNet conv3), and 28x28 maps of
 * layers with at least 128 input channels and no more output ones (ResNet layer2);
 * other 28x28 layers and smaller maps lose on 2 threads at batch 1 (too few tiles to
 * split, weights 2.25x larger than F(2x2)'s), and every F(4x4) layer adds to the
 * network's rounding error (wino__pick has the figures).
 *
 * With B^T, G and A^T below, V = B^T d B, U = G g G^T, Y = A^T [U (.) V] A.
 * Input: 16 horizontally adjacent tiles at a time (one AVX-512 register per patch
 * element, read by kern_wino_patch_row). Rows are transformed horizontally into a small
 * stack buffer, then columns vertically into V. Output: the reverse, A^T on the
 * columns then the rows, four 16-tile vectors interleaved into 64 consecutive
 * outputs per row, epilogue y = act(y + bias + residual), stores masked to the row.
 * Maps of at most 8 tiles a row (ResNet's 28x28 layer2: 7) would fill 7 of 16 lanes
 * that way; blocks of whole images of them put two tile rows in a vector instead
 * (kern_wino4_rows_*): each patch element is picked from the pair's two input rows (two
 * registers each) by kern_wino_pick, and each output row's two halves from the four
 * column phases. The same sums in the same order: bit for bit the same results.
 * Per-node minima in forwards, alternating: ResNet-50's layer2 3x3 convs 0.381-0.387 ->
 * 0.309-0.313 ms on one thread (the image-serial prefix of a batch), 0.226-0.234 ->
 * 0.195-0.204 ms on two at batch 1.
 *
 * AVX-512 and AVX2 builds (the latter at the end of the file, 8 tiles per vector);
 * elsewhere kern_wino4_supported() is 0, kern_winograd.c keeps to F(2x2), and only the
 * G matrix and kern_wino4_supported are built.
 */
#include <stdint.h>
#include <string.h>

#include "kern_simd.h"
#include "kern_winograd.h"

/* Interpolation points 0, 1, -1, 1/2, -2, infinity (see the note). */
const double kern_wino4_g[6][3] = {
    {1, 0, 0},
    {1.0 / 3, 1.0 / 3, 1.0 / 3},
    {-1.0 / 3, 1.0 / 3, -1.0 / 3},
    {-16.0 / 15, -8.0 / 15, -4.0 / 15},
    {1.0 / 15, -2.0 / 15, 4.0 / 15},
    {0, 0, 1}};

#if defined(__AVX512F__)

int kern_wino4_supported(void) { return 1; }

enum { W4_VL = 16 }; /* tiles per vector */

/* B^T x for one column of six vectors (rows of B^T, points 0, 1, -1, 1/2, -2, inf):
 *   [1, -3/2, -2, 3/2, 1, 0]   [0, -1, 1/2, 5/2, 1, 0]   [0, 1, -5/2, 1/2, 1, 0]
 *   [0, -2, -1, 2, 1, 0]       [0, 1/2, -1, -1/2, 1, 0]  [0, 1, -3/2, -2, 3/2, 1] */
static inline void w4__bt(const __m512 x[6], __m512 y[6]) {
  const __m512 h = _mm512_set1_ps(0.5f), c15 = _mm512_set1_ps(1.5f),
               c25 = _mm512_set1_ps(2.5f), two = _mm512_set1_ps(2.0f);
  __m512 x4 = x[4];
  /* y0 = x0 - 1.5 x1 - 2 x2 + 1.5 x3 + x4 */
  y[0] = _mm512_fnmadd_ps(two, x[2], _mm512_fmadd_ps(c15, _mm512_sub_ps(x[3], x[1]),
                                                      _mm512_add_ps(x[0], x4)));
  /* y1 = -x1 + 0.5 x2 + 2.5 x3 + x4 */
  y[1] = _mm512_fmadd_ps(c25, x[3], _mm512_fmadd_ps(h, x[2], _mm512_sub_ps(x4, x[1])));
  /* y2 = x1 - 2.5 x2 + 0.5 x3 + x4 */
  y[2] = _mm512_fnmadd_ps(c25, x[2], _mm512_fmadd_ps(h, x[3], _mm512_add_ps(x4, x[1])));
  /* y3 = -2 x1 - x2 + 2 x3 + x4 */
  y[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(x[3], x[1]), _mm512_sub_ps(x4, x[2]));
  /* y4 = 0.5 x1 - x2 - 0.5 x3 + x4 */
  y[4] = _mm512_fmadd_ps(h, _mm512_sub_ps(x[1], x[3]), _mm512_sub_ps(x4, x[2]));
  /* y5 = x1 - 1.5 x2 - 2 x3 + 1.5 x4 + x5 */
  y[5] = _mm512_fnmadd_ps(two, x[3], _mm512_fmadd_ps(c15, _mm512_sub_ps(x4, x[2]),
                                                      _mm512_add_ps(x[1], x[5])));
}


/* One vector of 16 tiles: the six patch rows transformed along, then down. */
static inline __attribute__((always_inline)) void
w4__vec(const wino_job_t *j, const float *plane, int ys, int xs, float *dst, size_t nb,
        __mmask16 mk) {
  __m512 hrow[6][6]; /* [patch row][transformed column] */
  for (int i = 0; i < 6; i++) {
    __m512 c[6];
    kern_wino_patch_row(plane, j->h, j->w, ys + i, xs, c);
    w4__bt(c, hrow[i]);
  }
  for (int x = 0; x < 6; x++) {
    __m512 col[6] = {hrow[0][x], hrow[1][x], hrow[2][x], hrow[3][x], hrow[4][x], hrow[5][x]},
           out[6];
    w4__bt(col, out);
    for (int i = 0; i < 6; i++)
      _mm512_mask_storeu_ps(dst + (size_t)(6 * i + x) * nb, mk, out[i]);
  }
}

void kern_wino4_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v) {
  kern_wino_input_vectors(j, t0, t1, c0, c1, v, w4__vec);
}

/* A^T x: four outputs from six (rows [1,1,1,1,1,0], [0,1,-1,1/2,-2,0],
 * [0,1,1,1/4,4,0], [0,1,-1,1/8,-8,1]). */
static inline void w4__at(const __m512 x[6], __m512 y[4]) {
  __m512 s12 = _mm512_add_ps(x[1], x[2]), d12 = _mm512_sub_ps(x[1], x[2]);
  y[0] = _mm512_add_ps(_mm512_add_ps(x[0], s12), _mm512_add_ps(x[3], x[4]));
  y[1] = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), x[3],
                         _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), x[4], d12));
  y[2] = _mm512_fmadd_ps(_mm512_set1_ps(0.25f), x[3],
                         _mm512_fmadd_ps(_mm512_set1_ps(4.0f), x[4], s12));
  y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(0.125f), x[3],
                                       _mm512_fnmadd_ps(_mm512_set1_ps(8.0f), x[4], d12)),
                       x[5]);
}

/* Output row at o (first column x0) for 16 tiles: y[d] lane k is column 4k + d;
 * interleaved into 64 consecutive floats, epilogue, stores clipped to the row. */
static inline void w4__store(const wino_job_t *j, const __m512 y[4], float b, size_t o, int x0,
                             int cnt) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i lo2 = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
  const __m512i hi2 = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  __m512d p0 = _mm512_castps_pd(_mm512_permutex2var_ps(y[0], lo, y[1]));
  __m512d p1 = _mm512_castps_pd(_mm512_permutex2var_ps(y[0], hi, y[1]));
  __m512d q0 = _mm512_castps_pd(_mm512_permutex2var_ps(y[2], lo, y[3]));
  __m512d q1 = _mm512_castps_pd(_mm512_permutex2var_ps(y[2], hi, y[3]));
  __m512 v[4] = {_mm512_castpd_ps(_mm512_permutex2var_pd(p0, lo2, q0)),
                 _mm512_castpd_ps(_mm512_permutex2var_pd(p0, hi2, q0)),
                 _mm512_castpd_ps(_mm512_permutex2var_pd(p1, lo2, q1)),
                 _mm512_castpd_ps(_mm512_permutex2var_pd(p1, hi2, q1))};
  kern_wino_store_row(j, v, 4, b, o, 4 * cnt < j->ow - x0 ? 4 * cnt : j->ow - x0);
}

void kern_wino4_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, stride = (size_t)(r1 - r0) * nb, cols = (size_t)j->oh * (size_t)j->ow;
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    size_t img = run.img;
    int ty = run.ty, tx = run.tx, cnt = run.cnt;
    for (int r = r0; r < r1; r++) {
      float b = p->bias ? p->bias[r] : 0.0f;
      for (int k = 0; k < cnt; k += W4_VL) {
        const float *mr = m + (size_t)(r - r0) * nb + (t - t0) + (size_t)k;
        __m512 s[4][6]; /* [output row][transform column] */
        for (int x = 0; x < 6; x++) {
          __m512 col[6], out[4];
          for (int i = 0; i < 6; i++) col[i] = _mm512_loadu_ps(mr + (size_t)(6 * i + x) * stride);
          w4__at(col, out);
          for (int a = 0; a < 4; a++) s[a][x] = out[a];
        }
        int n = cnt - k < W4_VL ? cnt - k : W4_VL, x0 = 4 * (tx + k);
        for (int a = 0; a < 4 && 4 * ty + a < j->oh; a++) {
          __m512 y[4];
          w4__at(s[a], y);
          size_t o = img * j->out_img + (size_t)r * cols +
                     (size_t)(4 * ty + a) * (size_t)j->ow + (size_t)x0;
          w4__store(j, y, b, o, x0, n);
        }
      }
    }
    t += (size_t)cnt;
  }
}

/* ---- two tile rows per vector: maps of at most 8 tiles a row (28x28) ------------------ */

/* One pair of tile rows of one plane (kern_wino_pair_fn): as w4__vec, with each patch
 * element picked from the pair's two input rows. */
static inline __attribute__((always_inline)) void
w4__pair(const wino_job_t *j, const kern_wino_map_t *s, const float *plane, int ty, int rows,
         __mmask16 mk, float *dst, size_t nb) {
  __m512 hrow[6][6]; /* [patch row][transformed column] */
  for (int i = 0; i < 6; i++) {
    __m512 r[4], c[6];
    kern_wino_pair_rows(j, plane, ty, rows, i, r);
    for (int x = 0; x < 6; x++) c[x] = kern_wino_pick(r, s->idx[x], s->hi[x], s->valid[x] & mk);
    w4__bt(c, hrow[i]);
  }
  for (int x = 0; x < 6; x++) {
    __m512 col[6] = {hrow[0][x], hrow[1][x], hrow[2][x], hrow[3][x], hrow[4][x], hrow[5][x]},
           out[6];
    w4__bt(col, out);
    for (int i = 0; i < 6; i++) _mm512_mask_storeu_ps(dst + (size_t)(6 * i + x) * nb, mk, out[i]);
  }
}

void kern_wino4_rows_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                           float *v) {
  kern_wino_pair_input(j, t0, t1, c0, c1, v, 6, w4__pair);
}

/* Output column l of the pair's tile row g: y[l % 4] lane g tw + l / 4, for the two
 * 16-column halves of the row (entries 2g and 2g + 1). */
static void w4__rows_out_map(const wino_job_t *j, kern_wino_map_t *s) {
  for (int g = 0; g < 2; g++)
    for (int half = 0; half < 2; half++) {
      int idx[W4_VL], ok[W4_VL];
      for (int l = 0; l < W4_VL; l++) {
        int col = W4_VL * half + l;
        ok[l] = col < j->ow;
        idx[l] = ok[l] ? W4_VL * (col % 4) + g * j->tw + col / 4 : 0;
      }
      kern_wino_map_set(s, 2 * g + half, idx, ok);
    }
}

void kern_wino4_rows_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                            const float *m) {
  const kern_conv_t *p = j->p;
  kern_wino_map_t s;
  w4__rows_out_map(j, &s);
  int th = (int)(j->tiles_img / (size_t)j->tw);
  size_t nb = t1 - t0, stride = (size_t)(r1 - r0) * nb, cols = (size_t)j->oh * (size_t)j->ow;
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (int r = r0; r < r1; r++) {
      const __m512 bias = _mm512_set1_ps(p->bias ? p->bias[r] : 0.0f);
      size_t o = img * j->out_img + (size_t)r * cols;
      for (int ty = 0; ty < th; ty += 2) {
        int rows = th - ty < 2 ? 1 : 2;
        __mmask16 mk = (__mmask16)((1u << (rows * j->tw)) - 1);
        const float *mr = m + (size_t)(r - r0) * nb + (t - t0) + (size_t)(ty * j->tw);
        __m512 sm[4][6]; /* as kern_wino4_output: [output row][transform column] */
        for (int x = 0; x < 6; x++) {
          __m512 col[6], out[4];
          for (int i = 0; i < 6; i++)
            col[i] = _mm512_maskz_loadu_ps(mk, mr + (size_t)(6 * i + x) * stride);
          w4__at(col, out);
          for (int a = 0; a < 4; a++) sm[a][x] = out[a];
        }
        for (int a = 0; a < 4; a++) {
          __m512 y[4];
          w4__at(sm[a], y);
          for (int g = 0; g < rows; g++) {
            int oy = 4 * (ty + g) + a;
            if (oy >= j->oh) continue;
            size_t at = o + (size_t)oy * (size_t)j->ow;
            for (int half = 0; half < 2 && W4_VL * half < j->ow; half++) {
              int e = 2 * g + half;
              kern_wino_store_vec(j, kern_wino_pick(y, s.idx[e], s.hi[e], s.valid[e]), bias,
                                  at + (size_t)(W4_VL * half), s.valid[e]);
            }
          }
        }
      }
    }
  }
}

#elif KERN_WINO_AVX2

/* AVX2 builds: the same transforms, 8 tiles per vector, on row runs. A patch row's six
 * columns for 8 tiles come from two sets of four 128-bit loads (tiles k and k + 4 in one
 * register's halves) and an in-lane 4x4 transpose; near the row's ends the loads are
 * masked to it (kern_wino_patch_row8). Output through kern_wino_output_vectors8, shared
 * with F(2x2) and the stride-2 variant. Same sums in the same order as the AVX-512
 * build's. On a 2-vCPU Zen 3 host, ResNet-50's layer1 3x3 convs (56x56, F(2x2) before)
 * went 1.6-1.8 -> ~1.0 ms at batch 1 on 2 threads. Maps 4 tiles wide (14x14) in blocks
 * of whole images take two tile rows per vector instead (the halves' loads from two
 * input rows, w4__patch_rows8; the output's halves to two output rows), where a row run
 * filled half of every vector: forwards alternating one by one (session 14), ResNet-50
 * batch 1 p50 43.97 -> 43.62 ms (its layer3 3x3 convs), GoogLeNet 15.23 -> 15.00,
 * ResNet-18 14.56 -> 14.50 (p10 13.10 -> 12.84). */
int kern_wino4_supported(void) { return 1; }

static inline void w4__bt8(const __m256 x[6], __m256 y[6]) {
  const __m256 h = _mm256_set1_ps(0.5f), c15 = _mm256_set1_ps(1.5f),
               c25 = _mm256_set1_ps(2.5f), two = _mm256_set1_ps(2.0f);
  __m256 x4 = x[4];
  y[0] = _mm256_fnmadd_ps(two, x[2], _mm256_fmadd_ps(c15, _mm256_sub_ps(x[3], x[1]),
                                                      _mm256_add_ps(x[0], x4)));
  y[1] = _mm256_fmadd_ps(c25, x[3], _mm256_fmadd_ps(h, x[2], _mm256_sub_ps(x4, x[1])));
  y[2] = _mm256_fnmadd_ps(c25, x[2], _mm256_fmadd_ps(h, x[3], _mm256_add_ps(x4, x[1])));
  y[3] = _mm256_fmadd_ps(two, _mm256_sub_ps(x[3], x[1]), _mm256_sub_ps(x4, x[2]));
  y[4] = _mm256_fmadd_ps(h, _mm256_sub_ps(x[1], x[3]), _mm256_sub_ps(x4, x[2]));
  y[5] = _mm256_fnmadd_ps(two, x[3], _mm256_fmadd_ps(c15, _mm256_sub_ps(x4, x[2]),
                                                      _mm256_add_ps(x[1], x[5])));
}

static inline void w4__at8(const __m256 x[6], __m256 y[4]) {
  __m256 s12 = _mm256_add_ps(x[1], x[2]), d12 = _mm256_sub_ps(x[1], x[2]);
  y[0] = _mm256_add_ps(_mm256_add_ps(x[0], s12), _mm256_add_ps(x[3], x[4]));
  y[1] = _mm256_fmadd_ps(_mm256_set1_ps(0.5f), x[3],
                         _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), x[4], d12));
  y[2] = _mm256_fmadd_ps(_mm256_set1_ps(0.25f), x[3],
                         _mm256_fmadd_ps(_mm256_set1_ps(4.0f), x[4], s12));
  y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(0.125f), x[3],
                                       _mm256_fnmadd_ps(_mm256_set1_ps(8.0f), x[4], d12)),
                       x[5]);
}

static void w4__patch_rows8(const wino_job_t *j, const float *plane, int y, int xs, __m256 c[6]);

/* One vector of up to 8 tiles (n valid) of one plane: V at dst + x * nb; with `rows`,
 * tile rows ty and ty + 1 of a map 4 tiles wide (kern_wino_rows8), the same sums. */
static inline __attribute__((always_inline)) void
w4__vec8_any(const wino_job_t *j, const float *plane, int ys, int xs, float *dst, size_t nb,
             int n, int rows) {
  __m256 hrow[6][6];
  for (int i = 0; i < 6; i++) {
    __m256 c[6];
    if (rows)
      w4__patch_rows8(j, plane, ys + i, xs, c);
    else
      kern_wino_patch_row8(j, plane, ys + i, xs, c);
    w4__bt8(c, hrow[i]);
  }
  for (int x = 0; x < 6; x++) {
    __m256 col[6] = {hrow[0][x], hrow[1][x], hrow[2][x], hrow[3][x], hrow[4][x], hrow[5][x]},
           out[6];
    w4__bt8(col, out);
    for (int i = 0; i < 6; i++) kern_wino_put8(dst + (size_t)(6 * i + x) * nb, out[i], n);
  }
}

static void w4__vec8(const wino_job_t *j, const float *plane, int ys, int xs, float *dst,
                     size_t nb, int n) {
  w4__vec8_any(j, plane, ys, xs, dst, nb, n, 0);
}

static void w4__vec8_rows(const wino_job_t *j, const float *plane, int ys, int xs, float *dst,
                          size_t nb, int n) {
  w4__vec8_any(j, plane, ys, xs, dst, nb, n, 1);
}

/* Four floats of row r (NULL: outside the plane, zeros) from column x; `inside`: the
 * caller knows all of them are in the row. */
static inline __m128 w4__ld4(const float *r, int x, int w, int inside) {
  if (!r) return _mm_setzero_ps();
  return inside ? _mm_loadu_ps(r + x) : kern_wino_load4(r, x, w);
}

/* As kern_wino_patch_row8, for two tile rows of 4 tiles: lanes 0-3 are the patches of
 * row y's tiles (columns xs + 4k), lanes 4-7 those of row y + 4 (the next tile row). */
static inline __attribute__((always_inline)) void
w4__patch_rows8(const wino_job_t *j, const float *plane, int y, int xs, __m256 c[6]) {
  const float *lo = y >= 0 && y < j->h ? plane + (size_t)y * (size_t)j->w : NULL;
  const float *hi = y + 4 >= 0 && y + 4 < j->h ? plane + (size_t)(y + 4) * (size_t)j->w : NULL;
  int in = xs >= 0 && xs + 18 <= j->w, w = j->w; /* a 4-tile patch row spans 18 floats */
#define W4_LD2(o) _mm256_set_m128(w4__ld4(hi, xs + (o), w, in), w4__ld4(lo, xs + (o), w, in))
  __m256 q[5] = {W4_LD2(0), W4_LD2(4), W4_LD2(8), W4_LD2(12), W4_LD2(14)};
#undef W4_LD2
  kern_wino_patch_cols8(q, c);
}

void kern_wino4_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v) {
  if (kern_wino_rows8(j, t0, t1))
    kern_wino_input_rows8(j, t0, t1, c0, c1, v, 4, w4__vec8_rows);
  else
    kern_wino_input_vectors8(j, t0, t1, c0, c1, v, 4, w4__vec8);
}

/* One output vector: M's 36 positions are rows * nb apart; A^T m A, then each output row
 * a's 4 columns of 8 tiles transposed into four 8-float runs q[0..3] (tiles 0-1, 2-3,
 * 4-5, 6-7) and stored with the epilogue. With `two` the vector holds tile rows ty and
 * ty + 1 of a map 4 tiles wide (kern_wino_rows8; n = 4: only row ty): q[0], q[1] go to
 * row ty's outputs, q[2], q[3] to row ty + 1's. */
static inline __attribute__((always_inline)) void
w4__out8_any(const wino_job_t *j, const float *mk, size_t rr, size_t nb, size_t rows,
             __m256 bias, size_t o, int x0, int ty, int n, int two) {
  const float *mr = mk + rr * nb;
  size_t stride = rows * nb;
  __m256 s[4][6]; /* [output row][transform column] */
  for (int x = 0; x < 6; x++) {
    __m256 col[6], out[4];
    for (int i = 0; i < 6; i++) col[i] = _mm256_loadu_ps(mr + (size_t)(6 * i + x) * stride);
    w4__at8(col, out);
    for (int a = 0; a < 4; a++) s[a][x] = out[a];
  }
  /* outputs in the row: of n tiles from x0, or of a row of 4 tiles */
  int len = two ? (16 < j->ow ? 16 : j->ow) : 4 * n < j->ow - x0 ? 4 * n : j->ow - x0;
  for (int a = 0; a < 4; a++) {
    __m256 y[4];
    w4__at8(s[a], y); /* y[d] lane k: column 4k + d */
    __m256 t0v = _mm256_unpacklo_ps(y[0], y[1]), t1v = _mm256_unpackhi_ps(y[0], y[1]);
    __m256 t2v = _mm256_unpacklo_ps(y[2], y[3]), t3v = _mm256_unpackhi_ps(y[2], y[3]);
    __m256 u0 = _mm256_shuffle_ps(t0v, t2v, 0x44), u1 = _mm256_shuffle_ps(t0v, t2v, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1v, t3v, 0x44), u3 = _mm256_shuffle_ps(t1v, t3v, 0xEE);
    __m256 q[4] = {_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u2, u3, 0x20),
                   _mm256_permute2f128_ps(u0, u1, 0x31), _mm256_permute2f128_ps(u2, u3, 0x31)};
    if (!two) {
      if (4 * ty + a >= j->oh) break;
      size_t at = o + (size_t)(4 * ty + a) * (size_t)j->ow + (size_t)x0;
      for (int g = 0; g < 4; g++) kern_wino_store8(j, q[g], bias, at + (size_t)(8 * g), len - 8 * g);
      continue;
    }
    for (int g = 0; g < 2 && g * 4 < n; g++) {
      int oy = 4 * (ty + g) + a;
      if (oy >= j->oh) continue;
      size_t at = o + (size_t)oy * (size_t)j->ow;
      kern_wino_store8(j, q[2 * g], bias, at, len);
      kern_wino_store8(j, q[2 * g + 1], bias, at + 8, len - 8);
    }
  }
}

/* The output vectors of row runs and of two tile rows (kern_wino_out8_fn). */
static void w4__out8(const wino_job_t *j, const float *mk, size_t rr, size_t nb, size_t rows,
                     const size_t *aux, __m256 bias, size_t o, int x0, int ty, int n) {
  (void)aux;
  w4__out8_any(j, mk, rr, nb, rows, bias, o, x0, ty, n, 0);
}

static void w4__out8_rows(const wino_job_t *j, const float *mk, size_t rr, size_t nb,
                          size_t rows, const size_t *aux, __m256 bias, size_t o, int x0, int ty,
                          int n) {
  (void)aux;
  w4__out8_any(j, mk, rr, nb, rows, bias, o, x0, ty, n, 1);
}

void kern_wino4_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m) {
  if (kern_wino_rows8(j, t0, t1))
    kern_wino_output_rows8(j, r0, r1, t0, t1, m, NULL, w4__out8_rows);
  else
    kern_wino_output_vectors8(j, r0, r1, t0, t1, m, NULL, 4, w4__out8);
}

#else

int kern_wino4_supported(void) { return 0; }

#endif
