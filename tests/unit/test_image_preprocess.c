/* test_image_preprocess.c — torchvision geometry (resize rule, center crop
 * with half-to-even offsets, zero padding), channel order, scales, and the
 * resampler against a naive double-precision PIL reference. Pixel-level
 * agreement with torchvision itself is tests/diff/test_preprocess.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "image_testutil.h"

static cnn_image_t make_image(int w, int h, unsigned seed) {
  cnn_image_t img = {w, h, malloc((size_t)w * h * 3), CNN_FMT_UNKNOWN};
  cr_assert_not_null(img.rgb);
  for (size_t i = 0; i < (size_t)w * h * 3; i++)
    img.rgb[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
  return img;
}

Test(image_preprocess, defaults_are_imagenet) {
  cnn_preprocess_t pp;
  cnn_preprocess_default(&pp);
  cr_assert_eq(pp.resize_shorter, 256);
  cr_assert(pp.crop_h == 224 && pp.crop_w == 224 && pp.bgr == 0);
  cr_assert_float_eq(pp.mean[1], 0.456f, 1e-7);
  cr_assert_float_eq(pp.std[2], 0.225f, 1e-7);
  cr_assert_float_eq(pp.scale, 1.0f / 255, 1e-9);
}

/* A constant image stays constant through any resize. */
Test(image_preprocess, constant_image_any_size) {
  static const int sizes[][2] = {{1, 1}, {31, 17}, {17, 31}, {1000, 10}, {10, 1000}, {300, 301}};
  cnn_preprocess_t pp;
  cnn_preprocess_default(&pp);
  float *t = malloc(3 * 224 * 224 * sizeof *t);
  for (size_t s = 0; s < 6; s++) {
    cnn_image_t img = make_image(sizes[s][0], sizes[s][1], 0);
    for (size_t i = 0; i < (size_t)img.width * img.height; i++)
      memcpy(img.rgb + 3 * i, (uint8_t[]){10, 128, 250}, 3);
    cr_assert_eq(cnn_image_preprocess(&img, &pp, t, NULL), 0);
    for (int c = 0; c < 3; c++) {
      float want = ((c == 0 ? 10 : c == 1 ? 128 : 250) / 255.0f - pp.mean[c]) / pp.std[c];
      for (int i = 0; i < 224 * 224; i++)
        cr_assert_float_eq(t[c * 224 * 224 + i], want, 1e-5, "size %d", (int)s);
    }
    cnn_image_free(&img);
  }
  free(t);
}

/* Crop-only: offsets round half to even, as Python's round() does. */
Test(image_preprocess, crop_only_offsets_and_bgr) {
  cnn_preprocess_t pp = {0, 4, 4, {0, 0, 0}, {1, 1, 1}, 1, 1.0f};
  float t[3 * 16];
  static const int sizes[][4] = {{9, 7, 2, 2}, {11, 5, 4, 0}, {4, 4, 0, 0}, {7, 13, 2, 4}};
  for (int s = 0; s < 4; s++) {
    cnn_image_t img = make_image(sizes[s][0], sizes[s][1], 7);
    cr_assert_eq(cnn_image_preprocess(&img, &pp, t, NULL), 0);
    for (int y = 0; y < 4; y++)
      for (int x = 0; x < 4; x++)
        for (int c = 0; c < 3; c++) {
          size_t src = ((size_t)(y + sizes[s][3]) * img.width + x + sizes[s][2]) * 3 + (2 - c);
          cr_assert_float_eq(t[c * 16 + y * 4 + x], img.rgb[src], 1e-6, "size %d", s);
        }
    cnn_image_free(&img);
  }
}

