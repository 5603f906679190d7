/*
 * kern_sgemm.c — the engine's own single-thread sgemm for convolutions, with weights
 * packed once at load and the conv epilogue applied from registers.
 *
 * Why not OpenBLAS here: OpenBLAS repacks the weight matrix on every call (12% of a
 * ResNet-50 forward went to sgemm_oncopy), its epilogue-free interface forces a second
 * pass over the output for bias, residual and ReLU, and the Debian build may be pinned
 * to AVX2 kernels (OPENBLAS_CORETYPE=Haswell on machines whose AVX-512 it mishandles),
 * which is half the FMA width of an AVX-512 core. OpenBLAS stays the path for Gemm,
 * MatMul and for CPUs with neither AVX-512 nor AVX2 (kern_sgemm_available() says which).
 * AVX2 builds have their own kernel (below, after the AVX-512 ones): on a 2-vCPU Zen 3
 * host, where this engine had used OpenBLAS, ResNet-50 batch 1 on 2 threads went
 * 59-77 -> 57 ms, GoogLeNet 24-28 -> 21, ResNet-18 28-34 -> 24.5 (bench_engine p50s).
 *
 * C[M x N] = A[M x K] B[K x N], all row-major. A (the weights) is packed by
 * kern_sgemm_pack into panels of KERN_SGEMM_PANEL (16) rows: panel i holds
 * A[16i .. 16i+16) as [K][16] (AVX2 builds: as four [K][4] groups of 4 rows),
 * zero-padded past M, so kernels read it sequentially.
 * B is read in place through ldb (a packed lowering, a Winograd V, or a 1x1 conv's
 * input); loads past N are masked, never made. The first row block of each block of B
 * (sgemm__block: a call's columns, cut to SGEMM_B_BUDGET) sweeps it
 * from wherever the layer before left it (the other core's cache, L3, memory; the later
 * row blocks find it in L2), one cache line of each of K rows per column vector, and
 * the hardware prefetcher does not keep up with that: its wide tiles prefetch the rows
 * SGEMM_PF_B_ROWS ahead (AVX-512 builds). A 1x1 conv's product with B flushed from the
 * caches ran at 92-103 GFLOP/s on one core against 106-112 with only A cold and 115 hot;
 * ResNet-50 on 2 threads (one model per variant in one process, forwards alternating one
 * by one, 120 s, session 21 on the Zen 4 host), without / with: batch 1 p50 39.99 / 39.21,
 * 40.93 / 40.48 ms (mean 41.79 / 41.16, 41.70 / 41.20), batch 8 309.1 / 306.9 (mean
 * 321.2 / 314.2). 8 and 24 rows ahead did as well as 16; prefetching in every row block
 * gained half as much.
 *
 * Wide kernel (the usual case): MR = 8 rows (half a panel) x 48 columns (3 zmm) = 24
 * accumulators; each k step is 3 vector loads of B, 8 broadcasts of A and 24 FMAs.
 * Tails of N use 2 or 1 vectors, the last one masked; a 1-vector tail (and a product of
 * at most 16 columns) takes a whole panel at once instead (sgemm__tile16: 16 rows, 16
 * accumulators, a full line of A each k step), and a single column after the 48-column
 * tiles (a 7x7 map's 49 = 48 + 1, the Winograd blocks of 49 tiles) rides along in the
 * last wide tile as a ninth vector of 8 lanes (x1). Session 32 (Zen 5, 2 threads,
 * ResNet-50 batch 1, processes alternating, sums of per-node minima): the panel tile
 * 18.03 -> 17.68 ms (layer4's Winograd convs, products of 16 tiles: 0.47-0.48 -> 0.39-0.41
 * ms each; two 8-row tiles had read each line of U twice, half a line a k step, with 8
 * sums in flight for 4-cycle FMAs), the ninth vector 16.84 -> 16.46 ms (layer4's 3x3/2
 * and 1x1/2 0.03 ms each, its 1x1 convs and the Winograd layers of 49-tile blocks
 * 0.01-0.02: the tall kernel's single column was 2 FMAs per 4-cycle step); ResNet-18
 * both together 6.65 -> 6.15, GoogLeNet 6.28 -> 6.17. Both sum in the same order as the
 * tiles they replace, so the results are the same bits.
 * Tall kernel, for other column tails of at most 12 (a 14x14 map's 196 = 4 x 48 + 4),
 * where a 16-lane vector would be mostly empty: vectors run down M
 * instead, 32 rows (two panels) x up to 12 columns = 24 accumulators; each k step is 2
 * vector loads of A, up to 12 broadcasts of B and 24 FMAs. After the whole K loop its
 * 16 x 12 blocks are transposed in registers and stored as rows of C (scattering them
 * down the columns cost 7% of a K = 512 product). It used to take whole products of at
 * most 56 columns too (7x7 maps at batch 1, Winograd products of 14x14 and 7x7 maps),
 * where it won with the weights in cache; but in a forward they come from memory, and
 * the tall kernel reads each 32-row slice of A once per 12 columns, the first time
 * from memory at twice the wide kernel's rate, which two threads' share of the memory
 * bandwidth cannot feed. Whole products on the wide kernel, per-node minima in a
 * forward: ResNet-50 batch 1 on 2 threads 16.2 -> 15.5 ms (layer3's and layer4's
 * Winograd layers 12-16% faster, layer4's 1x1 convs 18%), on one thread 30.8 -> 30.4
 * ms; ResNet-18 5.86 -> 5.46 ms (2 threads) and 11.1 -> 10.5 ms (one); GoogLeNet 5.25
 * -> 5.08 and 9.95 -> 9.71 ms. Both kernels sum each element's products in the same
 * order, so which one runs never changes a result.
 * Both apply the epilogue (bias per row, residual shaped like C, ReLU) before the
 * single store of each accumulator.
 *
 * B's rows may also be given by offsets (kern_sgemm_run_ind): row p at b + boff[p],
 * so a conv reads shifted views of its input in place instead of a lowered copy
 * (kern_conv_poly.c). Both kernels take it as a compile-time variant; the plain
 * strided path keeps its loop.
 *
 * Blocking is the caller's: it hands blocks of B small enough to stay in L2 while
 * every row panel of A passes over them (kern_conv.c, kern_winograd.c). Nothing here
 * allocates or takes locks.
 */
#include "kern_sgemm.h"
#include "kern_simd.h"

/* Rows per interleaved group of a packed panel: AVX-512 (and portable) builds keep a
 * panel as [K][16]; AVX2 builds as four [K][4] groups, one per wide tile of 4 rows. */
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define SGEMM_GROUP 4
#else
#define SGEMM_GROUP 16
#endif

enum {
  SGEMM_B_BUDGET = 96 * 1024, /* floats of B per column chunk: 384 KB, in L2 */
  SGEMM_PF_AHEAD = 16 * 96,   /* prefetch packed A this many floats (k steps x panel) ahead */
  SGEMM_TAIL_TALL = 12,       /* column tails up to this many go to the tall kernel, */
  SGEMM_TAIL_TALL_MIN_K = 64, /* when K pays for its per-tile stores */
  SGEMM_PF_B_ROWS = 16        /* the first row block prefetches B this many k rows ahead */
};

