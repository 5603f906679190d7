/*
 * ctx_run.c — running one graph node on a batch: the kernel call for each op, with
 * shapes scaled to the batch. The caller (ctx.c) says where every value's data is
 * (ptr) and which threads and scratch the kernels use (kc), so the same code runs a
 * whole batch on the context's pool or one image on a single thread.
 */
#include "ctx_run.h"

static int64_t prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= d[i];
  return p;
}

/* Shape of value v at batch n, left-padded with 1s to nd dims. */
static void shape_at(const cnn_model_t *m, int v, int n, int nd, int64_t *out) {
  const graph_value_t *x = &m->vals[v];
  int pad = nd - x->ndim;
  for (int i = 0; i < nd; i++) out[i] = i < pad ? 1 : x->dims[i - pad];
  if (graph_is_runtime(x)) out[pad] = n;
}

static void run_binary(const ctx_env_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  int r = m->vals[nd->out].ndim;
  int64_t as[GRAPH_MAX_DIMS], bs[GRAPH_MAX_DIMS], os[GRAPH_MAX_DIMS];
  shape_at(m, nd->in[0], n, r, as);
  shape_at(m, nd->in[1], n, r, bs);
  shape_at(m, nd->out, n, r, os);
  kern_binary(c->kc, nd->op == OP_ADD ? KERN_ADD : KERN_MUL, c->ptr[nd->in[0]], as,
              c->ptr[nd->in[1]], bs, c->ptr[nd->out], os, r);
}

static void run_concat(const ctx_env_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  const float *ins[GRAPH_MAX_INPUTS];
  int64_t lens[GRAPH_MAX_INPUTS];
  const graph_value_t *o = &m->vals[nd->out];
  int ax = nd->a.axis.axis;
  for (int i = 0; i < nd->nin; i++) {
    ins[i] = c->ptr[nd->in[i]];
    lens[i] = m->vals[nd->in[i]].dims[ax];
  }
  kern_concat(c->kc, ins, lens, nd->nin, (size_t)(n * prod(o->dims, 1, ax)),
              (size_t)prod(o->dims, ax + 1, o->ndim), c->ptr[nd->out]);
}

static void run_softmax(const ctx_env_t *c, const graph_node_t *nd, int n) {
  const graph_value_t *x = &c->m->vals[nd->in[0]];
  int ax = nd->a.axis.axis;
  size_t outer = (size_t)(n * prod(x->dims, 1, ax));
  size_t len = (size_t)(nd->softmax_coerce ? prod(x->dims, ax, x->ndim) : x->dims[ax]);
  size_t inner = (size_t)(nd->softmax_coerce ? 1 : prod(x->dims, ax + 1, x->ndim));
  kern_softmax(c->kc, c->ptr[nd->in[0]], outer, len, inner, c->ptr[nd->out]);
}

static void run_slice(const ctx_env_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  const graph_value_t *x = &m->vals[nd->in[0]], *o = &m->vals[nd->out];
  int64_t is[GRAPH_MAX_DIMS], os[GRAPH_MAX_DIMS];
  shape_at(m, nd->in[0], n, x->ndim, is);
  shape_at(m, nd->out, n, o->ndim, os);
  kern_slice(c->kc, c->ptr[nd->in[0]], is, x->ndim, nd->a.slice.starts, nd->a.slice.steps, os,
             c->ptr[nd->out]);
}

