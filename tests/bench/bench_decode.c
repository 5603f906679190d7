/*
 * bench_decode.c — milliseconds per image for decode + preprocess
 * (cnn_image_to_tensor with the default ImageNet transform), single thread.
 *
 *   bench_decode [DATA_DIR]     (default ../shared/data)
 *
 * Times every file of DATA_DIR/photos, the ImageNet samples of DATA_DIR/images (summary)
 * and a 4000x3000 JPEG generated here
 * from a synthetic pattern with tjCompress2 (4:2:0, quality 90). For the big
 * image it also times the full-resolution path (no DCT scaling) for contrast.
 * Reports the median thread-CPU milliseconds of repeated runs, then one verdict
 * line per target of issue 3: the median over the 500x375 (or 375x500) samples
 * <= 2 ms, the 4000x3000 JPEG (the daemon's DCT-scaled path) <= 20 ms.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

#include "bench_time.h"
#include "cnn.h"


/* Median ms of `reps` runs; full = 1 decodes without DCT scaling. */
static double time_one(const unsigned char *data, size_t len, int reps, int full) {
  static float tensor[3 * 224 * 224];
  double t[64];
  cnn_preprocess_t pp;
  cnn_preprocess_default(&pp);
  reps = reps > 64 ? 64 : reps;
  for (int r = 0; r < reps; r++) {
    double t0 = bench_cpu_ms();
    int rc;
    if (full) {
      cnn_image_t img;
      rc = cnn_image_decode(data, len, NULL, 0, &img, NULL);
      if (rc == 0)
        rc = cnn_image_preprocess(&img, &pp, tensor, NULL);
      cnn_image_free(&img);
    } else {
      rc = cnn_image_to_tensor(data, len, NULL, &pp, tensor, NULL);
    }
    if (rc < 0)
      return NAN;
    t[r] = bench_cpu_ms() - t0;
  }
  qsort(t, reps, sizeof t[0], bench_cmp_double);
  return t[reps / 2];
}

static unsigned char *make_big_jpeg(int w, int h, unsigned long *len) {
  unsigned char *rgb = malloc((size_t)w * h * 3), *jpg = NULL;
  if (!rgb)
    return NULL;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      unsigned char *p = rgb + ((size_t)y * w + x) * 3;
      p[0] = (unsigned char)(x * 255 / w);
      p[1] = (unsigned char)(y * 255 / h);
      p[2] = (unsigned char)(128 + 100 * sin((x + 2 * y) / 37.0) + ((x * 7 + y * 13) % 17));
    }
  tjhandle tj = tjInitCompress();
  int rc = tj ? tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpg, len, TJSAMP_420, 90, 0) : -1;
  if (tj)
    tjDestroy(tj);
  free(rgb);
  return rc == 0 ? jpg : NULL;
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = n > 0 ? malloc((size_t)n) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void bench_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  if (!d) {
    printf("(skipped: %s is absent)\n", dir);
    return;
  }
  while ((e = readdir(d))) {
    char path[4096 + 512];
    size_t len;
    cnn_image_t img;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unsigned char *data = e->d_name[0] == '.' ? NULL : read_file(path, &len);
    if (!data || cnn_image_decode(data, len, NULL, 0, &img, NULL) < 0) {
      free(data);
      continue;
    }
    printf("%-34s %5dx%-5d %8.2f\n", e->d_name, img.width, img.height, time_one(data, len, 31, 0));
    cnn_image_free(&img);
    free(data);
  }
  closedir(d);
}

static double median_of(double *ms, int n) {
  qsort(ms, (size_t)n, sizeof ms[0], bench_cmp_double);
  return ms[n / 2];
}

/* The ImageNet samples (about 500x375): median, p90 and share within 2 ms, for
 * all of them and for those exactly 500x375 or 375x500 (the target's size).
 * Returns the latter median, NAN when there are none. */
static double bench_summary(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    printf("(skipped: %s is absent)\n", dir);
    return NAN;
  }
  double ms[512], exact[512];
  int n = 0, nx = 0, within = 0;
  for (struct dirent *e; (e = readdir(d)) && n < 512;) {
    char path[4096 + 512];
    size_t len;
    cnn_image_t img;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unsigned char *data = strstr(e->d_name, ".JPEG") ? read_file(path, &len) : NULL;
    if (!data || cnn_image_decode(data, len, NULL, 0, &img, NULL) < 0) {
      free(data);
      continue;
    }
    int is_target = img.width * img.height == 500 * 375 && (img.width == 500 || img.width == 375);
    cnn_image_free(&img);
    double t = time_one(data, len, 9, 0);
    free(data);
    if (t != t)
      continue;
    within += t <= 2.0;
    ms[n++] = t;
    if (is_target)
      exact[nx++] = t;
  }
  closedir(d);
  if (!n)
    return NAN;
  double all = median_of(ms, n);
  printf("%-34s %11s %8.2f  (p90 %.2f, max %.2f, %d of %d within 2 ms)\n",
         "ImageNet samples, median", "~500x375", all, ms[n * 9 / 10], ms[n - 1], within, n);
  if (!nx)
    return NAN;
  double m = median_of(exact, nx);
  printf("%-34s %11s %8.2f  (max %.2f, %d images)\n", "ImageNet samples 500x375, median",
         "500x375", m, exact[nx - 1], nx);
  return m;
}

/* One line per speed target of issue 3, for people and scripts alike. */
static void verdict(const char *what, double ms, double limit) {
  if (ms != ms)
    printf("verdict: %-44s NOT MEASURED (no input)\n", what);
  else
    printf("verdict: %-44s %6.2f ms <= %4.1f ms: %s\n", what, ms, limit,
           ms <= limit ? "MET" : "NOT MET");
}

int main(int argc, char **argv) {
  char dir[4096];
  const char *data = argc > 1 ? argv[1] : "../shared/data";
  snprintf(dir, sizeof dir, "%s/photos", data);
  printf("%-34s %11s %8s\n", "image", "size", "cpu ms");
  bench_dir(dir);
  snprintf(dir, sizeof dir, "%s/images", data);
  double small = bench_summary(dir);
  unsigned long len = 0;
  unsigned char *big = make_big_jpeg(4000, 3000, &len);
  if (!big) {
    fprintf(stderr, "bench_decode: cannot generate the 4000x3000 JPEG\n");
    return 1;
  }
  double large = time_one(big, len, 15, 0);
  printf("%-34s %5dx%-5d %8.2f\n", "generated (DCT-scaled decode)", 4000, 3000, large);
  printf("%-34s %5dx%-5d %8.2f\n", "generated (full decode)", 4000, 3000,
         time_one(big, len, 7, 1));
  tjFree(big);
  verdict("500x375 JPEG decode + preprocess, median", small, 2.0);
  verdict("4000x3000 JPEG decode + preprocess, median", large, 20.0);
  return 0;
}