/* The kernels' `relu` argument is a set of flags: ReLU, C += A B (C read first,
 * for products split along K: kern_sgemm_run_k), and prefetch B's rows ahead (AVX-512
 * wide tiles of a block's first row block: the sweep that brings B into cache). */
enum { SGEMM_RELU = 1, SGEMM_ACC = 2, SGEMM_PF_B = 4 };
static inline int sgemm__flags(const kern_sgemm_epi_t *epi) {
  return epi ? (epi->relu ? SGEMM_RELU : 0) | (epi->accumulate ? SGEMM_ACC : 0) : 0;
}

size_t kern_sgemm_packed_floats(int m, int k) {
  size_t panels = ((size_t)m + KERN_SGEMM_PANEL - 1) / KERN_SGEMM_PANEL;
  return panels * KERN_SGEMM_PANEL * (size_t)k;
}

void kern_sgemm_pack(const float *a, int m, int k, size_t lda, float *packed) {
  size_t panels = ((size_t)m + KERN_SGEMM_PANEL - 1) / KERN_SGEMM_PANEL;
  for (size_t pi = 0; pi < panels; pi++) {
    float *dst = packed + pi * KERN_SGEMM_PANEL * (size_t)k;
    for (size_t r = 0; r < KERN_SGEMM_PANEL; r++) {
      size_t row = pi * KERN_SGEMM_PANEL + r;
      const float *src = row < (size_t)m ? a + row * lda : NULL;
      float *g = dst + r / SGEMM_GROUP * SGEMM_GROUP * (size_t)k + r % SGEMM_GROUP;
      for (size_t kk = 0; kk < (size_t)k; kk++)
        g[kk * SGEMM_GROUP] = row < (size_t)m ? src[kk] : 0.0f;
    }
  }
}

/* Row r's first packed element: its panel, its group, then its lane; successive k are
 * SGEMM_GROUP apart. */
static inline const float *sgemm__arow(const float *packed, int r, int k) {
  return packed + (size_t)(r / KERN_SGEMM_PANEL) * KERN_SGEMM_PANEL * (size_t)k +
         (size_t)(r % KERN_SGEMM_PANEL / SGEMM_GROUP) * SGEMM_GROUP * (size_t)k +
         (size_t)(r % SGEMM_GROUP);
}

#if defined(__AVX512F__)
#include <immintrin.h>

int kern_sgemm_available(void) { return 1; }

/* The epilogue of one vector of C (lanes mk): act(acc + bias + [old c] + [res]), stored. */
static inline __attribute__((always_inline)) void
sgemm__store(__m512 acc, __m512 bias, float *c, const float *res, __mmask16 mk, int flags) {
  __m512 v = _mm512_add_ps(acc, bias);
  if (flags & SGEMM_ACC) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, c));
  if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res));
  if (flags & SGEMM_RELU) v = _mm512_max_ps(v, _mm512_setzero_ps());
  _mm512_mask_storeu_ps(c, mk, v);
}

/* One MR x (16*NV) tile, the last vector masked by `last`; rows >= mr are not stored.
 * With x1 (NV = 3, unmasked) also column 48: its 8 rows' sums in one 8-lane vector, from
 * the tile's 8 weights of each k step and a broadcast of B's element 48. */
static inline __attribute__((always_inline)) void
sgemm__tile(const int nv, const int ind, const int x1, size_t k, const float *a, const float *b,
            size_t ldb, const ptrdiff_t *boff, float *c, size_t ldc, int mr, __mmask16 last,
            const float *bias, const float *res, size_t ldr, int flags) {
  __m512 acc[KERN_SGEMM_MR][3];
  __m256 accx = _mm256_setzero_ps(); /* x1: column 48, the tile's 8 rows in one vector */
#pragma GCC unroll 8
  for (int i = 0; i < KERN_SGEMM_MR; i++)
#pragma GCC unroll 3
    for (int j = 0; j < 3; j++) acc[i][j] = _mm512_setzero_ps();
  size_t pf_end = !ind && (flags & SGEMM_PF_B) && k > SGEMM_PF_B_ROWS ? k - SGEMM_PF_B_ROWS : 0;
  for (size_t p = 0; p < k; p++) {
    const float *bp = ind ? b + boff[p] : b;
    __m512 b0, b1 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
    if (p < pf_end) { /* row p + SGEMM_PF_B_ROWS of this tile's columns, line by line */
      const char *pb = (const char *)(bp + SGEMM_PF_B_ROWS * ldb);
      _mm_prefetch(pb, _MM_HINT_T0);
      if (nv > 1) _mm_prefetch(pb + 64, _MM_HINT_T0);
      if (nv > 2) _mm_prefetch(pb + 128, _MM_HINT_T0);
      if (x1) _mm_prefetch(pb + 192, _MM_HINT_T0);
    }
    if (x1) accx = _mm256_fmadd_ps(_mm256_loadu_ps(a), _mm256_set1_ps(bp[48]), accx);
    if (nv == 1) {
      b0 = _mm512_maskz_loadu_ps(last, bp);
    } else if (nv == 2) {
      b0 = _mm512_loadu_ps(bp);
      b1 = _mm512_maskz_loadu_ps(last, bp + 16);
    } else {
      b0 = _mm512_loadu_ps(bp);
      b1 = _mm512_loadu_ps(bp + 16);
      b2 = _mm512_maskz_loadu_ps(last, bp + 32);
    }
    _mm_prefetch((const char *)(a + SGEMM_PF_AHEAD), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int i = 0; i < KERN_SGEMM_MR; i++) {
      __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (nv > 1) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      if (nv > 2) acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
    a += KERN_SGEMM_PANEL;
    if (!ind) b += ldb;
  }
#pragma GCC unroll 8
  for (int i = 0; i < KERN_SGEMM_MR; i++) {
    if (i >= mr) break;
    float *ci = c + (size_t)i * ldc;
    __m512 bi = _mm512_set1_ps(bias ? bias[i] : 0.0f);
    const float *ri = res ? res + (size_t)i * ldr : NULL;
#pragma GCC unroll 3
    for (int j = 0; j < nv; j++) {
      __mmask16 mk = j == nv - 1 ? last : (__mmask16)0xFFFF;
      sgemm__store(acc[i][j], bi, ci + 16 * j, ri ? ri + 16 * j : NULL, mk, flags);
    }
  }
  if (x1) {
    float xs[KERN_SGEMM_MR];
    _mm256_storeu_ps(xs, accx);
    for (int i = 0; i < mr && i < KERN_SGEMM_MR; i++) {
      float *ci = c + (size_t)i * ldc + 48;
      float v = xs[i] + (bias ? bias[i] : 0.0f);
      if (flags & SGEMM_ACC) v += *ci;
      if (res) v += res[(size_t)i * ldr + 48];
      if ((flags & SGEMM_RELU) && !(v > 0.0f)) v = 0.0f;
      *ci = v;
    }
  }
}

/* A whole panel's 16 rows x one vector of columns (the last lanes masked by `last`), for
 * products of at most 16 columns and such tails: 16 accumulators, each k step one full
 * line of the panel, 16 broadcasts from it and one vector of B (see the top). Rows >= mr
 * are not stored. */
static inline __attribute__((always_inline)) void
sgemm__tile16(const int ind, size_t k, const float *a, const float *b, size_t ldb,
              const ptrdiff_t *boff, float *c, size_t ldc, int mr, __mmask16 last,
              const float *bias, const float *res, size_t ldr, int flags) {
  __m512 acc[KERN_SGEMM_PANEL];
#pragma GCC unroll 16
  for (int i = 0; i < KERN_SGEMM_PANEL; i++) acc[i] = _mm512_setzero_ps();
  size_t pf_end = !ind && (flags & SGEMM_PF_B) && k > SGEMM_PF_B_ROWS ? k - SGEMM_PF_B_ROWS : 0;
  for (size_t p = 0; p < k; p++) {
    const float *bp = ind ? b + boff[p] : b;
    if (p < pf_end) _mm_prefetch((const char *)(bp + SGEMM_PF_B_ROWS * ldb), _MM_HINT_T0);
    __m512 b0 = _mm512_maskz_loadu_ps(last, bp);
    _mm_prefetch((const char *)(a + SGEMM_PF_AHEAD), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int i = 0; i < KERN_SGEMM_PANEL; i++)
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i]);
    a += KERN_SGEMM_PANEL;
    if (!ind) b += ldb;
  }
