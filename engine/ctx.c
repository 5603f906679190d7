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
 *
 * Batches run the model's image-serial prefix (graph_plan_serial) image by image: each
 * thread claims whole images and runs the prefix's nodes on one image with its own
 * pool-less kernel context, scratch and serial arena, so the threads never synchronize
 * inside the prefix and an image's large early activations stay in cache. The last image
 * of each thread goes stage by stage (the plan's stages, about a quarter of the prefix
 * each), claimed in order, so the thread done first takes over the other's remaining
 * stages instead of idling for up to a whole image's prefix. Session 18 (Zen 3, 2
 * threads, batch 8, forwards alternating one by one between two contexts, 4 stages /
 * none): ResNet-50 p50 387.1 / 394.9, 364.8 / 368.2, 366.8 / 370.2 ms, ResNet-18 124.9 /
 * 128.1, GoogLeNet 116.9 / 121.6. Every image stage by stage gained less (ResNet-50
 * 382.2 / 386.7, 394.8 / 396.1): an image's values then leave the cache between its
 * stages. 8 stages against 4: even (377.3 / 378.9). The order matters: an image's stages
 * form a chain, and taken stage-major both chains advance together and end together (a
 * thread ahead on both waits for a stage, yielding now and then). Each thread taking its
 * own image's stages first and the other's when free was even with no stages (371.8 /
 * 369.7, 375.7 / 378.3 ms; GoogLeNet 128.7 / 128.0): the faster thread then only takes
 * over the slower one's chain, which still runs one stage at a time. Images left over
 * when the batch does not divide among the threads run the prefix one at a time on all
 * threads. The rest of the graph then runs on the whole batch, as every node of a single
 * image does. Profiling turns the prefix schedule off, so that each node's time covers
 * the whole batch.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "ctx_run.h"
#include "mem.h"
#include "graph.h"

/* Forwards whose every node time profiling keeps, for the medians: 1024 x ResNet-152's
 * ~520 nodes is 4 MB, allocated only while profiling is on. */
enum { CTX_PROF_KEEP = 1024 };

struct cnn_ctx {
  const cnn_model_t *m;
  int max_batch, threads;
  float *arena;
  float *scratch_mem;
  float **scratch;
  float **ptr; /* per value: its data (input-rooted values are set per forward) */
  pool_t *pool;
  kern_ctx_t kc;
  float *serial_mem; /* threads x serial_floats: each thread's one-image arena, */
  float *stage_mem;  /* (2 x threads) x stage_floats: values crossing a stage boundary, */
  atomic_int *staged; /* threads x serial_stages: a staged image's stage s done, */
  float **sptr;      /* threads x nvals value pointers, */
  kern_ctx_t *skc;   /* and kernel context (no pool, its own scratch); NULL: no prefix */
  double *prof_ms;   /* per node, its fastest time, when profiling; NULL otherwise */
  double *prof_runs_ms; /* CTX_PROF_KEEP x nnodes: every node's time in the first forwards */
  double *prof_idle_ms; /* per node, the threads' idle time summed over the forwards */
  long prof_runs;
};

static size_t scratch_need(const cnn_model_t *m, int max_batch, int threads) {
  size_t need = 16;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead || n->op != OP_CONV) continue;
    /* threads: the batched and batch-1 forwards; 1: the image-serial prefix, whose
     * per-thread contexts have no pool (a kernel's share of a layer can be larger) */
    const kern_conv_t *k = &n->a.conv.k;
    int h = n->a.conv.h, w = n->a.conv.w, oh = n->a.conv.oh, ow = n->a.conv.ow;
    size_t s = kern_conv2d_scratch_floats(k, h, w, oh, ow, threads);
    size_t s1 = kern_conv2d_scratch_floats(k, h, w, oh, ow, 1);
    if (s1 > s) s = s1;
    if (s > need) need = s;
  }
  (void)max_batch;
  return (need + 15) / 16 * 16;
}

