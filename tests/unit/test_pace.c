/*
 * test_pace.c — the engine-speed estimate behind Retry-After and deadline-aware
 * admission (server/pace.c): the moving mean per image, the expected wait and
 * the Retry-After rounding and bounds. The unit binary links only libcnn.a, so
 * the source under test is compiled into this translation unit.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "../../server/pace.c"

#define MS 1000000ull

Test(pace, first_image_sets_the_mean_per_image) {
  pace_t p;
  pace_init(&p);
  cr_assert_eq(pace_image_ns(&p), 0);
  cr_assert_eq(pace_wait_ns(&p, 10), 0, "no batch seen: no wait predicted");
  pace_observe_image(&p, 80 * MS, 8); /* one image of a batch of 8 that took 80 ms */
  cr_assert_eq(pace_image_ns(&p), 10 * MS);
  pace_observe_image(&p, 80 * MS, 0); /* ignored */
  cr_assert_eq(pace_image_ns(&p), 10 * MS);
}

Test(pace, mean_moves_an_eighth_per_image_and_converges) {
  pace_t p;
  pace_init(&p);
  pace_observe_image(&p, 10 * MS, 1);
  pace_observe_image(&p, 90 * MS, 1);
  cr_assert_eq(pace_image_ns(&p), 20 * MS, "10 + (90 - 10) / 8");
  pace_observe_image(&p, 4 * MS, 1);
  cr_assert_eq(pace_image_ns(&p), 18 * MS, "20 - (20 - 4) / 8");
  for (int i = 0; i < 200; i++) pace_observe_image(&p, 40 * MS, 1);
  uint64_t m = pace_image_ns(&p);
  cr_assert(m > 39 * MS && m <= 40 * MS, "converged to 40 ms, got %llu ns",
            (unsigned long long)m);
}

Test(pace, wait_is_depth_times_the_mean) {
  pace_t p;
  pace_init(&p);
  pace_observe_image(&p, 25 * MS, 1);
  cr_assert_eq(pace_wait_ns(&p, 0), 0);
  cr_assert_eq(pace_wait_ns(&p, -3), 0);
  cr_assert_eq(pace_wait_ns(&p, 64), 1600 * MS);
}

Test(pace, retry_after_rounds_up_within_bounds) {
  cr_assert_eq(pace_retry_after_s(0), 1, "never 0: the client must wait a little");
  cr_assert_eq(pace_retry_after_s(1), 1);
  cr_assert_eq(pace_retry_after_s(1000 * MS), 1);
  cr_assert_eq(pace_retry_after_s(1000 * MS + 1), 2);
  cr_assert_eq(pace_retry_after_s(12800 * MS), 13);
  cr_assert_eq(pace_retry_after_s(3600000 * MS), PACE_RETRY_MAX_S);
  cr_assert_eq(pace_retry_after_s(UINT64_MAX), PACE_RETRY_MAX_S, "no overflow");
}

static void *observer(void *arg) {
  for (int i = 0; i < 20000; i++) pace_observe_image(arg, 16 * MS, 2);
  return NULL;
}

Test(pace, concurrent_observers_keep_a_consistent_mean) {
  pace_t p;
  pace_init(&p);
  pace_observe_image(&p, 100 * MS, 1);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&t[i], NULL, observer, &p), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  uint64_t m = pace_image_ns(&p);
  cr_assert(m >= 8 * MS && m < 8 * MS + 8, "every thread saw 8 ms per image, got %llu ns",
            (unsigned long long)m);
}