void ctx_run_node(const ctx_env_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  const graph_value_t *x = &m->vals[nd->in[0]];
  const float *in = c->ptr[nd->in[0]];
  float *out = c->ptr[nd->out];
  const kern_ctx_t *kc = c->kc;
  switch (nd->op) {
  case OP_CONV:
    if (nd->a.conv.k.ngroups > 0) {
      float *outs[KERN_CONV_GROUPS];
      for (int g = 0; g < nd->a.conv.k.ngroups; g++) outs[g] = c->ptr[nd->a.conv.gout[g]];
      kern_conv2d_groups(kc, &nd->a.conv.k, in, n, nd->a.conv.h, nd->a.conv.w, outs,
                         nd->a.conv.oh, nd->a.conv.ow);
      break;
    }
    kern_conv2d(kc, &nd->a.conv.k, in, n, nd->a.conv.h, nd->a.conv.w, out, nd->a.conv.oh,
                nd->a.conv.ow, nd->a.conv.residual >= 0 ? c->ptr[nd->a.conv.residual] : NULL);
    break;
  case OP_BATCHNORM:
    kern_scale_shift(kc, in, n, (int)x->dims[1], (size_t)prod(x->dims, 2, x->ndim), nd->a.bn.scale,
                     nd->a.bn.shift, out);
    break;
  case OP_RELU: kern_relu(kc, in, out, (size_t)(n * graph_numel(x))); break;
  case OP_MAXPOOL:
  case OP_AVGPOOL:
    (nd->op == OP_MAXPOOL ? kern_maxpool2d : kern_avgpool2d)(kc, &nd->a.pool.k, in, n, (int)x->dims[1],
        nd->a.pool.h, nd->a.pool.w, out, nd->a.pool.oh, nd->a.pool.ow);
    break;
  case OP_GLOBALAVGPOOL:
    kern_global_avgpool(kc, in, n, (int)x->dims[1], (size_t)(x->dims[2] * x->dims[3]), out);
    break;
  case OP_ADD: case OP_MUL: run_binary(c, nd, n); break;
  case OP_CONCAT:
    if (!nd->inplace) run_concat(c, nd, n);
    break;
  case OP_GEMM: {
    const graph_value_t *b = &m->vals[nd->in[1]];
    int cols = (int)m->vals[nd->out].dims[1];
    const float *cc = nd->nin > 2 && nd->in[2] >= 0 ? c->ptr[nd->in[2]] : NULL;
    int ccols = cc && graph_numel(&m->vals[nd->in[2]]) == 1 ? 1 : cols;
    kern_gemm(kc, 0, nd->a.gemm.trans_b, n, cols, (int)x->dims[1], nd->a.gemm.alpha, in, b->f,
              nd->a.gemm.beta, cc, 1, ccols, out);
    break;
  }
  case OP_MATMUL: {
    const graph_value_t *b = &m->vals[nd->in[1]];
    int k = (int)b->dims[0];
    kern_matmul(kc, in, 1, (int)(n * graph_numel(x) / k), k, b->f, (int)b->dims[1], out);
    break;
  }
  case OP_SOFTMAX: run_softmax(c, nd, n); break;
  case OP_LRN:
    kern_lrn(kc, in, n, (int)x->dims[1], (size_t)(x->dims[2] * x->dims[3]), nd->a.lrn.size,
             nd->a.lrn.alpha, nd->a.lrn.beta, nd->a.lrn.bias, out);
    break;
  case OP_GATHER: {
    int ax = nd->a.axis.axis;
    kern_gather(kc, in, (size_t)(n * prod(x->dims, 1, ax)), (size_t)x->dims[ax],
                (size_t)prod(x->dims, ax + 1, x->ndim), nd->idx, nd->nidx, out);
    break;
  }
  case OP_SLICE: run_slice(c, nd, n); break;
  case OP_SUBSAMPLE:
    kern_subsample(kc, in, n, nd->a.sub.c, nd->a.sub.h, nd->a.sub.w, nd->a.sub.stride,
                   out + nd->a.sub.off, nd->a.sub.oh, nd->a.sub.ow,
                   (size_t)graph_numel(&m->vals[nd->out]));
    break;
  default: break; /* aliases and folded constants: nothing to run */
  }
}

int ctx_is_alias_op(graph_op_t op) {
  return op == OP_FLATTEN || op == OP_RESHAPE || op == OP_UNSQUEEZE || op == OP_IDENTITY ||
         op == OP_DROPOUT || op == OP_CONSTANT;
}

