/*
 * handlers.c — routes and endpoint handlers.
 *
 * Routes: POST /classify[?model=&top_k=], POST /models/NAME/classify, GET
 * /models, /healthz, /readyz (+ KServe v2 /v2/health/live|ready), /metrics,
 * and the page: GET / and /static/NAME (web.c).
 * Query parameters come decoded from MHD; they are validated strictly (top_k
 * is 1..1000 in plain decimal) before a single body byte is stored, and the
 * Content-Length is checked against the body limit up front. Answers are built
 * with json_out into one malloc'd buffer that MHD frees after sending.
 */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "web.h"

#define MODELS_PREFIX "/models/"
#define STATIC_PREFIX "/static/"

typedef struct {
  const char *path;
  route_t route;
  metrics_endpoint_t ep;
} route_def_t;

static const route_def_t routes[] = {
    {"/classify", ROUTE_CLASSIFY, EP_CLASSIFY},   {"/models", ROUTE_MODELS, EP_MODELS},
    {"/healthz", ROUTE_HEALTHZ, EP_HEALTHZ},      {"/v2/health/live", ROUTE_HEALTHZ, EP_HEALTHZ},
    {"/readyz", ROUTE_READYZ, EP_READYZ},         {"/v2/health/ready", ROUTE_READYZ, EP_READYZ},
    {"/metrics", ROUTE_METRICS, EP_METRICS},       {"/", ROUTE_WEB, EP_OTHER},
};

void router_match(req_t *r, const char *url, char *name, size_t namelen) {
  name[0] = '\0';
  r->route = ROUTE_NONE;
  r->ep = EP_OTHER;
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (strcmp(url, routes[i].path) == 0) {
      r->route = routes[i].route;
      r->ep = routes[i].ep;
      return;
    }
  }
  if (strncmp(url, STATIC_PREFIX, strlen(STATIC_PREFIX)) == 0) {
    r->route = ROUTE_WEB;
    return;
  }
  size_t pl = strlen(MODELS_PREFIX);
  if (strncmp(url, MODELS_PREFIX, pl) != 0) return;
  const char *n = url + pl, *slash = strchr(n, '/');
  if (!slash || slash == n || strcmp(slash, "/classify") != 0) return;
  size_t len = (size_t)(slash - n);
  if (len >= namelen) {
    snprintf(name, namelen, "/"); /* too long to be a model; '/' never names one */
  } else {
    memcpy(name, n, len);
    name[len] = '\0';
  }
  r->route = ROUTE_CLASSIFY;
  r->ep = EP_CLASSIFY;
}

const char *router_allow(route_t route) {
  return route == ROUTE_CLASSIFY ? "POST, OPTIONS" : "GET, HEAD, OPTIONS";
}

