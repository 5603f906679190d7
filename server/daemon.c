/*
 * daemon.c — start-up, model loading, reload, graceful drain and shutdown.
 *
 * Threads: the main thread runs the libuv loop (signals, pipeline hand-offs,
 * drain timer, systemd watchdog); MHD runs its own I/O threads; the libuv pool
 * decodes; one runner thread per model infers; one loader thread at a time
 * builds models: at start-up it loads generation 1 (already installed, so
 * /healthz answers at once and /readyz turns 200 when every model is ready);
 * on SIGHUP it re-reads the configuration (same flags, same file), loads a
 * new generation beside the serving one and swaps it in (modelset.h). A
 * reload that fails (bad file, bad config) frees what it built, logs why,
 * counts classifyd_reload_failures_total and leaves the old generation
 * serving. SIGHUPs arriving while the loader runs are folded into one more
 * reload after it. systemd: READY=1 once generation 1 is loaded, RELOADING=1
 * then READY=1 around each reload, STATUS= at each step, STOPPING=1 when the
 * drain starts (notify.h).
 * Shutdown (first SIGTERM/SIGINT, or a model failing to load at start-up):
 * stop accepting (MHD_quiesce_daemon), keep answering what is in flight and
 * queued until nothing is left or drain_timeout passes, then stop MHD, the
 * loader and the loop; the last generation is freed after MHD stopped. Exit 0
 * after a clean drain; 1 when a model failed to load at start-up, the socket
 * could not be bound or the drain timed out; 2 for invalid configuration
 * (before anything is bound).
 * Guards (before binding): the connection limit follows the open-file limit,
 * and the models plus the decode and upload budgets must fit in the memory
 * limit (RLIMIT_AS or the cgroup's), checked from the file sizes before
 * loading and again once loaded (rlimits.h): else exit 1 with a message naming
 * the model and the numbers. A timer sweeps slow clients every 200 ms
 * (conns.h); refused uploads linger before closing (linger.h).
 * Memory: a fixed mmap threshold (daemon_main) gives every big buffer its own
 * mapping, so a freed generation leaves nothing behind, and memtrim.h returns
 * the arenas' free pages once the daemon is idle after a burst.
 */
#include "daemon.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cpus.h"
#include "cgroup.h"
#include "gate.h"
#include "lull.h"
#include "http.h"
#include "rlimits.h"
#include "log.h"
#include "memtrim.h"
#include "notify.h"
#include "signals.h"

typedef struct {
  config_t cfg; /* start-up settings; each generation has its own copy */
  int argc;
  char **argv;
  modelset_slot_t slot;
  pipeline_t pipe;
  app_t app;
  uv_loop_t loop;
  signals_t sig;
  notify_watchdog_t wd;
  memtrim_t trim; /* malloc_trim when idle after work */
  uv_timer_t drain_timer;
  uv_timer_t guard_timer; /* sweeps slow clients (conns.h) */
  conns_t conns;
  linger_t linger;
  int linger_slots, conns_ok;
  rlimits_mem_t mem;
  uv_async_t loader_async;
  uv_thread_t loader;
  gate_t gate; /* one forward at a time across models (and generations) unless parallel_models */
  int gate_ok;
  lull_t lull; /* decodes wait for the pause between forwards (unless decode_overlap) */
  int lull_ok;
  int loader_started, loader_reload, reload_pending, ready_sent, draining, finished, exit_code;
  atomic_int loader_stop, loader_result; /* result: 1 done, 0 stopped, -1 failed */
  char loader_err[1024];
  unsigned long last_id;
  uint64_t drain_start;
  struct MHD_Daemon *mhd;
} daemon_t;

/* Lingering close of refused uploads (linger.h): at most this much is read and
 * dropped, for at most this long, giving up after this long without data. */
#define LINGER_MAX_BYTES (32u << 20)
#define LINGER_TOTAL_MS 10000
#define LINGER_IDLE_MS 2000

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

typedef struct {
  daemon_t *d;
  modelset_t *s;
} progress_t;

static void load_progress(void *arg, int i, const char *name) {
  progress_t *p = arg;
  if (i > 0) log_model(&p->s->reg.m[i - 1]);
  notify_send("STATUS=%s model %d/%d (%s)", p->d->loader_reload ? "reloading: loading" : "loading",
              i + 1, p->s->reg.n, name);
}

