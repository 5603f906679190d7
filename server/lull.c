/*
 * lull.c — a count of running forwards and a condition variable (see lull.h).
 *
 * The count is changed and read under the mutex; the last forward to end
 * broadcasts, so every waiting decode starts at once. Waits are timed on
 * CLOCK_MONOTONIC, so a clock step cannot stretch the bound.
 */
#include "lull.h"

#include <time.h>

static uint64_t lull__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lull_init(lull_t *l) {
  l->busy = 0;
  pthread_condattr_t a;
  if (pthread_condattr_init(&a) != 0) return -1;
  int bad = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) != 0 ||
            pthread_cond_init(&l->cv, &a) != 0;
  pthread_condattr_destroy(&a);
  if (bad) return -1;
  if (pthread_mutex_init(&l->mu, NULL) != 0) {
    pthread_cond_destroy(&l->cv);
    return -1;
  }
  return 0;
}

void lull_deinit(lull_t *l) {
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
}

void lull_forward_begin(lull_t *l) {
  pthread_mutex_lock(&l->mu);
  l->busy++;
  pthread_mutex_unlock(&l->mu);
}

void lull_forward_end(lull_t *l) {
  pthread_mutex_lock(&l->mu);
  if (--l->busy == 0) pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

uint64_t lull_wait(lull_t *l, uint64_t max_ns) {
  uint64_t t0 = lull__now(), until_ns = t0 + max_ns;
  struct timespec until = {.tv_sec = (time_t)(until_ns / 1000000000u),
                           .tv_nsec = (long)(until_ns % 1000000000u)};
  pthread_mutex_lock(&l->mu);
  while (l->busy > 0 && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0) {
  }
  pthread_mutex_unlock(&l->mu);
  return lull__now() - t0;
}
