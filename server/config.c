/*
 * config.c — settings table, INI parsing (inih), flags (getopt_long), validation.
 *
 * Design: one table lists every global setting with its section, key, flag,
 * type, bounds and help text; --help, the INI handler and the flag parser are
 * all driven by it, so a setting cannot exist in one place and not the others.
 * Per-model settings live in [model.NAME] sections and are reachable from the
 * command line with --model NAME=PATH or the generic --set model.NAME.KEY=VALUE.
 * Order of precedence: defaults < file < flags (flags applied in order).
 * Every error names the setting; nothing is half-applied that matters, since the
 * daemon exits on the first error. Strings are heap copies owned by config_t.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cpus.h"
#include "log.h"

typedef enum { T_STR, T_INT, T_SIZE, T_LEVEL, T_FORMAT } setting_type_t;

typedef struct {
  const char *section, *key, *flag;
  setting_type_t type;
  size_t off;
  long long min, max;
  const char *help;
} setting_t;

#define OFF(f) offsetof(config_t, f)
static const setting_t settings[] = {
    {"server", "listen", "listen", T_STR, OFF(listen), 0, 0,
     "listen address HOST:PORT or [IPV6]:PORT (port 0: any free port)"},
    {"server", "http_threads", "http-threads", T_INT, OFF(http_threads), 1, 64,
     "HTTP I/O threads (libmicrohttpd thread pool; default: CPUs/2, 1..4)"},
    {"server", "body_limit", "body-limit", T_SIZE, OFF(body_limit), 1, 1LL << 30,
     "largest accepted request body in bytes (suffix K, M, G)"},
    {"server", "max_pixels", "max-pixels", T_SIZE, OFF(max_pixels), 1, 1LL << 31,
     "pixel budget: largest width*height of an uploaded image"},
    {"server", "max_side", "max-side", T_INT, OFF(max_side), 1, 1 << 20,
     "longest image side accepted"},
    {"server", "request_deadline_ms", "request-deadline-ms", T_INT, OFF(request_deadline_ms), 1,
     3600000, "a request not started on the engine within this many ms gets 504"},
    {"server", "connection_timeout", "connection-timeout", T_INT, OFF(connection_timeout_s), 1,
     3600, "seconds a request may take to arrive (idle or trickling), see min_upload_rate"},
    {"server", "min_upload_rate", "min-upload-rate", T_SIZE, OFF(min_upload_rate), 0, 1LL << 30,
     "a request arriving at this many bytes/s or faster is never cut off (0: no extension)"},
    {"server", "max_connections", "max-connections", T_INT, OFF(max_connections), 0, 1000000,
     "most client connections at once (0: automatic, from ulimit -n, at most 1000)"},
    {"server", "max_connections_per_ip", "max-connections-per-ip", T_INT,
     OFF(max_connections_per_ip), 0, 1000000, "most connections from one address (0: no limit)"},
    {"server", "header_limit", "header-limit", T_SIZE, OFF(header_limit), 4096, 1 << 20,
     "bytes for a request line and headers (more: 431 or 414)"},
    {"server", "max_headers", "max-headers", T_INT, OFF(max_headers), 1, 10000,
     "most header lines in a request (more: 431)"},
    {"server", "max_query_args", "max-query-args", T_INT, OFF(max_query_args), 1, 10000,
     "most query parameters in a URL (more: 414)"},
    {"server", "upload_memory", "upload-memory", T_SIZE, OFF(upload_memory), 0, 1LL << 40,
     "request bodies held in memory, all connections together (more: 503; 0: the larger of "
     "128M and body_limit)"},
    {"server", "drain_timeout", "drain-timeout", T_INT, OFF(drain_timeout_s), 0, 3600,
     "seconds to finish in-flight requests after SIGTERM/SIGINT"},
    {"server", "cors_origins", "cors-origins", T_STR, OFF(cors_origins), 0, 0,
     "comma-separated allowed CORS origins, or * (empty: CORS off)"},
    {"engine", "threads", "threads", T_INT, OFF(threads), 1, 256,
     "engine threads per inference context (one context per model; default: CPUs)"},
    {"engine", "workers", "workers", T_INT, OFF(workers), 1, 128,
     "libuv worker threads for decoding and preprocessing (default: CPUs, at most 16)"},
    {"engine", "queue_length", "queue-length", T_INT, OFF(queue_length), 1, 100000,
     "admitted requests waiting for the engine; beyond it: 503"},
    {"engine", "max_batch", "max-batch", T_INT, OFF(max_batch), 1, 64,
     "most queued images of one model run as one batch"},
    {"engine", "batch_window_us", "batch-window-us", T_INT, OFF(batch_window_us), 0, 1000000,
     "microseconds a batch may wait for more images, counted from its oldest (0: no wait)"},
    {"engine", "parallel_models", "parallel-models", T_INT, OFF(parallel_models), 0, 1,
     "1: models run forwards at the same time; 0: one forward at a time, in arrival order"},
    {"engine", "decode_overlap", "decode-overlap", T_INT, OFF(decode_overlap), 0, 1,
     "0: with one model and engine threads on every CPU, decode uploads in the pauses "
     "between forwards; 1: decode during forwards too"},
    {"log", "level", "log-level", T_LEVEL, OFF(log_level), 0, 0, "error, warn, info or debug"},
    {"log", "format", "log-format", T_FORMAT, OFF(log_json), 0, 0, "text or json"},
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void config_defaults(config_t *c) {
  memset(c, 0, sizeof(*c));
  c->listen = strdup("127.0.0.1:8080");
  c->cors_origins = strdup("");
  c->body_limit = 16u << 20;
  c->max_pixels = 40000000;
  c->max_side = 20000;
  c->request_deadline_ms = 30000;
  c->connection_timeout_s = 30;
  c->min_upload_rate = 1024;
  c->header_limit = 32768;
  c->max_headers = 64;
  c->max_query_args = 16;
  c->upload_memory = 0; /* automatic: see validate_limits */
  c->drain_timeout_s = 30;
  int ncpu = cpus_available();
  c->threads = ncpu > 256 ? 256 : ncpu;
  c->workers = ncpu > 16 ? 16 : ncpu;
  c->http_threads = ncpu < 2 ? 1 : ncpu > 8 ? 4 : ncpu / 2;
  c->queue_length = 64;
  c->max_batch = 8;
  c->batch_window_us = 2000;
  c->log_level = LOG_INFO;
  c->default_model = -1;
}

