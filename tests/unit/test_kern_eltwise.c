/* test_kern_eltwise.c — relu, broadcast add/mul, scale-shift, LRN and softmax
 * against the references. Tolerances: add/mul/relu/scale-shift are one or two
 * float ops (1e-6 relative to |ref|, plus 1e-7); LRN and softmax go through
 * sqrt/pow/exp whose float32 results are within a few ulps, so 1e-5 relative. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

Test(kern_eltwise, relu_in_and_out_of_place) {
  ref_rng_t rng = {1};
  for (size_t count = 0; count < 200; count += 37)
    for (int thr = 1; thr <= 3; thr++) {
      float *x = ref_random(&rng, count, -1, 1), *y = malloc((count + 1) * sizeof *y);
      ref_kctx_t t;
      ref_kctx_init(&t, thr, 0);
      kern_relu(&t.kc, x, y, count);
      for (size_t i = 0; i < count; i++) cr_assert_eq(y[i], x[i] > 0 ? x[i] : 0.0f);
      kern_relu(&t.kc, x, x, count);
      cr_assert_eq(memcmp(x, y, count * sizeof *x), 0);
      ref_kctx_deinit(&t);
      free(x), free(y);
    }
}

typedef struct {
  int ndim;
  int64_t a[4], b[4], o[4];
} bcast_case_t;

static size_t numel(const int64_t *s, int nd) {
  size_t n = 1;
  for (int i = 0; i < nd; i++) n *= (size_t)s[i];
  return n;
}

Test(kern_eltwise, binary_broadcast_patterns) {
  static const bcast_case_t cases[] = {
      {4, {2, 3, 5, 7}, {2, 3, 5, 7}, {2, 3, 5, 7}}, /* same shape */
      {4, {2, 6, 5, 7}, {1, 6, 1, 1}, {2, 6, 5, 7}}, /* per-channel */
      {4, {1, 6, 1, 1}, {2, 6, 5, 7}, {2, 6, 5, 7}}, /* per-channel on the left */
      {4, {2, 3, 4, 5}, {1, 1, 1, 1}, {2, 3, 4, 5}}, /* scalar */
      {4, {3, 1, 4, 5}, {1, 1, 1, 1}, {3, 1, 4, 5}}, /* [N,1,H,W] x scalar */
      {4, {1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}}, /* scalar x scalar */
      {3, {4, 1, 5}, {1, 3, 1}, {4, 3, 5}},          /* outer product */
      {2, {1, 9}, {7, 1}, {7, 9}},                   /* row x column */
      {4, {2, 3, 1, 7}, {2, 1, 5, 1}, {2, 3, 5, 7}}, /* interleaved */
      {2, {1, 1000}, {1, 1000}, {1, 1000}},          /* logits + bias */
      {1, {1}, {300}, {300}},
  };
  ref_rng_t rng = {2};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int op = 0; op < 2; op++)
      for (int thr = 1; thr <= 3; thr++) {
        const bcast_case_t *c = &cases[i];
        size_t no = numel(c->o, c->ndim);
        float *a = ref_random(&rng, numel(c->a, c->ndim), -2, 2);
        float *b = ref_random(&rng, numel(c->b, c->ndim), -2, 2);
        float *out = malloc(no * sizeof *out);
        double *want = malloc(no * sizeof *want);
        ref_kctx_t t;
        ref_kctx_init(&t, thr, 0);
        kern_binop_t bop = op ? KERN_MUL : KERN_ADD;
        kern_binary(&t.kc, bop, a, c->a, b, c->b, out, c->o, c->ndim);
        ref_binary(bop, a, c->a, b, c->b, c->o, c->ndim, want);
        cr_assert_eq(ref_mismatch(out, want, NULL, no, 1e-6, 1e-7), -1, "case %zu op %d", i, op);
        if (numel(c->a, c->ndim) == no) { /* out aliasing a */
          kern_binary(&t.kc, bop, a, c->a, b, c->b, a, c->o, c->ndim);
          cr_assert_eq(memcmp(a, out, no * sizeof *a), 0, "in-place case %zu", i);
        }
        ref_kctx_deinit(&t);
        free(a), free(b), free(out), free(want);
      }
}

Test(kern_eltwise, scale_shift) {
  ref_rng_t rng = {3};
  int n = 2, c = 5;
  size_t hw = 33, count = (size_t)n * c * hw;
  float *x = ref_random(&rng, count, -1, 1), *s = ref_random(&rng, 5, -2, 2);
  float *sh = ref_random(&rng, 5, -1, 1), *y = malloc(count * sizeof *y);
  for (int thr = 1; thr <= 3; thr++) {
    ref_kctx_t t;
    ref_kctx_init(&t, thr, 0);
    kern_scale_shift(&t.kc, x, n, c, hw, s, sh, y);
    for (size_t i = 0; i < count; i++) {
      size_t ch = (i / hw) % (size_t)c;
      double want = (double)x[i] * s[ch] + sh[ch];
      cr_assert_float_eq(y[i], want, 1e-6 * (fabs(want) + 3), "i %zu", i);
    }
    ref_kctx_deinit(&t);
  }
  free(x), free(s), free(sh), free(y);
}

Test(kern_eltwise, lrn_sizes_and_exponents) {
  ref_rng_t rng = {4};
  static const float betas[] = {0.75f, 0.5f, 1.0f, 0.6f};
  for (int size = 3; size <= 5; size += 2)
    for (int bi = 0; bi < 4; bi++)
      for (int thr = 1; thr <= 3; thr += 2) {
        int n = 2, c = 9;
        size_t hw = 17, count = (size_t)n * c * hw;
        float *x = ref_random(&rng, count, -3, 3), *y = malloc(count * sizeof *y);
        double *want = malloc(count * sizeof *want);
        ref_kctx_t t;
        ref_kctx_init(&t, thr, 0);
        kern_lrn(&t.kc, x, n, c, hw, size, 1e-4f * 50, betas[bi], 1.0f, y);
        ref_lrn(x, n, c, hw, size, 1e-4 * 50, betas[bi], 1.0, want);
        cr_assert_eq(ref_mismatch(y, want, NULL, count, 1e-5, 1e-7), -1, "size %d beta %g",
                     size, betas[bi]);
        ref_kctx_deinit(&t);
        free(x), free(y), free(want);
      }
}

Test(kern_eltwise, softmax_axes) {
  ref_rng_t rng = {5};
  static const size_t shapes[][3] = {{1, 1000, 1}, {4, 10, 1}, {2, 7, 9}, {1, 5, 33}, {3, 1, 4}};
  for (int i = 0; i < 5; i++)
    for (int thr = 1; thr <= 3; thr++) {
      size_t o = shapes[i][0], l = shapes[i][1], in = shapes[i][2], count = o * l * in;
      float *x = ref_random(&rng, count, -20, 20), *y = malloc(count * sizeof *y);
      double *want = malloc(count * sizeof *want);
      ref_kctx_t t;
      ref_kctx_init(&t, thr, 0);
      kern_softmax(&t.kc, x, o, l, in, y);
      ref_softmax(x, o, l, in, want);
      cr_assert_eq(ref_mismatch(y, want, NULL, count, 1e-5, 1e-7), -1, "shape %d", i);
      kern_softmax(&t.kc, x, o, l, in, x); /* in place */
      cr_assert_eq(memcmp(x, y, count * sizeof *x), 0);
      ref_kctx_deinit(&t);
      free(x), free(y), free(want);
    }
}
