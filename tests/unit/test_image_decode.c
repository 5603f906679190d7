/* test_image_decode.c — every format and colour type decodes to PIL's
 * convert("RGB") pixels (references written by tests/image/make_inputs.py). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>

#include "image_testutil.h"

typedef struct {
  char name[48];
  cnn_image_format_t fmt;
  int max_diff;
} decode_case_t;

static void check_case(const decode_case_t *c) {
  cnn_image_t got, want;
  char ref[256];
  timg_decode(c->name, NULL, 0, &got);
  snprintf(ref, sizeof ref, "%s.ppm", c->name);
  timg_read_ppm(ref, &want);
  cr_assert_eq(got.format, c->fmt, "%s: format %s", c->name, cnn_image_format_name(got.format));
  timg_assert_close(&got, &want, c->max_diff, c->max_diff ? 0.5 : 0.0, c->name);
  cnn_image_free(&got);
  cnn_image_free(&want);
  cr_assert_null(got.rgb);
}

ParameterizedTestParameters(image_decode, formats) {
  static decode_case_t cases[] = {
      {"jpeg_444.jpg", CNN_FMT_JPEG, 0},
      {"jpeg_422.jpg", CNN_FMT_JPEG, 0},
      {"jpeg_420.jpg", CNN_FMT_JPEG, 0},
      {"jpeg_progressive.jpg", CNN_FMT_JPEG, 0},
      {"jpeg_gray.jpg", CNN_FMT_JPEG, 0},
      {"jpeg_cmyk_adobe.jpg", CNN_FMT_JPEG, 0},
      {"jpeg_ycck.jpg", CNN_FMT_JPEG, 0},
      {"png_rgb.png", CNN_FMT_PNG, 0},
      {"png_rgba.png", CNN_FMT_PNG, 0},
      {"png_gray.png", CNN_FMT_PNG, 0},
      {"png_gray1.png", CNN_FMT_PNG, 0},
      {"png_gray_alpha.png", CNN_FMT_PNG, 0},
      {"png_palette_trns.png", CNN_FMT_PNG, 0},
      {"png_rgb16.png", CNN_FMT_PNG, 0},
      {"png_gray16.png", CNN_FMT_PNG, 0},
      {"png_rgb_interlaced.png", CNN_FMT_PNG, 0},
      {"png_rgba_interlaced.png", CNN_FMT_PNG, 0},
      {"webp_lossy.webp", CNN_FMT_WEBP, 0},
      {"webp_lossless.webp", CNN_FMT_WEBP, 0},
      {"webp_lossy_alpha.webp", CNN_FMT_WEBP, 0},
      {"webp_lossless_alpha.webp", CNN_FMT_WEBP, 0},
  };
  return cr_make_param_array(decode_case_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(decode_case_t *c, image_decode, formats) { check_case(c); }

Test(image_decode, sniff_and_names) {
  static const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xE0}, png[] = {0x89, 'P', 'N', 'G', '\r', '\n',
                                                                  0x1a, '\n'};
  cr_assert_eq(cnn_image_sniff(jpg, sizeof jpg), CNN_FMT_JPEG);
  cr_assert_eq(cnn_image_sniff(jpg, 2), CNN_FMT_UNKNOWN);
  cr_assert_eq(cnn_image_sniff(png, sizeof png), CNN_FMT_PNG);
  cr_assert_eq(cnn_image_sniff("RIFF\0\0\0\0WEBPVP8 ", 16), CNN_FMT_WEBP);
  cr_assert_eq(cnn_image_sniff("RIFF\0\0\0\0WAVEfmt ", 16), CNN_FMT_UNKNOWN);
  cr_assert_eq(cnn_image_sniff(NULL, 0), CNN_FMT_UNKNOWN);
  cr_assert_str_eq(cnn_image_format_name(CNN_FMT_WEBP), "WebP");
  cr_assert_str_eq(cnn_image_format_name(CNN_FMT_UNKNOWN), "unknown");
}

Test(image_decode, limits_default) {
  cnn_image_limits_t lim;
  cnn_image_limits_default(&lim);
  cr_assert_eq(lim.max_pixels, 40000000);
  cr_assert_eq(lim.max_side, 20000);
  cr_assert_eq(lim.apply_exif, 1);
}

/* DCT-domain scaling: the shorter side never drops below min_shorter. */
Test(image_decode, dct_scaling_respects_min_shorter) {
  static const struct {
    int min_shorter, w, h;
  } cases[] = {{0, 67, 45}, {40, 67, 45}, {23, 34, 23}, {12, 17, 12}, {6, 9, 6}, {1, 9, 6}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cnn_image_t img;
    timg_decode("jpeg_420.jpg", NULL, cases[i].min_shorter, &img);
    cr_assert(img.width == cases[i].w && img.height == cases[i].h, "min %d: got %dx%d",
              cases[i].min_shorter, img.width, img.height);
    cnn_image_free(&img);
  }
}

/* Every shared photo decodes (skipped when ../shared/data is absent). */
Test(image_decode, shared_photos) {
  const char *dir = timg_shared_dir();
  if (!dir)
    cr_skip_test("../shared/data is absent: shared photo decode test skipped");
  static const char *names[] = {"photos/cat.jpg",      "photos/cat.png",    "photos/cat_gray.jpg",
                                "photos/coffee.jpg",   "photos/dog.jpg",    "photos/fish-bike.jpg",
                                "photos/grace_hopper.jpg", "photos/cat2.jpg"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[4096];
    size_t len;
    cnn_image_t img;
    cnn_error_t err;
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    uint8_t *buf = timg_read_path(path, &len);
    int rc = cnn_image_decode(buf, len, NULL, 0, &img, &err);
    free(buf);
    cr_assert_eq(rc, 0, "%s: %s", names[i], err.msg);
    cr_assert(img.width > 0 && img.height > 0);
    cnn_image_free(&img);
  }
}
