/* test_image_hostile.c — hostile uploads fail fast with the right code and
 * leave nothing allocated (the ASan build checks leaks). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_testutil.h"

typedef struct {
  char name[48];
  int code;
} hostile_case_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

ParameterizedTestParameters(image_hostile, inputs) {
  static hostile_case_t cases[] = {
      {"bad_truncated.jpg", CNN_EIMAGE_INVALID},   {"bad_huge_header.jpg", CNN_EIMAGE_TOO_LARGE},
      {"bad_zero_width.jpg", CNN_EIMAGE_INVALID},  {"bad_wide.jpg", CNN_EIMAGE_TOO_LARGE},
      {"bad_crc.png", CNN_EIMAGE_INVALID},         {"bad_bomb.png", CNN_EIMAGE_TOO_LARGE},
      {"bad_truncated.webp", CNN_EIMAGE_INVALID},  {"bad_empty.bin", CNN_EMEDIA_UNSUPPORTED},
      {"bad_random.bin", CNN_EMEDIA_UNSUPPORTED},  {"bad_text.txt", CNN_EMEDIA_UNSUPPORTED},
      {"bad.gif", CNN_EMEDIA_UNSUPPORTED},         {"bad.bmp", CNN_EMEDIA_UNSUPPORTED},
      {"bad.tiff", CNN_EMEDIA_UNSUPPORTED},        {"bad.heic", CNN_EMEDIA_UNSUPPORTED},
  };
  return cr_make_param_array(hostile_case_t, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(hostile_case_t *c, image_hostile, inputs) {
  size_t len;
  uint8_t *buf = timg_read(c->name, &len);
  cnn_image_t img;
  cnn_error_t err = {0};
  cnn_preprocess_t pp;
  float *t = malloc(3 * 224 * 224 * sizeof *t);
  cnn_preprocess_default(&pp);
  double t0 = now_s();
  int rc = cnn_image_decode(buf, len, NULL, 0, &img, &err);
  int rc2 = cnn_image_to_tensor(buf, len, NULL, &pp, t, NULL);
  double dt = now_s() - t0;
  free(buf);
  free(t);
  cr_assert_eq(rc, c->code, "%s: got %s (%s), want %s", c->name, cnn_err_code(rc), err.msg,
               cnn_err_code(c->code));
  cr_assert_eq(rc2, c->code, "%s: to_tensor got %s", c->name, cnn_err_code(rc2));
  cr_assert_eq(err.code, c->code);
  cr_assert_null(img.rgb);
  cr_assert(dt < 0.5, "%s took %.3f s", c->name, dt);
  if (c->code == CNN_EMEDIA_UNSUPPORTED)
    cr_assert(strstr(err.msg, "JPEG, PNG, WebP"), "message lacks formats: %s", err.msg);
}

/* Every prefix of a valid file is an error or a full-size image, never a crash. */
Test(image_hostile, truncations_of_valid_files) {
  static const char *names[] = {"jpeg_progressive.jpg", "png_rgba_interlaced.png",
                                "webp_lossy.webp", "jpeg_420.jpg"};
  for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
    size_t len;
    uint8_t *data = timg_read(names[f], &len);
    for (size_t n = 0; n < len; n += 1 + n / 16) {
      uint8_t *buf = malloc(n ? n : 1);
      memcpy(buf, data, n);
      cnn_image_t img;
      int rc = cnn_image_decode(buf, n, NULL, 0, &img, NULL);
      cr_assert(rc < 0, "%s cut at %zu of %zu decoded", names[f], n, len);
      cr_assert_null(img.rgb);
      free(buf);
    }
    free(data);
  }
}

/* Limits are applied from the header: a tiny budget refuses a small file. */
Test(image_hostile, custom_limits) {
  static const char *names[] = {"jpeg_420.jpg", "png_rgb.png", "webp_lossless.webp"};
  cnn_image_limits_t lim;
  cnn_image_limits_default(&lim);
  for (size_t f = 0; f < 3; f++) {
    size_t len;
    uint8_t *data = timg_read(names[f], &len);
    cnn_image_t img;
    lim.max_side = 20;
    cr_assert_eq(cnn_image_decode(data, len, &lim, 0, &img, NULL), CNN_EIMAGE_TOO_LARGE);
    lim.max_side = 20000;
    lim.max_pixels = 100;
    cr_assert_eq(cnn_image_decode(data, len, &lim, 0, &img, NULL), CNN_EIMAGE_TOO_LARGE);
    lim.max_pixels = 40000000;
    free(data);
  }
}

/* Found by the daemon's Valgrind run: libjpeg-turbo accepted this header without
 * setting the sides, which were then read uninitialised (random 400 or 413). */
Test(image_hostile, jpeg_markers_then_zeros_is_invalid) {
  uint8_t buf[203] = {0xff, 0xd8, 0xff};
  cnn_image_t img;
  cnn_error_t err = {0};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(cnn_image_decode(buf, sizeof(buf), NULL, 0, &img, &err), CNN_EIMAGE_INVALID,
                 "got %s", err.msg);
    cr_assert_null(img.rgb);
  }
}
