/*
 * kern_wino_small.c — F(2x2, 3x3) transforms for maps at most 16 wide, for
 * kern_winograd.c: several tile rows per vector.
 *
 * The row-run transforms (kern_winograd.c) put 16 horizontally adjacent tiles of one
 * tile row in a vector: a 7x7 map's rows of 4 tiles fill 4 of 16 lanes, a 14x14 map's
 * rows of 7 fill 7. Two layouts fill them instead:
 *  - whole planes (kern_wino_small_*): maps whose tiles all fit one vector (at most
 *    16; ResNet's 7x7 layer4, GoogLeNet's inception 5) and whose planes hold at most 64
 *    floats. Lane k is tile row k / tw, column k % tw. The plane is loaded into four
 *    registers, and each of the 16 patch elements is gathered from them by two
 *    two-source permutes and a blend (lanes in the padding masked to zero). The output
 *    runs the other way: the four outputs of every tile, computed for all tiles at
 *    once, are permuted into the plane's row-major order, four vectors of 16, and
 *    stored with the epilogue y = act(y + bias + residual).
 *  - row groups (kern_wino_rows_*): maps at most 16 wide (8 tiles a row: ResNet's and
 *    GoogLeNet's 14x14 layers). A vector holds g = min(16 / tw, 4) whole tile rows. For
 *    each patch row, the g input rows it needs are loaded (masked to the row), one
 *    register each, and the patch columns are picked from them with the same permutes.
 *    Each output row is one permute of the even and odd output columns of its tile row.
 *
 * The arithmetic is that of the row-run transforms, in the same order, so V, M and the
 * outputs are the same bit for bit; only the data movement differs. A block qualifies
 * when it holds whole images (kern_winograd.c's wino__layout decides); other blocks
 * keep the row runs. AVX-512 only.
 *
 * The row groups would take 7x7 maps too (four tile rows of 4), but the whole-plane
 * layout loads each plane once instead of once per patch row: ResNet-50's 7x7 layers at
 * batch 8 on 2 threads 2.39-2.41 ms with it, 2.61-2.70 with the row groups.
 *
 * Per-node minima in forwards, alternating: ResNet-50's 7x7 layers at batch 8 on 2
 * threads 2.88-2.95 -> 2.35-2.41 ms each (0.45 -> 0.42 at batch 1); its 14x14 layer3
 * convs on one thread (the image-serial prefix of a batch) 0.51-0.52 -> 0.475-0.486 ms.
 */
#include "kern_winograd.h"

#if defined(__AVX512F__)

enum { SMALL_VL = 16 };

/* Up to 64 floats at p (n of them valid) in four registers, zero past n. */
static inline void small__load(const float *p, int n, __m512 r[4]) {
  for (int q = 0; q < 4; q++) {
    int left = n - SMALL_VL * q;
    __mmask16 mk = left >= SMALL_VL ? (__mmask16)0xFFFF
                   : left <= 0      ? (__mmask16)0
                                    : (__mmask16)((1u << left) - 1);
    r[q] = _mm512_maskz_loadu_ps(mk, p + SMALL_VL * q);
  }
}

/* Patch element (i, x) = 4i + x of tile k: input row 2 ty + i - pad_t, column 2 tx + x -
 * pad_l, when inside the plane. */
static void small__patch_map(const wino_job_t *j, kern_wino_map_t *s) {
  for (int i = 0; i < 4; i++)
    for (int x = 0; x < 4; x++) {
      int idx[SMALL_VL], ok[SMALL_VL];
      for (int k = 0; k < SMALL_VL; k++) {
        int y = 2 * (k / j->tw) + i - j->p->pad_t, c = 2 * (k % j->tw) + x - j->p->pad_l;
        ok[k] = (size_t)k < j->tiles_img && y >= 0 && y < j->h && c >= 0 && c < j->w;
        idx[k] = ok[k] ? y * j->w + c : 0;
      }
      kern_wino_map_set(s, 4 * i + x, idx, ok);
    }
}

void kern_wino_small_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                           float *v) {
  kern_wino_map_t s;
  small__patch_map(j, &s);
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)j->p->cin;
  __mmask16 mk = (__mmask16)((1u << j->tiles_img) - 1);
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (size_t ci = c0; ci < c1; ci++) {
      __m512 r[4], d[4][4];
      small__load(j->in + (img * cin + ci) * hw, (int)hw, r);
      for (int e = 0; e < 16; e++) d[e / 4][e % 4] = kern_wino_pick(r, s.idx[e], s.hi[e], s.valid[e]);
      kern_wino_bt_store(d, v + ci * 16 * nb + (t - t0), nb, mk);
    }
  }
}

/* Output position f of the plane, in four vectors of 16: tile output (a, b) = 2a + b of
 * tile k sits at lane 16 (2a + b) + k of the four result vectors y[2a + b]. */
static void small__out_map(const wino_job_t *j, kern_wino_map_t *s) {
  for (int q = 0; q < 4; q++) {
    int idx[SMALL_VL], ok[SMALL_VL];
    for (int l = 0; l < SMALL_VL; l++) {
      int f = SMALL_VL * q + l, oy = f / j->ow, ox = f % j->ow;
      ok[l] = f < j->oh * j->ow;
      int k = (oy / 2) * j->tw + ox / 2, src = 2 * (oy % 2) + ox % 2;
      idx[l] = ok[l] ? src * SMALL_VL + k : 0;
    }
    kern_wino_map_set(s, q, idx, ok);
  }
}

