/*
 * runner.h — one inference runner thread per model.
 *
 * A runner owns one cnn_ctx_t (max_batch images, `threads` engine threads), a
 * job queue and a pool of input-tensor buffers that decode workers fill. The
 * runner thread takes up to max_batch queued jobs, drops those past their
 * deadline (504), runs the rest as ONE cnn_forward batch, fills each job's
 * top-k and hands every job to cb->done (any thread-safe sink).
 * runner_destroy() closes the queue, lets the thread drain it, joins, frees.
 */
#ifndef CLASSIFYD_RUNNER_H
#define CLASSIFYD_RUNNER_H

#include "cnn.h"
#include "gate.h"
#include "lull.h"
#include "job.h"

typedef struct runner runner_t;

typedef struct {
  void (*taken)(void *arg, int n); /* n jobs left the waiting queue */
  void (*done)(void *arg, job_t *j);
  void *arg;
} runner_cb_t;

typedef struct {
  int threads, max_batch, batch_window_us, queue_cap;
  gate_t *gate; /* shared by every runner to serialize forwards; NULL: none */
  lull_t *lull; /* forwards marked for decodes that wait for the lull; NULL: none */
} runner_opts_t;

int runner_create(const cnn_model_t *model, const runner_opts_t *o, const runner_cb_t *cb,
                  runner_t **out, cnn_error_t *err);
void runner_destroy(runner_t *r);
int runner_push(runner_t *r, job_t *j); /* -1: queue full or closed */
/* A tensor buffer for one image (NULL: out of memory); return it with put. */
float *runner_tensor_get(runner_t *r);
void runner_tensor_put(runner_t *r, float *t);
size_t runner_arena_bytes(const runner_t *r); /* the context's planned activations */

/* Decode budget: a job must hold a slot from before its decode until the runner
 * takes it (the runner then gives it back itself, before cb->taken). At most
 * RUNNER_HOLD_BATCHES * max_batch slots: enough to decode the next batch while
 * one runs, and it bounds the decoded tensors in memory. With a lull (decodes wait
 * for the pause between forwards) one batch's worth: the next batch is decoded in
 * that pause, and a second batch's decodes would run on into the next forward, the
 * very preemption the lull avoids. runner_hold() returns 1
 * with a slot, 0 when none is free; call it from one thread only (the loop).
 * runner_unhold() gives a slot back for a job that will not reach the runner. */
#define RUNNER_HOLD_BATCHES 2
/* How long past its window a batch may wait for its images still being decoded. */
#define RUNNER_COMING_WAIT_US 20000
/* How long a forward may wait for decodes already running to end (lull.h). */
#define RUNNER_LULL_WAIT_NS 50000000u
int runner_hold(runner_t *r);
void runner_unhold(runner_t *r);

#endif
