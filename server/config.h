/*
 * config.h — classifyd settings: defaults, the INI file (inih), command-line flags.
 *
 * Every setting has one name "section.key" (e.g. "engine.threads",
 * "model.resnet50.path"); the INI file and the flags both go through
 * config_set(), so a flag is just a later assignment and beats the file.
 * config_load() returns 0, 1 for "--help was printed", or -1 after printing a
 * message naming the bad setting (the caller exits 2). The caller owns the
 * config_t and frees it with config_free().
 */
#ifndef CLASSIFYD_CONFIG_H
#define CLASSIFYD_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#include "cnn.h"

#define CONFIG_MAX_MODELS 16
#define CONFIG_NAME_MAX 64

/* Preprocessing overrides: a field is used only when its has_ flag is set. */
typedef struct {
  int has_resize, resize_shorter;
  int has_crop, crop_h, crop_w;
  int has_mean, has_std;
  float mean[3], std[3];
  int has_order, bgr;
  int has_range;
  float scale;
} config_pp_t;

typedef struct {
  char name[CONFIG_NAME_MAX];
  char *path;   /* required */
  char *labels; /* optional labels file, one label per line */
  int is_default;
  config_pp_t pp;
} config_model_t;

typedef struct {
  char *listen; /* "HOST:PORT" or "[V6]:PORT" */
  int http_threads;
  size_t body_limit;
  int64_t max_pixels;
  int max_side;
  int request_deadline_ms;
  int connection_timeout_s;
  int min_upload_rate;        /* bytes/s that extend connection_timeout for a request */
  int max_connections;        /* 0: automatic, from the open-file limit */
  int max_connections_per_ip; /* 0: no per-address limit */
  int header_limit;           /* bytes for the request line and headers (MHD memory limit) */
  int max_headers, max_query_args;
  size_t upload_memory; /* request bodies held in memory, all connections together */
  int drain_timeout_s;
  char *cors_origins; /* comma-separated; "" = CORS off; "*" = any */
  int threads;        /* engine threads per inference context */
  int workers;        /* libuv pool threads (decode + preprocess) */
  int queue_length;
  int max_batch;
  int batch_window_us;
  int parallel_models; /* 0: one forward at a time across models (fair gate) */
  int decode_overlap;  /* 0: decoding waits for the lull between forwards (lull.h) */
  int log_level; /* log_level_t */
  int log_json;
  int n_models;
  int default_model; /* index into models */
  config_model_t models[CONFIG_MAX_MODELS];
} config_t;

int config_load(config_t *c, int argc, char **argv);
/* config_load without printing: 0, 1 (--help asked), or -1 with the message in err.
 * Whatever it returns, c may (and should) be freed with config_free. */
int config_parse(config_t *c, int argc, char **argv, char *err, size_t errlen);
/* Deep copy (0, or -1 out of memory with dst left empty); free dst with config_free. */
int config_copy(config_t *dst, const config_t *src);
/* For a reload: every setting that only takes effect at start-up (all but [model.*],
 * engine.threads, engine.max_batch, engine.batch_window_us) is set back in `next` to its
 * value in `running`; the names of those that differed go to `changed` (comma-separated,
 * "" when none). Returns 0, or -1 out of memory. */
int config_keep_startup(config_t *next, const config_t *running, char *changed, size_t n);
void config_free(config_t *c);
void config_usage(FILE *out);
/* Apply one "section.key = value"; returns 0 or -1 with a message in err. */
int config_set(config_t *c, const char *section, const char *key, const char *value,
               char *err, size_t errlen);

#endif
