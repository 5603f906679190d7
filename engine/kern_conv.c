/*
 * kern_conv.c — 2-D convolution as im2col + sgemm with a fused epilogue.
 *
 * For each image, out[Cout, cols] = W[Cout, K] x col[K, cols] with cols = oh*ow and
 * K = cin*kh*kw. Threads never wait on each other inside a conv:
 *  - column split (the usual case): the n*cols output columns are cut into a few
 *    chunks per thread, which the threads claim as they go, each its own range first
 *    (kern_claim.h; a thread descheduled on a busy machine then holds back one chunk,
 *    not half the layer); each lowers its
 *    chunk's columns, block by block, into its scratch and multiplies them, writing
 *    straight into the strided output (ldc = cols);
 *  - row split (few columns per thread, e.g. 7x7 maps at batch 1, and maps of at
 *    most 56 columns at any batch): each thread takes a range of output channels
 *    (sized by the threads' measured speeds, kern_row_share) and all columns. Each
 *    thread streams only its share of W, where a column split would
 *    make every thread stream all of it (ResNet-50's layer4 at batch 8, 60 MB of
 *    weights: 37 -> 32 ms on 2 threads with the Winograd layers split the same way).
 *    When the lowering fits tid 0's scratch it is done once, each thread lowering a
 *    share of the input channels there (conv__share_lower, a pool_run of its own),
 *    rather than by every thread (session 17, Zen 3, ResNet-50 batch 1 on 2 threads,
 *    forwards alternating in one process: layer4.0's 3x3/2 median 2.10 -> 1.95 ms, the
 *    1x1/2 shortcuts onto 14x14 1.46 -> 1.41, onto 7x7 1.62 -> 1.59);
 *  - 3x3 stride-2 convs with padding 1 onto more than 100 outputs that the stride-2
 *    Winograd variant does not take (below 14x14, or fewer than 8 channels) read
 *    the input's phase planes in place, one product of K = 9 cin with no lowering
 *    (kern_conv_poly.c);
 *  - stride-2 kernels at least 5 wide (the 7x7 stems) on AVX-512 builds: one product
 *    per output row, its B rows read in place from the input's column phases
 *    (kern_conv_s2rows.c), prepared as here (gemm_a);
 *  - K slices (conv__grouped: the other kernels wider than 1 on maps of at most 196 outputs):
 *    the product runs over about 512 rows of K at a time, accumulating, and at
 *    batch > 1 over several images' columns side by side, so the weights stream
 *    once per group of images rather than once per image. The sum is taken in two
 *    halves of the input channels, added at the end. From batch 2 x threads
 *    the threads take whole images (conv__by_images); at batch 1 on two threads each
 *    takes one half-sum (conv__by_khalf); otherwise they take output channels.
 * A 1x1, stride-1, unpadded conv multiplies the input directly (no lowering). Such a
 * conv may carry row groups (kern_conv2d_groups: siblings merged, graph_siblings.c):
 * each block's product is then cut at the groups' boundaries, each part written to its
 * group's output (conv__block_run).
 * Column blocks are capped so that K x block stays a few MB (CONV_COL_FLOATS);
 * kern_conv2d_scratch_floats returns exactly that K x block.
 *
 * Bias, residual and ReLU are applied right after each block's sgemm, in one pass
 * over that block while it is still in cache.
 *
 * 3x3 stride-1 convs with enough channels, and 3x3 stride-2 ones (padding 1) onto maps
 * of at least 14x14 outputs, go to Winograd instead (kern_winograd.c):
 * kern_conv_prepare transforms their weights into `packed`, and kern_conv2d takes
 * that path whenever `packed` is set.
 *
 * OpenBLAS must be single-threaded (cnn_blas_single_thread); each thread's sgemm
 * is independent. No allocation here: scratch comes from kern_ctx_t.
 */
#include <cblas.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "kern_claim.h"
#include "kern_internal.h"
#include "kern_rows.h"
#include "mem.h"
#include "kern_sgemm.h"

enum {
  CONV_COL_FLOATS = 1 << 17,  /* lowered block budget per thread: 512 KB (L2) */
  CONV_TILE_COLS = 48,        /* kern_sgemm's micro-kernel width */
  CONV_SPLIT_COLS = 16,       /* column chunks are multiples of this */
  CONV_CHUNKS_PER_THREAD = 12, /* column chunks per thread, claimed dynamically */
  CONV_BLOCK_MIN = 48,        /* never lower fewer columns than this per block */
  CONV_ROWSPLIT_COLS = 160,   /* below this many columns per thread, split rows */
  CONV_ROW_ALIGN = 16,        /* row-split boundaries fall on multiples of this */
  CONV_TAIL_ABSORB = 16       /* a block takes a remainder this small along with it */
};