static void model_free(config_model_t *m) {
  free(m->path);
  free(m->labels);
  memset(m, 0, sizeof(*m));
}

void config_free(config_t *c) {
  free(c->listen);
  free(c->cors_origins);
  for (int i = 0; i < c->n_models; i++) model_free(&c->models[i]);
  memset(c, 0, sizeof(*c));
}

static int fail(char *err, size_t n, const char *fmt, const char *a, const char *b) {
  snprintf(err, n, fmt, a, b);
  return -1;
}

/* Integer with optional K/M/G suffix (powers of 1024) when `suffix`. */
static int parse_ll(const char *v, int suffix, long long *out) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v) return -1;
  long long mul = 1;
  if (suffix && *end) {
    switch (*end == 'k' ? 'K' : *end == 'm' ? 'M' : *end == 'g' ? 'G' : *end) {
    case 'K': mul = 1LL << 10; break;
    case 'M': mul = 1LL << 20; break;
    case 'G': mul = 1LL << 30; break;
    default: return -1;
    }
    end++;
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
  }
  if (*end) return -1;
  if (x > LLONG_MAX / mul || x < LLONG_MIN / mul) return -1;
  *out = x * mul;
  return 0;
}

static int set_global(config_t *c, const setting_t *s, const char *v, char *err, size_t n) {
  char *p = (char *)c + s->off;
  long long x;
  log_level_t lv;
  switch (s->type) {
  case T_STR: {
    char *d = strdup(v);
    if (!d) return fail(err, n, "%s.%s: out of memory", s->section, s->key);
    free(*(char **)p);
    *(char **)p = d;
    return 0;
  }
  case T_LEVEL:
    if (log_level_parse(v, &lv) < 0) return -1;
    *(int *)p = (int)lv;
    return 0;
  case T_FORMAT:
    if (strcmp(v, "json") && strcmp(v, "text")) return -1;
    *(int *)p = strcmp(v, "json") == 0;
    return 0;
  case T_INT:
  case T_SIZE:
    if (parse_ll(v, s->type == T_SIZE, &x) < 0 || x < s->min || x > s->max) return -1;
    if (s->off == OFF(body_limit)) c->body_limit = (size_t)x;
    else if (s->off == OFF(upload_memory)) c->upload_memory = (size_t)x;
    else if (s->off == OFF(max_pixels)) c->max_pixels = x;
    else *(int *)p = (int)x;
    return 0;
  }
  return -1;
}

