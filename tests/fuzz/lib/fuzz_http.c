/*
 * fuzz_http.c — in-process daemon for the HTTP fuzzers (see fuzz_http.h).
 *
 * Threads: libFuzzer's thread sends and reads; MHD's polling thread runs http.c; the
 * loop thread runs the pipeline's hand-offs and the slow-client sweeper; libuv workers
 * decode; one runner thread per model infers; linger.c's thread drains refused uploads.
 * As in daemon.c, minus signals, reload, systemd, drain and the memory-limit check.
 * The model is tests/fuzz/tiny.onnx (8x8 input, 5 classes, microseconds per forward),
 * found next to the binary (../../tests/fuzz/) or through $FUZZ_TINY_ONNX, served twice:
 * "tiny" (default) and "bgr" (other preprocessing), so ?model= selection matters.
 */
#include "fuzz_http.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "gate.h"
#include "lull.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "rlimits.h"

/* daemon.c's lingering-close settings for refused uploads. */
#define LINGER_MAX_BYTES (32u << 20)
#define LINGER_TOTAL_MS 10000
#define LINGER_IDLE_MS 2000

struct fuzz_http {
  config_t cfg;
  modelset_slot_t slot;
  pipeline_t pipe;
  gate_t gate;
  lull_t lull;
  app_t app;
  uv_loop_t loop;
  uv_thread_t loop_thread;
  uv_timer_t guard_timer; /* sweeps slow clients, as daemon.c's */
  conns_t conns;
  linger_t linger;
  struct MHD_Daemon *mhd;
  struct sockaddr_un addr;
  socklen_t addrlen;
};

static void die(const char *what) {
  fprintf(stderr, "fuzz_http: %s\n", what);
  abort();
}

static void model_path(char *out, size_t n) {
  const char *env = getenv("FUZZ_TINY_ONNX");
  if (env) {
    snprintf(out, n, "%s", env);
    return;
  }
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) die("cannot find the binary (set FUZZ_TINY_ONNX)");
  exe[len] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  snprintf(out, n, "%s/../../tests/fuzz/tiny.onnx", exe);
}

static void parse_config(fuzz_http_t *h, const char *const *extra, int nextra) {
  static char tiny[PATH_MAX + 8], bgr[PATH_MAX + 8];
  char path[PATH_MAX];
  model_path(path, sizeof(path));
  snprintf(tiny, sizeof(tiny), "tiny=%s", path);
  snprintf(bgr, sizeof(bgr), "bgr=%s", path);
  const char *base[] = {"fuzz", "--model", tiny, "--model", bgr, "--set",
                        "model.bgr.channel_order=BGR", "--set", "model.bgr.pixel_range=0-255",
                        "--threads", "1", "--workers", "1", "--http-threads", "1",
                        "--max-batch", "2", "--batch-window-us", "0", "--queue-length", "8",
                        "--body-limit", "256K", "--max-pixels", "1000000", "--max-side", "4096",
                        "--request-deadline-ms", "5000", "--connection-timeout", "2",
                        "--log-level", "error"};
  int nbase = (int)(sizeof(base) / sizeof(base[0]));
  char *argv[64];
  if (nbase + nextra >= 64) die("too many flags");
  for (int i = 0; i < nbase; i++) argv[i] = (char *)base[i];
  for (int i = 0; i < nextra; i++) argv[nbase + i] = (char *)extra[i];
  argv[nbase + nextra] = NULL;
  char err[1024];
  memset(&h->cfg, 0, sizeof(h->cfg));
  if (config_parse(&h->cfg, nbase + nextra, argv, err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz_http: configuration: %s\n", err);
    abort();
  }
}

static void load_models(fuzz_http_t *h) {
  config_t first;
  if (config_copy(&first, &h->cfg) < 0) die("out of memory");
  modelset_t *s = modelset_create(&first, 1);
  if (!s || modelset_slot_init(&h->slot, s) < 0) die("cannot create the model set");
  runner_cb_t cb = pipeline_runner_cb(&h->pipe);
  atomic_int stop = 0;
  char err[1024];
  if (modelset_load(s, &cb, &h->gate, &h->lull, &stop, NULL, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "fuzz_http: loading the model: %s\n", err);
    abort();
  }
  h->app.models = &h->slot;
}

/* The connection guards of daemon.c (check_limits, setup_loop): limits from the
 * open-file limit, the registry of connections and its sweeper, lingering close. */
static void guard_sweep(uv_timer_t *t) {
  fuzz_http_t *h = t->data;
  conns_sweep(&h->conns, job_now_ns());
}

static void setup_guards(fuzz_http_t *h) {
  rlimits_conns_t lim;
  char msg[512];
  if (rlimits_connections(0, h->cfg.max_connections, &lim, msg, sizeof(msg)) < 0) die(msg);
  h->app.max_connections = lim.soft;
  h->app.accept_limit = lim.hard;
  if (conns_init(&h->conns, h->cfg.connection_timeout_s, (uint64_t)h->cfg.min_upload_rate,
                 lim.soft) < 0 ||
      linger_start(&h->linger, lim.linger, LINGER_MAX_BYTES, LINGER_IDLE_MS, LINGER_TOTAL_MS) < 0)
    die("connection guards");
  h->app.conns = &h->conns;
  h->app.linger = &h->linger;
  if (uv_timer_init(&h->loop, &h->guard_timer) < 0) die("guard timer");
  h->guard_timer.data = h;
  uv_timer_start(&h->guard_timer, guard_sweep, 200, 200);
}

static void loop_main(void *arg) {
  fuzz_http_t *h = arg;
  uv_run(&h->loop, UV_RUN_DEFAULT);
}

static int listen_socket(fuzz_http_t *h) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  memset(&h->addr, 0, sizeof(h->addr));
  h->addr.sun_family = AF_UNIX;
  /* Abstract name (leading NUL): nothing on disk, gone with the process. */
  int n = snprintf(h->addr.sun_path + 1, sizeof(h->addr.sun_path) - 1, "classifyd-fuzz-%d",
                   (int)getpid());
  h->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
  if (bind(fd, (struct sockaddr *)&h->addr, h->addrlen) < 0 || listen(fd, 64) < 0)
    die("bind/listen on the abstract socket");
  return fd;
}

