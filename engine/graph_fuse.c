/*
 * graph_fuse.c — load-time rewrites that remove whole passes over activations.
 *
 *  1. Conv -> BatchNormalization (conv output read only by the BN): the BN is folded
 *     into new conv weights and bias, computed in double precision:
 *     W' = W * s, b' = b * s + t, with s = gamma / sqrt(var + eps), t = beta - mean * s.
 *  2. Add(a, conv_out) where conv_out is read only by the Add and `a` is produced
 *     before the conv runs: the Add becomes the conv's residual epilogue.
 *  3. Relu(conv_out) where conv_out is read only by the Relu: ReLU in the epilogue.
 *  4. Concat on channels of such convs' outputs: the convs write their slices of the
 *     Concat's output in place (graph_concat.c).
 *  5. Sibling 1x1 convs reading one value: one conv with row groups (graph_siblings.c).
 *  6. A residual block's 1x1 projection shortcut and its last 1x1 conv: one conv over
 *     both inputs side by side (graph_shortcut.c).
 * Before them, a per-channel affine map written channel by channel (GoogLeNet's input
 * re-normalization) becomes one scale-and-shift node (graph_fuse_affine.c).
 * A fused-away node is marked dead and the conv takes over its output value. The
 * original initializers are never modified (they may be shared); folded weights are
 * new constant values owned by the model. Each conv's weights are then prepared for
 * its kernel by graph_prepare (graph_prepare.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"

/* How many live node inputs (plus the graph output) read each value. */
static int *count_readers(const cnn_model_t *m) {
  int *cnt = calloc((size_t)m->nvals, sizeof *cnt);
  if (!cnt) return NULL;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) cnt[n->in[j]]++;
    if (n->op == OP_CONV && n->a.conv.residual >= 0) cnt[n->a.conv.residual]++;
  }
  cnt[m->output]++;
  return cnt;
}

/* The live conv producing v and read by nothing else, or NULL. */
static graph_node_t *sole_conv(cnn_model_t *m, const int *readers, int v) {
  if (v < 0 || readers[v] != 1 || m->vals[v].producer < 0) return NULL;
  graph_node_t *c = &m->nodes[m->vals[v].producer];
  return (!c->dead && c->op == OP_CONV && c->out == v) ? c : NULL;
}

static void take_output(cnn_model_t *m, graph_node_t *conv, graph_node_t *gone) {
  int ci = (int)(conv - m->nodes);
  m->vals[conv->out].producer = -1;
  conv->out = gone->out;
  m->vals[conv->out].producer = ci;
  gone->dead = 1;
}

static int fold_bn(cnn_model_t *m, int ci, int bi, cnn_error_t *err) {
  kern_conv_t k = m->nodes[ci].a.conv.k;
  int64_t per = (int64_t)k.cin * k.kh * k.kw;
  int wv = graph_new_floats(m, &m->nodes[ci], "folded_weight", k.cout * per, err);
  if (wv < 0) return wv;
  int bv = graph_new_floats(m, &m->nodes[ci], "folded_bias", k.cout, err);
  if (bv < 0) return bv;
  const graph_node_t *bn = &m->nodes[bi];
  float *w = m->vals[wv].f, *b = m->vals[bv].f;
  for (int co = 0; co < k.cout; co++) {
    double s = bn->a.bn.scale[co];
    for (int64_t j = 0; j < per; j++) w[co * per + j] = (float)(k.weight[co * per + j] * s);
    b[co] = (float)((k.bias ? k.bias[co] : 0.0) * s + bn->a.bn.shift[co]);
  }
  graph_node_t *c = &m->nodes[ci];
  c->a.conv.k.weight = w;
  c->a.conv.k.bias = b;
  take_output(m, c, &m->nodes[bi]);
  return 0;
}

static int same_shape(const graph_value_t *a, const graph_value_t *b) {
  return a->ndim == b->ndim && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

/* Index of the node that makes v available (-1: the input or a constant). */
static int ready_at(const cnn_model_t *m, int v) {
  return m->vals[graph_root(m, v)].producer;
}

static int fuse_add(cnn_model_t *m, int ai, const int *readers) {
  graph_node_t *add = &m->nodes[ai];
  if (add->nin != 2) return 0;
  graph_node_t *best = NULL;
  int other = -1;
  for (int j = 0; j < 2; j++) {
    graph_node_t *c = sole_conv(m, readers, add->in[j]);
    int o = add->in[1 - j];
    if (!c || c->a.conv.residual >= 0 || c->a.conv.k.relu || !graph_is_runtime(&m->vals[o]) ||
        !same_shape(&m->vals[o], &m->vals[add->out]) || !same_shape(&m->vals[c->out], &m->vals[add->out]))
      continue;
    if (ready_at(m, o) >= (int)(c - m->nodes)) continue; /* residual not ready when conv runs */
    if (!best || c > best) best = c, other = o;
  }
  if (!best) return 0;
  best->a.conv.residual = other;
  take_output(m, best, add);
  return 1;
}

static int fuse_pass(cnn_model_t *m, graph_op_t op, cnn_error_t *err) {
  for (int i = 0; i < m->nnodes; i++) {
    graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != op) continue;
    int *readers = count_readers(m);
    if (!readers) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
    graph_node_t *c = sole_conv(m, readers, n->in[0]);
    int rc = 0;
    if (op == OP_BATCHNORM && c && !c->a.conv.k.relu && c->a.conv.residual < 0)
      rc = fold_bn(m, (int)(c - m->nodes), i, err);
    else if (op == OP_ADD)
      fuse_add(m, i, readers);
    else if (op == OP_RELU && c && !c->a.conv.k.relu)
      c->a.conv.k.relu = 1, take_output(m, c, n);
    free(readers);
    if (rc) return rc;
  }
  return 0;
}

int graph_fuse(cnn_model_t *m, cnn_error_t *err) {
  int rc, *readers = count_readers(m);
  if (!readers) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  rc = graph_fuse_affine(m, readers, err);
  free(readers);
  if (rc) return rc;
  if (!(rc = fuse_pass(m, OP_BATCHNORM, err)) && !(rc = fuse_pass(m, OP_ADD, err)))
    rc = fuse_pass(m, OP_RELU, err);
  if (rc) return rc;
  if (!(readers = count_readers(m))) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  rc = graph_concat_inplace(m, readers, err);
  free(readers);
  if (!rc) rc = graph_merge_siblings(m, err);
  if (rc) return rc;
  if (!(readers = count_readers(m))) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  rc = graph_merge_shortcuts(m, readers, err);
  free(readers);
  return rc;
}
