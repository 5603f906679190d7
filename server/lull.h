/*
 * lull.h — takes turns between image decoding and engine forwards.
 *
 * When the engine's threads take every CPU, a decode that runs during a forward
 * preempts one of them, and the forward's other threads then wait for it at the
 * next barrier (or at the end of the image-serial prefix): a millisecond of
 * decoding cost two. So decodes run in the pauses between forwards: a decode
 * waits while a forward runs or is about to (lull_decode_begin), and a forward
 * about to start waits for the decodes already running and holds off new ones
 * (lull_forward_begin). Both waits are bounded, so neither side can starve the
 * other: a decode or a forward that waited its bound runs anyway. Several
 * forwards may run at once (parallel models). lull_init/lull_deinit: the caller
 * owns the storage.
 */
#ifndef CLASSIFYD_LULL_H
#define CLASSIFYD_LULL_H

#include <pthread.h>
#include <stdint.h>

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  int forwards;      /* running */
  int starting;      /* forwards waiting for running decodes to end */
  int decodes;       /* running */
} lull_t;

int lull_init(lull_t *l); /* 0 or -1 */
void lull_deinit(lull_t *l);
/* Waits, at most max_ns, until no decode runs (new ones hold off meanwhile). */
void lull_forward_begin(lull_t *l, uint64_t max_ns);
void lull_forward_end(lull_t *l);
/* Waits, at most max_ns, until no forward runs or is starting; returns the ns waited.
 * *overran (unless NULL) is set to 1 if the bound ran out first (the decode then runs
 * during a forward), else 0. */
uint64_t lull_decode_begin(lull_t *l, uint64_t max_ns, int *overran);
void lull_decode_end(lull_t *l);

#endif
