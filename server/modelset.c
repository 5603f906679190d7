/*
 * modelset.c — generations of served models and the current-generation slot
 * (see modelset.h for the contract).
 *
 * Why a mutex in modelset_slot_get: reading `cur` and incrementing its count
 * must be one step, or a swap plus the last unref could free the generation
 * between the two. The critical section is two loads and an add, so request
 * threads never wait on a reload: loading happens before the swap, freeing
 * after it, both outside the lock. Counts are atomics so unref needs no lock.
 * Invariants: a generation reachable from the slot has refs >= 1; every job in
 * a runner queue belongs to a request that holds a reference to the runner's
 * generation, so when the count reaches zero every runner queue is empty and
 * registry_deinit() only joins idle threads.
 */
#include "modelset.h"

#include <stdlib.h>
#include <string.h>

#include "cpus.h"
#include "log.h"
#include "memtrim.h"

modelset_t *modelset_create(config_t *cfg, unsigned long id) {
  modelset_t *s = calloc(1, sizeof(*s));
  if (!s) {
    config_free(cfg);
    return NULL;
  }
  s->cfg = *cfg;
  memset(cfg, 0, sizeof(*cfg));
  s->id = id;
  atomic_init(&s->refs, 1);
  if (registry_init(&s->reg, &s->cfg) < 0) {
    config_free(&s->cfg);
    free(s);
    return NULL;
  }
  return s;
}

void modelset_ref(modelset_t *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void modelset_unref(modelset_t *s) {
  if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  int loaded = registry_ready_count(&s->reg);
  registry_deinit(&s->reg);
  if (loaded) log_msg(LOG_INFO, "generation %lu freed (%d model(s))", s->id, loaded);
  config_free(&s->cfg);
  free(s);
  /* The generation's many small blocks (graph, labels, protobuf) were spread
   * over the arenas of the threads that loaded it; give their free pages back,
   * or every reload leaves a few MiB resident (daemon.c sets the mmap threshold
   * for the big buffers). */
  memtrim_release();
}

/* Forwards take turns with decodes only when they take every CPU (with CPUs to
 * spare, decoding may as well overlap) and come from one model: two models'
 * forwards follow each other through the gate without a pause, and decodes would
 * wait out their bound (measured: p99 200 ms against 135 ms with overlap). */
int modelset_decodes_in_lull(const config_t *c, int nmodels) {
  return !c->decode_overlap && c->threads >= cpus_available() && nmodels == 1;
}

int modelset_load(modelset_t *s, const runner_cb_t *cb, gate_t *gate, lull_t *lull, atomic_int *stop,
                  void (*progress)(void *arg, int i, const char *name), void *arg, char *err,
                  size_t n) {
  const config_t *c = &s->cfg;
  runner_opts_t o = {.threads = c->threads, .max_batch = c->max_batch,
                     .batch_window_us = c->batch_window_us, .queue_cap = c->queue_length,
                     .gate = !c->parallel_models && s->reg.n > 1 ? gate : NULL,
                     .lull = modelset_decodes_in_lull(c, s->reg.n) ? lull : NULL};
  for (int i = 0; i < s->reg.n; i++) {
    if (atomic_load(stop)) return 1;
    if (progress) progress(arg, i, s->reg.m[i].conf->name);
    if (models_load_one(&s->reg.m[i], &o, cb, err, n) < 0) return -1;
  }
  /* Loading frees much of what it allocates (each conv's plain weights once packed, the
   * load-time rewrites' merged weights: graph_fuse.c), and under the daemon's 16 MiB mmap
   * threshold those blocks stay in the heap until the first idle trim: ResNet-50's merged
   * shortcuts (graph_shortcut.c) left `make bench-http`'s serving RSS peak at 1.29-1.39x
   * of weights + arena, against 1.24x before them. Give them back now. */
  memtrim_release();
  return 0;
}

int modelset_slot_init(modelset_slot_t *slot, modelset_t *first) {
  slot->cur = first;
  return pthread_mutex_init(&slot->mu, NULL) == 0 ? 0 : -1;
}

modelset_t *modelset_slot_get(modelset_slot_t *slot) {
  pthread_mutex_lock(&slot->mu);
  modelset_t *s = slot->cur;
  modelset_ref(s);
  pthread_mutex_unlock(&slot->mu);
  return s;
}

modelset_t *modelset_slot_swap(modelset_slot_t *slot, modelset_t *next) {
  pthread_mutex_lock(&slot->mu);
  modelset_t *old = slot->cur;
  slot->cur = next;
  pthread_mutex_unlock(&slot->mu);
  return old;
}

void modelset_slot_deinit(modelset_slot_t *slot) {
  modelset_unref(slot->cur);
  slot->cur = NULL;
  pthread_mutex_destroy(&slot->mu);
}