fuzz_http_t *fuzz_http_start(const char *const *extra, int nextra) {
  static fuzz_http_t h;
  static int started;
  if (started) return &h;
  started = 1;
  setenv("UV_THREADPOOL_SIZE", "1", 1);
  parse_config(&h, extra, nextra);
  log_init((log_level_t)h.cfg.log_level, 0);
  metrics_init();
  if (uv_loop_init(&h.loop) < 0 || gate_init(&h.gate) < 0 || lull_init(&h.lull) < 0)
    die("loop/gate/lull init");
  cnn_image_limits_t lim;
  cnn_image_limits_default(&lim);
  lim.max_pixels = h.cfg.max_pixels;
  lim.max_side = h.cfg.max_side;
  if (pipeline_init(&h.pipe, &h.loop, h.cfg.queue_length, &lim, http_job_finished) < 0)
    die("pipeline init");
  h.pipe.lull = &h.lull;
  h.app.cfg = &h.cfg;
  h.app.pipe = &h.pipe;
  setup_guards(&h);
  load_models(&h);
  if (uv_thread_create(&h.loop_thread, loop_main, &h) != 0) die("loop thread");
  int port;
  h.mhd = http_start(&h.app, listen_socket(&h), &port);
  if (!h.mhd) die("http_start");
  return &h;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Half-closes once the server has read everything sent (bounded wait): MHD, polling
 * edge-triggered, notices the end of a unix-socket stream only when it comes as an
 * event of its own, not together with the last bytes (over TCP the FIN always does).
 * Under heavy load it can still miss it; then MHD's idle timeout (2 s here) closes the
 * connection, so only a request our code holds (a suspended upload whose job is never
 * finished) reaches FUZZ_HTTP_TIMEOUT_MS and counts as a hang. */
static void shut_sending(int fd) {
  for (int i = 0; i < 200; i++) {
    int queued = 0;
    if (ioctl(fd, SIOCOUTQ, &queued) < 0 || queued == 0) break;
    usleep(50);
  }
  usleep(20);
  shutdown(fd, SHUT_WR);
}

/* Writes all of req while draining the answer (a server may answer early and stop
 * reading: a full socket buffer on both sides must not deadlock us). */
size_t fuzz_http_exchange(fuzz_http_t *h, const void *req, size_t len, char *resp, size_t cap,
                          int half_close) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&h->addr, h->addrlen) < 0) die("connect");
  const char *p = req;
  size_t sent = 0, got = 0, stored = 0;
  int wr_open = 1;
  long long deadline = now_ms() + FUZZ_HTTP_TIMEOUT_MS;
  if (len == 0 && half_close) shut_sending(fd);
  if (len == 0) wr_open = 0;
  for (;;) {
    struct pollfd pf = {fd, (short)(POLLIN | (wr_open ? POLLOUT : 0)), 0};
    long long left = deadline - now_ms();
    if (left <= 0) die("no answer and no close within the time limit (hang)");
    if (poll(&pf, 1, (int)left) < 0 && errno != EINTR) die("poll");
    if (pf.revents & POLLOUT && wr_open) {
      ssize_t w = send(fd, p + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) sent += (size_t)w;
      if (w < 0 && errno != EAGAIN && errno != EINTR) wr_open = 0; /* server closed */
      if (sent == len) {
        if (half_close) shut_sending(fd);
        wr_open = 0;
      }
    }
    if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
      char tmp[4096];
      ssize_t r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
      if (r > 0 && stored + 1 < cap) {
        size_t k = (size_t)r < cap - 1 - stored ? (size_t)r : cap - 1 - stored;
        memcpy(resp + stored, tmp, k);
        stored += k;
      }
      if (r > 0) got += (size_t)r;
    }
  }
  close(fd);
  resp[stored] = '\0';
  return got;
}

