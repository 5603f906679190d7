/*
 * pipeline.c — admission control, uv_queue_work decode, runner hand-off,
 * completion through uv_async_send (see pipeline.h).
 *
 * Design: two intrusive singly linked lists (intake from HTTP threads, done
 * from runner threads) under one mutex, each drained by an async handle on the
 * loop; uv_async_send coalesces wake-ups, so the callbacks drain whole lists.
 * The loop thread never decodes or infers: decoding runs in the uv pool and
 * inference in the runners. Admission is a counter bounded by `capacity`:
 * a job counts from admission until a runner takes it (or it fails before),
 * which is exactly the queue whose depth /metrics reports and /readyz checks.
 * Deadlines are checked when decoding starts and when a runner takes the job;
 * a job whose client has closed its connection is dropped when its decoding
 * would start (job_client_gone), so abandoned requests cost no decode and no
 * forward. Every answered job feeds `pace` (engine time per image), from which
 * the HTTP side computes Retry-After and refuses jobs that could not start in time.
 * Decoding is just in time: a job is decoded only when its model's runner has
 * a hold slot (runner_hold: two batches' worth), else it waits, still
 * compressed, in the loop's pending list (FIFO; a job of a model with a free
 * slot may pass jobs of a busy model). A runner taking jobs frees slots and
 * wakes the loop (dispatch_async). So decoded tensors in memory are bounded by
 * max_batch, not by queue_length, and a job that waits long enough to miss its
 * deadline is refused before it costs a decode.
 * With a lull (lull.h), decodes and forwards take turns: a decode first waits for
 * the pause between forwards, at most PIPELINE_LULL_MAX_NS (one that gives up is
 * counted in the metrics); that wait counts as queue time, not preprocessing. The
 * runners mark their forwards only when the engine threads take every CPU; otherwise
 * the lull never holds a decode back.
 */
#include "pipeline.h"

#include <string.h>

#include "metrics.h"
#include "models.h"

/* Longer than one forward of any model served here (ResNet-50 batch 8 takes 250-300 ms
 * on 2 cores, ResNet-152 about 2.8 times that), so a decode waits out the forward in
 * progress rather than giving up inside it. With 200 ms, a quarter of the decodes at
 * ResNet-50's maximum load (104 of 400) gave up and ran during a forward; with 2 s none
 * did, and the mean wait stayed 67 ms (max 300: one forward). Those that still give up
 * are counted in classifyd_decodes_during_forward_total. */
#define PIPELINE_LULL_MAX_NS 2000000000ull

static void list_push(job_t **head, job_t **tail, job_t *j) {
  j->next = NULL;
  if (*tail) (*tail)->next = j;
  else *head = j;
  *tail = j;
}

static job_t *list_take(pipeline_t *p, job_t **head, job_t **tail) {
  pthread_mutex_lock(&p->mu);
  job_t *j = *head;
  *head = *tail = NULL;
  pthread_mutex_unlock(&p->mu);
  return j;
}

int pipeline_admit(pipeline_t *p) {
  long cur = atomic_load(&p->waiting);
  do {
    if (cur >= p->capacity) return -1;
  } while (!atomic_compare_exchange_weak(&p->waiting, &cur, cur + 1));
  return 0;
}

void pipeline_unadmit(pipeline_t *p) { atomic_fetch_sub(&p->waiting, 1); }

long pipeline_depth(pipeline_t *p) { return atomic_load(&p->waiting); }

void pipeline_submit(pipeline_t *p, job_t *j) {
  j->t_admit = job_now_ns();
  pthread_mutex_lock(&p->mu);
  list_push(&p->intake_head, &p->intake_tail, j);
  pthread_mutex_unlock(&p->mu);
  uv_async_send(&p->intake_async);
}

/* uv worker thread: checks, then the decode (in the lull, when there is one). */
static void decode_job(pipeline_t *p, job_t *j) {
  model_entry_t *m = j->model;
  j->t_dec0 = job_now_ns();
  if (job_client_gone(j)) { /* 499 as nginx logs it; the answer goes nowhere */
    job_fail(j, 499, "client_closed", "the client closed the connection while queued");
    return;
  }
  if (j->t_dec0 > j->deadline) {
    job_fail(j, 504, "deadline_exceeded", "request waited %.1f ms, past its deadline",
             (double)(j->t_dec0 - j->t_start) / 1e6);
    return;
  }
  j->tensor = runner_tensor_get(m->runner);
  if (!j->tensor) {
    job_fail(j, 500, "internal_error", "out of memory");
    return;
  }
  cnn_error_t err = {0};
  int rc = cnn_image_to_tensor(j->data, j->len, &p->limits, &m->pp, j->tensor, &err);
  j->t_dec1 = job_now_ns();
  if (rc < 0) {
    runner_tensor_put(m->runner, j->tensor);
    j->tensor = NULL;
    job_fail_cnn(j, rc, err.msg);
    return;
  }
  metrics_observe(H_PREPROCESS, (double)(j->t_dec1 - j->t_dec0) / 1e9);
}

