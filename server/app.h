/*
 * app.h — the daemon's shared state, handed to every HTTP callback.
 *
 * Set up once by daemon.c before the HTTP server starts; afterwards only the
 * atomics and the model slot change. cfg holds the start-up settings (those a
 * reload does not change: listen, limits, CORS, queue length); the models and
 * the engine settings come from the current generation in `models`, which a
 * request references for its whole life (modelset.h). The configuration, the
 * slot and the pipeline outlive the HTTP server.
 */
#ifndef CLASSIFYD_APP_H
#define CLASSIFYD_APP_H

#include <stdatomic.h>

#include "config.h"
#include "conns.h"
#include "linger.h"
#include "modelset.h"
#include "pipeline.h"

typedef struct {
  const config_t *cfg;
  modelset_slot_t *models;
  pipeline_t *pipe;
  atomic_int draining;  /* SIGTERM received: answer with Connection: close */
  atomic_long in_flight; /* requests between first callback and completion */
  int max_connections;   /* served at once; derived from cfg and ulimit -n (rlimits.h) */
  int accept_limit;      /* accepted at once (requests beyond max_connections get 503) */
  conns_t *conns;        /* open connections and their request deadlines */
  linger_t *linger;      /* lingering close of refused uploads */
  atomic_long upload_bytes; /* body bytes charged against cfg->upload_memory */
  atomic_long conns_refused;  /* requests answered 503 because too many connections were open */
  atomic_long upload_refused; /* uploads refused (503) because that budget was spent */
  atomic_ulong started;  /* requests begun since start-up (memtrim.h watches it) */
} app_t;

#endif
