/*
 * pool.c — fixed team of worker threads running one data-parallel task at a time.
 *
 * Design: a task is published by bumping the generation counter `gen` (release)
 * after storing fn/arg. The n tids are claimed, not assigned: each tid has a slot
 * holding the generation that last claimed it. Every thread, the caller included,
 * first claims its own tid (the caller 0, worker i tid i), then any other still
 * unclaimed, runs each and counts it in `done`; the thread that completes the last
 * one wakes the caller. On a loaded machine a worker may wake milliseconds late; the
 * caller then runs its tids too instead of waiting, so a forward pass never stalls on
 * a descheduled worker (each tid still runs exactly once, on one thread, so kernels
 * keep their static splits and per-tid scratch). Own tid first keeps a tid on one
 * thread from task to task, so the static splits and kern_claim.h's home ranges read
 * back on one core what that core wrote in the layer before. With one shared counter
 * tids went in arrival order: with two threads the caller nearly always took tid 0,
 * but a worker that won the race swapped them, and with more threads the order was
 * arbitrary. A slot is claimed only from an older generation to g by compare-and-swap,
 * so a worker that woke for an old task can never claim a tid of a newer one.
 *
 * Waiting: a worker first polls `gen` for a short, bounded time (pool__spin: POOL_SPIN
 * pause iterations, ~50 us, then POOL_YIELD_SPIN more with a sched_yield every
 * POOL_YIELD_EVERY, ~1.5 ms in all when nothing else wants the CPU) because inside a
 * forward pass the next task follows within microseconds and a futex wake-up costs
 * about as much as a small kernel; after that it sleeps on the `wake` condition
 * variable, so an idle pool burns no CPU. The caller waits for `done` the same way.
 * `sleepers` is read and written under `mu`, and so are the gen bump and the
 * all-done signal, so no wake-up can be lost.
 * Why the yielding stretch: under KVM a thread that sleeps halts its vCPU, and the
 * host may give the core away; a thread that waits more than ~50 us for the other
 * one (which the host has descheduled for a while, or which holds the last chunk of
 * a layer) then also pays the wake-up when the work arrives. Session 18 (Zen 3, 2
 * vCPUs), forwards alternating one by one in one process with the wait at ~50 us of
 * pause only / ~1.5 ms with yields: ResNet-50 batch 1 p50 48.28 / 46.65 ms (p90 58.09
 * / 54.67), batch 8 376.3 / 373.1, GoogLeNet batch 1 17.23 / 16.57; 1 ms of pause
 * alone did as well at batch 1 (46.72), 250 us half as much, 12 us lost (47.23).
 * The yields keep the stretch from starving other runnable threads on the CPU (the
 * daemon's decoders, or more pool threads than CPUs).
 *
 * Speed weights (pool.h, pool_split_weighted): each tid's run is timed (two clock reads
 * per tid and task) and noted as run on its own thread or not; after a task of
 * weighted row shares the caller's pool_balance_learn turns those times into items
 * per second and moves each tid's weight an eighth of the way toward its speed
 * relative to the mean (runs shorter than 50 us, of fewer than 4 items, or that another
 * thread took over are not learned from). Weights start equal, when pool_split's shares
 * are used exactly, and stay within [0.5, 1.5] (mean 1). Session 14, ResNet-50 on 2
 * threads, forwards alternating one by one with and without the weights in one process:
 * batch 1 p50 46.3 / 47.2 ms, 45.5 / 45.6, 44.4 / 44.1 (mean 44.9 / 45.1), batch 8
 * 341.7 / 347.7, GoogLeNet 14.8 / 15.1; the weights stayed within 0.91-1.09 there.
 *
 * Ownership: pool_create allocates; pool_destroy joins the workers and frees.
 * A pool is driven by one thread at a time (not reentrant).
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "cnn.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
#else
#define POOL_PAUSE() ((void)0)
#endif

enum {
  POOL_SPIN = 2000,        /* pause iterations first: ~50 us on Zen 3 (25 ns each) */
  POOL_YIELD_SPIN = 40000, /* then this many more, */
  POOL_YIELD_EVERY = 64    /* every 64th a sched_yield (0.6 us when nothing else runs) */
};

