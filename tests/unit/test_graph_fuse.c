/*
 * test_graph_fuse.c — the load-time rewrites, seen in the loaded graph.
 *
 * GoogLeNet's input re-normalization (torchvision's transform_input: per channel
 * Gather -> Unsqueeze -> Mul -> Add, then Concat) must load as one scale-and-shift
 * node reading the input, with torchvision's constants (graph_fuse_affine.c); its
 * results are checked against PyTorch by make test-diff and, with near misses that must
 * stay unfolded, by tests/diff/test_ops.py. Its inception Concats must be written in
 * place by the convs feeding them (graph_concat.c), and the activation plan must never
 * let a node overwrite a value a later node reads. Uses the GoogLeNet and ResNet-18 test
 * models (CNN_TEST_MODELS).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnn.h"
#include "ctx_run.h"
#include "graph.h"
#include "ref.h"

Test(graph_fuse, googlenet_input_renormalization_is_one_node) {
  cnn_model_t *m = ref_load_test_model("googlenet.onnx");
  int affine = 0, chains = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    if (n->op == OP_GATHER || n->op == OP_UNSQUEEZE || n->op == OP_MUL || n->op == OP_ADD) chains++;
    if (n->op != OP_BATCHNORM) continue;
    affine++;
    cr_assert_eq(n->nin, 1);
    cr_assert_eq(graph_root(m, n->in[0]), m->input, "reads the input");
    static const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    for (int c = 0; c < 3; c++) {
      cr_assert_float_eq(n->a.bn.scale[c], (float)(sd[c] / 0.5), 1e-6, "scale %d", c);
      cr_assert_float_eq(n->a.bn.shift[c], (float)((mean[c] - 0.5) / 0.5), 1e-6, "shift %d", c);
    }
  }
  cr_assert_eq(affine, 1, "%d scale-and-shift nodes", affine);
  cr_assert_eq(chains, 0, "%d Gather/Unsqueeze/Mul/Add nodes left", chains);
  cnn_model_destroy(m);
}

/* Every inception module's Concat is written in place (graph_concat.c): its inputs are
 * views of its output, in order, one after the other, each written by a conv whose
 * images lie the whole Concat's map apart. */
Test(graph_fuse, googlenet_concats_written_in_place) {
  cnn_model_t *m = ref_load_test_model("googlenet.onnx");
  int inplace = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONCAT) continue;
    cr_assert(n->inplace, "Concat %s is copied", n->name);
    inplace++;
    const graph_value_t *o = &m->vals[n->out];
    int64_t plane = o->dims[2] * o->dims[3], off = 0;
    for (int j = 0; j < n->nin; j++) {
      const graph_value_t *x = &m->vals[n->in[j]];
      cr_assert_eq(x->alias_of, n->out, "%s input %d is not a view of its output", n->name, j);
      cr_assert_eq(x->view_off, off, "%s input %d at %lld, expected %lld", n->name, j,
                   (long long)x->view_off, (long long)off);
      const graph_node_t *c = &m->nodes[x->producer];
      cr_assert(c->op == OP_CONV && c->a.conv.residual < 0 && c->a.conv.k.out_img == (size_t)graph_numel(o));
      off += x->dims[1] * plane;
    }
    cr_assert_eq(off, graph_numel(o), "%s: the views do not tile its output", n->name);
  }
  cr_assert_eq(inplace, 9, "%d Concats written in place, expected GoogLeNet's 9", inplace);
  cnn_model_destroy(m);
}

/* The activation plan, checked by replaying a forward: no node's output may overlap in
 * the arena a value written before it that a later node still reads (a Concat's views
 * are written long before the Concat, so its slot must be live from the first of them). */
static void plan_check_no_clobber(const char *file) {
  cnn_model_t *m = ref_load_test_model(file);
  int *last = malloc((size_t)m->nvals * sizeof *last);
  cr_assert(last);
  for (int v = 0; v < m->nvals; v++) last[v] = -1;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) last[n->in[j]] = i;
    if (n->op == OP_CONV && n->a.conv.residual >= 0) last[n->a.conv.residual] = i;
  }
  last[m->output] = m->nnodes;
  int checked = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || ctx_is_alias_op(n->op) || n->inplace) continue;
    int ro = graph_root(m, n->out);
    int64_t w0 = m->vals[ro].offset + graph_view_off(m, n->out), w1 = w0 + graph_numel(&m->vals[n->out]);
    for (int x = 0; x < m->nvals; x++) {
      const graph_value_t *v = &m->vals[x];
      int rx = graph_root(m, x);
      if (x == n->out || v->kind != VAL_RUNTIME || rx == m->input || v->producer < 0 ||
          v->producer >= i || last[x] <= i)
        continue;
      int64_t r0 = m->vals[rx].offset + graph_view_off(m, x), r1 = r0 + graph_numel(v);
      cr_assert(w1 <= r0 || r1 <= w0, "%s: node %s writes [%lld, %lld) over %s [%lld, %lld), read at node %d",
                file, n->name, (long long)w0, (long long)w1, v->name, (long long)r0, (long long)r1, last[x]);
      checked++;
    }
  }
  cr_assert_gt(checked, 0);
  free(last);
  cnn_model_destroy(m);
}

Test(graph_fuse, plan_never_overwrites_a_value_still_read) {
  plan_check_no_clobber("googlenet.onnx");
  plan_check_no_clobber("resnet18.onnx");
}
