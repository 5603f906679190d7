/*
 * queue.h — a bounded blocking FIFO of jobs (many producers, one consumer).
 *
 * queue_init() allocates the ring; queue_deinit() frees it (the queue must be
 * empty and nobody waiting). queue_push() never blocks: it fails with -1 when
 * the queue is full or closed. queue_pop_batch() blocks for the first job, then
 * takes up to `max` jobs; while fewer than `max`, it waits for more until
 * `window_us` after the first taken job was pushed (0: no wait): dynamic batching.
 * queue_push() stamps job->t_queued. After queue_close() it still drains what
 * is queued and returns 0 once empty.
 */
#ifndef CLASSIFYD_QUEUE_H
#define CLASSIFYD_QUEUE_H

#include <pthread.h>

#include "job.h"

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job_t **ring;
  int cap, head, count, closed;
} queue_t;

int queue_init(queue_t *q, int cap);
void queue_deinit(queue_t *q);
int queue_push(queue_t *q, job_t *j);
int queue_pop_batch(queue_t *q, job_t **out, int max, int window_us);
void queue_close(queue_t *q);

#endif
