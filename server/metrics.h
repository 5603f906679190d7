/*
 * metrics.h — process-wide counters and histograms, rendered as Prometheus text.
 *
 * All updates are lock-free atomics and may come from any thread. Gauges owned by
 * other modules (queue depth, in-flight, models loaded) are passed to
 * metrics_render() by the caller, so there is one source of truth for each.
 */
#ifndef CLASSIFYD_METRICS_H
#define CLASSIFYD_METRICS_H

#include <stdint.h>

#include "json_out.h"

typedef enum {
  EP_CLASSIFY = 0,
  EP_MODELS,
  EP_HEALTHZ,
  EP_READYZ,
  EP_METRICS,
  EP_OTHER,
  EP_COUNT
} metrics_endpoint_t;

typedef enum { H_REQUEST = 0, H_QUEUE, H_PREPROCESS, H_INFERENCE, H_BATCH, H_COUNT } metrics_hist_t;

typedef struct {
  long queue_depth, queue_capacity, in_flight, models_loaded, models_configured, generation;
  long connections_open, connections_limit, connections_refused, connections_cut, lingering,
      lingered;
  long upload_bytes, upload_refused;
} metrics_gauges_t;

void metrics_init(void); /* records the process start time */
void metrics_request(metrics_endpoint_t ep, int status);
void metrics_observe(metrics_hist_t h, double value); /* seconds, or images for H_BATCH */
const char *metrics_endpoint_name(metrics_endpoint_t ep);
/* A configuration reload ended: ok = 1 applied, 0 failed (old models kept). */
void metrics_reload(int ok);
/* A decode gave up waiting for the pause between forwards and ran during one (lull.h). */
void metrics_decode_in_forward(void);
void metrics_render(jout_t *out, const metrics_gauges_t *g);

#endif
