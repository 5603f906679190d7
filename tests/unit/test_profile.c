/*
 * test_profile.c — the engine's per-node profiler (cnn_ctx_set_profiling,
 * cnn_ctx_profile_print): it counts the forwards, every profiled node's median is at
 * least its fastest time, the per-op and per-node lines add up to the header's sums,
 * printing clears the counters, and turning it off prints nothing. Uses the ResNet-18
 * test model (CNN_TEST_MODELS).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "ref.h"

/* The profile of `runs` forwards as printed, every node listed (malloc'd). */
__attribute__((noinline)) static char *profile_text(cnn_ctx_t *c, const float *x, float *y,
                                                    int runs) {
  cnn_error_t err;
  for (int i = 0; i < runs; i++) cr_assert_eq(cnn_forward(c, x, 1, y, &err), 0, "%s", err.msg);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  cr_assert(f);
  cnn_ctx_profile_print(c, f, 100000);
  fclose(f);
  return buf;
}

Test(profile, medians_and_sums) {
  cnn_model_t *m = ref_load_test_model("resnet18.onnx");
  const cnn_model_info_t *info = cnn_model_info(m);
  size_t in = (size_t)info->in_c * info->in_h * info->in_w;
  float *x = calloc(in, sizeof *x), *y = malloc((size_t)info->num_classes * sizeof *y);
  cr_assert(x && y);
  for (size_t i = 0; i < in; i++) x[i] = (float)(i % 97) / 97.0f - 0.5f;
  cnn_ctx_t *c = NULL;
  cnn_error_t err;
  cr_assert_eq(cnn_ctx_create(m, 1, 2, &c, &err), 0, "%s", err.msg);

  char *off = profile_text(c, x, y, 1);
  cr_assert_str_empty(off, "profiling off printed: %s", off);
  free(off);

  cr_assert_eq(cnn_ctx_set_profiling(c, 1), 0);
  char *text = profile_text(c, x, y, 5);
  long runs = 0, kept = 0;
  double fastest = 0, median = 0, fwd_fastest = 0, fwd_median = 0;
  cr_assert_eq(sscanf(text,
                      "profile: each node's fastest of %ld forwards and median of %ld, %lf and "
                      "%lf ms in all; the forwards' node sums: fastest %lf, median %lf ms",
                      &runs, &kept, &fastest, &median, &fwd_fastest, &fwd_median),
               6, "header: %.200s", text);
  cr_assert(runs == 5 && kept == 5, "%ld forwards, %ld kept", runs, kept);
  /* no forward's node sum is below the sum of the node minima, and the median forward
   * is not faster than the fastest */
  cr_assert(fwd_fastest >= fastest - 0.001 && fwd_median >= fwd_fastest,
            "forwards %g and %g, node minima %g", fwd_fastest, fwd_median, fastest);
  /* nanosecond clocks: some node always varies over 5 forwards, so the median sum
   * exceeds the fastest (a median that were the minimum would not) */
  cr_assert(fastest > 0 && median > fastest, "sums %g and %g", fastest, median);
  double op_min = 0, op_med = 0, node_min = 0, node_med = 0;
  int nodes = 0, convs = 0, idle_lines = 0;
  char *rest = strchr(text, '\n');
  cr_assert(rest, "one line only: %s", text);
  for (char *save, *line = strtok_r(rest, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char name[64];
    double a, pct, b;
    int nt = 0;
    if (sscanf(line, " idle threads %lf ms a forward, %lf%% of %d threads", &a, &pct, &nt) == 3) {
      /* some node always waits a little; inside a task one of two threads idles at
       * most while the other runs, so at most half the threads' time: 50% of the median
       * forward, with room for the mean of 5 forwards to stray above that one */
      idle_lines++;
      cr_assert(nt == 2 && a > 0 && pct > 0 && pct < 75.0, "%s", line);
      cr_assert(strstr(line, " most at /"), "no node named: %s", line);
    } else if (sscanf(line, " %63s %lf ms %lf%% median %lf ms", name, &a, &pct, &b) == 4) {
      op_min += a, op_med += b;
      cr_assert(b >= a, "op %s: median %g below fastest %g", name, b, a);
    } else if (sscanf(line, " %lf ms %lf %63s", &a, &b, name) == 3) {
      nodes++, convs += !strcmp(name, "Conv");
      node_min += a, node_med += b;
      cr_assert(b >= a, "%s: median %g below fastest %g", line, b, a);
    } else {
      cr_assert_fail("unexpected line: %s", line);
    }
  }
  cr_assert(convs >= 20 && nodes > convs, "%d nodes listed, %d convs", nodes, convs);
  cr_assert(idle_lines == 1, "%d lines of idle time", idle_lines);
  double tol = 0.0005 * (nodes + 2); /* every figure printed to 0.001 ms */
  cr_assert(fabs(op_min - fastest) < tol && fabs(node_min - fastest) < tol,
            "fastest: header %g, ops %g, nodes %g", fastest, op_min, node_min);
  cr_assert(fabs(op_med - median) < tol && fabs(node_med - median) < tol,
            "median: header %g, ops %g, nodes %g", median, op_med, node_med);
  free(text);

  char *again = profile_text(c, x, y, 0); /* cleared by the print */
  cr_assert_str_empty(again, "counters not cleared: %.200s", again);
  free(again);
  char *three = profile_text(c, x, y, 3);
  cr_assert(strstr(three, "fastest of 3 forwards and median of 3,"), "%.200s", three);
  free(three);

  cr_assert_eq(cnn_ctx_set_profiling(c, 0), 0);
  char *none = profile_text(c, x, y, 1);
  cr_assert_str_empty(none, "profiling off printed: %s", none);
  free(none);
  cnn_ctx_destroy(c);
  free(x), free(y);
  cnn_model_destroy(m);
}