int router_method_ok(route_t route, const char *method) {
  if (route == ROUTE_CLASSIFY) return strcmp(method, MHD_HTTP_METHOD_POST) == 0;
  return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static enum MHD_Result send_json(req_t *r, int status, jout_t *j) {
  size_t len;
  char *body = jout_take(j, &len);
  if (!body) return http_error(r, 500, "internal_error", "out of memory");
  return http_send(r, status, body, len, "application/json", NULL, 0);
}

enum MHD_Result handlers_options(req_t *r) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  const char *allow = router_allow(r->route);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
  const char *list = r->app->cfg->cors_origins;
  if (list && *list) {
    MHD_add_response_header(resp, "Vary", "Origin");
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *p = list;
    int ok = 0;
    while (origin && *p && !ok) { /* same matching as http.c, on the raw list */
      while (*p == ' ' || *p == ',') p++;
      size_t n = strcspn(p, ",");
      while (n > 0 && p[n - 1] == ' ') n--;
      ok = (n == 1 && *p == '*') || (n == strlen(origin) && n && !strncmp(p, origin, n));
      p += strcspn(p, ",");
    }
    if (ok) {
      MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
      MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
      MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type");
      MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
  }
  enum MHD_Result rc = MHD_queue_response(r->conn, 204, resp);
  MHD_destroy_response(resp);
  r->status = 204;
  r->state = RS_ANSWERED;
  return rc;
}

/* Expected time before a job with `ahead` jobs in front reaches the engine: they
 * and possibly a batch already running, at the engine's recent time per image
 * (pace.h). Nothing ahead counts as no wait: such a job is always admitted. */
static uint64_t queue_wait_ns(pipeline_t *p, long ahead, int max_batch) {
  return pace_wait_ns(&p->pace, ahead > 0 ? ahead + max_batch : 0);
}

static uint64_t deadline_ns(const app_t *a) {
  return (uint64_t)a->cfg->request_deadline_ms * 1000000u;
}

/* Ready: every model loaded, and a new job would be admitted (see admit()). */
static int app_ready(app_t *a, modelset_t *g, char *why, size_t n) {
  registry_t *reg = &g->reg;
  int loaded = registry_ready_count(reg);
  if (atomic_load(&a->draining)) return snprintf(why, n, "shutting down"), 0;
  if (loaded < reg->n) return snprintf(why, n, "%d of %d models loaded", loaded, reg->n), 0;
  long depth = pipeline_depth(a->pipe);
  if (depth >= a->pipe->capacity) return snprintf(why, n, "queue full"), 0;
  uint64_t wait = queue_wait_ns(a->pipe, depth, g->cfg.max_batch);
  if (wait > deadline_ns(a))
    return snprintf(why, n, "the queue's expected wait (%.0f ms) is past the deadline",
                    (double)wait / 1e6), 0;
  return 1;
}

static void render_metrics(app_t *a, modelset_t *g, jout_t *j) {
  metrics_gauges_t m = {.queue_depth = pipeline_depth(a->pipe),
                        .queue_capacity = a->pipe->capacity,
                        .in_flight = atomic_load(&a->in_flight),
                        .models_loaded = registry_ready_count(&g->reg),
                        .models_configured = g->reg.n,
                        .generation = (long)g->id,
                        .connections_open = atomic_load(&a->conns->open),
                        .connections_limit = a->max_connections,
                        .connections_refused = atomic_load(&a->conns_refused),
                        .connections_cut = atomic_load(&a->conns->cut),
                        .lingering = atomic_load(&a->linger->active),
                        .lingered = atomic_load(&a->linger->total),
                        .upload_bytes = atomic_load(&a->upload_bytes),
                        .upload_refused = atomic_load(&a->upload_refused)};
  metrics_render(j, &m);
}

/* GET endpoints; those that read the models hold a reference to the generation
 * only while the answer is built. */
enum MHD_Result handlers_get(req_t *r) {
  jout_t j;
  jout_init(&j);
  char why[128];
  app_t *a = r->app;
  if (r->route == ROUTE_HEALTHZ) {
    jout_puts(&j, "{\"status\":\"ok\"}\n");
    return send_json(r, 200, &j);
  }
  if (r->route == ROUTE_WEB) {
    const web_asset_t *page = web_find(r->path);
    if (!page) return http_error(r, 404, "not_found", "no such path");
    return web_serve(r, page);
  }
  if (r->route != ROUTE_READYZ && r->route != ROUTE_MODELS && r->route != ROUTE_METRICS)
    return http_error(r, 404, "not_found", "no such path");
  modelset_t *g = modelset_slot_get(a->models);
  int ready = r->route == ROUTE_READYZ && app_ready(a, g, why, sizeof(why));
  if (r->route == ROUTE_MODELS) {
    registry_json(&g->reg, &j, &g->cfg, g->id);
    jout_printf(&j, "\n");
  } else if (r->route == ROUTE_METRICS) {
    render_metrics(a, g, &j);
  }
  modelset_unref(g);
  if (r->route == ROUTE_READYZ) {
    if (!ready) return http_error(r, 503, "not_ready", "%s", why);
    jout_puts(&j, "{\"status\":\"ready\"}\n");
  }
  if (r->route != ROUTE_METRICS) return send_json(r, 200, &j);
  size_t len;
  char *body = jout_take(&j, &len);
  if (!body) return http_error(r, 500, "internal_error", "out of memory");
  return http_send(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8", NULL, 0);
}

/* Strict 1..1000; returns -1 on anything else. */
static int parse_top_k(const char *s) {
  int v = 0, n = 0;
  for (; *s; s++, n++) {
    if (*s < '0' || *s > '9' || n >= 4) return -1;
    v = v * 10 + (*s - '0');
  }
  return (n > 0 && v >= 1 && v <= JOB_MAX_TOPK) ? v : -1;
}

static enum MHD_Result check_length(req_t *r) {
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (!cl) return MHD_YES;
  char *end;
  unsigned long long v = strtoull(cl, &end, 10);
  if (end != cl && *end == '\0' && v > r->app->cfg->body_limit)
    return http_error(r, 413, "payload_too_large", "body of %llu bytes exceeds the limit of %zu",
                      v, r->app->cfg->body_limit);
  r->content_length = v;
  if (end != cl && *end == '\0' && http_upload_charge(r, v) < 0)
    return http_error(r, 503, "server_busy", "too many uploads in progress; retry later");
  return MHD_YES;
}

enum MHD_Result handlers_classify_begin(req_t *r, const char *path_model) {
  app_t *a = r->app;
  const char *name = *path_model ? path_model
                                 : MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "model");
  if (!r->gen) r->gen = modelset_slot_get(a->models); /* released when the request ends */
  registry_t *reg = &r->gen->reg;
  model_entry_t *m = (name && *name) ? registry_find(reg, name, strlen(name)) : &reg->m[reg->def];
  if (!m) return http_error(r, 404, "model_not_found", "no model named '%.64s'", name);
  r->model = m;
  const char *k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "top_k");
  r->top_k = k ? parse_top_k(k) : 5;
  if (r->top_k < 0)
    return http_error(r, 400, "invalid_parameter", "top_k must be an integer in 1..1000");
  if (!atomic_load_explicit(&m->ready, memory_order_acquire))
    return http_error(r, 503, "not_ready", "model '%s' is still loading", m->conf->name);
  if (check_length(r) == MHD_YES && r->state == RS_NEW) {
    int mrc = multipart_init(&r->mp, r->conn, a->cfg->body_limit);
    r->is_multipart = mrc == 0;
    if (mrc == -2) r->err_code = "invalid_multipart"; /* the body is discarded, then 400 */
  }
  return MHD_YES;
}

