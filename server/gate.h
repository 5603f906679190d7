/*
 * gate.h — a fair (FIFO) lock that lets one engine forward run at a time.
 *
 * With several models, each runner owns a context whose thread team is sized
 * to every available CPU. Letting two such teams run at once oversubscribes the
 * CPUs, and the engine's per-node barriers then wait on preempted threads. The
 * gate serializes forwards across runners in the order they asked (a ticket
 * lock), so no model starves and each forward gets the whole machine.
 * gate_init/gate_deinit: the caller owns the storage.
 */
#ifndef CLASSIFYD_GATE_H
#define CLASSIFYD_GATE_H

#include <pthread.h>

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned long next, serving;
} gate_t;

int gate_init(gate_t *g); /* 0 or -1 */
void gate_deinit(gate_t *g);
void gate_enter(gate_t *g); /* blocks until every earlier caller has left */
void gate_leave(gate_t *g);

#endif
