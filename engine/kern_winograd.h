/*
 * kern_winograd.h — what the Winograd driver (kern_winograd.c) shares with its
 * F(4x4, 3x3) transforms (kern_wino4.c); internal to the kernels.
 *
 * One job is one call of kern_wino_conv2d: tiles of m x m outputs (m = 2 or 4) are
 * numbered over the whole batch (image-major, then tile row, then column); xi =
 * (m + 2)^2 transform positions. V is [cin][xi][nb] and M is [xi][rows][nb] for a
 * block of nb tiles.
 */
#ifndef CNN_KERN_WINOGRAD_H
#define CNN_KERN_WINOGRAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kern_claim.h"
#include "kern_rows.h"
#include "kern_simd.h"
#include "kernels.h"

typedef struct {
  const kern_ctx_t *kc;
  const kern_conv_t *p;
  const float *in, *residual, *u;
  float *out;
  int m, xi;                 /* output tile side, transform positions */
  int s2;                    /* the stride-2 variant (kern_wino_s2.c) */
  int h, w, oh, ow, tw;      /* tw: tiles per tile row */
  size_t out_img;            /* floats between images' outputs (kern_conv_out_img) */
  size_t tiles_img, tiles, tb;
  size_t chunk, chunks;      /* tile split: chunks of `chunk` tiles, */
  kern_claim_t claim;        /* claimed by the threads as they go (kern_claim.h) */
  int shared_v;              /* row split of one block: V transformed once, shared */
  kern_rows_t rows;          /* row split: the shares and their tails (kern_rows.h) */
} wino_job_t;

/* The run of tiles that starts at tile t on one tile row, cut at t1: its image, tile
 * row and column, and length. Transforms walk a block run by run. */
typedef struct {
  size_t img;
  int ty, tx, cnt;
} wino_run_t;

static inline wino_run_t kern_wino_run(const wino_job_t *j, size_t t, size_t t1) {
  wino_run_t r;
  size_t rem = t % j->tiles_img;
  r.img = t / j->tiles_img;
  r.ty = (int)(rem / (size_t)j->tw), r.tx = (int)(rem % (size_t)j->tw);
  r.cnt = (size_t)(j->tw - r.tx) < t1 - t ? j->tw - r.tx : (int)(t1 - t);
  return r;
}

/* u[xi][co - co0][ci] = (G g G^T)[xi] for output channels [co0, co1), G of n rows
 * (kern_winograd.c); each xi's plane holds (co1 - co0) x cin floats. */
void kern_wino_weights(const kern_conv_t *p, const double (*g)[3], int n, int co0, int co1,
                       float *u);

/* Lanes i of [0, 32) whose position xs + i lies in [0, w), as a 32-bit mask: the lanes
 * of a 32-float row segment starting at column xs that a masked load may read. */
static inline uint32_t kern_wino_inside(int xs, int w) {
  int lo = xs < 0 ? -xs : 0, hi = w - xs;
  if (hi > 32) hi = 32;
  if (hi <= lo) return 0;
  uint64_t m = ((uint64_t)1 << hi) - 1;
  return (uint32_t)(m & ~(((uint64_t)1 << lo) - 1));
}

#if defined(__AVX512F__)
/* Floats [x + 16*half, x + 16*half + 16) of row r, lanes outside `in` (see
 * kern_wino_inside(x, w)) zero and never read. */
static inline __m512 kern_wino_load_half(const float *r, int x, uint32_t in, int half) {
  x += 16 * half;
  const float *s = (const float *)((uintptr_t)r + (intptr_t)x * (intptr_t)sizeof(float));
  return _mm512_maskz_loadu_ps((__mmask16)(half ? in >> 16 : in & 0xFFFF), s);
}

/* Row y of the patches of 16 tiles that start 4 columns apart from column xs (F(4x4)'s
 * 6-wide patches, the stride-2 variant's 5-wide ones): c[i] lane k = column
 * xs + 4k + i, zero outside the plane. The row's 64 + 2 floats are loaded masked to the
 * plane (padding reads as zero, nothing outside it is touched) and split into their 4
 * phases by two rounds of even/odd permutes; columns 4 and 5 are phases 0 and 1
 * shifted by one tile. */