int fuzz_http_status(const char *resp, size_t len) {
  int code;
  if (len < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || sscanf(resp + 9, "%3d", &code) != 1)
    return -1;
  return code;
}

const char *fuzz_http_body(const char *resp, size_t len) {
  const char *b = strstr(resp, "\r\n\r\n");
  return b && (size_t)(b + 4 - resp) <= len ? b + 4 : NULL;
}

static void bad_answer(const char *why, const char *resp) {
  fprintf(stderr, "fuzz_http: %s in the answer:\n%.2000s\n", why, resp);
  abort();
}

static void check_predictions(json_t *doc, const char *resp, int max_k) {
  json_t *model = json_object_get(doc, "model"), *preds = json_object_get(doc, "predictions");
  const char *name = json_string_value(model);
  if (!name || (strcmp(name, "tiny") && strcmp(name, "bgr"))) bad_answer("unknown model", resp);
  size_t n = json_array_size(preds);
  if (!json_is_array(preds) || n < 1 || (int)n > max_k) bad_answer("prediction count", resp);
  double last = 2.0;
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(preds, i);
    json_int_t idx = json_integer_value(json_object_get(p, "index"));
    double prob = json_number_value(json_object_get(p, "probability"));
    if (idx < 0 || idx >= 5 || !json_is_string(json_object_get(p, "label")) || prob < 0 ||
        prob > 1 || prob > last + 1e-6)
      bad_answer("bad prediction", resp);
    last = prob;
  }
}

/* One answer at resp (len bytes left); returns the bytes it spans. A keep-alive
 * connection carries several: each body is Content-Length bytes, except after HEAD
 * (no body: the next answer follows at once). */
static size_t check_one(const char *resp, size_t len, int cut, int max_k) {
  const char *body = fuzz_http_body(resp, len);
  if (!body && cut) return len; /* the last answer, cut by our buffer */
  int status = fuzz_http_status(resp, len);
  static const int known[] = {100, 200, 204, 400, 404, 405, 406, 411, 413, 414, 415, 417,
                              431, 499, 500, 501, 503, 504, 505};
  int ok = 0;
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok |= status == known[i];
  if (!ok) bad_answer("unexpected status", resp);
  if (!body) bad_answer("no end of headers", resp);
  size_t head = (size_t)(body - resp), blen = 0;
  if (status == 100) return head; /* interim answer to Expect: 100-continue, no body */
  const char *cl = strcasestr(resp, "\r\nContent-Length: ");
  if (cl && cl < body) blen = strtoul(cl + 18, NULL, 10);
  if (len - head >= 7 && strncmp(body, "HTTP/1.", 7) == 0) blen = 0;
  if (blen > len - head) return len; /* cut short by our buffer: not checked */
  const char *ct = strcasestr(resp, "\r\nContent-Type: application/json");
  if (blen == 0 || !ct || ct > body) return head + blen;
  json_error_t jerr;
  json_t *doc = json_loadb(body, blen, 0, &jerr);
  if (!doc) bad_answer("invalid JSON", resp);
  json_t *e = json_object_get(doc, "error");
  if (status >= 400) {
    const char *code = json_string_value(json_object_get(e, "code"));
    if (!code || !json_is_string(json_object_get(e, "message"))) bad_answer("error shape", resp);
    if (status == 500 && strcmp(code, "out_of_memory") && !strstr(body, "out of memory"))
      bad_answer("internal error", resp);
  } else if (json_object_get(doc, "predictions")) {
    check_predictions(doc, resp, max_k);
  }
  json_decref(doc);
  return head + blen;
}

void fuzz_http_check(const char *resp, size_t received, size_t cap, int max_k) {
  size_t len = received < cap ? received : cap - 1;
  int cut = received > len;
  if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz_http: answer (%zu bytes):\n%s\n", len, resp);
  /* Closed without an answer: allowed for broken requests. */
  for (size_t off = 0; off < len;) off += check_one(resp + off, len - off, cut, max_k);
}
