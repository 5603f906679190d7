/*
 * graph_concat.c — a channel Concat written in place by the convs that feed it.
 *
 * GoogLeNet ends each inception module with a Concat of its four branches on the
 * channel axis: a copy of the whole module output, a pass of its own (a task on the
 * pool, whose threads meet at its end) for nothing but moving bytes. When every input
 * of such a Concat is the output of a conv that nothing else reads, each conv writes
 * its channels straight into their slice of the Concat's output instead:
 *  - each input becomes a view of the Concat's output (alias_of, view_off = the floats
 *    before its first channel, per image: channel offset x H x W);
 *  - its conv writes images `out_img` floats apart (the whole Concat's map per image,
 *    kern_conv_t.out_img), so the slice stays right at any batch;
 *  - the Concat node is kept, marked `inplace`, and runs nothing; it still owns the
 *    output's arena slot, which the plan makes live from the first conv writing into
 *    it (graph_plan.c, first writes).
 * Conditions: axis 1 of a 4-D map; every input a distinct root, produced by a live conv
 * without a residual (a residual is read with the output's image stride), read by
 * nothing else, not the graph output and not aliased by another value; the output a
 * root. A Concat that fails any of them is copied as before.
 * GoogLeNet's 9 inception Concats (0.11 ms of copies per batch-1 forward): session 34,
 * Zen 5, 2 threads, forwards alternating in blocks between a model loaded with and one
 * without, copied -> in place: batch 1 p50 5.537 -> 5.494 and 5.384 -> 5.311 ms (p10
 * 5.326 -> 5.277, 5.273 -> 5.198), batch 8 p50 42.88 -> 42.27 ms.
 */
#include <stdlib.h>

#include "error.h"
#include "graph.h"

/* Input v of a Concat can be written in place: a root made by a lone conv, read once. */
static int writable_in_place(const cnn_model_t *m, const int *readers, const int *aliased,
                             int v) {
  if (v < 0 || v == m->output || readers[v] != 1 || aliased[v]) return 0;
  const graph_value_t *x = &m->vals[v];
  if (x->kind != VAL_RUNTIME || x->alias_of >= 0 || x->producer < 0 || x->ndim != 4) return 0;
  const graph_node_t *c = &m->nodes[x->producer];
  return !c->dead && c->op == OP_CONV && c->out == v && c->a.conv.residual < 0;
}

static int concat_in_place(cnn_model_t *m, graph_node_t *cat, const int *readers,
                           const int *aliased) {
  graph_value_t *o = &m->vals[cat->out];
  if (cat->a.axis.axis != 1 || o->ndim != 4 || o->alias_of >= 0 || o->kind != VAL_RUNTIME)
    return 0;
  for (int i = 0; i < cat->nin; i++) {
    if (!writable_in_place(m, readers, aliased, cat->in[i])) return 0;
    for (int j = 0; j < i; j++)
      if (cat->in[j] == cat->in[i]) return 0;
  }
  int64_t plane = o->dims[2] * o->dims[3], off = 0;
  for (int i = 0; i < cat->nin; i++) {
    graph_value_t *x = &m->vals[cat->in[i]];
    graph_node_t *c = &m->nodes[x->producer];
    x->alias_of = cat->out;
    x->view_off = off;
    c->a.conv.k.out_img = (size_t)graph_numel(o);
    off += x->dims[1] * plane;
  }
  cat->inplace = 1;
  return 1;
}

int graph_concat_inplace(cnn_model_t *m, const int *readers, cnn_error_t *err) {
  int *aliased = graph_aliased(m);
  if (!aliased) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  for (int i = 0; i < m->nnodes; i++) {
    graph_node_t *n = &m->nodes[i];
    if (!n->dead && n->op == OP_CONCAT) concat_in_place(m, n, readers, aliased);
  }
  free(aliased);
  return 0;
}
