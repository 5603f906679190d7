/* test_pool.c — the thread pool: every tid runs exactly once per run, for many runs
 * and 1..4 threads, across the spin and the sleep paths; destroy joins cleanly; the
 * idle time it counts. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

typedef struct {
  atomic_int hits[8];
  atomic_int bad_n;
  int expect_n;
} count_job_t;

static void count_task(void *arg, int tid, int n) {
  count_job_t *j = arg;
  if (n != j->expect_n || tid < 0 || tid >= n) atomic_fetch_add(&j->bad_n, 1);
  else atomic_fetch_add(&j->hits[tid], 1);
}

static void run_many(int threads, int runs, int pause_us) {
  pool_t *p;
  cr_assert_eq(pool_create(threads, &p), 0);
  cr_assert_eq(pool_threads(p), threads);
  count_job_t j;
  memset(&j, 0, sizeof j);
  j.expect_n = threads;
  for (int r = 0; r < runs; r++) {
    pool_run(p, count_task, &j);
    for (int t = 0; t < threads; t++) /* complete on return: each tid counted r+1 times */
      cr_assert_eq(atomic_load(&j.hits[t]), r + 1, "run %d tid %d", r, t);
    if (pause_us) usleep((useconds_t)pause_us);
  }
  cr_assert_eq(atomic_load(&j.bad_n), 0);
  pool_destroy(p);
}

Test(pool, every_tid_once_per_run_back_to_back, .timeout = 60) {
  for (int t = 1; t <= 4; t++) run_many(t, 2000, 0);
}

Test(pool, every_tid_once_per_run_with_sleeps, .timeout = 60) {
  /* pauses longer than the spin phase exercise the condition-variable path */
  for (int t = 1; t <= 4; t++) run_many(t, 30, 2000);
}

typedef struct {
  atomic_int sum;
} slow_job_t;

static void slow_task(void *arg, int tid, int n) {
  slow_job_t *j = arg;
  if (tid == n - 1) usleep(3000); /* the caller must wait for the slowest worker */
  atomic_fetch_add(&j->sum, tid + 1);
}

Test(pool, run_waits_for_slow_worker, .timeout = 60) {
  pool_t *p;
  cr_assert_eq(pool_create(3, &p), 0);
  for (int r = 0; r < 5; r++) {
    slow_job_t j = {0};
    pool_run(p, slow_task, &j);
    cr_assert_eq(atomic_load(&j.sum), 6);
  }
  pool_destroy(p);
}

/* pool_idle_seconds: while the last tid sleeps 3 ms the other two threads have nothing
 * to do: each run counts 3 x its span less the three runs, at least 2 x 3 ms less the
 * two quick tids' runs, so about 30 ms in 5 runs; the bound leaves 10 ms for quick tids
 * that a descheduled thread stretched. (Counting n - 1 threads x the span would give
 * 15.) It never exceeds the threads x the wall time, and a one-thread pool counts none. */
Test(pool, idle_time_counts_threads_waiting_inside_tasks, .timeout = 60) {
  pool_t *p;
  cr_assert_eq(pool_create(3, &p), 0);
  cr_assert_eq(pool_idle_seconds(p), 0.0);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int r = 0; r < 5; r++) {
    slow_job_t j = {0};
    pool_run(p, slow_task, &j);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double wall = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
  double idle = pool_idle_seconds(p);
  cr_assert(idle >= 0.020 && idle <= 3 * wall, "idle %g s over %g s of 5 runs", idle, wall);
  pool_destroy(p);
  cr_assert_eq(pool_create(1, &p), 0);
  slow_job_t j = {0};
  pool_run(p, slow_task, &j);
  cr_assert_eq(pool_idle_seconds(p), 0.0);
  pool_destroy(p);
}

Test(pool, create_destroy_cycles_and_bad_args, .timeout = 60) {
  for (int i = 0; i < 50; i++) {
    pool_t *p;
    cr_assert_eq(pool_create(1 + i % 4, &p), 0);
    pool_destroy(p); /* idle workers, some never ran a task: must join */
  }
  pool_t *p = (pool_t *)&p;
  cr_assert_lt(pool_create(0, &p), 0);
  cr_assert_null(p);
  pool_destroy(NULL);
}

Test(pool, split_covers_range, .timeout = 60) {
  for (size_t total = 0; total < 40; total++)
    for (int n = 1; n <= 5; n++) {
      size_t next = 0;
      for (int t = 0; t < n; t++) {
        size_t b, e;
        pool_split(total, t, n, &b, &e);
        cr_assert_eq(b, next);
        cr_assert(e >= b && e - b <= total / (size_t)n + 1);
        next = e;
      }
      cr_assert_eq(next, total);
    }
}

