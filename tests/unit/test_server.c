/*
 * test_server.c — unit tests of the daemon's self-contained modules: JSON output,
 * the job queue, configuration (file, flags, errors), metrics rendering and the
 * engine-error -> HTTP status map.
 *
 * The unit binary links only libcnn.a, so the server sources under test are
 * compiled into this one translation unit (they share no static names).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../server/config.c"
#include "../../server/job.c"
#include "../../server/json_out.c"
#include "../../server/log.c"
#include "../../server/metrics.c"
#include "../../server/queue.c"

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
  job_t jobs[4];
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
  job_t jobs[4];
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
  jout_t j;
  jout_init(&j);
  metrics_gauges_t g = {.queue_depth = 2, .queue_capacity = 8};
  metrics_render(&j, &g);
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"1\"} 1\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"4\"} 2\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"64\"} 2\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_bucket{le=\"+Inf\"} 3\n"));
  cr_assert(strstr(j.buf, "classifyd_batch_size_sum 104\nclassifyd_batch_size_count 3\n"));
  cr_assert(strstr(j.buf, "classifyd_http_requests_total{endpoint=\"classify\",code=\"200\"} 1\n"));
  cr_assert(strstr(j.buf, "classifyd_http_requests_total{endpoint=\"classify\",code=\"other\"} 1\n"));
  cr_assert(strstr(j.buf, "# TYPE process_cpu_seconds_total counter\n"));
  cr_assert(strstr(j.buf, "classifyd_queue_depth 2\n"));
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
