/*
 * graph_infer_tensor.c — validation and shape inference for the tensor-manipulation
 * ops: Concat, Flatten, Reshape, Unsqueeze, Identity, Dropout, Gather, Slice.
 *
 * Reshape, Flatten, Unsqueeze, Identity and Dropout only change the shape: their
 * output aliases the input's storage (alias_of), so they cost nothing at run time.
 * Applied to a constant they fold into a new constant. None of these ops may move
 * data across the batch axis: the result's dims[0] must stay the image index.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"

#define BAD(code, ...) graph_node_error(err, code, n, __VA_ARGS__)

static graph_value_t *in_val(cnn_model_t *m, const graph_node_t *n, int i) {
  return (i < n->nin && n->in[i] >= 0) ? &m->vals[n->in[i]] : NULL;
}

static const int64_t *const_ints(const graph_value_t *v, int64_t *count) {
  if (!v || v->kind != VAL_CONST || v->dtype != DT_INT64 || v->ndim > 1) return NULL;
  *count = graph_numel(v);
  return v->i64;
}

/* Output takes the given shape and shares the input's storage (or data, if const). */
static int alias_out(cnn_model_t *m, graph_node_t *n, int ndim, const int64_t *dims,
                     cnn_error_t *err) {
  graph_value_t *x = &m->vals[n->in[0]], *o = &m->vals[n->out];
  o->ndim = ndim;
  memcpy(o->dims, dims, sizeof(int64_t) * (size_t)ndim);
  o->dtype = x->dtype;
  o->known = 1;
  if (graph_is_runtime(x)) {
    if (ndim < 1 || dims[0] != 1) return BAD(CNN_EMODEL_UNSUPPORTED, "result would mix images of a batch");
    o->kind = VAL_RUNTIME;
    o->alias_of = n->in[0];
    return 0;
  }
  size_t bytes = (size_t)graph_numel(x) * (x->dtype == DT_FLOAT ? 4 : 8);
  void *copy = malloc(bytes ? bytes : 1);
  if (!copy) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  memcpy(copy, x->dtype == DT_FLOAT ? (void *)x->f : (void *)x->i64, bytes);
  o->kind = VAL_CONST;
  if (x->dtype == DT_FLOAT) o->f = copy;
  else o->i64 = copy;
  n->dead = 1; /* folded */
  return 0;
}

static int norm_axis(int axis, int ndim) { return axis < 0 ? axis + ndim : axis; }

static int infer_flatten(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int ax = norm_axis(n->a.axis.axis, x->ndim);
  if (ax < 0 || ax > x->ndim) return BAD(CNN_EMODEL_INVALID, "axis out of range");
  if (ax == 0 && graph_is_runtime(x)) /* [1, N*K]: the batch would join the features */
    return BAD(CNN_EMODEL_UNSUPPORTED, "axis 0 would merge the batch into the features");
  int64_t d[2] = {1, 1};
  for (int i = 0; i < x->ndim; i++) d[i < ax ? 0 : 1] *= x->dims[i];
  return alias_out(m, n, 2, d, err);
}

static int infer_reshape(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int64_t cnt = 0, d[GRAPH_MAX_DIMS], known = 1;
  const int64_t *s = const_ints(in_val(m, n, 1), &cnt);
  if (!s) return BAD(CNN_EMODEL_UNSUPPORTED, "shape must be a constant int64 vector");
  if (cnt < 1 || cnt > GRAPH_MAX_DIMS) return BAD(CNN_EMODEL_UNSUPPORTED, "target rank %lld", (long long)cnt);
  int infer_at = -1;
  for (int i = 0; i < cnt; i++) {
    d[i] = s[i] == 0 ? (i < x->ndim ? x->dims[i] : -2) : s[i];
    if (d[i] == -1 && infer_at < 0) infer_at = i;
    else if (d[i] < 0 || d[i] > GRAPH_MAX_ELEMS)
      return BAD(CNN_EMODEL_INVALID, "bad target dimension %lld", (long long)s[i]);
    else if ((known *= d[i]) > GRAPH_MAX_ELEMS)
      return BAD(CNN_EMODEL_INVALID, "target shape is too large");
  }
  int64_t total = graph_numel(x);
  if (infer_at >= 0) {
    if (known == 0 || total % known) return BAD(CNN_EMODEL_INVALID, "cannot infer -1");
    d[infer_at] = total / known;
  } else if (known != total) {
    return BAD(CNN_EMODEL_INVALID, "element count changes (%lld -> %lld)", (long long)total, (long long)known);
  }
  return alias_out(m, n, (int)cnt, d, err);
}

