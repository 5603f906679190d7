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
 *
 * queue_expect() tells the queue how many jobs are on their way to it (*held
 * counts jobs being decoded for it, queued, or just taken): the window then runs
 * from the oldest job's admission (job->t_admit, when set and earlier than its
 * push), and a batch short of
 * `max` when its window ends then also waits for those still being decoded, up to
 * `wait_us` past the window's end (or past the call, when the oldest job was
 * queued long before it). When decoding waits for the engine's lull (lull.h), the next
 * batch's images are all still being decoded when a forward ends; without this
 * the window would close on the first two or three.
 */
#ifndef CLASSIFYD_QUEUE_H
#define CLASSIFYD_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>

#include "job.h"

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job_t **ring;
  int cap, head, count, closed;
  const atomic_int *held; /* queue_expect; NULL: none */
  int held_wait_us;
} queue_t;

int queue_init(queue_t *q, int cap);
void queue_deinit(queue_t *q);
int queue_push(queue_t *q, job_t *j);
int queue_pop_batch(queue_t *q, job_t **out, int max, int window_us);
void queue_close(queue_t *q);
void queue_expect(queue_t *q, const atomic_int *held, int wait_us); /* before any pop */

#endif
