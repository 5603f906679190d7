/*
 * ctx.c — inference contexts and the forward pass.
 *
 * A context owns everything one forward needs besides the model: the activation
 * arena (the model's per-image plan times max_batch), per-thread kernel scratch
 * sized from the largest conv's need, a pointer per graph value, and a thread pool.
 * All of it is allocated in cnn_ctx_create, so cnn_forward never allocates. A
 * context runs one forward at a time; contexts on the same model run concurrently
 * (the model is read-only). Nodes run in file order; dead (fused) nodes and alias
 * ops (Reshape, Flatten, ...) cost nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "graph.h"

struct cnn_ctx {
  const cnn_model_t *m;
  int max_batch, threads;
  float *arena;
  float *scratch_mem;
  float **scratch;
  float **ptr; /* per value: its data (input-rooted values are set per forward) */
  pool_t *pool;
  kern_ctx_t kc;
  double *prof_ms; /* per node, when profiling; NULL otherwise */
  long prof_runs;
};

static void *alloc64(size_t bytes) {
  void *p = NULL;
  return posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) ? NULL : p;
}

static size_t scratch_need(const cnn_model_t *m, int max_batch, int threads) {
  size_t need = 16;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONV) continue;
    size_t s = kern_conv2d_scratch_floats(&n->a.conv.k, n->a.conv.h, n->a.conv.w, n->a.conv.oh,
                                          n->a.conv.ow, threads);
    if (s > need) need = s;
  }
  (void)max_batch;
  return (need + 15) / 16 * 16;
}

static int ctx_alloc(cnn_ctx_t *c, cnn_error_t *err) {
  const cnn_model_t *m = c->m;
  size_t per = scratch_need(m, c->max_batch, c->threads);
  c->arena = alloc64((size_t)m->plan_floats * (size_t)c->max_batch * sizeof(float));
  c->scratch_mem = alloc64(per * (size_t)c->threads * sizeof(float));
  c->scratch = calloc((size_t)c->threads, sizeof *c->scratch);
  c->ptr = calloc((size_t)m->nvals, sizeof *c->ptr);
  if (!c->arena || !c->scratch_mem || !c->scratch || !c->ptr)
    return cnn_error_set(err, CNN_ENOMEM, "out of memory for a context (%zu MiB arena)",
                         (size_t)m->plan_floats * (size_t)c->max_batch * 4 >> 20);
  for (int t = 0; t < c->threads; t++) c->scratch[t] = c->scratch_mem + per * (size_t)t;
  for (int v = 0; v < m->nvals; v++) {
    int r = graph_root(m, v);
    const graph_value_t *rv = &m->vals[r];
    if (rv->kind == VAL_CONST) c->ptr[v] = rv->f;
    else if (rv->kind == VAL_RUNTIME && rv->producer >= 0)
      c->ptr[v] = c->arena + rv->offset * c->max_batch;
  }
  c->kc = (kern_ctx_t){NULL, c->scratch, per};
  return 0;
}

int cnn_ctx_create(const cnn_model_t *m, int max_batch, int threads, cnn_ctx_t **out,
                   cnn_error_t *err) {
  cnn_error_clear(err);
  *out = NULL;
  if (max_batch < 1 || max_batch > 1024 || threads < 1 || threads > 256)
    return cnn_error_set(err, CNN_EINVAL, "max_batch %d / threads %d out of range", max_batch, threads);
  cnn_blas_single_thread();
  cnn_ctx_t *c = calloc(1, sizeof *c);
  if (!c) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  c->m = m, c->max_batch = max_batch, c->threads = threads;
  int rc = ctx_alloc(c, err);
  if (!rc && pool_create(threads, &c->pool))
    rc = cnn_error_set(err, CNN_ENOMEM, "cannot start %d threads", threads);
  if (rc) {
    cnn_ctx_destroy(c);
    return rc;
  }
  c->kc.pool = c->pool;
  *out = c;
  return 0;
}