typedef struct {
  _Alignas(64) atomic_uint gen; /* generation that claimed this tid; own cache line */
  double t0, t1;                /* its last run, seconds (pool_balance_learn) */
  int home;                     /* that run was on the tid's own thread */
} pool_slot_t;

struct pool;
typedef struct {
  struct pool *pool;
  int tid;
} pool_worker_t;

struct pool {
  int n;
  pthread_t *threads;
  pool_worker_t *workers;
  pthread_mutex_t mu;
  pthread_cond_t wake; /* workers: a new generation or quit */
  pthread_cond_t done_cv; /* caller: all tids done */
  int sleepers;        /* workers blocked on `wake`; under mu */
  int waiting;         /* caller blocked on `done`; under mu */
  pool_task_cb fn;
  void *arg;
  atomic_uint gen;
  pool_slot_t *slots;  /* one per tid */
  float *weight;       /* one per tid, mean 1: pool_split_weighted; caller-only writes */
  atomic_int done;     /* tids finished in this generation */
  double idle;         /* thread-seconds idle inside tasks (pool_idle_seconds); caller-only */
  atomic_int quit;
};

static int pool__gen_moved(struct pool *p, unsigned seen) {
  return atomic_load_explicit(&p->gen, memory_order_acquire) != seen;
}
static int pool__all_done(struct pool *p, unsigned unused) {
  (void)unused;
  return atomic_load_explicit(&p->done, memory_order_acquire) == p->n;
}

void pool_relax(unsigned step) {
  if (step % POOL_YIELD_EVERY == 0) sched_yield();
  else POOL_PAUSE();
}

/* Polls ready(p, arg) until it holds (returns 1) or the spin budget is spent (0). */
static inline __attribute__((always_inline)) int
pool__spin(struct pool *p, int (*ready)(struct pool *, unsigned), unsigned arg) {
  for (int i = 0; i < POOL_SPIN + POOL_YIELD_SPIN; i++) {
    if (ready(p, arg)) return 1;
    if (i < POOL_SPIN) POOL_PAUSE();
    else pool_relax((unsigned)(i - POOL_SPIN + 1));
  }
  return 0;
}

/* Spin a while, then sleep until gen != seen. Returns the new generation. */
static unsigned pool__await_gen(struct pool *p, unsigned seen) {
  if (pool__spin(p, pool__gen_moved, seen)) return atomic_load_explicit(&p->gen, memory_order_acquire);
  pthread_mutex_lock(&p->mu);
  p->sleepers++;
  while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen)
    pthread_cond_wait(&p->wake, &p->mu);
  p->sleepers--;
  pthread_mutex_unlock(&p->mu);
  return atomic_load_explicit(&p->gen, memory_order_acquire);
}

static double pool__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Claims tid t for generation g: only from an older generation, so a claim for a
 * task that has already finished (and perhaps been followed by another) fails. */
static int pool__claim(struct pool *p, int t, unsigned g) {
  atomic_uint *s = &p->slots[t].gen;
  unsigned v = atomic_load_explicit(s, memory_order_acquire);
  while ((int)(g - v) > 0)
    if (atomic_compare_exchange_weak_explicit(s, &v, g, memory_order_acq_rel,
                                              memory_order_acquire))
      return 1;
  return 0;
}

/* Claims and runs tids of generation g, its own (`home`) first, then the others in
 * order after it; returns 1 if this thread finished the last one. */
