/*
 * memtrim.c — malloc_trim(0) once the daemon is idle after work (memtrim.h).
 *
 * Why: request bodies (those up to 8 MB: under the 16 MiB mmap threshold daemon.c sets),
 * multipart copies and decoder state are malloc'd on whichever MHD or libuv
 * thread handles them, i.e. in glibc's per-thread arenas, and free() returns
 * to the kernel only the top of each arena. After a burst the freed blocks
 * stay resident, so RSS after the load depended on how the burst was
 * interleaved. malloc_trim(0) releases every free page of every arena. It
 * holds each arena's lock while it walks it (milliseconds for a few hundred
 * MiB), so it runs only when nothing is in flight, at most once per period and
 * only if requests came since the last one, and on the libuv pool: the loop
 * thread only moves jobs.
 */
#include "memtrim.h"

static void trim_work(uv_work_t *w) {
  (void)w;
  memtrim_release();
}

static void trim_after(uv_work_t *w, int status) {
  (void)status;
  memtrim_t *m = w->data;
  m->busy = 0;
}

static void tick(uv_timer_t *t) {
  memtrim_t *m = t->data;
  unsigned long started = atomic_load(m->started);
  if (m->busy || m->closing || started == m->trimmed_at || atomic_load(m->in_flight) > 0) return;
  m->work.data = m;
  if (uv_queue_work(t->loop, &m->work, trim_work, trim_after) == 0) {
    m->busy = 1;
    m->trimmed_at = started;
  }
}

int memtrim_start(memtrim_t *m, uv_loop_t *loop, atomic_long *in_flight, atomic_ulong *started) {
  m->in_flight = in_flight;
  m->started = started;
  m->trimmed_at = atomic_load(started);
  m->busy = m->closing = 0;
  int rc = uv_timer_init(loop, &m->timer);
  if (rc < 0) return rc;
  m->timer.data = m;
  return uv_timer_start(&m->timer, tick, MEMTRIM_PERIOD_MS, MEMTRIM_PERIOD_MS);
}

void memtrim_close(memtrim_t *m) {
  m->closing = 1;
  uv_timer_stop(&m->timer);
  uv_close((uv_handle_t *)&m->timer, NULL);
}
