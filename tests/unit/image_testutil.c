/* image_testutil.c — see image_testutil.h. */
#include "image_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

uint8_t *timg_read_path(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  cr_assert_not_null(buf);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read on %s", path);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static const char *timg_dir(void) {
  const char *d = getenv("CNN_TEST_IMAGES");
  struct stat st;
  if (!d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
    cr_assert_fail("generated test images are missing: set CNN_TEST_IMAGES to the folder written by "
             "tests/image/make_inputs.py (make unit does this: build/test-images)");
  return d;
}

uint8_t *timg_read(const char *name, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", timg_dir(), name);
  return timg_read_path(path, len);
}

const char *timg_shared_dir(void) {
  static char path[4096];
  const char *d = getenv("CNN_SHARED_DATA");
  struct stat st;
  snprintf(path, sizeof path, "%s", d ? d : "../shared/data");
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : NULL;
}

void timg_read_ppm(const char *name, cnn_image_t *img) {
  size_t len;
  uint8_t *buf = timg_read(name, &len);
  int w = 0, h = 0, maxval = 0, off = 0;
  cr_assert_eq(sscanf((char *)buf, "P6 %d %d %d%n", &w, &h, &maxval, &off), 3, "%s: bad PPM", name);
  off++; /* the single whitespace after maxval */
  cr_assert(maxval == 255 && w > 0 && h > 0 && (size_t)off + (size_t)w * h * 3 <= len);
  img->width = w;
  img->height = h;
  img->format = CNN_FMT_UNKNOWN;
  img->rgb = malloc((size_t)w * h * 3);
  cr_assert_not_null(img->rgb);
  memcpy(img->rgb, buf + off, (size_t)w * h * 3);
  free(buf);
}

void timg_assert_close(const cnn_image_t *got, const cnn_image_t *want, int max_diff,
                       double mean_diff, const char *what) {
  cr_assert_eq(got->width, want->width, "%s: width %d, want %d", what, got->width, want->width);
  cr_assert_eq(got->height, want->height, "%s: height %d, want %d", what, got->height,
               want->height);
  size_t n = (size_t)got->width * got->height * 3;
  int mx = 0;
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)got->rgb[i] - (int)want->rgb[i]);
    mx = d > mx ? d : mx;
    sum += d;
  }
  cr_assert(mx <= max_diff && sum / n <= mean_diff, "%s: max diff %d (allowed %d), mean %.3f",
            what, mx, max_diff, sum / n);
}

void timg_decode(const char *name, const cnn_image_limits_t *lim, int min_shorter,
                 cnn_image_t *out) {
  size_t len;
  cnn_error_t err = {0};
  uint8_t *buf = timg_read(name, &len);
  int rc = cnn_image_decode(buf, len, lim, min_shorter, out, &err);
  free(buf);
  cr_assert_eq(rc, 0, "%s: %s (%s)", name, cnn_err_code(rc), err.msg);
}
