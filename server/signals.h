/*
 * signals.h — SIGTERM/SIGINT through uv_signal_t on the loop thread.
 *
 * The first signal calls on_stop (graceful drain); a second one exits the
 * process at once with status 1. SIGPIPE is ignored process-wide.
 */
#ifndef CLASSIFYD_SIGNALS_H
#define CLASSIFYD_SIGNALS_H

#include <uv.h>

typedef struct {
  uv_signal_t term, intr;
  int count;
  void (*on_stop)(void *arg);
  void *arg;
} signals_t;

int signals_start(signals_t *s, uv_loop_t *loop, void (*on_stop)(void *), void *arg);
void signals_close(signals_t *s);

#endif
