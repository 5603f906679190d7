/*
 * graph_infer.c — per-op validation and shape inference for the neural-network ops
 * (Conv, BatchNormalization, pools, element-wise, Gemm, MatMul, Softmax, LRN).
 *
 * Runs once over the nodes in order. Every input must already have a known shape;
 * each node checks its inputs' kinds (runtime vs constant), dtypes and shapes and
 * sets its output's shape (per image: dims[0] == 1) and its MAC count. Any mismatch
 * is an error naming the node. Tensor-manipulation ops are in graph_infer_tensor.c.
 * Every output is checked against GRAPH_MAX_ELEMS (graph.h) as it is inferred, so by
 * induction every size a later node multiplies is bounded and cannot overflow.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"

#define BAD(code, ...) graph_node_error(err, code, n, __VA_ARGS__)

static graph_value_t *in_val(cnn_model_t *m, const graph_node_t *n, int i) {
  return (i < n->nin && n->in[i] >= 0) ? &m->vals[n->in[i]] : NULL;
}

static int need_runtime(const graph_node_t *n, const graph_value_t *v, int rank, cnn_error_t *err) {
  if (!v) return BAD(CNN_EMODEL_INVALID, "missing input");
  if (!graph_is_runtime(v))
    return BAD(CNN_EMODEL_UNSUPPORTED, "input '%s' must be computed from the image", v->name);
  if (v->dtype != DT_FLOAT) return BAD(CNN_EMODEL_UNSUPPORTED, "input '%s' is not float", v->name);
  if (rank > 0 && v->ndim != rank)
    return BAD(CNN_EMODEL_INVALID, "input '%s' has rank %d, expected %d", v->name, v->ndim, rank);
  return 0;
}

static int need_const(const graph_node_t *n, const graph_value_t *v, graph_dtype_t dt,
                      cnn_error_t *err) {
  if (!v) return BAD(CNN_EMODEL_INVALID, "missing input");
  if (v->kind != VAL_CONST)
    return BAD(CNN_EMODEL_UNSUPPORTED, "input '%s' must be a constant (initializer)", v->name);
  if (v->dtype != dt)
    return BAD(CNN_EMODEL_UNSUPPORTED, "input '%s' has the wrong data type", v->name);
  return 0;
}

static void set_out(cnn_model_t *m, graph_node_t *n, int ndim, const int64_t *dims) {
  graph_value_t *o = &m->vals[n->out];
  o->kind = VAL_RUNTIME;
  o->dtype = DT_FLOAT;
  o->ndim = ndim;
  memcpy(o->dims, dims, sizeof(int64_t) * (size_t)ndim);
  o->known = 1;
}

/* Resolve auto_pad and compute one spatial output size. */
static int window_out(graph_node_t *n, int in, int k, int s, int *p0, int *p1, int ceil_mode,
                      int *out, cnn_error_t *err) {
  if (n->auto_pad == 1) *p0 = *p1 = 0;
  if (n->auto_pad >= 2) {
    int o = (in + s - 1) / s, total = (o - 1) * s + k - in;
    if (total < 0) total = 0;
    *p0 = n->auto_pad == 2 ? total / 2 : total - total / 2;
    *p1 = total - *p0;
  }
  if (*p0 >= k || *p1 >= k) return BAD(CNN_EMODEL_UNSUPPORTED, "padding not smaller than the kernel");
  int span = in + *p0 + *p1 - k;
  if (span < 0) return BAD(CNN_EMODEL_INVALID, "kernel %d larger than the padded input %d", k, in + *p0 + *p1);
  int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (o - 1) * s >= in + *p0) o--; /* last window must start inside */
  *out = o;
  return 0;
}

static int infer_conv(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0), *w = in_val(m, n, 1), *b = in_val(m, n, 2);
  kern_conv_t *k = &n->a.conv.k;
  int rc;
  if ((rc = need_runtime(n, x, 4, err)) || (rc = need_const(n, w, DT_FLOAT, err))) return rc;
  if (w->ndim != 4) return BAD(CNN_EMODEL_UNSUPPORTED, "weight must be 4-D (2-D convolution)");
  if (w->dims[1] != x->dims[1])
    return BAD(CNN_EMODEL_INVALID, "weight has %lld input channels, input has %lld",
               (long long)w->dims[1], (long long)x->dims[1]);
  if (n->kernel_shape[0] && (n->kernel_shape[0] != w->dims[2] || n->kernel_shape[1] != w->dims[3]))
    return BAD(CNN_EMODEL_INVALID, "kernel_shape disagrees with the weight");
  if (b && ((rc = need_const(n, b, DT_FLOAT, err)) || b->ndim != 1 || b->dims[0] != w->dims[0]))
    return rc ? rc : BAD(CNN_EMODEL_INVALID, "bias shape does not match output channels");
  k->cin = (int)w->dims[1], k->cout = (int)w->dims[0];
  k->kh = (int)w->dims[2], k->kw = (int)w->dims[3];
  k->weight = w->f;
  k->bias = b ? b->f : NULL;
  int h = (int)x->dims[2], wd = (int)x->dims[3], oh, ow;
  if ((rc = window_out(n, h, k->kh, k->stride_h, &k->pad_t, &k->pad_b, 0, &oh, err)) ||
      (rc = window_out(n, wd, k->kw, k->stride_w, &k->pad_l, &k->pad_r, 0, &ow, err)))
    return rc;
  n->a.conv.h = h, n->a.conv.w = wd, n->a.conv.oh = oh, n->a.conv.ow = ow;
  int64_t d[4] = {1, k->cout, oh, ow};
  if (!graph_dims_within(d, 4, GRAPH_MAX_ELEMS))
    return BAD(CNN_EMODEL_UNSUPPORTED, "output %dx%dx%d is too large", k->cout, oh, ow);
  n->macs = graph_numel(w) * oh * ow;
  set_out(m, n, 4, d);
  return 0;
}