static inline void kern_wino_patch_row(const float *plane, int h, int w, int y, int xs,
                                       __m512 c[6]) {
  if (y < 0 || y >= h) {
    for (int i = 0; i < 6; i++) c[i] = _mm512_setzero_ps();
    return;
  }
  const float *r = plane + (size_t)y * (size_t)w;
  uint32_t in0 = kern_wino_inside(xs, w), in1 = kern_wino_inside(xs + 32, w);
  __m512 a0 = kern_wino_load_half(r, xs, in0, 0), a1 = kern_wino_load_half(r, xs, in0, 1);
  __m512 a2 = kern_wino_load_half(r, xs + 32, in1, 0);
  __m512 a3 = kern_wino_load_half(r, xs + 32, in1, 1);
  __m512 e0 = kern_simd_even(a0, a1), o0 = kern_simd_odd(a0, a1);
  __m512 e1 = kern_simd_even(a2, a3), o1 = kern_simd_odd(a2, a3);
  c[0] = kern_simd_even(e0, e1); /* xs + 4k */
  c[2] = kern_simd_odd(e0, e1);  /* xs + 4k + 2 */
  c[1] = kern_simd_even(o0, o1); /* xs + 4k + 1 */
  c[3] = kern_simd_odd(o0, o1);  /* xs + 4k + 3 */
  int x64 = xs + 64, x65 = xs + 65;
  __m512 n0 = _mm512_set1_ps(x64 >= 0 && x64 < w ? r[x64] : 0.0f);
  __m512 n1 = _mm512_set1_ps(x65 >= 0 && x65 < w ? r[x65] : 0.0f);
  c[4] = _mm512_castsi512_ps(
      _mm512_alignr_epi32(_mm512_castps_si512(n0), _mm512_castps_si512(c[0]), 1));
  c[5] = _mm512_castsi512_ps(
      _mm512_alignr_epi32(_mm512_castps_si512(n1), _mm512_castps_si512(c[1]), 1));
}

/* Index vectors for kern_wino_pick: entry e says, per lane, which of 64 floats to take
 * (idx), whether from the upper 32 (hi) and whether at all (valid). */
typedef struct {
  __m512i idx[16];
  __mmask16 hi[16], valid[16];
} kern_wino_map_t;

static inline void kern_wino_map_set(kern_wino_map_t *s, int e, const int idx[16],
                                     const int ok[16]) {
  s->idx[e] = _mm512_loadu_si512(idx);
  s->hi[e] = s->valid[e] = 0;
  for (int k = 0; k < 16; k++) {
    if (idx[k] >= 32) s->hi[e] |= (__mmask16)(1u << k);
    if (ok[k]) s->valid[e] |= (__mmask16)(1u << k);
  }
}

/* Lane k = element idx[k] of the 64 floats in r[0..3], zero where `valid` is clear:
 * two two-source permutes and a blend. */
static inline __m512 kern_wino_pick(const __m512 r[4], __m512i idx, __mmask16 hi,
                                    __mmask16 valid) {
  __m512 lo = _mm512_permutex2var_ps(r[0], idx, r[1]);
  __m512 up = _mm512_permutex2var_ps(r[2], idx, r[3]);
  return _mm512_maskz_mov_ps(valid, _mm512_mask_blend_ps(hi, lo, up));
}

/* F(2x2)'s V = B^T d B for the 4x4 patch elements d[i][x] of up to 16 tiles (one per
 * lane), stored as dst[xi * nb + lane] for the lanes in mk. Every F(2x2) input
 * transform ends here, so their sums are the same. */
