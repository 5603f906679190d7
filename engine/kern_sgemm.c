/*
 * kern_sgemm.c — the engine's own single-thread sgemm for convolutions, with weights
 * packed once at load and the conv epilogue applied from registers.
 *
 * Why not OpenBLAS here: OpenBLAS repacks the weight matrix on every call (12% of a
 * ResNet-50 forward went to sgemm_oncopy), its epilogue-free interface forces a second
 * pass over the output for bias, residual and ReLU, and the Debian build may be pinned
 * to AVX2 kernels (OPENBLAS_CORETYPE=Haswell on machines whose AVX-512 it mishandles),
 * which is half the FMA width of an AVX-512 core. OpenBLAS stays the path for Gemm,
 * MatMul and for CPUs without AVX-512 (kern_sgemm_available() says which).
 *
 * C[M x N] = A[M x K] B[K x N], all row-major. A (the weights) is packed by
 * kern_sgemm_pack into panels of KERN_SGEMM_MR rows: panel i holds A[i*MR .. i*MR+MR)
 * as [K][MR], zero-padded past M, so the micro-kernel reads it sequentially. B is read
 * in place through ldb (a packed lowering, a Winograd V, or a 1x1 conv's input), a
 * row segment of up to 48 columns at a time; loads past N are masked, never made.
 *
 * Micro-kernel: MR = 8 rows x NR = 48 columns (3 zmm) = 24 accumulators; each k step
 * is 3 vector loads of B, 8 broadcasts of A and 24 FMAs. Tails of N use 2 or 1
 * vectors, the last one masked. The epilogue (bias per row, residual shaped like C,
 * ReLU) is applied before the single store of each accumulator.
 *
 * Blocking is the caller's: it hands blocks of B small enough to stay in L2 while
 * every row panel of A passes over them (kern_conv.c, kern_winograd.c). Nothing here
 * allocates or takes locks.
 */
#include "kern_sgemm.h"

enum { SGEMM_B_BUDGET = 96 * 1024 }; /* floats of B per column chunk: 384 KB, in L2 */

size_t kern_sgemm_packed_floats(int m, int k) {
  size_t panels = ((size_t)m + KERN_SGEMM_MR - 1) / KERN_SGEMM_MR;
  return panels * KERN_SGEMM_MR * (size_t)k;
}

void kern_sgemm_pack(const float *a, int m, int k, size_t lda, float *packed) {
  size_t panels = ((size_t)m + KERN_SGEMM_MR - 1) / KERN_SGEMM_MR;
  for (size_t pi = 0; pi < panels; pi++) {
    float *dst = packed + pi * KERN_SGEMM_MR * (size_t)k;
    for (size_t kk = 0; kk < (size_t)k; kk++)
      for (size_t r = 0; r < KERN_SGEMM_MR; r++) {
        size_t row = pi * KERN_SGEMM_MR + r;
        dst[kk * KERN_SGEMM_MR + r] = row < (size_t)m ? a[row * lda + kk] : 0.0f;
      }
  }
}

#if defined(__AVX512F__)
#include <immintrin.h>

int kern_sgemm_available(void) { return 1; }

/* One MR x (16*NV) tile, the last vector masked by `last`; rows >= mr are not stored. */
static inline __attribute__((always_inline)) void
sgemm__tile(const int nv, size_t k, const float *a, const float *b, size_t ldb, float *c,
            size_t ldc, int mr, __mmask16 last, const float *bias, const float *res, size_t ldr,
            int relu) {
  __m512 acc[KERN_SGEMM_MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < KERN_SGEMM_MR; i++)
#pragma GCC unroll 3
    for (int j = 0; j < 3; j++) acc[i][j] = _mm512_setzero_ps();
  for (size_t p = 0; p < k; p++) {
    __m512 b0, b1 = _mm512_setzero_ps(), b2 = _mm512_setzero_ps();
    if (nv == 1) {
      b0 = _mm512_maskz_loadu_ps(last, b);
    } else if (nv == 2) {
      b0 = _mm512_loadu_ps(b);
      b1 = _mm512_maskz_loadu_ps(last, b + 16);
    } else {
      b0 = _mm512_loadu_ps(b);
      b1 = _mm512_loadu_ps(b + 16);
      b2 = _mm512_maskz_loadu_ps(last, b + 32);
    }
#pragma GCC unroll 8
    for (int i = 0; i < KERN_SGEMM_MR; i++) {
      __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (nv > 1) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      if (nv > 2) acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
    a += KERN_SGEMM_MR;
    b += ldb;
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < KERN_SGEMM_MR; i++) {
    if (i >= mr) break;
    float *ci = c + (size_t)i * ldc;
    __m512 bi = _mm512_set1_ps(bias ? bias[i] : 0.0f);
    const float *ri = res ? res + (size_t)i * ldr : NULL;
#pragma GCC unroll 3
    for (int j = 0; j < nv; j++) {
      __mmask16 mk = j == nv - 1 ? last : (__mmask16)0xFFFF;
      __m512 v = _mm512_add_ps(acc[i][j], bi);
      if (ri) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, ri + 16 * j));
      if (relu) v = _mm512_max_ps(v, zero);
      _mm512_mask_storeu_ps(ci + 16 * j, mk, v);
    }
  }
}