typedef struct {
  const kern_ctx_t *kc;
  const kern_conv_t *p;
  const float *in, *residual;
  float *out;
  float *const *outs; /* p->ngroups > 0: each row group's output (kern_conv2d_groups) */
  int n, h, w, ow;
  size_t cols, kdim, block, block_max, in_img, out_img; /* block_max: with an absorbed tail */
  int direct;
  int split_rows; /* kern_im2col takes tmp after the lowered block (kern_im2col_tmp_floats) */
  int group, group_cin;                /* conv__grouped: images per product, channels per K slice */
  int khalf;                           /* conv__grouped: where its second half-sum starts */
  int shared;                          /* row split: the whole lowering in tid 0's scratch */
  kern_rows_t rows;                    /* row split: the shares and their tails */
  size_t vecs_img, chunk_vecs, chunks; /* column split: chunks of chunk_vecs 16-col vectors */
  kern_claim_t claim;                  /* column split: claimed by the threads as they go */
  atomic_size_t next_chunk;            /* conv__by_images: groups claimed in order */
} conv_job_t;

int kern_conv_direct(const kern_conv_t *p) {
  return p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_t == 0 &&
         p->pad_l == 0 && p->pad_b == 0 && p->pad_r == 0;
}

/* Columns lowered per block: within the budget, a whole number of micro-kernel
 * tiles (CONV_TILE_COLS), so only the last block of a range has a partial tile. */
static size_t conv__block(size_t kdim, size_t cols) {
  size_t b = CONV_COL_FLOATS / (kdim ? kdim : 1) / CONV_TILE_COLS * CONV_TILE_COLS;
  if (b < CONV_BLOCK_MIN) b = CONV_BLOCK_MIN;
  return b < cols ? b : cols;
}

/* End of the block starting at c0 within [c0, limit): `block` columns, or all the
 * rest when at most CONV_TAIL_ABSORB more would be left. A separate block for a few
 * columns would stream the weights once more for them: a 7x7 map's 49 columns ran
 * as 48 + 1 at K = 4608, a 14x14 map's 196 as 4 x 48 + 4 at K = 2304. */
static size_t conv__block_end(size_t c0, size_t limit, size_t block) {
  size_t c1 = c0 + block;
  return c1 + CONV_TAIL_ABSORB >= limit ? limit : c1;
}

/* ---- batches of small maps ------------------------------------------------------------ */

/* At batch > 1, a map of at most CONV_GROUP_MAX_COLS outputs (7x7: 49) gives each
 * image's product so few columns that the weights stream once per image: ResNet-50's
 * layer4 at batch 8 read its 3x3/2 conv's 9 MB eight times, at 188-197 GFLOP/s on one
 * thread. conv__grouped multiplies the columns of `group` images side by side instead,
 * in slices of about CONV_GROUP_KC rows of K (whole input channels) so the lowered
 * block stays in L2, accumulating into a rows x (group * cols) product in scratch, and
 * then writes each image's part with the epilogue. The group is capped so that product
 * stays under CONV_GROUP_C_FLOATS. Measured (bench_conv, one thread): the 3x3/2 512 conv
 * at batch 8 9.4-9.6 -> 8.4-8.5 ms and at batch 1 1.23-1.25 -> 1.16-1.17 ms (K slices
 * alone help a 4608-long K); the 3x3/2 256 conv on 14x14 outputs 1.11 -> 1.06-1.08 ms.
 * 1x1 convs stay per image: their K slices cost more than the grouping saved, when
 * measured (ResNet-50 layer4's at batch 1, 2 threads: 0.22 -> 0.26 ms, with the
 * partial sums then gathered by the tall kernel). */
enum {
  CONV_GROUP_MAX_COLS = 196,
  CONV_GROUP_KC = 512,
  CONV_GROUP_COLS = 512,
  CONV_GROUP_C_FLOATS = 1 << 18
};

/* The most output channels one thread's share of a row split can hold (conv__by_rows;
 * the shares follow the threads' speeds, kern_row_share). */