static inline void kern_wino_bt_store(const __m512 d[4][4], float *dst, size_t nb,
                                      __mmask16 mk) {
  for (int i = 0; i < 4; i++) {
    __m512 c[4];
    for (int x = 0; x < 4; x++)
      c[x] = i == 0   ? _mm512_sub_ps(d[0][x], d[2][x])
             : i == 1 ? _mm512_add_ps(d[1][x], d[2][x])
             : i == 2 ? _mm512_sub_ps(d[2][x], d[1][x])
                      : _mm512_sub_ps(d[1][x], d[3][x]);
    float *o = dst + (size_t)(4 * i) * nb;
    _mm512_mask_storeu_ps(o, mk, _mm512_sub_ps(c[0], c[2]));
    _mm512_mask_storeu_ps(o + nb, mk, _mm512_add_ps(c[1], c[2]));
    _mm512_mask_storeu_ps(o + 2 * nb, mk, _mm512_sub_ps(c[2], c[1]));
    _mm512_mask_storeu_ps(o + 3 * nb, mk, _mm512_sub_ps(c[1], c[3]));
  }
}

/* F(2x2)'s A^T m A for up to 16 tiles (lanes mk) from M (position xi at m + xi *
 * stride): y[a][0] and y[a][1] are output row a's even and odd columns. Every F(2x2)
 * output transform starts here, so their sums are the same. */
static inline void kern_wino_at(const float *m, size_t stride, __mmask16 mk, __m512 y[2][2]) {
  __m512 s[2][4];
  for (int c = 0; c < 4; c++) {
    __m512 m0 = _mm512_maskz_loadu_ps(mk, m + (size_t)c * stride);
    __m512 m1 = _mm512_maskz_loadu_ps(mk, m + (size_t)(4 + c) * stride);
    __m512 m2 = _mm512_maskz_loadu_ps(mk, m + (size_t)(8 + c) * stride);
    __m512 m3 = _mm512_maskz_loadu_ps(mk, m + (size_t)(12 + c) * stride);
    s[0][c] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    s[1][c] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
  for (int a = 0; a < 2; a++) {
    y[a][0] = _mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]);
    y[a][1] = _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]);
  }
}

/* The epilogue y = act(y + bias + residual) on the lanes `ok` of one output vector,
 * stored at output offset `at`: every Winograd output store ends here. */
static inline void kern_wino_store_vec(const wino_job_t *j, __m512 y, __m512 bias, size_t at,
                                       __mmask16 ok) {
  y = _mm512_add_ps(y, bias);
  if (j->residual) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(ok, j->residual + at));
  if (j->p->relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
  _mm512_mask_storeu_ps(j->out + at, ok, y);
}

/* Entry x < ncols of s: patch column x of tile k of the pair's tile row g, at lane g tw
 * + k, is column 4k + x - pad_l of that input row, held in r[2g] and r[2g + 1]. */
static inline void kern_wino_pair_map(const wino_job_t *j, kern_wino_map_t *s, int ncols) {
  for (int x = 0; x < ncols; x++) {
    int idx[16], ok[16];
    for (int l = 0; l < 16; l++) {
      int g = l / j->tw, c = 4 * (l % j->tw) + x - j->p->pad_l;
      ok[l] = g < 2 && c >= 0 && c < j->w;
      idx[l] = ok[l] ? 32 * g + c : 0;
    }
    kern_wino_map_set(s, x, idx, ok);
  }
}

/* Entries g < groups of s: output column l of tile row g of a vector holding whole tile
 * rows of 2-wide tiles is lane g tw + l / 2 of the even-column (l even) or odd-column
 * vector, the second source of a two-source permute. */
static inline void kern_wino_rows_out_map(const wino_job_t *j, kern_wino_map_t *s,
                                          int groups) {
  for (int g = 0; g < groups; g++) {
    int idx[16], ok[16];
    for (int l = 0; l < 16; l++) {
      ok[l] = l < j->ow;
      idx[l] = ok[l] ? 16 * (l % 2) + g * j->tw + l / 2 : 0;
    }
    kern_wino_map_set(s, g, idx, ok);
  }
}

