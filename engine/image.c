/*
 * image.c — image intake dispatch: limits, sniff -> decoder, EXIF, and the
 * one-call decode + preprocess used by the daemon.
 *
 * Ownership: cnn_image_decode fills a caller-owned cnn_image_t whose pixel
 * buffer the caller releases with cnn_image_free; on error it is left empty.
 * cnn_image_to_tensor decodes into its thread's kept pixel buffer (image_pixels.c);
 * no state is shared between threads: every call is thread-safe.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_internal.h"

void cnn_image_limits_default(cnn_image_limits_t *lim) {
  lim->max_pixels = 40000000;
  lim->max_side = 20000;
  lim->apply_exif = 1;
}

int image__check_dims(int64_t w, int64_t h, const cnn_image_limits_t *lim, const char *fmt,
                      cnn_error_t *err) {
  if (w <= 0 || h <= 0)
    return cnn_error_set(err, CNN_EIMAGE_INVALID, "%s header has zero size (%lldx%lld)", fmt,
                         (long long)w, (long long)h);
  if (w > lim->max_side || h > lim->max_side || w * h > lim->max_pixels)
    return cnn_error_set(err, CNN_EIMAGE_TOO_LARGE,
                         "%s is %lldx%lld; limits are %d pixels per side and %lld pixels", fmt,
                         (long long)w, (long long)h, lim->max_side, (long long)lim->max_pixels);
  return 0;
}

int image__alloc(cnn_image_t *img, int w, int h, cnn_image_format_t fmt, cnn_error_t *err) {
  img->rgb = image__pixels_alloc((size_t)w * (size_t)h * 3);
  if (!img->rgb)
    return cnn_error_set(err, CNN_ENOMEM, "out of memory for a %dx%d image", w, h);
  img->width = w;
  img->height = h;
  img->format = fmt;
  return 0;
}

void cnn_image_free(cnn_image_t *img) {
  if (!img)
    return;
  image__pixels_free(img->rgb);
  memset(img, 0, sizeof *img);
}

static int image_dispatch(const uint8_t *p, size_t len, const cnn_image_limits_t *lim,
                          int min_shorter, cnn_image_t *out, cnn_error_t *err) {
  switch (cnn_image_sniff(p, len)) {
  case CNN_FMT_JPEG:
    return image__decode_jpeg(p, len, lim, min_shorter, out, err);
  case CNN_FMT_PNG:
    return image__decode_png(p, len, lim, out, err);
  case CNN_FMT_WEBP:
    return image__decode_webp(p, len, lim, out, err);
  default:
    return cnn_error_set(err, CNN_EMEDIA_UNSUPPORTED,
                         "unsupported image format (%s); supported: JPEG, PNG, WebP",
                         image__guess_other(p, len));
  }
}

/* Full-resolution sides of the oriented image: the JPEG decoder may have
 * scaled by 1/2..1/8, so the header is read again (cheap, bounded). */
static void image_full_sides(const uint8_t *p, size_t len, const cnn_image_t *img, int orient,
                             int *fw, int *fh);

int image__decode_full(const void *data, size_t len, const cnn_image_limits_t *lim,
                       int min_shorter, cnn_image_t *out, int *full_w, int *full_h,
                       cnn_error_t *err) {
  cnn_image_limits_t dflt;
  const uint8_t *p = data;
  memset(out, 0, sizeof *out);
  if (!lim) {
    cnn_image_limits_default(&dflt);
    lim = &dflt;
  }
  if (min_shorter < 0)
    return cnn_error_set(err, CNN_EINVAL, "min_shorter must be >= 0");
  int rc = image_dispatch(p, len, lim, min_shorter, out, err);
  if (rc < 0)
    return rc;
  int orient = 1;
  if (out->format == CNN_FMT_JPEG && lim->apply_exif)
    orient = image__exif_orientation(p, len);
  rc = image__orient(out, orient, err);
  if (rc < 0) {
    cnn_image_free(out);
    return rc;
  }
  image_full_sides(p, len, out, orient, full_w, full_h);
  return 0;
}

static void image_full_sides(const uint8_t *p, size_t len, const cnn_image_t *img, int orient,
                             int *fw, int *fh) {
  int w = img->width, h = img->height;
  if (img->format == CNN_FMT_JPEG && image__jpeg_header_sides(p, len, &w, &h) == 0 &&
      orient >= 5) {
    int t = w;
    w = h;
    h = t;
  }
  *fw = w;
  *fh = h;
}

int cnn_image_decode(const void *data, size_t len, const cnn_image_limits_t *lim,
                     int min_shorter, cnn_image_t *out, cnn_error_t *err) {
  int fw, fh;
  return image__decode_full(data, len, lim, min_shorter, out, &fw, &fh, err);
}

/* DCT-domain scaling is only used when the decoded shorter side stays >= 2x
 * the resize target: with antialiased resampling from at least twice the
 * target the result stays within the accuracy bound against full decodes
 * (see tests/diff/test_preprocess.py, "large" set). Crop-only transforms
 * need the original pixels, so they never scale. */
static int image_min_shorter(const cnn_preprocess_t *pp) {
  return pp->resize_shorter > 0 ? 2 * pp->resize_shorter : 0;
}

int cnn_image_to_tensor(const void *data, size_t len, const cnn_image_limits_t *lim,
                        const cnn_preprocess_t *pp, float *dst, cnn_error_t *err) {
  cnn_image_t img;
  int fw, fh;
  if (!pp || !dst)
    return cnn_error_set(err, CNN_EINVAL, "cnn_image_to_tensor: NULL preprocess or output");
  /* decoded, used and freed here, on this thread: its pixels can be this thread's
   * kept buffer (image_pixels.c) */
  image__pixels_lend(1);
  int rc = image__decode_full(data, len, lim, image_min_shorter(pp), &img, &fw, &fh, err);
  image__pixels_lend(0);
  if (rc < 0)
    return rc;
  rc = image__preprocess_full(&img, fw, fh, pp, dst, err);
  cnn_image_free(&img);
  return rc;
}
