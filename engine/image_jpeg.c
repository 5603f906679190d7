/*
 * image_jpeg.c — JPEG decoding through the TurboJPEG API (libjpeg-turbo 2.1).
 *
 * The header is read and checked against the limits before any scan is
 * decoded. Any libjpeg warning except "extraneous bytes before marker" is an
 * error, because libjpeg-turbo pads truncated or corrupt data with gray and
 * reports only a warning. TJFLAG_LIMITSCANS caps progressive scans (a known
 * CPU-exhaustion vector). CMYK/YCCK decode to CMYK and are converted exactly as
 * PIL does: PIL always assumes Adobe-inverted CMYK in JPEGs ("CMYK;I") and
 * then applies its cmyk2rgb with rounded 255-division.
 *
 * The decoder handle is created per call (no shared state, thread-safe).
 */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "error.h"
#include "image_internal.h"

#define JPEG_FLAGS (TJFLAG_LIMITSCANS | TJFLAG_ACCURATEDCT)

typedef struct {
  int w, h, subsamp, colorspace;
} jpeg_header_t;

/* Valgrind showed libjpeg-turbo returning success for a stream that ends inside
 * the markers (FF D8 FF then zeros) without setting the sides: they start at 0
 * and a header without positive sides is invalid. */
static int jpeg_header(tjhandle tj, const uint8_t *p, size_t len, jpeg_header_t *hd) {
  *hd = (jpeg_header_t){0};
  if (len > (size_t)0xFFFFFFFFu)
    return -1;
  int rc = tjDecompressHeader3(tj, p, (unsigned long)len, &hd->w, &hd->h, &hd->subsamp,
                               &hd->colorspace);
  return rc < 0 || hd->w <= 0 || hd->h <= 0 ? -1 : 0;
}

int image__jpeg_header_sides(const uint8_t *p, size_t len, int *w, int *h) {
  jpeg_header_t hd;
  tjhandle tj = tjInitDecompress();
  if (!tj)
    return CNN_ENOMEM;
  int rc = jpeg_header(tj, p, len, &hd);
  tjDestroy(tj);
  if (rc < 0)
    return CNN_EIMAGE_INVALID;
  *w = hd.w;
  *h = hd.h;
  return 0;
}

/* The smallest 1/2, 1/4 or 1/8 scale keeping the shorter side >= min_shorter
 * (1/1 when min_shorter is 0 or nothing smaller qualifies). */
static tjscalingfactor jpeg_pick_scale(int w, int h, int min_shorter) {
  tjscalingfactor best = {1, 1};
  int n = 0, shorter = w < h ? w : h;
  tjscalingfactor *sf = tjGetScalingFactors(&n);
  if (min_shorter <= 0 || !sf)
    return best;
  for (int i = 0; i < n; i++) {
    int d = sf[i].denom;
    if (sf[i].num != 1 || (d != 2 && d != 4 && d != 8))
      continue;
    if (TJSCALED(shorter, sf[i]) >= min_shorter && d > best.denom)
      best = sf[i];
  }
  return best;
}

static uint8_t cmyk_channel(int inv, int nk) {
  int t = inv * nk + 128;
  int v = nk - (((t >> 8) + t) >> 8);
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* In place: 4-byte stored CMYK -> 3-byte RGB (dst never overtakes src). */
static void jpeg_cmyk_to_rgb(uint8_t *buf, size_t npix) {
  for (size_t i = 0; i < npix; i++) {
    const uint8_t *s = buf + 4 * i;
    int nk = s[3]; /* 255 - (255 - stored K) */
    uint8_t r = cmyk_channel(255 - s[0], nk), g = cmyk_channel(255 - s[1], nk),
            b = cmyk_channel(255 - s[2], nk);
    buf[3 * i] = r;
    buf[3 * i + 1] = g;
    buf[3 * i + 2] = b;
  }
}

static int jpeg_failed(tjhandle tj) {
  if (tjGetErrorCode(tj) != TJERR_WARNING)
    return 1;
  return strstr(tjGetErrorStr2(tj), "extraneous bytes") == NULL;
}

static int jpeg_decode_pixels(tjhandle tj, const uint8_t *p, size_t len, const jpeg_header_t *hd,
                              tjscalingfactor sf, cnn_image_t *out, cnn_error_t *err) {
  int w = TJSCALED(hd->w, sf), h = TJSCALED(hd->h, sf);
  int cmyk = hd->colorspace == TJCS_CMYK || hd->colorspace == TJCS_YCCK;
  size_t npix = (size_t)w * (size_t)h;
  uint8_t *buf = image__pixels_alloc(npix * (cmyk ? 4 : 3));
  if (!buf)
    return cnn_error_set(err, CNN_ENOMEM, "out of memory for a %dx%d JPEG", w, h);
  int rc = tjDecompress2(tj, p, (unsigned long)len, buf, w, 0, h, cmyk ? TJPF_CMYK : TJPF_RGB,
                         JPEG_FLAGS);
  if (rc < 0 && jpeg_failed(tj)) {
    image__pixels_free(buf);
    return cnn_error_set(err, CNN_EIMAGE_INVALID, "JPEG data is truncated or corrupt: %s",
                         tjGetErrorStr2(tj));
  }
  if (cmyk) {
    jpeg_cmyk_to_rgb(buf, npix);
    buf = image__pixels_shrink(buf, npix * 3);
  }
  out->rgb = buf;
  out->width = w;
  out->height = h;
  out->format = CNN_FMT_JPEG;
  return 0;
}

int image__decode_jpeg(const uint8_t *p, size_t len, const cnn_image_limits_t *lim,
                       int min_shorter, cnn_image_t *out, cnn_error_t *err) {
  jpeg_header_t hd;
  tjhandle tj = tjInitDecompress();
  if (!tj)
    return cnn_error_set(err, CNN_ENOMEM, "cannot create a JPEG decoder");
  int rc;
  if (jpeg_header(tj, p, len, &hd) < 0)
    rc = cnn_error_set(err, CNN_EIMAGE_INVALID, "JPEG header is invalid: %s",
                       tjGetErrorStr2(tj));
  else if ((rc = image__check_dims(hd.w, hd.h, lim, "JPEG", err)) == 0)
    rc = jpeg_decode_pixels(tj, p, len, &hd, jpeg_pick_scale(hd.w, hd.h, min_shorter), out,
                            err);
  tjDestroy(tj);
  return rc;
}
