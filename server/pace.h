/*
 * pace.h — the engine's recent speed, and the wait it implies for a new request.
 *
 * Every image that went through the engine is reported (its batch's engine
 * time and size); pace keeps an exponentially weighted mean of the engine time
 * per image (weight 1/8 per image), the rate at which the admission queue drains under load. From it:
 * the expected wait behind `depth` admitted jobs, the Retry-After a refused
 * client is given, and whether a new job could still start before its deadline.
 * Lock-free (one atomic word); pace_observe_image may be called from any thread.
 * pace_init/no deinit: the caller owns the storage.
 */
#ifndef CLASSIFYD_PACE_H
#define CLASSIFYD_PACE_H

#include <stdatomic.h>
#include <stdint.h>

#define PACE_RETRY_MAX_S 60 /* Retry-After never says more than this */

typedef struct {
  atomic_ullong ns_per_image; /* 0 until the first batch */
} pace_t;

void pace_init(pace_t *p);
/* One image went through a forward of `batch` images that took batch_ns
 * (ignored when batch < 1). */
void pace_observe_image(pace_t *p, uint64_t batch_ns, int batch);
uint64_t pace_image_ns(pace_t *p); /* the current estimate; 0: no batch seen yet */
/* Expected time before a job queued behind `depth` others reaches the engine. */
uint64_t pace_wait_ns(pace_t *p, long depth);
/* Retry-After in whole seconds for an expected wait: rounded up, 1..PACE_RETRY_MAX_S. */
int pace_retry_after_s(uint64_t wait_ns);

#endif
