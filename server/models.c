/*
 * models.c — model registry: load, overrides, labels, readiness, GET /models.
 *
 * Design: entries are created from the configuration at start-up and never
 * move; loading happens off the event loop (loader thread) and publishes the
 * entry with an atomic release store of `ready`. A labels file is read whole
 * (bounded at 8 MiB), split in place into lines, and must hold exactly
 * num_classes labels. Preprocessing overrides start from the model's own
 * (metadata) transform; a crop that does not match the model input is refused,
 * since the context's arena is planned for the model's input size.
 */
#include "models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABELS_MAX_BYTES (8u << 20)

int registry_init(registry_t *r, const config_t *c) {
  r->m = calloc((size_t)c->n_models, sizeof(*r->m));
  if (!r->m) return -1;
  r->n = c->n_models;
  r->def = c->default_model;
  for (int i = 0; i < r->n; i++) {
    r->m[i].conf = &c->models[i];
    r->m[i].is_default = i == c->default_model;
    atomic_init(&r->m[i].ready, 0);
  }
  return 0;
}

static void entry_free(model_entry_t *m) {
  runner_destroy(m->runner);
  cnn_model_destroy(m->model);
  free(m->labels_own);
  free(m->labels_blob);
  m->runner = NULL;
  m->model = NULL;
  m->labels_own = NULL;
  m->labels_blob = NULL;
}

void registry_deinit(registry_t *r) {
  for (int i = 0; i < r->n; i++) entry_free(&r->m[i]);
  free(r->m);
  r->m = NULL;
  r->n = 0;
}

model_entry_t *registry_find(registry_t *r, const char *name, size_t len) {
  for (int i = 0; i < r->n; i++)
    if (strlen(r->m[i].conf->name) == len && memcmp(r->m[i].conf->name, name, len) == 0)
      return &r->m[i];
  return NULL;
}

int registry_ready_count(registry_t *r) {
  int n = 0;
  for (int i = 0; i < r->n; i++) n += atomic_load_explicit(&r->m[i].ready, memory_order_acquire);
  return n;
}

static char *read_file(const char *path, size_t *len, char *err, size_t n, const char *name) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, n, "model.%s.labels: cannot open '%s': %s", name, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(LABELS_MAX_BYTES + 1);
  size_t got = buf ? fread(buf, 1, LABELS_MAX_BYTES + 1, f) : 0;
  int bad = !buf || ferror(f) || got > LABELS_MAX_BYTES;
  fclose(f);
  if (bad) {
    free(buf);
    snprintf(err, n, "model.%s.labels: cannot read '%s' (or larger than 8 MiB)", name, path);
    return NULL;
  }
  buf[got] = '\0';
  *len = got;
  return buf;
}

static int load_labels(model_entry_t *m, char *err, size_t n) {
  size_t len;
  const char *name = m->conf->name;
  int nc = m->info->num_classes;
  m->labels_blob = read_file(m->conf->labels, &len, err, n, name);
  if (!m->labels_blob) return -1;
  m->labels_own = calloc((size_t)nc, sizeof(char *));
  if (!m->labels_own) return snprintf(err, n, "model.%s.labels: out of memory", name), -1;
  int count = 0;
  char *p = m->labels_blob, *end = m->labels_blob + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *stop = nl ? nl : end;
    if (stop > p && stop[-1] == '\r') stop[-1] = '\0';
    *stop = '\0';
    if (count < nc) m->labels_own[count] = p;
    count++;
    p = stop + 1;
  }
  if (count != nc) {
    snprintf(err, n, "model.%s.labels: '%s' has %d lines, the model has %d classes", name,
             m->conf->labels, count, nc);
    return -1;
  }
  m->labels = (const char *const *)m->labels_own;
  return 0;
}

