/*
 * image_preprocess.c — torchvision's Resize / CenterCrop / ToTensor /
 * Normalize on a decoded RGB image, into a CHW float tensor.
 *
 * Geometry follows torchvision 0.14 exactly: Resize(s) gives the shorter side
 * s and the longer int(s * long / short); CenterCrop offsets are
 * int(round((h - crop) / 2.0)) with Python's round-half-to-even, and a crop
 * larger than the image first pads with zeros ((c - h) // 2 before). Only the
 * cropped window of the resized image is resampled (image_resize.c).
 * Normalisation is a per-channel 256-entry table, so the pixel loop is a
 * lookup. Allocation: one crop-sized uint8 buffer per call.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_internal.h"

void cnn_preprocess_default(cnn_preprocess_t *pp) {
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  pp->resize_shorter = 256;
  pp->crop_h = pp->crop_w = 224;
  memcpy(pp->mean, mean, sizeof mean);
  memcpy(pp->std, std, sizeof std);
  pp->bgr = 0;
  pp->scale = 1.0f / 255.0f;
}

/* Resized sides from the full-resolution sides (torchvision's rule). */
static void pp_resized(int fw, int fh, int s, int *rw, int *rh) {
  if (s <= 0) {
    *rw = fw;
    *rh = fh;
    return;
  }
  int shorter = fw <= fh ? fw : fh, longer = fw <= fh ? fh : fw;
  int nl = (int)((double)s * longer / shorter);
  *rw = fw <= fh ? s : nl;
  *rh = fw <= fh ? nl : s;
}

/* Offset of the crop in the resized image; negative when padding. */
static int pp_offset(int size, int crop) {
  if (crop > size)
    return -((crop - size) / 2);
  int d = size - crop, half = d / 2;
  if (d % 2 == 0)
    return half;
  return half % 2 == 0 ? half : half + 1; /* x.5 rounds to even */
}

static int pp_check(const cnn_image_t *img, const cnn_preprocess_t *pp, const float *dst,
                    cnn_error_t *err) {
  if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || !pp || !dst)
    return cnn_error_set(err, CNN_EINVAL, "preprocess: empty image or NULL argument");
  if (pp->crop_h <= 0 || pp->crop_w <= 0 || pp->crop_h > 8192 || pp->crop_w > 8192 ||
      pp->resize_shorter < 0 || pp->resize_shorter > 65536)
    return cnn_error_set(err, CNN_EINVAL, "preprocess: bad sizes (resize %d, crop %dx%d)",
                         pp->resize_shorter, pp->crop_w, pp->crop_h);
  for (int c = 0; c < 3; c++)
    if (!(pp->std[c] != 0.0f))
      return cnn_error_set(err, CNN_EINVAL, "preprocess: std[%d] is zero", c);
  return 0;
}

static void pp_normalize(const uint8_t *pix, int n, const cnn_preprocess_t *pp, float *dst) {
  float lut[3][256];
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++)
      lut[c][v] = ((float)v * pp->scale - pp->mean[c]) / pp->std[c];
  for (int c = 0; c < 3; c++) {
    int src_c = pp->bgr ? 2 - c : c;
    float *d = dst + (size_t)c * n;
    for (int i = 0; i < n; i++)
      d[i] = lut[c][pix[3 * i + src_c]];
  }
}

int image__preprocess_full(const cnn_image_t *img, int fw, int fh, const cnn_preprocess_t *pp,
                           float *dst, cnn_error_t *err) {
  int rc = pp_check(img, pp, dst, err), rw, rh;
  if (rc < 0)
    return rc;
  pp_resized(pp->resize_shorter > 0 ? fw : img->width, pp->resize_shorter > 0 ? fh : img->height,
             pp->resize_shorter, &rw, &rh);
  if (rw > 1 << 20 || rh > 1 << 20)
    return cnn_error_set(err, CNN_EIMAGE_TOO_LARGE, "resized image %dx%d is too large", rw, rh);
  int cw = pp->crop_w, ch = pp->crop_h, ox = pp_offset(rw, cw), oy = pp_offset(rh, ch);
  int x0 = ox < 0 ? 0 : ox, y0 = oy < 0 ? 0 : oy;
  int ww = (ox + cw < rw ? ox + cw : rw) - x0, wh = (oy + ch < rh ? oy + ch : rh) - y0;
  uint8_t *crop = calloc((size_t)cw * ch, 3);
  if (!crop)
    return cnn_error_set(err, CNN_ENOMEM, "out of memory for a %dx%d crop", cw, ch);
  size_t stride = (size_t)cw * 3;
  uint8_t *win = crop + (size_t)(y0 - oy) * stride + (size_t)(x0 - ox) * 3;
  rc = image__resample_window(img->rgb, img->width, img->height, rw, rh, x0, y0, ww, wh, win,
                              stride, err);
  if (rc == 0)
    pp_normalize(crop, cw * ch, pp, dst);
  free(crop);
  return rc;
}

int cnn_image_preprocess(const cnn_image_t *img, const cnn_preprocess_t *pp, float *dst,
                         cnn_error_t *err) {
  if (!img)
    return cnn_error_set(err, CNN_EINVAL, "preprocess: NULL image");
  return image__preprocess_full(img, img->width, img->height, pp, dst, err);
}
