/*
 * runner.c — per-model inference thread with batching (see runner.h).
 *
 * Design: one thread per model owns the model's only inference context, so a
 * context is never shared and needs no lock; parallelism inside a forward comes
 * from the context's own `threads` engine threads. Jobs arrive already decoded
 * (the libuv pool did that) as tensors from a per-runner free list; the runner
 * copies up to max_batch of them into its batch input (allocated once at
 * create), returns the tensors and runs one forward. Batch size is whatever is
 * queued when the runner wakes, plus what arrives until batch_window_us after
 * the oldest of them was queued (queue.c): dynamic batching. With several
 * models and parallel_models off, forwards pass through a shared fair gate
 * (gate.h), so only one context's threads compute at a time; time spent at
 * the gate counts as queue time, not inference time. A lone model's forwards take
 * turns with decodes on the daemon's lull (lull.h) when the engine takes every
 * CPU; the batch
 * then also waits, up to RUNNER_COMING_WAIT_US past its window, for images of its
 * own still being decoded (queue_expect). Memory: batch input/output and the
 * context arena are planned at create. Only RUNNER_HOLD_BATCHES batches' worth of
 * jobs (one with the lull) may be decoding or queued at once (runner_hold, checked by the pipeline before it
 * decodes), so live tensors are bounded by that plus the batch being gathered,
 * whatever queue_length is; they are allocated lazily and kept, so the steady
 * state allocates nothing.
 */
#include "runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "queue.h"

struct runner {
  const cnn_model_info_t *info;
  cnn_ctx_t *ctx;
  runner_opts_t o;
  runner_cb_t cb;
  queue_t q;
  pthread_t thread;
  size_t in_floats; /* per image */
  float *input, *output;
  job_t **batch;
  pthread_mutex_t pool_mu;
  float **pool;
  int pool_n, pool_cap;
  atomic_int held; /* jobs decoding or queued here: at most hold_max */
  int hold_max;    /* RUNNER_HOLD_BATCHES batches, one with a lull (runner.h) */
};

/* Moves live jobs' tensors into the batch input and fails the late ones (504);
 * returns how many remain, compacted at the front of jobs. */
static int gather(runner_t *r, job_t **jobs, int n) {
  int nb = 0;
  uint64_t now = job_now_ns();
  for (int i = 0; i < n; i++) {
    job_t *j = jobs[i];
    if (now > j->deadline) {
      j->t_inf0 = j->t_inf1 = now;
      job_fail(j, 504, "deadline_exceeded", "request waited %.1f ms, past its deadline",
               (double)(now - j->t_start) / 1e6);
    } else {
      memcpy(r->input + (size_t)nb * r->in_floats, j->tensor, r->in_floats * sizeof(float));
      jobs[nb++] = j;
    }
    runner_tensor_put(r, j->tensor);
    j->tensor = NULL;
    if (j->status) r->cb.done(r->cb.arg, j);
  }
  return nb;
}

static void run_batch(runner_t *r, job_t **jobs, int n) {
  int nb = gather(r, jobs, n);
  if (nb == 0) return;
  cnn_error_t err = {0};
  if (r->o.gate) gate_enter(r->o.gate);
  uint64_t start = job_now_ns();
  int rc = cnn_forward(r->ctx, r->input, nb, r->output, &err);
  uint64_t end = job_now_ns();
  if (r->o.gate) gate_leave(r->o.gate);
  metrics_observe(H_INFERENCE, (double)(end - start) / 1e9);
  metrics_observe(H_BATCH, nb);
  int nc = r->info->num_classes;
  for (int i = 0; i < nb; i++) {
    job_t *j = jobs[i];
    j->t_inf0 = start;
    j->t_inf1 = end;
    j->batch = nb;
    if (rc < 0) {
      job_fail(j, 500, "internal_error", "inference failed: %s", err.msg);
    } else {
      j->k = cnn_topk(r->output + (size_t)i * nc, nc, j->top_k, r->info->outputs_probabilities,
                      j->idx, j->prob);
      j->status = 200;
    }
    r->cb.done(r->cb.arg, j);
  }
}

