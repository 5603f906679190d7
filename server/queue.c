/*
 * queue.c — bounded job FIFO with batch pop (see queue.h).
 *
 * Design: a fixed ring allocated once, a mutex and one condition variable
 * (CLOCK_MONOTONIC for the batch window). The bound is a safety net: the
 * daemon's admission control already keeps fewer jobs waiting than the ring
 * holds, so a failing push means a broken invariant and is answered with 500.
 * Batch window (Triton's max_queue_delay): it runs from the moment the OLDEST
 * job taken was pushed, not from when the consumer woke, so a job that already
 * waited behind a running batch is never held back again, a lone job waits at
 * most window_us, and the pop returns as soon as `max` jobs are in hand.
 * With queue_expect, the window runs from the oldest job's admission instead (its
 * decode, ~2 ms for a 500x375 JPEG, then counts toward it: a lone request no longer
 * waits a whole window more after its decode with the engine idle), and a short
 * batch then waits for the jobs still being decoded for it (the held count less
 * queued and taken), re-checking every millisecond because a decode that fails
 * pushes nothing.
 */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int queue_init(queue_t *q, int cap) {
  q->ring = calloc((size_t)cap, sizeof(*q->ring));
  if (!q->ring) return -1;
  q->cap = cap;
  q->head = q->count = q->closed = 0;
  q->held = NULL;
  q->held_wait_us = 0;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&q->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0 || pthread_mutex_init(&q->mu, NULL) != 0) {
    if (rc == 0) pthread_cond_destroy(&q->cv);
    free(q->ring);
    return -1;
  }
  return 0;
}

void queue_deinit(queue_t *q) {
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q->ring);
  q->ring = NULL;
}

int queue_push(queue_t *q, job_t *j) {
  pthread_mutex_lock(&q->mu);
  int ok = !q->closed && q->count < q->cap;
  if (ok) {
    j->t_queued = job_now_ns();
    q->ring[(q->head + q->count) % q->cap] = j;
    q->count++;
    pthread_cond_signal(&q->cv);
  }
  pthread_mutex_unlock(&q->mu);
  return ok ? 0 : -1;
}

static int take(queue_t *q, job_t **out, int n, int max) {
  while (n < max && q->count > 0) {
    out[n++] = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
  }
  return n;
}

/* Wait for more jobs until `until_ns` (CLOCK_MONOTONIC) or until max are taken. */
static int fill_until(queue_t *q, job_t **out, int n, int max, uint64_t until_ns) {
  struct timespec until = {.tv_sec = (time_t)(until_ns / 1000000000u),
                           .tv_nsec = (long)(until_ns % 1000000000u)};
  while (n < max && !q->closed && job_now_ns() < until_ns) {
    if (q->count == 0) pthread_cond_timedwait(&q->cv, &q->mu, &until);
    n = take(q, out, n, max);
  }
  return n;
}

/* Jobs held for this queue that are neither queued nor among the n taken: still
 * being decoded (or waiting to be). */
static int coming(const queue_t *q, int n) {
  return q->held ? atomic_load(q->held) - q->count - n : 0;
}

enum { QUEUE_COMING_POLL_NS = 1000000 }; /* a failed decode pushes nothing: re-check */

/* After the window: wait for jobs still being decoded, until max are taken, none is
 * coming any more, or until_ns. */
static int fill_coming(queue_t *q, job_t **out, int n, int max, uint64_t until_ns) {
  while (n < max && !q->closed && coming(q, n) > 0) {
    uint64_t now = job_now_ns();
    if (now >= until_ns) break;
    uint64_t at = now + QUEUE_COMING_POLL_NS < until_ns ? now + QUEUE_COMING_POLL_NS : until_ns;
    n = fill_until(q, out, n, max, at);
  }
  return n;
}

/* Where the oldest job's window starts: its push, or, when the jobs on their way are
 * waited for (queue_expect), its admission, so that its own decode counts toward the
 * window (the jobs admitted after it are held while they decode, and waited for). */
static uint64_t queue__window_from(const queue_t *q, const job_t *j) {
  return q->held && j->t_admit != 0 && j->t_admit < j->t_queued ? j->t_admit : j->t_queued;
}

int queue_pop_batch(queue_t *q, job_t **out, int max, int window_us) {
  uint64_t asked = job_now_ns();
  pthread_mutex_lock(&q->mu);
  while (q->count == 0 && !q->closed) pthread_cond_wait(&q->cv, &q->mu);
  int n = take(q, out, 0, max);
  if (n > 0 && n < max && window_us > 0) {
    uint64_t end = queue__window_from(q, out[0]) + (uint64_t)window_us * 1000u;
    n = fill_until(q, out, n, max, end);
    /* from the window's end, or from this call when the oldest job waited longer */
    if (n < max && q->held_wait_us > 0)
      n = fill_coming(q, out, n, max, (end > asked ? end : asked) + (uint64_t)q->held_wait_us * 1000u);
  }
  pthread_mutex_unlock(&q->mu);
  return n;
}

void queue_expect(queue_t *q, const atomic_int *held, int wait_us) {
  pthread_mutex_lock(&q->mu);
  q->held = held;
  q->held_wait_us = wait_us;
  pthread_mutex_unlock(&q->mu);
}

void queue_close(queue_t *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}
