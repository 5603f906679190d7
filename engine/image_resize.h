/*
 * image_resize.h — internals of the PIL-exact resampler shared by its two
 * files: image_resize.c (coefficient tables, window planning) and
 * image_resize_pass.c (the horizontal and vertical pass kernels).
 *
 * Arithmetic contract (Pillow's Resample.c): weights are 22-bit fixed point,
 * sums are int32 starting at 1 << 21, results are clamped to 0..255 after an
 * arithmetic shift by 22. The vector kernels do exactly these integer
 * operations, so they give the same bytes as the scalar ones.
 */
#ifndef CNN_IMAGE_RESIZE_H
#define CNN_IMAGE_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#define RESIZE_PREC_BITS 22
/* Lanes of one vector tap group: 4 taps x (R, G, B, unused). */
#define RESIZE_GROUP_LANES 16

/* The vector rows (image_resize_avx2.c) exist when the build targets AVX2. */
#if defined(__AVX2__)
#define RESIZE_SIMD 1
#else
#define RESIZE_SIMD 0
#endif

typedef struct {
  int n;         /* outputs */
  int ksize;     /* table stride of k */
  int *bounds;   /* per output: first input index, tap count */
  int32_t *k;    /* n x ksize fixed-point weights */
  /* Vector form, horizontal pass only (groups == 0: not available). Outputs
   * are padded to a multiple of 4 by repeating the last one. Each output's
   * window is moved left when needed so that it holds 4 * groups whole pixels
   * inside the row; the weights are shifted with it (zeros elsewhere). */
  int groups;    /* 4-tap groups per output */
  int *start;    /* per padded output: first input pixel of its window */
  int32_t *kv;   /* per padded output: groups x 16 lanes, 64-byte aligned */
} resize_coeffs_t;

/* Horizontal pass over `rows` source rows from y0: ww = h->n outputs per row
 * into tmp (tmp_stride bytes per row). With the vector form (h->groups > 0,
 * only built when RESIZE_SIMD), tmp rows need round_up(ww, 4) * 3 + 4
 * bytes, and `last` must be a copy of the source's last row followed by 16
 * spare bytes (vector loads may read up to 4 bytes
 * past a pixel window; only the image's last row has nothing after it). */
void image__resize_hpass(const uint8_t *src, int sw, int sh, int y0, int rows,
                         const resize_coeffs_t *h, const uint8_t *last, uint8_t *tmp,
                         size_t tmp_stride);

/* Vertical pass: output row y (0 <= y < v->n) from tmp rows starting at
 * v->bounds[2y] - y_first; `len` bytes per row (3 x window width). */
void image__resize_vpass(const uint8_t *tmp, size_t tmp_stride, int len, int y_first,
                         const resize_coeffs_t *v, uint8_t *dst, size_t dst_stride);

/* AVX2 rows (RESIZE_SIMD only). hrow: all h->n outputs (padded to 4) of one
 * row, vector form required. vrow: the whole 32-byte chunks of `len` bytes;
 * returns how many bytes it wrote. */
void image__resize_hrow_avx2(const uint8_t *row, const resize_coeffs_t *h, uint8_t *d);
int image__resize_vrow_avx2(const uint8_t *p, size_t stride, const int32_t *k, int n, int len,
                            uint8_t *d);

#endif
