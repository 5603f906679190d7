/*
 * memtrim.h — hand the allocator's free memory back to the kernel while the
 * daemon is idle.
 *
 * A timer on the loop checks every MEMTRIM_PERIOD_MS; when no request is in
 * flight and requests were started since the last trim, it runs malloc_trim(0)
 * on the libuv pool (never on the loop thread). memtrim_start/memtrim_close:
 * the caller owns the storage, which must outlive the close callback (the
 * loop's last run).
 */
#ifndef CLASSIFYD_MEMTRIM_H
#define CLASSIFYD_MEMTRIM_H

#include <stdatomic.h>
#include <uv.h>

#define MEMTRIM_PERIOD_MS 5000

typedef struct {
  uv_timer_t timer;
  uv_work_t work;
  atomic_long *in_flight;     /* requests being handled (app.h) */
  atomic_ulong *started;      /* requests started so far (app.h) */
  unsigned long trimmed_at;   /* `started` when the last trim was queued */
  int busy;                   /* a trim is queued or running */
  int closing;
} memtrim_t;

#include <malloc.h>

/* malloc_trim(0), except under AddressSanitizer: its allocator replaces glibc's, so
 * glibc's arenas are still uninitialized when malloc_trim first runs, and two threads
 * making that first call at once race (glibc marks malloc initialized before it sets
 * up the bins, and the other thread walks zeroed bins: a read at address 8 in mtrim,
 * seen once in the unit suite's modelset::concurrent_readers_and_swaps under ASan).
 * Under ASan there is nothing of glibc's to trim anyway. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMTRIM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MEMTRIM_ASAN 1
#endif
static inline void memtrim_release(void) {
#if !defined(MEMTRIM_ASAN)
  malloc_trim(0);
#endif
}

/* 0 or a negative libuv error. */
int memtrim_start(memtrim_t *m, uv_loop_t *loop, atomic_long *in_flight, atomic_ulong *started);
void memtrim_close(memtrim_t *m);

#endif
