/*
 * kern_wino_s2.c — the transforms of a Winograd variant for 3x3 stride-2 convolutions
 * (padding 1), for kern_winograd.c.
 *
 * Along one axis, outputs o0 = 2t and o1 = 2t + 1 read the five inputs d0..d4 =
 * x[4t - 1 .. 4t + 3]: o0 = w0 d0 + w1 d1 + w2 d2, o1 = w0 d2 + w1 d3 + w2 d4. The odd
 * inputs (d0, d2, d4) meet taps w0 and w2 as a two-tap filter, which F(2, 2) computes
 * with three products (points 0, 1, infinity):
 *   m0 = (d0 - d2) w0,  m1 = d2 (w0 + w2),  m2 = (d4 - d2) w2;  o0 = m0 + m1, o1 = m1 + m2,
 * and the even ones meet w1 alone: m3 = d1 w1, m4 = d3 w1, o0 += m3, o1 += m4. Five
 * products per two outputs instead of six; in 2D, a 2x2 output tile from a 5x5 input
 * patch (patches 4 apart) takes 25 products per channel pair instead of 36 (0.69x).
 *
 * Positions 3 and 4 share the transformed weight w1, so there are only 4 x 4 distinct
 * weight planes U = G g G^T, G = [1 0 0; 1 0 1; 0 0 1; 0 1 0] (the 16 of F(2x2)'s
 * layout, 16/9 of the weights), and the products of positions sharing a plane run as one
 * product over their tiles side by side: V keeps each group's positions next to each
 * other (kern_wino_s2_slot), so a group of g positions is one sgemm of g * nb columns.
 * 16 products in all: 9 of nb columns, 6 of 2 nb, 1 of 4 nb. The transforms hold only
 * 0 and +-1, so rounding stays at F(2x2)'s level.
 *
 * Input: 16 horizontally adjacent tiles at a time, patch rows read by
 * kern_wino_patch_row (the F(4x4) reader: its first five columns), the 1D transform
 * along the rows, then down the columns, into V [ci][slot][tile]. Output: M's 25
 * positions summed down then across (o = sum over S0 = {0, 1, 3} or S1 = {1, 2, 4} on
 * each axis), the two columns of 16 tiles interleaved into 32 consecutive outputs, the
 * epilogue y = act(y + bias + residual), stores masked to the row. Outputs of at most
 * 8 tiles a row (ResNet's 28x28 -> 14x14 layer3.0) would fill 7 of 16 lanes that way;
 * blocks of whole images of them put two tile rows in a vector (kern_wino_s2_rows_*,
 * the pair helpers of kern_winograd.h), the same sums: that conv 0.839 -> 0.751 ms on
 * one thread, 0.438 -> 0.408 ms on two at batch 1 (per-node minima, alternating).
 *
 * AVX-512 and AVX2 builds (kern_wino_s2_supported()): elsewhere such convs keep the
 * lowering.
 */
#include <stdint.h>
#include <string.h>

#include "kern_simd.h"
#include "kern_winograd.h"

/* G: rows 0..2 the odd inputs' F(2, 2) (taps w0, w0 + w2, w2), row 3 the even one (w1). */
const double kern_wino_s2_g[4][3] = {{1, 0, 0}, {1, 0, 1}, {0, 0, 1}, {0, 1, 0}};

/* The 16 planes' groups of positions (slots as s2__slot numbers them). */
const kern_wino_s2_group_t kern_wino_s2_groups[KERN_WINO_S2_GROUPS] = {
    {0, 0, 1},  {1, 1, 1},  {2, 2, 1},  {3, 3, 2},   /* row 0: planes 0..3 */
    {4, 5, 1},  {5, 6, 1},  {6, 7, 1},  {7, 8, 2},   /* row 1 */
    {8, 10, 1}, {9, 11, 1}, {10, 12, 1}, {11, 13, 2}, /* row 2 */
    {12, 15, 2}, {13, 17, 2}, {14, 19, 2}, {15, 21, 4}}; /* rows 3 and 4 */