static size_t conv__share_rows(const kern_conv_t *p, int nt) {
  size_t m = kern_row_share_max(p->cout, CONV_ROW_ALIGN, nt);
  return m ? m : 1;
}

/* Images per product for n images of `cols` outputs on nt threads; 0 when the conv
 * does not take this path. Every batch, batch 1 included, takes it for such maps:
 * the K slices fix the order of the sums, and a batch's rows must equal their
 * batch-1 forwards bit for bit (tests/unit/test_forward_batch.c). */
static int conv__group(const kern_conv_t *p, size_t cols, int n, int nt) {
  if (!p->gemm_a || p->poly || p->kh * p->kw == 1 || cols == 0 || cols > CONV_GROUP_MAX_COLS ||
      n < 1)
    return 0;
  size_t g = CONV_GROUP_COLS / cols, gc = CONV_GROUP_C_FLOATS / (conv__share_rows(p, nt) * cols);
  if (gc < g) g = gc;
  if ((size_t)n < g) g = (size_t)n;
  return g < 1 ? 1 : (int)g;
}

/* Input channels per K slice: about CONV_GROUP_KC rows, at least one channel. */
static int conv__group_cin(const kern_conv_t *p) {
  int c = CONV_GROUP_KC / (p->kh * p->kw);
  return c < 1 ? 1 : c > p->cin ? p->cin : c;
}

/* Where the second of a grouped conv's two half-sums starts (see conv__grouped): half
 * the input channels when there are several K slices, else cin (one sum). */
static int conv__khalf(const kern_conv_t *p) {
  return p->cin > conv__group_cin(p) ? p->cin / 2 : p->cin;
}

/* One K slice's lowering and `sums` products of rows x (g x cols). */
static size_t conv__group_floats_sums(const kern_conv_t *p, size_t cols, int g, size_t rows,
                                      int sums) {
  size_t gcols = (size_t)g * cols;
  return (size_t)conv__group_cin(p) * (size_t)(p->kh * p->kw) * gcols +
         (size_t)sums * rows * gcols;
}

static size_t conv__group_floats_rows(const kern_conv_t *p, size_t cols, int g, size_t rows) {
  return conv__group_floats_sums(p, cols, g, rows, conv__khalf(p) < p->cin ? 2 : 1);
}

static size_t conv__group_floats(const kern_conv_t *p, size_t cols, int g, int nt) {
  return conv__group_floats_rows(p, cols, g, conv__share_rows(p, nt));
}

/* Image split of a grouped conv (conv__by_images): at batch >= 2 x threads each thread
 * takes whole images, all output channels, in claims of CONV_IMG_CLAIM images or fewer.
 * Images per product: as many as one claim holds within the row split's scratch
 * (0: the image split does not fit and the row split runs). */
enum { CONV_IMG_CLAIM = 4 };
static int conv__img_group(const kern_conv_t *p, size_t cols, int n, int nt, size_t scratch) {
  int g = n / nt < CONV_IMG_CLAIM ? n / nt : CONV_IMG_CLAIM;
  while (g > 0 && conv__group_floats_rows(p, cols, g, (size_t)p->cout) > scratch) g--;
  return g;
}

int kern_conv_prepare(kern_conv_t *p) {
  p->packed = NULL;
  p->gemm_a = NULL;
  p->wino_m = 0;
  p->poly = 0;
  p->s2rows = 0;
  if (kern_wino_eligible(p)) return kern_wino_prepare(p);
  if (kern_poly_eligible(p)) return kern_poly_prepare(p);
  if (!kern_sgemm_available()) return 0;
  int kdim = p->cin * p->kh * p->kw;
  if (!(p->gemm_a = cnn_mem_alloc(kern_sgemm_packed_floats(p->cout, kdim) * sizeof(float))))
    return CNN_ENOMEM;
  kern_sgemm_pack(p->weight, p->cout, kdim, (size_t)kdim, p->gemm_a);
  p->s2rows = kern_s2rows_eligible(p);
  return 0;
}

void kern_conv_release(kern_conv_t *p) {
  free(p->packed);
  free(p->gemm_a);
  p->packed = NULL;
  p->gemm_a = NULL;
}