/* Patch row i of tile rows ty and ty + 1 (the first `rows` of them): input rows 4 (ty +
 * g) + i - pad_t in r[2g], r[2g + 1], masked to the row, zero outside the plane. */
static inline void kern_wino_pair_rows(const wino_job_t *j, const float *plane, int ty,
                                       int rows, int i, __m512 r[4]) {
  uint32_t in = kern_wino_inside(0, j->w);
  for (int g = 0; g < 2; g++) {
    int y = 4 * (ty + g) + i - j->p->pad_t;
    int inside = g < rows && y >= 0 && y < j->h;
    const float *row = plane + (size_t)(inside ? y : 0) * (size_t)j->w;
    r[2 * g] = inside ? kern_wino_load_half(row, 0, in, 0) : _mm512_setzero_ps();
    r[2 * g + 1] = inside ? kern_wino_load_half(row, 0, in, 1) : _mm512_setzero_ps();
  }
}

/* The transform of one pair of tile rows (ty, ty + 1; the first `rows` of them) of
 * one channel plane, its lanes mk, into dst + xi * nb + lane; s from kern_wino_pair_map. */
typedef void (*kern_wino_pair_fn)(const wino_job_t *j, const kern_wino_map_t *s,
                                  const float *plane, int ty, int rows, __mmask16 mk,
                                  float *dst, size_t nb);

/* V[ci][xi][t - t0] for tiles [t0, t1) (whole images) and channels [c0, c1), a pair of
 * tile rows at a time through fn (F(4x4) and the stride-2 variant; inlined with it). */
static inline __attribute__((always_inline)) void
kern_wino_pair_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1, float *v,
                     int ncols, kern_wino_pair_fn fn) {
  kern_wino_map_t s;
  kern_wino_pair_map(j, &s, ncols);
  int th = (int)(j->tiles_img / (size_t)j->tw);
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)j->p->cin;
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (size_t ci = c0; ci < c1; ci++)
      for (int ty = 0; ty < th; ty += 2) {
        int rows = th - ty < 2 ? 1 : 2;
        fn(j, &s, j->in + (img * cin + ci) * hw, ty, rows,
           (__mmask16)((1u << (rows * j->tw)) - 1),
           v + ci * (size_t)j->xi * nb + (t - t0) + (size_t)(ty * j->tw), nb);
      }
  }
}

/* The first `cols` of the nv * 16 consecutive outputs in v, stored at o with the
 * epilogue y = act(y + b + residual), masked to the row. */
static inline void kern_wino_store_row(const wino_job_t *j, const __m512 *v, int nv, float b,
                                       size_t o, int cols) {
  const __m512 bias = _mm512_set1_ps(b);
  for (int q = 0; q < nv; q++) {
    int left = cols - 16 * q;
    if (left <= 0) break;
    __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    kern_wino_store_vec(j, v[q], bias, o + (size_t)(16 * q), mk);
  }
}

/* One output row of 16 tiles 2 columns wide, from its even (e) and odd (od) columns
 * (lane k = tile k): interleaved into 32 consecutive outputs at o (first column x0),
 * clipped to the row, with the epilogue. F(2x2) and the stride-2 variant store this way. */
static inline void kern_wino_store_pair(const wino_job_t *j, __m512 e, __m512 od, float b,
                                        size_t o, int x0, int n) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  __m512 v[2] = {_mm512_permutex2var_ps(e, lo, od), _mm512_permutex2var_ps(e, hi, od)};
  kern_wino_store_row(j, v, 2, b, o, 2 * n < j->ow - x0 ? 2 * n : j->ow - x0);
}

/* Transform of the patches of up to 16 horizontally adjacent tiles of one channel plane
 * whose patches start at row ys, column xs and 4 columns apart, into dst (position x at
 * dst + x * nb, lanes mk). */
typedef void (*kern_wino_vec_fn)(const wino_job_t *j, const float *plane, int ys, int xs,
                                 float *dst, size_t nb, __mmask16 mk);