static int infer_unsqueeze(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int64_t cnt = 0, d[GRAPH_MAX_DIMS];
  const int64_t *axes = const_ints(in_val(m, n, 1), &cnt);
  if (!axes) return BAD(CNN_EMODEL_UNSUPPORTED, "axes must be a constant int64 vector");
  int nd = x->ndim + (int)cnt, ins[GRAPH_MAX_DIMS] = {0};
  if (nd > GRAPH_MAX_DIMS) return BAD(CNN_EMODEL_UNSUPPORTED, "rank %d", nd);
  for (int i = 0; i < cnt; i++) {
    int a = norm_axis((int)axes[i], nd);
    if (a < 0 || a >= nd || ins[a]) return BAD(CNN_EMODEL_INVALID, "bad axis %lld", (long long)axes[i]);
    ins[a] = 1;
  }
  for (int i = 0, j = 0; i < nd; i++) d[i] = ins[i] ? 1 : x->dims[j++];
  if (graph_is_runtime(x) && ins[0]) return BAD(CNN_EMODEL_UNSUPPORTED, "unsqueeze before the batch axis");
  return alias_out(m, n, nd, d, err);
}

static int infer_concat(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x0 = in_val(m, n, 0);
  if (!x0) return BAD(CNN_EMODEL_INVALID, "no inputs");
  int ax = norm_axis(n->a.axis.axis, x0->ndim);
  if (ax < 1 || ax >= x0->ndim) return BAD(CNN_EMODEL_UNSUPPORTED, "concat axis %d", n->a.axis.axis);
  int64_t d[GRAPH_MAX_DIMS];
  memcpy(d, x0->dims, sizeof d);
  d[ax] = 0;
  for (int i = 0; i < n->nin; i++) {
    graph_value_t *x = in_val(m, n, i);
    if (!x || !graph_is_runtime(x) || x->dtype != DT_FLOAT)
      return BAD(CNN_EMODEL_UNSUPPORTED, "input %d must be a float tensor computed from the image", i);
    if (x->ndim != x0->ndim) return BAD(CNN_EMODEL_INVALID, "inputs differ in rank");
    for (int k = 0; k < x->ndim; k++)
      if (k != ax && x->dims[k] != x0->dims[k])
        return BAD(CNN_EMODEL_INVALID, "input '%s' differs in dimension %d", x->name, k);
    d[ax] += x->dims[ax];
  }
  n->a.axis.axis = ax;
  graph_value_t *o = &m->vals[n->out];
  o->kind = VAL_RUNTIME, o->dtype = DT_FLOAT, o->known = 1, o->ndim = x0->ndim;
  memcpy(o->dims, d, sizeof d);
  return 0;
}

static int infer_gather(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0), *iv = in_val(m, n, 1);
  if (!x || !graph_is_runtime(x) || x->dtype != DT_FLOAT)
    return BAD(CNN_EMODEL_UNSUPPORTED, "data must be a float tensor computed from the image");
  if (!iv || iv->kind != VAL_CONST || iv->dtype != DT_INT64)
    return BAD(CNN_EMODEL_UNSUPPORTED, "indices must be constant integers");
  int ax = norm_axis(n->a.axis.axis, x->ndim);
  if (ax < 1 || ax >= x->ndim) return BAD(CNN_EMODEL_UNSUPPORTED, "gather axis %d", n->a.axis.axis);
  int nd = x->ndim - 1 + iv->ndim;
  if (nd > GRAPH_MAX_DIMS) return BAD(CNN_EMODEL_UNSUPPORTED, "rank %d", nd);
  n->nidx = (size_t)graph_numel(iv);
  n->idx = malloc(sizeof(int64_t) * (n->nidx ? n->nidx : 1));
  if (!n->idx) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  for (size_t i = 0; i < n->nidx; i++) {
    int64_t k = iv->i64[i] < 0 ? iv->i64[i] + x->dims[ax] : iv->i64[i];
    if (k < 0 || k >= x->dims[ax]) return BAD(CNN_EMODEL_INVALID, "index %lld out of range", (long long)iv->i64[i]);
    n->idx[i] = k;
  }
  n->a.axis.axis = ax;
  graph_value_t *o = &m->vals[n->out];
  int j = 0;
  for (int i = 0; i < ax; i++) o->dims[j++] = x->dims[i];
  for (int i = 0; i < iv->ndim; i++) o->dims[j++] = iv->dims[i];
  for (int i = ax + 1; i < x->ndim; i++) o->dims[j++] = x->dims[i];
  o->ndim = nd, o->kind = VAL_RUNTIME, o->dtype = DT_FLOAT, o->known = 1;
  return 0;
}

