/*
 * lull.h — lets image decoding wait for the engine's pause between forwards.
 *
 * When the engine's threads take every CPU, a decode that runs during a forward
 * preempts one of them, and the forward's other threads then wait for it at the
 * next barrier (or at the end of the image-serial prefix): a millisecond of
 * decoding cost two. Decoding in the lull between forwards costs only itself. The
 * runners mark their forwards (lull_forward_begin/end); a decode worker calls
 * lull_wait first, which returns as soon as no forward runs, or after max_ns in
 * any case, so overlapping forwards (parallel models) can delay a decode but never
 * starve it. lull_init/lull_deinit: the caller owns the storage.
 */
#ifndef CLASSIFYD_LULL_H
#define CLASSIFYD_LULL_H

#include <pthread.h>
#include <stdint.h>

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  int busy;          /* forwards running */
} lull_t;

int lull_init(lull_t *l); /* 0 or -1 */
void lull_deinit(lull_t *l);
void lull_forward_begin(lull_t *l);
void lull_forward_end(lull_t *l);
/* Blocks until no forward runs or max_ns have passed; returns the nanoseconds waited. */
uint64_t lull_wait(lull_t *l, uint64_t max_ns);

#endif
