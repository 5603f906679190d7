/*
 * metrics.c — Prometheus metrics: request counters, latency/batch histograms,
 * gauges handed in by the caller, and the standard process_* metrics.
 *
 * Design: fixed label sets (endpoint x status code) and fixed bucket bounds, so
 * every update is one relaxed atomic add with no lock and no allocation.
 * Buckets are stored non-cumulatively; rendering accumulates them and uses the
 * accumulated total as _count, so a scrape is always internally consistent
 * (count == +Inf bucket) even while other threads update. Sums are kept as
 * integer nanoseconds (or images) to stay atomic.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const int status_codes[] = {200, 204, 400, 404, 405, 413, 415, 500, 503, 504};
#define N_CODES (sizeof(status_codes) / sizeof(status_codes[0]))
static const char *const ep_names[EP_COUNT] = {"classify", "models",  "healthz",
                                               "readyz",   "metrics", "other"};

#define MAX_BUCKETS 16
typedef struct {
  const char *name, *help;
  double scale; /* unit of the stored sum: 1e-9 for seconds, 1 for counts */
  int n;
  double le[MAX_BUCKETS];
} hist_def_t;

static const hist_def_t hist_defs[H_COUNT] = {
    {"classifyd_request_duration_seconds", "Time from request start to answer, all endpoints",
     1e-9, 14, {.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
    {"classifyd_queue_wait_seconds", "Time a classify job waited for a worker or the engine",
     1e-9, 14, {.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}},
    {"classifyd_preprocess_duration_seconds", "Image decode and preprocess time per job", 1e-9,
     12, {.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
    {"classifyd_inference_duration_seconds", "Engine forward time per batch", 1e-9, 13,
     {.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
    {"classifyd_batch_size", "Images per engine forward call", 1, 14,
     {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64}},
};

typedef struct {
  atomic_ullong bucket[MAX_BUCKETS + 1]; /* last: above every bound */
  atomic_ullong sum;
} hist_t;

static atomic_ullong requests[EP_COUNT][N_CODES + 1];
static hist_t hists[H_COUNT];
static double start_time;
static atomic_ullong reloads_ok, reloads_failed;
static atomic_int last_reload_ok = 1;
static atomic_llong last_reload_time;

static atomic_ullong decodes_in_forward;

void metrics_decode_in_forward(void) { atomic_fetch_add(&decodes_in_forward, 1); }

void metrics_reload(int ok) {
  atomic_fetch_add(ok ? &reloads_ok : &reloads_failed, 1);
  atomic_store(&last_reload_ok, ok);
  atomic_store(&last_reload_time, (long long)time(NULL));
}


void metrics_init(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  start_time = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *metrics_endpoint_name(metrics_endpoint_t ep) {
  return (ep >= 0 && ep < EP_COUNT) ? ep_names[ep] : "other";
}

void metrics_request(metrics_endpoint_t ep, int status) {
  size_t i = 0;
  while (i < N_CODES && status_codes[i] != status) i++;
  if (ep < 0 || ep >= EP_COUNT) ep = EP_OTHER;
  atomic_fetch_add_explicit(&requests[ep][i], 1, memory_order_relaxed);
}

void metrics_observe(metrics_hist_t h, double v) {
  if (h < 0 || h >= H_COUNT || !(v >= 0)) return;
  const hist_def_t *d = &hist_defs[h];
  int b = 0;
  while (b < d->n && v > d->le[b]) b++;
  atomic_fetch_add_explicit(&hists[h].bucket[b], 1, memory_order_relaxed);
  double units = v / d->scale;
  if (units > 1e18) units = 1e18;
  atomic_fetch_add_explicit(&hists[h].sum, (unsigned long long)(units + 0.5),
                            memory_order_relaxed);
}

static void render_requests(jout_t *o) {
  jout_puts(o, "# HELP classifyd_http_requests_total HTTP requests answered, by endpoint and "
               "status code\n# TYPE classifyd_http_requests_total counter\n");
  for (int e = 0; e < EP_COUNT; e++) {
    for (size_t i = 0; i <= N_CODES; i++) {
      unsigned long long v = atomic_load_explicit(&requests[e][i], memory_order_relaxed);
      if (v == 0 && !(i == 0 && e == EP_CLASSIFY)) continue;
      if (i < N_CODES)
        jout_printf(o, "classifyd_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
                    ep_names[e], status_codes[i], v);
      else
        jout_printf(o, "classifyd_http_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                    ep_names[e], v);
    }
  }
}

static void render_hist(jout_t *o, int h) {
  const hist_def_t *d = &hist_defs[h];
  jout_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", d->name, d->help, d->name);
  unsigned long long cum = 0;
  for (int b = 0; b <= d->n; b++) {
    cum += atomic_load_explicit(&hists[h].bucket[b], memory_order_relaxed);
    if (b < d->n) jout_printf(o, "%s_bucket{le=\"%g\"} %llu\n", d->name, d->le[b], cum);
    else jout_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", d->name, cum);
  }
  double sum = (double)atomic_load_explicit(&hists[h].sum, memory_order_relaxed) * d->scale;
  jout_printf(o, "%s_sum %.9g\n%s_count %llu\n", d->name, sum, d->name, cum);
}

static void gauge(jout_t *o, const char *name, const char *type, const char *help, double v) {
  jout_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void render_reloads(jout_t *o, long generation) {
  gauge(o, "classifyd_reloads_total", "counter", "Configuration reloads applied (SIGHUP)",
        (double)atomic_load(&reloads_ok));
  gauge(o, "classifyd_reload_failures_total", "counter",
        "Configuration reloads that failed; the previous models kept serving",
        (double)atomic_load(&reloads_failed));
  gauge(o, "classifyd_last_reload_successful", "gauge",
        "1 if the last reload (or the start-up) succeeded, else 0",
        (double)atomic_load(&last_reload_ok));
  gauge(o, "classifyd_last_reload_timestamp_seconds", "gauge",
        "Unix time of the last reload attempt (0: none yet)",
        (double)atomic_load(&last_reload_time));
  gauge(o, "classifyd_model_generation", "gauge",
        "Generation of the served model set: 1 at start-up, +1 per applied reload",
        (double)generation);
}

static long count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  long n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

static void render_process(jout_t *o) {
  struct rusage ru;
  double cpu = 0;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
          ru.ru_stime.tv_usec * 1e-6;
  long pages_total = 0, pages_res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2) pages_total = pages_res = 0;
    fclose(f);
  }
  double page = (double)sysconf(_SC_PAGESIZE);
  struct rlimit rl;
  double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : -1;
  gauge(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu);
  gauge(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", pages_res * page);
  gauge(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", pages_total * page);
  gauge(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)count_fds());
  gauge(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds);
  gauge(o, "process_start_time_seconds", "gauge",
        "Start time of the process since unix epoch in seconds.", start_time);
}

static void render_guards(jout_t *o, const metrics_gauges_t *g) {
  gauge(o, "classifyd_connections_open", "gauge", "Client connections open",
        (double)g->connections_open);
  gauge(o, "classifyd_connections_limit", "gauge", "Most client connections at once",
        (double)g->connections_limit);
  gauge(o, "classifyd_connections_refused_total", "counter",
        "Requests answered 503 because server.max_connections were open",
        (double)g->connections_refused);
  gauge(o, "classifyd_connections_cut_total", "counter",
        "Connections cut off: request not in time (slow clients), or client gone mid-request",
        (double)g->connections_cut);
  gauge(o, "classifyd_connections_lingering", "gauge",
        "Refused uploads whose socket is read and discarded before closing",
        (double)g->lingering);
  gauge(o, "classifyd_connections_lingered_total", "counter",
        "Refused uploads whose socket lingered before closing", (double)g->lingered);
  gauge(o, "classifyd_upload_bytes", "gauge",
        "Request body bytes held, counted against server.upload_memory", (double)g->upload_bytes);
  gauge(o, "classifyd_upload_refused_total", "counter",
        "Uploads refused with 503 because server.upload_memory was spent",
        (double)g->upload_refused);
}

void metrics_render(jout_t *o, const metrics_gauges_t *g) {
  render_requests(o);
  for (int h = 0; h < H_COUNT; h++) render_hist(o, h);
  gauge(o, "classifyd_queue_depth", "gauge", "Admitted classify jobs not yet on the engine",
        (double)g->queue_depth);
  gauge(o, "classifyd_queue_capacity", "gauge", "Configured queue length", (double)g->queue_capacity);
  gauge(o, "classifyd_requests_in_flight", "gauge", "HTTP requests being handled",
        (double)g->in_flight);
  gauge(o, "classifyd_models_loaded", "gauge", "Models loaded and ready", (double)g->models_loaded);
  gauge(o, "classifyd_models_configured", "gauge", "Models configured",
        (double)g->models_configured);
  gauge(o, "classifyd_decodes_during_forward_total", "counter",
        "Image decodes that waited their bound for the pause between forwards and ran "
        "during one (taking CPU from the engine)",
        (double)atomic_load(&decodes_in_forward));
  render_guards(o, g);
  render_reloads(o, g->generation);
  render_process(o);
}