static enum MHD_Result submit_checks(req_t *r) {
  if (r->err_code && !strcmp(r->err_code, "server_busy"))
    return http_error(r, 503, "server_busy", "too many uploads in progress; retry later");
  if (r->err_code && !strcmp(r->err_code, "out_of_memory"))
    return http_error(r, 500, "internal_error", "out of memory reading the body");
  if (r->err_code)
    return http_error(r, 400, "invalid_image", "malformed multipart/form-data body");
  if (r->is_multipart) {
    free(r->body);
    r->body = multipart_take(&r->mp, &r->body_len);
  }
  if (!r->body || r->body_len == 0)
    return http_error(r, 400, "invalid_image",
                      r->is_multipart ? "no file part in the multipart body" : "empty body");
  if (cnn_image_sniff(r->body, r->body_len) == CNN_FMT_UNKNOWN)
    return http_error(r, 415, "unsupported_media_type",
                      "unsupported image format (supported: JPEG, PNG, WebP)");
  if (atomic_load(&r->app->draining))
    return http_error(r, 503, "not_ready", "shutting down");
  return MHD_YES;
}

/* Admission: a place in the queue, and an expected wait (queue_wait_ns) that
 * still lets the job reach the engine before its deadline; otherwise it would
 * only wait to get a 504. A refusal costs no decode, and its Retry-After is the
 * queue's expected wait. Returns 0 when admitted (the caller must submit the
 * job), else -1 with the refusal queued and *rc its result. */
