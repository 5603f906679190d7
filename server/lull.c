/*
 * lull.c — forwards and decodes taking turns (see lull.h).
 *
 * Three counts under one mutex and one condition variable: forwards running,
 * forwards starting (waiting for decodes to end) and decodes running. A decode
 * may start when the first two are zero; a forward starts when the third is, and
 * while it waits its `starting` count keeps new decodes out, so a stream of
 * uploads cannot hold a forward back. Every end broadcasts when its count drops
 * to zero. Waits are timed on CLOCK_MONOTONIC, so a clock step cannot stretch
 * the bounds.
 */
#include "lull.h"

#include <time.h>

static uint64_t lull__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timespec lull__at(uint64_t ns) {
  return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
}

int lull_init(lull_t *l) {
  l->forwards = l->starting = l->decodes = 0;
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

void lull_forward_begin(lull_t *l, uint64_t max_ns) {
  struct timespec until = lull__at(lull__now() + max_ns);
  pthread_mutex_lock(&l->mu);
  l->starting++;
  while (l->decodes > 0 && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0) {
  }
  l->starting--;
  l->forwards++;
  pthread_mutex_unlock(&l->mu);
}

void lull_forward_end(lull_t *l) {
  pthread_mutex_lock(&l->mu);
  if (--l->forwards == 0) pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

uint64_t lull_decode_begin(lull_t *l, uint64_t max_ns, int *overran) {
  uint64_t t0 = lull__now();
  struct timespec until = lull__at(t0 + max_ns);
  pthread_mutex_lock(&l->mu);
  while ((l->forwards > 0 || l->starting > 0) &&
         pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0) {
  }
  if (overran) *overran = l->forwards > 0 || l->starting > 0;
  l->decodes++;
  pthread_mutex_unlock(&l->mu);
  return lull__now() - t0;
}

void lull_decode_end(lull_t *l) {
  pthread_mutex_lock(&l->mu);
  if (--l->decodes == 0) pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}
