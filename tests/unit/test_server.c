/*
 * test_server.c — unit tests of the daemon's self-contained modules: JSON output,
 * the job queue and its batch window, the runner's decode budget, the fair gate, CPUs
 * available, configuration (file, flags, errors), metrics rendering and the
 * engine-error -> HTTP status map.
 *
 * The unit binary links only libcnn.a, so the server sources under test are
 * compiled into this one translation unit (they share no static names).
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../server/cgroup.c"
#include "../../server/config.c"
#include "../../server/cpus.c"
#include "../../server/gate.c"
#include "../../server/job.c"
#include "../../server/json_out.c"
#include "../../server/log.c"
#include "../../server/lull.c"
#include "../../server/metrics.c"
#include "../../server/queue.c"
#include "../../server/runner.c"

static char *jstr(const char *s, size_t n) {
  jout_t j;
  jout_init(&j);
  jout_strn(&j, s, n);
  return jout_take(&j, NULL);
}

Test(json_out, escapes_and_replaces_invalid_utf8) {
  char *a = jstr("a\"b\\c\n\x01", 7);
  cr_assert_str_eq(a, "\"a\\\"b\\\\c\\u000a\\u0001\"");
  free(a);
  char *b = jstr("caf\xc3\xa9 \xff\xc3", 8); /* valid é, stray 0xff, truncated sequence */
  cr_assert_str_eq(b, "\"caf\xc3\xa9 \\ufffd\\ufffd\"");
  free(b);
  char *c = jstr("\xed\xa0\x80", 3); /* UTF-16 surrogate encoded in UTF-8: invalid */
  cr_assert_str_eq(c, "\"\\ufffd\\ufffd\\ufffd\"");
  free(c);
}

Test(json_out, grows_and_formats_numbers) {
  jout_t j;
  jout_init(&j);
  for (int i = 0; i < 10000; i++) jout_printf(&j, "%d,", i % 10);
  cr_assert_eq(j.len, 20000);
  jout_free(&j);
  jout_num(&j, 0.125, 6);
  jout_puts(&j, " ");
  jout_num(&j, 1.0 / 0.0, 6);
  cr_assert_str_eq(j.buf, "0.125 null");
  jout_free(&j);
}

