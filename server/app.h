/*
 * app.h — the daemon's shared state, handed to every HTTP callback.
 *
 * Set up once by daemon.c before the HTTP server starts; afterwards only the
 * atomics change. The configuration, registry entries and pipeline outlive
 * the HTTP server.
 */
#ifndef CLASSIFYD_APP_H
#define CLASSIFYD_APP_H

#include <stdatomic.h>

#include "config.h"
#include "models.h"
#include "pipeline.h"

typedef struct {
  const config_t *cfg;
  registry_t *reg;
  pipeline_t *pipe;
  atomic_int draining;  /* SIGTERM received: answer with Connection: close */
  atomic_long in_flight; /* requests between first callback and completion */
} app_t;

#endif
