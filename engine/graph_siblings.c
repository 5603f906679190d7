/*
 * graph_siblings.c — sibling 1x1 convs on one input merged into one product.
 *
 * Each GoogLeNet inception module opens with three 1x1 convs on its input: branch 1's,
 * and the bottlenecks before branch 2's 3x3 and branch 3's. Run one by one they are
 * three tasks on the pool, each ending with the threads meeting, and each packing and
 * streaming the same input. Merged, their weights are stacked into one conv of
 * cout = the sum, whose output rows are split into row groups (kern_conv_t.ngroups),
 * each written to its own conv's output value at that output's own image stride (a
 * Concat's slice for branch 1, graph_concat.c); kern_conv2d_groups gives every group
 * the same bits as its conv alone (each output row is the same sum over K).
 * The merged conv takes the place of the earliest sibling (the leader); the others are
 * marked dead and their outputs are now produced by the leader, i.e. earlier than
 * before, which is safe: the input is ready then, and nothing reads those outputs
 * before their own conv's old position. The plan keeps each group's output live from
 * the leader on (graph_plan.c, graph_node_outputs).
 * Siblings: live direct 1x1 convs (1x1, stride 1, no padding) reading the same value,
 * without a residual and with the same ReLU, each cout a multiple of KERN_SGEMM_MR
 * (group boundaries start micro-kernel tiles), up to KERN_CONV_GROUPS of them. The
 * merged weights and bias are new constants owned by the model; the siblings' own are
 * freed when nothing else reads them.
 * GoogLeNet (9 merges of 3): session 34, Zen 5, 2 threads, forwards alternating in
 * blocks between a model loaded with and one without (Concats in place in both):
 * batch 1 p50 6.843 -> 6.707 and 6.859 -> 6.726 ms (p10 6.690 -> 6.575, 6.690 ->
 * 6.579), batch 8 p50 42.66 -> 42.45 ms.
 */
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "kern_sgemm.h"

static int direct_1x1(const graph_node_t *n) {
  const kern_conv_t *k = &n->a.conv.k;
  return !n->dead && n->op == OP_CONV && kern_conv_direct(k) && n->a.conv.residual < 0 &&
         k->ngroups == 0 && k->cout % KERN_SGEMM_MR == 0 && k->weight;
}

/* Merges the convs sib[0 .. count) (node indices, in order) into sib[0]. */
static int merge(cnn_model_t *m, const int *sib, int count, cnn_error_t *err) {
  int cin = m->nodes[sib[0]].a.conv.k.cin, cout = 0;
  for (int g = 0; g < count; g++) cout += m->nodes[sib[g]].a.conv.k.cout;
  int wv = graph_new_floats(m, &m->nodes[sib[0]], "merged_weight", (int64_t)cout * cin, err);
  if (wv < 0) return wv;
  int bv = graph_new_floats(m, &m->nodes[sib[0]], "merged_bias", cout, err);
  if (bv < 0) return bv;
  float *w = m->vals[wv].f, *b = m->vals[bv].f;
  const float *old_w[KERN_CONV_GROUPS], *old_b[KERN_CONV_GROUPS];
  graph_node_t *lead = &m->nodes[sib[0]];
  int row = 0;
  int64_t macs = 0;
  for (int g = 0; g < count; g++) {
    graph_node_t *s = &m->nodes[sib[g]];
    const kern_conv_t *k = &s->a.conv.k;
    memcpy(w + (size_t)row * (size_t)cin, k->weight, sizeof(float) * (size_t)k->cout * (size_t)cin);
    for (int r = 0; r < k->cout; r++) b[row + r] = k->bias ? k->bias[r] : 0.0f;
    old_w[g] = k->weight, old_b[g] = k->bias;
    lead->a.conv.k.group_row[g] = row;
    lead->a.conv.k.group_out_img[g] = k->out_img;
    lead->a.conv.gout[g] = s->out;
    m->vals[s->out].producer = sib[0];
    macs += s->macs;
    row += k->cout;
    if (g > 0) s->dead = 1;
  }
  kern_conv_t *k = &lead->a.conv.k;
  k->group_row[count] = row;
  k->ngroups = count;
  k->cout = cout;
  k->weight = w, k->bias = b;
  k->out_img = 0;
  lead->macs = macs;
  for (int g = 0; g < count; g++) {
    graph_drop_data(m, old_w[g]), graph_drop_data(m, old_b[g]);
    const graph_node_t *s = &m->nodes[sib[g]];
    for (int j = 1; g > 0 && j < s->nin; j++) graph_drop_value(m, s->in[j]); /* ONNX initializers */
  }
  return 0;
}

int graph_merge_siblings(cnn_model_t *m, cnn_error_t *err) {
  for (int i = 0; i < m->nnodes; i++) {
    if (!direct_1x1(&m->nodes[i])) continue;
    int sib[KERN_CONV_GROUPS] = {i}, count = 1;
    const graph_node_t *lead = &m->nodes[i];
    for (int j = i + 1; j < m->nnodes && count < KERN_CONV_GROUPS; j++) {
      const graph_node_t *n = &m->nodes[j];
      if (direct_1x1(n) && n->in[0] == lead->in[0] && n->a.conv.k.cin == lead->a.conv.k.cin &&
          n->a.conv.k.relu == lead->a.conv.k.relu)
        sib[count++] = j;
    }
    if (count < 2) continue;
    int rc = merge(m, sib, count, err);
    if (rc) return rc;
  }
  return 0;
}