void kern_wino_small_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                            const float *m) {
  const kern_conv_t *p = j->p;
  kern_wino_map_t s;
  small__out_map(j, &s);
  size_t nb = t1 - t0, stride = (size_t)(r1 - r0) * nb, cols = (size_t)j->oh * (size_t)j->ow;
  __mmask16 mk = (__mmask16)((1u << j->tiles_img) - 1);
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (int r = r0; r < r1; r++) {
      const float *mr = m + (size_t)(r - r0) * nb + (t - t0);
      __m512 ya[2][2];
      kern_wino_at(mr, stride, mk, ya);
      const __m512 y[4] = {ya[0][0], ya[0][1], ya[1][0], ya[1][1]};
      size_t o = img * j->out_img + (size_t)r * cols;
      const __m512 bias = _mm512_set1_ps(p->bias ? p->bias[r] : 0.0f);
      for (int q = 0; q < 4 && (size_t)(SMALL_VL * q) < cols; q++)
        kern_wino_store_vec(j, kern_wino_pick(y, s.idx[q], s.hi[q], s.valid[q]), bias,
                            o + (size_t)(SMALL_VL * q), s.valid[q]);
    }
  }
}

/* ---- several tile rows per vector: maps at most 16 wide ------------------------------ */

/* Tile rows per vector: as many whole rows of tw tiles as 16 lanes hold, at most 4 (the
 * four input rows a patch row then needs are picked from with two permutes). */
static inline int rows__group(const wino_job_t *j) {
  int g = SMALL_VL / j->tw;
  return g > 4 ? 4 : g;
}

/* Row y of the plane, masked to its w floats; zero when y is outside. */
static inline __m512 rows__load(const wino_job_t *j, const float *plane, int y) {
  if (y < 0 || y >= j->h) return _mm512_setzero_ps();
  return _mm512_maskz_loadu_ps((__mmask16)((1u << j->w) - 1), plane + (size_t)y * (size_t)j->w);
}

/* Patch column x of tile k in tile row g of the group: lane g tw + k = column 2k + x -
 * pad_l of row register g. */
static void rows__patch_map(const wino_job_t *j, kern_wino_map_t *s) {
  int g = rows__group(j);
  for (int x = 0; x < 4; x++) {
    int idx[SMALL_VL], ok[SMALL_VL];
    for (int l = 0; l < SMALL_VL; l++) {
      int row = l / j->tw, k = l % j->tw, c = 2 * k + x - j->p->pad_l;
      ok[l] = row < g && c >= 0 && c < j->w;
      idx[l] = ok[l] ? 16 * row + c : 0;
    }
    kern_wino_map_set(s, x, idx, ok);
  }
}

void kern_wino_rows_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                          float *v) {
  kern_wino_map_t s;
  rows__patch_map(j, &s);
  int g = rows__group(j), th = (int)(j->tiles_img / (size_t)j->tw);
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)j->p->cin;
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (size_t ci = c0; ci < c1; ci++) {
      const float *plane = j->in + (img * cin + ci) * hw;
      for (int ty = 0; ty < th; ty += g) {
        int rows = th - ty < g ? th - ty : g, n = rows * j->tw;
        __mmask16 mk = (__mmask16)((1u << n) - 1);
        __m512 d[4][4];
        for (int i = 0; i < 4; i++) {
          __m512 r[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                         _mm512_setzero_ps()};
          for (int q = 0; q < rows; q++) r[q] = rows__load(j, plane, 2 * (ty + q) + i - j->p->pad_t);
          for (int x = 0; x < 4; x++) d[i][x] = kern_wino_pick(r, s.idx[x], s.hi[x], s.valid[x] & mk);
        }
        kern_wino_bt_store(d, v + ci * 16 * nb + (t - t0) + (size_t)(ty * j->tw), nb, mk);
      }
    }
  }
}

void kern_wino_rows_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                           const float *m) {
  const kern_conv_t *p = j->p;
  kern_wino_map_t s;
  kern_wino_rows_out_map(j, &s, rows__group(j));
  int g = rows__group(j), th = (int)(j->tiles_img / (size_t)j->tw);
  size_t nb = t1 - t0, stride = (size_t)(r1 - r0) * nb, cols = (size_t)j->oh * (size_t)j->ow;
  for (size_t t = t0; t < t1; t += j->tiles_img) {
    size_t img = t / j->tiles_img;
    for (int r = r0; r < r1; r++) {
      const __m512 bias = _mm512_set1_ps(p->bias ? p->bias[r] : 0.0f);
      size_t o = img * j->out_img + (size_t)r * cols;
      for (int ty = 0; ty < th; ty += g) {
        int rows = th - ty < g ? th - ty : g;
        __mmask16 mk = (__mmask16)((1u << (rows * j->tw)) - 1);
        const float *mr = m + (size_t)(r - r0) * nb + (t - t0) + (size_t)(ty * j->tw);
        __m512 y[2][2];
        kern_wino_at(mr, stride, mk, y);
        for (int q = 0; q < rows; q++)
          for (int a = 0; a < 2; a++) { /* as kern_wino_store_row */
            int oy = 2 * (ty + q) + a;
            if (oy >= j->oh) break;
            __mmask16 ok = s.valid[q];
            kern_wino_store_vec(j, _mm512_maskz_permutex2var_ps(ok, y[a][0], s.idx[q], y[a][1]),
                                bias, o + (size_t)oy * (size_t)j->ow, ok);
          }
      }
    }
  }
}

#endif