Test(queue, fifo_bound_and_close) {
  queue_t q;
  job_t jobs[4] = {0};
  job_t *out[4];
  cr_assert_eq(queue_init(&q, 3), 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(queue_push(&q, &jobs[i]), 0);
  cr_assert_eq(queue_push(&q, &jobs[3]), -1, "a full queue refuses");
  cr_assert_eq(queue_pop_batch(&q, out, 2, 0), 2);
  cr_assert(out[0] == &jobs[0] && out[1] == &jobs[1]);
  queue_close(&q);
  cr_assert_eq(queue_push(&q, &jobs[3]), -1, "a closed queue refuses");
  cr_assert_eq(queue_pop_batch(&q, out, 4, 0), 1, "a closed queue still drains");
  cr_assert(out[0] == &jobs[2]);
  cr_assert_eq(queue_pop_batch(&q, out, 4, 0), 0);
  queue_deinit(&q);
}

typedef struct {
  queue_t *q;
  job_t *j;
  int n;
} producer_t;

static void *produce(void *arg) {
  producer_t *p = arg;
  for (int i = 0; i < p->n; i++) {
    usleep(2000);
    queue_push(p->q, &p->j[i]);
  }
  return NULL;
}

Test(queue, batch_window_collects_late_arrivals) {
  queue_t q;
  job_t jobs[4] = {0};
  job_t *out[8];
  cr_assert_eq(queue_init(&q, 8), 0);
  producer_t p = {&q, jobs, 4};
  pthread_t t;
  pthread_create(&t, NULL, produce, &p);
  int n = queue_pop_batch(&q, out, 8, 500000); /* 0.5 s window, jobs 2 ms apart */
  pthread_join(t, NULL);
  cr_assert_eq(n, 4, "got %d", n);
  queue_close(&q);
  cr_assert_eq(queue_pop_batch(&q, out, 8, 0), 0);
  queue_deinit(&q);
}

static int load(config_t *c, int argc, char **argv) {
  optind = 0;
  return config_load(c, argc, argv);
}

Test(config, flags_set_everything_and_first_model_is_default) {
  config_t c;
  char *argv[] = {"classifyd", "--listen", "[::1]:0", "--model", "a=/dev/null", "--model",
                  "b=/dev/null", "--threads", "3", "--body-limit", "2M", "--log-format", "json",
                  "--set", "model.b.crop=224", NULL};
  cr_assert_eq(load(&c, 15, argv), 0);
  cr_assert_str_eq(c.listen, "[::1]:0");
  cr_assert_eq(c.n_models, 2);
  cr_assert_eq(c.default_model, 0);
  cr_assert_eq(c.threads, 3);
  cr_assert_eq(c.body_limit, 2u << 20);
  cr_assert_eq(c.log_json, 1);
  cr_assert(c.models[1].pp.has_crop && c.models[1].pp.crop_h == 224 && c.models[1].pp.crop_w == 224);
  config_free(&c);
}

/* reload_prepare frees whatever config_parse returned; after --help the config used to be
 * left uninitialized (stack garbage), so that free was of wild pointers. */
Test(config, help_leaves_a_config_that_frees) {
  config_t c;
  memset(&c, 0xa5, sizeof(c));
  char err[256];
  char *argv[] = {"classifyd", "--model", "a=/dev/null", "--help", NULL};
  optind = 0;
  cr_assert_eq(config_parse(&c, 4, argv, err, sizeof(err)), 1);
  cr_assert_null(c.listen);
  cr_assert_eq(c.n_models, 0);
  config_free(&c);
}

Test(config, flag_beats_file_and_model_flags_replace_file_models) {
  char path[] = "/tmp/classifyd-unit-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  const char *ini = "[engine]\nthreads = 5\nqueue_length = 9\n[model.x]\npath = /dev/null\n"
                    "[model.y]\npath = /dev/null\ndefault = true\n";
  cr_assert_eq(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
  close(fd);
  config_t c;
  char *argv[] = {"classifyd", "--config", path, "--threads", "1", NULL};
  cr_assert_eq(load(&c, 5, argv), 0);
  cr_assert_eq(c.threads, 1);
  cr_assert_eq(c.queue_length, 9);
  cr_assert_eq(c.default_model, 1);
  config_free(&c);
  char *argv2[] = {"classifyd", "--config", path, "--model", "z=/dev/null", NULL};
  cr_assert_eq(load(&c, 5, argv2), 0);
  cr_assert_eq(c.n_models, 1);
  cr_assert_str_eq(c.models[0].name, "z");
  config_free(&c);
  unlink(path);
}

Test(config, errors_name_the_setting) {
  config_t c;
  char err[512];
  config_defaults(&c);
  cr_assert_eq(config_set(&c, "engine", "threads", "abc", err, sizeof(err)), -1);
  cr_assert(strstr(err, "engine.threads"), "%s", err);
  cr_assert_eq(config_set(&c, "engine", "threads", "0", err, sizeof(err)), -1);
  cr_assert_eq(config_set(&c, "server", "body_limit", "1Q", err, sizeof(err)), -1);
  cr_assert(strstr(err, "server.body_limit"), "%s", err);
  cr_assert_eq(config_set(&c, "server", "bogus", "1", err, sizeof(err)), -1);
  cr_assert(strstr(err, "server.bogus"), "%s", err);
  cr_assert_eq(config_set(&c, "model.m", "std", "1,0,1", err, sizeof(err)), -1);
  cr_assert(strstr(err, "model.m.std"), "%s", err);
  cr_assert_eq(config_set(&c, "model.bad name", "path", "x", err, sizeof(err)), -1);
  cr_assert_eq(config_set(&c, "model.m", "channel_order", "BGR", err, sizeof(err)), 0);
  cr_assert_eq(config_set(&c, "log", "level", "debug", err, sizeof(err)), 0);
  cr_assert_eq(c.log_level, LOG_DEBUG);
  config_free(&c);
}

Test(config, invalid_models_and_listen_are_refused) {
  config_t c;
  char *none[] = {"classifyd", NULL};
  cr_assert_eq(load(&c, 1, none), -1, "no model");
  config_free(&c);
  char *missing[] = {"classifyd", "--model", "m=/nonexistent/x.onnx", NULL};
  cr_assert_eq(load(&c, 3, missing), -1);
  config_free(&c);
  char *two[] = {"classifyd", "--set", "model.a.path=/dev/null", "--set", "model.a.default=1",
                 "--set", "model.b.path=/dev/null", "--set", "model.b.default=yes", NULL};
  cr_assert_eq(load(&c, 9, two), -1, "two defaults");
  config_free(&c);
  char *port[] = {"classifyd", "--model", "m=/dev/null", "--listen", "127.0.0.1:70000", NULL};
  cr_assert_eq(load(&c, 5, port), -1);
  config_free(&c);
  char *extra[] = {"classifyd", "--model", "m=/dev/null", "stray", NULL};
  cr_assert_eq(load(&c, 4, extra), -1);
  config_free(&c);
}

Test(metrics, histograms_are_cumulative_and_consistent) {
  metrics_init();
  metrics_observe(H_BATCH, 1);
  metrics_observe(H_BATCH, 3);
  metrics_observe(H_BATCH, 100);
  metrics_request(EP_CLASSIFY, 200);
  metrics_request(EP_CLASSIFY, 418);
  metrics_decode_in_forward();
  metrics_decode_in_forward();
  jout_t j;
  jout_init(&j);
  metrics_gauges_t g = {.queue_depth = 2, .queue_capacity = 8};
  metrics_render(&j, &g);
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"1\"} 1\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"2\"} 1\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"3\"} 2\n"), "one bucket per size to 8");
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"8\"} 2\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"64\"} 2\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"+Inf\"} 3\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_sum 104\nclassifyd_batch_size_count 3\n"));
  cr_assert(strstr(j.buf, "classifyd_http_requests_total{endpoint=\"classify\",code=\"200\"} 1\n"));
  cr_assert(strstr(j.buf, "classifyd_http_requests_total{endpoint=\"classify\",code=\"other\"} 1\n"));
  cr_assert(strstr(j.buf, "# TYPE process_cpu_seconds_total counter\n"));
  cr_assert(strstr(j.buf, "classifyd_queue_depth 2\n"));
  cr_assert(strstr(j.buf, "# TYPE classifyd_decodes_during_forward_total counter\n"
                          "classifyd_decodes_during_forward_total 2\n"));
  jout_free(&j);
}