#pragma GCC unroll 16
  for (int i = 0; i < KERN_SGEMM_PANEL; i++) {
    if (i >= mr) break;
    sgemm__store(acc[i], _mm512_set1_ps(bias ? bias[i] : 0.0f), c + (size_t)i * ldc,
                 res ? res + (size_t)i * ldr : NULL, last, flags);
  }
}
static void sgemm__tile16_0(size_t k, const float *a, const float *b, size_t ldb,
                            const ptrdiff_t *boff, float *c, size_t ldc, int mr, __mmask16 last,
                            const float *bias, const float *res, size_t ldr, int flags) {
  sgemm__tile16(0, k, a, b, ldb, boff, c, ldc, mr, last, bias, res, ldr, flags);
}
static void sgemm__tile16_1(size_t k, const float *a, const float *b, size_t ldb,
                            const ptrdiff_t *boff, float *c, size_t ldc, int mr, __mmask16 last,
                            const float *bias, const float *res, size_t ldr, int flags) {
  sgemm__tile16(1, k, a, b, ldb, boff, c, ldc, mr, last, bias, res, ldr, flags);
}
typedef void (*sgemm_tile_fn)(size_t, const float *, const float *, size_t, const ptrdiff_t *,
                              float *, size_t, int, __mmask16, const float *, const float *,
                              size_t, int);
#define SGEMM_TILE(NV, IND)                                                                  \
  static void sgemm__tile_##NV##_##IND(size_t k, const float *a, const float *b, size_t ldb,  \
                                       const ptrdiff_t *boff, float *c, size_t ldc, int mr,   \
                                       __mmask16 last, const float *bias, const float *res,   \
                                       size_t ldr, int flags) {                               \
    sgemm__tile(NV, IND, 0, k, a, b, ldb, boff, c, ldc, mr, last, bias, res, ldr, flags);     \
  }
SGEMM_TILE(1, 0) SGEMM_TILE(2, 0) SGEMM_TILE(3, 0)
SGEMM_TILE(1, 1) SGEMM_TILE(2, 1) SGEMM_TILE(3, 1)
#define SGEMM_TILE_X1(IND)                                                                   \
  static void sgemm__tile_x1_##IND(size_t k, const float *a, const float *b, size_t ldb,     \
                                   const ptrdiff_t *boff, float *c, size_t ldc, int mr,      \
                                   __mmask16 last, const float *bias, const float *res,      \
                                   size_t ldr, int flags) {                                  \
    sgemm__tile(3, IND, 1, k, a, b, ldb, boff, c, ldc, mr, last, bias, res, ldr, flags);      \
  }
SGEMM_TILE_X1(0) SGEMM_TILE_X1(1)
/* [indirect B][vectors - 1] */
static const sgemm_tile_fn sgemm__tiles[2][3] = {{sgemm__tile_1_0, sgemm__tile_2_0, sgemm__tile_3_0},
                                                 {sgemm__tile_1_1, sgemm__tile_2_1, sgemm__tile_3_1}};

static void sgemm__tall_block(const float *packed, int kfull, int m0, int m1, int k,
                              const float *b, size_t ldb, const ptrdiff_t *boff, size_t n,
                              float *c, size_t ldc, const kern_sgemm_epi_t *epi);

/* Rows [m0, m1) x columns [0, n): every row panel over the same columns. A tail of at
 * most SGEMM_TAIL_TALL columns after the 48-column tiles goes to the tall kernel, 32
 * rows at a time right after those rows' wide tiles, while their A is in cache: a
 * 14x14 map's 196 = 4 x 48 + 4 columns otherwise spent a fifth of its time on one
 * 16-lane vector holding 4 columns. Longer tails measured no better on it (up to 36:
 * GoogLeNet 10.4-10.6 -> 10.7-11.3 ms). */
static void sgemm__block(const float *packed, int kfull, int m0, int m1, int k, const float *b,
                         size_t ldb, const ptrdiff_t *boff, size_t n, float *c, size_t ldc,
                         const kern_sgemm_epi_t *epi) {
  const sgemm_tile_fn *tile = sgemm__tiles[boff != NULL];
  const float *bias = epi ? epi->bias : NULL, *res = epi ? epi->res : NULL;
  size_t ldr = epi ? epi->ldr : 0;
  int flags = sgemm__flags(epi);
  size_t left = n % 48, full = n - left;
  __mmask16 last = (__mmask16)(0xFFFFu >> (16 - ((left + 15) % 16 + 1)));
  int x1 = left == 1 && full >= 48;
  int tall_tail = !x1 && left > 0 && left <= SGEMM_TAIL_TALL && m0 % KERN_SGEMM_PANEL == 0 &&
                  k >= SGEMM_TAIL_TALL_MIN_K;
  for (int r32 = m0; r32 < m1; r32 += 2 * KERN_SGEMM_PANEL) {
    int rend = m1 - r32 < 2 * KERN_SGEMM_PANEL ? m1 : r32 + 2 * KERN_SGEMM_PANEL;
    for (int r = r32; r < rend; r += KERN_SGEMM_MR) {
      const float *a = sgemm__arow(packed, r, kfull);
      int mr = m1 - r < KERN_SGEMM_MR ? m1 - r : KERN_SGEMM_MR;
      float *cr = c + (size_t)(r - m0) * ldc;
      const float *br = bias ? bias + r : NULL, *rr = res ? res + (size_t)(r - m0) * ldr : NULL;
      int fl = flags | (r == m0 ? SGEMM_PF_B : 0);
      for (size_t j = 0; j < full - (x1 ? 48 : 0); j += 48)
        tile[2]((size_t)k, a, b + j, ldb, boff, cr + j, ldc, mr, 0xFFFF, br, rr ? rr + j : NULL,
                ldr, fl);
      if (x1) {
        size_t j = full - 48;
        (boff ? sgemm__tile_x1_1 : sgemm__tile_x1_0)((size_t)k, a, b + j, ldb, boff, cr + j, ldc,
                                                     mr, 0xFFFF, br, rr ? rr + j : NULL, ldr, fl);
        continue;
      }
      if (left == 0 || tall_tail) continue;
      const float *rj = rr ? rr + full : NULL;
      if (left <= 16 && r % KERN_SGEMM_PANEL == 0) {
        int mr16 = m1 - r < KERN_SGEMM_PANEL ? m1 - r : KERN_SGEMM_PANEL;
        (boff ? sgemm__tile16_1 : sgemm__tile16_0)((size_t)k, a, b + full, ldb, boff, cr + full,
                                                   ldc, mr16, last, br, rj, ldr, fl);
        continue;
      }
      if (left <= 16 && r - KERN_SGEMM_MR >= m0)
        continue; /* done by the panel's 16-row tile */
      tile[(left + 15) / 16 - 1]((size_t)k, a, b + full, ldb, boff, cr + full, ldc, mr, last, br,
                                 rj, ldr, fl);
    }
    if (tall_tail) {
      kern_sgemm_epi_t e = {.bias = bias, .res = res ? res + (size_t)(r32 - m0) * ldr + full : NULL,
                            .ldr = ldr, .relu = epi && epi->relu, .accumulate = epi && epi->accumulate};
      sgemm__tall_block(packed, kfull, r32, rend, k, b + full, ldb, boff, left,
                        c + (size_t)(r32 - m0) * ldc + full, ldc, &e);
    }
  }
}