static int pool__work(struct pool *p, unsigned g, int home) {
  int last = 0;
  for (int i = 0; i < p->n; i++) {
    int t = (home + i) % p->n;
    if (!pool__claim(p, t, g)) continue;
    pool_slot_t *sl = &p->slots[t];
    sl->home = t == home;
    sl->t0 = pool__now();
    p->fn(p->arg, t, p->n);
    sl->t1 = pool__now();
    last = atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) == p->n - 1;
  }
  return last;
}

static void *pool__worker_main(void *argp) {
  pool_worker_t *w = argp;
  struct pool *p = w->pool;
  unsigned seen = 0;
  for (;;) {
    seen = pool__await_gen(p, seen);
    if (atomic_load_explicit(&p->quit, memory_order_acquire)) break;
    if (pool__work(p, seen, w->tid)) {
      pthread_mutex_lock(&p->mu);
      if (p->waiting) pthread_cond_signal(&p->done_cv);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

/* Bump the generation under the lock so a worker about to sleep cannot miss it;
 * every tid's slot is then older than it, so claimable. Returns the generation. */
static unsigned pool__publish(struct pool *p) {
  pthread_mutex_lock(&p->mu);
  unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
  if (p->sleepers) pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  return g;
}

static void pool__stop(struct pool *p, int started) {
  atomic_store_explicit(&p->quit, 1, memory_order_release);
  pool__publish(p);
  for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p->workers);
  free(p->slots);
  free(p->weight);
  free(p);
}

int pool_create(int nthreads, pool_t **out) {
  *out = NULL;
  if (nthreads < 1) return CNN_EINVAL;
  struct pool *p = calloc(1, sizeof *p);
  if (!p) return CNN_ENOMEM;
  p->n = nthreads;
  p->threads = calloc((size_t)nthreads, sizeof *p->threads);
  p->workers = calloc((size_t)nthreads, sizeof *p->workers);
  p->slots = aligned_alloc(64, (size_t)nthreads * sizeof *p->slots);
  p->weight = malloc((size_t)nthreads * sizeof *p->weight);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  atomic_init(&p->gen, 0);
  for (int i = 0; p->slots && i < nthreads; i++) {
    atomic_init(&p->slots[i].gen, 0);
    p->slots[i].t0 = p->slots[i].t1 = 0.0;
    p->slots[i].home = 0;
  }
  for (int i = 0; p->weight && i < nthreads; i++) p->weight[i] = 1.0f;
  atomic_init(&p->done, 0);
  atomic_init(&p->quit, 0);
  if (!p->threads || !p->workers || !p->slots || !p->weight) {
    pool__stop(p, 0);
    return CNN_ENOMEM;
  }
  for (int i = 1; i < nthreads; i++) {
    p->workers[i - 1] = (pool_worker_t){p, i};
    if (pthread_create(&p->threads[i - 1], NULL, pool__worker_main, &p->workers[i - 1])) {
      pool__stop(p, i - 1);
      return CNN_ENOMEM;
    }
  }
  *out = p;
  return 0;
}

void pool_destroy(pool_t *p) {
  if (p) pool__stop(p, p->n - 1);
}

int pool_threads(const pool_t *p) { return p ? p->n : 1; }

static void pool__await_done(struct pool *p) {
  if (pool__spin(p, pool__all_done, 0)) return;
  pthread_mutex_lock(&p->mu);
  p->waiting = 1;
  while (atomic_load_explicit(&p->done, memory_order_acquire) != p->n)
    pthread_cond_wait(&p->done_cv, &p->mu);
  p->waiting = 0;
  pthread_mutex_unlock(&p->mu);
}

void pool_run(pool_t *p, pool_task_cb fn, void *arg) {
  if (!p || p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  unsigned g = pool__publish(p);
  pool__work(p, g, 0);
  pool__await_done(p);
  double first = p->slots[0].t0, last = p->slots[0].t1, busy = 0.0;
  for (int t = 0; t < p->n; t++) {
    const pool_slot_t *sl = &p->slots[t];
    first = sl->t0 < first ? sl->t0 : first;
    last = sl->t1 > last ? sl->t1 : last;
    busy += sl->t1 - sl->t0;
  }
  p->idle += p->n * (last - first) - busy;
}

double pool_idle_seconds(const pool_t *p) { return p ? p->idle : 0.0; }

/* ---- speed-weighted splits (pool.h) ------------------------------------------------- */

enum { POOL_LEARN_MIN_ITEMS = 4 }; /* fewer items per tid: too coarse to learn from */
#define POOL_LEARN_MIN_SECONDS 50e-6 /* shorter runs: timer and wake-up noise */
#define POOL_LEARN_RATE 0.125f       /* weight <- weight + rate * (speed - weight) */

void pool_split_weighted(const pool_t *p, size_t total, int tid, size_t *begin, size_t *end) {
  if (!p || p->n == 1) {
    pool_split(total, tid, p ? p->n : 1, begin, end);
    return;
  }
  double sum = 0.0, before = 0.0;
  int equal = 1;
  for (int t = 0; t < p->n; t++) {
    if (t < tid) before += p->weight[t];
    sum += p->weight[t];
    equal &= p->weight[t] == p->weight[0];
  }
  if (equal) { /* exactly pool_split's shares (the first tids take the remainder) */
    pool_split(total, tid, p->n, begin, end);
    return;
  }
  /* cut points rounded from the weights' prefix sums: consecutive tids share them, so
   * the shares cover [0, total) exactly once */
  *begin = (size_t)((double)total * before / sum + 0.5);
  *end = tid == p->n - 1 ? total : (size_t)((double)total * (before + p->weight[tid]) / sum + 0.5);
  if (*end < *begin) *end = *begin;
}

size_t pool_split_max(size_t total, int n) {
  if (n <= 1) return total;
  /* the heaviest tid holds at most MAX / (MAX + (n - 1) MIN) of the weight, plus one
   * item of rounding */
  double f = POOL_WEIGHT_MAX / (POOL_WEIGHT_MAX + (double)(n - 1) * POOL_WEIGHT_MIN);
  size_t m = (size_t)((double)total * f) + 1;
  return m < total ? m : total;
}

int pool_weights_learn(float *weight, int n, const size_t *items, const double *seconds) {
  double speed[POOL_LEARN_MAX], mean = 0.0;
  if (n < 2 || n > POOL_LEARN_MAX) return 0;
  for (int t = 0; t < n; t++) {
    /* only runs long enough to time, of enough items */
    if (seconds[t] < POOL_LEARN_MIN_SECONDS || items[t] < POOL_LEARN_MIN_ITEMS) return 0;
    speed[t] = (double)items[t] / seconds[t];
    mean += speed[t];
  }
  mean /= n;
  double wsum = 0.0;
  for (int t = 0; t < n; t++) {
    weight[t] += POOL_LEARN_RATE * ((float)(speed[t] / mean) - weight[t]);
    wsum += weight[t];
  }
  /* mean 1 again, then within the bounds pool_split_max counts on */
  for (int t = 0; t < n; t++) {
    float w = (float)(weight[t] * n / wsum);
    weight[t] = w < POOL_WEIGHT_MIN ? POOL_WEIGHT_MIN : w > POOL_WEIGHT_MAX ? POOL_WEIGHT_MAX : w;
  }
  return 1;
}

void pool_balance_learn(pool_t *p, size_t total) {
  if (!p || p->n == 1 || p->n > POOL_LEARN_MAX) return;
  size_t items[POOL_LEARN_MAX];
  double seconds[POOL_LEARN_MAX];
  for (int t = 0; t < p->n; t++) {
    const pool_slot_t *sl = &p->slots[t];
    size_t b, e;
    if (!sl->home) return; /* another thread ran it: no speed of its own thread */
    pool_split_weighted(p, total, t, &b, &e);
    items[t] = e - b;
    seconds[t] = sl->t1 - sl->t0;
  }
  pool_weights_learn(p->weight, p->n, items, seconds);
}