/* V[ci][xi][t - t0] for tiles [t0, t1) of 4-apart patches and channels [c0, c1): the runs
 * of tiles, channel by channel, 16 tiles a vector, each through vec (F(4x4) and the
 * stride-2 variant; inlined with it). */
static inline __attribute__((always_inline)) void
kern_wino_input_vectors(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                        float *v, kern_wino_vec_fn vec) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)p->cin;
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    for (size_t ci = c0; ci < c1; ci++) {
      const float *plane = j->in + (run.img * cin + ci) * hw;
      for (int k = 0; k < run.cnt; k += 16) {
        int n = run.cnt - k;
        __mmask16 mk = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        vec(j, plane, 4 * run.ty - p->pad_t, 4 * (run.tx + k) - p->pad_l,
            v + ci * (size_t)j->xi * nb + (t - t0) + (size_t)k, nb, mk);
      }
    }
    t += (size_t)run.cnt;
  }
}
#endif

/* AVX2 builds without AVX-512 take kern_wino4.c's and kern_wino2_avx2.c's 8-tile
 * transforms; these helpers are theirs. */
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define KERN_WINO_AVX2 1

/* y = act(y + bias + residual) stored to the first n (<= 8; none if n <= 0) outputs at
 * `at`. */
static inline void kern_wino_store8(const wino_job_t *j, __m256 y, __m256 bias, size_t at,
                                    int n) {
  if (n <= 0) return;
  y = _mm256_add_ps(y, bias);
  if (n >= 8) {
    if (j->residual) y = _mm256_add_ps(y, _mm256_loadu_ps(j->residual + at));
    if (j->p->relu) y = _mm256_max_ps(y, _mm256_setzero_ps());
    _mm256_storeu_ps(j->out + at, y);
    return;
  }
  __m256i mk = kern_simd_lanes8(n);
  if (j->residual) y = _mm256_add_ps(y, _mm256_maskload_ps(j->residual + at, mk));
  if (j->p->relu) y = _mm256_max_ps(y, _mm256_setzero_ps());
  kern_simd_store_n8(j->out + at, y, n);
}

/* Lanes of columns [x, x + n) of row r that lie inside [0, w), zero elsewhere (n = 4
 * or 8; x may be outside the row: masked lanes are never read). */
static inline __m256i kern_wino_inside8(int x, int w) {
  __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(x), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(w), idx));
}
static inline const float *kern_wino_at(const float *r, int x) {
  return (const float *)((uintptr_t)r + (intptr_t)x * (intptr_t)sizeof(float));
}
static inline __m256 kern_wino_load8(const float *r, int x, int w) {
  return _mm256_maskload_ps(kern_wino_at(r, x), kern_wino_inside8(x, w));
}
static inline __m128 kern_wino_load4(const float *r, int x, int w) {
  return _mm_maskload_ps(kern_wino_at(r, x), _mm256_castsi256_si128(kern_wino_inside8(x, w)));
}

/* Patch row y (zero outside the plane) of 8 tiles whose patches start at column xs and
 * lie 4 apart (F(4x4) and the stride-2 variant): c[x] lane k = column xs + 4k + x, x < 6.
 * Two sets of four 128-bit loads (tiles k and k + 4 in one register's halves) and an
 * in-lane 4x4 transpose; near the row's ends the loads are masked to it (a copy into
 * a zero-padded buffer, as first written, was taken by every vector of maps up to 32
 * wide and cost as much as the transform). */
enum { KERN_WINO_SEG8 = 34 }; /* floats a patch row of 8 tiles spans */

/* The six patch columns c[x] (lane k: column 4k + x of its half's segment) from five
 * loads whose 128-bit halves hold a half's floats at offsets 0, 4, 8, 12 (q[0..3]) and
 * 14 (q[4]): an in-lane 4x4 transpose, and for columns 4 and 5 the first two of the
 * patches 4 floats on (q[1..3] and q[4]). */