void cnn_ctx_destroy(cnn_ctx_t *c) {
  if (!c) return;
  pool_destroy(c->pool);
  free(c->arena);
  free(c->scratch_mem);
  free(c->scratch);
  free(c->ptr);
  free(c->prof_ms);
  free(c);
}

size_t cnn_ctx_arena_bytes(const cnn_ctx_t *c) {
  return (size_t)c->m->plan_floats * (size_t)c->max_batch * sizeof(float);
}

int cnn_ctx_max_batch(const cnn_ctx_t *c) { return c->max_batch; }

/* ---- profiling -------------------------------------------------------------------- */

/* Single-threaded contexts time nodes in thread CPU time, which a shared machine's
 * preemptions do not inflate; with workers, wall time is the only honest measure. */
static double ctx_now_ms(const cnn_ctx_t *c) {
  struct timespec ts;
  clock_gettime(c->threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int cnn_ctx_set_profiling(cnn_ctx_t *c, int on) {
  free(c->prof_ms);
  c->prof_ms = on ? calloc((size_t)c->m->nnodes, sizeof *c->prof_ms) : NULL;
  c->prof_runs = 0;
  return on && !c->prof_ms ? CNN_ENOMEM : 0;
}

static int ctx_cmp_desc(const void *a, const void *b) {
  double x = ((const double *)a)[0], y = ((const double *)b)[0];
  return (x < y) - (x > y);
}

void cnn_ctx_profile_print(cnn_ctx_t *c, void *file, int top) {
  FILE *f = file;
  const cnn_model_t *m = c->m;
  if (!c->prof_ms || c->prof_runs == 0) return;
  double by_op[OP__COUNT] = {0}, total = 0;
  double(*rank)[2] = calloc((size_t)m->nnodes, sizeof *rank);
  for (int i = 0; i < m->nnodes; i++) {
    by_op[m->nodes[i].op] += c->prof_ms[i];
    total += c->prof_ms[i];
    if (rank) rank[i][0] = c->prof_ms[i], rank[i][1] = i;
  }
  double per = 1.0; /* counters hold each node's minimum over the forwards */
  fprintf(f, "profile: each node's fastest of %ld forwards, %.3f ms in all\n", c->prof_runs,
          total * per);
  for (int op = 0; op < OP__COUNT; op++)
    if (by_op[op] > 0)
      fprintf(f, "  %-18s %8.3f ms  %5.1f%%\n", graph_op_name(op), by_op[op] * per,
              100.0 * by_op[op] / total);
  if (rank) {
    qsort(rank, (size_t)m->nnodes, sizeof *rank, ctx_cmp_desc);
    for (int i = 0; i < top && i < m->nnodes && rank[i][0] > 0; i++) {
      const graph_node_t *nd = &m->nodes[(int)rank[i][1]];
      fprintf(f, "  %8.3f ms  %-12s %s", rank[i][0] * per, graph_op_name(nd->op), nd->name);
      if (nd->op == OP_CONV) {
        const kern_conv_t *k = &nd->a.conv.k;
        fprintf(f, "  %dx%d/%d %d->%d @%dx%d%s", k->kh, k->kw, k->stride_h, k->cin, k->cout,
                nd->a.conv.h, nd->a.conv.w, k->packed ? " wino" : "");
      }
      fputc('\n', f);
    }
    free(rank);
  }
  memset(c->prof_ms, 0, (size_t)m->nnodes * sizeof *c->prof_ms);
  c->prof_runs = 0;
}

/* ---- execution ------------------------------------------------------------------- */

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

static void run_binary(cnn_ctx_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  int r = m->vals[nd->out].ndim;
  int64_t as[GRAPH_MAX_DIMS], bs[GRAPH_MAX_DIMS], os[GRAPH_MAX_DIMS];
  shape_at(m, nd->in[0], n, r, as);
  shape_at(m, nd->in[1], n, r, bs);
  shape_at(m, nd->out, n, r, os);
  kern_binary(&c->kc, nd->op == OP_ADD ? KERN_ADD : KERN_MUL, c->ptr[nd->in[0]], as,
              c->ptr[nd->in[1]], bs, c->ptr[nd->out], os, r);
}

static void run_concat(cnn_ctx_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  const float *ins[GRAPH_MAX_INPUTS];
  int64_t lens[GRAPH_MAX_INPUTS];
  const graph_value_t *o = &m->vals[nd->out];
  int ax = nd->a.axis.axis;
  for (int i = 0; i < nd->nin; i++) {
    ins[i] = c->ptr[nd->in[i]];
    lens[i] = m->vals[nd->in[i]].dims[ax];
  }
  kern_concat(&c->kc, ins, lens, nd->nin, (size_t)(n * prod(o->dims, 1, ax)),
              (size_t)prod(o->dims, ax + 1, o->ndim), c->ptr[nd->out]);
}

static void run_softmax(cnn_ctx_t *c, const graph_node_t *nd, int n) {
  const graph_value_t *x = &c->m->vals[nd->in[0]];
  int ax = nd->a.axis.axis;
  size_t outer = (size_t)(n * prod(x->dims, 1, ax));
  size_t len = (size_t)(nd->softmax_coerce ? prod(x->dims, ax, x->ndim) : x->dims[ax]);
  size_t inner = (size_t)(nd->softmax_coerce ? 1 : prod(x->dims, ax + 1, x->ndim));
  kern_softmax(&c->kc, c->ptr[nd->in[0]], outer, len, inner, c->ptr[nd->out]);
}

static void run_slice(cnn_ctx_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  const graph_value_t *x = &m->vals[nd->in[0]], *o = &m->vals[nd->out];
  int64_t is[GRAPH_MAX_DIMS], os[GRAPH_MAX_DIMS];
  shape_at(m, nd->in[0], n, x->ndim, is);
  shape_at(m, nd->out, n, o->ndim, os);
  kern_slice(&c->kc, c->ptr[nd->in[0]], is, x->ndim, nd->a.slice.starts, nd->a.slice.steps, os,
             c->ptr[nd->out]);
}

static void run_node(cnn_ctx_t *c, const graph_node_t *nd, int n) {
  const cnn_model_t *m = c->m;
  const graph_value_t *x = &m->vals[nd->in[0]];
  const float *in = c->ptr[nd->in[0]];
  float *out = c->ptr[nd->out];
  const kern_ctx_t *kc = &c->kc;
  switch (nd->op) {
  case OP_CONV:
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
  case OP_CONCAT: run_concat(c, nd, n); break;
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
  default: break; /* aliases and folded constants: nothing to run */
  }
}

static int is_alias_op(graph_op_t op) {
  return op == OP_FLATTEN || op == OP_RESHAPE || op == OP_UNSQUEEZE || op == OP_IDENTITY ||
         op == OP_DROPOUT || op == OP_CONSTANT;
}

int cnn_forward(cnn_ctx_t *c, const float *input, int n, float *output, cnn_error_t *err) {
  const cnn_model_t *m = c->m;
  if (n < 1 || n > c->max_batch || !input || !output)
    return cnn_error_set(err, CNN_EINVAL, "batch of %d (context takes 1 to %d)", n, c->max_batch);
  for (int v = 0; v < m->nvals; v++)
    if (graph_root(m, v) == m->input) c->ptr[v] = (float *)input;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *nd = &m->nodes[i];
    if (nd->dead || is_alias_op(nd->op)) continue;
    double t0 = c->prof_ms ? ctx_now_ms(c) : 0.0;
    run_node(c, nd, n);
    if (c->prof_ms) {
      double dt = ctx_now_ms(c) - t0;
      if (c->prof_runs == 0 || dt < c->prof_ms[i]) c->prof_ms[i] = dt;
    }
  }
  c->prof_runs++;
  size_t per = (size_t)graph_numel(&m->vals[m->output]);
  memcpy(output, c->ptr[m->output], per * (size_t)n * sizeof(float));
  return 0;
}