Test(job, engine_errors_map_to_http_statuses) {
  cr_assert_eq(job_status_for_cnn(CNN_EIMAGE_INVALID), 400);
  cr_assert_eq(job_status_for_cnn(CNN_EIMAGE_TOO_LARGE), 413);
  cr_assert_eq(job_status_for_cnn(CNN_EMEDIA_UNSUPPORTED), 415);
  cr_assert_eq(job_status_for_cnn(CNN_ENOMEM), 500);
  job_t j = {0};
  job_fail_cnn(&j, CNN_EIMAGE_TOO_LARGE, "");
  cr_assert_eq(j.status, 413);
  cr_assert_str_eq(j.err_code, "image_too_large");
  job_fail_cnn(&j, CNN_EINTERNAL, "boom");
  cr_assert_str_eq(j.err_code, "internal_error");
  cr_assert_str_eq(j.err_msg, "boom");
}

/* ---- batch window (queue_pop_batch) ------------------------------------------ */

static double ms_since(uint64_t t0) { return (double)(job_now_ns() - t0) / 1e6; }

Test(queue, full_batch_returns_at_once) {
  queue_t q;
  job_t jobs[8] = {0};
  job_t *out[8];
  cr_assert_eq(queue_init(&q, 8), 0);
  for (int i = 0; i < 8; i++) queue_push(&q, &jobs[i]);
  uint64_t t0 = job_now_ns();
  cr_assert_eq(queue_pop_batch(&q, out, 8, 2000000), 8);
  cr_assert_lt(ms_since(t0), 500.0, "a full batch must not wait for the 2 s window");
  queue_deinit(&q);
}

Test(queue, window_returns_when_max_is_reached) {
  queue_t q;
  job_t jobs[4] = {0};
  job_t *out[4];
  cr_assert_eq(queue_init(&q, 8), 0);
  producer_t p = {&q, jobs, 4};
  pthread_t t;
  uint64_t t0 = job_now_ns();
  pthread_create(&t, NULL, produce, &p);
  int n = queue_pop_batch(&q, out, 4, 3000000); /* 3 s window, 4 jobs 2 ms apart */
  double ms = ms_since(t0);
  pthread_join(t, NULL);
  cr_assert_eq(n, 4);
  cr_assert_lt(ms, 1500.0, "returned after %.1f ms: should return once 4 jobs are in", ms);
  queue_deinit(&q);
}

