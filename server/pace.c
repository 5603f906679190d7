/*
 * pace.c — engine time per image as a moving mean; expected queue wait (pace.h).
 *
 * Why per image and not per batch: under load the runner takes full batches, so
 * the queue drains at batch time / batch size; a lone request's batch of one is
 * slower per image, which only makes the estimate err on the cautious side when
 * the load rises. Each image of a batch counts as one sample of batch_ns / n, so
 * a batch of 8 moves the mean as much as 8 single-image batches would. With
 * several models behind the fair gate, forwards run one at a time, so the mean
 * over all models' images is still the rate the shared queue drains at.
 * The mean is an integer count of nanoseconds updated by compare-and-swap.
 */
#include "pace.h"

#define PACE_WEIGHT_SHIFT 3 /* each image moves the mean by 1/8 of its difference */

void pace_init(pace_t *p) { atomic_init(&p->ns_per_image, 0); }

static uint64_t pace_step(uint64_t mean, uint64_t sample) {
  if (mean == 0) return sample ? sample : 1;
  if (sample >= mean) return mean + ((sample - mean) >> PACE_WEIGHT_SHIFT);
  return mean - ((mean - sample) >> PACE_WEIGHT_SHIFT);
}

void pace_observe_image(pace_t *p, uint64_t batch_ns, int batch) {
  if (batch < 1) return;
  uint64_t sample = batch_ns / (uint64_t)batch;
  unsigned long long cur = atomic_load(&p->ns_per_image);
  while (!atomic_compare_exchange_weak(&p->ns_per_image, &cur, pace_step(cur, sample))) {
  }
}

uint64_t pace_image_ns(pace_t *p) { return atomic_load(&p->ns_per_image); }

uint64_t pace_wait_ns(pace_t *p, long depth) {
  if (depth <= 0) return 0;
  return pace_image_ns(p) * (uint64_t)depth;
}

int pace_retry_after_s(uint64_t wait_ns) {
  uint64_t s = wait_ns / 1000000000u + (wait_ns % 1000000000u != 0);
  if (s < 1) return 1;
  return s > PACE_RETRY_MAX_S ? PACE_RETRY_MAX_S : (int)s;
}