static void setting_expect(const setting_t *s, char *buf, size_t n) {
  switch (s->type) {
  case T_STR: snprintf(buf, n, "a string"); break;
  case T_LEVEL: snprintf(buf, n, "one of error, warn, info, debug"); break;
  case T_FORMAT: snprintf(buf, n, "text or json"); break;
  default: snprintf(buf, n, "an integer in %lld..%lld", s->min, s->max);
  }
}

static int valid_model_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= CONFIG_NAME_MAX) return 0;
  for (; *s; s++)
    if (!(*s == '-' || *s == '_' || *s == '.' || (*s >= '0' && *s <= '9') ||
          (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
      return 0;
  return 1;
}

static config_model_t *model_get(config_t *c, const char *name, char *err, size_t n) {
  for (int i = 0; i < c->n_models; i++)
    if (strcmp(c->models[i].name, name) == 0) return &c->models[i];
  if (!valid_model_name(name)) {
    fail(err, n, "model.%s: invalid model name%s (use letters, digits, '.', '_', '-')", name, "");
    return NULL;
  }
  if (c->n_models == CONFIG_MAX_MODELS) {
    fail(err, n, "model.%s: too many models (at most %s)", name, "16");
    return NULL;
  }
  config_model_t *m = &c->models[c->n_models++];
  memset(m, 0, sizeof(*m));
  snprintf(m->name, sizeof(m->name), "%s", name);
  return m;
}

/* "a,b,c" -> 3 floats. */
static int parse_floats3(const char *v, float out[3]) {
  char *end;
  const char *p = v;
  for (int i = 0; i < 3; i++) {
    errno = 0;
    double x = strtod(p, &end);
    if (errno || end == p || !(x > -1e6 && x < 1e6)) return -1;
    out[i] = (float)x;
    while (*end == ' ') end++;
    if (i < 2 && *end++ != ',') return -1;
    p = end;
  }
  return *p ? -1 : 0;
}

static int parse_bool(const char *v, int *out) {
  if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
    *out = 1;
  else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
           !strcasecmp(v, "off"))
    *out = 0;
  else return -1;
  return 0;
}

static int set_crop(config_pp_t *pp, const char *v) {
  long long h, w;
  char buf[64];
  snprintf(buf, sizeof(buf), "%s", v);
  char *x = strpbrk(buf, "x,");
  if (x) *x = '\0';
  if (parse_ll(buf, 0, &h) < 0 || (x && parse_ll(x + 1, 0, &w) < 0)) return -1;
  if (!x) w = h;
  if (h < 1 || h > 4096 || w < 1 || w > 4096) return -1;
  pp->has_crop = 1, pp->crop_h = (int)h, pp->crop_w = (int)w;
  return 0;
}

static int set_model_key(config_model_t *m, const char *key, const char *v) {
  config_pp_t *pp = &m->pp;
  long long x;
  char **dst = !strcmp(key, "path") ? &m->path : !strcmp(key, "labels") ? &m->labels : NULL;
  if (dst) {
    char *d = *v ? strdup(v) : NULL;
    if (*v && !d) return -1;
    free(*dst);
    *dst = d;
    return 0;
  }
  if (!strcmp(key, "default")) return parse_bool(v, &m->is_default);
  if (!strcmp(key, "resize_shorter")) {
    if (parse_ll(v, 0, &x) < 0 || x < 0 || x > 8192) return -1;
    pp->has_resize = 1, pp->resize_shorter = (int)x;
    return 0;
  }
  if (!strcmp(key, "crop")) return set_crop(pp, v);
  if (!strcmp(key, "mean")) return pp->has_mean = 1, parse_floats3(v, pp->mean);
  if (!strcmp(key, "std")) {
    pp->has_std = 1;
    if (parse_floats3(v, pp->std) < 0) return -1;
    return (pp->std[0] > 0 && pp->std[1] > 0 && pp->std[2] > 0) ? 0 : -1;
  }
  if (!strcmp(key, "channel_order")) {
    if (strcasecmp(v, "RGB") && strcasecmp(v, "BGR")) return -1;
    return pp->has_order = 1, pp->bgr = !strcasecmp(v, "BGR"), 0;
  }
  if (!strcmp(key, "pixel_range")) {
    if (strcmp(v, "0-1") && strcmp(v, "0-255")) return -1;
    return pp->has_range = 1, pp->scale = !strcmp(v, "0-1") ? 1.0f / 255.0f : 1.0f, 0;
  }
  return -2;
}

static int config_set_model(config_t *c, const char *name, const char *key, const char *value,
                            char *err, size_t n) {
  config_model_t *m = model_get(c, name, err, n);
  if (!m) return -1;
  int rc = set_model_key(m, key, value);
  if (rc == -2) {
    snprintf(err, n, "model.%s.%s: unknown setting (path, labels, default, resize_shorter, "
             "crop, mean, std, channel_order, pixel_range)", name, key);
    return -1;
  }
  if (rc < 0) snprintf(err, n, "model.%s.%s: invalid value '%.200s'", name, key, value);
  return rc;
}

int config_set(config_t *c, const char *section, const char *key, const char *value,
               char *err, size_t n) {
  if (strncmp(section, "model.", 6) == 0)
    return config_set_model(c, section + 6, key, value, err, n);
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const setting_t *s = &settings[i];
    if (strcmp(s->section, section) || strcmp(s->key, key)) continue;
    if (set_global(c, s, value, err, n) == 0) return 0;
    char expect[96];
    setting_expect(s, expect, sizeof(expect));
    snprintf(err, n, "%s.%s: invalid value '%.200s' (expected %s)", section, key, value, expect);
    return -1;
  }
  snprintf(err, n, "%.100s.%.100s: unknown setting", section, key);
  return -1;
}

