/*
 * image_webp.c — WebP decoding through libwebp (lossy, lossless, alpha).
 *
 * WebPGetFeatures reads only the headers, so limits are checked before any
 * pixel is decoded. Alpha is dropped (decoded straight to RGB, not
 * premultiplied), as PIL's convert("RGB") does. Animated files are refused.
 */
#include <stdlib.h>
#include <webp/decode.h>

#include "error.h"
#include "image_internal.h"

int image__decode_webp(const uint8_t *p, size_t len, const cnn_image_limits_t *lim,
                       cnn_image_t *out, cnn_error_t *err) {
  WebPBitstreamFeatures f;
  if (WebPGetFeatures(p, len, &f) != VP8_STATUS_OK)
    return cnn_error_set(err, CNN_EIMAGE_INVALID, "WebP header is invalid or truncated");
  if (f.has_animation)
    return cnn_error_set(err, CNN_EMEDIA_UNSUPPORTED,
                         "animated WebP is not supported; supported: JPEG, PNG, WebP (still)");
  int rc = image__check_dims(f.width, f.height, lim, "WebP", err);
  if (rc < 0)
    return rc;
  if ((rc = image__alloc(out, f.width, f.height, CNN_FMT_WEBP, err)) < 0)
    return rc;
  size_t stride = (size_t)f.width * 3;
  if (!WebPDecodeRGBInto(p, len, out->rgb, stride * (size_t)f.height, (int)stride)) {
    cnn_image_free(out);
    return cnn_error_set(err, CNN_EIMAGE_INVALID, "WebP data is truncated or corrupt");
  }
  return 0;
}
