/*
 * daemon.c — start-up, model loading, graceful drain and shutdown.
 *
 * Threads: the main thread runs the libuv loop (signals, pipeline hand-offs,
 * drain timer); MHD runs its own I/O threads; the libuv pool decodes; one
 * runner thread per model infers; one loader thread loads the models after the
 * socket is bound, so /healthz answers at once and /readyz turns 200 when every
 * model is ready. Shutdown (first SIGTERM/SIGINT, or a model failing to load):
 * stop accepting (MHD_quiesce_daemon), keep answering what is in flight and
 * queued until nothing is left or drain_timeout passes, then stop MHD, the
 * runners and the loop in that order. Exit 0 after a clean drain; 1 when a
 * model failed to load, the socket could not be bound or the drain timed out;
 * 2 for invalid configuration (before anything is bound).
 */
#include "daemon.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cpus.h"
#include "http.h"
#include "log.h"
#include "signals.h"

typedef struct {
  config_t cfg;
  registry_t reg;
  pipeline_t pipe;
  app_t app;
  uv_loop_t loop;
  signals_t sig;
  uv_timer_t drain_timer;
  uv_async_t loader_async;
  uv_thread_t loader;
  gate_t gate; /* serializes forwards across models unless parallel_models */
  int gate_ok;
  int loader_started, draining, finished, exit_code;
  atomic_int loader_stop, loader_result; /* result: 0 running, 1 all loaded, -1 failed */
  char loader_err[768];
  uint64_t drain_start;
  struct MHD_Daemon *mhd;
} daemon_t;

static daemon_t g_d;

static void log_model(const model_entry_t *m) {
  const cnn_model_info_t *i = m->info;
  log_msg(LOG_INFO, "model %s loaded from %s: %s, input %dx%dx%d, %d classes, %lld params, %lld MACs%s",
          m->conf->name, m->conf->path, *i->arch ? i->arch : "?", i->in_c, i->in_h, i->in_w,
          i->num_classes, (long long)i->params, (long long)i->macs,
          m->is_default ? " (default)" : "");
  if (i->untrained)
    log_msg(LOG_WARN, "model %s has RANDOM, UNTRAINED weights: its predictions mean nothing "
                      "(answers carry \"untrained\": true)", m->conf->name);
}

static void loader_main(void *arg) {
  daemon_t *d = arg;
  runner_opts_t o = {.threads = d->cfg.threads, .max_batch = d->cfg.max_batch,
                     .batch_window_us = d->cfg.batch_window_us, .queue_cap = d->cfg.queue_length,
                     .gate = d->gate_ok && !d->cfg.parallel_models && d->reg.n > 1 ? &d->gate
                                                                                   : NULL};
  runner_cb_t cb = pipeline_runner_cb(&d->pipe);
  int result = 1;
  for (int i = 0; i < d->reg.n && !atomic_load(&d->loader_stop); i++) {
    if (models_load_one(&d->reg.m[i], &o, &cb, d->loader_err, sizeof(d->loader_err)) < 0) {
      result = -1;
      break;
    }
    log_model(&d->reg.m[i]);
  }
  atomic_store(&d->loader_result, result);
  uv_async_send(&d->loader_async);
}

static void finish(daemon_t *d) {
  if (d->finished) return;
  d->finished = 1;
  uv_timer_stop(&d->drain_timer);
  atomic_store(&d->loader_stop, 1);
  if (d->loader_started) uv_thread_join(&d->loader);
  d->loader_started = 0;
  uv_close((uv_handle_t *)&d->drain_timer, NULL);
  uv_close((uv_handle_t *)&d->loader_async, NULL);
  signals_close(&d->sig);
  pipeline_close(&d->pipe);
}

static void drain_check(uv_timer_t *t) {
  daemon_t *d = t->data;
  long left = atomic_load(&d->app.in_flight);
  if (left == 0) {
    log_msg(LOG_INFO, "drained: every accepted request answered");
    finish(d);
    return;
  }
  if (job_now_ns() - d->drain_start > (uint64_t)d->cfg.drain_timeout_s * 1000000000u) {
    log_msg(LOG_ERROR, "drain timeout (%ds): %ld requests still in flight; exiting",
            d->cfg.drain_timeout_s, left);
    _exit(1);
  }
}

