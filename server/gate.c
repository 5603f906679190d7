/*
 * gate.c — ticket lock on a mutex and a condition variable (see gate.h).
 *
 * Each caller takes the next ticket and waits until `serving` reaches it;
 * leaving advances `serving` and wakes every waiter (at most one per model,
 * so the broadcast is cheap). Order is arrival order at gate_enter().
 */
#include "gate.h"

int gate_init(gate_t *g) {
  g->next = g->serving = 0;
  if (pthread_mutex_init(&g->mu, NULL) != 0) return -1;
  if (pthread_cond_init(&g->cv, NULL) != 0) {
    pthread_mutex_destroy(&g->mu);
    return -1;
  }
  return 0;
}

void gate_deinit(gate_t *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

void gate_enter(gate_t *g) {
  pthread_mutex_lock(&g->mu);
  unsigned long me = g->next++;
  while (g->serving != me) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

void gate_leave(gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->serving++;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}
