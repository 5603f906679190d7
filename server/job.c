/*
 * job.c — error completion of jobs and the engine-error -> HTTP status map.
 *
 * The map is the daemon's contract with clients: invalid_image 400,
 * image_too_large 413, unsupported_media_type 415, anything else 500.
 * job_client_gone() peeks at the client's socket (see job.h).
 */
#include "job.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>

#include "cnn.h"

void job_fail(job_t *j, int status, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->err_msg, sizeof(j->err_msg), fmt, ap);
  va_end(ap);
  j->err_code = code;
  j->status = status;
}

int job_client_gone(const job_t *j) {
  if (j->fd < 0) return 0;
  char c;
  ssize_t n = recv(j->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

int job_status_for_cnn(int cnn_code) {
  switch (cnn_code) {
  case CNN_EIMAGE_INVALID: return 400;
  case CNN_EIMAGE_TOO_LARGE: return 413;
  case CNN_EMEDIA_UNSUPPORTED: return 415;
  default: return 500;
  }
}

void job_fail_cnn(job_t *j, int cnn_code, const char *msg) {
  int status = job_status_for_cnn(cnn_code);
  const char *code = status == 500 ? "internal_error" : cnn_err_code(cnn_code);
  job_fail(j, status, code, "%s", (msg && *msg) ? msg : cnn_strerror(cnn_code));
}