/* In-register 16x16 transpose: t[i] lane j becomes t[j] lane i. The tall tile stores
 * its results this way, one masked row store per output row. Scatters down the
 * columns (and gathers of the residual) had cost ResNet-50 layer4's 512->2048 1x1
 * convs 7% on one thread: 0.532-0.539 -> 0.495-0.500 ms at batch 1. */
static inline __attribute__((always_inline)) void sgemm__transpose16(__m512 t[16]) {
  __m512 u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    u[i] = _mm512_unpacklo_ps(t[i], t[i + 1]);
    u[i + 1] = _mm512_unpackhi_ps(t[i], t[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {
    t[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u[i]), _mm512_castps_pd(u[i + 2])));
    t[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u[i]), _mm512_castps_pd(u[i + 2])));
    t[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u[i + 1]), _mm512_castps_pd(u[i + 3])));
    t[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u[i + 1]), _mm512_castps_pd(u[i + 3])));
  }
  /* t[4q + r] now holds, in each 128-bit lane L, rows 4q..4q+3 of column 4L + r. */
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    __m512 a = _mm512_shuffle_f32x4(t[r], t[4 + r], 0x88), b = _mm512_shuffle_f32x4(t[r], t[4 + r], 0xdd);
    __m512 c = _mm512_shuffle_f32x4(t[8 + r], t[12 + r], 0x88), d = _mm512_shuffle_f32x4(t[8 + r], t[12 + r], 0xdd);
    u[r] = _mm512_shuffle_f32x4(a, c, 0x88);      /* column r */
    u[8 + r] = _mm512_shuffle_f32x4(a, c, 0xdd);  /* column 8 + r */
    u[4 + r] = _mm512_shuffle_f32x4(b, d, 0x88);  /* column 4 + r */
    u[12 + r] = _mm512_shuffle_f32x4(b, d, 0xdd); /* column 12 + r */
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) t[i] = u[i];
}

/* Tall tile: rows [r, r + 16*NV) (NV panels; rows past m1 masked off) x NJ columns. */
static inline __attribute__((always_inline)) void
sgemm__tall(const int nv, const int nj, const int ind, size_t k, const float *a, size_t apan,
            const float *b, size_t ldb, const ptrdiff_t *boff, float *c, size_t ldc,
            __mmask16 rows0, __mmask16 rows1, const float *bias, const float *res, size_t ldr,
            int flags) {
  __m512 acc[2][12];
#pragma GCC unroll 2
  for (int v = 0; v < 2; v++)
#pragma GCC unroll 12
    for (int j = 0; j < 12; j++) acc[v][j] = _mm512_setzero_ps();
  for (size_t p = 0; p < k; p++) {
    __m512 a0 = _mm512_loadu_ps(a), a1 = nv > 1 ? _mm512_loadu_ps(a + apan) : a0;
    _mm_prefetch((const char *)(a + SGEMM_PF_AHEAD), _MM_HINT_T0);
    if (nv > 1) _mm_prefetch((const char *)(a + apan + SGEMM_PF_AHEAD), _MM_HINT_T0);
    const float *bp = ind ? b + boff[p] : b;
#pragma GCC unroll 12
    for (int j = 0; j < nj; j++) {
      __m512 bj = _mm512_set1_ps(bp[j]);
      acc[0][j] = _mm512_fmadd_ps(a0, bj, acc[0][j]);
      if (nv > 1) acc[1][j] = _mm512_fmadd_ps(a1, bj, acc[1][j]);
    }
    a += KERN_SGEMM_PANEL;
    if (!ind) b += ldb;
  }
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 cols = (__mmask16)((1u << nj) - 1);
#pragma GCC unroll 2
  for (int v = 0; v < nv; v++) {
    __mmask16 mk = v == 0 ? rows0 : rows1;
    __m512 t[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) t[j] = j < nj ? acc[v][j] : zero;
    sgemm__transpose16(t); /* t[i]: row 16v + i, columns 0 .. nj */
    float *cv = c + (size_t)16 * (size_t)v * ldc;
    const float *rv = res ? res + (size_t)16 * (size_t)v * ldr : NULL;
    const float *bv = bias ? bias + 16 * v : NULL;
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
      if (!(mk >> i & 1)) break;
      __m512 y = _mm512_add_ps(t[i], _mm512_set1_ps(bv ? bv[i] : 0.0f));
      if (flags & SGEMM_ACC) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(cols, cv + (size_t)i * ldc));
      if (rv) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(cols, rv + (size_t)i * ldr));
      if (flags & SGEMM_RELU) y = _mm512_max_ps(y, zero);
      _mm512_mask_storeu_ps(cv + (size_t)i * ldc, cols, y);
    }
  }
}

typedef void (*sgemm_tall_fn)(size_t, const float *, size_t, const float *, size_t,
                              const ptrdiff_t *, float *, size_t, __mmask16, __mmask16,
                              const float *, const float *, size_t, int);
#define SGEMM_TALL(NV, NJ, IND)                                                              \
  static void sgemm__tall_##NV##_##NJ##_##IND(size_t k, const float *a, size_t apan,         \
                                              const float *b, size_t ldb,                    \
                                              const ptrdiff_t *boff, float *c, size_t ldc,   \
                                              __mmask16 r0, __mmask16 r1, const float *bias, \
                                              const float *res, size_t ldr, int flags) {     \
    sgemm__tall(NV, NJ, IND, k, a, apan, b, ldb, boff, c, ldc, r0, r1, bias, res, ldr, flags); \
  }
#define SGEMM_TALL_NV(NV, IND)                                                               \
  SGEMM_TALL(NV, 1, IND) SGEMM_TALL(NV, 2, IND) SGEMM_TALL(NV, 3, IND) SGEMM_TALL(NV, 4, IND) \
  SGEMM_TALL(NV, 5, IND) SGEMM_TALL(NV, 6, IND) SGEMM_TALL(NV, 7, IND) SGEMM_TALL(NV, 8, IND) \
  SGEMM_TALL(NV, 9, IND) SGEMM_TALL(NV, 10, IND) SGEMM_TALL(NV, 11, IND) SGEMM_TALL(NV, 12, IND)
