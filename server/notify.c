/*
 * notify.c — sd_notify status lines, the loop-driven watchdog and socket
 * activation (see notify.h).
 *
 * Why the watchdog is a uv_timer and not a thread: a thread would keep pinging
 * while the loop that moves every request is wedged; systemd must see the
 * loop itself. Pings go out at half the interval systemd asked for (the usual
 * margin); the environment variables are left in place for the process.
 * Socket activation accepts exactly one passed fd, and only if it is a
 * listening stream socket: anything else is a deployment error, not something
 * to guess around.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "log.h"

void notify_send(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  int rc = sd_notify(0, buf);
  if (rc < 0) log_msg(LOG_DEBUG, "sd_notify failed: %d", rc);
}

static void watchdog_ping(uv_timer_t *t) { sd_notify(0, "WATCHDOG=1"); }

int notify_watchdog_start(notify_watchdog_t *w, uv_loop_t *loop) {
  uint64_t usec = 0;
  w->started = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return 0;
  w->interval_ms = usec / 2000 ? usec / 2000 : 1;
  int rc = uv_timer_init(loop, &w->timer);
  if (rc < 0) return rc;
  w->started = 1;
  log_msg(LOG_INFO, "systemd watchdog: %llu ms, pinging every %llu ms from the event loop",
          (unsigned long long)(usec / 1000), (unsigned long long)w->interval_ms);
  sd_notify(0, "WATCHDOG=1");
  return uv_timer_start(&w->timer, watchdog_ping, w->interval_ms, w->interval_ms);
}

void notify_watchdog_close(notify_watchdog_t *w) {
  if (!w->started) return;
  w->started = 0;
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, NULL);
}

int notify_listen_fd(void) {
  int n = sd_listen_fds(1);
  if (n == 0) return -1;
  if (n < 0) {
    log_msg(LOG_ERROR, "socket activation: cannot read LISTEN_FDS (%d)", n);
    return -2;
  }
  if (n != 1) {
    log_msg(LOG_ERROR, "socket activation: %d sockets passed, classifyd takes exactly one", n);
    return -2;
  }
  if (sd_is_socket(SD_LISTEN_FDS_START, 0, SOCK_STREAM, 1) <= 0) {
    log_msg(LOG_ERROR, "socket activation: fd %d is not a listening stream socket",
            SD_LISTEN_FDS_START);
    return -2;
  }
  return SD_LISTEN_FDS_START;
}