static void *runner_main(void *arg) {
  runner_t *r = arg;
  int n;
  while ((n = queue_pop_batch(&r->q, r->batch, r->o.max_batch, r->o.batch_window_us)) > 0) {
    /* The forward counts from before the freed slots start new decodes (taken),
     * or those would begin in the moment before it and run on into it. */
    if (r->o.lull) lull_forward_begin(r->o.lull, RUNNER_LULL_WAIT_NS);
    atomic_fetch_sub(&r->held, n);
    r->cb.taken(r->cb.arg, n);
    run_batch(r, r->batch, n);
    if (r->o.lull) lull_forward_end(r->o.lull);
  }
  return NULL;
}

static int runner_alloc(runner_t *r) {
  size_t mb = (size_t)r->o.max_batch;
  r->input = malloc(mb * r->in_floats * sizeof(float));
  r->output = malloc(mb * (size_t)r->info->num_classes * sizeof(float));
  r->batch = calloc(mb, sizeof(job_t *));
  r->pool_cap = (RUNNER_HOLD_BATCHES + 1) * r->o.max_batch; /* held + one being gathered */
  r->pool = calloc((size_t)r->pool_cap, sizeof(float *));
  if (!r->input || !r->output || !r->batch || !r->pool) return -1;
  if (queue_init(&r->q, r->o.queue_cap) < 0) return -1;
  /* Decodes wait for the lull, so the next batch is still being decoded when a
   * forward ends: let the batch wait for it (bounded). */
  if (r->o.lull) queue_expect(&r->q, &r->held, RUNNER_COMING_WAIT_US);
  if (pthread_mutex_init(&r->pool_mu, NULL) != 0) {
    queue_deinit(&r->q);
    return -1;
  }
  return 0;
}

static void runner_free(runner_t *r) {
  for (int i = 0; i < r->pool_n; i++) free(r->pool[i]);
  free(r->pool);
  free(r->batch);
  free(r->output);
  free(r->input);
  if (r->ctx) cnn_ctx_destroy(r->ctx);
  free(r);
}

int runner_create(const cnn_model_t *model, const runner_opts_t *o, const runner_cb_t *cb,
                  runner_t **out, cnn_error_t *err) {
  runner_t *r = calloc(1, sizeof(*r));
  if (!r) return CNN_ENOMEM;
  r->info = cnn_model_info(model);
  r->o = *o;
  r->cb = *cb;
  r->in_floats = (size_t)r->info->in_c * r->info->in_h * r->info->in_w;
  atomic_init(&r->held, 0);
  r->hold_max = (o->lull ? 1 : RUNNER_HOLD_BATCHES) * o->max_batch;
  int rc = cnn_ctx_create(model, o->max_batch, o->threads, &r->ctx, err);
  if (rc < 0) {
    runner_free(r);
    return rc;
  }
  if (runner_alloc(r) < 0) {
    runner_free(r);
    if (err) snprintf(err->msg, sizeof(err->msg), "out of memory creating the runner");
    return CNN_ENOMEM;
  }
  if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
    queue_deinit(&r->q);
    pthread_mutex_destroy(&r->pool_mu);
    runner_free(r);
    if (err) snprintf(err->msg, sizeof(err->msg), "cannot start the runner thread");
    return CNN_EINTERNAL;
  }
  *out = r;
  return 0;
}

void runner_destroy(runner_t *r) {
  if (!r) return;
  queue_close(&r->q);
  pthread_join(r->thread, NULL);
  queue_deinit(&r->q);
  pthread_mutex_destroy(&r->pool_mu);
  runner_free(r);
}

int runner_push(runner_t *r, job_t *j) { return queue_push(&r->q, j); }

float *runner_tensor_get(runner_t *r) {
  float *t = NULL;
  pthread_mutex_lock(&r->pool_mu);
  if (r->pool_n > 0) t = r->pool[--r->pool_n];
  pthread_mutex_unlock(&r->pool_mu);
  return t ? t : malloc(r->in_floats * sizeof(float));
}

void runner_tensor_put(runner_t *r, float *t) {
  if (!t) return;
  pthread_mutex_lock(&r->pool_mu);
  if (r->pool_n < r->pool_cap) {
    r->pool[r->pool_n++] = t;
    t = NULL;
  }
  pthread_mutex_unlock(&r->pool_mu);
  free(t);
}

size_t runner_arena_bytes(const runner_t *r) { return cnn_ctx_arena_bytes(r->ctx); }

int runner_hold(runner_t *r) {
  int h = atomic_load(&r->held);
  if (h >= r->hold_max) return 0;
  atomic_fetch_add(&r->held, 1);
  return 1;
}

void runner_unhold(runner_t *r) { atomic_fetch_sub(&r->held, 1); }