Test(pool, weighted_split_starts_equal_and_covers_range, .timeout = 60) {
  for (int n = 1; n <= 4; n++) {
    pool_t *p;
    cr_assert_eq(pool_create(n, &p), 0);
    for (size_t total = 0; total < 40; total++) {
      size_t next = 0;
      for (int t = 0; t < n; t++) {
        size_t b, e, qb, qe;
        pool_split_weighted(p, total, t, &b, &e);
        pool_split(total, t, n, &qb, &qe);
        cr_assert_eq(b, next);
        cr_assert_eq(e - b, qe - qb, "n %d total %zu tid %d: equal weights, equal shares", n,
                     total, t);
        next = e;
      }
      cr_assert_eq(next, total);
    }
    pool_destroy(p);
  }
  size_t b, e;
  pool_split_weighted(NULL, 7, 0, &b, &e); /* no pool: one thread takes everything */
  cr_assert(b == 0 && e == 7);
}

/* The learning rule alone: tid 0 runs items twice as fast as tid 1. Fed each round the
 * shares its weights gave, the split settles near 2:1 (43 of 64), never past the bounds
 * pool_split_max assumes; runs too short to time change nothing. */
Test(pool, weights_learn_settles_at_the_speed_ratio, .timeout = 60) {
  float w[2] = {1.0f, 1.0f};
  size_t total = 64;
  for (int r = 0; r < 60; r++) {
    size_t s0 = (size_t)((double)total * w[0] / (w[0] + w[1]) + 0.5);
    size_t items[2] = {s0, total - s0};
    double secs[2] = {items[0] * 10e-6, items[1] * 20e-6};
    cr_assert_eq(pool_weights_learn(w, 2, items, secs), 1);
    cr_assert(w[0] >= POOL_WEIGHT_MIN && w[0] <= POOL_WEIGHT_MAX && w[1] >= POOL_WEIGHT_MIN &&
              w[1] <= POOL_WEIGHT_MAX);
  }
  double share = (double)total * w[0] / (w[0] + w[1]);
  cr_assert(share > 41.0 && share < 45.0, "tid 0's share %.1f of 64", share);
  cr_assert_leq((size_t)(share + 0.5), pool_split_max(total, 2));

  float before[2] = {w[0], w[1]};
  size_t items[2] = {32, 32};
  double quick[2] = {1e-6, 1e-6}; /* shorter than anything timeable */
  cr_assert_eq(pool_weights_learn(w, 2, items, quick), 0);
  cr_assert(w[0] == before[0] && w[1] == before[1]);

  float w4[4] = {1, 1, 1, 1}; /* a 10x slower tid is held at the lower bound */
  size_t it4[4] = {16, 16, 16, 16};
  double s4[4] = {1e-3, 1e-3, 1e-3, 1e-2};
  for (int r = 0; r < 100; r++) pool_weights_learn(w4, 4, it4, s4);
  cr_assert_float_eq(w4[3], POOL_WEIGHT_MIN, 1e-6);
}

/* On a real pool: after timed runs and learning, the weighted shares still cover the
 * range exactly once and no tid gets more than pool_split_max. */
typedef struct {
  pool_t *p;
  size_t total;
  atomic_int hits[64];
} weighted_job_t;

static void weighted_task(void *arg, int tid, int n) {
  (void)n;
  weighted_job_t *j = arg;
  size_t b, e;
  pool_split_weighted(j->p, j->total, tid, &b, &e);
  for (size_t i = b; i < e; i++) atomic_fetch_add(&j->hits[i], 1);
  for (volatile long spin = 0; spin < 20000L * (tid + 1) * (long)(e - b); spin++) {
  }
}

Test(pool, weighted_split_after_learning_covers_range, .timeout = 60) {
  for (int n = 2; n <= 3; n++) {
    pool_t *p;
    cr_assert_eq(pool_create(n, &p), 0);
    static weighted_job_t j;
    j.p = p, j.total = 64;
    for (int r = 0; r < 40; r++) {
      memset(j.hits, 0, sizeof j.hits);
      pool_run(p, weighted_task, &j);
      for (size_t i = 0; i < j.total; i++) cr_assert_eq(atomic_load(&j.hits[i]), 1);
      pool_balance_learn(p, j.total);
      for (int t = 0; t < n; t++) {
        size_t b, e;
        pool_split_weighted(p, j.total, t, &b, &e);
        cr_assert_leq(e - b, pool_split_max(j.total, n));
      }
    }
    pool_destroy(p);
  }
}

/* kern_claim.h: alone, a thread takes its home range front to back, then the other
 * ranges from their back ends; every chunk exactly once. */
#include "kern_claim.h"