/* Loads s; 1 loaded, 0 stopped, -1 failed (message in d->loader_err). */
static int load_set(daemon_t *d, modelset_t *s) {
  runner_cb_t cb = pipeline_runner_cb(&d->pipe);
  progress_t p = {d, s};
  int rc = modelset_load(s, &cb, d->gate_ok ? &d->gate : NULL, d->lull_ok ? &d->lull : NULL, &d->loader_stop, load_progress, &p, d->loader_err,
                         sizeof(d->loader_err));
  if (rc == 0 && s->reg.n > 0) log_model(&s->reg.m[s->reg.n - 1]);
  return rc == 0 ? 1 : rc > 0 ? 0 : -1;
}

/* The new generation's settings: flags and file read again, start-up-only
 * settings kept (with a warning naming those that changed). */
static modelset_t *reload_prepare(daemon_t *d) {
  config_t next;
  char changed[512];
  int rc = config_parse(&next, d->argc, d->argv, d->loader_err, sizeof(d->loader_err));
  if (rc != 0) {
    if (rc > 0) snprintf(d->loader_err, sizeof(d->loader_err), "--help in the arguments");
    config_free(&next);
    return NULL;
  }
  if (config_keep_startup(&next, &d->cfg, changed, sizeof(changed)) < 0) {
    config_free(&next);
    snprintf(d->loader_err, sizeof(d->loader_err), "out of memory");
    return NULL;
  }
  if (*changed)
    log_msg(LOG_WARN, "reload: %s changed; these take effect only at restart (kept as running)",
            changed);
  modelset_t *s = modelset_create(&next, d->last_id + 1);
  if (!s) snprintf(d->loader_err, sizeof(d->loader_err), "out of memory");
  return s;
}

static void loader_main(void *arg) {
  daemon_t *d = arg;
  int result;
  if (!d->loader_reload) {
    modelset_t *s = modelset_slot_get(&d->slot);
    result = load_set(d, s);
    if (result == 1 && rlimits_check_loaded(&s->cfg, &s->reg, &d->mem, rlimits_usage(&d->mem),
                                           d->loader_err, sizeof(d->loader_err)) < 0)
      result = -1;
    modelset_unref(s);
  } else {
    modelset_t *s = reload_prepare(d);
    result = s ? load_set(d, s) : -1;
    if (result == 1) {
      modelset_t *old = modelset_slot_swap(&d->slot, s);
      log_msg(LOG_INFO, "reload: generation %lu serving %d model(s); generation %lu is freed "
                        "once its %ld in-flight reference(s) finish",
              s->id, s->reg.n, old->id, atomic_load(&old->refs) - 1);
      modelset_unref(old);
    } else {
      modelset_unref(s);
    }
  }
  atomic_store(&d->loader_result, result);
  uv_async_send(&d->loader_async);
}

static int loader_start(daemon_t *d, int reload) {
  d->loader_reload = reload;
  atomic_store(&d->loader_result, 0);
  if (reload) notify_send("RELOADING=1\nSTATUS=reloading the configuration");
  if (uv_thread_create(&d->loader, loader_main, d) != 0) {
    log_msg(LOG_ERROR, "cannot start the model loader thread");
    return -1;
  }
  d->loader_started = 1;
  return 0;
}

static void finish(daemon_t *d) {
  if (d->finished) return;
  d->finished = 1;
  uv_timer_stop(&d->drain_timer);
  uv_timer_stop(&d->guard_timer);
  atomic_store(&d->loader_stop, 1);
  if (d->loader_started) uv_thread_join(&d->loader);
  d->loader_started = 0;
  uv_close((uv_handle_t *)&d->drain_timer, NULL);
  uv_close((uv_handle_t *)&d->guard_timer, NULL);
  uv_close((uv_handle_t *)&d->loader_async, NULL);
  notify_watchdog_close(&d->wd);
  memtrim_close(&d->trim);
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
  notify_send("STOPPING=1\nSTATUS=draining: %ld request(s) in flight",
              atomic_load(&d->app.in_flight));
  d->drain_start = job_now_ns();
  uv_timer_start(&d->drain_timer, drain_check, 0, 10);
}

