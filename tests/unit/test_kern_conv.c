/* test_kern_conv.c — kern_conv2d against the 7-loop double-precision reference.
 *
 * Tolerance: |got - ref| <= 1e-5 * mag + 1e-6, where mag is the sum of the absolute
 * values of all terms of that output (|w*x|, |bias|, |residual|). A float32 sum of K
 * terms has a worst-case error of about K * 6e-8 * mag and a typical one far below
 * (sgemm's blocked sums); 1e-5 is ~170 ulps of mag, loose enough for any order of
 * summation yet far below the O(mag) error of a wrong index, tap or padding.
 * Every case also runs with its output (and residual) a channel slice of a wider map
 * (kern_conv_t.out_img, a Concat written in place): the slice must hold the same
 * values, bit for bit, and the channels around it must keep their bytes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "kern_sgemm.h"
#include "ref.h"

typedef struct {
  int n, cin, cout, h, w, kh, kw, sh, sw, pt, pl, pb, pr, bias, relu, residual, threads;
} conv_case_t;

enum { VIEW_BEFORE = 3, VIEW_AFTER = 2 }; /* channels around the slice */

/* The conv again with out_img set: image i's output (and residual) at wide + i * out_img
 * + VIEW_BEFORE planes, in a map of VIEW_BEFORE + cout + VIEW_AFTER channels. */
static void conv_check_view(const ref_kctx_t *t, kern_conv_t *p, const conv_case_t *c,
                            const float *in, const float *res, const float *dense, int oh,
                            int ow) {
  size_t cols = (size_t)oh * (size_t)ow, img = (size_t)c->cout * cols;
  size_t wide_img = (size_t)(VIEW_BEFORE + c->cout + VIEW_AFTER) * cols, nw = (size_t)c->n * wide_img;
  float *out = malloc(nw * sizeof *out), *before = malloc(nw * sizeof *before);
  float *wres = res ? malloc(nw * sizeof *wres) : NULL;
  cr_assert(out && before && (!res || wres));
  for (size_t i = 0; i < nw; i++) out[i] = before[i] = (float)(i % 977) + 0.5f;
  for (int q = 0; res && q < c->n; q++)
    memcpy(wres + (size_t)q * wide_img + VIEW_BEFORE * cols, res + (size_t)q * img,
           img * sizeof *wres);
  p->out_img = wide_img;
  kern_conv2d(&t->kc, p, in, c->n, c->h, c->w, out + VIEW_BEFORE * cols, oh, ow,
              wres ? wres + VIEW_BEFORE * cols : NULL);
  p->out_img = 0;
  for (int q = 0; q < c->n; q++) {
    const float *w = out + (size_t)q * wide_img, *b = before + (size_t)q * wide_img;
    cr_assert_eq(memcmp(w + VIEW_BEFORE * cols, dense + (size_t)q * img, img * sizeof *w), 0,
                 "n%d %d->%d k%dx%d s%d t%d: image %d's slice differs from the dense output",
                 c->n, c->cin, c->cout, c->kh, c->kw, c->sh, c->threads, q);
    cr_assert_eq(memcmp(w, b, VIEW_BEFORE * cols * sizeof *w), 0, "image %d: channels before written", q);
    cr_assert_eq(memcmp(w + VIEW_BEFORE * cols + img, b + VIEW_BEFORE * cols + img,
                        VIEW_AFTER * cols * sizeof *w), 0, "image %d: channels after written", q);
  }
  free(out), free(before), free(wres);
}

