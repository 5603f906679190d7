/*
 * test_forward_batch.c — a batch gives every image exactly the scores it gets alone.
 *
 * cnn_forward runs a batch's early layers image by image, each thread taking whole
 * images, its last one stage by stage (claimed by whichever thread is free), with
 * leftover images spread over all threads (ctx.c, graph_plan_serial), then the rest
 * batched. Every output row must still equal, bit for bit, the same
 * image's batch-1 forward (with the engine's own sgemm, whose sums do not depend on
 * the batch; builds with neither AVX-512 nor AVX2 multiply with OpenBLAS, whose
 * blocking changes with the matrix size, so there 5e-5 of the largest score: GoogLeNet's
 * 57 convs drifted to 1.1e-5): for batches that divide
 * among the threads and batches
 * that leave images over, at 1 to 3 threads, and across repeated forwards on the
 * same context (arenas reused). Uses the ResNet-18, ResNet-50 and GoogLeNet test
 * models (CNN_TEST_MODELS).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "graph.h"
#include "kern_sgemm.h"
#include "ref.h"

/* Batches against batch-1 forwards of `file` at 1 to 3 threads; with `batched` the
 * contexts profile, which runs every node on the whole batch (no image-serial prefix). */
static void batch_rows_check(const char *file, int batched) {
  cnn_model_t *m = ref_load_test_model(file);
  const cnn_model_info_t *info = cnn_model_info(m);
  size_t in = (size_t)info->in_c * info->in_h * info->in_w, k = (size_t)info->num_classes;
  enum { MAXB = 7 };
  float *x = malloc(in * MAXB * sizeof *x), *one = malloc(k * MAXB * sizeof *one);
  float *got = malloc(k * MAXB * sizeof *got);
  cr_assert(x && one && got);
  unsigned s = 12345;
  for (size_t i = 0; i < in * MAXB; i++) {
    s = s * 1103515245u + 12345u;
    x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
  }
  cnn_error_t err;
  for (int threads = 1; threads <= 3; threads++) {
    cnn_ctx_t *c = NULL;
    cr_assert_eq(cnn_ctx_create(m, MAXB, threads, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(cnn_ctx_set_profiling(c, batched), 0);
    for (int i = 0; i < MAXB; i++)
      cr_assert_eq(cnn_forward(c, x + in * i, 1, one + k * i, &err), 0, "%s", err.msg);
    static const int batches[] = {2, 3, 7, 4, 5};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
      int n = batches[b];
      memset(got, 0xFF, k * MAXB * sizeof *got);
      cr_assert_eq(cnn_forward(c, x, n, got, &err), 0, "%s", err.msg);
      for (int i = 0; i < n; i++) {
        const float *g = got + k * i, *w = one + k * i;
        if (kern_sgemm_available()) {
          cr_assert_eq(memcmp(g, w, k * sizeof *g), 0,
                       "%s%s, %d threads, batch %d: row %d differs from its batch-1 forward",
                       file, batched ? " batched" : "", threads, n, i);
          continue;
        }
        float big = 0.0f, diff = 0.0f;
        for (size_t q = 0; q < k; q++) {
          big = fabsf(w[q]) > big ? fabsf(w[q]) : big;
          diff = fabsf(g[q] - w[q]) > diff || g[q] != g[q] ? fabsf(g[q] - w[q]) : diff;
        }
        cr_assert(diff <= 5e-5f * big, "%s, %d threads, batch %d: row %d off by %g (max %g)",
                  file, threads, n, i, (double)diff, (double)big);
      }
    }
    cnn_ctx_destroy(c);
  }
  free(x), free(one), free(got);
  cnn_model_destroy(m);
}

Test(forward_batch, rows_match_single_image_forwards) { batch_rows_check("resnet18.onnx", 0); }

/* GoogLeNet's Concats are written in place by convs whose images lie a whole module
 * output apart (graph_concat.c): at batch > 1 that stride must hold, batched (every
 * node on the whole batch) and image by image (its whole graph is the serial prefix
 * where its weights fit the last-level cache). */
Test(forward_batch, googlenet_rows_match_single_image_forwards) {
  batch_rows_check("googlenet.onnx", 0);
  batch_rows_check("googlenet.onnx", 1);
}

/* ResNet-50's merged shortcuts (graph_shortcut.c) read a map that conv2 writes in part
 * at the merged input's image stride and a subsample node fills at a channel offset. */
Test(forward_batch, resnet50_rows_match_single_image_forwards) {
  batch_rows_check("resnet50.onnx", 0);
}

/* The prefix's stages: cut in node order, each boundary crossed by one value alone,
 * which lives in the stage slot; no value is in both the stage slot and the serial
 * arena. */
Test(forward_batch, stages_cut_where_one_value_crosses) {
  cnn_model_t *m = ref_load_test_model("resnet18.onnx");
  int st = m->serial_stages, end = m->serial_end;
  cr_assert(end > 0 && st >= 2 && st <= GRAPH_SERIAL_STAGES, "%d stages, prefix %d", st, end);
  cr_assert(m->serial_cut[0] == 0 && m->serial_cut[st] == end);
  for (int s = 1; s <= st; s++) cr_assert_lt(m->serial_cut[s - 1], m->serial_cut[s]);
  for (int s = 1; s < st; s++) {
    int b = m->serial_cut[s], crossing = 0;
    for (int i = 0; i < b; i++) {
      const graph_node_t *n = &m->nodes[i];
      const graph_value_t *v = &m->vals[n->out];
      if (n->dead || v->alias_of >= 0 || v->last_use < b || v->last_use >= end) continue;
      crossing++;
      cr_assert_geq(v->toffset, 0, "value crossing stage %d's start has no stage slot", s);
    }
    cr_assert_eq(crossing, 1, "stage %d starts at node %d with %d values crossing", s, b, crossing);
  }
  for (int v = 0; v < m->nvals; v++)
    cr_assert(m->vals[v].toffset < 0 || m->vals[v].soffset < 0, "value %d in both arenas", v);
  cr_assert_gt(m->stage_floats, 0);
  cnn_model_destroy(m);
}