SGEMM_TALL_NV(1, 0)
SGEMM_TALL_NV(2, 0)
SGEMM_TALL_NV(1, 1)
SGEMM_TALL_NV(2, 1)
#define SGEMM_TALL_ROW(NV, IND)                                                              \
  {sgemm__tall_##NV##_1_##IND, sgemm__tall_##NV##_2_##IND,  sgemm__tall_##NV##_3_##IND,       \
   sgemm__tall_##NV##_4_##IND, sgemm__tall_##NV##_5_##IND,  sgemm__tall_##NV##_6_##IND,       \
   sgemm__tall_##NV##_7_##IND, sgemm__tall_##NV##_8_##IND,  sgemm__tall_##NV##_9_##IND,       \
   sgemm__tall_##NV##_10_##IND, sgemm__tall_##NV##_11_##IND, sgemm__tall_##NV##_12_##IND}
/* [indirect B][panels - 1][columns - 1] */
static const sgemm_tall_fn sgemm__talls[2][2][12] = {
    {SGEMM_TALL_ROW(1, 0), SGEMM_TALL_ROW(2, 0)}, {SGEMM_TALL_ROW(1, 1), SGEMM_TALL_ROW(2, 1)}};

/* Lanes [0, n) of a 16-lane mask, n clipped to [0, 16]. */
static inline __mmask16 sgemm__lanes(int n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Rows [m0, m1) (m0 a multiple of the panel) x n <= SGEMM_TAIL_TALL columns, 32 rows
 * at a time. */
static void sgemm__tall_block(const float *packed, int kfull, int m0, int m1, int k,
                              const float *b, size_t ldb, const ptrdiff_t *boff, size_t n,
                              float *c, size_t ldc, const kern_sgemm_epi_t *epi) {
  size_t apan = KERN_SGEMM_PANEL * (size_t)kfull;
  for (int r = m0; r < m1; r += 32) {
    int nv = m1 - r > 16 ? 2 : 1;
    __mmask16 r0 = sgemm__lanes(m1 - r), r1 = sgemm__lanes(m1 - r - 16);
    const float *a = sgemm__arow(packed, r, kfull);
    const float *bias = epi && epi->bias ? epi->bias + r : NULL;
    const float *res = epi && epi->res ? epi->res + (size_t)(r - m0) * epi->ldr : NULL;
    sgemm__talls[boff != NULL][nv - 1][n - 1]((size_t)k, a, apan, b, ldb, boff,
                                              c + (size_t)(r - m0) * ldc, ldc, r0, r1, bias,
                                              res, epi ? epi->ldr : 0, sgemm__flags(epi));
  }
}

/* Rows [m0, m1), K slice [k0, k1): B's row p (counted from k0) is b + p ldb, or
 * b + boff[p] when boff is given. */
static void sgemm__run(const float *packed, int kfull, int k0, int k1, int m0, int m1,
                       const float *b, size_t ldb, const ptrdiff_t *boff, size_t n, float *c,
                       size_t ldc, const kern_sgemm_epi_t *epi) {
  int k = k1 - k0;
  packed += (size_t)k0 * KERN_SGEMM_PANEL; /* sgemm__arow then starts each row at k0 */
  /* Columns in chunks whose K x chunk slice of B stays in L2 across all row panels
   * (the last chunk takes a remainder of one vector along: see kern_conv.c). */
  size_t chunk = SGEMM_B_BUDGET / ((size_t)k ? (size_t)k : 1) / 48 * 48;
  if (chunk < 48) chunk = 48;
  kern_sgemm_epi_t e = epi ? *epi : (kern_sgemm_epi_t){0};
  for (size_t j = 0, nc; j < n; j += nc) {
    nc = n - j <= chunk + 16 ? n - j : chunk;
    kern_sgemm_epi_t ej = e;
    if (ej.res) ej.res += j;
    sgemm__block(packed, kfull, m0, m1, k, b + j, ldb, boff, nc, c + j, ldc, &ej);
  }
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* AVX2 build (16 ymm registers). A panel of 16 rows is packed as four [K][4] groups
 * (SGEMM_GROUP), so that a tile of 4 rows reads its weights in sequence.
 * Wide kernel (the usual case): 4 rows (broadcast from A) x 24 columns (3 ymm of B) =
 * 12 accumulators; each k step is 3 vector loads of B, 4 broadcasts and 12 FMAs, and
 * the results are rows of C, stored with the epilogue as they are. B is copied in
 * strips of 24 columns and KC rows, [k][24] each (a last partial strip [k][8 or 16],
 * its last vector masked), into a thread-local buffer, a chunk of strips at a time;
 * every M block (sized to stay in L2) then runs over the chunk, strip by strip, every
 * 4-row group of the block over each strip. The copy is done by each strip's first
 * tile (the first row group of the first M block), which reads B's rows from the
 * source, prefetching SGEMM2_PF_ROWS rows ahead, and stores them into the strip as it
 * multiplies them, so the misses on B overlap with FMAs. A separate copy pass, row by
 * row across the chunk, took 5% of a ResNet-50 forward; fused (session 13, Zen 3, 2
 * threads, sums of per-node minima over 4 alternating runs): ResNet-50 batch 1 38.5 ->
 * 38.15 ms (38.6 without the prefetch), GoogLeNet 12.03 -> 11.83; one core, batch 8,
 * 1x1 convs of at most 512 outputs 1-4% faster (bench_conv).
 * A is not prefetched by software: its groups are read in sequence, which the hardware
 * prefetcher follows, and prefetching them 96 k steps ahead (one prefetch per k step)
 * cost in the host's contended phases. Session 14, forwards alternating one by one
 * between the two in one process: ResNet-50 batch 1 p50 53.5 -> 52.0, 53.1 -> 51.3,
 * 58.7 -> 56.1, 60.5 -> 55.2 ms (p90 61.5 -> 60.1 ... 68.3 -> 60.6), batch 8 414 -> 405
 * ms, ResNet-18 18.4 -> 17.8, GoogLeNet 13.5 -> 13.6; in a calm spell ResNet-50 42.3 ->
 * 42.5 (p10 39.8 -> 40.2, p90 63.4 -> 57.1). Prefetching further ahead (192 steps) or
 * non-temporally was worse than either (p50 59-63 against 48 ms).
 * Tall kernel, for column tails of at most SGEMM2_TAIL_TALL (a 7x7 map's 49 = 2 x 24 +
 * 1, a 14x14 map's 196 = 8 x 24 + 4): vectors run down M, 16 rows (two groups per
 * vector) x 6 columns of B (6 broadcasts) = 12 accumulators, transposed in registers
 * and stored as rows of C; it runs right after its rows' wide tiles, while their A is
 * in cache. Tails of 7-16 columns measured worse on it than on a 1- or 2-vector wide
 * tile (its two-group loads; 512 x 512 x 16: 62 against 87 GFLOP/s).
 * Until session 12 the tall kernel (on [K][16] panels) took every column: its
 * transposing epilogue cost 10-20% of a product of K = 64. Wide kernel instead, one
 * Zen 3 core (best of 5 x 7 runs): M x K x N 256 x 64 x 3136 78 -> 86-88 GFLOP/s,
 * 64 x 64 x 196 77 -> 84-87, 512 x 128 x 784 85-88 -> 94-96, 1024 x 256 x 196 92 ->
 * 96-97; in a forward on 2 threads (sums of per-node minima over 8 alternating runs)
 * ResNet-50 batch 1 46.1 -> 40.5 ms, GoogLeNet 14.95 -> 13.49, ResNet-50 batch 8 366
 * -> 355. K beyond KC is taken in slices that accumulate into C, the epilogue applied
 * with the last; KC 512 beat 256 on long products of few columns (2048 x 512 x 49:
 * 80-83 -> 92). A first wide version read B in place and [K][16] panels: 50-58
 * GFLOP/s where OpenBLAS gives 75-87 (its strips' and panels' lines thrashed L1). */
enum {
  SGEMM2_WR = SGEMM_GROUP,     /* rows per wide tile */
  SGEMM2_WN = 24,              /* columns per wide tile: 3 ymm */
  SGEMM2_NR = 6,               /* columns per tall tile */
  SGEMM2_TAIL_TALL = 6,        /* column tails up to this many go to the tall kernel */
  SGEMM2_KC = 512,             /* rows of B per slice */
  SGEMM2_A_BUDGET = 64 * 1024, /* floats of packed A per M block: 256 KB, in L2 */
  SGEMM2_B_PACKED = 32 * 1024, /* floats of packed wide strips per column chunk: 128 KB */
  SGEMM2_PF_ROWS = 8           /* a packing tile prefetches B's rows this many ahead */
};

int kern_sgemm_available(void) { return 1; }

static _Thread_local float sgemm2__strips[SGEMM2_B_PACKED + SGEMM2_KC * SGEMM2_WN]
    __attribute__((aligned(64)));
static _Thread_local float sgemm2__tail[SGEMM2_KC * (SGEMM2_TAIL_TALL + SGEMM2_NR - 1) / SGEMM2_NR * SGEMM2_NR]
    __attribute__((aligned(64)));

/* Columns [0, nj) (nj <= 6) of k rows of B into strip[p][0 .. 6), zero past nj. */
static void sgemm2__pack_tall(const float *b, size_t ldb, const ptrdiff_t *boff, int k, int nj,
                              float *strip) {
  for (int p = 0; p < k; p++) {
    const float *bp = boff ? b + boff[p] : b + (size_t)p * ldb;
    for (int j = 0; j < SGEMM2_NR; j++) strip[(size_t)p * SGEMM2_NR + j] = j < nj ? bp[j] : 0.0f;
  }
}

/* 4 rows x 8 NV columns of the strip (when MASKED, only wl < 8 lanes of the last
 * vector are C's); rows >= mr are not stored. With PACK the tile first fills the strip:
 * it reads B's rows from src (row p at src + p ldb, or src + boff[p]) and stores them
 * into bs as it goes. */
static inline __attribute__((always_inline)) void
sgemm2__wide(const int nv, const int masked, const int pack, size_t k, const float *a, float *bs,
             const float *src, size_t ldb, const ptrdiff_t *boff, float *c, size_t ldc, int mr,
             int wl, const float *bias, const float *res, size_t ldr, int flags) {
  __m256 acc[SGEMM2_WR][3];
  const __m256i last = kern_simd_lanes8(wl);
#pragma GCC unroll 4
  for (int i = 0; i < SGEMM2_WR; i++) {
#pragma GCC unroll 3
    for (int j = 0; j < 3; j++) acc[i][j] = _mm256_setzero_ps();
    /* The epilogue's lines, fetched while the k loop runs: in a forward the residual
     * and C come from memory, and its misses all at the end of the tile cost 17% of a
     * ResNet layer1 conv at batch 8. */
    if (i < mr) {
      const float *ci = c + (size_t)i * ldc;
      __builtin_prefetch(ci, 1), __builtin_prefetch(ci + 8 * nv - 1, 1);
      if (nv > 2) __builtin_prefetch(ci + 8, 1);
      if (res) {
        const float *ri = res + (size_t)i * ldr;
        __builtin_prefetch(ri), __builtin_prefetch(ri + 8 * nv - 1);
        if (nv > 2) __builtin_prefetch(ri + 8);
      }
    }
  }
#pragma GCC unroll 4
  for (size_t p = 0; p < k; p++) {
    __m256 b0, b1, b2;
    if (pack) { /* this strip's first tile: B's row p from the source, into the strip */
      const float *bp = boff ? src + boff[p] : src + p * ldb;
      if (!boff) {
        const float *ahead = bp + SGEMM2_PF_ROWS * ldb;
        __builtin_prefetch(ahead), __builtin_prefetch(ahead + 8 * nv - 1);
      }
      b0 = masked && nv == 1 ? _mm256_maskload_ps(bp, last) : _mm256_loadu_ps(bp);
      b1 = nv < 2 ? b0 : masked && nv == 2 ? _mm256_maskload_ps(bp + 8, last) : _mm256_loadu_ps(bp + 8);
      b2 = nv < 3 ? b0 : masked ? _mm256_maskload_ps(bp + 16, last) : _mm256_loadu_ps(bp + 16);
      _mm256_store_ps(bs, b0);
      if (nv > 1) _mm256_store_ps(bs + 8, b1);
      if (nv > 2) _mm256_store_ps(bs + 16, b2);
    } else {
      b0 = _mm256_load_ps(bs);
      b1 = nv > 1 ? _mm256_load_ps(bs + 8) : b0, b2 = nv > 2 ? _mm256_load_ps(bs + 16) : b0;
    }
#pragma GCC unroll 4
    for (int i = 0; i < SGEMM2_WR; i++) {
      __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      if (nv > 1) acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      if (nv > 2) acc[i][2] = _mm256_fmadd_ps(ai, b2, acc[i][2]);
    }
    a += SGEMM2_WR;
    bs += 8 * nv;
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int i = 0; i < SGEMM2_WR; i++) {
    if (i >= mr) break;
    float *ci = c + (size_t)i * ldc;
    const float *ri = res ? res + (size_t)i * ldr : NULL;
    __m256 bi = _mm256_set1_ps(bias ? bias[i] : 0.0f);
#pragma GCC unroll 3
    for (int j = 0; j < nv; j++) {
      int mk = masked && j == nv - 1;
      __m256 y = _mm256_add_ps(acc[i][j], bi);
      if (flags & SGEMM_ACC)
        y = _mm256_add_ps(y, mk ? _mm256_maskload_ps(ci + 8 * j, last) : _mm256_loadu_ps(ci + 8 * j));
      if (ri)
        y = _mm256_add_ps(y, mk ? _mm256_maskload_ps(ri + 8 * j, last) : _mm256_loadu_ps(ri + 8 * j));
      if (flags & SGEMM_RELU) y = _mm256_max_ps(y, zero);
      if (mk)
        kern_simd_store_n8(ci + 8 * j, y, wl);
      else
        _mm256_storeu_ps(ci + 8 * j, y);
    }
  }
}

typedef void (*sgemm2_wide_fn)(size_t, const float *, float *, const float *, size_t,
                               const ptrdiff_t *, float *, size_t, int, int, const float *,
                               const float *, size_t, int);
#define SGEMM2_WIDE(NV, MASKED, PACK)                                                        \
  static void sgemm2__wide_##NV##_##MASKED##_##PACK(                                          \
      size_t k, const float *a, float *bs, const float *src, size_t ldb, const ptrdiff_t *boff, \
      float *c, size_t ldc, int mr, int wl, const float *bias, const float *res, size_t ldr,   \
      int flags) {                                                                           \
    sgemm2__wide(NV, MASKED, PACK, k, a, bs, src, ldb, boff, c, ldc, mr, wl, bias, res, ldr,  \
                 flags);                                                                     \
  }
#define SGEMM2_WIDE_NV(MASKED, PACK)                                                         \
  SGEMM2_WIDE(1, MASKED, PACK) SGEMM2_WIDE(2, MASKED, PACK) SGEMM2_WIDE(3, MASKED, PACK)
SGEMM2_WIDE_NV(0, 0) SGEMM2_WIDE_NV(1, 0) SGEMM2_WIDE_NV(0, 1) SGEMM2_WIDE_NV(1, 1)
/* [packs its strip][last vector masked][vectors - 1] */
static const sgemm2_wide_fn sgemm2__wides[2][2][3] = {
    {{sgemm2__wide_1_0_0, sgemm2__wide_2_0_0, sgemm2__wide_3_0_0},
     {sgemm2__wide_1_1_0, sgemm2__wide_2_1_0, sgemm2__wide_3_1_0}},
    {{sgemm2__wide_1_0_1, sgemm2__wide_2_0_1, sgemm2__wide_3_0_1},
     {sgemm2__wide_1_1_1, sgemm2__wide_2_1_1, sgemm2__wide_3_1_1}}};

/* 8x8 transpose: t[j] (lanes = rows 0..7 of column j) -> t[i] (lanes = columns of row i). */
static inline __attribute__((always_inline)) void sgemm2__transpose8(__m256 t[8]) {
  __m256 u[8], v[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    u[i] = _mm256_unpacklo_ps(t[i], t[i + 1]);
    u[i + 1] = _mm256_unpackhi_ps(t[i], t[i + 1]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 8; h += 4) {
    v[h] = _mm256_shuffle_ps(u[h], u[h + 2], 0x44);     /* rows 0 | 4, columns h.. */
    v[h + 1] = _mm256_shuffle_ps(u[h], u[h + 2], 0xEE); /* rows 1 | 5 */
    v[h + 2] = _mm256_shuffle_ps(u[h + 1], u[h + 3], 0x44); /* rows 2 | 6 */
    v[h + 3] = _mm256_shuffle_ps(u[h + 1], u[h + 3], 0xEE); /* rows 3 | 7 */
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; i++) {
    t[i] = _mm256_permute2f128_ps(v[i], v[4 + i], 0x20);
    t[4 + i] = _mm256_permute2f128_ps(v[i], v[4 + i], 0x31);
  }
}

/* NV half panels (8 rows each: groups at a, a + gs, ..., the next panel's at a + ps;
 * rows >= mr not stored) x NJ columns of the tall strip. NV 4 (two panels) only for NJ
 * <= 2, whose chains of FMAs are otherwise too few to hide their latency: a 7x7 map's
 * 49th column on 16 rows took as long per k step as 8 of the wide kernel's columns. */
static inline __attribute__((always_inline)) void
sgemm2__tall(const int nv, const int nj, size_t k, const float *a, size_t gs, size_t ps,
             const float *bs, float *c, size_t ldc, int mr, const float *bias, const float *res,
             size_t ldr, int flags) {
  __m256 acc[4][SGEMM2_NR];
#pragma GCC unroll 4
  for (int v = 0; v < 4; v++)
#pragma GCC unroll 6
    for (int j = 0; j < SGEMM2_NR; j++) acc[v][j] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (size_t p = 0; p < k; p++) {
    __m256 av[4];
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) {
      const float *ah = a + (size_t)(v / 2) * ps + (size_t)(v % 2) * 2 * gs;
      av[v] = _mm256_loadu2_m128(ah + gs, ah);
    }
#pragma GCC unroll 6
    for (int j = 0; j < nj; j++) {
      __m256 bj = _mm256_broadcast_ss(bs + j);
#pragma GCC unroll 4
      for (int v = 0; v < nv; v++) acc[v][j] = _mm256_fmadd_ps(av[v], bj, acc[v][j]);
    }
    a += SGEMM2_WR;
    bs += SGEMM2_NR;
  }
  const __m256 zero = _mm256_setzero_ps();
  const __m256i cols = kern_simd_lanes8(nj);
#pragma GCC unroll 4
  for (int v = 0; v < nv; v++) {
    __m256 t[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) t[j] = j < nj ? acc[v][j < SGEMM2_NR ? j : 0] : zero;
    sgemm2__transpose8(t); /* t[i]: row 8v + i, columns 0 .. nj */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      int row = 8 * v + i;
      if (row >= mr) break;
      float *ci = c + (size_t)row * ldc;
      __m256 y = _mm256_add_ps(t[i], _mm256_set1_ps(bias ? bias[row] : 0.0f));
      if (flags & SGEMM_ACC) y = _mm256_add_ps(y, _mm256_maskload_ps(ci, cols));
      if (res) y = _mm256_add_ps(y, _mm256_maskload_ps(res + (size_t)row * ldr, cols));
      if (flags & SGEMM_RELU) y = _mm256_max_ps(y, zero);
      kern_simd_store_n8(ci, y, nj);
    }
  }
}

typedef void (*sgemm2_tall_fn)(size_t, const float *, size_t, size_t, const float *, float *,
                               size_t, int, const float *, const float *, size_t, int);
#define SGEMM2_TALL(NV, NJ)                                                                  \
  static void sgemm2__tall_##NV##_##NJ(size_t k, const float *a, size_t gs, size_t ps,        \
                                       const float *bs, float *c, size_t ldc, int mr,         \
                                       const float *bias, const float *res, size_t ldr,       \
                                       int flags) {                                           \
    sgemm2__tall(NV, NJ, k, a, gs, ps, bs, c, ldc, mr, bias, res, ldr, flags);                \
  }