static int apply_pp(model_entry_t *m, char *err, size_t n) {
  const config_pp_t *o = &m->conf->pp;
  cnn_preprocess_t *pp = &m->pp;
  *pp = m->info->preprocess;
  if (o->has_resize) pp->resize_shorter = o->resize_shorter;
  if (o->has_crop) pp->crop_h = o->crop_h, pp->crop_w = o->crop_w;
  if (o->has_mean) memcpy(pp->mean, o->mean, sizeof(pp->mean));
  if (o->has_std) memcpy(pp->std, o->std, sizeof(pp->std));
  if (o->has_order) pp->bgr = o->bgr;
  if (o->has_range) pp->scale = o->scale;
  if (m->info->in_c != 3 || pp->crop_h != m->info->in_h || pp->crop_w != m->info->in_w) {
    snprintf(err, n, "model.%s.crop: %dx%d does not match the model input %dx%dx%d",
             m->conf->name, pp->crop_h, pp->crop_w, m->info->in_c, m->info->in_h,
             m->info->in_w);
    return -1;
  }
  if (pp->resize_shorter && pp->resize_shorter < (pp->crop_h > pp->crop_w ? pp->crop_h : pp->crop_w)) {
    snprintf(err, n, "model.%s.resize_shorter: %d is smaller than the crop", m->conf->name,
             pp->resize_shorter);
    return -1;
  }
  return 0;
}

int models_load_one(model_entry_t *m, const runner_opts_t *o, const runner_cb_t *cb, char *err,
                    size_t n) {
  cnn_error_t e = {0};
  const char *name = m->conf->name;
  int rc = cnn_model_load(m->conf->path, &m->model, &e);
  if (rc < 0) {
    snprintf(err, n, "model.%s.path: cannot load '%s': %s (%s)", name, m->conf->path, e.msg,
             cnn_err_code(rc));
    return -1;
  }
  m->info = cnn_model_info(m->model);
  m->labels = m->info->labels;
  if (apply_pp(m, err, n) < 0 || (m->conf->labels && load_labels(m, err, n) < 0)) goto fail;
  rc = runner_create(m->model, o, cb, &m->runner, &e);
  if (rc < 0) {
    snprintf(err, n, "model.%s: cannot create the inference context: %s", name, e.msg);
    goto fail;
  }
  atomic_store_explicit(&m->ready, 1, memory_order_release);
  return 0;
fail:
  entry_free(m);
  return -1;
}

static void entry_json(const model_entry_t *m, jout_t *o, const config_t *c) {
  int ready = atomic_load_explicit(&m->ready, memory_order_acquire);
  jout_puts(o, "{\"name\":");
  jout_str(o, m->conf->name);
  jout_printf(o, ",\"default\":%s,\"ready\":%s,\"path\":", m->is_default ? "true" : "false",
              ready ? "true" : "false");
  jout_str(o, m->conf->path);
  if (!ready) {
    jout_puts(o, "}");
    return;
  }
  const cnn_model_info_t *i = m->info;
  jout_puts(o, ",\"arch\":");
  jout_str(o, i->arch);
  jout_printf(o, ",\"input_shape\":[%d,%d,%d],\"num_classes\":%d,\"parameters\":%lld,"
                 "\"macs\":%lld,\"max_batch\":%d,\"batch_window_us\":%d,\"threads\":%d,"
                 "\"weight_bytes\":%zu,\"arena_bytes\":%zu,\"outputs_probabilities\":%s,"
                 "\"untrained\":%s}",
              i->in_c, i->in_h, i->in_w, i->num_classes, (long long)i->params, (long long)i->macs,
              c->max_batch, c->batch_window_us, c->threads, i->weight_bytes,
              runner_arena_bytes(m->runner), i->outputs_probabilities ? "true" : "false",
              i->untrained ? "true" : "false");
}

void registry_json(registry_t *r, jout_t *o, const config_t *c, unsigned long generation) {
  jout_printf(o, "{\"generation\":%lu,\"default\":", generation);
  jout_str(o, r->m[r->def].conf->name);
  jout_puts(o, ",\"models\":[");
  for (int k = 0; k < r->n; k++) {
    if (k) jout_puts(o, ",");
    entry_json(&r->m[k], o, c);
  }
  jout_puts(o, "]}");
}