static int admit(req_t *r, enum MHD_Result *rc) {
  pipeline_t *p = r->app->pipe;
  if (pipeline_admit(p) < 0) {
    r->retry_after = pace_retry_after_s(queue_wait_ns(p, p->capacity, r->gen->cfg.max_batch));
    *rc = http_error(r, 503, "queue_full", "the queue is full (%ld waiting); retry later",
                     p->capacity);
    return -1;
  }
  long ahead = pipeline_depth(p) - 1;
  uint64_t wait = queue_wait_ns(p, ahead, r->gen->cfg.max_batch);
  if (wait <= deadline_ns(r->app)) return 0;
  pipeline_unadmit(p);
  r->retry_after = pace_retry_after_s(wait);
  *rc = http_error(r, 503, "queue_full",
                   "%ld jobs ahead would take about %.0f ms, past the %d ms deadline; retry later",
                   ahead, (double)wait / 1e6, r->app->cfg->request_deadline_ms);
  return -1;
}

enum MHD_Result handlers_classify_submit(req_t *r) {
  enum MHD_Result rc = submit_checks(r);
  if (r->state == RS_ANSWERED) return rc;
  app_t *a = r->app;
  if (admit(r, &rc) < 0) return rc;
  job_t *j = &r->job;
  j->conn = r->conn;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  j->fd = ci ? ci->connect_fd : -1;
  j->model = r->model;
  j->data = r->body;
  j->len = r->body_len;
  j->top_k = r->top_k;
  j->t_start = r->t_start;
  j->deadline = r->t_start + (uint64_t)a->cfg->request_deadline_ms * 1000000u;
  r->state = RS_QUEUED;
  MHD_suspend_connection(r->conn);
  pipeline_submit(a->pipe, j);
  return MHD_YES;
}

static void answer_json(req_t *r, jout_t *o) {
  job_t *jb = &r->job;
  const model_entry_t *m = r->model;
  uint64_t now = job_now_ns();
  double queue = (double)((jb->t_dec0 - jb->t_admit) + (jb->t_inf0 - jb->t_dec1)) / 1e6;
  metrics_observe(H_QUEUE, queue / 1e3);
  jout_puts(o, "{\"model\":");
  jout_str(o, m->conf->name);
  jout_puts(o, ",\"predictions\":[");
  for (int i = 0; i < jb->k; i++) {
    jout_printf(o, "%s{\"index\":%d,\"label\":", i ? "," : "", jb->idx[i]);
    jout_str(o, m->labels[jb->idx[i]]);
    jout_puts(o, ",\"probability\":");
    jout_num(o, jb->prob[i], 6);
    jout_puts(o, "}");
  }
  jout_printf(o, "],\"timing_ms\":{\"queue\":%.3f,\"preprocess\":%.3f,\"inference\":%.3f,"
                 "\"total\":%.3f},\"batch_size\":%d",
              queue, (double)(jb->t_dec1 - jb->t_dec0) / 1e6,
              (double)(jb->t_inf1 - jb->t_inf0) / 1e6, (double)(now - r->t_start) / 1e6,
              jb->batch);
  if (m->info->untrained) jout_puts(o, ",\"untrained\":true");
  jout_puts(o, "}\n");
}

enum MHD_Result handlers_classify_answer(req_t *r) {
  job_t *j = &r->job;
  if (j->status != 200)
    return http_error(r, j->status, j->err_code ? j->err_code : "internal_error", "%s",
                      j->err_msg);
  jout_t o;
  jout_init(&o);
  answer_json(r, &o);
  return send_json(r, 200, &o);
}
