/*
 * notify.h — the systemd service-manager protocol (sd_notify) and the watchdog.
 *
 * notify_send() passes "KEY=VALUE\n..." lines to the manager when NOTIFY_SOCKET
 * is set and does nothing otherwise; it is thread-safe. The watchdog timer runs
 * on the daemon's libuv loop and sends WATCHDOG=1 every half WATCHDOG_USEC, so a
 * loop that stops turning stops the pings and systemd restarts the service.
 * notify_listen_fd() returns a listening socket passed by socket activation.
 */
#ifndef CLASSIFYD_NOTIFY_H
#define CLASSIFYD_NOTIFY_H

#include <stdint.h>
#include <uv.h>

typedef struct {
  uv_timer_t timer;
  int started;
  uint64_t interval_ms;
} notify_watchdog_t;

void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 0 (watchdog off, or started), or a negative libuv error. */
int notify_watchdog_start(notify_watchdog_t *w, uv_loop_t *loop);
void notify_watchdog_close(notify_watchdog_t *w);
/* -1: no socket passed; -2: unusable (message logged); else the listening fd. */
int notify_listen_fd(void);

#endif
