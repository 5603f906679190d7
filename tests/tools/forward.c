/*
 * forward.c — run one ONNX model on raw float tensors through the engine's public API.
 *
 *   forward MODEL.onnx IN.f32 N OUT.f32 [--threads T]
 *       IN.f32 holds exactly N*C*H*W native floats (NCHW); OUT.f32 receives
 *       N*num_classes floats, the graph's output as is.
 *   forward --info MODEL.onnx
 *       prints the model info as one JSON object.
 *
 * The differential tests (tests/diff) drive the engine through this tool, so it is
 * also their crash detector: every failure, including a malformed model, must end in
 * `forward: <cnn_err_code>: <message>` on stderr and exit status 1, never a signal.
 * Everything is freed before exit so the ASan build can report leaks.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "error.h" /* cnn_error_set for the tool's own I/O errors */

#define MAX_BATCH 1024
#define INFO_LABELS 5

static int fail(int code, const char *msg) {
  fprintf(stderr, "forward: %s: %s\n", cnn_err_code(code), msg);
  return 1;
}

static int fail_err(const cnn_error_t *err) {
  return fail(err->code, err->msg[0] ? err->msg : cnn_strerror(err->code));
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

/* Reads exactly `count` floats from `path`; the file may hold no more and no less. */
static int read_floats(const char *path, float *dst, size_t count, cnn_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return cnn_error_set(err, CNN_EIO, "%s: %s", path, strerror(errno));
  size_t got = fread(dst, sizeof *dst, count, f);
  int extra = fgetc(f);
  fclose(f);
  if (got != count || extra != EOF)
    return cnn_error_set(err, CNN_EINVAL, "%s: expected exactly %zu floats (%zu bytes)", path,
                         count, count * sizeof *dst);
  return 0;
}

static int write_floats(const char *path, const float *src, size_t count, cnn_error_t *err) {
  FILE *f = fopen(path, "wb");
  if (!f) return cnn_error_set(err, CNN_EIO, "%s: %s", path, strerror(errno));
  size_t put = fwrite(src, sizeof *src, count, f);
  int rc = fclose(f);
  if (put != count || rc != 0)
    return cnn_error_set(err, CNN_EIO, "%s: short write", path);
  return 0;
}

static json_t *info_json(const cnn_model_info_t *in) {
  json_t *labels = json_array();
  for (int i = 0; i < in->num_classes && i < INFO_LABELS; i++)
    json_array_append_new(labels, json_string(in->labels[i] ? in->labels[i] : ""));
  json_t *shape = json_pack("[iii]", in->in_c, in->in_h, in->in_w);
  return json_pack("{s:s?, s:s?, s:s?, s:o, s:i, s:I, s:I, s:I, s:i, s:b, s:b, s:o}", "name",
                   in->name, "arch", in->arch, "path", in->path, "input", shape, "classes",
                   in->num_classes, "params", (json_int_t)in->params, "macs",
                   (json_int_t)in->macs, "weight_bytes", (json_int_t)in->weight_bytes, "opset",
                   in->opset, "untrained", in->untrained, "outputs_probabilities",
                   in->outputs_probabilities, "labels", labels);
}

static int cmd_info(const char *model_path) {
  cnn_error_t err = {0};
  cnn_model_t *m = NULL;
  if (cnn_model_load(model_path, &m, &err) < 0) return fail_err(&err);
  json_t *j = info_json(cnn_model_info(m));
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  if (s) puts(s);
  free(s);
  json_decref(j);
  cnn_model_destroy(m);
  return s ? 0 : fail(CNN_ENOMEM, "cannot format the model info");
}

/* Sizes the buffers from the loaded model, then runs one batched forward. */
static int run_model(const cnn_model_t *m, const char *in_path, int n, const char *out_path,
                     int threads, cnn_error_t *err) {
  const cnn_model_info_t *info = cnn_model_info(m);
  size_t in_count = (size_t)n * info->in_c * info->in_h * info->in_w;
  size_t out_count = (size_t)n * info->num_classes;
  float *in = malloc(in_count * sizeof *in), *out = malloc(out_count * sizeof *out);
  cnn_ctx_t *ctx = NULL;
  int rc = (in && out) ? 0 : cnn_error_set(err, CNN_ENOMEM, "cannot allocate the tensors");
  if (rc == 0) rc = read_floats(in_path, in, in_count, err);
  if (rc == 0) rc = cnn_ctx_create(m, n, threads, &ctx, err);
  if (rc == 0) rc = cnn_forward(ctx, in, n, out, err);
  if (rc == 0) rc = write_floats(out_path, out, out_count, err);
  if (ctx) cnn_ctx_destroy(ctx);
  free(in);
  free(out);
  return rc;
}

static int cmd_forward(int argc, char **argv) {
  int n, threads = 1;
  if (parse_int(argv[3], 1, MAX_BATCH, &n) < 0) return fail(CNN_EINVAL, "N must be 1..1024");
  for (int i = 5; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc &&
        parse_int(argv[i + 1], 1, 256, &threads) == 0)
      i++;
    else
      return fail(CNN_EINVAL, "bad option (only --threads T, T in 1..256)");
  }
  cnn_error_t err = {0};
  cnn_model_t *m = NULL;
  if (cnn_model_load(argv[1], &m, &err) < 0) return fail_err(&err);
  int rc = run_model(m, argv[2], n, argv[4], threads, &err);
  cnn_model_destroy(m);
  return rc < 0 ? fail_err(&err) : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--info") == 0) return cmd_info(argv[2]);
  if (argc >= 5) return cmd_forward(argc, argv);
  fprintf(stderr, "usage: forward MODEL.onnx IN.f32 N OUT.f32 [--threads T]\n"
                  "       forward --info MODEL.onnx\n");
  return fail(CNN_EINVAL, "bad arguments");
}