static void begin_drain(void *arg) {
  daemon_t *d = arg;
  if (d->draining) return;
  d->draining = 1;
  atomic_store(&d->app.draining, 1);
  if (d->mhd) http_quiesce(d->mhd);
  d->drain_start = job_now_ns();
  uv_timer_start(&d->drain_timer, drain_check, 0, 10);
}

static void loader_done(uv_async_t *a) {
  daemon_t *d = a->data;
  int r = atomic_load(&d->loader_result);
  if (r == 1 && !d->draining) {
    log_msg(LOG_INFO, "ready: %d model(s) loaded", d->reg.n);
  } else if (r < 0) {
    log_msg(LOG_ERROR, "%s", d->loader_err);
    d->exit_code = 1;
    begin_drain(d);
  }
}

static int setup_loop(daemon_t *d) {
  char n[16];
  snprintf(n, sizeof(n), "%d", d->cfg.workers);
  setenv("UV_THREADPOOL_SIZE", n, 1);
  if (uv_loop_init(&d->loop) < 0 || registry_init(&d->reg, &d->cfg) < 0) return -1;
  if (gate_init(&d->gate) < 0) return -1;
  d->gate_ok = 1;
  cnn_image_limits_t lim;
  cnn_image_limits_default(&lim);
  lim.max_pixels = d->cfg.max_pixels;
  lim.max_side = d->cfg.max_side;
  if (pipeline_init(&d->pipe, &d->loop, d->cfg.queue_length, &lim, http_job_finished) < 0)
    return -1;
  d->app.cfg = &d->cfg;
  d->app.reg = &d->reg;
  d->app.pipe = &d->pipe;
  if (signals_start(&d->sig, &d->loop, begin_drain, d) < 0) return -1;
  if (uv_async_init(&d->loop, &d->loader_async, loader_done) < 0) return -1;
  d->loader_async.data = d;
  if (uv_timer_init(&d->loop, &d->drain_timer) < 0) return -1;
  d->drain_timer.data = d;
  return 0;
}

static int serve(daemon_t *d) {
  int port = -1;
  d->mhd = http_start(&d->app, &port);
  if (!d->mhd) return 1;
  log_msg(LOG_INFO, "classifyd listening on %s (port %d), %d model(s), default %s", d->cfg.listen,
          port, d->reg.n, d->reg.m[d->reg.def].conf->name);
  log_msg(LOG_INFO, "threads: %d CPUs available; %d engine threads per model (%s), "
          "%d decode workers, %d HTTP threads; batches of up to %d within %d us",
          cpus_available(), d->cfg.threads,
          d->reg.n < 2 ? "one model" : d->cfg.parallel_models ? "models in parallel"
                                                               : "one forward at a time",
          d->cfg.workers, d->cfg.http_threads, d->cfg.max_batch, d->cfg.batch_window_us);
  if (uv_thread_create(&d->loader, loader_main, d) != 0) {
    log_msg(LOG_ERROR, "cannot start the model loader thread");
    d->exit_code = 1;
    begin_drain(d);
  } else {
    d->loader_started = 1;
  }
  uv_run(&d->loop, UV_RUN_DEFAULT);
  http_stop(d->mhd);
  d->mhd = NULL;
  return d->exit_code;
}

int daemon_main(int argc, char **argv) {
  daemon_t *d = &g_d;
  memset(d, 0, sizeof(*d));
  int rc = config_load(&d->cfg, argc, argv);
  if (rc != 0) {
    config_free(&d->cfg);
    return rc > 0 ? 0 : 2;
  }
  log_init((log_level_t)d->cfg.log_level, d->cfg.log_json);
  metrics_init();
  if (setup_loop(d) < 0) {
    log_msg(LOG_ERROR, "cannot initialise the event loop");
    return 1;
  }
  int code = serve(d);
  if (!d->finished) finish(d);
  uv_run(&d->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
  registry_deinit(&d->reg);
  pipeline_deinit(&d->pipe);
  if (d->gate_ok) gate_deinit(&d->gate);
  if (uv_loop_close(&d->loop) != 0) log_msg(LOG_WARN, "event loop closed with handles open");
  config_free(&d->cfg);
  return code;
}