Test(queue, lone_job_waits_the_window_and_no_longer) {
  queue_t q;
  job_t j = {0};
  job_t *out[8];
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_push(&q, &j);
  int n = queue_pop_batch(&q, out, 8, 200000); /* 200 ms */
  double ms = ms_since(j.t_queued);
  cr_assert_eq(n, 1);
  cr_assert_geq(ms, 199.0, "a lone job should wait for company for the window (%.1f ms)", ms);
  cr_assert_lt(ms, 1200.0, "a lone job waited %.1f ms, far past the 200 ms window", ms);
  queue_deinit(&q);
}

Test(queue, window_counts_from_the_oldest_job) {
  queue_t q;
  job_t j = {0};
  job_t *out[8];
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_push(&q, &j);
  usleep(400000); /* the job already waited 400 ms (e.g. behind a running batch) */
  uint64_t t0 = job_now_ns();
  cr_assert_eq(queue_pop_batch(&q, out, 8, 300000), 1);
  double ms = ms_since(t0);
  cr_assert_lt(ms, 150.0, "a job older than the 300 ms window was held %.1f ms more", ms);
  queue_deinit(&q);
}

Test(queue, close_ends_the_window) {
  queue_t q;
  job_t j = {0};
  job_t *out[8];
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_push(&q, &j);
  queue_close(&q);
  uint64_t t0 = job_now_ns();
  cr_assert_eq(queue_pop_batch(&q, out, 8, 3000000), 1);
  cr_assert_lt(ms_since(t0), 1000.0, "a closed queue must not wait for the window");
  queue_deinit(&q);
}

/* ---- waiting for images still being decoded (queue_expect) -------------------- */

typedef struct {
  queue_t *q;
  job_t *j;
  int n, delay_ms;
  atomic_int *held; /* decremented instead of pushing when fail is set */
  int fail;
} late_t;

static void *push_late(void *arg) {
  late_t *l = arg;
  usleep((useconds_t)l->delay_ms * 1000);
  for (int i = 0; i < l->n; i++) {
    if (l->fail) atomic_fetch_sub(l->held, 1); /* a decode failed: nothing comes */
    else queue_push(l->q, &l->j[i]);
  }
  return NULL;
}

Test(queue, expect_waits_past_the_window_for_images_being_decoded) {
  queue_t q;
  job_t jobs[4] = {0};
  job_t *out[8];
  atomic_int held = 4; /* one queued, three still decoding */
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_expect(&q, &held, 2000000);
  queue_push(&q, &jobs[0]);
  late_t l = {&q, jobs + 1, 3, 100, &held, 0};
  pthread_t t;
  pthread_create(&t, NULL, push_late, &l);
  uint64_t t0 = job_now_ns();
  int n = queue_pop_batch(&q, out, 8, 20000); /* 20 ms window; they come after 100 ms */
  double ms = ms_since(t0);
  pthread_join(t, NULL);
  cr_assert_eq(n, 4, "took %d: the three images being decoded should join the batch", n);
  cr_assert_lt(ms, 1500.0, "waited %.1f ms: should return once all four are in", ms);
  queue_deinit(&q);
}

Test(queue, expect_stops_waiting_when_decodes_fail) {
  queue_t q;
  job_t jobs[4] = {0};
  job_t *out[8];
  atomic_int held = 4;
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_expect(&q, &held, 3000000);
  queue_push(&q, &jobs[0]);
  late_t l = {&q, jobs + 1, 3, 50, &held, 1};
  pthread_t t;
  pthread_create(&t, NULL, push_late, &l);
  uint64_t t0 = job_now_ns();
  int n = queue_pop_batch(&q, out, 8, 20000);
  double ms = ms_since(t0);
  pthread_join(t, NULL);
  cr_assert_eq(n, 1);
  cr_assert_lt(ms, 1500.0, "waited %.1f ms for decodes that had failed (3 s bound)", ms);
  queue_deinit(&q);
}