size_t kern_conv2d_scratch_floats(const kern_conv_t *p, int h, int w, int oh, int ow,
                                  int nthreads) {
  size_t kdim = (size_t)p->cin * (size_t)p->kh * (size_t)p->kw;
  size_t cols = (size_t)oh * (size_t)ow, block = conv__block(kdim, cols);
  if (block < cols) block += CONV_TAIL_ABSORB; /* conv__block_end */
  size_t need = kdim * block + kern_im2col_tmp_floats(p, h, ow);
  if (kern_wino_eligible(p) && kern_wino_scratch_floats(p, ow) > need)
    need = kern_wino_scratch_floats(p, ow);
  if (kern_poly_eligible(p) && kern_poly_scratch_floats(p, oh, ow) > need)
    need = kern_poly_scratch_floats(p, oh, ow);
  if (kern_s2rows_eligible(p) && kern_s2rows_scratch_floats(p, w, ow) > need)
    need = kern_s2rows_scratch_floats(p, w, ow);
  int g = conv__group(p, cols, INT32_MAX, nthreads); /* any batch */
  if (g > 0 && conv__group_floats(p, cols, g, nthreads) > need)
    need = conv__group_floats(p, cols, g, nthreads);
  if (g > 0 && nthreads == 2 && conv__khalf(p) < p->cin && /* conv__by_khalf */
      conv__group_floats_sums(p, cols, 1, (size_t)p->cout, 1) > need)
    need = conv__group_floats_sums(p, cols, 1, (size_t)p->cout, 1);
  return need;
}

/* c[j] = act(c[j] + b + res[j]) in one vectorizable loop per variant. */
void kern_conv_epi_row(float *c, const float *res, float b, size_t nc, int relu) {
  if (res && relu)
    for (size_t j = 0; j < nc; j++) {
      float v = c[j] + b + res[j];
      c[j] = v > 0.0f ? v : 0.0f;
    }
  else if (res)
    for (size_t j = 0; j < nc; j++) c[j] += b + res[j];
  else if (relu)
    for (size_t j = 0; j < nc; j++) {
      float v = c[j] + b;
      c[j] = v > 0.0f ? v : 0.0f;
    }
  else
    for (size_t j = 0; j < nc; j++) c[j] += b;
}

/* y = act(y + bias + residual) over rows [r0, r1) x nc columns of a block. */
static void conv__epilogue(const kern_conv_t *p, float *c, const float *res, int r0, int r1,
                           size_t nc, size_t ldc) {
  for (int r = r0; r < r1; r++, c += ldc, res = res ? res + ldc : NULL)
    kern_conv_epi_row(c, res, p->bias ? p->bias[r] : 0.0f, nc, p->relu);
}

/* Rows [r0, r1) of W times nc columns of B into c (row r0's first column; rows cols
 * apart), with the epilogue; res likewise, or NULL. */
static void conv__product(const conv_job_t *j, int r0, int r1, size_t nc, const float *b,
                          size_t ldb, float *c, const float *res) {
  const kern_conv_t *p = j->p;
  if (p->gemm_a) {
    kern_sgemm_epi_t epi = {.bias = p->bias, .res = res, .ldr = j->cols, .relu = p->relu};
    kern_sgemm_run(p->gemm_a, r0, r1, (int)j->kdim, b, ldb, nc, c, j->cols, &epi);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, (int)nc, (int)j->kdim, 1.0f,
              p->weight + (size_t)r0 * j->kdim, (int)j->kdim, b, (int)ldb, 0.0f, c,
              (int)j->cols);
  if (p->bias || res || p->relu) conv__epilogue(p, c, res, r0, r1, nc, j->cols);
}

/* Output channels [r0, r1) x columns [c0, c1) of image img (split among the row groups'
 * outputs when there are groups). */
static void conv__block_run(const conv_job_t *j, int img, int r0, int r1, size_t c0,
                            size_t c1, float *scratch) {
  const kern_conv_t *p = j->p;
  const float *in = j->in + (size_t)img * j->in_img;
  const float *b;
  size_t ldb;
  if (j->direct) {
    b = in + c0;
    ldb = j->cols;
  } else if (j->shared) { /* image 0's lowering, all columns (conv__share_lower) */
    b = j->kc->scratch[0] + c0;
    ldb = j->cols;
  } else {
    kern_im2col(p, in, j->h, j->w, j->ow, c0, c1, scratch,
                j->split_rows ? scratch + j->kdim * j->block_max : NULL);
    b = scratch;
    ldb = c1 - c0;
  }
  if (!p->ngroups) {
    size_t off = (size_t)img * j->out_img + (size_t)r0 * j->cols + c0;
    conv__product(j, r0, r1, c1 - c0, b, ldb, j->out + off,
                  j->residual ? j->residual + off : NULL);
    return;
  }
  for (int g = 0; g < p->ngroups; g++) { /* the rows of each output this block holds */
    int g0 = p->group_row[g], g1 = p->group_row[g + 1];
    int a = r0 > g0 ? r0 : g0, e = r1 < g1 ? r1 : g1;
    size_t gimg = p->group_out_img[g] ? p->group_out_img[g] : (size_t)(g1 - g0) * j->cols;
    if (a < e)
      conv__product(j, a, e, c1 - c0, b, ldb,
                    j->outs[g] + (size_t)img * gimg + (size_t)(a - g0) * j->cols + c0, NULL);
  }
}

