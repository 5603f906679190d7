/* test_image_resample.c — image__resample_window (vector rows where the build
 * has them) byte for byte against a plain transcription of Pillow's
 * ImagingResample: fixed-point coefficients, horizontal pass over the whole
 * image into an 8-bit intermediate, then vertical, one pixel at a time.
 * Random sizes, down- and upscales, identity sides, windows anywhere (the
 * window edges and the image's last row are where the vector loads need care),
 * source buffers allocated to the exact byte so ASan sees any overread. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

#define REF_PREC 22

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for one pass. */
static int ref_coeffs(int in, int out, int **bounds, int32_t **k) {
  double scale = (double)in / out, fs = scale < 1 ? 1 : scale;
  int ksize = (int)ceil(fs) * 2 + 1;
  *bounds = calloc((size_t)out * 2, sizeof **bounds);
  *k = calloc((size_t)out * ksize, sizeof **k);
  cr_assert(*bounds && *k);
  for (int i = 0; i < out; i++) {
    double center = (i + 0.5) * scale, w[1024], ww = 0;
    int lo = (int)(center - fs + 0.5), hi = (int)(center + fs + 0.5);
    lo = lo < 0 ? 0 : lo;
    hi = (hi > in ? in : hi) - lo;
    cr_assert(hi <= ksize && hi < 1024);
    for (int x = 0; x < hi; x++) {
      w[x] = fmax(0, 1 - fabs((x + lo - center + 0.5) / fs));
      ww += w[x];
    }
    for (int x = 0; x < hi; x++) {
      double v = ww != 0 ? w[x] / ww : 0;
      double f = v * (1 << REF_PREC);
      (*k)[i * ksize + x] = (int32_t)(v < 0 ? f - 0.5 : f + 0.5);
    }
    (*bounds)[2 * i] = lo;
    (*bounds)[2 * i + 1] = hi;
  }
  return ksize;
}

static uint8_t ref_clip(int32_t v) {
  return v >= (1 << REF_PREC << 8) ? 255 : v <= 0 ? 0 : (uint8_t)(v >> REF_PREC);
}

/* One pass along an axis: `step` bytes between taps, `line` bytes between lines. */
static uint8_t *ref_pass(const uint8_t *src, int w, int h, int out, int horizontal) {
  int in = horizontal ? w : h, ow = horizontal ? out : w, oh = horizontal ? h : out;
  uint8_t *dst = malloc((size_t)ow * oh * 3);
  cr_assert_not_null(dst);
  if (in == out) {
    memcpy(dst, src, (size_t)w * h * 3);
    return dst;
  }
  int *b;
  int32_t *k;
  int ksize = ref_coeffs(in, out, &b, &k);
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++)
      for (int c = 0; c < 3; c++) {
        int i = horizontal ? x : y;
        int32_t s = 1 << (REF_PREC - 1);
        for (int t = 0; t < b[2 * i + 1]; t++) {
          int sx = horizontal ? b[2 * i] + t : x, sy = horizontal ? y : b[2 * i] + t;
          s += src[((size_t)sy * w + sx) * 3 + c] * k[i * ksize + t];
        }
        dst[((size_t)y * ow + x) * 3 + c] = ref_clip(s);
      }
  free(b);
  free(k);
  return dst;
}

static uint32_t rnd_state = 12345;
static int rnd(int n) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (int)((rnd_state >> 8) % (uint32_t)n);
}

/* The window [x0, x0 + ww) x [y0, y0 + wh) of sw x sh -> rw x rh, both ways. */
static void check_case(int sw, int sh, int rw, int rh, int x0, int y0, int ww, int wh) {
  uint8_t *src = malloc((size_t)sw * sh * 3);
  cr_assert_not_null(src);
  for (size_t i = 0; i < (size_t)sw * sh * 3; i++)
    src[i] = (uint8_t)(rnd(4) ? rnd(256) : rnd(2) * 255); /* extremes exercise the clamp */
  uint8_t *mid = ref_pass(src, sw, sh, rw, 1), *want = ref_pass(mid, rw, sh, rh, 0);
  size_t stride = (size_t)ww * 3 + 5; /* not a multiple of anything */
  uint8_t *got = malloc(stride * wh);
  cr_assert_not_null(got);
  cr_assert_eq(image__resample_window(src, sw, sh, rw, rh, x0, y0, ww, wh, got, stride, NULL), 0);
  for (int y = 0; y < wh; y++)
    for (int x = 0; x < ww * 3; x++)
      cr_assert_eq(got[y * stride + x], want[((size_t)(y0 + y) * rw + x0) * 3 + x],
                   "%dx%d -> %dx%d window (%d,%d) %dx%d: byte %d of row %d", sw, sh, rw, rh, x0,
                   y0, ww, wh, x, y);
  free(src);
  free(mid);
  free(want);
  free(got);
}

Test(image_resample, imagenet_geometry_is_exact) {
  check_case(500, 375, 341, 256, 58, 16, 224, 224); /* the ImageNet sample case */
  check_case(375, 500, 256, 341, 16, 58, 224, 224);
  check_case(1000, 750, 341, 256, 58, 16, 224, 224); /* 4000x3000 after DCT scaling */
}

Test(image_resample, random_windows_are_exact) {
  for (int i = 0; i < 300; i++) {
    int sw = 1 + rnd(i < 150 ? 40 : 400), sh = 1 + rnd(i < 150 ? 40 : 300);
    int mode = rnd(4); /* 0: downscale, 1: upscale, 2: identity width, 3: anything */
    int rw = mode == 2 ? sw : mode == 0 ? 1 + rnd(sw) : mode == 1 ? sw + rnd(60) : 1 + rnd(300);
    int rh = mode == 1 ? sh + rnd(60) : 1 + rnd(mode == 0 ? sh : 200);
    int ww = 1 + rnd(rw), wh = 1 + rnd(rh);
    check_case(sw, sh, rw, rh, rnd(rw - ww + 1), rnd(rh - wh + 1), ww, wh);
  }
}

Test(image_resample, large_downscale_and_tiny_sources) {
  check_case(3000, 40, 41, 40, 0, 0, 41, 40); /* 73 taps per output */
  check_case(40, 2000, 40, 23, 3, 5, 30, 17);
  check_case(1, 1, 224, 224, 0, 0, 224, 224);
  check_case(3, 2, 7, 5, 1, 1, 6, 4);
  check_case(5, 9, 2, 3, 0, 0, 2, 3);
}