static void on_reload(void *arg) {
  daemon_t *d = arg;
  if (d->draining) {
    log_msg(LOG_WARN, "SIGHUP while shutting down: ignored");
  } else if (d->loader_started || !d->ready_sent) {
    d->reload_pending = 1;
    log_msg(LOG_INFO, "reload: models are loading; reloading again once they are done");
  } else if (loader_start(d, 1) < 0) {
    metrics_reload(0);
  }
}

static void announce(daemon_t *d, const char *what) {
  modelset_t *s = modelset_slot_get(&d->slot);
  char names[512] = "";
  size_t used = 0;
  for (int i = 0; i < s->reg.n && used < sizeof(names); i++)
    used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                             s->reg.m[i].conf->name);
  log_msg(LOG_INFO, "%s: generation %lu, %d model(s) loaded: %s", what, s->id, s->reg.n, names);
  notify_send("READY=1\nSTATUS=serving %d model(s), generation %lu: %s", s->reg.n, s->id, names);
  d->last_id = s->id > d->last_id ? s->id : d->last_id;
  modelset_unref(s);
}

static void reload_done(daemon_t *d, int r) {
  if (r == 1) {
    metrics_reload(1);
    announce(d, "reload applied");
  } else if (r < 0) {
    metrics_reload(0);
    log_msg(LOG_ERROR, "reload failed, still serving the previous models: %s", d->loader_err);
    modelset_t *s = modelset_slot_get(&d->slot);
    notify_send("READY=1\nSTATUS=reload failed (%.300s); serving generation %lu", d->loader_err,
                s->id);
    modelset_unref(s);
  }
}

static void loader_done(uv_async_t *a) {
  daemon_t *d = a->data;
  if (!d->loader_started) return;
  uv_thread_join(&d->loader);
  d->loader_started = 0;
  int r = atomic_load(&d->loader_result);
  if (d->loader_reload) {
    reload_done(d, r);
  } else if (r == 1 && !d->draining) {
    d->ready_sent = 1;
    announce(d, "ready");
  } else if (r < 0) {
    log_msg(LOG_ERROR, "%s", d->loader_err);
    d->exit_code = 1;
    begin_drain(d);
  }
  if (d->reload_pending && d->ready_sent && !d->draining) {
    d->reload_pending = 0;
    if (loader_start(d, 1) < 0) metrics_reload(0);
  }
}

static int setup_models(daemon_t *d) {
  config_t first;
  if (config_copy(&first, &d->cfg) < 0) return -1;
  modelset_t *s = modelset_create(&first, 1);
  if (!s) return -1;
  d->last_id = 1;
  if (modelset_slot_init(&d->slot, s) < 0) {
    modelset_unref(s);
    return -1;
  }
  d->app.models = &d->slot;
  return 0;
}

static int setup_loop(daemon_t *d) {
  char n[16];
  snprintf(n, sizeof(n), "%d", d->cfg.workers);
  setenv("UV_THREADPOOL_SIZE", n, 1);
  if (uv_loop_init(&d->loop) < 0 || gate_init(&d->gate) < 0) return -1;
  d->gate_ok = 1;
  if (lull_init(&d->lull) < 0) return -1;
  d->lull_ok = 1;
  cnn_image_limits_t lim;
  cnn_image_limits_default(&lim);
  lim.max_pixels = d->cfg.max_pixels;
  lim.max_side = d->cfg.max_side;
  if (pipeline_init(&d->pipe, &d->loop, d->cfg.queue_length, &lim, http_job_finished) < 0)
    return -1;
  d->pipe.lull = &d->lull;
  d->app.cfg = &d->cfg;
  d->app.pipe = &d->pipe;
  if (signals_start(&d->sig, &d->loop, begin_drain, on_reload, d) < 0) return -1;
  if (uv_async_init(&d->loop, &d->loader_async, loader_done) < 0) return -1;
  d->loader_async.data = d;
  if (uv_timer_init(&d->loop, &d->drain_timer) < 0) return -1;
  d->drain_timer.data = d;
  if (uv_timer_init(&d->loop, &d->guard_timer) < 0) return -1;
  d->guard_timer.data = d;
  if (conns_init(&d->conns, d->cfg.connection_timeout_s, (uint64_t)d->cfg.min_upload_rate,
                 d->app.max_connections) < 0)
    return -1;
  d->conns_ok = 1;
  if (linger_start(&d->linger, d->linger_slots, LINGER_MAX_BYTES, LINGER_IDLE_MS,
                   LINGER_TOTAL_MS) < 0)
    return -1;
  d->app.conns = &d->conns;
  d->app.linger = &d->linger;
  if (memtrim_start(&d->trim, &d->loop, &d->app.in_flight, &d->app.started) < 0) return -1;
  return notify_watchdog_start(&d->wd, &d->loop) < 0 ? -1 : 0;
}

