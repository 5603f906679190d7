/*
 * image_resize_avx2.c — AVX2 rows for the PIL-exact resampler (compiled to
 * nothing without __AVX2__; image_resize_pass.c then runs its scalar rows).
 *
 * Horizontal row: an output pixel is a dot product per channel over its
 * window of 4 * groups source pixels (image_resize.h). 16 bytes at the window
 * are shuffled to 4 x (R, G, B, 0), widened to int32 two pixels per register
 * and multiplied by the expanded weights (vpmulld: full 32-bit products, as
 * Pillow). The 128-bit halves of four outputs are then transposed and summed,
 * and the four pixels rounded, shifted, saturated to 0..255 (packs/packus
 * equal clip8 after the shift) and stored as 12 bytes by a 16-byte store whose
 * last 4 bytes the next store overwrites (tmp rows carry 4 spare bytes).
 * Vertical row: all taps of an output row share a weight, so 32 bytes at a
 * time are widened, multiplied by the broadcast weight and summed over taps;
 * the last len % 32 bytes are left to the scalar code.
 *
 * Same int32 sums, rounding and clamp as the scalar code: identical bytes.
 */
#include "image_resize.h"

#if RESIZE_SIMD
#include <immintrin.h>

#define RS_ROUND (1 << (RESIZE_PREC_BITS - 1))

/* Sums of one output: 8 lanes, two partial (R, G, B, 0) quads. */
static inline __m256i rs_hpixel(const uint8_t *p, const __m256i *kv, int groups) {
  const __m128i rgb0 = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
  __m256i acc = _mm256_setzero_si256();
  for (int g = 0; g < groups; g++, p += 12, kv += 2) {
    __m128i b = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), rgb0);
    __m256i lo = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), _mm256_load_si256(kv));
    __m256i hi = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)),
                                    _mm256_load_si256(kv + 1));
    acc = _mm256_add_epi32(acc, _mm256_add_epi32(lo, hi));
  }
  return acc;
}

/* Two outputs' final sums side by side: [a.q0 + a.q1, b.q0 + b.q1]. */
static inline __m256i rs_hpair(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                          _mm256_permute2x128_si256(a, b, 0x31));
}

static inline void rs_hquad(const uint8_t *row, const resize_coeffs_t *h, int x, uint8_t *d) {
  const __m128i pack = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 15, 15, 15);
  const __m256i round = _mm256_set1_epi32(RS_ROUND);
  const int *st = h->start + x;
  int g = h->groups;
  const __m256i *kv = (const __m256i *)h->kv + (size_t)x * g * 2;
  __m256i ab = rs_hpair(rs_hpixel(row + 3 * (size_t)st[0], kv, g),
                        rs_hpixel(row + 3 * (size_t)st[1], kv + 2 * g, g));
  __m256i ce = rs_hpair(rs_hpixel(row + 3 * (size_t)st[2], kv + 4 * g, g),
                        rs_hpixel(row + 3 * (size_t)st[3], kv + 6 * g, g));
  ab = _mm256_srai_epi32(_mm256_add_epi32(ab, round), RESIZE_PREC_BITS);
  ce = _mm256_srai_epi32(_mm256_add_epi32(ce, round), RESIZE_PREC_BITS);
  /* packs keeps 128-bit lanes: lane 0 = [a, c], lane 1 = [b, e] */
  __m256i w = _mm256_packus_epi16(_mm256_packs_epi32(ab, ce), _mm256_setzero_si256());
  __m128i px = _mm_unpacklo_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  _mm_storeu_si128((__m128i *)d, _mm_shuffle_epi8(px, pack));
}

void image__resize_hrow_avx2(const uint8_t *row, const resize_coeffs_t *h, uint8_t *d) {
  for (int x = 0; x < h->n; x += 4)
    rs_hquad(row, h, x, d + 3 * (size_t)x);
}

static inline __m256i rs_widen8(const uint8_t *p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* 32 bytes of an output row from n taps `stride` apart. */
static inline __m256i rs_vchunk(const uint8_t *p, size_t stride, const int32_t *k, int n) {
  __m256i a0 = _mm256_set1_epi32(RS_ROUND), a1 = a0, a2 = a0, a3 = a0;
  for (int t = 0; t < n; t++, p += stride) {
    __m256i w = _mm256_set1_epi32(k[t]);
    a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(rs_widen8(p), w));
    a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(rs_widen8(p + 8), w));
    a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(rs_widen8(p + 16), w));
    a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(rs_widen8(p + 24), w));
  }
  a0 = _mm256_srai_epi32(a0, RESIZE_PREC_BITS);
  a1 = _mm256_srai_epi32(a1, RESIZE_PREC_BITS);
  a2 = _mm256_srai_epi32(a2, RESIZE_PREC_BITS);
  a3 = _mm256_srai_epi32(a3, RESIZE_PREC_BITS);
  /* packs/packus interleave 128-bit lanes; the permute restores byte order */
  __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

int image__resize_vrow_avx2(const uint8_t *p, size_t stride, const int32_t *k, int n, int len,
                            uint8_t *d) {
  int i = 0;
  for (; i + 32 <= len; i += 32)
    _mm256_storeu_si256((__m256i *)(d + i), rs_vchunk(p + i, stride, k, n));
  return i;
}
#endif
