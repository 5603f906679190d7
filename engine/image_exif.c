/*
 * image_exif.c — EXIF orientation: a small bounded parser and the 8 transforms.
 *
 * The parser walks JPEG marker segments up to the first SOS, takes the first
 * APP1 starting with "Exif\0\0", and reads tag 0x0112 from IFD0 of the TIFF
 * structure inside it. Every offset is checked against the segment's end
 * before it is read, so hostile data can only yield "orientation 1".
 *
 * Transforms follow PIL's ImageOps.exif_transpose: 2 mirror, 3 rotate 180,
 * 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
 * counter-clockwise. They write into a new buffer (one allocation per image).
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_internal.h"

typedef struct {
  const uint8_t *p; /* TIFF header start */
  size_t len;       /* bytes from p to the end of the APP1 segment */
  int big_endian;
} tiff_t;

static unsigned tiff_u16(const tiff_t *t, size_t off) {
  const uint8_t *b = t->p + off;
  return t->big_endian ? (unsigned)(b[0] << 8 | b[1]) : (unsigned)(b[1] << 8 | b[0]);
}

static uint32_t tiff_u32(const tiff_t *t, size_t off) {
  uint32_t hi = tiff_u16(t, off), lo = tiff_u16(t, off + 2);
  return t->big_endian ? (hi << 16 | lo) : (lo << 16 | hi);
}

static int tiff_orientation(const tiff_t *t) {
  if (t->len < 8)
    return 1;
  if (memcmp(t->p, "II*\0", 4) != 0 && memcmp(t->p, "MM\0*", 4) != 0)
    return 1;
  uint32_t ifd = tiff_u32(t, 4);
  if (ifd > t->len || t->len - ifd < 2)
    return 1;
  unsigned n = tiff_u16(t, ifd);
  for (unsigned i = 0; i < n; i++) {
    size_t e = (size_t)ifd + 2 + (size_t)i * 12;
    if (e + 12 > t->len)
      return 1;
    if (tiff_u16(t, e) != 0x0112)
      continue;
    unsigned type = tiff_u16(t, e + 2);
    unsigned v = type == 3 ? tiff_u16(t, e + 8) : type == 4 ? tiff_u32(t, e + 8) : 0;
    return v >= 1 && v <= 8 ? (int)v : 1;
  }
  return 1;
}

static int app1_orientation(const uint8_t *seg, size_t n) {
  if (n < 6 || memcmp(seg, "Exif\0\0", 6) != 0)
    return 0;
  tiff_t t = {seg + 6, n - 6, n > 6 && seg[6] == 'M'};
  return tiff_orientation(&t);
}

int image__exif_orientation(const uint8_t *p, size_t len) {
  size_t i = 2;
  if (len < 4 || p[0] != 0xFF || p[1] != 0xD8)
    return 1;
  while (i + 4 <= len) {
    if (p[i] != 0xFF)
      return 1;
    uint8_t m = p[i + 1];
    if (m == 0xFF) { /* fill byte */
      i++;
      continue;
    }
    if (m == 0xDA || m == 0xD9)
      return 1;
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;
      continue;
    }
    size_t seglen = (size_t)p[i + 2] << 8 | p[i + 3];
    if (seglen < 2 || seglen > len - i - 2)
      return 1;
    if (m == 0xE1) {
      int o = app1_orientation(p + i + 4, seglen - 2);
      if (o)
        return o;
    }
    i += 2 + seglen;
  }
  return 1;
}

/* Source pixel index = base + x*dx + y*dy for output pixel (x, y). */
typedef struct {
  ptrdiff_t base, dx, dy;
  int swap;
} orient_map_t;

static orient_map_t orient_map(int o, ptrdiff_t w, ptrdiff_t h) {
  switch (o) {
  case 2:
    return (orient_map_t){w - 1, -1, w, 0};
  case 3:
    return (orient_map_t){(h - 1) * w + w - 1, -1, -w, 0};
  case 4:
    return (orient_map_t){(h - 1) * w, 1, -w, 0};
  case 5:
    return (orient_map_t){0, w, 1, 1};
  case 6:
    return (orient_map_t){(h - 1) * w, -w, 1, 1};
  case 7:
    return (orient_map_t){(h - 1) * w + w - 1, -w, -1, 1};
  default:
    return (orient_map_t){w - 1, w, -1, 1}; /* 8 */
  }
}

int image__orient(cnn_image_t *img, int o, cnn_error_t *err) {
  if (o < 2 || o > 8)
    return 0;
  orient_map_t m = orient_map(o, img->width, img->height);
  int ow = m.swap ? img->height : img->width, oh = m.swap ? img->width : img->height;
  uint8_t *dst = image__pixels_alloc((size_t)ow * (size_t)oh * 3);
  if (!dst)
    return cnn_error_set(err, CNN_ENOMEM, "out of memory rotating a %dx%d image", ow, oh);
  uint8_t *d = dst;
  for (int y = 0; y < oh; y++) {
    ptrdiff_t s = m.base + y * m.dy;
    for (int x = 0; x < ow; x++, s += m.dx, d += 3)
      memcpy(d, img->rgb + 3 * s, 3);
  }
  image__pixels_free(img->rgb);
  img->rgb = dst;
  img->width = ow;
  img->height = oh;
  return 0;
}