#if defined(__AVX512F__) || KERN_WINO_AVX2
/* Position (a, b) of the 5x5 transform domain -> its slot in V and M. Rows 0..2 keep
 * their five positions in order, so (a, 3) and (a, 4) (plane a*4 + 3) are adjacent;
 * rows 3 and 4 are interleaved by column, so (3, b) and (4, b) (plane 12 + b) are, and
 * the four of plane 15 come last. */
static int s2__slot(int a, int b) {
  if (a < 3) return 5 * a + b;
  if (b < 3) return 15 + 2 * b + (a - 3);
  return 21 + 2 * (a - 3) + (b - 3);
}

/* Where slot s's row r0 starts in M, and how far apart its rows are: M holds each group
 * of count slots as [rows][count][nb] from its first slot * rows * nb on (the layout its
 * one product writes). */
static void s2__m_layout(size_t rows, size_t nb, size_t base[KERN_WINO_S2_XI],
                         size_t step[KERN_WINO_S2_XI]) {
  for (int g = 0; g < KERN_WINO_S2_GROUPS; g++)
    for (int k = 0; k < kern_wino_s2_groups[g].count; k++) {
      size_t s = (size_t)kern_wino_s2_groups[g].slot;
      base[s + (size_t)k] = s * rows * nb + (size_t)k * nb;
      step[s + (size_t)k] = (size_t)kern_wino_s2_groups[g].count * nb;
    }
}

#endif

#if defined(__AVX512F__)

int kern_wino_s2_supported(void) { return 1; }

enum { S2_VL = 16 }; /* tiles per vector */

/* The 1D transform of five inputs: d0 - d2, d2, d4 - d2, d1, d3. */
static inline void s2__t(const __m512 d[5], __m512 y[5]) {
  y[0] = _mm512_sub_ps(d[0], d[2]);
  y[1] = d[2];
  y[2] = _mm512_sub_ps(d[4], d[2]);
  y[3] = d[1];
  y[4] = d[3];
}

/* One vector of 16 tiles: the five patch rows transformed along, then down. */
static inline __attribute__((always_inline)) void
s2__vec(const wino_job_t *j, const float *plane, int ys, int xs, float *dst, size_t nb,
        __mmask16 mk) {
  __m512 hrow[5][5]; /* [patch row][transformed column] */
  for (int i = 0; i < 5; i++) {
    __m512 c[6];
    kern_wino_patch_row(plane, j->h, j->w, ys + i, xs, c);
    s2__t(c, hrow[i]);
  }
  for (int b = 0; b < 5; b++) {
    __m512 col[5] = {hrow[0][b], hrow[1][b], hrow[2][b], hrow[3][b], hrow[4][b]}, out[5];
    s2__t(col, out);
    for (int a = 0; a < 5; a++)
      _mm512_mask_storeu_ps(dst + (size_t)s2__slot(a, b) * nb, mk, out[a]);
  }
}

void kern_wino_s2_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                        float *v) {
  kern_wino_input_vectors(j, t0, t1, c0, c1, v, s2__vec);
}

void kern_wino_s2_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                         const float *m) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, rows = (size_t)(r1 - r0), cols = (size_t)j->oh * (size_t)j->ow;
  size_t base[KERN_WINO_S2_XI], step[KERN_WINO_S2_XI], off[5][5];
  s2__m_layout(rows, nb, base, step);
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    size_t img = run.img;
    int ty = run.ty, tx = run.tx, cnt = run.cnt;
    for (int r = r0; r < r1; r++) {
      for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
          off[a][b] = base[s2__slot(a, b)] + (size_t)(r - r0) * step[s2__slot(a, b)];
      float bias = p->bias ? p->bias[r] : 0.0f;
      for (int k = 0; k < cnt; k += S2_VL) {
        const float *mk = m + (t - t0) + (size_t)k;
        __m512 s[2][5]; /* [output row][transform column] */
        for (int b = 0; b < 5; b++) {
          __m512 x[5];
          for (int a = 0; a < 5; a++) x[a] = _mm512_loadu_ps(mk + off[a][b]);
          s[0][b] = _mm512_add_ps(_mm512_add_ps(x[0], x[1]), x[3]);
          s[1][b] = _mm512_add_ps(_mm512_add_ps(x[1], x[2]), x[4]);
        }
        int n = cnt - k < S2_VL ? cnt - k : S2_VL, x0 = 2 * (tx + k);
        for (int i = 0; i < 2 && 2 * ty + i < j->oh; i++) {
          __m512 e = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][3]);
          __m512 od = _mm512_add_ps(_mm512_add_ps(s[i][1], s[i][2]), s[i][4]);
          size_t o = img * j->out_img + (size_t)r * cols +
                     (size_t)(2 * ty + i) * (size_t)j->ow + (size_t)x0;
          kern_wino_store_pair(j, e, od, bias, o, x0, n);
        }
      }
    }
    t += (size_t)cnt;
  }
}