typedef struct {
  config_t *c;
  char err[512];
  int failed;
} ini_ctx_t;

static int ini_cb(void *user, const char *section, const char *key, const char *value) {
  ini_ctx_t *x = user;
  if (x->failed) return 0;
  if (!key) return 1; /* section start (inih with INI_CALL_HANDLER_ON_NEW_SECTION) */
  if (config_set(x->c, section, key, value ? value : "", x->err, sizeof(x->err)) < 0) {
    x->failed = 1;
    return 0;
  }
  return 1;
}

static int config_read_file(config_t *c, const char *path, char *err, size_t n) {
  ini_ctx_t x = {.c = c};
  int rc = ini_parse(path, ini_cb, &x);
  if (x.failed) return snprintf(err, n, "%.300s: %s", path, x.err), -1;
  if (rc == -1) return fail(err, n, "config: cannot open '%.300s': %s", path, strerror(errno));
  if (rc != 0) return snprintf(err, n, "config: %.300s:%d: syntax error", path, rc), -1;
  return 0;
}

/* ---- flags ------------------------------------------------------------------------ */

enum { OPT_CONFIG = 1000, OPT_MODEL, OPT_DEFAULT, OPT_SET, OPT_HELP, OPT_SETTING = 2000 };

static void build_options(struct option *o) {
  size_t k = 0;
  o[k++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
  o[k++] = (struct option){"model", required_argument, NULL, OPT_MODEL};
  o[k++] = (struct option){"default-model", required_argument, NULL, OPT_DEFAULT};
  o[k++] = (struct option){"set", required_argument, NULL, OPT_SET};
  o[k++] = (struct option){"help", no_argument, NULL, OPT_HELP};
  for (size_t i = 0; i < N_SETTINGS; i++)
    o[k++] = (struct option){settings[i].flag, required_argument, NULL, OPT_SETTING + (int)i};
  o[k] = (struct option){NULL, 0, NULL, 0};
}

void config_usage(FILE *out) {
  fprintf(out,
          "usage: classifyd [--config FILE] [flags]          run the daemon\n"
          "       classifyd classify [options] IMAGE...       one-shot classification\n\n"
          "Flags (a flag beats the config file):\n"
          "  --config FILE              INI file (see conf/classifyd.conf)\n"
          "  --model NAME=PATH.onnx     serve a model (repeatable; the first is the default;\n"
          "                             any --model replaces the file's [model.*] sections)\n"
          "  --default-model NAME       which model answers /classify without ?model=\n"
          "  --set SECTION.KEY=VALUE    any setting, e.g. --set model.resnet50.labels=FILE\n"
          "  --help                     this text\n");
  for (size_t i = 0; i < N_SETTINGS; i++) {
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s V", settings[i].flag);
    fprintf(out, "  %-26s %s [%s.%s]\n", flag, settings[i].help, settings[i].section,
            settings[i].key);
  }
  fprintf(out, "\nPer-model settings ([model.NAME] or --set model.NAME.KEY=V): path, labels,\n"
               "default, resize_shorter, crop (N or HxW), mean (r,g,b), std (r,g,b),\n"
               "channel_order (RGB|BGR), pixel_range (0-1|0-255).\n"
               "Exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid configuration.\n");
}

static int flag_model(config_t *c, const char *arg, int *replaced, char *err, size_t n) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1])
    return fail(err, n, "--model '%.200s': expected NAME=PATH%s", arg, "");
  if (!*replaced) {
    for (int i = 0; i < c->n_models; i++) model_free(&c->models[i]);
    c->n_models = 0;
    *replaced = 1;
  }
  char name[CONFIG_NAME_MAX + 1];
  size_t len = (size_t)(eq - arg);
  if (len > CONFIG_NAME_MAX) len = CONFIG_NAME_MAX;
  memcpy(name, arg, len);
  name[len] = '\0';
  return config_set_model(c, name, "path", eq + 1, err, n);
}

