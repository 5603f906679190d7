/*
 * image_png.c — PNG decoding through libpng with setjmp error handling.
 *
 * Reads from memory through a bounded callback (reading past the end is a
 * png_error). Limits are checked after png_read_info, which stops at the first
 * IDAT, so a bomb costs only its header. Ancillary chunks are capped in size
 * and a bad CRC in any chunk is an error. Every transform converts to 8-bit
 * RGB the way PIL's convert("RGB") sees the file: 16-bit samples keep their
 * high byte, palettes expand, gray replicates, and alpha (including tRNS) is
 * dropped without compositing.
 *
 * longjmp safety: everything allocated after setjmp lives in the job struct
 * (reached through a pointer, so never cached in registers) and is released on
 * both paths by png_job_cleanup.
 */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image_internal.h"

#define PNG_CHUNK_MAX (8u << 20)

typedef struct {
  const uint8_t *p;
  size_t len, pos;
  png_structp png;
  png_infop info;
  png_bytep *rows;
  cnn_image_t img;
  cnn_error_t *err;
  char msg[160];
  int code; /* set before png_error when the cause is ours */
} png_job_t;

static void png_job_read(png_structp png, png_bytep dst, size_t n) {
  png_job_t *j = png_get_io_ptr(png);
  if (n > j->len - j->pos)
    png_error(png, "PNG data is truncated");
  memcpy(dst, j->p + j->pos, n);
  j->pos += n;
}

static void png_job_error(png_structp png, png_const_charp msg) {
  png_job_t *j = png_get_error_ptr(png);
  snprintf(j->msg, sizeof j->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_job_warning(png_structp png, png_const_charp msg) {}

static void png_job_cleanup(png_job_t *j) {
  png_destroy_read_struct(&j->png, &j->info, NULL);
  free(j->rows);
  j->rows = NULL;
}

static void png_job_transforms(png_job_t *j) {
  int type = png_get_color_type(j->png, j->info);
  if (png_get_bit_depth(j->png, j->info) == 16)
    png_set_strip_16(j->png);
  if (type == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(j->png);
  if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_expand_gray_1_2_4_to_8(j->png);
    png_set_gray_to_rgb(j->png);
  }
  png_set_strip_alpha(j->png);
  png_set_interlace_handling(j->png);
  png_read_update_info(j->png, j->info);
}

/* Runs under setjmp; returns 0 or a negative code for errors found by us. */
static int png_job_run(png_job_t *j, const cnn_image_limits_t *lim) {
  png_set_read_fn(j->png, j, png_job_read);
  png_set_user_limits(j->png, 0x7fffffff, 0x7fffffff);
  png_set_chunk_malloc_max(j->png, PNG_CHUNK_MAX);
  png_set_crc_action(j->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_read_info(j->png, j->info);
  int w = (int)png_get_image_width(j->png, j->info), h = (int)png_get_image_height(j->png, j->info);
  int rc = image__check_dims(w, h, lim, "PNG", j->err);
  if (rc < 0)
    return rc;
  png_job_transforms(j);
  if (png_get_channels(j->png, j->info) != 3 || png_get_rowbytes(j->png, j->info) != (size_t)w * 3)
    return cnn_error_set(j->err, CNN_EINTERNAL, "PNG transform did not yield 8-bit RGB");
  if ((rc = image__alloc(&j->img, w, h, CNN_FMT_PNG, j->err)) < 0)
    return rc;
  j->rows = malloc((size_t)h * sizeof *j->rows);
  if (!j->rows)
    return cnn_error_set(j->err, CNN_ENOMEM, "out of memory for PNG rows");
  for (int y = 0; y < h; y++)
    j->rows[y] = j->img.rgb + (size_t)y * w * 3;
  png_read_image(j->png, j->rows);
  png_read_end(j->png, NULL);
  return 0;
}

int image__decode_png(const uint8_t *p, size_t len, const cnn_image_limits_t *lim,
                      cnn_image_t *out, cnn_error_t *err) {
  png_job_t job = {.p = p, .len = len, .err = err};
  png_job_t *volatile j = &job;
  j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_job_error, png_job_warning);
  if (j->png)
    j->info = png_create_info_struct(j->png);
  if (!j->png || !j->info) {
    png_job_cleanup(j);
    return cnn_error_set(err, CNN_ENOMEM, "cannot create a PNG decoder");
  }
  int rc;
  if (setjmp(png_jmpbuf(j->png)))
    rc = cnn_error_set(err, CNN_EIMAGE_INVALID, "PNG data is truncated or corrupt: %s", j->msg);
  else
    rc = png_job_run(j, lim);
  png_job_cleanup(j);
  if (rc < 0)
    cnn_image_free(&j->img);
  else
    *out = j->img;
  return rc;
}