static inline __attribute__((always_inline)) void kern_wino_patch_cols8(const __m256 q[5],
                                                                       __m256 c[6]) {
  __m256 t0 = _mm256_unpacklo_ps(q[0], q[1]), t1 = _mm256_unpackhi_ps(q[0], q[1]);
  __m256 t2 = _mm256_unpacklo_ps(q[2], q[3]), t3 = _mm256_unpackhi_ps(q[2], q[3]);
  c[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  c[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  c[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  c[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 e = _mm256_permute_ps(q[4], 0x4E); /* offsets 16, 17 of each half in its low pair */
  t0 = _mm256_unpacklo_ps(q[1], q[2]), t2 = _mm256_unpacklo_ps(q[3], e);
  c[4] = _mm256_shuffle_ps(t0, t2, 0x44);
  c[5] = _mm256_shuffle_ps(t0, t2, 0xEE);
}
static inline __attribute__((always_inline)) void
kern_wino_patch_row8(const wino_job_t *j, const float *plane, int y, int xs, __m256 c[6]) {
  if (y < 0 || y >= j->h) {
    for (int x = 0; x < 6; x++) c[x] = _mm256_setzero_ps();
    return;
  }
  const float *r = plane + (size_t)y * (size_t)j->w, *s = r + xs;
  int inside = xs >= 0 && xs + KERN_WINO_SEG8 <= j->w;
#define KERN_WINO_LD2(hi, lo)                                                                \
  (inside ? _mm256_loadu2_m128(s + (hi), s + (lo))                                          \
          : _mm256_set_m128(kern_wino_load4(r, xs + (hi), j->w), kern_wino_load4(r, xs + (lo), j->w)))
  __m256 q[5] = {KERN_WINO_LD2(16, 0), KERN_WINO_LD2(20, 4), KERN_WINO_LD2(24, 8),
                 KERN_WINO_LD2(28, 12), KERN_WINO_LD2(30, 14)};
#undef KERN_WINO_LD2
  kern_wino_patch_cols8(q, c);
}

/* The two output rows of n <= 8 tiles 2 x 2 (tile row ty, from output column x0; o the
 * plane's start) from each row's even (e) and odd (od) columns (lane k = tile k): each
 * row interleaved into 16 consecutive outputs, those inside the map stored with the
 * epilogue. F(2x2) and the stride-2 variant store this way. */
static inline void kern_wino_store_rows2(const wino_job_t *j, const __m256 e[2],
                                         const __m256 od[2], __m256 bias, size_t o, int x0,
                                         int ty, int n) {
  int len = 2 * n < j->ow - x0 ? 2 * n : j->ow - x0; /* outputs in the row */
  for (int i = 0; i < 2 && 2 * ty + i < j->oh; i++) {
    size_t oi = o + (size_t)(2 * ty + i) * (size_t)j->ow + (size_t)x0;
    __m256 lo = _mm256_unpacklo_ps(e[i], od[i]), hi = _mm256_unpackhi_ps(e[i], od[i]);
    kern_wino_store8(j, _mm256_permute2f128_ps(lo, hi, 0x20), bias, oi, len);
    kern_wino_store8(j, _mm256_permute2f128_ps(lo, hi, 0x31), bias, oi + 8, len - 8);
  }
}

/* Stores lanes [0, n) of x at d. */
static inline void kern_wino_put8(float *d, __m256 x, int n) { kern_simd_store_n8(d, x, n); }

/* Transform of the patches of 8 horizontally adjacent tiles of one channel plane whose
 * patches start at row ys, column xs, into dst (position x at dst + x * nb), the first
 * n lanes of each position stored (tiles past the run are computed from masked loads
 * and may be stored: kern_wino_input_vectors8). */
typedef void (*kern_wino_vec8_fn)(const wino_job_t *j, const float *plane, int ys, int xs,
                                  float *dst, size_t nb, int n);

/* V[ci][xi][t - t0] for tiles [t0, t1) and channels [c0, c1), patches `step` apart (2:
 * F(2x2); 4: F(4x4) and the stride-2 variant): the runs of tiles, channel by channel, 8
 * tiles a vector, each through vec (inlined with it). A vector is stored whole unless
 * it reaches past t1: its lanes past its run land on the next runs' tiles, which are
 * written after it (runs go in order), so a 14x14 map's runs of 7 tiles need no
 * partial stores (16 or 36 a vector: ResNet-50 layer3 3x3 at batch 1 on 2 threads
 * 0.77-0.79 -> 0.74-0.75 ms each). */
static inline __attribute__((always_inline)) void
kern_wino_input_vectors8(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                         float *v, int step, kern_wino_vec8_fn vec) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)p->cin;
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    for (size_t ci = c0; ci < c1; ci++) {
      const float *plane = j->in + (run.img * cin + ci) * hw;
      for (int k = 0; k < run.cnt; k += 8)
        vec(j, plane, step * run.ty - p->pad_t, step * (run.tx + k) - p->pad_l,
            v + ci * (size_t)j->xi * nb + (t - t0) + (size_t)k, nb,
            t1 - t - (size_t)k < 8 ? (int)(t1 - t - (size_t)k) : 8);
    }
    t += (size_t)run.cnt;
  }
}

/* One output vector: up to 8 horizontally adjacent tiles (n valid) of output channel
 * r, from M at mk (the vector's first tile; M's row of r is rr = r - r0, of rows rows;
 * the transform positions' layout is the variant's, aux the stride-2 variant's slot
 * table), A^T m A plus the epilogue stored into the plane at o, from tile row ty,
 * output column x0 on. */
typedef void (*kern_wino_out8_fn)(const wino_job_t *j, const float *mk, size_t rr, size_t nb,
                                  size_t rows, const size_t *aux, __m256 bias, size_t o, int x0,
                                  int ty, int n);

/* Output channels [r0, r1) of tiles [t0, t1) from M: the runs of tiles, channel by
 * channel, 8 tiles a vector, each through vec (inlined with it); `step` outputs per
 * tile side (2: F(2x2) and the stride-2 variant; 4: F(4x4)). */
static inline __attribute__((always_inline)) void
kern_wino_output_vectors8(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                          const float *m, const size_t *aux, int step, kern_wino_out8_fn vec) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, rows = (size_t)(r1 - r0), cols = (size_t)j->oh * (size_t)j->ow;
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    for (int r = r0; r < r1; r++) {
      const __m256 bias = _mm256_set1_ps(p->bias ? p->bias[r] : 0.0f);
      size_t o = run.img * j->out_img + (size_t)r * cols;
      for (int k = 0; k < run.cnt; k += 8)
        vec(j, m + (t - t0) + (size_t)k, (size_t)(r - r0), nb, rows, aux, bias, o,
            step * (run.tx + k), run.ty, run.cnt - k < 8 ? run.cnt - k : 8);
    }
    t += (size_t)run.cnt;
  }
}

