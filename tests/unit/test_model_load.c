/*
 * test_model_load.c — how a load gets its bytes and weights: float raw_data the
 * decoder left 64-byte aligned is adopted, not copied (onnx_tensor.c); anything else
 * is copied, and odd sizes still fail; a file read on several threads loads the same
 * model as the same bytes handed over in memory (model.c).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "graph.h"
#include "kern_sgemm.h"
#include "mem.h"
#include "onnx_internal.h"
#include "ref.h"

static void tensor_init(Onnx__TensorProto *t, int64_t *dims, uint8_t *raw, size_t bytes) {
  onnx__tensor_proto__init(t);
  t->has_data_type = 1;
  t->data_type = 1; /* FLOAT */
  t->n_dims = 2;
  t->dims = dims;
  t->has_raw_data = 1;
  t->raw_data.data = raw;
  t->raw_data.len = bytes;
}

Test(model_load, aligned_float_raw_data_is_adopted) {
  cnn_model_t m = {0};
  cnn_error_t err;
  int vi = graph_add_value(&m, "w", &err);
  cr_assert_geq(vi, 0);
  int64_t dims[2] = {3, 5};
  float *raw = cnn_mem_alloc(15 * sizeof *raw);
  for (int i = 0; i < 15; i++) raw[i] = (float)i * 0.5f - 2.0f;
  Onnx__TensorProto t;
  tensor_init(&t, dims, (uint8_t *)raw, 15 * sizeof *raw);
  cr_assert_eq(onnx_tensor_to_value(&m, &t, vi, &err), 0, "%s", err.msg);
  cr_assert_eq(m.vals[vi].f, raw, "the decoded block itself becomes the weights");
  cr_assert_null(t.raw_data.data, "and the protobuf no longer owns it");
  cr_assert_eq(t.raw_data.len, 0);
  cr_assert_float_eq(m.vals[vi].f[14], 5.0f, 0);
  graph_free(&m); /* frees raw once, through the value */
}

Test(model_load, misaligned_raw_data_is_copied) {
  cnn_model_t m = {0};
  cnn_error_t err;
  int vi = graph_add_value(&m, "w", &err);
  int64_t dims[2] = {2, 3};
  uint8_t *block = malloc(6 * sizeof(float) + 64);
  uint8_t *raw = block + (64 - (uintptr_t)block % 64) % 64 + 4; /* 4 past a 64-byte line */
  for (int i = 0; i < 6; i++) {
    float x = (float)i + 0.25f;
    memcpy(raw + 4 * i, &x, 4);
  }
  Onnx__TensorProto t;
  tensor_init(&t, dims, raw, 6 * sizeof(float));
  cr_assert_eq(onnx_tensor_to_value(&m, &t, vi, &err), 0, "%s", err.msg);
  cr_assert_neq((void *)m.vals[vi].f, (void *)raw);
  cr_assert_eq(t.raw_data.data, raw, "left with the protobuf");
  cr_assert_eq((uintptr_t)m.vals[vi].f % 64, 0, "the copy is aligned");
  for (int i = 0; i < 6; i++) cr_assert_float_eq(m.vals[vi].f[i], (float)i + 0.25f, 0);
  graph_free(&m);
  free(block);
}

Test(model_load, aligned_raw_data_of_the_wrong_size_is_refused) {
  cnn_model_t m = {0};
  cnn_error_t err;
  int vi = graph_add_value(&m, "w", &err);
  int64_t dims[2] = {2, 3};
  float *raw = cnn_mem_alloc(8 * sizeof *raw);
  Onnx__TensorProto t;
  tensor_init(&t, dims, (uint8_t *)raw, 7 * sizeof *raw);
  cr_assert_eq(onnx_tensor_to_value(&m, &t, vi, &err), CNN_EMODEL_INVALID);
  cr_assert_eq(t.raw_data.data, (uint8_t *)raw, "not adopted");
  cr_assert_null(m.vals[vi].f);
  graph_free(&m);
  free(raw);
}

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  rewind(f);
  uint8_t *data = malloc(*len);
  cr_assert_eq(fread(data, 1, *len, f), *len);
  fclose(f);
  return data;
}

static void forward_once(const cnn_model_t *m, const float *x, float *out) {
  cnn_ctx_t *c = NULL;
  cnn_error_t err;
  cr_assert_eq(cnn_ctx_create(m, 1, 1, &c, &err), 0, "%s", err.msg); /* one thread: the same sums */
  cr_assert_eq(cnn_forward(c, x, 1, out, &err), 0, "%s", err.msg);
  cnn_ctx_destroy(c);
}

/* ResNet-18 (45 MB) is read by every thread a share (pread) and its convs prepared in
 * parallel; the same bytes loaded from memory must give the very same outputs. */
Test(model_load, file_read_in_parallel_loads_the_same_model_as_memory) {
  const char *dir = getenv("CNN_TEST_MODELS");
  cr_assert_not_null(dir, "CNN_TEST_MODELS is not set (make unit sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/resnet18.onnx", dir);
  size_t len = 0;
  uint8_t *bytes = slurp(path, &len);
  cnn_model_t *a = NULL, *b = NULL;
  cnn_error_t err;
  cr_assert_eq(cnn_model_load(path, &a, &err), 0, "%s", err.msg);
  cr_assert_eq(cnn_model_load_buffer(bytes, len, dir, "resnet18", &b, &err), 0, "%s", err.msg);
  free(bytes);
  const cnn_model_info_t *ia = cnn_model_info(a);
  size_t in = (size_t)ia->in_c * ia->in_h * ia->in_w, nc = (size_t)ia->num_classes;
  ref_rng_t rng = {0x10AD};
  float *x = ref_random(&rng, in, -2.0f, 2.0f), *ya = malloc(nc * 4), *yb = malloc(nc * 4);
  forward_once(a, x, ya);
  forward_once(b, x, yb);
  cr_assert_eq(memcmp(ya, yb, nc * 4), 0, "outputs differ");
  cr_assert_eq(ia->params, cnn_model_info(b)->params);
  free(x), free(ya), free(yb);
  cnn_model_destroy(a);
  cnn_model_destroy(b);
}

/* Once prepared (packed or Winograd-transformed, on the load's threads), a conv's plain
 * weights are freed: a loaded model holds one copy of them. Builds without an sgemm
 * micro-kernel (x86-64 baseline) keep the plain weights of the convs OpenBLAS runs. */
Test(model_load, prepared_convs_keep_no_plain_weights) {
  cnn_model_t *m = ref_load_test_model("resnet18.onnx");
  int prepared = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONV) continue;
    const kern_conv_t *k = &n->a.conv.k;
    if (!k->packed && !k->gemm_a) {
      cr_assert_not_null(k->weight, "conv %d has no weights at all", i);
      continue;
    }
    prepared++;
    cr_assert_null(k->weight, "conv %d still holds its plain weights", i);
    cr_assert(n->nin < 2 || !m->vals[n->in[1]].f, "conv %d's weight value is still there", i);
  }
  /* 20 convs; the 13 3x3 stride-1 ones are Winograd everywhere, the rest packed
   * where there is a micro-kernel */
  cr_assert_geq(prepared, kern_sgemm_available() ? 20 : 13, "%d of ResNet-18's 20 convs prepared", prepared);
  cnn_model_destroy(m);
}
