/* test_kern_sgemm.c — the packed-weight sgemm (kern_sgemm.c) against a double-precision
 * product, on every tail of M (rows past a panel) and N (1..96 columns, so each of the
 * 1-, 2- and 3-vector tiles and every mask width is hit), with each epilogue variant,
 * a row range starting mid-matrix, a B row stride wider than N, and the tall kernel
 * (column tails of at most 12, or products that narrow) with row tails inside its
 * 32-row tiles, products split
 * along K (kern_sgemm_run_k, accumulating into C) and B given by row offsets
 * (kern_sgemm_run_ind), the whole-panel tile for 1-vector tails and the ninth vector
 * that takes one column after the wide tiles. On AVX2 builds the same cases cover that build's wide tiles
 * (4 rows x 24 columns, partial last strips), its tall tails of at most 6 columns (a
 * panel or a half panel of rows), M blocks, column chunks and K slices (K > 256). Tolerance as in
 * test_kern_conv.c: 1e-5 of the sum of absolute terms. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "kern_sgemm.h"
#include "ref.h"

/* nslices > 1: the product as kern_sgemm_run_k over that many slices of K, the first
 * overwriting C, the others accumulating, the epilogue with the last. nslices < 0:
 * kern_sgemm_run_ind, B's rows taken in a shuffled order through their offsets. */
static void sgemm_check_k(ref_rng_t *rng, int m, int n, int k, int m0, int epi_kind, int nslices) {
  size_t ldb = (size_t)n + 5, ldc = (size_t)n + 3;
  int *row = malloc((size_t)k * sizeof *row);
  ptrdiff_t *boff = malloc((size_t)k * sizeof *boff);
  for (int p = 0; p < k; p++) row[p] = p;
  for (int p = k - 1; nslices < 0 && p > 0; p--) { /* Fisher-Yates */
    int q = ref_randint(rng, 0, p), t = row[p];
    row[p] = row[q], row[q] = t;
  }
  for (int p = 0; p < k; p++) boff[p] = (ptrdiff_t)((size_t)row[p] * ldb);
  float *a = ref_random(rng, (size_t)m * k, -1, 1), *b = ref_random(rng, (size_t)k * ldb, -1, 1);
  float *bias = ref_random(rng, (size_t)m, -1, 1), *res = ref_random(rng, (size_t)m * ldc, -2, 2);
  float *c = ref_random(rng, (size_t)m * ldc, 100, 200);
  float *pk = malloc(kern_sgemm_packed_floats(m, k) * sizeof *pk);
  kern_sgemm_pack(a, m, k, (size_t)k, pk);
  kern_sgemm_epi_t epi = {.bias = epi_kind & 1 ? bias : NULL,
                          .res = epi_kind & 2 ? res + (size_t)m0 * ldc : NULL,
                          .ldr = ldc, .relu = epi_kind & 4};
  if (nslices < 0)
    kern_sgemm_run_ind(pk, k, m0, m, b, boff, (size_t)n, c + (size_t)m0 * ldc, ldc,
                       epi_kind ? &epi : NULL);
  else if (nslices <= 1)
    kern_sgemm_run(pk, m0, m, k, b, ldb, (size_t)n, c + (size_t)m0 * ldc, ldc,
                   epi_kind ? &epi : NULL);
  for (int q = 0; nslices > 1 && q < nslices; q++) {
    int k0 = k * q / nslices, k1 = k * (q + 1) / nslices;
    kern_sgemm_epi_t e = q == nslices - 1 ? epi : (kern_sgemm_epi_t){0};
    e.accumulate = q > 0;
    kern_sgemm_run_k(pk, k, k0, k1, m0, m, b + (size_t)k0 * ldb, ldb, (size_t)n,
                     c + (size_t)m0 * ldc, ldc, &e);
  }
  for (int i = 0; i < m; i++)
    for (size_t j = 0; j < ldc; j++) {
      float got = c[(size_t)i * ldc + j];
      if (i < m0 || j >= (size_t)n) {
        cr_assert(got >= 100 && got <= 200, "m%d n%d k%d: wrote outside (%d,%zu)", m, n, k, i, j);
        continue;
      }
      double s = 0, mag = 0;
      for (int p = 0; p < k; p++) {
        double t = (double)a[(size_t)i * k + p] * b[(size_t)row[p] * ldb + j];
        s += t, mag += t < 0 ? -t : t;
      }
      if (epi.bias) s += bias[i], mag += bias[i] < 0 ? -bias[i] : bias[i];
      if (epi.res) {
        double r = res[(size_t)i * ldc + j];
        s += r, mag += r < 0 ? -r : r;
      }
      if (epi.relu && s < 0) s = 0;
      double d = got - s;
      cr_assert(d <= 1e-5 * mag + 1e-6 && -d <= 1e-5 * mag + 1e-6,
                "m%d n%d k%d m0 %d epi %d slices %d: c[%d][%zu] = %g, want %g", m, n, k, m0,
                epi_kind, nslices, i, j, got, s);
    }
  free(a), free(b), free(bias), free(res), free(c), free(pk), free(row), free(boff);
}

static void sgemm_check(ref_rng_t *rng, int m, int n, int k, int m0, int epi_kind) {
  sgemm_check_k(rng, m, n, k, m0, epi_kind, 1);
}

Test(kern_sgemm, every_column_tail_and_epilogue) {
  ref_rng_t rng = {0x5DEECE66Dull};
  for (int n = 1; n <= 96; n++) sgemm_check(&rng, 8 + n % 9, n, 1 + n % 37, 0, n % 8);
}

/* Tails of 1-37 columns after whole 48-column tiles, K >= 64: up to 12 the tall kernel
 * takes them 32 rows at a time (from a panel-aligned first row) between the wide
 * tiles; longer ones stay on the wide kernel's 2- and 3-vector tiles. */