/* Column split, claimed chunk by chunk: a thread that is descheduled on a busy
 * machine leaves its later chunks to the others instead of holding the whole layer
 * back. Chunks are whole 16-column vectors of an image's columns, CONV_CHUNKS_PER_THREAD
 * per thread and each a whole number of 48-column tiles when large enough, so a chunk
 * has at most one partial micro-kernel tile per image it touches. 12 chunks per thread
 * rather than 4: the last chunks leave less of one thread's time idle when the two run
 * at different speeds (ResNet-50 batch 1 on 2 threads, per-node minima, alternating:
 * 15.05 -> 14.77 ms; 16 and 24 gained less, 14.91 and 15.06; GoogLeNet 5.20 -> 5.15).
 * The chunks reread the weights, which at these maps' sizes stay in L2. Each thread
 * claims its own range of chunks first (kern_claim.h), so at batch 1 it reads the
 * columns it wrote in the layer before: ResNet-50 batch 1 on 2 threads, in the host's
 * slow phases 18.7 -> 17.6 ms p50 (layer1's convs 0.32-0.35 -> 0.23-0.26 ms), in calm
 * ones unchanged (15.4).
 * One thread takes one chunk per image: with nobody to balance against, a chunk only
 * cuts the image's columns where the blocks (conv__block_end) would not, and every cut
 * streams the weights once more. It had kept 4 chunks, which cut a 7x7 map's 49 columns
 * into 16 + 16 + 16 + 1 and read ResNet-50's 4 MB layer4 1x1 weights four times from
 * memory. ResNet-50 batch 1 on one thread (session 27, Zen 5, per-node minima / medians):
 * layer4's 1x1 convs on 7x7 3.72 / 4.00 -> 2.48 / 2.71 ms, its 1x1/2 shortcut 1.41 ->
 * 1.07, the whole forward 34.55 / 36.75 -> 32.50 / 34.66 ms. The daemon runs one thread
 * where it may use one CPU (a 1-CPU container). A batch's early layers also run image by
 * image on one thread each (ctx.c, serial_run), on maps the blocks cut anyway: batch 8
 * on 2 threads, p50 alternating, 144.9 / 144.8 -> 144.3 / 143.6 ms. */
static void conv__by_cols(void *arg, int tid, int nt) {
  conv_job_t *j = arg;
  size_t total = (size_t)j->n * j->vecs_img;
  for (size_t u; kern_claim_next(&j->claim, tid, &u);) {
    size_t b = u * j->chunk_vecs, e = b + j->chunk_vecs < total ? b + j->chunk_vecs : total;
    b = b / j->vecs_img * j->cols + b % j->vecs_img * CONV_SPLIT_COLS;
    e = e / j->vecs_img * j->cols + (e % j->vecs_img) * CONV_SPLIT_COLS;
    if (e > (size_t)j->n * j->cols) e = (size_t)j->n * j->cols;
    for (size_t pos = b; pos < e;) {
      int img = (int)(pos / j->cols);
      size_t c0 = pos % j->cols, lim = j->cols - c0 < e - pos ? j->cols : c0 + (e - pos);
      size_t c1 = conv__block_end(c0, lim, j->block);
      conv__block_run(j, img, 0, j->p->cout, c0, c1,
                      j->kc->scratch ? j->kc->scratch[tid] : NULL);
      pos += c1 - c0;
    }
  }
}

/* Input channels [h0, h1) of images [i0, i0 + gn) into prod (rows [r0, r1) x gn cols),
 * K slice by K slice: prod = the slices' products summed in order. */
