/*
 * image_internal.h — shared pieces of the image intake (decoders, EXIF,
 * resampling). Not part of the public API; names carry the image__ prefix.
 *
 * Every decoder follows the same contract: check the header's dimensions
 * against the limits before decoding a row (image__check_dims), allocate the
 * packed RGB output with image__alloc, and on any error leave `out` empty
 * (rgb == NULL) with nothing leaked.
 */
#ifndef CNN_IMAGE_INTERNAL_H
#define CNN_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"

/* 0 when w x h is inside `lim`; CNN_EIMAGE_INVALID for zero/negative sides,
 * CNN_EIMAGE_TOO_LARGE otherwise. `fmt` names the format in the message. */
int image__check_dims(int64_t w, int64_t h, const cnn_image_limits_t *lim, const char *fmt,
                      cnn_error_t *err);
/* Allocates img->rgb for w x h packed RGB (image__pixels_alloc) and sets the sides. */
int image__alloc(cnn_image_t *img, int w, int h, cnn_image_format_t fmt, cnn_error_t *err);

/* Pixel buffers (image_pixels.c). Every decoded image's rgb comes from
 * image__pixels_alloc and goes back through image__pixels_free (cnn_image_free).
 * While the calling thread lends (image__pixels_lend(1): cnn_image_to_tensor around its
 * decode), one request of at most IMAGE_PIXELS_KEEP bytes gets the thread's own
 * buffer, kept from call to call; all others are malloc'd. image__pixels_shrink is
 * realloc, but leaves a lent buffer as it is. */
enum { IMAGE_PIXELS_KEEP = 4 << 20 };
void image__pixels_lend(int on);
uint8_t *image__pixels_alloc(size_t bytes);
uint8_t *image__pixels_shrink(uint8_t *p, size_t bytes);
void image__pixels_free(uint8_t *p);

int image__decode_jpeg(const uint8_t *data, size_t len, const cnn_image_limits_t *lim,
                       int min_shorter, cnn_image_t *out, cnn_error_t *err);
int image__decode_png(const uint8_t *data, size_t len, const cnn_image_limits_t *lim,
                      cnn_image_t *out, cnn_error_t *err);
int image__decode_webp(const uint8_t *data, size_t len, const cnn_image_limits_t *lim,
                       cnn_image_t *out, cnn_error_t *err);

/* EXIF orientation (1..8) from a JPEG's first Exif APP1 segment; 1 when absent
 * or malformed. Reads only inside data[0, len). */
int image__exif_orientation(const uint8_t *data, size_t len);
/* Rotates/flips img in place as PIL's ImageOps.exif_transpose does. */
int image__orient(cnn_image_t *img, int orientation, cnn_error_t *err);

/* Decode with the full-resolution (pre-DCT-scaling, post-orientation) sides
 * reported, so preprocessing can compute torchvision's output size exactly. */
int image__decode_full(const void *data, size_t len, const cnn_image_limits_t *lim,
                       int min_shorter, cnn_image_t *out, int *full_w, int *full_h,
                       cnn_error_t *err);

/* PIL-exact antialiased bilinear resample of src (sw x sh, packed RGB) to a
 * virtual rw x rh image, computing only the window [x0, x0+ww) x [y0, y0+wh)
 * (which must lie inside rw x rh) into dst with `dst_stride` bytes per row. */
int image__resample_window(const uint8_t *src, int sw, int sh, int rw, int rh, int x0, int y0,
                           int ww, int wh, uint8_t *dst, size_t dst_stride, cnn_error_t *err);

/* Names a rejected format for messages ("GIF", "empty input", ...). */
const char *image__guess_other(const void *data, size_t len);
/* JPEG header sides without decoding; 0 or a negative code. */
int image__jpeg_header_sides(const uint8_t *p, size_t len, int *w, int *h);
/* Preprocess an image that may have been DCT-scaled from full_w x full_h:
 * torchvision's output size is computed from the full sides. */
int image__preprocess_full(const cnn_image_t *img, int full_w, int full_h,
                           const cnn_preprocess_t *pp, float *dst, cnn_error_t *err);

#endif
