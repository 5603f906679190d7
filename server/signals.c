/*
 * signals.c — graceful stop on SIGTERM/SIGINT, forced exit on the second,
 * configuration reload on SIGHUP.
 *
 * Design: libuv turns the signals into loop callbacks, so the stop logic runs
 * on the loop thread like everything else and needs no async-signal-safety.
 */
#include "signals.h"

#include <signal.h>
#include <unistd.h>

#include "log.h"

static void on_signal(uv_signal_t *h, int signum) {
  signals_t *s = h->data;
  if (++s->count > 1) {
    log_msg(LOG_WARN, "second %s: exiting now without draining", signum == SIGINT ? "SIGINT" : "SIGTERM");
    _exit(1);
  }
  log_msg(LOG_INFO, "%s: draining (send again to exit at once)", signum == SIGINT ? "SIGINT" : "SIGTERM");
  s->on_stop(s->arg);
}

static void on_hup(uv_signal_t *h, int signum) {
  signals_t *s = h->data;
  log_msg(LOG_INFO, "SIGHUP: reloading the configuration");
  s->on_reload(s->arg);
}

int signals_start(signals_t *s, uv_loop_t *loop, void (*on_stop)(void *),
                  void (*on_reload)(void *), void *arg) {
  s->count = 0;
  s->on_stop = on_stop;
  s->on_reload = on_reload;
  s->arg = arg;
  signal(SIGPIPE, SIG_IGN);
  int rc = uv_signal_init(loop, &s->term);
  if (rc == 0) rc = uv_signal_init(loop, &s->intr);
  if (rc == 0) rc = uv_signal_init(loop, &s->hup);
  if (rc < 0) return rc;
  s->term.data = s->intr.data = s->hup.data = s;
  rc = uv_signal_start(&s->term, on_signal, SIGTERM);
  if (rc == 0) rc = uv_signal_start(&s->intr, on_signal, SIGINT);
  if (rc == 0) rc = uv_signal_start(&s->hup, on_hup, SIGHUP);
  return rc;
}

void signals_close(signals_t *s) {
  uv_close((uv_handle_t *)&s->term, NULL);
  uv_close((uv_handle_t *)&s->intr, NULL);
  uv_close((uv_handle_t *)&s->hup, NULL);
}