#define SGEMM2_TALL_NV(NV)                                                                   \
  SGEMM2_TALL(NV, 1) SGEMM2_TALL(NV, 2) SGEMM2_TALL(NV, 3) SGEMM2_TALL(NV, 4)                 \
  SGEMM2_TALL(NV, 5) SGEMM2_TALL(NV, 6)
SGEMM2_TALL_NV(1)
SGEMM2_TALL_NV(2)
SGEMM2_TALL(4, 1) SGEMM2_TALL(4, 2)
/* [half panels: 1, 2, 4 -> 0, 1, 2][columns - 1] */
static const sgemm2_tall_fn sgemm2__talls[3][SGEMM2_NR] = {
    {sgemm2__tall_1_1, sgemm2__tall_1_2, sgemm2__tall_1_3, sgemm2__tall_1_4, sgemm2__tall_1_5,
     sgemm2__tall_1_6},
    {sgemm2__tall_2_1, sgemm2__tall_2_2, sgemm2__tall_2_3, sgemm2__tall_2_4, sgemm2__tall_2_5,
     sgemm2__tall_2_6},
    {sgemm2__tall_4_1, sgemm2__tall_4_2}};

/* Rows [m0, m1) (m0 a multiple of 8), the K slice [k0, k0 + k) of A and B's rows 0 .. k
 * from b, all n columns; `flags` and the epilogue pointers as the caller decided for
 * this slice. */
