/*
 * kern_simd.h — small AVX-512 helpers shared by the kernel files (internal).
 *
 * Stride-2 access (the Winograd row split, stride-2 lowering, stride-2 max pooling)
 * reads 32 consecutive floats as two vectors and separates their even and odd
 * positions with one permute each. Only defined when AVX-512 is compiled in; callers
 * keep their scalar path for other builds.
 */
#ifndef CNN_KERN_SIMD_H
#define CNN_KERN_SIMD_H

#if defined(__AVX512F__)
#include <immintrin.h>

/* Positions 0, 2, ..., 30 of the 32 floats lo:hi. */
static inline __m512 kern_simd_even(__m512 lo, __m512 hi) {
  const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(lo, idx, hi);
}

/* Positions 1, 3, ..., 31 of the 32 floats lo:hi. */
static inline __m512 kern_simd_odd(__m512 lo, __m512 hi) {
  const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  return _mm512_permutex2var_ps(lo, idx, hi);
}
#endif

#endif