static int ctx_alloc(cnn_ctx_t *c, cnn_error_t *err) {
  const cnn_model_t *m = c->m;
  size_t per = scratch_need(m, c->max_batch, c->threads);
  c->arena = cnn_mem_alloc((size_t)m->plan_floats * (size_t)c->max_batch * sizeof(float));
  c->scratch_mem = cnn_mem_alloc(per * (size_t)c->threads * sizeof(float));
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
      c->ptr[v] = c->arena + rv->offset * c->max_batch + graph_view_off(m, v);
  }
  c->kc = (kern_ctx_t){NULL, c->scratch, per};
  if (m->serial_end > 0 && c->max_batch > 1) {
    c->serial_mem = cnn_mem_alloc((size_t)m->serial_floats * (size_t)c->threads * sizeof(float));
    c->sptr = calloc((size_t)c->threads * (size_t)m->nvals, sizeof *c->sptr);
    c->skc = calloc((size_t)c->threads, sizeof *c->skc);
    c->stage_mem = cnn_mem_alloc((size_t)m->stage_floats * 2 * (size_t)c->threads * sizeof(float));
    c->staged = calloc((size_t)m->serial_stages * (size_t)c->threads, sizeof *c->staged);
    if (!c->serial_mem || !c->sptr || !c->skc || !c->stage_mem || !c->staged)
      return cnn_error_set(err, CNN_ENOMEM, "out of memory for a context's serial arenas");
    for (int t = 0; t < c->threads; t++) c->skc[t] = (kern_ctx_t){NULL, c->scratch + t, per};
  }
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
  free(c->serial_mem);
  free(c->stage_mem);
  free(c->staged);
  free(c->sptr);
  free(c->skc);
  free(c->prof_ms);
  free(c->prof_runs_ms);
  free(c->prof_idle_ms);
  free(c);
}