static void conv__half_sum(const conv_job_t *j, int i0, int gn, int h0, int h1, int r0, int r1,
                           float *blk, float *prod) {
  const kern_conv_t *p = j->p;
  size_t cols = j->cols, nc = (size_t)gn * cols;
  int khw = p->kh * p->kw;
  for (int ci0 = h0; ci0 < h1; ci0 += j->group_cin) {
    int ci1 = h1 - ci0 < j->group_cin ? h1 : ci0 + j->group_cin;
    if (j->shared)
      blk = j->kc->scratch[0] + (size_t)ci0 * (size_t)khw * nc;
    else
      for (int q = 0; q < gn; q++) /* kernels wider than 1 only: always lowered */
        kern_im2col_part(p, j->in + (size_t)(i0 + q) * j->in_img, j->h, j->w, j->ow, 0, cols,
                         ci0, ci1, blk + (size_t)q * cols, nc);
    kern_sgemm_epi_t e = {.accumulate = ci0 > h0};
    kern_sgemm_run_k(p->gemm_a, (int)j->kdim, ci0 * khw, ci1 * khw, r0, r1, blk, nc, nc, prod,
                     nc, &e);
  }
}

/* Output row r of image img: the two half-sums (h1 NULL: one), then the epilogue. */
static void conv__out_row(const conv_job_t *j, int img, int r, const float *h0, const float *h1) {
  const kern_conv_t *p = j->p;
  size_t cols = j->cols, off = (size_t)img * j->out_img + (size_t)r * cols;
  float *o = j->out + off;
  if (h1)
    for (size_t c = 0; c < cols; c++) o[c] = h0[c] + h1[c];
  else
    memcpy(o, h0, cols * sizeof(float));
  kern_conv_epi_row(o, j->residual ? j->residual + off : NULL, p->bias ? p->bias[r] : 0.0f, cols,
                    p->relu);
}

/* Output channels [r0, r1) of images [n0, n1), `group` images per product (see above).
 * The sum over K is taken in two halves, input channels [0, khalf) and [khalf, cin),
 * each K slice by K slice, and the halves then added, whatever the batch and the
 * threads, so that two threads may each take one half at batch 1 (conv__by_khalf). */
static void conv__grouped(const conv_job_t *j, int n0, int n1, int r0, int r1, float *scratch) {
  const kern_conv_t *p = j->p;
  size_t cols = j->cols, rows = (size_t)(r1 - r0);
  int khw = p->kh * p->kw;
  float *blk = scratch, *prod = scratch + (size_t)j->group_cin * (size_t)khw * (size_t)j->group * cols;
  if (j->shared) /* every image's lowering, all of K, in tid 0's scratch (conv__share_lower) */
    prod = scratch + j->kdim * (size_t)j->n * cols;
  float *prod2 = j->khalf < p->cin ? prod + rows * (size_t)j->group * cols : NULL;
  for (int i0 = n0; i0 < n1; i0 += j->group) {
    int gn = n1 - i0 < j->group ? n1 - i0 : j->group;
    size_t nc = (size_t)gn * cols;
    conv__half_sum(j, i0, gn, 0, j->khalf, r0, r1, blk, prod);
    if (prod2) conv__half_sum(j, i0, gn, j->khalf, p->cin, r0, r1, blk, prod2);
    for (int q = 0; q < gn; q++)
      for (size_t r = 0; r < rows; r++)
        conv__out_row(j, i0 + q, r0 + (int)r, prod + r * nc + (size_t)q * cols,
                      prod2 ? prod2 + r * nc + (size_t)q * cols : NULL);
  }
}

/* Batch 1 on two threads (ResNet's 3x3/2 conv onto 7x7): each thread takes one half-sum
 * of conv__grouped, every output channel, lowering its own half of the input channels
 * into its own scratch; a second task adds the halves and applies the epilogue, each
 * thread a share of the rows. The row split lowered all of K once, both threads writing
 * their channels into thread 0's scratch and then reading all of it, so most of a
 * 900 KB lowering crossed between the cores; here only the other half-sum's rows do
 * (50 KB), and each thread lowers channels its core wrote in the layer before. Session
 * 28 (Zen 5), ResNet-50's layer4.0 3x3/2 on 2 threads: bench_conv 0.764-0.773 ->
 * 0.651-0.652 ms; in a batch-1 forward (bench_engine --profile, alternating) fastest
 * 0.78-0.79 -> 0.71-0.72 ms, median 0.84-0.87 -> 0.76-0.78. */
static float *conv__khalf_prod(const conv_job_t *j, int tid) {
  return j->kc->scratch[tid] + (size_t)j->group_cin * (size_t)(j->p->kh * j->p->kw) * j->cols;
}

