/*
 * test_graph_fuse.c — the load-time rewrites, seen in the loaded graph.
 *
 * GoogLeNet's input re-normalization (torchvision's transform_input: per channel
 * Gather -> Unsqueeze -> Mul -> Add, then Concat) must load as one scale-and-shift
 * node reading the input, with torchvision's constants (graph_fuse_affine.c); its
 * results are checked against PyTorch by make test-diff and, with near misses that must
 * stay unfolded, by tests/diff/test_ops.py. Its inception Concats must be written in
 * place by the convs feeding them (graph_concat.c), and the activation plan must never
 * let a node overwrite a value a later node reads. ResNet-50's projection shortcuts must
 * be merged into their blocks' last convs (graph_shortcut.c). Uses the GoogLeNet,
 * ResNet-18 and ResNet-50 test models (CNN_TEST_MODELS).
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
      cr_assert(c->op == OP_CONV && c->a.conv.residual < 0);
      size_t stride = c->a.conv.k.out_img; /* or its row group's, when merged */
      for (int g = 0; g < c->a.conv.k.ngroups; g++)
        if (c->a.conv.gout[g] == n->in[j]) stride = c->a.conv.k.group_out_img[g];
      cr_assert_eq(stride, (size_t)graph_numel(o), "%s input %d: images %zu apart", n->name, j, stride);
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
    int outs[GRAPH_MAX_OUTPUTS], no = graph_node_outputs(n, outs);
    for (int k = 0; k < no; k++) {
      int o = outs[k], ro = graph_root(m, o);
      int64_t w0 = m->vals[ro].offset + graph_view_off(m, o), w1 = w0 + graph_numel(&m->vals[o]);
      for (int x = 0; x < m->nvals; x++) {
        const graph_value_t *v = &m->vals[x];
        int rx = graph_root(m, x);
        if (x == o || v->kind != VAL_RUNTIME || rx == m->input || v->producer < 0 ||
            v->producer > i || last[x] <= i)
          continue;
        int64_t r0 = m->vals[rx].offset + graph_view_off(m, x), r1 = r0 + graph_numel(v);
        cr_assert(w1 <= r0 || r1 <= w0,
                  "%s: node %s writes [%lld, %lld) over %s [%lld, %lld), read at node %d", file,
                  n->name, (long long)w0, (long long)w1, v->name, (long long)r0, (long long)r1,
                  last[x]);
        checked++;
      }
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

/* Each inception module's three 1x1 convs on its input (branch 1, and the bottlenecks
 * of branches 2 and 3) load as one conv with three row groups (graph_siblings.c), which
 * writes the three outputs; the other two convs are dead. */
Test(graph_fuse, googlenet_sibling_1x1_convs_merged) {
  cnn_model_t *m = ref_load_test_model("googlenet.onnx");
  int merged = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONV || n->a.conv.k.ngroups == 0) continue;
    const kern_conv_t *k = &n->a.conv.k;
    merged++;
    cr_assert_eq(k->ngroups, 3, "%s: %d groups", n->name, k->ngroups);
    cr_assert_eq(n->a.conv.gout[0], n->out);
    cr_assert(k->kh == 1 && k->kw == 1 && k->group_row[0] == 0 && k->group_row[3] == k->cout);
    for (int g = 0; g < k->ngroups; g++) {
      const graph_value_t *o = &m->vals[n->a.conv.gout[g]];
      cr_assert_eq(o->producer, i, "%s: group %d's output made elsewhere", n->name, g);
      cr_assert_eq(o->dims[1], k->group_row[g + 1] - k->group_row[g], "%s: group %d rows", n->name, g);
      cr_assert_eq(k->group_row[g] % 8, 0);
    }
    for (int j = 0; j < m->nnodes; j++) /* no live conv left reading the same input 1x1 */
      cr_assert(j == i || m->nodes[j].dead || m->nodes[j].op != OP_CONV ||
                m->nodes[j].in[0] != n->in[0] || m->nodes[j].a.conv.k.kh != 1,
                "%s and %s both read %s", n->name, m->nodes[j].name, m->vals[n->in[0]].name);
  }
  cr_assert_eq(merged, 9, "%d merged convs, expected one per inception module", merged);
  cnn_model_destroy(m);
}

/* Each ResNet-50 stage's first block ends in one conv over [x2 ; xs] (graph_shortcut.c):
 * conv2 writes x2 as the first channels of the merged conv's input Z, a subsample node
 * copies the block input at the shortcut's stride into the rest, and the merged conv
 * reads Z with stride 1 and no residual. No residual is left that a shortcut (a 1x1 conv
 * without ReLU) makes. */
Test(graph_fuse, resnet50_projection_shortcuts_merged) {
  cnn_model_t *m = ref_load_test_model("resnet50.onnx");
  static const int strides[4] = {1, 2, 2, 2};
  int merged = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    if (n->op == OP_CONV && n->a.conv.residual >= 0) {
      const graph_node_t *p = &m->nodes[m->vals[n->a.conv.residual].producer];
      cr_assert(p->op != OP_CONV || p->a.conv.k.kh != 1 || p->a.conv.k.relu,
                "%s: residual from the 1x1 conv %s, a shortcut left unmerged", n->name, p->name);
    }
    if (n->op != OP_SUBSAMPLE) continue;
    cr_assert_lt(merged, 4, "more than 4 merged shortcuts");
    const graph_value_t *z = &m->vals[n->out];
    cr_assert_eq(z->alias_of, -1);
    cr_assert_eq(n->a.sub.stride, strides[merged], "%s: stride %d", n->name, n->a.sub.stride);
    cr_assert_eq(n->a.sub.c, m->vals[n->in[0]].dims[1]);
    cr_assert_eq(n->a.sub.oh, z->dims[2]);
    cr_assert_eq((n->a.sub.h - 1) / n->a.sub.stride + 1, n->a.sub.oh);
    int64_t plane = z->dims[2] * z->dims[3], c2 = z->dims[1] - n->a.sub.c;
    cr_assert_eq(n->a.sub.off, c2 * plane, "%s: the copy at %lld", n->name, (long long)n->a.sub.off);
    int readers = 0, views = 0;
    for (int j = i + 1; j < m->nnodes; j++) {
      const graph_node_t *c = &m->nodes[j];
      if (c->dead || c->op != OP_CONV || c->in[0] != n->out) continue;
      readers++;
      cr_assert_eq(c->a.conv.k.cin, z->dims[1]);
      cr_assert(c->a.conv.k.kh == 1 && c->a.conv.k.stride_h == 1 && c->a.conv.residual < 0 &&
                c->a.conv.k.relu);
      cr_assert_eq(c->a.conv.h, z->dims[2]);
    }
    for (int v = 0; v < m->nvals; v++) {
      const graph_value_t *x = &m->vals[v];
      if (x->alias_of != n->out) continue;
      views++;
      cr_assert_eq(x->view_off, 0);
      cr_assert_eq(x->dims[1], c2);
      const graph_node_t *w = &m->nodes[x->producer];
      cr_assert(w->op == OP_CONV && w->out == v && w->a.conv.k.kh == 3 && w->a.conv.k.out_img ==
                (size_t)graph_numel(z), "%s: x2 not written in place by conv2", n->name);
    }
    cr_assert_eq(readers, 1, "%s: %d convs read its output", n->name, readers);
    cr_assert_eq(views, 1, "%s: %d views of its output", n->name, views);
    merged++;
  }
  cr_assert_eq(merged, 4, "%d merged shortcuts, expected one per stage", merged);
  cnn_model_destroy(m);
  plan_check_no_clobber("resnet50.onnx");
}