static void guard_sweep(uv_timer_t *t) {
  daemon_t *d = t->data;
  int n = conns_sweep(&d->conns, job_now_ns());
  if (n) log_msg(LOG_DEBUG, "cut off %d connection(s) whose request did not arrive in time", n);
}

/* Connection limit from the open-file limit; the memory fit from the file sizes. */
static int check_limits(daemon_t *d) {
  char msg[1024];
  rlimits_conns_t lim;
  if (rlimits_connections(0, d->cfg.max_connections, &lim, msg, sizeof(msg)) < 0) {
    log_msg(LOG_ERROR, "%s", msg);
    return -1;
  }
  if (*msg) log_msg(LOG_WARN, "%s", msg);
  d->app.max_connections = lim.soft;
  d->app.accept_limit = lim.hard;
  d->linger_slots = lim.linger;
  rlimits_memory(CGROUP_ROOT, CGROUP_SELF, &d->mem);
  if (d->mem.limit) {
    if (rlimits_check_files(&d->cfg, &d->mem, rlimits_usage(&d->mem), msg, sizeof(msg)) < 0) {
      log_msg(LOG_ERROR, "%s", msg);
      return -1;
    }
    log_msg(LOG_INFO, "memory limit %.0f MiB (%s): models and budgets fit",
            (double)d->mem.limit / (1 << 20), d->mem.source);
  }
  return 0;
}

static int serve(daemon_t *d) {
  int port = -1, fd = notify_listen_fd();
  if (fd == -2) return 1;
  d->mhd = http_start(&d->app, fd, &port);
  if (!d->mhd) return 1;
  registry_t *reg = &d->slot.cur->reg;
  log_msg(LOG_INFO, "classifyd listening on %s (port %d)%s, %d model(s), default %s",
          fd >= 0 ? "socket-activated-fd" : d->cfg.listen, port,
          fd >= 0 ? " [socket activation: server.listen ignored]" : "", reg->n,
          reg->m[reg->def].conf->name);
  log_msg(LOG_INFO, "threads: %d CPUs available; %d engine threads per model (%s), "
          "%d decode workers (%s), %d HTTP threads; batches of up to %d within %d us",
          cpus_available(), d->cfg.threads,
          reg->n < 2 ? "one model" : d->cfg.parallel_models ? "models in parallel"
                                                           : "one forward at a time",
          d->cfg.workers,
          modelset_decodes_in_lull(&d->cfg, reg->n) ? "between forwards" : "during forwards",
          d->cfg.http_threads, d->cfg.max_batch, d->cfg.batch_window_us);
  log_msg(LOG_INFO, "limits: %d connections (503 up to %d, then unaccepted; %d per address), "
          "requests must arrive within %d s (+1 s per %d bytes), %zu bytes of bodies in memory",
          d->app.max_connections, d->app.accept_limit,
          d->cfg.max_connections_per_ip, d->cfg.connection_timeout_s, d->cfg.min_upload_rate,
          d->cfg.upload_memory);
  notify_send("STATUS=listening on port %d; loading %d model(s)", port, reg->n);
  uv_timer_start(&d->guard_timer, guard_sweep, 200, 200);
  if (loader_start(d, 0) < 0) {
    d->exit_code = 1;
    begin_drain(d);
  }
  uv_run(&d->loop, UV_RUN_DEFAULT);
  http_stop(d->mhd);
  d->mhd = NULL;
  return d->exit_code;
}

