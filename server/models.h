/*
 * models.h — the registry of configured models and their loading.
 *
 * registry_init() only records the configuration; models_load_one() (called
 * from the loader thread) loads a model, applies the labels and preprocessing
 * overrides, starts its runner and only then publishes `ready` (release), so
 * any thread that sees ready == 1 (acquire) may use model, info, pp, labels and
 * runner without a lock; they are read-only from then on.
 */
#ifndef CLASSIFYD_MODELS_H
#define CLASSIFYD_MODELS_H

#include <stdatomic.h>

#include "cnn.h"
#include "config.h"
#include "json_out.h"
#include "runner.h"

typedef struct model_entry {
  const config_model_t *conf;
  int is_default;
  cnn_model_t *model;
  const cnn_model_info_t *info;
  cnn_preprocess_t pp;
  const char *const *labels;
  char *labels_blob;  /* labels file contents (labels override) */
  char **labels_own;  /* pointers into labels_blob */
  runner_t *runner;
  atomic_int ready;
} model_entry_t;

typedef struct {
  model_entry_t *m;
  int n, def;
} registry_t;

int registry_init(registry_t *r, const config_t *c);
void registry_deinit(registry_t *r); /* stops runners, frees models */
model_entry_t *registry_find(registry_t *r, const char *name, size_t len);
int registry_ready_count(registry_t *r);
int models_load_one(model_entry_t *m, const runner_opts_t *o, const runner_cb_t *cb, char *err,
                    size_t errlen);
/* GET /models body; c: the settings the models run with; generation: the model set they
 * belong to (modelset.h). */
void registry_json(registry_t *r, jout_t *o, const config_t *c, unsigned long generation);

#endif
