/* test_kern_pool.c — max/avg/global-average pooling against ref_pool2d.
 * Tolerance: 1e-6 relative + 1e-6 absolute; a pooled value is a max (exact) or a
 * mean of at most k*k floats in [-1, 1], whose float32 rounding stays below 1e-6. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "ref.h"

static int pool_out(int len, int k, int s, int pa, int pb, int ceil_mode) {
  int span = len + pa + pb - k;
  int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  /* PyTorch/ONNX: the last window must start inside the input or left padding */
  if (ceil_mode && (o - 1) * s >= len + pa) o--;
  return o;
}

static void pool_check(ref_rng_t *rng, int avg, const kern_pool_t *p, int n, int c, int h,
                       int w, int ceil_mode, int threads) {
  int oh = pool_out(h, p->kh, p->stride_h, p->pad_t, p->pad_b, ceil_mode);
  int ow = pool_out(w, p->kw, p->stride_w, p->pad_l, p->pad_r, ceil_mode);
  size_t nout = (size_t)n * c * oh * ow;
  float *in = ref_random(rng, (size_t)n * c * h * w, -1, 1), *out = malloc(nout * sizeof *out);
  double *want = malloc(nout * sizeof *want);
  ref_kctx_t t;
  ref_kctx_init(&t, threads, 0);
  if (avg) kern_avgpool2d(&t.kc, p, in, n, c, h, w, out, oh, ow);
  else kern_maxpool2d(&t.kc, p, in, n, c, h, w, out, oh, ow);
  ref_pool2d(p, avg, in, n, c, h, w, oh, ow, want);
  long bad = ref_mismatch(out, want, NULL, nout, 1e-6, 1e-6);
  cr_assert_eq(bad, -1, "avg%d cip%d k%dx%d s%d pad %d,%d,%d,%d %dx%d ceil%d: [%ld] %g vs %g",
               avg, p->count_include_pad, p->kh, p->kw, p->stride_h, p->pad_t, p->pad_l,
               p->pad_b, p->pad_r, h, w, ceil_mode, bad, bad >= 0 ? out[bad] : 0.0,
               bad >= 0 ? want[bad] : 0.0);
  ref_kctx_deinit(&t);
  free(in), free(out), free(want);
}

Test(kern_pool, random_windows) {
  ref_rng_t rng = {777};
  for (int i = 0; i < 300; i++) {
    kern_pool_t p;
    p.kh = ref_randint(&rng, 1, 5), p.kw = ref_randint(&rng, 1, 5);
    p.stride_h = ref_randint(&rng, 1, 3), p.stride_w = ref_randint(&rng, 1, 3);
    p.pad_t = ref_randint(&rng, 0, (p.kh - 1) / 2), p.pad_b = ref_randint(&rng, 0, (p.kh - 1) / 2);
    p.pad_l = ref_randint(&rng, 0, (p.kw - 1) / 2), p.pad_r = ref_randint(&rng, 0, (p.kw - 1) / 2);
    p.count_include_pad = ref_randint(&rng, 0, 1);
    int h = ref_randint(&rng, p.kh, 16), w = ref_randint(&rng, p.kw, 16);
    pool_check(&rng, ref_randint(&rng, 0, 1), &p, ref_randint(&rng, 1, 2),
               ref_randint(&rng, 1, 5), h, w, ref_randint(&rng, 0, 1), ref_randint(&rng, 1, 3));
  }
}

Test(kern_pool, network_windows_ceil_mode) {
  ref_rng_t rng = {778};
  kern_pool_t mp = {3, 3, 2, 2, 0, 0, 0, 0, 0}; /* GoogLeNet: 3x3/2 ceil, runs off edge */
  pool_check(&rng, 0, &mp, 1, 8, 112, 112, 1, 2);
  pool_check(&rng, 0, &mp, 2, 4, 57, 57, 1, 3);
  kern_pool_t sp = {3, 3, 1, 1, 1, 1, 1, 1, 0}; /* inception branch 4: whole-plane path */
  static const int side[][2] = {{2, 2}, {2, 5}, {5, 2}, {7, 7}, {14, 14}, {28, 28}, {64, 64}, {65, 64}};
  for (int i = 0; i < 8; i++) pool_check(&rng, 0, &sp, 2, 3, side[i][0], side[i][1], 1, 2);
  kern_pool_t rp = {3, 3, 2, 2, 1, 1, 1, 1, 0}; /* ResNet stem maxpool */
  pool_check(&rng, 0, &rp, 1, 8, 112, 112, 0, 2);
  /* one image onto >= 28 x 28 outputs a plane: bands of output rows (pool__bands), on 2
   * and 3 threads, odd heights, the last window of a ceil-mode pool clipped; GoogLeNet's
   * maxpool2 (56x56 -> 28x28 ceil) exactly at the threshold */
  pool_check(&rng, 0, &mp, 1, 3, 56, 56, 1, 2);
  pool_check(&rng, 0, &mp, 1, 3, 56, 56, 1, 3);
  pool_check(&rng, 0, &rp, 1, 2, 65, 66, 0, 3);
  pool_check(&rng, 0, &rp, 1, 3, 64, 64, 0, 2);
  pool_check(&rng, 0, &mp, 1, 2, 67, 64, 1, 3);
  pool_check(&rng, 0, &mp, 1, 2, 66, 64, 1, 2);
  /* 2x2/2 and 3x3/2 on every row width from 3 to 40 (GoogLeNet's maxpool3/4 at 28 and
   * 14): the whole-row vector path with partial vectors, margins and exact edge windows,
   * and for even widths the flat path (rows of at most 15 in registers). */
  kern_pool_t m2 = {2, 2, 2, 2, 0, 0, 0, 0, 0}; /* GoogLeNet's maxpool4: 2x2/2 ceil */
  for (int w = 3; w <= 40; w++) {
    pool_check(&rng, 0, &m2, 1, 3, w, w, 1, 1 + w % 2);
    pool_check(&rng, 0, &m2, 1, 2, w + 3, w, 0, 1);
    pool_check(&rng, 0, &mp, 1, 2, w + 1, w, 1, 1);
    pool_check(&rng, 0, &rp, 1, 2, w, w, 0, 1);
    pool_check(&rng, 0, &rp, 1, 2, w, w, 1, 1);
  }
  for (int cip = 0; cip <= 1; cip++) {
    kern_pool_t ap = {3, 3, 2, 2, 1, 1, 1, 1, cip}; /* ceil window past the padded input */
    pool_check(&rng, 1, &ap, 1, 3, 8, 8, 1, 2);
    pool_check(&rng, 1, &ap, 2, 3, 10, 9, 1, 1);
  }
}

Test(kern_pool, global_average) {
  ref_rng_t rng = {779};
  static const size_t hws[] = {1, 7, 49, 196, 1001};
  for (int i = 0; i < 5; i++)
    for (int thr = 1; thr <= 3; thr++) {
      int n = 1 + i % 2, c = 3 + 7 * i;
      float *in = ref_random(&rng, (size_t)n * c * hws[i], -1, 1);
      float *out = malloc((size_t)n * c * sizeof *out);
      double *want = malloc((size_t)n * c * sizeof *want);
      ref_kctx_t t;
      ref_kctx_init(&t, thr, 0);
      kern_global_avgpool(&t.kc, in, n, c, hws[i], out);
      ref_global_avgpool(in, n, c, hws[i], want);
      cr_assert_eq(ref_mismatch(out, want, NULL, (size_t)n * c, 1e-5, 1e-6), -1);
      ref_kctx_deinit(&t);
      free(in), free(out), free(want);
    }
}