size_t cnn_ctx_arena_bytes(const cnn_ctx_t *c) {
  size_t serial = c->serial_mem ? (size_t)c->m->serial_floats * (size_t)c->threads +
                                     (size_t)c->m->stage_floats * 2 * (size_t)c->threads
                                 : 0;
  return ((size_t)c->m->plan_floats * (size_t)c->max_batch + serial) * sizeof(float);
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

static int ctx_cmp_asc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int cnn_ctx_set_profiling(cnn_ctx_t *c, int on) {
  free(c->prof_ms);
  free(c->prof_runs_ms);
  free(c->prof_idle_ms);
  c->prof_ms = c->prof_runs_ms = c->prof_idle_ms = NULL;
  c->prof_runs = 0;
  if (!on) return 0;
  size_t nn = (size_t)c->m->nnodes;
  c->prof_ms = calloc(nn, sizeof *c->prof_ms);
  c->prof_runs_ms = calloc(nn * CTX_PROF_KEEP, sizeof *c->prof_runs_ms);
  c->prof_idle_ms = calloc(nn, sizeof *c->prof_idle_ms);
  if (c->prof_ms && c->prof_runs_ms && c->prof_idle_ms) return 0;
  free(c->prof_ms), free(c->prof_runs_ms), free(c->prof_idle_ms);
  c->prof_ms = c->prof_runs_ms = c->prof_idle_ms = NULL;
  return CNN_ENOMEM;
}

/* Node i's median time over the kept forwards (sorts a scratch copy). */
static double ctx_prof_median(const cnn_ctx_t *c, int i, double *tmp) {
  long n = c->prof_runs < CTX_PROF_KEEP ? c->prof_runs : CTX_PROF_KEEP;
  for (long r = 0; r < n; r++)
    tmp[r] = c->prof_runs_ms[(size_t)r * (size_t)c->m->nnodes + (size_t)i];
  qsort(tmp, (size_t)n, sizeof *tmp, ctx_cmp_asc);
  return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static int ctx_cmp_desc(const void *a, const void *b) {
  double x = ((const double *)a)[0], y = ((const double *)b)[0];
  return (x < y) - (x > y);
}

/* The threads' idle time inside the nodes' tasks (pool_idle_seconds: waiting for each
 * other at the end, or woken late), per forward and at the nodes that wait most. On the
 * Zen 5 host, ResNet-50 batch 1 on 2 threads: 1.3-1.4 thread-ms a forward of 2 x 18.5 in
 * calm minutes, about 2 in noisy ones, spread over every kind of split (no node above
 * 0.08 ms), not at a few nodes. */
static void ctx_prof_idle_print(const cnn_ctx_t *c, FILE *f, double fwd_ms) {
  const cnn_model_t *m = c->m;
  double idle = 0;
  int most[3] = {-1, -1, -1};
  for (int i = 0; i < m->nnodes; i++) {
    idle += c->prof_idle_ms[i];
    for (int k = 0; k < 3; k++)
      if (most[k] < 0 || c->prof_idle_ms[i] > c->prof_idle_ms[most[k]]) {
        for (int s = 2; s > k; s--) most[s] = most[s - 1];
        most[k] = i;
        break;
      }
  }
  double per = idle / (double)c->prof_runs;
  fprintf(f, "  idle threads %.3f ms a forward, %.1f%% of %d threads x the median forward;"
             " most at", per, fwd_ms > 0 ? 100.0 * per / (c->threads * fwd_ms) : 0.0, c->threads);
  for (int k = 0; k < 3 && most[k] >= 0; k++)
    fprintf(f, "%s %s %.3f ms", k ? "," : "", m->nodes[most[k]].name,
            c->prof_idle_ms[most[k]] / (double)c->prof_runs);
  fputc('\n', f);
}

void cnn_ctx_profile_print(cnn_ctx_t *c, void *file, int top) {
  FILE *f = file;
  const cnn_model_t *m = c->m;
  if (!c->prof_ms || c->prof_runs == 0) return;
  double by_op[OP__COUNT][2] = {{0}}, total = 0, total_med = 0;
  double(*rank)[3] = calloc((size_t)m->nnodes, sizeof *rank);
  double *tmp = malloc(CTX_PROF_KEEP * sizeof *tmp);
  if (!rank || !tmp) {
    free(rank), free(tmp);
    fprintf(f, "profile: out of memory printing it\n");
    return;
  }
  for (int i = 0; i < m->nnodes; i++) {
    double med = ctx_prof_median(c, i, tmp);
    by_op[m->nodes[i].op][0] += c->prof_ms[i];
    by_op[m->nodes[i].op][1] += med;
    total += c->prof_ms[i], total_med += med;
    rank[i][0] = c->prof_ms[i], rank[i][1] = i, rank[i][2] = med;
  }
  long kept = c->prof_runs < CTX_PROF_KEEP ? c->prof_runs : CTX_PROF_KEEP;
  /* Each kept forward's nodes summed: with right-skewed node times the median forward
   * is slower than the sum of the node medians (ResNet-50 batch 1 on the Zen 5 host,
   * session 29: 21.87 against 21.04 ms), which is what a p50 of whole forwards sees. */
  for (long r = 0; r < kept; r++) {
    const double *run = c->prof_runs_ms + (size_t)r * (size_t)m->nnodes;
    tmp[r] = 0;
    for (int i = 0; i < m->nnodes; i++) tmp[r] += run[i];
  }
  qsort(tmp, (size_t)kept, sizeof *tmp, ctx_cmp_asc);
  fprintf(f,
          "profile: each node's fastest of %ld forwards and median of %ld, %.3f and %.3f ms"
          " in all; the forwards' node sums: fastest %.3f, median %.3f ms\n",
          c->prof_runs, kept, total, total_med, tmp[0], tmp[kept / 2]);
  if (c->threads > 1) ctx_prof_idle_print(c, f, tmp[kept / 2]);
  for (int op = 0; op < OP__COUNT; op++)
    if (by_op[op][0] > 0)
      fprintf(f, "  %-18s %8.3f ms  %5.1f%%  median %8.3f ms\n", graph_op_name(op), by_op[op][0],
              100.0 * by_op[op][0] / total, by_op[op][1]);
  qsort(rank, (size_t)m->nnodes, sizeof *rank, ctx_cmp_desc);
  for (int i = 0; i < top && i < m->nnodes && rank[i][0] > 0; i++) {
    const graph_node_t *nd = &m->nodes[(int)rank[i][1]];
    fprintf(f, "  %8.3f ms  %8.3f  %-12s %s", rank[i][0], rank[i][2], graph_op_name(nd->op),
            nd->name);
    if (nd->op == OP_CONV) {
      const kern_conv_t *k = &nd->a.conv.k;
      fprintf(f, "  %dx%d/%d %d->%d @%dx%d%s", k->kh, k->kw, k->stride_h, k->cin, k->cout,
              nd->a.conv.h, nd->a.conv.w, k->packed ? " wino" : "");
    }
    fputc('\n', f);
  }
  free(rank), free(tmp);
  memset(c->prof_ms, 0, (size_t)m->nnodes * sizeof *c->prof_ms);
  memset(c->prof_idle_ms, 0, (size_t)m->nnodes * sizeof *c->prof_idle_ms);
  memset(c->prof_runs_ms, 0,
         (size_t)m->nnodes * CTX_PROF_KEEP * sizeof *c->prof_runs_ms);
  c->prof_runs = 0;
}

/* ---- the image-serial prefix ---------------------------------------------------------- */

typedef struct {
  cnn_ctx_t *c;
  const float *input;
  int whole;          /* items [0, whole): images 0 .. whole - 1, all stages each; */
  int n;              /* then images whole .. n - 1 stage by stage: stage 0 of each, */
  atomic_int next;    /* stage 1 of each, ...; items claimed in order as the threads go */
} serial_job_t;

/* Value pointers for image img: the input's slice, the serial arena (values one stage
 * alone reads), the image's stage slot (values a later stage reads), the image's slice
 * of its batch slot (values read after the prefix). Stage slots: one per thread for
 * the whole images it runs (slot tid), then one per image taken stage by stage
 * (slot threads + i for the i-th of them). */
static void serial_bind(const cnn_ctx_t *c, const float *input, int img, float *arena,
                        int slot, float **ptr) {
  const cnn_model_t *m = c->m;
  float *stage = c->stage_mem + (size_t)slot * (size_t)m->stage_floats;
  for (int v = 0; v < m->nvals; v++) {
    int r = graph_root(m, v);
    const graph_value_t *rv = &m->vals[r];
    size_t at = (size_t)img * (size_t)graph_numel(rv);
    if (r == m->input) ptr[v] = (float *)input + at;
    else if (rv->kind != VAL_RUNTIME || rv->producer < 0) ptr[v] = c->ptr[v];
    else if (rv->toffset >= 0) ptr[v] = stage + rv->toffset + graph_view_off(m, v);
    else if (rv->soffset >= 0) ptr[v] = arena + rv->soffset + graph_view_off(m, v);
    else ptr[v] = c->ptr[v] + at;
  }
}

/* The prefix's nodes [from, to) on the image serial_bind set up. */
static void serial_nodes(const cnn_ctx_t *c, const ctx_env_t *env, int from, int to) {
  for (int i = from; i < to; i++) {
    const graph_node_t *nd = &c->m->nodes[i];
    if (!nd->dead && !ctx_is_alias_op(nd->op)) ctx_run_node(env, nd, 1);
  }
}

/* One thread: claims items until none is left, each on this thread alone. A stage
 * item waits for its image's previous stage, which was claimed earlier and so is done
 * or running: the lowest running item never waits, so all of them finish. */
static void serial_worker(void *arg, int tid, int nt) {
  (void)nt;
  serial_job_t *j = arg;
  const cnn_ctx_t *c = j->c;
  const cnn_model_t *m = c->m;
  float **ptr = c->sptr + (size_t)tid * (size_t)m->nvals;
  ctx_env_t env = {m, ptr, &c->skc[tid]};
  int last = j->n - j->whole; /* images taken stage by stage */
  for (;;) {
    int item = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed), img, s0, s1;
    if (item < j->whole) {
      img = item, s0 = 0, s1 = m->serial_stages;
    } else {
      item -= j->whole;
      if (item >= last * m->serial_stages) return;
      img = j->whole + item % last, s0 = item / last, s1 = s0 + 1;
    }
    int staged = img - j->whole, slot = staged >= 0 ? c->threads + staged : tid;
    atomic_int *done = c->staged + (size_t)(staged >= 0 ? staged : 0) * (size_t)m->serial_stages;
    for (unsigned spins = 1; staged >= 0 && s0 > 0 &&
                             !atomic_load_explicit(&done[s0 - 1], memory_order_acquire);
         spins++)
      pool_relax(spins); /* a stage at most, yielding: the daemon's decoders share the CPUs */
    serial_bind(c, j->input, img, c->serial_mem + (size_t)tid * (size_t)m->serial_floats, slot,
                ptr);
    serial_nodes(c, &env, m->serial_cut[s0], m->serial_cut[s1]);
    if (staged >= 0) atomic_store_explicit(&done[s1 - 1], 1, memory_order_release);
  }
}

/* The prefix for all n images. While every thread has an image of its own, whole
 * images per thread; the last `threads` of those then stage by stage, so that the
 * thread done first takes the other images' next stages rather than waiting for
 * them; the rest (n not a multiple of the threads) one at a time on all threads
 * (thread 0's serial arena). Whole images keep an image's values in this core's
 * caches from stage to stage, which stage order would give up for every image. */
static void serial_run(cnn_ctx_t *c, const float *input, int n) {
  const cnn_model_t *m = c->m;
  int all = n / c->threads * c->threads;
  serial_job_t j = {.c = c, .input = input, .whole = all - c->threads, .n = all};
  if (j.whole < 0) j.whole = 0;
  atomic_init(&j.next, 0);
  for (size_t i = 0; i < (size_t)(all - j.whole) * (size_t)m->serial_stages; i++)
    atomic_store_explicit(&c->staged[i], 0, memory_order_relaxed);
  if (all > 0) pool_run(c->pool, serial_worker, &j);
  ctx_env_t env = {m, c->sptr, &c->kc};
  for (int img = all; img < n; img++) {
    serial_bind(c, input, img, c->serial_mem, 0, c->sptr);
    serial_nodes(c, &env, 0, m->serial_end);
  }
}

/* ---- forward ----------------------------------------------------------------------- */

int cnn_forward(cnn_ctx_t *c, const float *input, int n, float *output, cnn_error_t *err) {
  const cnn_model_t *m = c->m;
  if (n < 1 || n > c->max_batch || !input || !output)
    return cnn_error_set(err, CNN_EINVAL, "batch of %d (context takes 1 to %d)", n, c->max_batch);
  for (int v = 0; v < m->nvals; v++)
    if (graph_root(m, v) == m->input) c->ptr[v] = (float *)input;
  ctx_env_t env = {m, c->ptr, &c->kc};
  int start = 0;
  if (n > 1 && c->skc && !c->prof_ms) {
    serial_run(c, input, n);
    start = m->serial_end;
  }
  for (int i = start; i < m->nnodes; i++) {
    const graph_node_t *nd = &m->nodes[i];
    if (nd->dead || ctx_is_alias_op(nd->op)) continue;
    double t0 = c->prof_ms ? ctx_now_ms(c) : 0.0;
    double idle0 = c->prof_ms ? pool_idle_seconds(c->pool) : 0.0;
    ctx_run_node(&env, nd, n);
    if (c->prof_ms) {
      double dt = ctx_now_ms(c) - t0;
      c->prof_idle_ms[i] += 1e3 * (pool_idle_seconds(c->pool) - idle0);
      if (c->prof_runs == 0 || dt < c->prof_ms[i]) c->prof_ms[i] = dt;
      if (c->prof_runs < CTX_PROF_KEEP)
        c->prof_runs_ms[(size_t)c->prof_runs * (size_t)m->nnodes + (size_t)i] = dt;
    }
  }
  c->prof_runs++;
  size_t per = (size_t)graph_numel(&m->vals[m->output]);
  memcpy(output, c->ptr[m->output], per * (size_t)n * sizeof(float));
  return 0;
}
