/*
 * graph_prepare.c — every conv's weights put in its kernel's form, in parallel.
 *
 * kern_conv_prepare packs a conv's weights for the sgemm or transforms them for
 * Winograd; the plain copy is then freed unless another node reads it, which keeps a
 * loaded model at about one copy of its weights. This is most of a load's work after
 * decoding, and most of it is first writes to fresh memory (ResNet-50: ~160 MB), which
 * on a VM can cost far more than the arithmetic (session 26's host: ~10 us a page).
 * Convs are independent, so the pool's threads claim them one at a time, biggest
 * first (the longest job starts first and the last ones are short); a conv's plain
 * weights are released under a lock, since the check reads every value's pointer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "error.h"
#include "graph.h"
#include "pool.h"

typedef struct {
  cnn_model_t *m;
  int *order; /* live conv node indices, biggest weights first */
  int count;
  atomic_int next;
  atomic_int failed; /* node index + 1 of a conv out of memory, or 0 */
  pthread_mutex_t lock;
} prep_job_t;

/* Whether any live node other than `self` lists value v among its inputs. */
static int read_elsewhere(const cnn_model_t *m, int v, const graph_node_t *self) {
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || n == self) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] == v) return 1;
  }
  return 0;
}

/* A conv whose kernel has its own copy of the weights (packed or transformed) never
 * reads the plain ones again: free them, and the ONNX weight initializer when
 * BatchNorm folding made it dead too, unless another node reads them. */
static void release_plain_weights(cnn_model_t *m, graph_node_t *n) {
  kern_conv_t *k = &n->a.conv.k;
  if (!k->gemm_a && !k->packed) return;
  for (int v = 0; v < m->nvals; v++) {
    graph_value_t *x = &m->vals[v];
    if (x->kind != VAL_CONST || !x->f) continue;
    if ((x->f == k->weight || (n->nin > 1 && v == n->in[1])) && !read_elsewhere(m, v, n)) {
      if (x->f == k->weight) k->weight = NULL;
      free(x->f);
      x->f = NULL;
    }
  }
}

static size_t conv_weight_floats(const graph_node_t *n) {
  const kern_conv_t *k = &n->a.conv.k;
  return (size_t)k->cout * (size_t)k->cin * (size_t)k->kh * (size_t)k->kw;
}

typedef struct {
  size_t floats;
  int node;
} conv_size_t;

static int by_size_desc(const void *a, const void *b) {
  const conv_size_t *x = a, *y = b;
  return x->floats < y->floats ? 1 : x->floats > y->floats ? -1 : x->node - y->node;
}

static void prep_task(void *arg, int tid, int nthreads) {
  (void)tid, (void)nthreads;
  prep_job_t *j = arg;
  for (;;) {
    int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (i >= j->count || atomic_load_explicit(&j->failed, memory_order_relaxed)) return;
    graph_node_t *n = &j->m->nodes[j->order[i]];
    if (kern_conv_prepare(&n->a.conv.k)) {
      int expect = 0;
      atomic_compare_exchange_strong(&j->failed, &expect, j->order[i] + 1);
      return;
    }
    pthread_mutex_lock(&j->lock);
    release_plain_weights(j->m, n);
    pthread_mutex_unlock(&j->lock);
  }
}

int graph_prepare(cnn_model_t *m, pool_t *pool, cnn_error_t *err) {
  prep_job_t j = {.m = m};
  size_t cap = (size_t)(m->nnodes ? m->nnodes : 1);
  conv_size_t *sizes = malloc(sizeof *sizes * cap);
  if (!sizes || !(j.order = malloc(sizeof *j.order * cap))) {
    free(sizes);
    return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  }
  for (int i = 0; i < m->nnodes; i++) {
    graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONV) continue;
    n->a.conv.k.map_oh = n->a.conv.oh, n->a.conv.k.map_ow = n->a.conv.ow;
    sizes[j.count++] = (conv_size_t){conv_weight_floats(n), i};
  }
  qsort(sizes, (size_t)j.count, sizeof *sizes, by_size_desc);
  for (int i = 0; i < j.count; i++) j.order[i] = sizes[i].node;
  free(sizes);
  atomic_init(&j.next, 0);
  atomic_init(&j.failed, 0);
  pthread_mutex_init(&j.lock, NULL);
  if (pool)
    pool_run(pool, prep_task, &j);
  else
    prep_task(&j, 0, 1);
  pthread_mutex_destroy(&j.lock);
  free(j.order);
  int bad = atomic_load(&j.failed) - 1;
  return bad < 0 ? 0
                 : graph_node_error(err, CNN_ENOMEM, &m->nodes[bad],
                                    "out of memory preparing weights");
}
