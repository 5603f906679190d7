/*
 * graph_plan.c — activation memory planned by liveness, once per model.
 *
 * Every runtime value that owns storage (a root: not an alias, not the input) lives
 * from the node that writes it to the last node that reads it (or forever, for the
 * graph output). Roots are placed largest first at the lowest arena offset that does
 * not overlap, in memory, any already placed root whose lifetime overlaps its own
 * ("greedy by size"). A node's inputs and output always overlap in time, so a kernel
 * never sees its output alias an input. Offsets and sizes are per image, rounded to
 * 16 floats (64 bytes); a context scales them by its max batch.
 */
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "graph.h"

typedef struct {
  int v;
  int64_t size, start, end; /* floats; node interval [start, end] */
} slot_t;

static void mark_use(cnn_model_t *m, int v, int at) {
  if (v < 0) return;
  int r = graph_root(m, v);
  if (m->vals[r].last_use < at) m->vals[r].last_use = at;
}

static void compute_liveness(cnn_model_t *m) {
  for (int i = 0; i < m->nvals; i++) m->vals[i].last_use = -1;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++) mark_use(m, n->in[j], i);
    if (n->op == OP_CONV) mark_use(m, n->a.conv.residual, i);
  }
  mark_use(m, m->output, INT32_MAX);
}

static int by_size_desc(const void *a, const void *b) {
  const slot_t *x = a, *y = b;
  return x->size < y->size ? 1 : x->size > y->size ? -1 : x->v - y->v;
}

static int64_t place(slot_t *s, int count, int idx, int64_t *offsets) {
  int64_t off = 0;
  for (int moved = 1; moved;) {
    moved = 0;
    for (int j = 0; j < idx; j++) {
      if (s[j].end < s[idx].start || s[idx].end < s[j].start) continue; /* not live together */
      int64_t o = offsets[j];
      if (off < o + s[j].size && o < off + s[idx].size) off = o + s[j].size, moved = 1;
    }
  }
  return off;
}

int graph_plan(cnn_model_t *m, cnn_error_t *err) {
  compute_liveness(m);
  slot_t *s = calloc((size_t)m->nnodes + 1, sizeof *s);
  int64_t *off = calloc((size_t)m->nnodes + 1, sizeof *off);
  if (!s || !off) {
    free(s), free(off);
    return cnn_error_set(err, CNN_ENOMEM, "out of memory planning activations");
  }
  int count = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || m->vals[n->out].alias_of >= 0) continue;
    graph_value_t *v = &m->vals[n->out];
    int64_t end = v->last_use < i ? i : v->last_use;
    s[count++] = (slot_t){n->out, (graph_numel(v) + 15) / 16 * 16, i, end};
  }
  qsort(s, (size_t)count, sizeof *s, by_size_desc);
  m->plan_floats = 0;
  for (int i = 0; i < count; i++) {
    off[i] = place(s, count, i, off);
    m->vals[s[i].v].offset = off[i];
    if (off[i] + s[i].size > m->plan_floats) m->plan_floats = off[i] + s[i].size;
  }
  free(s);
  free(off);
  if (m->plan_floats > GRAPH_MAX_PLAN_FLOATS)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED,
                         "activations need %lld MiB per image (max %lld MiB)",
                         (long long)(m->plan_floats >> 18), (long long)(GRAPH_MAX_PLAN_FLOATS >> 18));
  return 0;
}
