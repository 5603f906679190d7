/*
 * preprocess_dump.c — decode + preprocess one image with the default
 * (torchvision ImageNet) transform and write the raw float32 3x224x224 tensor.
 *
 *   preprocess_dump IMAGE OUT.f32
 *
 * Used by tests/diff/test_preprocess.py to compare against torchvision.
 * Exit status: 0 on success, 2 on usage or I/O errors, 1 on engine errors
 * (the machine code and message go to stderr).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cnn.h"

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0;
  unsigned char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap)
      break;
    unsigned char *bigger = realloc(buf, cap *= 2);
    if (!bigger)
      free(buf);
    buf = bigger;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s IMAGE OUT.f32\n", argv[0]);
    return 2;
  }
  size_t len = 0;
  unsigned char *data = read_all(argv[1], &len);
  if (!data) {
    perror(argv[1]);
    return 2;
  }
  cnn_preprocess_t pp;
  cnn_image_limits_t lim;
  cnn_error_t err;
  cnn_preprocess_default(&pp);
  cnn_image_limits_default(&lim);
  size_t n = (size_t)3 * pp.crop_h * pp.crop_w;
  float *t = malloc(n * sizeof *t);
  int rc = t ? cnn_image_to_tensor(data, len, &lim, &pp, t, &err) : CNN_ENOMEM;
  free(data);
  if (rc < 0) {
    fprintf(stderr, "%s: %s: %s\n", argv[1], cnn_err_code(rc), t ? err.msg : "out of memory");
    free(t);
    return 1;
  }
  FILE *o = fopen(argv[2], "wb");
  int ok = o && fwrite(t, sizeof *t, n, o) == n;
  ok = (o && fclose(o) == 0) && ok;
  free(t);
  if (!ok) {
    perror(argv[2]);
    return 2;
  }
  return 0;
}