Test(queue, expect_window_counts_from_admission) {
  queue_t q;
  job_t j = {0}, k = {0};
  job_t *out[8];
  atomic_int held = 1; /* this job alone: nothing else is being decoded */
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_expect(&q, &held, 100000);
  j.t_admit = job_now_ns();
  usleep(250000); /* its decode */
  queue_push(&q, &j);
  cr_assert_eq(queue_pop_batch(&q, out, 8, 300000), 1); /* 300 ms from admission */
  double ms = ms_since(j.t_queued);
  cr_assert_geq(ms, 30.0, "the window ended %.1f ms after the push, before 300 ms from admission", ms);
  cr_assert_lt(ms, 200.0, "waited %.1f ms after the push: the decode should count toward the window", ms);
  /* without queue_expect the window still runs from the push */
  queue_t q2;
  cr_assert_eq(queue_init(&q2, 8), 0);
  k.t_admit = job_now_ns();
  usleep(250000);
  queue_push(&q2, &k);
  cr_assert_eq(queue_pop_batch(&q2, out, 8, 300000), 1);
  ms = ms_since(k.t_queued);
  cr_assert_geq(ms, 299.0, "without queue_expect a lone job waits the window from its push (%.1f ms)", ms);
  queue_deinit(&q2);
  queue_deinit(&q);
}

Test(queue, expect_wait_is_bounded) {
  queue_t q;
  job_t j = {0};
  job_t *out[8];
  atomic_int held = 4; /* three never come and never fail */
  cr_assert_eq(queue_init(&q, 8), 0);
  queue_expect(&q, &held, 100000); /* 100 ms past the window */
  queue_push(&q, &j);
  uint64_t t0 = job_now_ns();
  cr_assert_eq(queue_pop_batch(&q, out, 8, 20000), 1);
  double ms = ms_since(t0);
  cr_assert_geq(ms, 100.0, "gave up on the images being decoded after %.1f ms", ms);
  cr_assert_lt(ms, 1100.0, "waited %.1f ms, far past the 20 + 100 ms bound", ms);
  queue_deinit(&q);
}

/* ---- the lull: decodes and forwards take turns ---------------------------------- */

static double ms_of(uint64_t ns) { return (double)ns / 1e6; }

static void *end_forward_later(void *arg) {
  usleep(100000);
  lull_forward_end(arg);
  return NULL;
}

static void *end_decode_later(void *arg) {
  usleep(100000);
  lull_decode_end(arg);
  return NULL;
}

/* A wait that the other side's end, 100 ms in (end_*_later), released: not before it,
 * and not much after it. */
static void assert_released_at_100ms(uint64_t waited, const char *what) {
  cr_assert_geq(waited, 90000000u, "%s after %.1f ms, before the other side ended", what,
                ms_of(waited));
  cr_assert_lt(waited, 3000000000u, "%s after %.1f ms: the other side ended at 100 ms", what,
               ms_of(waited));
}

Test(lull, idle_engine_does_not_delay_a_decode) {
  lull_t l;
  cr_assert_eq(lull_init(&l), 0);
  int overran = -1;
  cr_assert_lt(lull_decode_begin(&l, 5000000000u, &overran), 100000000u);
  cr_assert_eq(overran, 0);
  lull_decode_end(&l);
  lull_forward_begin(&l, 5000000000u);
  lull_forward_end(&l);
  cr_assert_lt(lull_decode_begin(&l, 5000000000u, NULL), 100000000u, "the forward had ended");
  lull_decode_end(&l);
  lull_deinit(&l);
}

Test(lull, decode_waits_for_the_forward_to_end) {
  lull_t l;
  cr_assert_eq(lull_init(&l), 0);
  lull_forward_begin(&l, 5000000000u);
  pthread_t t;
  pthread_create(&t, NULL, end_forward_later, &l);
  int overran = -1;
  uint64_t waited = lull_decode_begin(&l, 5000000000u, &overran);
  pthread_join(t, NULL);
  lull_decode_end(&l);
  assert_released_at_100ms(waited, "the decode started");
  cr_assert_eq(overran, 0, "the forward ended well within the bound");
  lull_deinit(&l);
}

