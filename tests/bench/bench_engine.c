/*
 * bench_engine.c — engine latency and throughput, for `make bench`.
 *
 *   bench_engine --models DIR [--threads N] [--seconds S] [--archs a,b,c] [--batches 1,8]
 *
 * For each model (default resnet50, googlenet, resnet18 from DIR/NAME.onnx) and
 * each batch size (default 1 and 8; at most 8): load time, warm-up, then forwards for about S seconds
 * (at least 10 runs), printing p50/p99 latency per batch and images per second
 * (batch size / p50), and images per second over all the timed forwards ("img/s all":
 * images / the sum of their times, which counts slow forwards as a server's rate does).
 * Input is fixed pseudo-random data; the engine's speed does not depend on values.
 * Prints a markdown table. With --profile N, then forwards with the engine's profiler
 * on (10, or about S seconds of them with --profile-seconds S): each node's fastest and
 * median time, per op type and for the N slowest nodes, on stderr (tests/bench/nodes.py
 * reads it).
 *
 *   bench_engine --serve MODEL.onnx --input FILE [--threads N]
 *
 * Machine-readable mode for tests/bench/peers.py: loads the model once (context for
 * batch 8), then reads commands "BATCH SECONDS" (batch 1..8) from stdin and answers
 * each with one line "lat MS MS ..." (every timed forward: one warm-up, then at least 2 and ~SECONDS), or
 * "err MESSAGE". FILE holds at least 8 float32 images (8 x 3 x 224 x 224, native
 * byte order), the same input every peer runner uses. Ends at end of input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"
#include "cnn.h"

static int g_profile; /* --profile N: per-op profile and the N slowest nodes, on stderr */
static double g_profile_seconds; /* --profile-seconds S: profiled forwards for ~S s (else 10) */