static int infer_pool(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  kern_pool_t *k = &n->a.pool.k;
  int rc = need_runtime(n, x, 4, err), oh, ow;
  if (rc) return rc;
  int h = (int)x->dims[2], w = (int)x->dims[3], c = n->a.pool.ceil_mode;
  if ((rc = window_out(n, h, k->kh, k->stride_h, &k->pad_t, &k->pad_b, c, &oh, err)) ||
      (rc = window_out(n, w, k->kw, k->stride_w, &k->pad_l, &k->pad_r, c, &ow, err)))
    return rc;
  n->a.pool.h = h, n->a.pool.w = w, n->a.pool.oh = oh, n->a.pool.ow = ow;
  int64_t d[4] = {1, x->dims[1], oh, ow};
  set_out(m, n, 4, d);
  return 0;
}

static int infer_gap(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int rc = need_runtime(n, x, 4, err);
  if (rc) return rc;
  int64_t d[4] = {1, x->dims[1], 1, 1};
  set_out(m, n, 4, d);
  return 0;
}

/* BatchNormalization in inference form: y = x * scale[c] + shift[c]. */
static int infer_bn(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int rc = need_runtime(n, x, 0, err);
  if (rc) return rc;
  if (x->ndim < 2) return BAD(CNN_EMODEL_INVALID, "input rank %d", x->ndim);
  int64_t c = x->dims[1];
  for (int i = 1; i < 5; i++) {
    graph_value_t *p = in_val(m, n, i);
    if ((rc = need_const(n, p, DT_FLOAT, err))) return rc;
    if (p->ndim != 1 || p->dims[0] != c)
      return BAD(CNN_EMODEL_INVALID, "parameter '%s' must have %lld values", p->name, (long long)c);
  }
  const float *g = in_val(m, n, 1)->f, *be = in_val(m, n, 2)->f;
  const float *mu = in_val(m, n, 3)->f, *var = in_val(m, n, 4)->f;
  n->a.bn.scale = malloc(sizeof(float) * (size_t)c);
  n->a.bn.shift = malloc(sizeof(float) * (size_t)c);
  if (!n->a.bn.scale || !n->a.bn.shift) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  for (int64_t i = 0; i < c; i++) {
    if (!(var[i] + n->a.bn.eps > 0)) return BAD(CNN_EMODEL_INVALID, "variance + epsilon <= 0");
    double s = (double)g[i] / sqrt((double)var[i] + (double)n->a.bn.eps);
    n->a.bn.scale[i] = (float)s;
    n->a.bn.shift[i] = (float)((double)be[i] - (double)mu[i] * s);
  }
  set_out(m, n, x->ndim, x->dims);
  return 0;
}

static int infer_unary(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *x = in_val(m, n, 0);
  int rc = need_runtime(n, x, n->op == OP_LRN ? 4 : 0, err);
  if (rc) return rc;
  if (n->op == OP_SOFTMAX) {
    int ax = n->a.axis.axis < 0 ? n->a.axis.axis + x->ndim : n->a.axis.axis;
    if (ax < 1 || ax >= x->ndim)
      return BAD(CNN_EMODEL_UNSUPPORTED, "softmax axis %d (must not be the batch axis)", n->a.axis.axis);
    n->a.axis.axis = ax;
  }
  set_out(m, n, x->ndim, x->dims);
  return 0;
}

/* Add/Mul with numpy broadcasting; a constant operand may not carry a batch. */
static int infer_binary(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *a = in_val(m, n, 0), *b = in_val(m, n, 1);
  if (!a || !b || n->nin != 2) return BAD(CNN_EMODEL_INVALID, "needs 2 inputs");
  if (a->dtype != DT_FLOAT || b->dtype != DT_FLOAT) return BAD(CNN_EMODEL_UNSUPPORTED, "non-float operands");
  if (!graph_is_runtime(a) && !graph_is_runtime(b))
    return BAD(CNN_EMODEL_UNSUPPORTED, "constant expression was not folded at export");
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  int64_t d[GRAPH_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return BAD(CNN_EMODEL_INVALID, "shapes of '%s' and '%s' do not broadcast", a->name, b->name);
    d[i] = da > db ? da : db;
  }
  /* Every runtime operand must keep the batch on axis 0 of the result: a runtime
   * operand of lower rank would broadcast its batch against another axis. */
  if ((graph_is_runtime(a) && a->ndim != nd) || (graph_is_runtime(b) && b->ndim != nd) ||
      d[0] != 1)
    return BAD(CNN_EMODEL_UNSUPPORTED, "broadcast would mix images of a batch");
  set_out(m, n, nd, d);
  return 0;
}