/* Maps 4 tiles wide in blocks of whole images: the transforms' vectors may hold two
 * tile rows (tiles 4 ty .. 4 ty + 8, consecutive in V and M), where row runs would fill
 * half of every vector (F(4x4) on 14x14, F(2x2) on 7x7). */
static inline int kern_wino_rows8(const wino_job_t *j, size_t t0, size_t t1) {
  return j->tw == 4 && t0 % j->tiles_img == 0 && t1 % j->tiles_img == 0;
}

/* kern_wino_input_vectors8 in that layout: vec takes tile rows ty and ty + 1 (patch rows
 * from step * ty - pad_t), n = 8, or 4 for a last single row. */
static inline __attribute__((always_inline)) void
kern_wino_input_rows8(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v, int step, kern_wino_vec8_fn vec) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)p->cin;
  int th = (int)(j->tiles_img / 4);
  for (size_t t = t0; t < t1; t += j->tiles_img)
    for (size_t ci = c0; ci < c1; ci++) {
      const float *plane = j->in + (t / j->tiles_img * cin + ci) * hw;
      for (int ty = 0; ty < th; ty += 2)
        vec(j, plane, step * ty - p->pad_t, -p->pad_l,
            v + ci * (size_t)j->xi * nb + (t - t0) + (size_t)(4 * ty), nb, th - ty >= 2 ? 8 : 4);
    }
}