static int bench_batch(const char *name, cnn_ctx_t *ctx, const cnn_model_info_t *info, int batch,
                       double seconds) {
  size_t per = (size_t)info->in_c * info->in_h * info->in_w;
  float *in = malloc(per * (size_t)batch * sizeof *in);
  float *out = malloc((size_t)info->num_classes * (size_t)batch * sizeof *out);
  enum { MAX_RUNS = 100000 };
  double *lat = malloc(MAX_RUNS * sizeof *lat);
  if (!in || !out || !lat) return -1;
  unsigned s = 12345;
  for (size_t i = 0; i < per * (size_t)batch; i++) s = s * 1103515245u + 12345u, in[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
  cnn_error_t err;
  for (int i = 0; i < 2; i++)
    if (cnn_forward(ctx, in, batch, out, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
  int n = 0;
  double start = bench_wall_ms();
  while (n < MAX_RUNS && (n < 10 || bench_wall_ms() - start < seconds * 1e3)) {
    double t = bench_wall_ms();
    cnn_forward(ctx, in, batch, out, &err);
    lat[n++] = bench_wall_ms() - t;
  }
  double total = 0;
  for (int i = 0; i < n; i++) total += lat[i];
  double p50 = bench_pct(lat, n, 0.5), p99 = bench_pct(lat, n, 0.99);
  int rc = 0;
  if (g_profile && cnn_ctx_set_profiling(ctx, 1)) {
    fprintf(stderr, "%s batch %d: no memory for the profile\n", name, batch);
    rc = -1;
  } else if (g_profile) {
    double t0 = bench_wall_ms();
    for (int i = 0; i < 10 || bench_wall_ms() - t0 < g_profile_seconds * 1e3; i++)
      cnn_forward(ctx, in, batch, out, &err);
    fprintf(stderr, "%s batch %d ", name, batch);
    cnn_ctx_profile_print(ctx, stderr, g_profile);
    cnn_ctx_set_profiling(ctx, 0);
  }
  printf("| %-10s | %5d | %9.2f | %9.2f | %8.1f | %5d | %8.1f |\n", name, batch, p50, p99,
         batch * 1e3 / p50, n, batch * n * 1e3 / total);
  fflush(stdout);
  free(in), free(out), free(lat);
  return rc;
}

static int bench_model(const char *dir, const char *arch, int threads, double seconds,
                       const char *batches) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.onnx", dir, arch);
  cnn_model_t *m;
  cnn_error_t err;
  double t0 = bench_wall_ms();
  if (cnn_model_load(path, &m, &err)) {
    fprintf(stderr, "bench: %s\n", err.msg);
    return -1;
  }
  double load_ms = bench_wall_ms() - t0;
  cnn_ctx_t *ctx;
  if (cnn_ctx_create(m, 8, threads, &ctx, &err)) {
    fprintf(stderr, "bench: %s\n", err.msg);
    cnn_model_destroy(m);
    return -1;
  }
  const cnn_model_info_t *info = cnn_model_info(m);
  fprintf(stderr, "%s: loaded in %.0f ms, %.1f M params, %.2f GMAC/image, weights %zu MiB, arena(b8) %zu MiB\n",
          arch, load_ms, info->params / 1e6, info->macs / 1e9, info->weight_bytes >> 20,
          cnn_ctx_arena_bytes(ctx) >> 20);
  int rc = 0;
  for (const char *b = batches; *b && !rc; b += strcspn(b, ","), b += *b == ',') {
    int n = atoi(b);
    rc = n >= 1 && n <= 8 ? bench_batch(arch, ctx, info, n, seconds) : -1;
  }
  cnn_ctx_destroy(ctx);
  cnn_model_destroy(m);
  return rc;
}

/* One "BATCH SECONDS" command: warm-up, then at least 2 forwards and ~SECONDS. */
static void serve_one(cnn_ctx_t *ctx, const float *in, float *out, int batch, double seconds) {
  enum { MAX_RUNS = 10000 };
  static double lat[MAX_RUNS];
  cnn_error_t err;
  if (cnn_forward(ctx, in, batch, out, &err)) {
    printf("err %s\n", err.msg);
    return;
  }
  int n = 0;
  double start = bench_wall_ms();
  while (n < MAX_RUNS && (n < 2 || bench_wall_ms() - start < seconds * 1e3)) {
    double t = bench_wall_ms();
    cnn_forward(ctx, in, batch, out, &err);
    lat[n++] = bench_wall_ms() - t;
  }
  printf("lat");
  for (int i = 0; i < n; i++) printf(" %.4f", lat[i]);
  printf("\n");
}

static float *read_input(const char *path, size_t floats) {
  FILE *f = fopen(path, "rb");
  float *in = malloc(floats * sizeof *in);
  size_t got = f && in ? fread(in, sizeof *in, floats, f) : 0;
  if (f) fclose(f);
  if (got != floats) free(in), in = NULL;
  return in;
}

static int serve(const char *path, const char *input, int threads) {
  cnn_model_t *m;
  cnn_ctx_t *ctx;
  cnn_error_t err;
  if (cnn_model_load(path, &m, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
  if (cnn_ctx_create(m, 8, threads, &ctx, &err))
    return fprintf(stderr, "bench: %s\n", err.msg), cnn_model_destroy(m), 1;
  const cnn_model_info_t *info = cnn_model_info(m);
  float *in = read_input(input, (size_t)8 * info->in_c * info->in_h * info->in_w);
  float *out = malloc((size_t)info->num_classes * 8 * sizeof *out);
  int rc = in && out ? 0 : 1, batch;
  double seconds;
  char line[256];
  if (rc) fprintf(stderr, "bench: cannot read 8 input images from %s\n", input);
  printf("ready\n");
  fflush(stdout);
  while (!rc && fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "%d %lf", &batch, &seconds) != 2 || batch < 1 || batch > 8 ||
        !(seconds > 0 && seconds < 600))
      printf("err bad command\n");
    else
      serve_one(ctx, in, out, batch, seconds);
    fflush(stdout);
  }
  free(in), free(out);
  cnn_ctx_destroy(ctx);
  cnn_model_destroy(m);
  return rc;
}

int main(int argc, char **argv) {
  const char *dir = "build/models", *archs = "resnet50,googlenet,resnet18", *batches = "1,8";
  const char *serve_path = NULL, *input = NULL;
  int threads = 2;
  double seconds = 5.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--models")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--archs")) archs = argv[i + 1];
    else if (!strcmp(argv[i], "--batches")) batches = argv[i + 1];
    else if (!strcmp(argv[i], "--serve")) serve_path = argv[i + 1];
    else if (!strcmp(argv[i], "--input")) input = argv[i + 1];
    else if (!strcmp(argv[i], "--profile")) g_profile = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--profile-seconds")) g_profile_seconds = atof(argv[i + 1]);
    else return fprintf(stderr, "usage: bench_engine --models DIR [--threads N] [--seconds S] [--archs a,b] [--batches 1,8] [--profile TOPN [--profile-seconds S]]\n"
                                   "       bench_engine --serve MODEL.onnx --input FILE [--threads N]\n"), 2;
  }
  if (threads < 1 || threads > 256 || seconds <= 0 || g_profile_seconds < 0 ||
      g_profile_seconds > 3600)
    return fprintf(stderr, "bench: bad arguments\n"), 2;
  if (serve_path) return input ? serve(serve_path, input, threads) : 2;
  printf("classifyd engine, %d threads\n\n", threads);
  printf("| model      | batch | p50 ms    | p99 ms    | img/s    | runs  | img/s all |\n");
  printf("|------------|-------|-----------|-----------|----------|-------|-----------|\n");
  char list[512];
  snprintf(list, sizeof list, "%s", archs);
  int rc = 0;
  for (char *save, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save))
    rc |= bench_model(dir, a, threads, seconds, batches) != 0;
  return rc;
}