static int infer_gemm(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *a = in_val(m, n, 0), *b = in_val(m, n, 1), *c = in_val(m, n, 2);
  int rc;
  if ((rc = need_runtime(n, a, 2, err)) || (rc = need_const(n, b, DT_FLOAT, err))) return rc;
  if (n->a.gemm.trans_a) return BAD(CNN_EMODEL_UNSUPPORTED, "transA on a batched input");
  if (b->ndim != 2) return BAD(CNN_EMODEL_INVALID, "B must be 2-D");
  int64_t k = a->dims[1], kb = n->a.gemm.trans_b ? b->dims[1] : b->dims[0];
  int64_t nn = n->a.gemm.trans_b ? b->dims[0] : b->dims[1];
  if (k != kb) return BAD(CNN_EMODEL_INVALID, "inner dimensions %lld and %lld differ", (long long)k, (long long)kb);
  if (c) {
    if ((rc = need_const(n, c, DT_FLOAT, err))) return rc;
    int64_t cn = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1, cm = c->ndim == 2 ? c->dims[0] : 1;
    if (c->ndim > 2 || cm != 1 || (cn != 1 && cn != nn))
      return BAD(CNN_EMODEL_UNSUPPORTED, "C must broadcast along the batch (shape [N] or [1,N])");
  }
  n->macs = k * nn;
  int64_t d[2] = {1, nn};
  set_out(m, n, 2, d);
  return 0;
}

static int infer_matmul(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  graph_value_t *a = in_val(m, n, 0), *b = in_val(m, n, 1);
  int rc;
  if ((rc = need_runtime(n, a, 0, err)) || (rc = need_const(n, b, DT_FLOAT, err))) return rc;
  if (a->ndim < 2 || b->ndim != 2) return BAD(CNN_EMODEL_UNSUPPORTED, "needs A of rank >= 2 and a 2-D constant B");
  if (a->dims[a->ndim - 1] != b->dims[0]) return BAD(CNN_EMODEL_INVALID, "inner dimensions differ");
  int64_t d[GRAPH_MAX_DIMS];
  memcpy(d, a->dims, sizeof d);
  d[a->ndim - 1] = b->dims[1];
  n->macs = graph_numel(a) * b->dims[1];
  set_out(m, n, a->ndim, d);
  return 0;
}

static int infer_node(cnn_model_t *m, graph_node_t *n, cnn_error_t *err) {
  for (int i = 0; i < n->nin; i++)
    if (n->in[i] >= 0 && !m->vals[n->in[i]].known)
      return BAD(CNN_EMODEL_INVALID, "input '%s' has no known shape", m->vals[n->in[i]].name);
  switch (n->op) {
  case OP_CONV: return infer_conv(m, n, err);
  case OP_BATCHNORM: return infer_bn(m, n, err);
  case OP_MAXPOOL: case OP_AVGPOOL: return infer_pool(m, n, err);
  case OP_GLOBALAVGPOOL: return infer_gap(m, n, err);
  case OP_RELU: case OP_SOFTMAX: case OP_LRN: return infer_unary(m, n, err);
  case OP_ADD: case OP_MUL: return infer_binary(m, n, err);
  case OP_GEMM: return infer_gemm(m, n, err);
  case OP_MATMUL: return infer_matmul(m, n, err);
  default: return graph_infer_tensor_op(m, n, err);
  }
}

int graph_infer(cnn_model_t *m, cnn_error_t *err) {
  for (int i = 0; i < m->nnodes; i++) {
    graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    int rc = infer_node(m, n, err);
    if (rc) return rc;
    const graph_value_t *o = &m->vals[n->out];
    if (!graph_dims_within(o->dims, o->ndim, GRAPH_MAX_ELEMS))
      return BAD(CNN_EMODEL_UNSUPPORTED, "output '%s' would have more than %lld elements",
                 o->name, (long long)GRAPH_MAX_ELEMS);
  }
  const graph_value_t *o = &m->vals[m->output];
  if (o->kind != VAL_RUNTIME || o->ndim != 2 || o->dims[1] < 1)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED,
                         "output '%s' must be [batch, classes] computed from the input", o->name);
  if (o->dims[1] > GRAPH_MAX_CLASSES)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "output '%s' has %lld classes (max %d)",
                         o->name, (long long)o->dims[1], GRAPH_MAX_CLASSES);
  return 0;
}
