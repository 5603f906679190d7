/*
 * pipeline.h — the libuv side of a classify job: admission, decode in the uv
 * worker pool, hand-off to the model's runner, and completion back on the loop.
 *
 * Threads: pipeline_admit/submit may be called from any thread (HTTP threads);
 * pipeline_runner_cb() gives the callbacks runners use from their threads;
 * everything else runs on the loop thread. When a job is finished (status set)
 * the pipeline calls finish(job) on the loop thread; the HTTP layer resumes the
 * connection there.
 */
#ifndef CLASSIFYD_PIPELINE_H
#define CLASSIFYD_PIPELINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "cnn.h"
#include "job.h"
#include "lull.h"
#include "pace.h"
#include "runner.h"

typedef struct {
  uv_loop_t *loop;
  uv_async_t intake_async, done_async, dispatch_async;
  pthread_mutex_t mu;
  job_t *intake_head, *intake_tail, *done_head, *done_tail;
  job_t *pending_head; /* loop thread only: admitted, waiting for a decode slot */
  atomic_long waiting; /* admitted, not yet taken by a runner */
  long capacity;
  pace_t pace; /* engine time per image, fed by every job the engine answered */
  cnn_image_limits_t limits;
  void (*finish)(job_t *j);
  lull_t *lull; /* set by the owner after init: decodes wait for it first; NULL: never */
} pipeline_t;

int pipeline_init(pipeline_t *p, uv_loop_t *loop, long capacity, const cnn_image_limits_t *lim,
                  void (*finish)(job_t *j));
void pipeline_close(pipeline_t *p); /* closes the loop handles; call on the loop thread */
void pipeline_deinit(pipeline_t *p); /* after the handles' close callbacks ran */
int pipeline_admit(pipeline_t *p);   /* 0, or -1 when the queue is full */
void pipeline_unadmit(pipeline_t *p);
void pipeline_submit(pipeline_t *p, job_t *j);
long pipeline_depth(pipeline_t *p);
runner_cb_t pipeline_runner_cb(pipeline_t *p);

#endif
