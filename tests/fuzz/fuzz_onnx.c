/*
 * fuzz_onnx.c — libFuzzer target for the ONNX loader: protobuf decode, graph build,
 * shape inference, fusion and the memory plan, from bytes (cnn_model_load_buffer,
 * no folder: external data is refused). A model that loads and is small (few MACs,
 * small arena) also runs one forward and a top-k, so the kernels see what shape
 * inference let through; anything larger is only loaded, which keeps every
 * execution bounded in time and memory.
 *
 * Seeds: tests/fuzz/corpus/fuzz_onnx, tiny models written by tests/fuzz/make_onnx_seeds.py.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"

#define FORWARD_MAX_MACS (1 << 24)
#define FORWARD_MAX_FLOATS (1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_forward(const cnn_model_t *m) {
  const cnn_model_info_t *in = cnn_model_info(m);
  size_t nin = (size_t)in->in_c * (size_t)in->in_h * (size_t)in->in_w;
  if (in->macs > FORWARD_MAX_MACS || nin > FORWARD_MAX_FLOATS || in->num_classes < 1 ||
      in->num_classes > FORWARD_MAX_FLOATS)
    return;
  cnn_ctx_t *ctx;
  cnn_error_t err;
  if (cnn_ctx_create(m, 1, 1, &ctx, &err) != 0) return;
  if (cnn_ctx_arena_bytes(ctx) > (size_t)FORWARD_MAX_FLOATS * sizeof(float)) {
    cnn_ctx_destroy(ctx);
    return;
  }
  float *x = malloc(nin * sizeof(float));
  float *y = malloc((size_t)in->num_classes * sizeof(float));
  int idx[5];
  float prob[5];
  if (x && y) {
    for (size_t i = 0; i < nin; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    if (cnn_forward(ctx, x, 1, y, &err) == 0)
      cnn_topk(y, in->num_classes, 5, in->outputs_probabilities, idx, prob);
  }
  free(x);
  free(y);
  cnn_ctx_destroy(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cnn_model_t *m = NULL;
  cnn_error_t err;
  int rc = cnn_model_load_buffer(data, size, NULL, "fuzz", &m, &err);
  if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz_onnx: %s\n", rc ? err.msg : "loaded");
  if (rc != 0) {
    /* Every refusal carries a code from the table and a message. */
    if (m || rc != err.code || err.msg[0] == '\0' || !strcmp(cnn_err_code(rc), "ok")) abort();
    return 0;
  }
  const cnn_model_info_t *in = cnn_model_info(m);
  if (in->in_c != 3 || in->in_h < 1 || in->in_w < 1 || in->num_classes < 1) abort();
  for (int i = 0; i < in->num_classes; i++)
    if (!in->labels || !in->labels[i]) abort();
  run_forward(m);
  cnn_model_destroy(m);
  return 0;
}