Test(lull, forward_waits_for_running_decodes_and_holds_off_new_ones) {
  lull_t l;
  cr_assert_eq(lull_init(&l), 0);
  lull_decode_begin(&l, 5000000000u, NULL);
  pthread_t t;
  pthread_create(&t, NULL, end_decode_later, &l);
  uint64_t t0 = job_now_ns();
  lull_forward_begin(&l, 5000000000u);
  uint64_t waited = job_now_ns() - t0;
  pthread_join(t, NULL);
  assert_released_at_100ms(waited, "the forward started");
  /* the forward now runs: a new decode waits for it, up to its bound */
  int overran = -1;
  uint64_t d = lull_decode_begin(&l, 50000000u, &overran);
  cr_assert_geq(d, 49000000u, "a decode started after %.1f ms, during the forward", ms_of(d));
  cr_assert_eq(overran, 1, "the decode starts during the forward: reported as overran");
  lull_decode_end(&l);
  lull_forward_end(&l);
  lull_deinit(&l);
}

typedef struct {
  lull_t *l;
  atomic_int started; /* the forward is waiting to start */
  uint64_t decode_wait;
} starter_t;

static void *start_forward(void *arg) {
  starter_t *s = arg;
  atomic_store(&s->started, 1);
  lull_forward_begin(s->l, 5000000000u);
  usleep(50000);
  lull_forward_end(s->l);
  return NULL;
}

Test(lull, a_starting_forward_is_not_starved_by_new_decodes) {
  lull_t l;
  cr_assert_eq(lull_init(&l), 0);
  lull_decode_begin(&l, 5000000000u, NULL); /* a decode runs */
  starter_t s = {.l = &l};
  atomic_init(&s.started, 0);
  pthread_t t;
  pthread_create(&t, NULL, start_forward, &s);
  while (!atomic_load(&s.started)) usleep(1000);
  usleep(20000); /* the forward now waits for the running decode */
  lull_decode_end(&l);
  /* a decode arriving now must wait for the forward that was waiting first */
  uint64_t d = lull_decode_begin(&l, 5000000000u, NULL);
  lull_decode_end(&l);
  pthread_join(t, NULL);
  cr_assert_geq(d, 40000000u, "a new decode went ahead of the waiting forward (%.1f ms)",
                ms_of(d));
  lull_deinit(&l);
}

Test(lull, a_forward_that_never_ends_delays_a_decode_at_most_max) {
  lull_t l;
  cr_assert_eq(lull_init(&l), 0);
  lull_forward_begin(&l, 5000000000u);
  lull_forward_begin(&l, 5000000000u); /* two overlapping forwards (parallel models) */
  lull_forward_end(&l);
  int overran = -1;
  uint64_t waited = lull_decode_begin(&l, 150000000u, &overran);
  lull_decode_end(&l);
  cr_assert_eq(overran, 1, "one forward still runs");
  cr_assert_geq(waited, 149000000u, "one forward still runs: returned after %.1f ms", ms_of(waited));
  cr_assert_lt(waited, 1500000000u, "waited %.1f ms past its 150 ms bound", ms_of(waited));
  lull_forward_end(&l);
  lull_deinit(&l);
}

/* ---- fair gate ---------------------------------------------------------------- */

typedef struct {
  gate_t *g;
  int id, *order, *pos;
  pthread_mutex_t *mu;
} gater_t;

static void *gate_user(void *arg) {
  gater_t *u = arg;
  gate_enter(u->g);
  pthread_mutex_lock(u->mu);
  u->order[(*u->pos)++] = u->id;
  pthread_mutex_unlock(u->mu);
  gate_leave(u->g);
  return NULL;
}

Test(gate, admits_one_at_a_time_in_arrival_order) {
  gate_t g;
  cr_assert_eq(gate_init(&g), 0);
  int order[3], pos = 0;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  gater_t u[3];
  pthread_t t[3];
  gate_enter(&g); /* hold it while three threads queue up, 50 ms apart */
  for (int i = 0; i < 3; i++) {
    u[i] = (gater_t){&g, i, order, &pos, &mu};
    pthread_create(&t[i], NULL, gate_user, &u[i]);
    usleep(50000);
  }
  cr_assert_eq(pos, 0, "nobody passes a held gate");
  gate_leave(&g);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  cr_assert_eq(pos, 3);
  for (int i = 0; i < 3; i++) cr_assert_eq(order[i], i, "FIFO order broken at %d", i);
  gate_deinit(&g);
}