static void decode_work(uv_work_t *w) {
  pipeline_t *p = w->loop->data;
  int overran = 0;
  if (p->lull) lull_decode_begin(p->lull, PIPELINE_LULL_MAX_NS, &overran);
  if (overran) metrics_decode_in_forward();
  decode_job(p, w->data);
  if (p->lull) lull_decode_end(p->lull);
}

static void job_finished_early(pipeline_t *p, job_t *j) {
  pipeline_unadmit(p);
  p->finish(j);
}

static void dispatch(pipeline_t *p);

/* Loop thread. */
static void decode_after(uv_work_t *w, int status) {
  job_t *j = w->data;
  pipeline_t *p = w->loop->data;
  if (status == UV_ECANCELED && !j->status) job_fail(j, 503, "shutting_down", "cancelled");
  runner_t *r = j->model->runner;
  if (!j->status) {
    if (runner_push(r, j) == 0) return; /* the job is the runner's now: do not touch it */
    runner_tensor_put(r, j->tensor);
    j->tensor = NULL;
    job_fail(j, 500, "internal_error", "engine queue unexpectedly full");
  }
  runner_unhold(r);
  job_finished_early(p, j);
  dispatch(p);
}

/* Loop thread: start decoding every pending job whose runner has a free slot. */
static void dispatch(pipeline_t *p) {
  job_t **link = &p->pending_head;
  while (*link) {
    job_t *j = *link;
    if (!runner_hold(j->model->runner)) {
      link = &j->next;
      continue;
    }
    *link = j->next;
    j->work.data = j;
    int rc = uv_queue_work(p->loop, &j->work, decode_work, decode_after);
    if (rc < 0) {
      runner_unhold(j->model->runner);
      job_fail(j, 500, "internal_error", "cannot queue work: %s", uv_strerror(rc));
      job_finished_early(p, j);
    }
  }
}

static void intake_cb(uv_async_t *a) {
  pipeline_t *p = a->data;
  job_t *j = list_take(p, &p->intake_head, &p->intake_tail);
  job_t **tail = &p->pending_head;
  while (*tail) tail = &(*tail)->next;
  *tail = j; /* the intake list is already FIFO and NULL-terminated */
  dispatch(p);
}

static void dispatch_cb(uv_async_t *a) { dispatch(a->data); }

static void done_cb(uv_async_t *a) {
  pipeline_t *p = a->data;
  job_t *j = list_take(p, &p->done_head, &p->done_tail);
  while (j) {
    job_t *next = j->next;
    p->finish(j);
    j = next;
  }
}

/* Runner threads. */
static void runner_taken(void *arg, int n) {
  pipeline_t *p = arg;
  atomic_fetch_sub(&p->waiting, n);
  uv_async_send(&p->dispatch_async); /* the runner freed n decode slots */
}

static void runner_done(void *arg, job_t *j) {
  pipeline_t *p = arg;
  if (j->status == 200) pace_observe_image(&p->pace, j->t_inf1 - j->t_inf0, j->batch);
  pthread_mutex_lock(&p->mu);
  list_push(&p->done_head, &p->done_tail, j);
  pthread_mutex_unlock(&p->mu);
  uv_async_send(&p->done_async);
}

runner_cb_t pipeline_runner_cb(pipeline_t *p) {
  return (runner_cb_t){.taken = runner_taken, .done = runner_done, .arg = p};
}

int pipeline_init(pipeline_t *p, uv_loop_t *loop, long capacity, const cnn_image_limits_t *lim,
                  void (*finish)(job_t *j)) {
  memset(p, 0, sizeof(*p));
  p->loop = loop;
  p->capacity = capacity;
  p->limits = *lim;
  p->finish = finish;
  atomic_init(&p->waiting, 0);
  pace_init(&p->pace);
  loop->data = p;
  if (pthread_mutex_init(&p->mu, NULL) != 0) return UV_ENOMEM;
  int rc = uv_async_init(loop, &p->intake_async, intake_cb);
  if (rc < 0) return rc;
  p->intake_async.data = p;
  rc = uv_async_init(loop, &p->done_async, done_cb);
  if (rc < 0) {
    uv_close((uv_handle_t *)&p->intake_async, NULL);
    return rc;
  }
  p->done_async.data = p;
  rc = uv_async_init(loop, &p->dispatch_async, dispatch_cb);
  if (rc < 0) {
    uv_close((uv_handle_t *)&p->intake_async, NULL);
    uv_close((uv_handle_t *)&p->done_async, NULL);
    return rc;
  }
  p->dispatch_async.data = p;
  return 0;
}

void pipeline_close(pipeline_t *p) {
  uv_close((uv_handle_t *)&p->intake_async, NULL);
  uv_close((uv_handle_t *)&p->done_async, NULL);
  uv_close((uv_handle_t *)&p->dispatch_async, NULL);
}

void pipeline_deinit(pipeline_t *p) { pthread_mutex_destroy(&p->mu); }
