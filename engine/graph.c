/*
 * graph.c — storage for the graph's values and nodes, and its teardown.
 *
 * Values and nodes live in growable arrays owned by the model; they are referred to
 * by index everywhere (indices stay valid while the arrays grow). Names are copied.
 * Lookup by name is linear: it runs only at load, on graphs of a few hundred values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"

static int grow(void **arr, int *cap, int need, size_t elem) {
  if (need <= *cap) return 0;
  int ncap = *cap ? *cap * 2 : 64;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, (size_t)ncap * elem);
  if (!p) return CNN_ENOMEM;
  memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
  *arr = p;
  *cap = ncap;
  return 0;
}

int graph_add_value(cnn_model_t *m, const char *name, cnn_error_t *err) {
  if (m->nvals >= GRAPH_MAX_VALUES)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "more than %d values (tensors)",
                         GRAPH_MAX_VALUES);
  if (grow((void **)&m->vals, &m->cap_vals, m->nvals + 1, sizeof *m->vals))
    return cnn_error_set(err, CNN_ENOMEM, "out of memory adding value '%s'", name);
  graph_value_t *v = &m->vals[m->nvals];
  memset(v, 0, sizeof *v);
  v->name = strdup(name ? name : "");
  if (!v->name) return cnn_error_set(err, CNN_ENOMEM, "out of memory adding value");
  v->producer = -1;
  v->alias_of = -1;
  v->last_use = -1;
  v->dtype = DT_FLOAT;
  return m->nvals++;
}

int graph_find_value(const cnn_model_t *m, const char *name) {
  for (int i = m->nvals - 1; i >= 0; i--)
    if (strcmp(m->vals[i].name, name) == 0) return i;
  return -1;
}

int graph_add_node(cnn_model_t *m, cnn_error_t *err) {
  if (m->nnodes >= GRAPH_MAX_NODES)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "more than %d nodes", GRAPH_MAX_NODES);
  if (grow((void **)&m->nodes, &m->cap_nodes, m->nnodes + 1, sizeof *m->nodes))
    return cnn_error_set(err, CNN_ENOMEM, "out of memory adding node");
  graph_node_t *n = &m->nodes[m->nnodes];
  memset(n, 0, sizeof *n);
  n->out = -1;
  return m->nnodes++;
}

int64_t graph_numel(const graph_value_t *v) {
  int64_t k = 1;
  for (int i = 0; i < v->ndim; i++) k *= v->dims[i];
  return k;
}

int graph_dims_within(const int64_t *dims, int ndim, int64_t limit) {
  int64_t k = 1;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] < 0 || dims[i] > limit) return 0;
    if (dims[i] > 0 && (k *= dims[i]) > limit) return 0;
  }
  return 1;
}

int graph_is_runtime(const graph_value_t *v) { return v->kind == VAL_RUNTIME || v->kind == VAL_INPUT; }

int graph_root(const cnn_model_t *m, int v) {
  while (m->vals[v].alias_of >= 0) v = m->vals[v].alias_of;
  return v;
}

int64_t graph_view_off(const cnn_model_t *m, int v) {
  int64_t off = 0;
  for (; m->vals[v].alias_of >= 0; v = m->vals[v].alias_of) off += m->vals[v].view_off;
  return off;
}

int graph_new_floats(cnn_model_t *m, const graph_node_t *n, const char *what, int64_t count,
                     cnn_error_t *err) {
  char name[300];
  snprintf(name, sizeof name, "%s/%s", n->name, what);
  int vi = graph_add_value(m, name, err);
  if (vi < 0) return vi;
  graph_value_t *v = &m->vals[vi];
  v->kind = VAL_CONST, v->dtype = DT_FLOAT, v->known = 1, v->ndim = 1, v->dims[0] = count;
  v->f = malloc(sizeof(float) * (size_t)count);
  if (!v->f) return cnn_error_set(err, CNN_ENOMEM, "out of memory rewriting '%s'", n->name);
  return vi;
}

int *graph_aliased(const cnn_model_t *m) {
  int *aliased = calloc((size_t)m->nvals + 1, sizeof *aliased);
  for (int v = 0; aliased && v < m->nvals; v++)
    if (m->vals[v].alias_of >= 0) aliased[m->vals[v].alias_of] = 1;
  return aliased;
}

/* Frees constant value v's data unless a live node reads it (as an input, or as a
 * conv's weights or bias). */
void graph_drop_value(cnn_model_t *m, int v) {
  graph_value_t *x = v >= 0 ? &m->vals[v] : NULL;
  if (!x || x->kind != VAL_CONST || !x->f) return;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] == v) return;
    if (n->op == OP_CONV && (n->a.conv.k.weight == x->f || n->a.conv.k.bias == x->f)) return;
  }
  free(x->f);
  x->f = NULL;
}

/* The same for the constant holding data f (a conv's weights or bias), if any. */
void graph_drop_data(cnn_model_t *m, const float *f) {
  for (int v = 0; f && v < m->nvals; v++)
    if (m->vals[v].kind == VAL_CONST && m->vals[v].f == f) {
      graph_drop_value(m, v);
      return;
    }
}

int graph_node_outputs(const graph_node_t *n, int *outs) {
  if (n->op != OP_CONV || n->a.conv.k.ngroups <= 0) {
    outs[0] = n->out;
    return 1;
  }
  for (int g = 0; g < n->a.conv.k.ngroups; g++) outs[g] = n->a.conv.gout[g];
  return n->a.conv.k.ngroups;
}

int graph_node_error(cnn_error_t *err, int code, const graph_node_t *n, const char *fmt, ...) {
  char detail[240];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return cnn_error_set(err, code, "node '%s' (%s): %s", n->name ? n->name : "?",
                       n->type ? n->type : "?", detail);
}

static void node_free(graph_node_t *n) {
  free(n->name);
  free(n->idx);
  if (n->op == OP_CONV) kern_conv_release(&n->a.conv.k);
  if (n->op == OP_BATCHNORM) {
    free(n->a.bn.scale);
    free(n->a.bn.shift);
  }
}

void graph_free(cnn_model_t *m) {
  for (int i = 0; i < m->nnodes; i++) node_free(&m->nodes[i]);
  for (int i = 0; i < m->nvals; i++) {
    free(m->vals[i].name);
    free(m->vals[i].f);
    free(m->vals[i].i64);
  }
  free(m->nodes);
  free(m->vals);
  m->nodes = NULL;
  m->vals = NULL;
  m->nnodes = m->nvals = 0;
}