static void conv_check(ref_rng_t *rng, const conv_case_t *c) {
  int oh = (c->h + c->pt + c->pb - c->kh) / c->sh + 1;
  int ow = (c->w + c->pl + c->pr - c->kw) / c->sw + 1;
  cr_assert(oh > 0 && ow > 0);
  size_t nin = (size_t)c->n * c->cin * c->h * c->w, nout = (size_t)c->n * c->cout * oh * ow;
  float *in = ref_random(rng, nin, -1, 1);
  float *wt = ref_random(rng, (size_t)c->cout * c->cin * c->kh * c->kw, -1, 1);
  float *bias = c->bias ? ref_random(rng, (size_t)c->cout, -1, 1) : NULL;
  float *res = c->residual ? ref_random(rng, nout, -2, 2) : NULL;
  float *out = ref_random(rng, nout, 100, 200); /* garbage the kernel must overwrite */
  double *want = malloc(nout * sizeof *want), *mag = malloc(nout * sizeof *mag);
  kern_conv_t p = {c->cin, c->cout, c->kh, c->kw, c->sh, c->sw, c->pt, c->pl, c->pb, c->pr,
                   wt, bias, c->relu, NULL, NULL, oh, ow, 0, 0, 0, 0, 0, {0}, {0}};
  cr_assert_eq(kern_conv_prepare(&p), 0);
  int s2 = 0, s2pad = c->kh == 3 && c->kw == 3 && c->sh == 2 && c->sw == 2 && c->pt == 1 &&
                     c->pl == 1 && c->pb == 1 && c->pr == 1;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  /* kern_winograd.c's stride-2 variant: from 14x14 outputs (WINO_S2_MIN_OUT) */
  s2 = s2pad && c->cin >= 8 && c->cout >= 8 && oh * ow >= 14 * 14;
#else
  (void)s2pad; /* builds with neither have no stride-2 Winograd nor phase-plane path */
#endif
  int wino = (c->kh == 3 && c->kw == 3 && c->sh == 1 && c->sw == 1 && c->cin >= 8 && c->cout >= 8) || s2;
  cr_assert_eq(p.packed != NULL, wino, "Winograd taken %d, expected %d", p.packed != NULL, wino);
#if defined(__AVX512F__)
  int poly = s2pad && !s2 && oh * ow > 100; /* kern_conv_poly.c: POLY_MIN_COLS */
  cr_assert_eq(p.poly, poly, "phase-plane path taken %d, expected %d", p.poly, poly);
  int s2rows = c->sh == 2 && c->sw == 2 && c->kw >= 5 && c->pl <= 31; /* kern_conv_s2rows.c */
  cr_assert_eq(p.s2rows, s2rows, "row-by-row stride-2 path taken %d, expected %d", p.s2rows,
               s2rows);
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#if defined(__AVX512F__)
  int widening = 0; /* AVX-512 builds: no F(4x4) on 14x14 maps */
#else
  int widening = c->cout >= c->cin;
#endif
  int wm = s2 ? 2 : !wino                                                              ? 0
           : (long)oh * ow >= 56 * 56 ||
                     (c->cin >= 96 && ((long)oh * ow >= 28 * 28 ||
                                       ((long)oh * ow >= 14 * 14 && widening)))
               ? 4
               : 2; /* kern_winograd.c's choice */
  cr_assert_eq(p.wino_m, wm, "Winograd F(%dx%d), expected F(%dx%d)", p.wino_m, p.wino_m, wm, wm);
#endif
  ref_kctx_t t;
  ref_kctx_init(&t, c->threads, kern_conv2d_scratch_floats(&p, c->h, c->w, oh, ow, c->threads));
  kern_conv2d(&t.kc, &p, in, c->n, c->h, c->w, out, oh, ow, res);
  ref_conv2d(&p, in, c->n, c->h, c->w, oh, ow, res, want, mag);
  long bad = ref_mismatch(out, want, mag, nout, 1e-5, 1e-6);
  cr_assert_eq(bad, -1,
               "n%d %d->%d %dx%d k%dx%d s%d,%d pad %d,%d,%d,%d b%d r%d res%d t%d: out[%ld]=%g want %g",
               c->n, c->cin, c->cout, c->h, c->w, c->kh, c->kw, c->sh, c->sw, c->pt, c->pl,
               c->pb, c->pr, c->bias, c->relu, c->residual, c->threads, bad,
               bad >= 0 ? out[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
  conv_check_view(&t, &p, c, in, res, out, oh, ow);
  kern_conv_release(&p);
  ref_kctx_deinit(&t);
  free(in), free(wt), free(bias), free(res), free(out), free(want), free(mag);
}

Test(kern_conv, random_shapes) {
  ref_rng_t rng = {0x9E3779B97F4A7C15ull};
  static const int ks[] = {1, 3, 5, 7};
  cnn_blas_single_thread();
  for (int i = 0; i < 120; i++) {
    conv_case_t c;
    c.kh = ks[ref_randint(&rng, 0, 3)];
    c.kw = ref_randint(&rng, 0, 4) ? c.kh : ks[ref_randint(&rng, 0, 3)];
    c.sh = ref_randint(&rng, 1, 2);
    c.sw = ref_randint(&rng, 0, 3) ? c.sh : 3 - c.sh;
    c.pt = ref_randint(&rng, 0, c.kh / 2 + 1), c.pb = ref_randint(&rng, 0, c.kh / 2);
    c.pl = ref_randint(&rng, 0, c.kw / 2), c.pr = ref_randint(&rng, 0, c.kw / 2 + 1);
    c.h = ref_randint(&rng, 1, 19), c.w = ref_randint(&rng, 1, 19);
    if (c.h + c.pt + c.pb < c.kh) c.h = c.kh;
    if (c.w + c.pl + c.pr < c.kw) c.w = c.kw;
    c.n = ref_randint(&rng, 1, 3);
    c.cin = ref_randint(&rng, 1, 9), c.cout = ref_randint(&rng, 1, 40);
    c.bias = ref_randint(&rng, 0, 1), c.relu = ref_randint(&rng, 0, 1);
    c.residual = ref_randint(&rng, 0, 1), c.threads = ref_randint(&rng, 1, 3);
    conv_check(&rng, &c);
  }
}

Test(kern_conv, resnet_like_layers) {
  ref_rng_t rng = {12345};
  cnn_blas_single_thread();
  static const conv_case_t cases[] = {
      /* n cin cout  h  w kh kw sh sw pt pl pb pr bias relu res thr */
      {1, 3, 16, 33, 31, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 0, 2},     /* stem */
      {2, 16, 24, 15, 15, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 2},    /* direct 1x1 + residual */
      {1, 24, 32, 14, 14, 1, 1, 2, 2, 0, 0, 0, 0, 1, 0, 0, 3},    /* strided shortcut */
      {1, 64, 48, 40, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},    /* several col blocks */
      {1, 64, 48, 40, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* same, one thread */
      {1, 32, 40, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},      /* row split, ragged */
      {1, 32, 40, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 3},      /* row split, 3 thr */
      {3, 32, 36, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 2},      /* row split, batch */
      {2, 5, 7, 9, 11, 5, 3, 2, 1, 2, 0, 1, 2, 1, 1, 1, 2},       /* asymmetric */
      {1, 1024, 20, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2},    /* K > block budget */
      /* K slices and image groups (conv__grouped): strided 3x3 onto <= 196 outputs */
      {5, 70, 40, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2},    /* 7x7 out, 2 slices */
      {12, 60, 24, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1},   /* groups of 10 + 2 */
      {3, 60, 33, 20, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 1, 3},    /* 10x10 out, 3 thr */
      {1, 130, 48, 13, 13, 3, 3, 2, 2, 1, 1, 0, 0, 0, 1, 0, 2},   /* batch 1, 3 slices */
      /* phase planes (kern_conv_poly.c): 3x3/2 pad 1 onto more than 100 outputs, below
       * the stride-2 Winograd's 14x14 or with fewer than 8 channels */
      {1, 20, 24, 26, 26, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2},    /* 13x13 out */
      {2, 9, 17, 23, 27, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 1, 3},     /* 12x14, odd sides, batch 2 */
      {1, 7, 40, 56, 56, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 0, 1},     /* 28x28, 7 channels in */
      {3, 16, 6, 30, 30, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2},     /* 15x15, 6 out */
      /* stride-2 Winograd (kern_wino_s2.c): 3x3/2 pad 1 onto 14x14 outputs and more */
      {3, 60, 33, 28, 28, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 1, 3},    /* 14x14 out, 3 thr */
      {1, 20, 24, 40, 40, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2},    /* 20x20 out */
      {2, 9, 17, 41, 37, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 1, 3},     /* odd sides, batch 2 */
      {1, 33, 40, 56, 56, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 0, 1},    /* 28x28, one thread */
      {3, 16, 64, 30, 30, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2},    /* 15x15: row split */
      {1, 8, 8, 27, 29, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1},      /* 14x15, fewest channels */
      {2, 40, 36, 69, 71, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2},    /* 35x36: tile rows of 18 */
      {1, 256, 48, 28, 28, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 2},   /* wide, 49 tiles: shared V */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_check(&rng, &cases[i]);
}

/* Stride-2 kernels at least 5 wide (kern_conv_s2rows.c on AVX-512 builds, one product
 * per output row from the input's column phases): the stems' 7x7 pad 3 on maps giving
 * several 8-row chunks and a partial last one, odd and even sides (the last phase
 * position outside the row), batches whose chunks span images, 1-3 threads, every
 * epilogue, and other widths, heights and paddings (pad 0, asymmetric, wider than half
 * the kernel). */
Test(kern_conv, stride2_wide_kernels_row_by_row) {
  ref_rng_t rng = {0x5EED5EED1234ull};
  cnn_blas_single_thread();
  static const conv_case_t cases[] = {
      /* n cin cout  h  w kh kw sh sw pt pl pb pr bias relu res thr */
      {1, 3, 64, 60, 58, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 0, 2},   /* stem, 30x29 out */
      {2, 3, 20, 37, 41, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 3},   /* odd sides, batch 2 */
      {3, 3, 17, 34, 34, 7, 7, 2, 2, 3, 3, 3, 3, 0, 0, 1, 2},   /* batch 3, 17 rows out */
      {1, 3, 64, 224, 224, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 0, 2}, /* the stem itself */
      {1, 5, 24, 23, 19, 5, 5, 2, 2, 0, 0, 0, 0, 1, 0, 0, 1},   /* 5x5, no padding */
      {2, 4, 33, 21, 30, 3, 5, 2, 2, 1, 2, 1, 2, 1, 1, 1, 2},   /* 3x5 */
      {1, 2, 16, 18, 25, 7, 9, 2, 2, 2, 6, 4, 1, 0, 1, 1, 3},   /* 7x9, uneven pads */
      {1, 8, 40, 9, 9, 5, 7, 2, 2, 2, 3, 2, 3, 1, 1, 0, 2},     /* fewer rows than a chunk */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_check(&rng, &cases[i]);
}

/* count random 3x3 stride-1 layers: sides in [side_lo, side_hi], any padding up to 2,
 * 1..nmax images, input channels 8..cin_hi, output channels 8..cout_hi, any epilogue,
 * 1-3 threads. */
static void wino_random(ref_rng_t *rng, int count, int side_lo, int side_hi, int nmax,
                        int cin_hi, int cout_hi) {
  for (int i = 0; i < count; i++) {
    conv_case_t c = {.kh = 3, .kw = 3, .sh = 1, .sw = 1};
    c.pt = ref_randint(rng, 0, 2), c.pb = ref_randint(rng, 0, 2);
    c.pl = ref_randint(rng, 0, 2), c.pr = ref_randint(rng, 0, 2);
    c.h = ref_randint(rng, side_lo, side_hi), c.w = ref_randint(rng, side_lo, side_hi);
    c.n = ref_randint(rng, 1, nmax);
    c.cin = ref_randint(rng, 8, cin_hi), c.cout = ref_randint(rng, 8, cout_hi);
    c.bias = ref_randint(rng, 0, 1), c.relu = ref_randint(rng, 0, 1);
    c.residual = ref_randint(rng, 0, 1), c.threads = ref_randint(rng, 1, 3);
    conv_check(rng, &c);
  }
}

/* 3x3 stride-1 layers with >= 8 channels and smaller maps take Winograd F(2x2, 3x3)
 * (kern_winograd.c), held to the same tolerance: odd and even sizes (clipped edge
 * tiles), any padding, batches whose tile blocks span images, tile and channel splits,
 * 1-3 threads. */
Test(kern_conv, winograd_random_shapes) {
  ref_rng_t rng = {0xC0FFEEull};
  cnn_blas_single_thread();
  wino_random(&rng, 80, 3, 30, 3, 40, 72);
}

/* Maps of 56x56 outputs and more take F(4x4, 3x3) on AVX-512 and AVX2 builds (kern_wino4.c):
 * the same tolerance, with widths that leave partial 16-tile vectors and clipped
 * 4x4 edge tiles, every padding, batches and 1-3 threads. */
Test(kern_conv, winograd4_random_shapes) {
  ref_rng_t rng = {0xF44ull};
  cnn_blas_single_thread();
  wino_random(&rng, 24, 58, 90, 2, 72, 56);
}

/* From 28x28 outputs, layers of at least 96 input channels take F(4x4) too (ResNet's
 * layer2), and in AVX2 builds from 14x14 ones those with at least as many outputs as
 * inputs (GoogLeNet's 4a-4e, ResNet's layer3; AVX-512 builds keep F(2x2) on 14x14 maps);
 * narrower layers and maps keep F(2x2). Row and tile splits,
 * one and two images; at most 8 tiles a row, so blocks of whole images take the
 * two-tile-rows-per-vector transforms (kern_wino4_rows_*), the 31x29 one with a last
 * tile row alone and 29 columns (two registers a row, the second partial). */
Test(kern_conv, winograd4_wide_layers_from_28x28_widening_from_14x14) {
  ref_rng_t rng = {0x28F4ull};
  cnn_blas_single_thread();
  static const conv_case_t cases[] = {
      /* n cin cout  h  w kh kw sh sw pt pl pb pr bias relu res thr */
      {1, 128, 128, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},  /* ResNet layer2 */
      {2, 130, 96, 31, 29, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1, 3},   /* ragged, 3 threads */
      {1, 144, 144, 30, 30, 3, 3, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1},  /* unpadded: 28x28 out */
      {1, 128, 160, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},  /* widens */
      {1, 128, 128, 26, 26, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},  /* 26x26: F(2x2) */
      {1, 64, 96, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},    /* narrow: F(2x2) */
      {2, 96, 208, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},   /* 14x14, widens (AVX2: 4x4) */
      {1, 112, 112, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},  /* as wide: F(2x2) (AVX2: 4x4) */
      {1, 128, 112, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2},  /* 14x14 narrows: F(2x2) */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_check(&rng, &cases[i]);
}

Test(kern_conv, winograd_layers) {
  ref_rng_t rng = {777};
  cnn_blas_single_thread();
  static const conv_case_t cases[] = {
      /* n cin cout  h  w kh kw sh sw pt pl pb pr bias relu res thr */
      {2, 16, 16, 70, 69, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},  /* several tile blocks */
      {1, 96, 64, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},    /* channel split */
      {3, 64, 40, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1, 3},    /* channel split, ragged */
      {1, 8, 8, 3, 3, 3, 3, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1},      /* one tile, clipped */
      {1, 24, 20, 33, 35, 3, 3, 1, 1, 0, 2, 1, 0, 1, 1, 0, 2},  /* asymmetric padding */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_check(&rng, &cases[i]);
}

/* Maps at most 16 wide take kern_wino_small.c's transforms on AVX-512 builds, for
 * blocks of whole images. Whole planes (at most 16 F(2x2) tiles, planes of at most 64
 * floats): one image and a batch split by rows, 8x8 (16 tiles, 64-float planes), 15
 * tiles of a 6x10 map, 4x4 maps, asymmetric padding. Row groups: an unpadded 9x9 input
 * (81 floats; 3 tile rows of 4), 14x14 (2 rows of 7) at batch 1 and in batches split
 * by rows and by tiles, 16x16 (2 rows of 8), 10x10 (3 rows of 5), 13x11 (odd sides),
 * and 17 wide, which keeps the row runs. The same tolerance as every layer. */
Test(kern_conv, winograd_small_maps) {
  ref_rng_t rng = {0x5A11ull};
  cnn_blas_single_thread();
  static const conv_case_t cases[] = {
      /* n cin cout  h  w kh kw sh sw pt pl pb pr bias relu res thr */
      {1, 64, 48, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* ResNet layer4-like */
      {8, 40, 48, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},   /* batch, row split */
      {3, 24, 32, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1, 2},   /* 16 tiles, 64 floats */
      {2, 16, 24, 6, 10, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 0, 3},  /* 5 x 3 tiles */
      {4, 16, 16, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1},   /* 4 tiles */
      {1, 16, 16, 7, 7, 3, 3, 1, 1, 2, 0, 1, 2, 1, 1, 0, 1},   /* 8x7 out, padding 2,0,1,2 */
      {2, 32, 32, 9, 9, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 1, 2},   /* 81 floats: row groups */
      {1, 48, 64, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* ResNet layer3-like */
      {3, 40, 48, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}, /* batch, row split */
      {2, 16, 16, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1, 3}, /* few channels: tile split */
      {1, 24, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 1, 2}, /* 2 rows of 8 tiles */
      {2, 16, 24, 10, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1}, /* 3 rows of 5 */
      {1, 16, 16, 13, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}, /* odd sides */
      {1, 16, 16, 16, 16, 3, 3, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1}, /* unpadded 16 -> 14 */
      {1, 16, 16, 17, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* 17 wide: row runs */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_check(&rng, &cases[i]);
}

/* A grouped conv (K slices, kern_conv.c) gives an image the same bits whichever way it
 * runs: alone on one thread, alone on two (each thread one half-sum, conv__by_khalf),
 * and in a batch on two (a row split) or three threads. The engine's sgemm only: the
 * OpenBLAS fallback's blocking follows the matrix size. */
Test(kern_conv, grouped_image_same_bits_alone_and_batched) {
  if (!kern_sgemm_available()) cr_skip_test("no engine sgemm on this CPU: OpenBLAS sums");
  ref_rng_t rng = {777};
  cnn_blas_single_thread();
  enum { N = 3, CIN = 130, COUT = 48, H = 13, OH = 7 };
  size_t in_img = (size_t)CIN * H * H, out_img = (size_t)COUT * OH * OH;
  float *in = ref_random(&rng, N * in_img, -1, 1), *res = ref_random(&rng, N * out_img, -1, 1);
  float *wt = ref_random(&rng, (size_t)COUT * CIN * 9, -1, 1);
  float *bias = ref_random(&rng, COUT, -1, 1);
  float *batch = malloc(N * out_img * sizeof *batch), *one = malloc(out_img * sizeof *one);
  cr_assert(batch && one);
  kern_conv_t p = {CIN, COUT, 3, 3, 2, 2, 1, 1, 1, 1, wt, bias, 1, NULL, NULL, OH, OH, 0, 0, 0, 0, 0, {0}, {0}};
  cr_assert_eq(kern_conv_prepare(&p), 0);
  cr_assert(!p.packed && !p.poly, "expected the grouped im2col path");
  for (int threads = 2; threads <= 3; threads++) {
    ref_kctx_t t;
    ref_kctx_init(&t, threads, kern_conv2d_scratch_floats(&p, H, H, OH, OH, threads));
    kern_conv2d(&t.kc, &p, in, N, H, H, batch, OH, OH, res);
    for (int img = 0; img < N; img++)
      for (int alone = 1; alone <= 2; alone++) {
        ref_kctx_t a;
        ref_kctx_init(&a, alone, kern_conv2d_scratch_floats(&p, H, H, OH, OH, alone));
        memset(one, 0xFF, out_img * sizeof *one);
        kern_conv2d(&a.kc, &p, in + img * in_img, 1, H, H, one, OH, OH, res + img * out_img);
        cr_assert_eq(memcmp(one, batch + img * out_img, out_img * sizeof *one), 0,
                     "image %d alone on %d threads differs from a batch of %d on %d threads",
                     img, alone, N, threads);
        ref_kctx_deinit(&a);
      }
    ref_kctx_deinit(&t);
  }
  kern_conv_release(&p);
  free(in), free(res), free(wt), free(bias), free(batch), free(one);
}

/* Row groups (kern_conv2d_groups; siblings merged by graph_siblings.c): each output
 * holds, bit for bit (with the engine's sgemm; OpenBLAS's blocking follows the matrix
 * size), its rows of the whole conv, in its own buffer, at its own image stride, and
 * nothing around it is written. Direct 1x1 convs, column and row splits
 * (small maps), batches, 1 to 3 threads. */
Test(kern_conv, row_groups_write_each_output_its_rows) {
  ref_rng_t rng = {4242};
  cnn_blas_single_thread();
  for (int i = 0; i < 40; i++) {
    int ng = ref_randint(&rng, 2, KERN_CONV_GROUPS), rows[KERN_CONV_GROUPS + 1] = {0};
    for (int g = 0; g < ng; g++) rows[g + 1] = rows[g] + 8 * ref_randint(&rng, 1, 6);
    int n = ref_randint(&rng, 1, 3), cin = ref_randint(&rng, 1, 70), hw = ref_randint(&rng, 1, 30);
    int threads = ref_randint(&rng, 1, 3), cout = rows[ng];
    size_t cols = (size_t)hw * (size_t)hw;
    float *in = ref_random(&rng, (size_t)n * cin * cols, -1, 1);
    float *wt = ref_random(&rng, (size_t)cout * cin, -1, 1), *bias = ref_random(&rng, cout, -1, 1);
    float *dense = malloc((size_t)n * cout * cols * sizeof *dense), *outs[KERN_CONV_GROUPS];
    float *bufs[KERN_CONV_GROUPS], *orig[KERN_CONV_GROUPS];
    size_t len[KERN_CONV_GROUPS], pre[KERN_CONV_GROUPS];
    kern_conv_t p = {cin, cout, 1, 1, 1, 1, 0, 0, 0, 0, wt, bias, (int)(i & 1), NULL, NULL, hw, hw,
                     0, 0, 0, 0, 0, {0}, {0}};
    cr_assert_eq(kern_conv_prepare(&p), 0);
    ref_kctx_t t;
    ref_kctx_init(&t, threads, kern_conv2d_scratch_floats(&p, hw, hw, hw, hw, threads));
    kern_conv2d(&t.kc, &p, in, n, hw, hw, dense, hw, hw, NULL);
    p.ngroups = ng;
    for (int g = 0; g <= ng; g++) p.group_row[g] = rows[g];
    for (int g = 0; g < ng; g++) { /* every other output a slice of a wider map */
      size_t gr = (size_t)(rows[g + 1] - rows[g]);
      pre[g] = g % 2 ? 2 * cols : 0;
      p.group_out_img[g] = g % 2 ? (gr + 3) * cols : 0;
      size_t img = g % 2 ? p.group_out_img[g] : gr * cols;
      len[g] = (size_t)n * img;
      bufs[g] = ref_random(&rng, len[g], 100, 200), orig[g] = malloc(len[g] * sizeof(float));
      cr_assert(orig[g]);
      memcpy(orig[g], bufs[g], len[g] * sizeof(float));
      outs[g] = bufs[g] + pre[g];
    }
    kern_conv2d_groups(&t.kc, &p, in, n, hw, hw, outs, hw, hw);
    for (int g = 0; g < ng; g++) {
      size_t gr = (size_t)(rows[g + 1] - rows[g]), img = p.group_out_img[g] ? p.group_out_img[g] : gr * cols;
      for (int q = 0; q < n; q++) {
        const float *got = outs[g] + (size_t)q * img;
        const float *want = dense + ((size_t)q * cout + (size_t)rows[g]) * cols;
        for (size_t e = 0; e < gr * cols; e++) /* OpenBLAS's blocking follows M: ulps */
          cr_assert(kern_sgemm_available() ? got[e] == want[e]
                                           : fabsf(got[e] - want[e]) <= 1e-5f * (1.0f + fabsf(want[e])),
                    "case %d: output %d of %d, image %d differs at %zu: %g, %g (n%d %d->%d %dx%d t%d)",
                    i, g, ng, q, e, (double)got[e], (double)want[e], n, cin, cout, hw, hw, threads);
        memcpy(orig[g] + pre[g] + (size_t)q * img, got, gr * cols * sizeof *got);
      }
      cr_assert_eq(memcmp(bufs[g], orig[g], len[g] * sizeof(float)), 0,
                   "case %d: output %d written outside its rows", i, g);
      free(bufs[g]), free(orig[g]);
    }
    kern_conv_release(&p);
    ref_kctx_deinit(&t);
    free(in), free(wt), free(bias), free(dense);
  }
}
