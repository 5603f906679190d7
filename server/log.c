/*
 * log.c — leveled stderr logging (text or JSON lines) and the per-request line.
 *
 * Design: the level and format are set once at start-up (before threads) and
 * only read afterwards. Each line is built in a stack buffer (truncated at 4 KiB,
 * never allocated) and written with a single write(2) so concurrent lines do
 * not interleave. Untrusted strings (paths) are JSON-escaped in JSON mode and
 * have control bytes replaced in text mode.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static log_level_t g_level = LOG_INFO;
static int g_json;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

#define LINE_MAX_BYTES 4096

typedef struct {
  char buf[LINE_MAX_BYTES];
  size_t len;
} line_t;

int log_level_parse(const char *s, log_level_t *out) {
  for (int i = 0; i <= LOG_DEBUG; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (log_level_t)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = LOG_WARN;
    return 0;
  }
  return -1;
}

void log_init(log_level_t level, int json) {
  g_level = level;
  g_json = json;
}

int log_enabled(log_level_t level) { return level <= g_level; }

static void line_add(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_add(line_t *l, const char *fmt, ...) {
  if (l->len >= sizeof(l->buf) - 2) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(l->buf + l->len, sizeof(l->buf) - 1 - l->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  l->len += (size_t)n;
  if (l->len > sizeof(l->buf) - 2) l->len = sizeof(l->buf) - 2;
}

/* Untrusted text: JSON-escaped (json) or with control bytes as '?' (text). */
static void line_str(line_t *l, const char *s, int json) {
  if (json) line_add(l, "\"");
  for (; s && *s && l->len < sizeof(l->buf) - 16; s++) {
    unsigned char c = (unsigned char)*s;
    if (json && (c == '"' || c == '\\')) line_add(l, "\\%c", c);
    else if (c < 0x20 || c == 0x7F) line_add(l, json ? "\\u%04x" : "?", c);
    else if (json && c >= 0x80) line_add(l, "\\u%04x", c); /* bytes, not UTF-8 */
    else l->buf[l->len++] = (char)c;
  }
  if (json) line_add(l, "\"");
}

static void line_time(line_t *l) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char t[32];
  strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
  line_add(l, g_json ? "{\"time\":\"%s.%03ldZ\"" : "%s.%03ldZ", t, ts.tv_nsec / 1000000);
}

static void line_emit(line_t *l) {
  l->buf[l->len++] = '\n';
  const char *p = l->buf;
  size_t left = l->len;
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, p, left);
    if (n <= 0) return; /* nowhere to report a failing stderr */
    p += n;
    left -= (size_t)n;
  }
}

void log_msg(log_level_t level, const char *fmt, ...) {
  if (!log_enabled(level)) return;
  char msg[LINE_MAX_BYTES - 256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  line_t l = {.len = 0};
  line_time(&l);
  if (g_json) {
    line_add(&l, ",\"level\":\"%s\",\"msg\":", level_names[level]);
    line_str(&l, msg, 1);
    line_add(&l, "}");
  } else {
    line_add(&l, " %-5s %s", level_names[level], msg);
  }
  line_emit(&l);
}

void log_request(const log_request_t *r) {
  if (!log_enabled(LOG_INFO)) return;
  line_t l = {.len = 0};
  line_time(&l);
  if (g_json) {
    line_add(&l, ",\"level\":\"info\",\"msg\":\"request\",\"method\":");
    line_str(&l, r->method, 1);
    line_add(&l, ",\"path\":");
    line_str(&l, r->path, 1);
    line_add(&l, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f",
             r->status, (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
             r->duration_ms);
    line_add(&l, ",\"model\":");
    if (r->model) line_str(&l, r->model, 1);
    else line_add(&l, "null");
    if (r->error) line_add(&l, ",\"error\":\"%s\"", r->error);
    line_add(&l, "}");
  } else {
    line_add(&l, " info  ");
    line_str(&l, r->method, 0);
    line_add(&l, " ");
    line_str(&l, r->path, 0);
    line_add(&l, " %d in=%llu out=%llu %.3fms model=%s", r->status,
             (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out, r->duration_ms,
             r->model ? r->model : "-");
    if (r->error) line_add(&l, " error=%s", r->error);
  }
  line_emit(&l);
}
