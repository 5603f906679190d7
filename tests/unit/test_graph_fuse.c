/*
 * test_graph_fuse.c — the load-time rewrites, seen in the loaded graph.
 *
 * GoogLeNet's input re-normalization (torchvision's transform_input: per channel
 * Gather -> Unsqueeze -> Mul -> Add, then Concat) must load as one scale-and-shift
 * node reading the input, with torchvision's constants (graph_fuse_affine.c); its
 * results are checked against PyTorch by make test-diff and, with near misses that must
 * stay unfolded, by tests/diff/test_ops.py. Uses the GoogLeNet test model
 * (CNN_TEST_MODELS).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnn.h"
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