static int flag_set(config_t *c, const char *arg, char *err, size_t n) {
  char buf[1024];
  if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
    return fail(err, n, "--set: argument too long%s%s", "", "");
  char *eq = strchr(buf, '=');
  if (!eq) return fail(err, n, "--set '%.200s': expected SECTION.KEY=VALUE%s", arg, "");
  *eq = '\0';
  char *dot = strrchr(buf, '.');
  if (!dot) return fail(err, n, "--set '%.200s': expected SECTION.KEY=VALUE%s", arg, "");
  *dot = '\0';
  return config_set(c, buf, dot + 1, eq + 1, err, n);
}

/* Pass 1: --help and --config only. */
static int scan_first(int argc, char **argv, const struct option *opts, const char **file) {
  optind = 0;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (ch == OPT_HELP) return 1;
    if (ch == OPT_CONFIG) *file = optarg;
  }
  return 0;
}

static int set_default(config_t *c, const char *name, char *err, size_t n) {
  int found = 0;
  for (int i = 0; i < c->n_models; i++) {
    c->models[i].is_default = strcmp(c->models[i].name, name) == 0;
    found |= c->models[i].is_default;
  }
  if (!found) return fail(err, n, "--default-model '%.100s': no such model%s", name, "");
  return 0;
}

static int apply_flags(config_t *c, int argc, char **argv, const struct option *opts,
                       char *err, size_t n) {
  int replaced = 0, ch, rc = 0;
  const char *default_name = NULL;
  optind = 0;
  opterr = 0;
  while (rc == 0 && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (ch == OPT_MODEL) rc = flag_model(c, optarg, &replaced, err, n);
    else if (ch == OPT_SET) rc = flag_set(c, optarg, err, n);
    else if (ch == OPT_DEFAULT) default_name = optarg;
    else if (ch >= OPT_SETTING) {
      const setting_t *s = &settings[ch - OPT_SETTING];
      rc = config_set(c, s->section, s->key, optarg, err, n);
    } else if (ch == '?' || ch == ':')
      rc = fail(err, n, "unknown or incomplete option '%.200s'%s (see --help)",
                argv[optind - 1], "");
  }
  if (rc == 0 && optind < argc)
    rc = fail(err, n, "unexpected argument '%.200s'%s (see --help)", argv[optind], "");
  if (rc == 0 && default_name) rc = set_default(c, default_name, err, n);
  return rc;
}

static int check_readable(const char *what, const char *name, const char *path, char *err,
                          size_t n) {
  if (access(path, R_OK) == 0) return 0;
  snprintf(err, n, "model.%s.%s: cannot read '%.300s': %s", name, what, path, strerror(errno));
  return -1;
}

static int validate_models(config_t *c, char *err, size_t n) {
  if (c->n_models == 0)
    return fail(err, n, "model: no model configured (use --model NAME=PATH.onnx or a [model.NAME]"
                        " section)%s%s", "", "");
  c->default_model = -1;
  for (int i = 0; i < c->n_models; i++) {
    config_model_t *m = &c->models[i];
    if (!m->path) return fail(err, n, "model.%s.path: missing%s", m->name, "");
    if (check_readable("path", m->name, m->path, err, n) < 0) return -1;
    if (m->labels && check_readable("labels", m->name, m->labels, err, n) < 0) return -1;
    if (!m->is_default) continue;
    if (c->default_model >= 0)
      return fail(err, n, "model.%s.default: more than one default model (also %s)", m->name,
                  c->models[c->default_model].name);
    c->default_model = i;
  }
  if (c->default_model < 0) c->default_model = 0;
  return 0;
}

static int validate_listen(const config_t *c, char *err, size_t n) {
  const char *colon = strrchr(c->listen, ':');
  long long port;
  if (!colon || colon == c->listen || parse_ll(colon + 1, 0, &port) < 0 || port < 0 ||
      port > 65535)
    return fail(err, n, "server.listen: invalid value '%.200s' (expected HOST:PORT)%s",
                c->listen, "");
  return 0;
}