/* ---- two tile rows per vector: outputs at most 16 wide (14x14) --------------------- */

/* One pair of tile rows of one plane (kern_wino_pair_fn): as s2__vec, with each patch
 * element picked from the pair's two input rows. */
static inline __attribute__((always_inline)) void
s2__pair(const wino_job_t *j, const kern_wino_map_t *s, const float *plane, int ty, int rows,
         __mmask16 mk, float *dst, size_t nb) {
  __m512 hrow[5][5]; /* [patch row][transformed column] */
  for (int i = 0; i < 5; i++) {
    __m512 r[4], c[5];
    kern_wino_pair_rows(j, plane, ty, rows, i, r);
    for (int x = 0; x < 5; x++) c[x] = kern_wino_pick(r, s->idx[x], s->hi[x], s->valid[x] & mk);
    s2__t(c, hrow[i]);
  }
  for (int b = 0; b < 5; b++) {
    __m512 col[5] = {hrow[0][b], hrow[1][b], hrow[2][b], hrow[3][b], hrow[4][b]}, out[5];
    s2__t(col, out);
    for (int a = 0; a < 5; a++) _mm512_mask_storeu_ps(dst + (size_t)s2__slot(a, b) * nb, mk, out[a]);
  }
}

void kern_wino_s2_rows_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                             float *v) {
  kern_wino_pair_input(j, t0, t1, c0, c1, v, 5, s2__pair);
}

void kern_wino_s2_rows_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                              const float *m) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, rows_m = (size_t)(r1 - r0), cols = (size_t)j->oh * (size_t)j->ow;
  size_t base[KERN_WINO_S2_XI], step[KERN_WINO_S2_XI], off[5][5];
  s2__m_layout(rows_m, nb, base, step);
  kern_wino_map_t s;
  kern_wino_rows_out_map(j, &s, 2);
  int th = (int)(j->tiles_img / (size_t)j->tw);
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (int r = r0; r < r1; r++) {
      for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
          off[a][b] = base[s2__slot(a, b)] + (size_t)(r - r0) * step[s2__slot(a, b)];
      const __m512 bias = _mm512_set1_ps(p->bias ? p->bias[r] : 0.0f);
      size_t o = img * j->out_img + (size_t)r * cols;
      for (int ty = 0; ty < th; ty += 2) {
        int rows = th - ty < 2 ? 1 : 2;
        __mmask16 mk = (__mmask16)((1u << (rows * j->tw)) - 1);
        const float *mt = m + (t - t0) + (size_t)(ty * j->tw);
        __m512 sm[2][5];
        for (int b = 0; b < 5; b++) {
          __m512 x[5];
          for (int a = 0; a < 5; a++) x[a] = _mm512_maskz_loadu_ps(mk, mt + off[a][b]);
          sm[0][b] = _mm512_add_ps(_mm512_add_ps(x[0], x[1]), x[3]);
          sm[1][b] = _mm512_add_ps(_mm512_add_ps(x[1], x[2]), x[4]);
        }
        for (int i = 0; i < 2; i++) {
          __m512 e = _mm512_add_ps(_mm512_add_ps(sm[i][0], sm[i][1]), sm[i][3]);
          __m512 od = _mm512_add_ps(_mm512_add_ps(sm[i][1], sm[i][2]), sm[i][4]);
          for (int g = 0; g < rows; g++) { /* as kern_wino_store_pair */
            int oy = 2 * (ty + g) + i;
            if (oy >= j->oh) continue;
            __mmask16 ok = s.valid[g];
            kern_wino_store_vec(j, _mm512_maskz_permutex2var_ps(ok, e, s.idx[g], od), bias,
                                o + (size_t)oy * (size_t)j->ow, ok);
          }
        }
      }
    }
  }
}