/* ONNX Slice semantics: clamp starts/ends per axis, steps may be negative. */
static int slice_axis(int64_t dim, int64_t st, int64_t en, int64_t step, int64_t *start, int64_t *len) {
  if (st < 0) st += dim;
  if (en < 0) en += dim;
  /* Counts as (span - 1) / |step| + 1: no sum with a step that may be near INT64_MAX. */
  if (step > 0) {
    st = st < 0 ? 0 : (st > dim ? dim : st);
    en = en < 0 ? 0 : (en > dim ? dim : en);
    *len = en > st ? (en - st - 1) / step + 1 : 0;
  } else {
    st = st < 0 ? 0 : (st > dim - 1 ? dim - 1 : st);
    en = en < -1 ? -1 : (en > dim - 1 ? dim - 1 : en);
    *len = st > en ? (st - en - 1) / -step + 1 : 0;
  }
  *start = st;
  return 0;
}

static int infer_slice(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int64_t ns = 0, ne = 0, na = 0, nst = 0;
  const int64_t *st = const_ints(in_val(m, n, 1), &ns), *en = const_ints(in_val(m, n, 2), &ne);
  const int64_t *axes = in_val(m, n, 3) ? const_ints(in_val(m, n, 3), &na) : NULL;
  const int64_t *steps = in_val(m, n, 4) ? const_ints(in_val(m, n, 4), &nst) : NULL;
  if (!x || !graph_is_runtime(x) || x->dtype != DT_FLOAT)
    return BAD(CNN_EMODEL_UNSUPPORTED, "data must be a float tensor computed from the image");
  if (!st || !en || ns != ne || (in_val(m, n, 3) && (!axes || na != ns)) ||
      (in_val(m, n, 4) && (!steps || nst != ns)))
    return BAD(CNN_EMODEL_UNSUPPORTED, "starts/ends/axes/steps must be matching constant int64 vectors");
  graph_value_t *o = &m->vals[n->out];
  int done[GRAPH_MAX_DIMS] = {0};
  for (int i = 0; i < x->ndim; i++) {
    n->a.slice.starts[i] = 0, n->a.slice.steps[i] = 1, o->dims[i] = x->dims[i];
  }
  for (int i = 0; i < ns; i++) {
    int a = norm_axis(axes ? (int)axes[i] : i, x->ndim);
    int64_t step = steps ? steps[i] : 1;
    if (a < 0 || a >= x->ndim || done[a] || step == 0 || step == INT64_MIN)
      return BAD(CNN_EMODEL_INVALID, "bad axis or step");
    /* The batch size is unknown here: only the whole-axis idiom [0:INT_MAX:1] keeps
     * every image (per-image clamping against dims[0] == 1 would accept [0:1]). */
    if (a == 0 && (st[i] != 0 || en[i] < INT32_MAX || step != 1))
      return BAD(CNN_EMODEL_UNSUPPORTED, "slicing the batch axis");
    done[a] = 1;
    slice_axis(x->dims[a], st[i], en[i], step, &n->a.slice.starts[a], &o->dims[a]);
    n->a.slice.steps[a] = step;
  }
  if (o->dims[0] != 1 || n->a.slice.starts[0] != 0)
    return BAD(CNN_EMODEL_UNSUPPORTED, "slicing the batch axis");
  o->ndim = x->ndim, o->kind = VAL_RUNTIME, o->dtype = DT_FLOAT, o->known = 1;
  return 0;
}

int graph_infer_tensor_op(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  if (!x) return BAD(CNN_EMODEL_INVALID, "missing input");
  switch (n->op) {
  case OP_FLATTEN: return infer_flatten(m, n, err);
  case OP_RESHAPE: return infer_reshape(m, n, err);
  case OP_UNSQUEEZE: return infer_unsqueeze(m, n, err);
  case OP_IDENTITY: case OP_DROPOUT: return alias_out(m, n, x->ndim, x->dims, err);
  case OP_CONCAT: return infer_concat(m, n, err);
  case OP_GATHER: return infer_gather(m, n, err);
  case OP_SLICE: return infer_slice(m, n, err);
  default: return BAD(CNN_EINTERNAL, "no shape rule");
  }
}