static void conv__by_khalf(void *arg, int tid, int nt) {
  const conv_job_t *j = arg;
  (void)nt;
  int h0 = tid ? j->khalf : 0, h1 = tid ? j->p->cin : j->khalf;
  conv__half_sum(j, 0, 1, h0, h1, 0, j->p->cout, j->kc->scratch[tid], conv__khalf_prod(j, tid));
}

static void conv__khalf_add(void *arg, int tid, int nt) {
  const conv_job_t *j = arg;
  size_t r0, r1, cols = j->cols;
  pool_split((size_t)j->p->cout, tid, nt, &r0, &r1);
  const float *a = conv__khalf_prod(j, 0), *b = conv__khalf_prod(j, 1);
  for (size_t r = r0; r < r1; r++) conv__out_row(j, 0, (int)r, a + r * cols, b + r * cols);
}

/* The row split's lowering, done once: each thread lowers its share of the input
 * channels, for every image side by side (row stride n x cols), into tid 0's scratch,
 * which every thread's products then read (conv__block_run, conv__grouped). */
static void conv__share_lower(void *arg, int tid, int nt) {
  const conv_job_t *j = arg;
  const kern_conv_t *p = j->p;
  size_t c0, c1, nc = (size_t)j->n * j->cols, khw = (size_t)(p->kh * p->kw);
  pool_split((size_t)p->cin, tid, nt, &c0, &c1);
  for (int q = 0; q < j->n && c0 < c1; q++)
    kern_im2col_part(p, j->in + (size_t)q * j->in_img, j->h, j->w, j->ow, 0, j->cols, (int)c0,
                     (int)c1, j->kc->scratch[0] + c0 * khw * nc + (size_t)q * j->cols, nc);
}

/* Whether a row split lowers once for all threads (conv__share_lower): when every image's
 * columns make one product (grouped: one group; otherwise batch 1 in one block) and the
 * whole lowering, with tid 0's product of a grouped conv after it, fits its scratch.
 * The K slices and their order stay as they were, so results do not change. */
static int conv__shares(const conv_job_t *j, int nt) {
  if (nt < 2 || j->direct || j->split_rows || !j->kc->scratch) return 0;
  size_t nc = (size_t)j->n * j->cols, need = j->kdim * nc;
  if (j->group > 0) {
    if (j->group < j->n) return 0;
    need += conv__share_rows(j->p, nt) * nc;
  } else if (j->n != 1 || conv__block_end(0, j->cols, j->block) != j->cols) {
    return 0;
  }
  return need <= j->kc->scratch_floats;
}

static void conv__by_rows(void *arg, int tid, int nt) {
  conv_job_t *j = arg;
  (void)nt;
  kern_piece_t pc;
  for (int it = 0; kern_rows_next(&j->rows, j->kc, tid, &it, &pc);) {
    if (j->group > 0) {
      conv__grouped(j, 0, j->n, pc.r0, pc.r1, j->kc->scratch[tid]);
      continue;
    }
    for (int img = pc.i0; img < pc.i1; img++)
      for (size_t c0 = 0, c1; c0 < j->cols; c0 = c1) {
        c1 = conv__block_end(c0, j->cols, j->block);
        conv__block_run(j, img, pc.r0, pc.r1, c0, c1,
                        j->kc->scratch ? j->kc->scratch[tid] : NULL);
      }
  }
}

/* Whole images per thread, all output channels, claimed CONV_IMG_CLAIM at a time. The
 * row split made both threads lower every image's block; with 196 columns per
 * product the weights cost little to stream twice. ResNet-50's layer4 3x3/2 conv at
 * batch 8 on 2 threads (bench_conv): 4.87 -> 4.31 ms. */
static void conv__by_images(void *arg, int tid, int nt) {
  (void)nt;
  conv_job_t *j = arg;
  for (;;) {
    size_t u = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
    int n0 = (int)u * CONV_IMG_CLAIM;
    if (n0 >= j->n) return;
    int n1 = j->n - n0 < CONV_IMG_CLAIM ? j->n : n0 + CONV_IMG_CLAIM;
    conv__grouped(j, n0, n1, 0, j->p->cout, j->kc->scratch[tid]);
  }
}

