/*
 * log.h — leveled logging to stderr, as text or JSON lines.
 *
 * log_init() is called once before any thread starts; afterwards every call is
 * thread-safe (each line is composed in a local buffer and written with one
 * write(2), so lines from different threads never interleave).
 */
#ifndef CLASSIFYD_LOG_H
#define CLASSIFYD_LOG_H

#include <stdint.h>

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

int log_level_parse(const char *s, log_level_t *out); /* 0 or -1 */
void log_init(log_level_t level, int json);
int log_enabled(log_level_t level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct {
  const char *method, *path, *model; /* model may be NULL */
  int status;
  uint64_t bytes_in, bytes_out;
  double duration_ms;
  const char *error; /* machine error code or NULL */
} log_request_t;

void log_request(const log_request_t *r);

#endif
