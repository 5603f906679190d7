/*
 * job.h — one classify request on its way through the pipeline.
 *
 * A job is embedded in the HTTP request state and lives as long as the
 * connection's request (the connection is suspended while the job is out, so
 * MHD cannot free it). Ownership moves strictly along the pipeline:
 * HTTP thread -> loop thread -> uv worker (decode) -> loop thread -> runner
 * thread -> loop thread (resume) -> HTTP thread; each hand-off is through a
 * mutex-protected queue or list, so no field is ever touched by two threads
 * at once. Times are CLOCK_MONOTONIC nanoseconds.
 */
#ifndef CLASSIFYD_JOB_H
#define CLASSIFYD_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#define JOB_MAX_TOPK 1000

struct model_entry;

typedef struct job {
  void *conn; /* struct MHD_Connection *, resumed when the job is finished */
  int fd;     /* the client's socket (-1: unknown), only peeked at: job_client_gone() */
  struct model_entry *model;
  const uint8_t *data; /* the image bytes, owned by the request */
  size_t len;
  int top_k;
  uint64_t t_start, t_admit, t_dec0, t_dec1, t_inf0, t_inf1, deadline;
  uint64_t t_queued; /* set by queue_push: starts the batch window */
  uv_work_t work;
  float *tensor; /* from the model runner's tensor pool while held */
  int status;    /* 0 while pending, then the HTTP status */
  const char *err_code;
  char err_msg[320];
  int k, batch;
  int idx[JOB_MAX_TOPK];
  float prob[JOB_MAX_TOPK];
  struct job *next;
} job_t;

static inline uint64_t job_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Finish the job with an error (status, machine code, printf message). */
void job_fail(job_t *j, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Finish the job with the HTTP status matching an engine error. */
void job_fail_cnn(job_t *j, int cnn_code, const char *msg);
/* 1 when the client has closed its connection (end of stream or reset on j->fd):
 * no one will read the answer. A pipelined next request is data, so not gone.
 * Safe while the job is out: the connection is suspended, MHD neither reads
 * nor closes the socket. */
int job_client_gone(const job_t *j);
/* HTTP status for an engine error code. */
int job_status_for_cnn(int cnn_code);

#endif
