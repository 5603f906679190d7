/* test_image_pixels.c — the per-thread pixel buffer cnn_image_to_tensor lends the
 * decoders (engine/image_pixels.c): reused while lending, one at a time, never for
 * others or beyond IMAGE_PIXELS_KEEP; and the one-call path still equal to decode +
 * preprocess, call after call, on every decoder's paths (CMYK shrink, EXIF rotation,
 * errors) and on a thread that then exits. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "image_testutil.h"

Test(image_pixels, lent_buffer_is_kept_and_reused) {
  image__pixels_lend(1);
  uint8_t *a = image__pixels_alloc(1000);
  cr_assert_not_null(a);
  uint8_t *b = image__pixels_alloc(1000); /* a is in use: b is a block of its own */
  cr_assert_not_null(b);
  cr_assert_neq(a, b);
  memset(a, 1, 1000);
  memset(b, 2, 1000);
  image__pixels_free(b);
  image__pixels_free(a);
  uint8_t *c = image__pixels_alloc(600); /* fits the kept one */
  cr_assert_eq(c, a);
  image__pixels_free(c);
  uint8_t *big = image__pixels_alloc((size_t)IMAGE_PIXELS_KEEP + 1); /* too big to keep */
  cr_assert_not_null(big);
  big[IMAGE_PIXELS_KEEP] = 3;
  image__pixels_free(big);
  uint8_t *d = image__pixels_alloc(700);
  cr_assert_eq(d, a, "a request too big to keep must not replace the kept buffer");
  uint8_t *same = image__pixels_shrink(d, 100); /* a lent buffer is not reallocated */
  cr_assert_eq(same, d);
  image__pixels_free(same);
  image__pixels_lend(0);
  uint8_t *e = image__pixels_alloc(600); /* not lending: never the kept buffer */
  cr_assert_not_null(e);
  cr_assert_neq(e, a);
  e = image__pixels_shrink(e, 10);
  cr_assert_not_null(e);
  image__pixels_free(e);
}

Test(image_pixels, kept_buffer_grows) {
  image__pixels_lend(1);
  uint8_t *a = image__pixels_alloc(64);
  image__pixels_free(a);
  uint8_t *b = image__pixels_alloc(256 * 1024); /* larger: a new kept buffer, all usable */
  cr_assert_not_null(b);
  memset(b, 7, 256 * 1024);
  image__pixels_free(b);
  uint8_t *c = image__pixels_alloc(1000);
  cr_assert_eq(c, b);
  image__pixels_free(c);
  image__pixels_lend(0);
}

/* The one-call path against decode + preprocess, twice in a row (the second with the
 * thread's buffer kept from the first, holding the first call's pixels). */
static void to_tensor_twice(const char *name, int want_rc) {
  size_t len;
  uint8_t *data = timg_read(name, &len);
  cnn_preprocess_t pp;
  cnn_preprocess_default(&pp);
  size_t n = 3 * 224 * 224;
  float *a = malloc(3 * n * sizeof *a), *b = a + n, *c = b + n;
  cr_assert_not_null(a);
  cnn_error_t err = {0};
  int rc = cnn_image_to_tensor(data, len, NULL, &pp, a, &err);
  cr_assert_eq(rc, want_rc, "%s: %d (%s)", name, rc, err.msg);
  cr_assert_eq(cnn_image_to_tensor(data, len, NULL, &pp, b, NULL), want_rc, "%s, again", name);
  if (want_rc == 0) {
    cnn_image_t img;
    cr_assert_eq(cnn_image_decode(data, len, NULL, 0, &img, NULL), 0);
    cr_assert_eq(cnn_image_preprocess(&img, &pp, c, NULL), 0);
    cnn_image_free(&img);
    cr_assert_eq(memcmp(a, c, n * sizeof *a), 0, "%s: one call differs from two steps", name);
    cr_assert_eq(memcmp(b, c, n * sizeof *b), 0, "%s: second call differs", name);
  }
  free(a);
  free(data);
}

Test(image_pixels, to_tensor_on_every_path) {
  static const char *ok[] = {"jpeg_420.jpg", "jpeg_cmyk_adobe.jpg", "jpeg_ycck.jpg",
                             "jpeg_progressive.jpg", "exif_6.jpg", "exif_3.jpg",
                             "png_rgb.png", "png_rgba_interlaced.png", "webp_lossy.webp",
                             "jpeg_gray.jpg", "jpeg_420.jpg"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    to_tensor_twice(ok[i], 0);
    to_tensor_twice("bad_truncated.jpg", CNN_EIMAGE_INVALID); /* errors give it back too */
  }
}

static void *to_tensor_thread(void *arg) {
  (void)arg;
  to_tensor_twice("jpeg_444.jpg", 0);
  return NULL;
}

/* A thread's kept buffer is freed when it exits (LeakSanitizer in make unit-asan). */
Test(image_pixels, thread_exit_frees_its_buffer) {
  for (int i = 0; i < 3; i++) {
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, to_tensor_thread, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
  }
}

/* cnn_image_to_tensor decodes into the thread's kept buffer: afterwards the thread
 * holds one big enough for that image, so asking for as much gets the same buffer a
 * small request gets. */
Test(image_pixels, to_tensor_lends_the_kept_buffer) {
  size_t len;
  uint8_t *data = timg_read("jpeg_420.jpg", &len);
  cnn_image_t img;
  cr_assert_eq(cnn_image_decode(data, len, NULL, 0, &img, NULL), 0);
  size_t bytes = (size_t)img.width * (size_t)img.height * 3;
  cnn_image_free(&img);
  cnn_preprocess_t pp;
  cnn_preprocess_default(&pp);
  float *t = malloc(3 * 224 * 224 * sizeof *t);
  cr_assert_eq(cnn_image_to_tensor(data, len, NULL, &pp, t, NULL), 0);
  image__pixels_lend(1);
  uint8_t *small = image__pixels_alloc(1);
  image__pixels_free(small);
  uint8_t *whole = image__pixels_alloc(bytes);
  cr_assert_eq(whole, small, "no buffer of %zu bytes kept by cnn_image_to_tensor", bytes);
  image__pixels_free(whole);
  image__pixels_lend(0);
  free(t);
  free(data);
}