static int validate_limits(config_t *c, char *err, size_t n) {
  if (c->upload_memory == 0) {
    size_t dflt = (size_t)128 << 20;
    c->upload_memory = c->body_limit > dflt ? c->body_limit : dflt;
  }
  if (c->upload_memory >= c->body_limit) return 0;
  snprintf(err, n, "server.upload_memory: %zu is below server.body_limit (%zu): a body at the "
           "limit could never be accepted", c->upload_memory, c->body_limit);
  return -1;
}

int config_parse(config_t *c, int argc, char **argv, char *err, size_t n) {
  struct option opts[N_SETTINGS + 6];
  const char *file = NULL;
  memset(c, 0, sizeof(*c)); /* config_free is safe whatever this returns (even --help) */
  build_options(opts);
  if (scan_first(argc, argv, opts, &file)) return 1;
  config_defaults(c);
  if (!c->listen || !c->cors_origins) return fail(err, n, "out of memory%s%s", "", "");
  if (file && config_read_file(c, file, err, n) < 0) return -1;
  if (apply_flags(c, argc, argv, opts, err, n) < 0 || validate_models(c, err, n) < 0 ||
      validate_listen(c, err, n) < 0 || validate_limits(c, err, n) < 0)
    return -1;
  return 0;
}

int config_load(config_t *c, int argc, char **argv) {
  char err[1024];
  int rc = config_parse(c, argc, argv, err, sizeof(err));
  if (rc == 1) config_usage(stdout);
  if (rc < 0) fprintf(stderr, "classifyd: invalid setting: %s\n", err);
  return rc;
}

static int copy_str(char **dst, const char *src) {
  *dst = src ? strdup(src) : NULL;
  return (src && !*dst) ? -1 : 0;
}

int config_copy(config_t *dst, const config_t *src) {
  *dst = *src;
  dst->listen = dst->cors_origins = NULL;
  for (int i = 0; i < src->n_models; i++) dst->models[i].path = dst->models[i].labels = NULL;
  int bad = copy_str(&dst->listen, src->listen) | copy_str(&dst->cors_origins, src->cors_origins);
  for (int i = 0; i < src->n_models; i++)
    bad |= copy_str(&dst->models[i].path, src->models[i].path) |
           copy_str(&dst->models[i].labels, src->models[i].labels);
  if (!bad) return 0;
  config_free(dst);
  return -1;
}

static int setting_differs(const setting_t *s, const config_t *a, const config_t *b) {
  const char *pa = (const char *)a + s->off, *pb = (const char *)b + s->off;
  if (s->type == T_STR) return strcmp(*(char *const *)pa, *(char *const *)pb) != 0;
  if (s->off == OFF(body_limit)) return a->body_limit != b->body_limit;
  if (s->off == OFF(upload_memory)) return a->upload_memory != b->upload_memory;
  if (s->off == OFF(max_pixels)) return a->max_pixels != b->max_pixels;
  return *(const int *)pa != *(const int *)pb;
}

/* Settings a reload applies: they are read when a model generation is built. */
static int setting_reloadable(const setting_t *s) {
  return s->off == OFF(threads) || s->off == OFF(max_batch) || s->off == OFF(batch_window_us);
}

static size_t setting_size(const setting_t *s) {
  if (s->type == T_STR) return sizeof(char *);
  if (s->off == OFF(body_limit) || s->off == OFF(upload_memory)) return sizeof(size_t);
  if (s->off == OFF(max_pixels)) return sizeof(int64_t);
  return sizeof(int);
}

int config_keep_startup(config_t *next, const config_t *running, char *changed, size_t n) {
  size_t used = 0;
  if (n) changed[0] = '\0';
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const setting_t *s = &settings[i];
    if (setting_reloadable(s) || !setting_differs(s, next, running)) continue;
    if (used < n)
      used += (size_t)snprintf(changed + used, n - used, "%s%s.%s", used ? ", " : "", s->section,
                               s->key);
    char *dst = (char *)next + s->off;
    const char *src = (const char *)running + s->off;
    if (s->type != T_STR) {
      memcpy(dst, src, setting_size(s));
      continue;
    }
    char *copy = strdup(*(char *const *)src);
    if (!copy) return -1;
    free(*(char **)dst);
    *(char **)dst = copy;
  }
  return 0;
}