/* kern_wino_output_vectors8 in that layout: vec gets tile rows ty and ty + 1 (x0 = 0). */
static inline __attribute__((always_inline)) void
kern_wino_output_rows8(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m, const size_t *aux, kern_wino_out8_fn vec) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, rows = (size_t)(r1 - r0), cols = (size_t)j->oh * (size_t)j->ow;
  int th = (int)(j->tiles_img / 4);
  for (size_t t = t0; t < t1; t += j->tiles_img)
    for (int r = r0; r < r1; r++) {
      const __m256 bias = _mm256_set1_ps(p->bias ? p->bias[r] : 0.0f);
      size_t o = t / j->tiles_img * j->out_img + (size_t)r * cols;
      for (int ty = 0; ty < th; ty += 2)
        vec(j, m + (t - t0) + (size_t)(4 * ty), (size_t)(r - r0), nb, rows, aux, bias, o, 0, ty,
            th - ty >= 2 ? 8 : 4);
    }
}

/* F(2x2): V for tiles [t0, t1) and channels [c0, c1); output channels [r0, r1) from M. */
void kern_wino2_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v);
void kern_wino2_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m);
/* The stride-2 variant's (kern_wino_s2.c), the same. */
void kern_wino_s2_input8(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                         float *v);
void kern_wino_s2_output8(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                          const float *m);
#else
#define KERN_WINO_AVX2 0
#endif

/* F(4x4, 3x3), AVX-512 and AVX2 builds (kern_wino4_supported() says so); G below. */
int kern_wino4_supported(void);
extern const double kern_wino4_g[6][3];
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
/* V[ci][xi][t - t0] for tiles [t0, t1) and input channels [c0, c1). */
void kern_wino4_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v);
/* Output channels [r0, r1) of tiles [t0, t1) from M, with the fused epilogue. */
void kern_wino4_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m);
#endif
#if defined(__AVX512F__)
/* The same with two tile rows per vector, for tiles [t0, t1) of whole images of maps
 * of at most 8 tiles a row, input rows of at most 32 floats (kern_winograd.c's
 * wino__layout decides). */
void kern_wino4_rows_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                           float *v);
void kern_wino4_rows_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                            const float *m);

/* F(2x2) for tiles [t0, t1) of whole images (kern_wino_small.c; wino__layout decides):
 * a whole plane per vector (at most 16 tiles, planes of at most 64 floats), or several
 * tile rows (rows of at most 16 floats); the same sums as the row-run transforms. */
void kern_wino_small_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                           float *v);
void kern_wino_small_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                            const float *m);
void kern_wino_rows_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                          float *v);
void kern_wino_rows_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                           const float *m);
#endif

/* The stride-2 variant (kern_wino_s2.c), AVX-512 and AVX2 builds (kern_wino_s2_supported()): 2x2
 * output tiles from 5x5 patches, 25 transform positions in V and M, 16 weight planes
 * (G below). Each
 * group of positions sharing a plane is one product over count * nb columns, reading
 * V from slot `slot` on and writing M [rows][count][nb] at slot * rows * nb. */
enum { KERN_WINO_S2_XI = 25, KERN_WINO_S2_GROUPS = 16 };
typedef struct {
  int plane, slot, count;
} kern_wino_s2_group_t;
extern const kern_wino_s2_group_t kern_wino_s2_groups[KERN_WINO_S2_GROUPS];
extern const double kern_wino_s2_g[4][3];
int kern_wino_s2_supported(void);
#if defined(__AVX512F__)
void kern_wino_s2_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                        float *v);
void kern_wino_s2_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                         const float *m);
/* The same with two tile rows per vector, for tiles [t0, t1) of whole images of
 * outputs at most 16 wide (wino__layout decides). */
void kern_wino_s2_rows_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0,
                             size_t c1, float *v);
void kern_wino_s2_rows_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                              const float *m);
#endif

#endif