/* ---- CPUs available ------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  cr_assert(f, "cannot write %s", p);
  fputs(text, f);
  fclose(f);
}

Test(cpus, cgroup_quota_v2_v1_and_none) {
  char root[] = "/tmp/classifyd-cg-XXXXXX", sub[600];
  cr_assert(mkdtemp(root));
  cr_assert_eq(cgroup_quota_cpus(root, "/nonexistent"), 0, "no files: no quota");
  write_file(root, "cpu.max", "max 100000\n");
  cr_assert_eq(cgroup_quota_cpus(root, "/nonexistent"), 0, "max: no quota");
  write_file(root, "cpu.max", "150000 100000\n");
  cr_assert_eq(cgroup_quota_cpus(root, "/nonexistent"), 2, "1.5 CPUs round up to 2");
  write_file(root, "cpu.max", "garbage\n");
  snprintf(sub, sizeof sub, "%s/cpu", root);
  cr_assert_eq(mkdir(sub, 0700), 0);
  write_file(sub, "cpu.cfs_quota_us", "50000\n");
  write_file(sub, "cpu.cfs_period_us", "100000\n");
  cr_assert_eq(cgroup_quota_cpus(root, "/nonexistent"), 1, "v1: half a CPU rounds up to 1");
  write_file(sub, "cpu.cfs_quota_us", "-1\n");
  cr_assert_eq(cgroup_quota_cpus(root, "/nonexistent"), 0, "v1 -1: no quota");
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_assert_eq(system(cmd), 0);
}

/* A systemd service: its own cgroup (and its slice) lie below the mount root, which
 * is the host's and has no limit; /proc/self/cgroup names them. */
