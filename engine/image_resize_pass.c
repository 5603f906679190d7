/*
 * image_resize_pass.c — the two passes of the PIL-exact resampler: the
 * scalar rows (Pillow's loops, one output pixel at a time) and the dispatch
 * to the AVX2 rows of image_resize_avx2.c when the build targets AVX2
 * (-march=native on this project's machines, x86-64-v3 in the Docker image).
 *
 * The horizontal pass takes the vector row when the coefficients have their
 * vector form (image_resize.h), else the scalar row; the vertical pass runs
 * the vector row over whole 32-byte chunks and the scalar code over the rest.
 * Both forms give identical bytes (tests/unit/test_image_resample.c checks
 * them against a plain transcription of Pillow). No allocation.
 */
#include "image_resize.h"

#define RS_ROUND (1 << (RESIZE_PREC_BITS - 1))

static inline uint8_t rs_clip8(int32_t v) {
  if (v >= (1 << RESIZE_PREC_BITS << 8))
    return 255;
  return v <= 0 ? 0 : (uint8_t)(v >> RESIZE_PREC_BITS);
}

static void rs_hrow_scalar(const uint8_t *row, const resize_coeffs_t *h, uint8_t *d) {
  for (int x = 0; x < h->n; x++) {
    const uint8_t *s = row + 3 * (size_t)h->bounds[2 * x];
    const int32_t *k = h->k + (size_t)x * h->ksize;
    int32_t s0 = RS_ROUND, s1 = s0, s2 = s0;
    for (int t = 0; t < h->bounds[2 * x + 1]; t++, s += 3) {
      s0 += s[0] * k[t];
      s1 += s[1] * k[t];
      s2 += s[2] * k[t];
    }
    d[3 * x] = rs_clip8(s0);
    d[3 * x + 1] = rs_clip8(s1);
    d[3 * x + 2] = rs_clip8(s2);
  }
}

void image__resize_hpass(const uint8_t *src, int sw, int sh, int y0, int rows,
                         const resize_coeffs_t *h, const uint8_t *last, uint8_t *tmp,
                         size_t tmp_stride) {
  for (int y = 0; y < rows; y++) {
    const uint8_t *row = src + (size_t)(y0 + y) * sw * 3;
    uint8_t *d = tmp + (size_t)y * tmp_stride;
#if RESIZE_SIMD
    if (h->groups) {
      image__resize_hrow_avx2(y0 + y == sh - 1 ? last : row, h, d);
      continue;
    }
#endif
    rs_hrow_scalar(row, h, d);
  }
}

/* Bytes [from, len) of one output row: n taps `stride` apart. */
static void rs_vrow_scalar(const uint8_t *p, size_t stride, const int32_t *k, int n, int from,
                           int len, uint8_t *d) {
  for (int i = from; i < len; i++) {
    int32_t s = RS_ROUND;
    for (int t = 0; t < n; t++)
      s += p[(size_t)t * stride + i] * k[t];
    d[i] = rs_clip8(s);
  }
}

void image__resize_vpass(const uint8_t *tmp, size_t tmp_stride, int len, int y_first,
                         const resize_coeffs_t *v, uint8_t *dst, size_t dst_stride) {
  for (int y = 0; y < v->n; y++) {
    const uint8_t *p = tmp + (size_t)(v->bounds[2 * y] - y_first) * tmp_stride;
    const int32_t *k = v->k + (size_t)y * v->ksize;
    int n = v->bounds[2 * y + 1], done = 0;
    uint8_t *d = dst + (size_t)y * dst_stride;
#if RESIZE_SIMD
    done = image__resize_vrow_avx2(p, tmp_stride, k, n, len, d);
#endif
    rs_vrow_scalar(p, tmp_stride, k, n, done, len, d);
  }
}
