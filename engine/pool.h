/*
 * pool.h — a fixed team of threads that runs one data-parallel task at a time.
 *
 * pool_run(p, fn, arg) calls fn(arg, tid, n) once for every tid in [0, n) and
 * returns when all have finished. Tids are claimed by whichever thread is free (the
 * caller included), so a tid says which share of the work and which scratch to use,
 * not which thread runs it; no two threads ever run the same tid at once. Workers
 * wait on a condition variable between tasks (no spinning that would steal a core
 * from another context). A pool belongs to one inference context and is used by
 * one thread at a time; it is not reentrant.
 */
#ifndef CNN_POOL_H
#define CNN_POOL_H

#include <stddef.h>

typedef struct pool pool_t;
typedef void (*pool_task_cb)(void *arg, int tid, int nthreads);

/* nthreads >= 1; starts nthreads-1 workers. Returns 0 or CNN_ENOMEM. */
int pool_create(int nthreads, pool_t **out);
void pool_destroy(pool_t *p); /* joins the workers; NULL is a no-op */
int pool_threads(const pool_t *p);
void pool_run(pool_t *p, pool_task_cb fn, void *arg);

/* Static splits weighted by the threads' speeds. A vCPU of a shared host may run
 * slower than its sibling for seconds at a time (another guest on its core: the
 * engine's sgemm measured 20% slower on one of two vCPUs while an FMA loop ran at full
 * speed on both), and an equal static split then waits for the slow one every layer.
 * pool_split_weighted cuts `total` items in proportion to per-tid weights (mean 1,
 * each within [POOL_WEIGHT_MIN, POOL_WEIGHT_MAX]); pool_balance_learn, called by the
 * thread that ran pool_run after a task split that way, moves the weights toward the
 * speeds the tids showed (items per second of their run, each on its own thread).
 * Both read the weights only between tasks, so every tid of a task sees the same split.
 * pool_split_max is the most items any tid can be given, for sizing scratch. */
#define POOL_WEIGHT_MIN 0.5f
#define POOL_WEIGHT_MAX 1.5f
void pool_split_weighted(const pool_t *p, size_t total, int tid, size_t *begin, size_t *end);
void pool_balance_learn(pool_t *p, size_t total);
/* The rule pool_balance_learn applies, on its own: n tids (2 <= n <= POOL_LEARN_MAX) ran
 * items[t] items in seconds[t]; each weight moves toward its speed over the mean speed,
 * then all are scaled to mean 1 and clamped. Returns 0, changing nothing, when a run was
 * too short to time or had too few items. */
enum { POOL_LEARN_MAX = 64 };
int pool_weights_learn(float *weight, int n, const size_t *items, const double *seconds);
size_t pool_split_max(size_t total, int n);

/* The team's idle time since pool_create, in thread-seconds: per task, from its first
 * tid's start to its last one's end, the time each thread was not running a tid (waiting
 * for the others at the end, or woken late), from the run times the pool takes anyway.
 * 0 for a one-thread pool. ctx.c's profiler reports it per node. Read by the thread that
 * drives the pool. */
double pool_idle_seconds(const pool_t *p);

/* One step of a busy wait: a CPU pause, or on every 64th step a sched_yield, so that
 * other runnable threads still get the CPU. For waits that
 * may last milliseconds but should not halt the vCPU (pool.c's waits, ctx.c's stages). */
void pool_relax(unsigned step);

/* The share [*begin, *end) of `total` items that thread tid of n handles. */
static inline void pool_split(size_t total, int tid, int n, size_t *begin, size_t *end) {
  size_t q = total / (size_t)n, r = total % (size_t)n, t = (size_t)tid;
  *begin = t * q + (t < r ? t : r);
  *end = *begin + q + (t < r ? 1 : 0);
}

#endif
