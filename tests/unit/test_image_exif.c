/* test_image_exif.c — EXIF orientations 1..8 match PIL's exif_transpose, and
 * apply_exif = 0 leaves the stored pixels alone. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "image_testutil.h"

static void check_orientation(int o, int apply) {
  char name[64], ref[80];
  cnn_image_limits_t lim;
  cnn_image_t got, want;
  cnn_image_limits_default(&lim);
  lim.apply_exif = apply;
  snprintf(name, sizeof name, "exif_%d.jpg", o);
  snprintf(ref, sizeof ref, "%s%s", name, apply ? ".ppm" : ".raw.ppm");
  timg_decode(name, &lim, 0, &got);
  timg_read_ppm(ref, &want);
  timg_assert_close(&got, &want, 0, 0.0, ref);
  cnn_image_free(&got);
  cnn_image_free(&want);
}

Test(image_exif, orientations_match_pil) {
  for (int o = 1; o <= 8; o++)
    check_orientation(o, 1);
}

Test(image_exif, disabled_keeps_stored_pixels) {
  for (int o = 1; o <= 8; o++)
    check_orientation(o, 0);
}

/* Hostile APP1 segments: lengths and offsets that point outside the data. */
Test(image_exif, hostile_segments_are_ignored) {
  static const uint8_t cases[][40] = {
      {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x', 'i', 'f', 0, 0},
      {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0x7F, 0xFF,
       0xFF, 0xFF},
      {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x12, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0,
       0xFF, 0xFF},
      {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x08, 'E', 'x', 'i', 'f', 0, 0},
      {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (size_t len = 0; len <= sizeof cases[i]; len++) {
      /* Exact-length heap copies so ASan sees any read past the end. */
      uint8_t *buf = malloc(len ? len : 1);
      memcpy(buf, cases[i], len);
      cr_assert_eq(image__exif_orientation(buf, len), 1, "case %zu len %zu", i, len);
      free(buf);
    }
  }
}

/* Every prefix of a real orientation-6 file parses without reading past it. */
Test(image_exif, prefixes_of_real_file) {
  size_t len;
  uint8_t *data = timg_read("exif_6.jpg", &len);
  cr_assert_eq(image__exif_orientation(data, len), 6);
  for (size_t n = 0; n < len && n < 512; n++) {
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, data, n);
    int o = image__exif_orientation(buf, n);
    cr_assert(o == 1 || o == 6);
    free(buf);
  }
  free(data);
}
