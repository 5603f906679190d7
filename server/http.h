/*
 * http.h — the libmicrohttpd server and per-request state.
 *
 * MHD runs its own polling threads (MHD_USE_INTERNAL_POLLING_THREAD with a
 * thread pool) and calls http.c's handler; nothing in these threads waits on
 * decoding or inference: a classify upload suspends its connection and goes
 * to the pipeline, and http_job_finished() (loop thread) resumes it.
 */
#ifndef CLASSIFYD_HTTP_H
#define CLASSIFYD_HTTP_H

#include <microhttpd.h>

#include "app.h"
#include "job.h"
#include "metrics.h"
#include "multipart.h"

typedef enum {
  ROUTE_NONE = 0,
  ROUTE_CLASSIFY,
  ROUTE_MODELS,
  ROUTE_HEALTHZ,
  ROUTE_READYZ,
  ROUTE_METRICS,
  ROUTE_WEB, /* GET / and /static/NAME: the embedded page (web.c) */
} route_t;

typedef enum { RS_NEW = 0, RS_DEFERRED, RS_UPLOAD, RS_QUEUED, RS_ANSWERED } req_state_t;

typedef struct req {
  app_t *app;
  struct MHD_Connection *conn;
  route_t route;
  metrics_endpoint_t ep;
  req_state_t state;
  char method[16];
  char path[256];
  char model_name[CONFIG_NAME_MAX + 2]; /* from /models/NAME/classify */
  uint64_t t_start, bytes_in, bytes_out, content_length;
  int status;
  int retry_after; /* seconds for a 503's Retry-After (0: 1) */
  const char *err_code;
  modelset_t *gen; /* the generation `model` belongs to, referenced until freed */
  model_entry_t *model;
  int top_k;
  int is_multipart;
  multipart_t mp;
  uint8_t *body; /* raw body, or the chosen multipart part */
  size_t body_len, body_cap;
  uint64_t charged; /* body bytes charged against server.upload_memory */
  int linger;       /* body bytes may still be arriving: linger on close (linger.h) */
  int too_large;    /* the body passed the limit: the rest is dropped, then 413 (http.c) */
  job_t job;
} req_t;

/* listen_fd >= 0: serve that listening socket (socket activation) instead of
 * binding server.listen. NULL on failure (logged). */
struct MHD_Daemon *http_start(app_t *app, int listen_fd, int *port_out);
void http_quiesce(struct MHD_Daemon *d); /* stop accepting new connections */
void http_stop(struct MHD_Daemon *d);
void http_job_finished(job_t *j); /* loop thread: resume the job's connection */
/* Charges the request's body up to `total` bytes against server.upload_memory;
 * -1 (nothing charged) when that would pass the budget. Released at completion. */
int http_upload_charge(req_t *r, uint64_t total);

/* Response helpers for handlers.c: take ownership of body (malloc'd). */
enum MHD_Result http_send(req_t *r, int status, char *body, size_t len, const char *ctype,
                          const char *allow, int retry_after);
enum MHD_Result http_error(req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
