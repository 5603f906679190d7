/*
 * image_sniff.c — identify an upload's format from its first bytes.
 *
 * Only magic numbers count (never file names or Content-Type headers). The
 * rejected-format guess is for error messages only.
 */
#include <string.h>

#include "cnn.h"
#include "image_internal.h"

cnn_image_format_t cnn_image_sniff(const void *data, size_t len) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const uint8_t *p = data;
  if (!p)
    return CNN_FMT_UNKNOWN;
  if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
    return CNN_FMT_JPEG;
  if (len >= 8 && memcmp(p, png_sig, 8) == 0)
    return CNN_FMT_PNG;
  if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
    return CNN_FMT_WEBP;
  return CNN_FMT_UNKNOWN;
}

const char *cnn_image_format_name(cnn_image_format_t f) {
  switch (f) {
  case CNN_FMT_JPEG:
    return "JPEG";
  case CNN_FMT_PNG:
    return "PNG";
  case CNN_FMT_WEBP:
    return "WebP";
  default:
    return "unknown";
  }
}

const char *image__guess_other(const void *data, size_t len) {
  const uint8_t *p = data;
  if (!p || len == 0)
    return "empty input";
  if (len >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
    return "GIF";
  if (len >= 2 && p[0] == 'B' && p[1] == 'M')
    return "BMP";
  if (len >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
    return "TIFF";
  if (len >= 12 && memcmp(p + 4, "ftyp", 4) == 0)
    return "HEIF/AVIF";
  return "unrecognized data";
}
