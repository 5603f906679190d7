/* test_kern_data.c — concat, gather, slice (negative steps too) and the subsampled copy
 * against plain index arithmetic; these are copies, so results must match exactly. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "ref.h"

Test(kern_data, concat_axes) {
  ref_rng_t rng = {21};
  static const int64_t lens[] = {3, 1, 5, 2};
  static const size_t shapes[][2] = {{1, 49}, {2, 1}, {3, 7}, {1, 1}};
  for (int s = 0; s < 4; s++)
    for (int thr = 1; thr <= 3; thr++) {
      size_t outer = shapes[s][0], inner = shapes[s][1], row = 11 * inner;
      const float *ins[4];
      float *bufs[4];
      for (int i = 0; i < 4; i++) ins[i] = bufs[i] = ref_random(&rng, outer * lens[i] * inner, -1, 1);
      float *out = malloc(outer * row * sizeof *out);
      ref_kctx_t t;
      ref_kctx_init(&t, thr, 0);
      kern_concat(&t.kc, ins, lens, 4, outer, inner, out);
      for (size_t o = 0; o < outer; o++) {
        size_t pos = o * row;
        for (int i = 0; i < 4; i++)
          for (size_t e = 0; e < lens[i] * inner; e++, pos++)
            cr_assert_eq(out[pos], ins[i][o * lens[i] * inner + e], "shape %d", s);
      }
      ref_kctx_deinit(&t);
      for (int i = 0; i < 4; i++) free(bufs[i]);
      free(out);
    }
}

Test(kern_data, gather_rows) {
  ref_rng_t rng = {22};
  static const int64_t idx[] = {4, 0, 0, 2, 5};
  size_t outer = 3, axis = 6, inner = 7;
  float *in = ref_random(&rng, outer * axis * inner, -1, 1);
  float *out = malloc(outer * 5 * inner * sizeof *out);
  for (int thr = 1; thr <= 3; thr++) {
    ref_kctx_t t;
    ref_kctx_init(&t, thr, 0);
    kern_gather(&t.kc, in, outer, axis, inner, idx, 5, out);
    for (size_t o = 0; o < outer; o++)
      for (size_t j = 0; j < 5; j++)
        for (size_t i = 0; i < inner; i++)
          cr_assert_eq(out[(o * 5 + j) * inner + i], in[(o * axis + idx[j]) * inner + i]);
    ref_kctx_deinit(&t);
  }
  free(in), free(out);
}

Test(kern_data, slice_steps) {
  ref_rng_t rng = {23};
  static const int64_t shape[4] = {2, 5, 6, 7};
  static const int64_t cases[][3][4] = {
      /* starts, steps, out_shape */
      {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 5, 6, 7}},
      {{1, 1, 2, 3}, {1, 2, 1, 1}, {1, 2, 3, 4}},
      {{0, 4, 5, 6}, {1, -1, -2, -3}, {2, 5, 3, 3}},
      {{1, 0, 0, 6}, {-1, 3, 5, -1}, {2, 2, 2, 7}},
      {{0, 2, 1, 0}, {1, 1, 2, 2}, {2, 1, 3, 4}},
  };
  float *in = ref_random(&rng, 2 * 5 * 6 * 7, -1, 1);
  for (int c = 0; c < 5; c++)
    for (int thr = 1; thr <= 3; thr++) {
      const int64_t *os = cases[c][2];
      size_t n = (size_t)(os[0] * os[1] * os[2] * os[3]);
      float *out = malloc(n * sizeof *out);
      double *want = malloc(n * sizeof *want);
      ref_kctx_t t;
      ref_kctx_init(&t, thr, 0);
      kern_slice(&t.kc, in, shape, 4, cases[c][0], cases[c][1], os, out);
      ref_slice(in, shape, 4, cases[c][0], cases[c][1], os, want);
      cr_assert_eq(ref_mismatch(out, want, NULL, n, 0, 0), -1, "case %d", c);
      ref_kctx_deinit(&t);
      free(out), free(want);
    }
  free(in);
}

/* The shortcut's subsampled copy (graph_shortcut.c): every stride-th pixel of every
 * row stride apart, each image's copy out_img floats after the last, at a channel
 * offset inside a wider map; nothing around the copy written. */
Test(kern_data, subsample_into_a_wider_map) {
  ref_rng_t rng = {24};
  static const int cases[][4] = {{1, 5, 7, 7}, {2, 9, 7, 7}, {2, 56, 56, 3}, {2, 14, 13, 2}, {3, 1, 1, 1}};
  for (size_t cs = 0; cs < sizeof cases / sizeof cases[0]; cs++)
    for (int thr = 1; thr <= 3; thr++) {
      int s = cases[cs][0], h = cases[cs][1], w = cases[cs][2], c = cases[cs][3], n = 3;
      int oh = (h - 1) / s + 1, ow = (w - 1) / s + 1;
      size_t before = 5, out_img = before + (size_t)c * oh * ow + 4; /* channels around it */
      float *in = ref_random(&rng, (size_t)n * c * h * w, -1, 1);
      float *out = malloc((size_t)n * out_img * sizeof *out);
      for (size_t i = 0; i < (size_t)n * out_img; i++) out[i] = 1234.5f;
      ref_kctx_t t;
      ref_kctx_init(&t, thr, 0);
      kern_subsample(&t.kc, in, n, c, h, w, s, out + before, oh, ow, out_img);
      for (int img = 0; img < n; img++)
        for (size_t i = 0; i < out_img; i++) {
          float got = out[(size_t)img * out_img + i], want = 1234.5f;
          if (i >= before && i < before + (size_t)c * oh * ow) {
            size_t q = i - before, ch = q / ((size_t)oh * ow), y = q / ow % oh, x = q % ow;
            want = in[(((size_t)img * c + ch) * h + y * s) * w + x * s];
          }
          cr_assert_eq(got, want, "case %zu, %d threads: image %d float %zu", cs, thr, img, i);
        }
      ref_kctx_deinit(&t);
      free(in), free(out);
    }
}