static void sgemm2__slice(const float *packed, int kfull, int k0, int m0, int m1, int k,
                          const float *b, size_t ldb, const ptrdiff_t *boff, size_t n, float *c,
                          size_t ldc, const float *bias, const float *res, size_t ldr, int flags) {
  const size_t gs = (size_t)SGEMM2_WR * (size_t)kfull, ps = (size_t)KERN_SGEMM_PANEL * (size_t)kfull;
  const size_t ks = (size_t)k * SGEMM2_WN;
  size_t rem = n % SGEMM2_WN, nw = rem && rem <= SGEMM2_TAIL_TALL ? n - rem : n;
  int mb = (int)(SGEMM2_A_BUDGET / (size_t)k) / KERN_SGEMM_PANEL * KERN_SGEMM_PANEL;
  if (mb < KERN_SGEMM_PANEL) mb = KERN_SGEMM_PANEL;
  size_t chunk = SGEMM2_B_PACKED / ks * SGEMM2_WN;
  if (chunk < SGEMM2_WN) chunk = SGEMM2_WN;
  for (size_t j0 = 0, je;; j0 = je) {
    je = nw - j0 > chunk ? j0 + chunk : nw;
    int tail = je == nw && n > nw; /* the tall columns ride with the last chunk */
    for (size_t j = nw; tail && j < n; j += SGEMM2_NR)
      sgemm2__pack_tall(b + j, ldb, boff, k, n - j < SGEMM2_NR ? (int)(n - j) : SGEMM2_NR,
                        sgemm2__tail + (j - nw) / SGEMM2_NR * SGEMM2_NR * (size_t)k);
    for (int b0 = m0; b0 < m1; b0 += mb) {
      int b1 = m1 - b0 < mb ? m1 : b0 + mb;
      for (size_t j = j0; j < je; j += SGEMM2_WN) {
        int w = nw - j < SGEMM2_WN ? (int)(nw - j) : SGEMM2_WN, nv = (w + 7) / 8;
        float *strip = sgemm2__strips + (j - j0) / SGEMM2_WN * ks;
        for (int r = b0; r < b1; r += SGEMM2_WR)
          sgemm2__wides[b0 == m0 && r == b0][w % 8 != 0][nv - 1](
               (size_t)k, sgemm__arow(packed, r, kfull) + (size_t)k0 * SGEMM2_WR, strip, b + j,
               ldb, boff, c + (size_t)(r - m0) * ldc + j, ldc, b1 - r < SGEMM2_WR ? b1 - r : SGEMM2_WR,
               w - 8 * (nv - 1),
               bias ? bias + r : NULL, res ? res + (size_t)(r - m0) * ldr + j : NULL, ldr, flags);
      }
      for (int r = b0; tail && r < b1;) {
        /* a whole panel when r starts one and 16 rows remain, else its half; two
         * panels for tails of 1 or 2 columns when more than 16 rows remain */
        int rows = r % KERN_SGEMM_PANEL ? 8 : b1 - r > 16 && n - nw <= 2 ? 32 : b1 - r > 8 ? 16 : 8;
        const float *a = sgemm__arow(packed, r, kfull) + (size_t)k0 * SGEMM2_WR;
        for (size_t j = nw; j < n; j += SGEMM2_NR) {
          int nj = n - j < SGEMM2_NR ? (int)(n - j) : SGEMM2_NR;
          sgemm2__talls[rows / 16][nj - 1](
              (size_t)k, a, gs, ps, sgemm2__tail + (j - nw) / SGEMM2_NR * SGEMM2_NR * (size_t)k,
              c + (size_t)(r - m0) * ldc + j, ldc, b1 - r < rows ? b1 - r : rows,
              bias ? bias + r : NULL, res ? res + (size_t)(r - m0) * ldr + j : NULL, ldr, flags);
        }
        r += rows;
      }
    }
    if (je == nw) break;
  }
}

