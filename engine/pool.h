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

/* The share [*begin, *end) of `total` items that thread tid of n handles. */
static inline void pool_split(size_t total, int tid, int n, size_t *begin, size_t *end) {
  size_t q = total / (size_t)n, r = total % (size_t)n, t = (size_t)tid;
  *begin = t * q + (t < r ? t : r);
  *end = *begin + q + (t < r ? 1 : 0);
}

#endif