Test(cpus, cgroup_quota_of_the_process_cgroup_and_its_ancestors) {
  char root[] = "/tmp/classifyd-cg-XXXXXX", dir[700], self[700];
  cr_assert(mkdtemp(root));
  snprintf(dir, sizeof dir, "%s/system.slice/classifyd.service", root);
  char cmd[1600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s/cpu/system.slice/classifyd.service'", dir, root);
  cr_assert_eq(system(cmd), 0);
  write_file(root, "self", "1:name=systemd:/system.slice/classifyd.service\n"
                           "2:cpu,cpuacct:/system.slice/classifyd.service\n"
                           "0::/system.slice/classifyd.service\n");
  snprintf(self, sizeof self, "%s/self", root);
  cr_assert_eq(cgroup_quota_cpus(root, self), 0, "no quota anywhere");
  write_file(dir, "cpu.max", "300000 100000\n");
  cr_assert_eq(cgroup_quota_cpus(root, self), 3, "v2 CPUQuota=300%% on the service");
  snprintf(dir, sizeof dir, "%s/system.slice", root);
  write_file(dir, "cpu.max", "200000 100000\n");
  cr_assert_eq(cgroup_quota_cpus(root, self), 2, "the slice's tighter quota binds too");
  write_file(dir, "cpu.max", "max 100000\n");
  snprintf(dir, sizeof dir, "%s/cpu/system.slice/classifyd.service", root);
  write_file(dir, "cpu.cfs_quota_us", "100000\n");
  write_file(dir, "cpu.cfs_period_us", "100000\n");
  cr_assert_eq(cgroup_quota_cpus(root, self), 1, "v1 quota on the service's cpu cgroup");
  /* a path that tries to leave the mount is not followed: only the root is read */
  write_file(root, "self", "0::/../../etc\n2:cpu:/a/../../b\n");
  cr_assert_eq(cgroup_quota_cpus(root, self), 0);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_assert_eq(system(cmd), 0);
}

typedef struct {
  char seen[8][800];
  int n;
} walk_log_t;

static void walk_note(const char *dir, void *arg) {
  walk_log_t *w = arg;
  size_t len = strlen(dir);
  if (w->n < 8 && len < sizeof w->seen[0]) memcpy(w->seen[w->n++], dir, len + 1);
}

Test(cgroup, walk_goes_leaf_to_root_and_skips_missing_directories) {
  char root[] = "/tmp/classifyd-cg-XXXXXX", self[700], cmd[1600];
  cr_assert(mkdtemp(root));
  snprintf(cmd, sizeof cmd, "mkdir -p '%s/memory/a/b' '%s/x'", root, root);
  cr_assert_eq(system(cmd), 0);
  write_file(root, "self", "4:memory:/a/b/c\n0::/x/y\n");
  snprintf(self, sizeof self, "%s/self", root);
  walk_log_t w = {.n = 0};
  cgroup_walk(root, self, "memory", walk_note, &w);
  cr_assert_eq(w.n, 3, "c does not exist: b, a, the root");
  cr_assert(strstr(w.seen[0], "/memory/a/b") && strstr(w.seen[2], "/memory") &&
            !strstr(w.seen[2], "/memory/a"));
  w.n = 0;
  cgroup_walk(root, self, NULL, walk_note, &w);
  cr_assert_eq(w.n, 2, "v2: x, then the root");
  cr_assert_str_eq(w.seen[1], root);
  w.n = 0;
  cgroup_walk(root, "/nonexistent", "cpu", walk_note, &w);
  cr_assert_eq(w.n, 0, "no cpu hierarchy mounted under this root");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_assert_eq(system(cmd), 0);
}

Test(cpus, follows_the_affinity_mask) {
  cpu_set_t all, one;
  cr_assert_eq(sched_getaffinity(0, sizeof all, &all), 0);
  int n = cpus_available();
  cr_assert(n >= 1 && n <= CPU_COUNT(&all), "%d CPUs of a mask of %d", n, CPU_COUNT(&all));
  int first = 0;
  while (!CPU_ISSET(first, &all)) first++;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
  cr_assert_eq(cpus_available(), 1, "pinned to one CPU");
  config_t c;
  config_defaults(&c);
  cr_assert(c.threads == 1 && c.workers == 1 && c.http_threads == 1,
            "defaults follow the mask: threads %d workers %d http %d", c.threads, c.workers,
            c.http_threads);
  cr_assert_eq(c.batch_window_us, 2000);
  config_free(&c);
  sched_setaffinity(0, sizeof all, &all);
}

/* ---- runner decode budget (needs a test model: skipped without one) -------------- */

static atomic_int runner_done_count;
static void count_taken(void *arg, int n) { (void)arg, (void)n; }
static void count_done(void *arg, job_t *j) { (void)arg, (void)j, atomic_fetch_add(&runner_done_count, 1); }

Test(runner, decode_slots_are_bounded_and_freed_when_taken) {
  const char *dir = getenv("CNN_TEST_MODELS");
  char path[1024];
  snprintf(path, sizeof path, "%s/resnet18.onnx", dir ? dir : "");
  if (!dir || access(path, R_OK) != 0) {
    cr_skip_test("no test model at '%s' (set CNN_TEST_MODELS; make test-models)", path);
  }
  cnn_model_t *m;
  cnn_error_t e;
  cr_assert_eq(cnn_model_load(path, &m, &e), 0, "%s", e.msg);
  runner_opts_t o = {.threads = 1, .max_batch = 2, .batch_window_us = 5000000, .queue_cap = 8};
  runner_cb_t cb = {.taken = count_taken, .done = count_done};
  runner_t *r;
  cr_assert_eq(runner_create(m, &o, &cb, &r, &e), 0, "%s", e.msg);
  for (int i = 0; i < RUNNER_HOLD_BATCHES * 2; i++) cr_assert_eq(runner_hold(r), 1);
  cr_assert_eq(runner_hold(r), 0, "two batches of 2 already hold every slot");
  runner_unhold(r);
  cr_assert_eq(runner_hold(r), 1, "a slot given back can be taken again");
  static job_t jobs[2];
  for (int i = 0; i < 2; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].tensor = runner_tensor_get(r);
    cr_assert(jobs[i].tensor);
    memset(jobs[i].tensor, 0, sizeof(float) * 3 * 224 * 224);
    jobs[i].top_k = 1;
    jobs[i].deadline = UINT64_MAX;
    cr_assert_eq(runner_push(r, &jobs[i]), 0);
  }
  for (int t = 0; t < 6000 && atomic_load(&runner_done_count) < 2; t++) usleep(10000);
  cr_assert_eq(atomic_load(&runner_done_count), 2, "the runner answered both jobs");
  cr_assert(jobs[0].status == 200 && jobs[1].status == 200, "%d %d", jobs[0].status, jobs[1].status);
  cr_assert_eq(jobs[0].batch, 2, "the window joined both jobs in one forward");
  cr_assert_eq(runner_hold(r), 1, "taking 2 jobs freed 2 slots");
  cr_assert_eq(runner_hold(r), 1);
  cr_assert_eq(runner_hold(r), 0);
  runner_destroy(r);
  cnn_model_destroy(m);
}