static void conv__run(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                      int w, float *out, float *const *outs, int oh, int ow,
                      const float *residual) {
  if (p->packed) {
    kern_wino_conv2d(kc, p, in, n, h, w, out, oh, ow, residual);
    return;
  }
  if (p->poly) {
    kern_poly_conv2d(kc, p, in, n, h, w, out, oh, ow, residual);
    return;
  }
  if (p->s2rows && kc->scratch) {
    size_t need = kern_s2rows_scratch_floats(p, w, ow);
    if (need > 0 && need <= kc->scratch_floats) {
      kern_s2rows_conv2d(kc, p, in, n, h, w, out, oh, ow, residual);
      return;
    }
  }
  conv_job_t j = {.kc = kc, .p = p, .in = in, .residual = residual, .out = out, .outs = outs,
                  .n = n, .h = h, .w = w, .ow = ow};
  j.cols = (size_t)oh * (size_t)ow;
  j.kdim = (size_t)p->cin * (size_t)p->kh * (size_t)p->kw;
  j.block = conv__block(j.kdim, j.cols);
  j.block_max = j.block < j.cols ? j.block + CONV_TAIL_ABSORB : j.block;
  j.in_img = (size_t)p->cin * (size_t)h * (size_t)w;
  j.out_img = kern_conv_out_img(p, j.cols);
  j.direct = kern_conv_direct(p);
  j.split_rows = kern_im2col_tmp_floats(p, h, ow) > 0;
  if (j.cols == 0 || n <= 0 || p->cout <= 0) return;
  int nt = kern_threads(kc);
  j.group = conv__group(p, j.cols, n, nt);
  if (j.group > 0 && (!kc->scratch || conv__group_floats(p, j.cols, j.group, nt) > kc->scratch_floats))
    j.group = 0; /* a context sized for fewer threads: per image, not bit-equal to batch 1 */
  j.group_cin = conv__group_cin(p);
  j.khalf = conv__khalf(p);
  if (j.group > 0 && n == 1 && nt == 2 && j.khalf < p->cin &&
      conv__group_floats_sums(p, j.cols, 1, (size_t)p->cout, 1) <= kc->scratch_floats) {
    pool_run(kc->pool, conv__by_khalf, &j);
    pool_run(kc->pool, conv__khalf_add, &j);
    return;
  }
  if (j.group > 0 && nt > 1 && n >= 2 * nt) {
    int g = conv__img_group(p, j.cols, n, nt, kc->scratch_floats);
    if (g > 0) {
      j.group = g;
      atomic_init(&j.next_chunk, 0);
      pool_run(kc->pool, conv__by_images, &j);
      return;
    }
  }
  int rows = (nt > 1 && ((size_t)n * j.cols / (size_t)nt < CONV_ROWSPLIT_COLS || j.cols <= 56) &&
              p->cout >= nt * CONV_ROW_ALIGN) || j.group > 0;
  j.vecs_img = (j.cols + CONV_SPLIT_COLS - 1) / CONV_SPLIT_COLS;
  size_t total = (size_t)n * j.vecs_img;
  size_t want = nt > 1 ? (size_t)nt * CONV_CHUNKS_PER_THREAD : (size_t)n; /* see conv__by_cols */
  j.chunk_vecs = (total + want - 1) / want;
  if (j.chunk_vecs >= 3) j.chunk_vecs = (j.chunk_vecs + 2) / 3 * 3;
  j.chunks = (total + j.chunk_vecs - 1) / j.chunk_vecs;
  kern_claim_init(&j.claim, j.chunks, nt);
  j.shared = rows && conv__shares(&j, nt);
  if (j.shared) pool_run(kc->pool, conv__share_lower, &j);
  /* a grouped conv's row tails would each lower all of K again unless it is shared */
  if (rows)
    kern_rows_init(&j.rows, kc, p->cout, CONV_ROW_ALIGN, j.group > 0 ? 1 : n,
                   j.group == 0 || j.shared);
  pool_run(kc->pool, rows ? conv__by_rows : conv__by_cols, &j);
  if (rows) kern_rows_learn(&j.rows, kc);
}

void kern_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                 int w, float *out, int oh, int ow, const float *residual) {
  conv__run(kc, p, in, n, h, w, out, NULL, oh, ow, residual);
}

/* Only direct 1x1 convs have groups (kernels.h): they take the column or row split,
 * whose blocks (conv__block_run) write each group's rows to its own output. */
void kern_conv2d_groups(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n,
                        int h, int w, float *const *outs, int oh, int ow) {
  conv__run(kc, p, in, n, h, w, outs[0], outs, oh, ow, NULL);
}
