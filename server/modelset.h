/*
 * modelset.h — one generation of served models, reference counted, and the
 * slot that holds the current generation.
 *
 * A generation owns its configuration (a config_t), its registry (models,
 * runners, labels) and an atomic reference count. The slot's own reference
 * keeps the current generation alive; every user (a classify request from
 * admission to the end of its answer, a GET /models, /readyz or /metrics
 * answer) takes one with modelset_slot_get() and gives it back with
 * modelset_unref(). A reload builds and loads a new generation off to the side
 * and installs it with modelset_slot_swap(): requests admitted before see the
 * old one, requests after see the new one, nothing sees a mix. The last
 * modelset_unref() destroys the generation (runners joined, models freed); it
 * must not run on a runner thread, which never holds a reference.
 */
#ifndef CLASSIFYD_MODELSET_H
#define CLASSIFYD_MODELSET_H

#include <pthread.h>
#include <stdatomic.h>

#include "config.h"
#include "gate.h"
#include "lull.h"
#include "models.h"
#include "runner.h"

typedef struct modelset {
  config_t cfg; /* this generation's settings (owned) */
  registry_t reg;
  unsigned long id; /* generation number: 1 at start-up, +1 per successful reload */
  atomic_long refs;
} modelset_t;

typedef struct {
  pthread_mutex_t mu; /* guards cur and the get-then-ref step (never held for long) */
  modelset_t *cur;
} modelset_slot_t;

/* Takes cfg over (cfg is left empty); the new generation has one reference.
 * Returns NULL on out of memory (cfg is freed). */
modelset_t *modelset_create(config_t *cfg, unsigned long id);
void modelset_ref(modelset_t *s);
void modelset_unref(modelset_t *s); /* NULL is a no-op; the last reference destroys */
/* Loads every model in order (progress(arg, i, name) before each one), checking
 * *stop between models. With several models and parallel_models off, their runners
 * share `gate`; unless decode_overlap, a lone model whose threads take every CPU
 * takes turns with decoding on `lull` (both owned by the caller, outliving every generation;
 * either may be NULL). 0, -1 with err
 * filled, or 1 when stopped. */
/* 1 when a set of nmodels models under c decodes in the lull between forwards. */
int modelset_decodes_in_lull(const config_t *c, int nmodels);
int modelset_load(modelset_t *s, const runner_cb_t *cb, gate_t *gate, lull_t *lull, atomic_int *stop,
                  void (*progress)(void *arg, int i, const char *name), void *arg, char *err,
                  size_t errlen);

int modelset_slot_init(modelset_slot_t *slot, modelset_t *first); /* takes first's reference */
modelset_t *modelset_slot_get(modelset_slot_t *slot); /* a new reference to the current one */
/* Installs next (taking its reference) and returns the previous one with the
 * slot's reference, for the caller to unref. */
modelset_t *modelset_slot_swap(modelset_slot_t *slot, modelset_t *next);
void modelset_slot_deinit(modelset_slot_t *slot); /* drops the slot's reference */

#endif