Test(pool, claim_home_range_first_then_steals_from_the_back, .timeout = 60) {
  kern_claim_t c;
  kern_claim_init(&c, 10, 2); /* ranges [0,5) and [5,10) */
  size_t u, got[10], n = 0;
  while (kern_claim_next(&c, 1, &u)) {
    cr_assert_lt(n, 10);
    got[n++] = u;
  }
  size_t want[10] = {5, 6, 7, 8, 9, 4, 3, 2, 1, 0};
  cr_assert_eq(n, 10);
  for (size_t i = 0; i < 10; i++) cr_assert_eq(got[i], want[i], "claim %zu: %zu", i, got[i]);
  cr_assert_eq(kern_claim_next(&c, 0, &u), 0);
  kern_claim_init(&c, 0, 3);
  cr_assert_eq(kern_claim_next(&c, 2, &u), 0);
}

typedef struct {
  kern_claim_t c;
  atomic_int hits[1000];
  size_t chunks;
} claim_job_t;

static void claim_task(void *arg, int tid, int n) {
  (void)n;
  claim_job_t *j = arg;
  for (size_t u; kern_claim_next(&j->c, tid, &u);) {
    if (u < j->chunks) atomic_fetch_add(&j->hits[u], 1);
    if (tid == 0) usleep(20); /* the others run out first and steal from tid 0's range */
  }
}

Test(pool, claim_every_chunk_once_across_threads, .timeout = 60) {
  static claim_job_t j;
  for (int threads = 1; threads <= 4; threads++)
    for (size_t chunks = 0; chunks <= 1000; chunks += 333) {
      pool_t *p;
      cr_assert_eq(pool_create(threads, &p), 0);
      memset(j.hits, 0, sizeof j.hits);
      j.chunks = chunks;
      kern_claim_init(&j.c, chunks, threads);
      pool_run(p, claim_task, &j);
      for (size_t u = 0; u < 1000; u++)
        cr_assert_eq(atomic_load(&j.hits[u]), u < chunks ? 1 : 0, "threads %d chunk %zu", threads,
                     u);
      pool_destroy(p);
    }
}

/* kern_rows.h: the pieces of the threads' shares cover every (row, image) exactly once,
 * whoever takes them; a share of at least 512 rows, or of 3 images or more, has its two
 * tails; a thread that takes another share's piece marks the task as not to be learned
 * from. */
#include "kern_rows.h"

/* Claims all pieces, the threads taking turns (only_tid < 0) or thread only_tid alone. */
static void rows_cover(const kern_ctx_t *kc, int rows, int align, int images, int only_tid) {
  kern_rows_t s;
  kern_rows_init(&s, kc, rows, align, images, 1);
  static int hits[8][4096];
  memset(hits, 0, sizeof hits);
  int nt = kern_threads(kc), pieces = 0, it[4] = {0}, live = nt;
  while (live > 0) {
    live = 0;
    for (int t = 0; t < nt; t++) {
      int tid = only_tid >= 0 ? only_tid : t;
      kern_piece_t pc;
      if (!kern_rows_next(&s, kc, tid, &it[tid], &pc)) continue;
      cr_assert(pc.r0 < pc.r1 && pc.r0 % align == 0 && pc.r1 <= rows && pc.i0 >= 0 &&
                    pc.i0 < pc.i1 && pc.i1 <= images,
                "piece [%d, %d) x [%d, %d)", pc.r0, pc.r1, pc.i0, pc.i1);
      for (int i = pc.i0; i < pc.i1; i++)
        for (int r = pc.r0; r < pc.r1; r++) hits[i][r]++;
      pieces++, live++;
    }
  }
  for (int i = 0; i < images; i++)
    for (int r = 0; r < rows; r++)
      cr_assert_eq(hits[i][r], 1, "rows %d images %d: row %d image %d", rows, images, r, i);
  int r0, r1, share = kern_row_share(kc, rows, align, 0, &r0, &r1) ? r1 - r0 : 0;
  if (nt > 1 && (share >= 512 || (share > 0 && images >= 3))) /* tid 0's share cut */
    cr_assert_geq(pieces, 3, "rows %d images %d: %d pieces", rows, images, pieces);
  if (nt == 1) cr_assert_eq(pieces, 1, "rows %d images %d: one thread, one piece", rows, images);
  if (only_tid >= 0) cr_assert_eq(atomic_load(&s.moved), share < rows, "rows %d", rows);
  if (only_tid < 0 && rows % (nt * align) == 0) cr_assert_eq(atomic_load(&s.moved), 0, "rows %d", rows);
}

Test(pool, row_pieces_cover_rows_once, .timeout = 60) {
  for (int threads = 1; threads <= 3; threads++) {
    pool_t *p;
    cr_assert_eq(pool_create(threads, &p), 0);
    kern_ctx_t kc = {.pool = p};
    int sizes[] = {16, 64, 256, 1000, 1024, 2048, 4000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
      for (int images = 1; images <= 8; images += images < 3 ? 1 : 5) {
        rows_cover(&kc, sizes[i], 16, images, -1);
        rows_cover(&kc, sizes[i], 16, images, 0);
      }
    pool_destroy(p);
  }
}