/* Crop larger than the image: zero padding, (crop - size) // 2 before. */
Test(image_preprocess, padding_is_zero_pixels) {
  cnn_preprocess_t pp = {0, 5, 6, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, 0, 1.0f / 255};
  float t[3 * 30];
  cnn_image_t img = make_image(3, 2, 3);
  cr_assert_eq(cnn_image_preprocess(&img, &pp, t, NULL), 0);
  for (int y = 0; y < 5; y++)
    for (int x = 0; x < 6; x++) {
      int sx = x - 1, sy = y - 1, inside = sx >= 0 && sx < 3 && sy >= 0 && sy < 2;
      float v = inside ? img.rgb[(sy * 3 + sx) * 3 + 1] / 255.0f : 0.0f;
      cr_assert_float_eq(t[30 + y * 6 + x], (v - 0.5f) / 0.5f, 1e-5, "(%d,%d)", x, y);
    }
  cnn_image_free(&img);
}

/* Naive PIL bilinear reduce of one axis in doubles (no 8-bit rounding). */
static double naive_tap(const cnn_image_t *img, int horizontal, int line, int i, int out, int c) {
  int in = horizontal ? img->width : img->height;
  double scale = (double)in / out, fs = scale < 1 ? 1 : scale, center = (i + 0.5) * scale;
  int lo = (int)(center - fs + 0.5), hi = (int)(center + fs + 0.5);
  double sum = 0, ws = 0;
  for (int x = lo < 0 ? 0 : lo; x < (hi > in ? in : hi); x++) {
    double w = fmax(0, 1 - fabs((x - center + 0.5) / fs));
    int px = horizontal ? line * img->width + x : x * img->width + line;
    sum += w * img->rgb[3 * px + c];
    ws += w;
  }
  return sum / ws;
}

Test(image_preprocess, resample_matches_naive_reference) {
  cnn_image_t img = make_image(53, 1, 11);
  uint8_t out[20 * 3];
  static const int outs[] = {1, 7, 20, 53};
  for (int k = 0; k < 4; k++) {
    int ow = outs[k];
    cr_assert_eq(image__resample_window(img.rgb, 53, 1, ow, 1, 0, 0, ow > 20 ? 20 : ow, 1, out,
                                        sizeof out, NULL), 0);
    for (int i = 0; i < (ow > 20 ? 20 : ow); i++)
      for (int c = 0; c < 3; c++)
        cr_assert(fabs(out[3 * i + c] - naive_tap(&img, 1, 0, i, ow, c)) <= 0.5 + 1e-6,
                  "out %d px %d: %d vs %.3f", ow, i, out[3 * i + c], naive_tap(&img, 1, 0, i, ow, c));
  }
  cnn_image_free(&img);
}

Test(image_preprocess, rejects_bad_arguments) {
  cnn_preprocess_t pp;
  cnn_error_t err;
  float t[3];
  cnn_image_t img = make_image(2, 2, 0), empty = {0};
  cnn_preprocess_default(&pp);
  pp.std[1] = 0;
  cr_assert_eq(cnn_image_preprocess(&img, &pp, t, &err), CNN_EINVAL);
  cnn_preprocess_default(&pp);
  pp.crop_w = 0;
  cr_assert_eq(cnn_image_preprocess(&img, &pp, t, &err), CNN_EINVAL);
  cr_assert_eq(cnn_image_preprocess(&empty, &pp, t, &err), CNN_EINVAL);
  cnn_image_free(&img);
}

/* The one-call path equals decode + preprocess for an image too small to scale. */
Test(image_preprocess, to_tensor_equals_two_steps) {
  size_t len;
  uint8_t *data = timg_read("jpeg_420.jpg", &len);
  cnn_preprocess_t pp;
  cnn_image_t img;
  cnn_preprocess_default(&pp);
  float *a = malloc(2 * 3 * 224 * 224 * sizeof *a), *b = a + 3 * 224 * 224;
  cr_assert_eq(cnn_image_to_tensor(data, len, NULL, &pp, a, NULL), 0);
  cr_assert_eq(cnn_image_decode(data, len, NULL, 0, &img, NULL), 0);
  cr_assert_eq(cnn_image_preprocess(&img, &pp, b, NULL), 0);
  cr_assert_eq(memcmp(a, b, 3 * 224 * 224 * sizeof *a), 0);
  cnn_image_free(&img);
  free(a);
  free(data);
}