#elif KERN_WINO_AVX2

/* AVX2 builds: the same transforms and sums, 8 tiles per vector on row runs (no
 * two-tile-row layout), patch rows read by kern_wino_patch_row8. On a Zen 3 host,
 * where such convs had gone through the lowering, ResNet-50's 3x3/2 convs onto 28x28
 * and 14x14 at batch 1 on 2 threads 1.96 -> 1.54 and 2.23 -> 1.60 ms, at batch 8 15.5
 * -> 14.8 and 16.1 -> 12.4 ms (per-node medians of minima over alternating runs). */
int kern_wino_s2_supported(void) { return 1; }

static inline void s2__t8(const __m256 d[5], __m256 y[5]) {
  y[0] = _mm256_sub_ps(d[0], d[2]);
  y[1] = d[2];
  y[2] = _mm256_sub_ps(d[4], d[2]);
  y[3] = d[1];
  y[4] = d[3];
}

static void s2__vec8(const wino_job_t *j, const float *plane, int ys, int xs, float *dst,
                     size_t nb, int n) {
  __m256 hrow[5][5]; /* [patch row][transformed column] */
  for (int i = 0; i < 5; i++) {
    __m256 c[6];
    kern_wino_patch_row8(j, plane, ys + i, xs, c);
    s2__t8(c, hrow[i]);
  }
  for (int b = 0; b < 5; b++) {
    __m256 col[5] = {hrow[0][b], hrow[1][b], hrow[2][b], hrow[3][b], hrow[4][b]}, out[5];
    s2__t8(col, out);
    for (int a = 0; a < 5; a++) kern_wino_put8(dst + (size_t)s2__slot(a, b) * nb, out[a], n);
  }
}

void kern_wino_s2_input8(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                         float *v) {
  kern_wino_input_vectors8(j, t0, t1, c0, c1, v, 4, s2__vec8);
}

/* One output vector (kern_wino_out8_fn): position (a, b)'s M at its slot's base +
 * rr * step (aux: base[25], then step[25], s2__m_layout). */
static void s2__out8(const wino_job_t *j, const float *mk, size_t rr, size_t nb, size_t rows,
                     const size_t *aux, __m256 bias, size_t o, int x0, int ty, int n) {
  (void)nb, (void)rows;
  const size_t *base = aux, *step = aux + KERN_WINO_S2_XI;
  __m256 s[2][5]; /* [output row][transform column] */
  for (int b = 0; b < 5; b++) {
    __m256 x[5];
    for (int a = 0; a < 5; a++) {
      int sl = s2__slot(a, b);
      x[a] = _mm256_loadu_ps(mk + base[sl] + rr * step[sl]);
    }
    s[0][b] = _mm256_add_ps(_mm256_add_ps(x[0], x[1]), x[3]);
    s[1][b] = _mm256_add_ps(_mm256_add_ps(x[1], x[2]), x[4]);
  }
  __m256 e[2], od[2];
  for (int i = 0; i < 2; i++) {
    e[i] = _mm256_add_ps(_mm256_add_ps(s[i][0], s[i][1]), s[i][3]);
    od[i] = _mm256_add_ps(_mm256_add_ps(s[i][1], s[i][2]), s[i][4]);
  }
  kern_wino_store_rows2(j, e, od, bias, o, x0, ty, n);
}

void kern_wino_s2_output8(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                          const float *m) {
  size_t layout[2 * KERN_WINO_S2_XI];
  s2__m_layout((size_t)(r1 - r0), t1 - t0, layout, layout + KERN_WINO_S2_XI);
  kern_wino_output_vectors8(j, r0, r1, t0, t1, m, layout, 2, s2__out8);
}

#else

int kern_wino_s2_supported(void) { return 0; }

#endif
