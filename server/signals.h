/*
 * signals.h — SIGTERM/SIGINT/SIGHUP through uv_signal_t on the loop thread.
 *
 * The first SIGTERM or SIGINT calls on_stop (graceful drain); a second one
 * exits the process at once with status 1. Every SIGHUP calls on_reload.
 * SIGPIPE is ignored process-wide.
 */
#ifndef CLASSIFYD_SIGNALS_H
#define CLASSIFYD_SIGNALS_H

#include <uv.h>

typedef struct {
  uv_signal_t term, intr, hup;
  int count;
  void (*on_stop)(void *arg);
  void (*on_reload)(void *arg);
  void *arg;
} signals_t;

int signals_start(signals_t *s, uv_loop_t *loop, void (*on_stop)(void *),
                  void (*on_reload)(void *), void *arg);
void signals_close(signals_t *s);

#endif