static void sgemm__tile3(size_t k, const float *a, const float *b, size_t ldb, float *c,
                         size_t ldc, int mr, __mmask16 last, const float *bias,
                         const float *res, size_t ldr, int relu) {
  sgemm__tile(3, k, a, b, ldb, c, ldc, mr, last, bias, res, ldr, relu);
}
static void sgemm__tile2(size_t k, const float *a, const float *b, size_t ldb, float *c,
                         size_t ldc, int mr, __mmask16 last, const float *bias,
                         const float *res, size_t ldr, int relu) {
  sgemm__tile(2, k, a, b, ldb, c, ldc, mr, last, bias, res, ldr, relu);
}
static void sgemm__tile1(size_t k, const float *a, const float *b, size_t ldb, float *c,
                         size_t ldc, int mr, __mmask16 last, const float *bias,
                         const float *res, size_t ldr, int relu) {
  sgemm__tile(1, k, a, b, ldb, c, ldc, mr, last, bias, res, ldr, relu);
}

/* Rows [m0, m1) x columns [0, n): every row panel over the same columns. */
static void sgemm__block(const float *packed, int m0, int m1, int k, const float *b, size_t ldb,
                         size_t n, float *c, size_t ldc, const kern_sgemm_epi_t *epi) {
  const float *bias = epi ? epi->bias : NULL, *res = epi ? epi->res : NULL;
  size_t ldr = epi ? epi->ldr : 0;
  int relu = epi ? epi->relu : 0;
  size_t left = n % 48, full = n - left;
  __mmask16 last = (__mmask16)(0xFFFFu >> (16 - ((left + 15) % 16 + 1)));
  for (int r = m0; r < m1; r += KERN_SGEMM_MR) {
    const float *a = packed + (size_t)(r / KERN_SGEMM_MR) * KERN_SGEMM_MR * (size_t)k;
    int mr = m1 - r < KERN_SGEMM_MR ? m1 - r : KERN_SGEMM_MR;
    float *cr = c + (size_t)(r - m0) * ldc;
    const float *br = bias ? bias + r : NULL, *rr = res ? res + (size_t)(r - m0) * ldr : NULL;
    for (size_t j = 0; j < full; j += 48)
      sgemm__tile3((size_t)k, a, b + j, ldb, cr + j, ldc, mr, 0xFFFF, br, rr ? rr + j : NULL,
                   ldr, relu);
    if (left == 0) continue;
    const float *rj = rr ? rr + full : NULL;
    if (left > 32)
      sgemm__tile3((size_t)k, a, b + full, ldb, cr + full, ldc, mr, last, br, rj, ldr, relu);
    else if (left > 16)
      sgemm__tile2((size_t)k, a, b + full, ldb, cr + full, ldc, mr, last, br, rj, ldr, relu);
    else
      sgemm__tile1((size_t)k, a, b + full, ldb, cr + full, ldc, mr, last, br, rj, ldr, relu);
  }
}

void kern_sgemm_run(const float *packed, int m0, int m1, int k, const float *b, size_t ldb,
                    size_t n, float *c, size_t ldc, const kern_sgemm_epi_t *epi) {
  /* Columns in chunks whose K x chunk slice of B stays in L2 across all row panels. */
  size_t chunk = SGEMM_B_BUDGET / ((size_t)k ? (size_t)k : 1) / 48 * 48;
  if (chunk < 48) chunk = 48;
  kern_sgemm_epi_t e = epi ? *epi : (kern_sgemm_epi_t){0};
  for (size_t j = 0; j < n; j += chunk) {
    size_t nc = n - j < chunk ? n - j : chunk;
    kern_sgemm_epi_t ej = e;
    if (ej.res) ej.res += j;
    sgemm__block(packed, m0, m1, k, b + j, ldb, nc, c + j, ldc, &ej);
  }
}

#else /* no AVX-512: callers use OpenBLAS instead */

int kern_sgemm_available(void) { return 0; }

void kern_sgemm_run(const float *packed, int m0, int m1, int k, const float *b, size_t ldb,
                    size_t n, float *c, size_t ldc, const kern_sgemm_epi_t *epi) {
  /* Portable reference, only reached if a caller ignores kern_sgemm_available(). */
  for (int r = m0; r < m1; r++) {
    const float *a = packed + (size_t)(r / KERN_SGEMM_MR) * KERN_SGEMM_MR * (size_t)k +
                     (size_t)(r % KERN_SGEMM_MR);
    float *cr = c + (size_t)(r - m0) * ldc;
    for (size_t j = 0; j < n; j++) {
      float s = 0.0f;
      for (int p = 0; p < k; p++) s += a[(size_t)p * KERN_SGEMM_MR] * b[(size_t)p * ldb + j];
      if (epi && epi->bias) s += epi->bias[r];
      if (epi && epi->res) s += epi->res[(size_t)(r - m0) * epi->ldr + j];
      if (epi && epi->relu && s < 0.0f) s = 0.0f;
      cr[j] = s;
    }
  }
}
#endif
