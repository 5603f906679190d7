/*
 * graph_fuse_affine.c — a per-channel affine map spelled out channel by channel,
 * folded into one scale-and-shift pass at load.
 *
 * torchvision's GoogLeNet (transform_input) and Inception v3 export their input
 * re-normalization as, for each channel c of x [N, C, H, W]:
 *     Gather(x, c, axis 1) -> Unsqueeze(axis 1) -> Mul(scalar s_c) -> Add(scalar b_c)
 * and a Concat of the C results on axis 1: four passes per channel and a copy, about 0.04
 * ms of GoogLeNet's 5 at batch 1 on 2 threads. That is y[:, c] = x[:, c] * s_c + b_c, which
 * the BatchNormalization node's kernel (kern_scale_shift) computes in one pass with the
 * same two roundings per element, so the result is bit for bit the same. The Concat node
 * becomes that node (reading x) and the chains' nodes die.
 *
 * The match is strict: channel j of the Concat must come from Gather index j of the same
 * 4-D runtime x with exactly C = dims[1] channels in all, every intermediate value read by
 * nothing else, the constants float scalars (either operand order), the shapes those of the
 * pattern. Anything else is left as it is.
 */
#include <stdlib.h>

#include "error.h"
#include "graph.h"

/* The live node that produces v, read by exactly one node, with op `op`; or NULL. */
static graph_node_t *sole(cnn_model_t *m, const int *readers, int v, graph_op_t op) {
  if (v < 0 || readers[v] != 1 || m->vals[v].producer < 0) return NULL;
  graph_node_t *n = &m->nodes[m->vals[v].producer];
  return !n->dead && n->op == op && n->out == v ? n : NULL;
}

/* The float scalar constant among a binary node's inputs, and its other input. */
static int scalar_operand(const cnn_model_t *m, const graph_node_t *n, float *value, int *other) {
  if (n->nin != 2) return 0;
  for (int j = 0; j < 2; j++) {
    const graph_value_t *c = &m->vals[n->in[j]];
    if (c->kind == VAL_CONST && c->dtype == DT_FLOAT && c->f && graph_numel(c) == 1) {
      *value = c->f[0];
      *other = n->in[1 - j];
      return 1;
    }
  }
  return 0;
}

/* Channel j of the pattern ending in value v, over x: its scale and shift, and the four
 * nodes to retire; 0 when v is not that. */
static int match_channel(cnn_model_t *m, const int *readers, int v, int j, int *x, float *scale,
                         float *shift, graph_node_t *chain[4]) {
  int u, w;
  graph_node_t *add = sole(m, readers, v, OP_ADD), *mul, *unsq, *gat;
  if (!add || !scalar_operand(m, add, shift, &u)) return 0;
  if (!(mul = sole(m, readers, u, OP_MUL)) || !scalar_operand(m, mul, scale, &w)) return 0;
  if (!(unsq = sole(m, readers, w, OP_UNSQUEEZE))) return 0;
  if (!(gat = sole(m, readers, unsq->in[0], OP_GATHER))) return 0;
  if (gat->a.axis.axis != 1 || gat->nidx != 1 || gat->idx[0] != j) return 0;
  if (*x >= 0 && gat->in[0] != *x) return 0;
  *x = gat->in[0];
  const graph_value_t *xv = &m->vals[*x], *uv = &m->vals[unsq->out];
  const graph_value_t *mv = &m->vals[mul->out], *av = &m->vals[add->out];
  if (!graph_is_runtime(xv) || xv->ndim != 4 || uv->ndim != 4 || uv->dims[1] != 1) return 0;
  for (int d = 0; d < 4; d++)
    if ((d != 1 && uv->dims[d] != xv->dims[d]) || mv->dims[d] != uv->dims[d] ||
        av->dims[d] != uv->dims[d] || mv->ndim != 4 || av->ndim != 4)
      return 0;
  chain[0] = add, chain[1] = mul, chain[2] = unsq, chain[3] = gat;
  return 1;
}

static int fold_concat(cnn_model_t *m, graph_node_t *cat, const int *readers, cnn_error_t *err) {
  int c = cat->nin, x = -1;
  const graph_value_t *out = &m->vals[cat->out];
  if (cat->a.axis.axis != 1 || out->ndim != 4 || c < 1 || out->dims[1] != c) return 0;
  float *scale = malloc(sizeof(float) * (size_t)c), *shift = malloc(sizeof(float) * (size_t)c);
  graph_node_t **chains = malloc(sizeof *chains * 4 * (size_t)c);
  if (!scale || !shift || !chains) {
    free(scale), free(shift), free(chains);
    return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  }
  int ok = 1;
  for (int j = 0; j < c && ok; j++)
    ok = match_channel(m, readers, cat->in[j], j, &x, &scale[j], &shift[j], chains + 4 * j);
  if (!ok || m->vals[x].dims[1] != c) {
    free(scale), free(shift), free(chains);
    return 0;
  }
  for (int i = 0; i < 4 * c; i++) chains[i]->dead = 1;
  free(chains);
  cat->op = OP_BATCHNORM;
  cat->nin = 1;
  cat->in[0] = x;
  cat->a.bn.eps = 0.0f;
  cat->a.bn.scale = scale;
  cat->a.bn.shift = shift;
  return 0;
}

int graph_fuse_affine(cnn_model_t *m, const int *readers, cnn_error_t *err) {
  for (int i = 0; i < m->nnodes; i++) {
    graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONCAT) continue;
    int rc = fold_concat(m, n, readers, err);
    if (rc) return rc;
  }
  return 0;
}