/* A reloading daemon frees a whole generation (weights, arenas: buffers of
 * 0.1-10 MB) and allocates the next one. glibc serves big blocks with mmap
 * only above a threshold that it raises (up to 32 MiB) whenever such a block
 * is freed, so after the first reload the weights came from the heap arenas,
 * which kept the freed generations: idle RSS after 0..8 reloads of resnet18 +
 * googlenet + resnet50 went 362, 600, 765, 832, 844, 864, 896, 896, 896 MiB.
 * A fixed threshold (which also stops the adjustment) gives every buffer of
 * the threshold or more its own mapping, returned to the kernel when freed, and
 * malloc_trim(0) when a generation is freed (modelset.c) returns the rest.
 * It was 256 KiB until session 30. But a fresh page costs 10-25 us on the Zen 5 VMs
 * (4-9 us even prefaulted with MADV_POPULATE_WRITE), and every request body of 256 KiB
 * or more was then a new mapping, faulted in page by page. A 4.6 MB JPEG (3000x2000)
 * posted 20 times to resnet50: 2,392 minor faults a request, preprocess 66 ms, total
 * 146 ms. At 16 MiB (bodies grow by doubling, so those up to 8 MB stay in the arenas):
 * 2-123 faults, 43 ms, 98 ms. Costs: more of the load's blocks share arenas with the
 * weights. resnet18 + googlenet idle 191 -> 204-213 MiB (test_reload_memory.py in tests/overload,
 * 202 after 5 reloads: no growth), `make bench-http`'s RSS 1.22-1.24x -> 1.23-1.30x
 * of weights + arena (target 1.5x), and freed bodies stay in the arenas until the daemon
 * is idle (memtrim.h), at most upload_memory of them. */
#define DAEMON_MMAP_THRESHOLD (16 * 1024 * 1024)
/* Fixing the mmap threshold also froze the trim threshold at glibc's 128 KiB, so each
 * decode's temporaries (the resize rows, ~220 KB for a 480x360 JPEG, and the 150 KB
 * crop) left a free arena top past it, which free() handed back to the kernel, and the
 * next decode faulted the same pages in again: 23 minor faults per image at ResNet-50's
 * maximum load (`make bench-http`'s load, 10 s; measured with the 256 KiB threshold of
 * then), each ~25 us, so decode + preprocess took 2.33 ms an image in the daemon against
 * 1.5 alone. With arena tops kept up to 16 MiB: 0.0-0.6 faults per image, 1.75-1.84 ms,
 * RSS under load unchanged (210 -> 211 MiB). This keeps only the free tops the busy
 * threads reuse; once the daemon is idle, memtrim (memtrim.h) still returns every free
 * page with malloc_trim(0). */
#define DAEMON_TRIM_THRESHOLD (16 * 1024 * 1024)

int daemon_main(int argc, char **argv) {
  daemon_t *d = &g_d;
  memset(d, 0, sizeof(*d));
  int mmap_fixed = mallopt(M_MMAP_THRESHOLD, DAEMON_MMAP_THRESHOLD) == 1 && /* 0 under ASan */
                   mallopt(M_TRIM_THRESHOLD, DAEMON_TRIM_THRESHOLD) == 1;
  int rc = config_load(&d->cfg, argc, argv);
  if (rc != 0) {
    config_free(&d->cfg);
    return rc > 0 ? 0 : 2;
  }
  d->argc = argc;
  d->argv = argv;
  log_init((log_level_t)d->cfg.log_level, d->cfg.log_json);
  if (!mmap_fixed)
    log_msg(LOG_WARN, "mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) failed; RSS may grow with "
                      "each reload");
  metrics_init();
  if (check_limits(d) < 0) {
    config_free(&d->cfg);
    return 1;
  }
  if (setup_models(d) < 0 || setup_loop(d) < 0) {
    log_msg(LOG_ERROR, "cannot initialise the event loop");
    return 1;
  }
  int code = serve(d);
  if (!d->finished) finish(d);
  uv_run(&d->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
  linger_stop(&d->linger);           /* MHD is stopped: nothing adds any more */
  if (d->conns_ok) conns_deinit(&d->conns);
  modelset_slot_deinit(&d->slot);    /* MHD is stopped: this was the last reference */
  pipeline_deinit(&d->pipe);
  if (d->gate_ok) gate_deinit(&d->gate);
  if (d->lull_ok) lull_deinit(&d->lull);
  if (uv_loop_close(&d->loop) != 0) log_msg(LOG_WARN, "event loop closed with handles open");
  config_free(&d->cfg);
  return code;
}
