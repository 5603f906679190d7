/*
 * fuzz_decode.c — libFuzzer target for the image intake: sniff, decode (all
 * three formats, EXIF, DCT scaling) and the full to-tensor path, under small
 * limits so hostile headers cannot make a run slow or memory-hungry.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static float tensor[3 * 64 * 64];
  cnn_image_limits_t lim = {.max_pixels = 1 << 20, .max_side = 4096, .apply_exif = 1};
  cnn_preprocess_t pp;
  cnn_image_t img;
  cnn_error_t err;
  cnn_preprocess_default(&pp);
  pp.resize_shorter = 72;
  pp.crop_h = pp.crop_w = 64;
  lim.apply_exif = size & 1;
  int min_shorter = size > 0 ? data[size - 1] % 64 : 0;
  if (cnn_image_decode(data, size, &lim, min_shorter, &img, &err) == 0) {
    if (cnn_image_preprocess(&img, &pp, tensor, &err) != 0)
      abort();
    cnn_image_free(&img);
  }
  cnn_image_to_tensor(data, size, &lim, &pp, tensor, &err);
  return 0;
}