Test(kern_sgemm, short_tails_on_the_tall_kernel) {
  ref_rng_t rng = {0xA5A5A5A5DEADBEEFull};
  for (int t = 1; t <= 37; t++)
    sgemm_check(&rng, 40 + 7 * (t % 13), 48 * (1 + t % 4) + t, 64 + 23 * (t % 11), t % 2 ? 16 : 0,
                t % 8);
}

Test(kern_sgemm, row_ranges_and_long_k) {
  ref_rng_t rng = {0x2545F4914F6CDD1Dull};
  sgemm_check(&rng, 37, 50, 300, 16, 7);
  sgemm_check(&rng, 64, 200, 1100, 8, 3); /* several column chunks at this k */
  sgemm_check(&rng, 3, 17, 5, 0, 6);
}

Test(kern_sgemm, tall_kernel_few_columns_long_k) {
  ref_rng_t rng = {0x9E3779B97F4A7C15ull};
  static const int cols[] = {1, 5, 12, 13, 16, 25, 49, 56};
  for (int i = 0; i < 8; i++) sgemm_check(&rng, 40 + 8 * (i % 3), cols[i], 256 + 37 * i, 0, i);
  sgemm_check(&rng, 64, 49, 300, 32, 7); /* a row range starting at a later panel */
  /* 33-56 columns: the wide kernel's 48 and a tall tail of up to 8 */
  static const int mid[][2] = {{33, 112}, {49, 128}, {56, 200}, {40, 255}};
  for (int i = 0; i < 4; i++) sgemm_check(&rng, 48 + 16 * i, mid[i][0], mid[i][1], 0, i);
}

/* Slices of K, accumulated: the wide kernel (several tiles and tails), the tall one
 * (at most 56 columns) with its partial sums read back as rows, row ranges, every
 * epilogue. */
Test(kern_sgemm, k_slices_accumulate) {
  ref_rng_t rng = {0xC0FFEE1234567ull};
  static const int cases[][5] = {/* m n k m0 slices */
                                 {40, 49, 900, 0, 3},  {64, 392, 1300, 16, 4}, {33, 7, 520, 0, 2},
                                 {48, 150, 700, 32, 5}, {20, 56, 260, 0, 2},   {100, 17, 64, 8, 2}};
  for (int i = 0; i < 6; i++)
    for (int e = 0; e < 8; e += 3)
      sgemm_check_k(&rng, cases[i][0], cases[i][1], cases[i][2], cases[i][3], e, cases[i][4]);
}

/* B by row offsets (the phase-plane convs' implicit lowering): both kernels, tails of
 * N on each, row ranges, every epilogue. */
Test(kern_sgemm, b_rows_by_offsets) {
  ref_rng_t rng = {0x1BADB002F00Dull};
  static const int cases[][4] = {/* m n k m0 */
                                 {40, 49, 900, 0},  {64, 200, 1152, 16}, {33, 7, 520, 0},
                                 {48, 150, 70, 32}, {20, 56, 260, 0},    {100, 17, 64, 8},
                                 {16, 96, 147, 0},  {70, 1, 300, 0}};
  for (int i = 0; i < 8; i++)
    for (int e = 0; e < 8; e += 3)
      sgemm_check_k(&rng, cases[i][0], cases[i][1], cases[i][2], cases[i][3], e, -1);
}

/* Shapes aimed at the AVX2 build's blocking (every build runs them): more than one M
 * block (K 256: 256 rows a block) and column chunk (120 columns at K 256), last strips
 * of 8-23 columns and tall tails of 1-6 (also in the last chunk, and alone), row ranges
 * from a half panel, row tails inside a 4-row group, and K slices with B by offsets. */
Test(kern_sgemm, blocks_chunks_and_tails) {
  ref_rng_t rng = {0x0DDBA11CAFEull};
  static const int cases[][5] = {/* m n k m0 slices */
                                 {300, 250, 256, 0, 1}, {300, 246, 256, 8, 1}, {37, 243, 256, 0, 1},
                                 {64, 4, 256, 8, 1},    {21, 31, 600, 0, 1},   {70, 49, 513, 8, 2},
                                 {50, 200, 300, 16, 3}, {19, 16, 700, 0, -1},  {45, 198, 260, 8, -1}};
  for (int i = 0; i < 9; i++)
    sgemm_check_k(&rng, cases[i][0], cases[i][1], cases[i][2], cases[i][3], 1 + 2 * (i % 4),
                  cases[i][4]);
}

/* The whole-panel tile (1-vector tails of 13-16 columns, and products of 13-16 columns
 * or of at most 12 that the tall kernel does not take: K < 64 or a row range from a half
 * panel) and the ninth vector of a last wide tile (one column after 48, 96, 144): row
 * ranges from a half panel and from a later panel, row tails inside the panel, every
 * epilogue, K slices accumulating and B by offsets. */
Test(kern_sgemm, panel_tiles_and_one_extra_column) {
  ref_rng_t rng = {0x7F4A7C159E3779B9ull};
  static const int cols[] = {13, 14, 15, 16, 61, 64, 112, 3, 10, 49, 97, 145};
  static const int starts[] = {0, 8, 16, 24};
  for (int i = 0; i < 12; i++)
    for (int s = 0; s < 4; s++) {
      int m0 = starts[s], m = m0 + 1 + (5 * i + 7 * s) % 40, k = i < 7 ? 70 + 31 * s : 40 + 9 * s;
      if (cols[i] > 48) k = 64 + 97 * s;
      int slices = s == 1 ? 3 : s == 3 ? -1 : 1;
      sgemm_check_k(&rng, m, cols[i], k, m0, (i + s) % 8, slices);
    }
}
