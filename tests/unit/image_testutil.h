/* image_testutil.h — helpers for the image tests: locating generated inputs
 * (env CNN_TEST_IMAGES, produced by tests/image/make_inputs.py) and the shared
 * photos, reading files and PPM references, and comparing pixels. */
#ifndef IMAGE_TESTUTIL_H
#define IMAGE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"

/* Reads $CNN_TEST_IMAGES/name; fails the test with a clear message when the
 * folder or file is missing. Caller frees. */
uint8_t *timg_read(const char *name, size_t *len);
/* Path of the shared data folder (../shared/data or $CNN_SHARED_DATA), or
 * NULL when absent. */
const char *timg_shared_dir(void);
uint8_t *timg_read_path(const char *path, size_t *len);
/* Loads a binary PPM (P6, maxval 255) into img (format unknown). */
void timg_read_ppm(const char *name, cnn_image_t *img);
/* Asserts equal sides and pixel differences within max_diff / mean_diff. */
void timg_assert_close(const cnn_image_t *got, const cnn_image_t *want, int max_diff,
                       double mean_diff, const char *what);
/* Decodes $CNN_TEST_IMAGES/name with default limits (asserting success). */
void timg_decode(const char *name, const cnn_image_limits_t *lim, int min_shorter,
                 cnn_image_t *out);

#endif