/* The same contract as the AVX-512 sgemm__run. */
static void sgemm__run(const float *packed, int kfull, int k0, int k1, int m0, int m1,
                       const float *b, size_t ldb, const ptrdiff_t *boff, size_t n, float *c,
                       size_t ldc, const kern_sgemm_epi_t *epi) {
  int flags = sgemm__flags(epi);
  const float *bias = epi ? epi->bias : NULL, *res = epi ? epi->res : NULL;
  size_t ldr = epi ? epi->ldr : 0;
  int slices = (k1 - k0 + SGEMM2_KC - 1) / SGEMM2_KC;
  int kc = slices > 1 ? (k1 - k0 + slices - 1) / slices : SGEMM2_KC; /* even slices */
  for (int ks = k0; ks < k1; ks += kc) {
    int ke = k1 - ks < kc ? k1 : ks + kc, last = ke == k1;
    int f = (ks > k0 ? SGEMM_ACC : flags & SGEMM_ACC) | (last ? flags & SGEMM_RELU : 0);
    const float *bk = boff ? b : b + (size_t)(ks - k0) * ldb;
    sgemm2__slice(packed, kfull, ks, m0, m1, ke - ks, bk, ldb, boff ? boff + (ks - k0) : NULL, n,
                  c, ldc, last ? bias : NULL, last ? res : NULL, ldr, f);
  }
}

#else /* neither AVX-512 nor AVX2: callers use OpenBLAS instead */

int kern_sgemm_available(void) { return 0; }

/* Portable reference, only reached if a caller ignores kern_sgemm_available(); the
 * same contract as the AVX-512 sgemm__run. */
static void sgemm__run(const float *packed, int kfull, int k0, int k1, int m0, int m1,
                       const float *b, size_t ldb, const ptrdiff_t *boff, size_t n, float *c,
                       size_t ldc, const kern_sgemm_epi_t *epi) {
  for (int r = m0; r < m1; r++) {
    const float *a = sgemm__arow(packed, r, kfull) + (size_t)k0 * KERN_SGEMM_PANEL;
    float *cr = c + (size_t)(r - m0) * ldc;
    for (size_t j = 0; j < n; j++) {
      float s = epi && epi->accumulate ? cr[j] : 0.0f;
      for (int p = 0; p < k1 - k0; p++)
        s += a[(size_t)p * KERN_SGEMM_PANEL] *
             (boff ? b[boff[p] + (ptrdiff_t)j] : b[(size_t)p * ldb + j]);
      if (epi && epi->bias) s += epi->bias[r];
      if (epi && epi->res) s += epi->res[(size_t)(r - m0) * epi->ldr + j];
      if (epi && epi->relu && s < 0.0f) s = 0.0f;
      cr[j] = s;
    }
  }
}
#endif

void kern_sgemm_run_k(const float *packed, int kfull, int k0, int k1, int m0, int m1,
                      const float *b, size_t ldb, size_t n, float *c, size_t ldc,
                      const kern_sgemm_epi_t *epi) {
  sgemm__run(packed, kfull, k0, k1, m0, m1, b, ldb, NULL, n, c, ldc, epi);
}

void kern_sgemm_run(const float *packed, int m0, int m1, int k, const float *b, size_t ldb,
                    size_t n, float *c, size_t ldc, const kern_sgemm_epi_t *epi) {
  sgemm__run(packed, k, 0, k, m0, m1, b, ldb, NULL, n, c, ldc, epi);
}

void kern_sgemm_run_ind(const float *packed, int k, int m0, int m1, const float *b,
                        const ptrdiff_t *boff, size_t n, float *c, size_t ldc,
                        const kern_sgemm_epi_t *epi) {
  sgemm__run(packed, k, 0, k, m0, m1, b, 0, boff, n, c, ldc, epi);
}
