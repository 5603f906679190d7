/*
 * kern_winograd.c — 3x3 stride-1 convolution by Winograd F(2x2, 3x3) and sgemm; the
 * driver is shared with F(4x4, 3x3), whose transforms live in kern_wino4.c and which
 * large maps take on AVX-512 builds (kern_conv_t.wino_m says which), and with a
 * stride-2 variant for 3x3/2 convs onto maps of at least 14x14 (kern_wino_s2.c: 2x2
 * output tiles from 5x5 patches, 25 positions whose products share 16 weight planes;
 * ResNet-50 at batch 1 on 2 threads, its 56x56 and 28x28 ones 0.56 -> 0.44 ms each,
 * where kern_conv_poly.c had them; on 7x7 maps it lost at batch 8).
 *
 * Each 2x2 block of output (a "tile") comes from a 4x4 input patch d. With
 * U = G g G^T (the 3x3 filter g taken to 4x4 at load time) and V = B^T d B,
 * the tile is A^T [U (.) V] A. Summed over input channels, the elementwise
 * product becomes 16 independent matrix products, one per position xi of the
 * 4x4 transform domain:  M[xi] (Cout x tiles) = U[xi] (Cout x Cin) x V[xi] (Cin x tiles),
 * which the engine's sgemm (kern_sgemm.c; OpenBLAS without AVX-512) runs at full
 * speed. That is 16 multiplies per tile and channel pair instead of 36 (2.25x
 * fewer); its transforms only hold 0, +-1 and 1/2, so the result stays within a few
 * ulps of the direct sum. F(4x4) (36 per 16 outputs, 4x fewer) rounds worse and is
 * kept to the large maps where it gains most (kern_wino4.c).
 *
 * Tiles are numbered over the whole batch (image-major, then tile row, column),
 * so at batch 8 a block may span images. Per thread and block of tiles: input
 * transform into V [Cin][xi][tiles], xi sgemms into M [xi][rows][tiles], output
 * transform with the fused epilogue y = act(y + bias + residual) written straight
 * into the NCHW output (edge tiles clipped). Work split, as in kern_conv.c: by tile
 * chunks claimed as the threads go, each its own range first (kern_claim.h; one
 * chunk at 1 thread), or by ranges of output channels when there are few tiles per
 * thread or per image (7x7 maps, where U is
 * the larger stream even at batch 8; each thread reads only its share of U; in builds
 * without AVX-512, when the tiles make one block their V is transformed once, each
 * thread a share of the channels, and shared, see kern_wino_conv2d). Blocks
 * hold at most tb tiles, so that V + M stay within a budget (wino__tb), and a chunk
 * is cut into equal blocks; kern_wino_scratch_floats returns exactly that need.
 * The F(2x2) input transform reads the plane straight into registers (masked
 * loads, even/odd permutes); the output goes through a few half rows of scratch.
 * Blocks of whole images of maps at most 16 wide take kern_wino_small.c's
 * transforms instead, several tile rows per vector (a whole 7x7 plane, or two tile
 * rows of a 14x14 one), the same sums: the row runs filled 4 or 7 of 16 lanes there.
 * F(4x4) and the stride-2 variant do the same on maps of at most 8 tiles a row (their
 * *_rows_* transforms: two tile rows per vector).
 *
 * U is the only allocation, made by kern_wino_prepare at model load (owned by the
 * kern_conv_t through `packed`, freed by kern_conv_release). OpenBLAS must be
 * single-threaded, as for every kernel.
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
#include "kern_winograd.h"
#include "kern_simd.h"

enum {
  WINO_XI = 16,             /* F(2x2): 4x4 transform domain */
  WINO4_XI = 36,            /* F(4x4): 6x6 */
  WINO4_MIN_OUT = 56 * 56,  /* F(4x4) from this many outputs per map (kern_wino4.c), */
  WINO4_MIN_OUT_WIDE = 28 * 28, /* or from this many for layers of at least */
  WINO4_WIDE_CIN = 96,          /* this many input channels, */
  WINO4_MIN_OUT_WIDENING = 14 * 14, /* AVX2 builds: or this many if they widen or keep */
  WINO_BUDGET = 1 << 20,    /* V + M floats per thread: 4 MB (see wino__tb), */
  WINO_BUDGET_SMALL_U = 1 << 18, /* 1 MB for layers whose U has at most */
  WINO_SMALL_U = 300000,         /* this many floats (1.2 MB) */
  WINO_TB_MIN = 16,         /* never fewer tiles per block */
  WINO_ROWSPLIT_TILES = 64, /* below this many tiles per thread, split output channels */
  WINO_ROW_ALIGN = 16,
  WINO_CHUNKS_PER_THREAD = 4, /* tile chunks per thread, claimed dynamically, */
  WINO_CHUNK_MIN = 48,        /* of at least this many tiles */
  WINO_CH_MIN = 8, /* below this many channels the products are too thin to gain */
  WINO_VL = 16,    /* tiles per vector in the transforms */
  WINO_S2_MIN_OUT = 14 * 14, /* the stride-2 variant from this many outputs per map */
#if defined(__AVX512F__)
  WINO_SHARE_V = 0 /* a row split's threads each transform all of V (kern_wino_conv2d) */
#else
  WINO_SHARE_V = 1 /* a row split of one block shares its V (kern_wino_conv2d) */
#endif
};


/* 3x3 stride-2 convs with padding 1 take the stride-2 variant (kern_wino_s2.c). */
static int wino__s2(const kern_conv_t *p) {
  return p->kh == 3 && p->kw == 3 && p->stride_h == 2 && p->stride_w == 2 && p->pad_t == 1 &&
         p->pad_l == 1 && p->pad_b == 1 && p->pad_r == 1;
}

int kern_wino_eligible(const kern_conv_t *p) {
  if (p->cin < WINO_CH_MIN || p->cout < WINO_CH_MIN) return 0;
  if (wino__s2(p))
    return kern_wino_s2_supported() && (long)p->map_oh * p->map_ow >= WINO_S2_MIN_OUT;
  return p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1;
}

/* Transform positions of the layer's variant (kern_wino_prepare sets wino_m). */
static size_t wino__xi(const kern_conv_t *p) {
  return wino__s2(p) ? KERN_WINO_S2_XI : p->wino_m == 4 ? WINO4_XI : WINO_XI;
}

/* Weight planes: one per position, but 16 for the stride-2 variant. */
static size_t wino__uplanes(const kern_conv_t *p) { return wino__s2(p) ? 16 : wino__xi(p); }

/* Size of one xi's U as the products read it: packed panels, or the plain matrix. */
static size_t wino__uplane(const kern_conv_t *p) {
  return kern_sgemm_available() ? kern_sgemm_packed_floats(p->cout, p->cin)
                                : (size_t)p->cin * (size_t)p->cout;
}

/* Floats of the whole U (kern_wino_prepare allocates it). */
static size_t wino__ufloats(const kern_conv_t *p) { return wino__uplanes(p) * wino__uplane(p); }

/* Positions the budget is counted in: the stride-2 variant's 25 count as 16, so its
 * blocks hold as many tiles as F(2x2)'s. A 14x14 output's 49 tiles of 256 + 256
 * channels are then one block, transformed once per thread by a row split (ResNet-50's
 * layer3 3x3/2 at batch 1 on 2 threads: 0.53 -> 0.44 ms); blocks of a whole batch
 * (8 x 49 tiles) were slower, for this layer and the 28x28 one (3.8 -> 4.3 ms and
 * 4.6 -> 5.4 at batch 8). */
static size_t wino__xb(const kern_conv_t *p) { return wino__s2(p) ? WINO_XI : wino__xi(p); }

/* Most tiles per block within the budget. Not rounded down to the products' 48-column
 * tiles: a 14x14 map's 49 tiles then make one block, which streams U once, not twice.
 * Budget 4 MB rather than 2 since the AVX2 sgemm's wide kernel (session 12; Zen 3, 2
 * threads, sums of per-node minima over 3 alternating runs): batch 8 ResNet-50 330 ->
 * 326 ms (layer4's 3x3 9.3 -> 8.2 ms each, U streamed in 2 blocks, not 4; layer1's
 * 6.7 -> 5.7), ResNet-18 119 -> 109, GoogLeNet 113 -> 111.5; batch 1 unchanged (40.1,
 * 13.55); 8 MB lost (ResNet-50 batch 8 340).
 * Those were minima, taken in calm spells. Layers with a small U (at most WINO_SMALL_U
 * floats: ResNet's 64-channel 56x56 layers, its stride-2 128-channel one, GoogLeNet's
 * narrow branches) take 1 MB instead: streaming such a U once per smaller block is
 * cheap, while a 4 MB block's V and M live in the L3 that the host's other guests
 * share, and their misses there made those layers the most contention-sensitive of
 * the forward (median 40-50% over minimum, 1x1 convs 15-20%). Session 16, Zen 3,
 * forwards alternating one by one in one process (p50 over 45 s at batch 1, 90 s at
 * batch 8): ResNet-50 batch 1 44.98 -> 44.59, 46.88 -> 46.39 ms (layer1's three 3x3
 * convs medians 2.55 -> 2.40 ms, the 56x56 3x3/2 1.69 -> 1.53; minima unchanged);
 * batch 8 367 -> 360, 383 -> 375, 356 -> 353 ms; GoogLeNet batch 1 15.72 -> 15.70,
 * batch 8 121.4 -> 119.8; ResNet-18 batch 8 122.0 -> 120.4, batch 1 15.86 -> 16.00
 * (its 64-channel layers chain 3x3 convs on 0.8 MB maps and gain nothing there).
 * 512 KB was no better; nor was 1 MB for layer2's 28x28 F(4x4) (U 590k floats:
 * medians 2.15 -> 2.48 ms), which keeps 4 MB. */
static size_t wino__tb(const kern_conv_t *p) {
  size_t budget = wino__ufloats(p) <= WINO_SMALL_U ? WINO_BUDGET_SMALL_U : WINO_BUDGET;
  size_t tb = budget / (wino__xb(p) * ((size_t)p->cin + (size_t)p->cout));
  return tb < WINO_TB_MIN ? WINO_TB_MIN : tb;
}

/* Length of one padded half row: the tiles of a row plus one, plus a vector of slack. */
static int wino__rlen(int ow) { return ((ow + 1) / 2 + 1 + WINO_VL - 1) / WINO_VL * WINO_VL + WINO_VL; }

/* V and M, then 8 half rows (wino__input; wino__output uses 4), which also absorb
 * the over-read of the last M row. */
size_t kern_wino_scratch_floats(const kern_conv_t *p, int ow) {
  return wino__xi(p) * ((size_t)p->cin + (size_t)p->cout) * wino__tb(p) +
         8 * (size_t)wino__rlen(ow);
}

/* u[xi][co - co0][ci] = (G g G^T)[xi] for g = weight[co][ci], co in [co0, co1), and G
 * of n rows (n = 4 for F(2x2), 6 for F(4x4)), computed in double and rounded once. */
void kern_wino_weights(const kern_conv_t *p, const double (*gm)[3], int n, int co0, int co1,
                       float *u) {
  size_t cin = (size_t)p->cin, plane = cin * (size_t)(co1 - co0);
  for (size_t co = (size_t)co0; co < (size_t)co1; co++)
    for (size_t ci = 0; ci < cin; ci++) {
      const float *g = p->weight + (co * cin + ci) * 9;
      double t[6][3];
      for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
          t[i][k] = gm[i][0] * g[k] + gm[i][1] * g[3 + k] + gm[i][2] * g[6 + k];
      for (int i = 0; i < n; i++)
        for (int jx = 0; jx < n; jx++)
          u[(size_t)(i * n + jx) * plane + (co - (size_t)co0) * cin + ci] =
              (float)(t[i][0] * gm[jx][0] + t[i][1] * gm[jx][1] + t[i][2] * gm[jx][2]);
    }
}

/* F(2x2)'s G: points 0, 1, -1 and infinity. */
static const double wino2_g[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

/* F(4x4) where it pays and is built: maps of at least WINO4_MIN_OUT outputs, and
 * 28x28 maps whose layers are wide, and in AVX2 builds 14x14 ones whose wide layers
 * widen or keep their width (AVX-512 builds: none, see below). Measured in forwards
 * (per-node minima, alternating builds): ResNet layer2's 128->128 on 28x28 0.51 -> 0.38
 * ms on one thread (the image-serial prefix of a batch) and 0.262 -> 0.253 ms on two;
 * GoogLeNet's 16->32 and 32->96 lose.
 * On the Zen 3 host with the AVX2 wide sgemm (session 12, 2 threads): GoogLeNet's
 * 96->128 and 128->192 on 28x28 0.81 -> 0.66 and 1.41 -> 1.05 ms at batch 1, 5.5 -> 4.0
 * and 9.9 -> 7.0 ms at batch 8 (on the Zen 5 they had lost 1.5% and 6% at batch 1); its
 * 14x14 96->208 .. 160->320 gain 0.27 ms in all at batch 1 (13.21 -> 12.88 ms) and lose
 * 1.3 ms at batch 8 (106 -> 107): kept, for the latency. ResNet-50's layer3 256->256 on
 * 14x14 gained 0.08 ms each at batch 1 and lost 0.15 at batch 8 (per-node minima,
 * batched), for 26 MB more weights: not taken then; in session 13, with the sgemm's
 * fused B copy, ResNet-50 batch 1 37.72 -> 37.24 ms (sums of per-node minima, 4
 * alternating runs), ResNet-18 12.38 -> 12.20, and ResNet-50 batch 8 (image-serial
 * through layer3) p50 308 -> 304 ms over 6 alternating runs of 3 s (noise-level): taken.
 * On the Zen 5 host (AVX-512, twice the FMA rate per core) those layers went back to
 * F(2x2) in AVX-512 builds (session 28): F(4x4)'s U is 9.4 MB a layer against 4.2, and
 * with 16 tiles per U element the products wait on memory (bench_conv, one layer on 2
 * threads: 0.28 ms with U in cache, 0.39-0.41 with it flushed). ResNet-50 batch 1 on 2
 * threads, alternating: the five layers' fastest 2.01 -> 1.94 ms and medians 2.32 ->
 * 2.16; sums of node minima lower in 4 of 5 rounds (17.72-17.97 -> 17.60-17.90, one
 * round 18.27); batch 8 p50 142.0-144.2 -> 142.1-143.3 ms; ResNet-18 unchanged; and 26
 * MB less to stream and keep for ResNet-50. GoogLeNet's 14x14 layers, which all widen
 * (96->208 .. 160->320), followed in session 29: their F(4x4) U is 24.6 MB against 10.9,
 * each element serving 16 tiles of a 14x14 map padded to 16x16 (F(2x2): 49 tiles, 1.36x
 * the products' work). GoogLeNet batch 1 on 2 threads, alternating, the five layers'
 * fastest / median sums 0.95-1.05 / 1.06-1.34 -> 0.92-0.99 / 0.98-1.05 ms in three
 * rounds, every layer faster in each, and the forwards' median node sums lower in five
 * rounds of six (8.50 / 8.67 / 7.38 / 8.32 / 8.69 / 8.67 -> 7.66 / 7.24 / 7.38 / 8.23 /
 * 8.65 / 8.57 ms); batch 8, where U serves 128 tiles, 1-3% slower (p50 46.7 / 50.0 /
 * 46.8 -> 48.4 / 50.0 / 48.7 ms), which its margin over ONNX Runtime absorbs. The 28x28
 * wide layers keep F(4x4): with F(2x2) GoogLeNet's 128->192 went 0.39 -> 0.50-0.55 ms. */
static int wino__pick(const kern_conv_t *p) {
  if (wino__s2(p)) return 2;
  long out = (long)p->map_oh * p->map_ow;
#if defined(__AVX512F__)
  int widening = 0; /* AVX-512: F(4x4) on 14x14 maps waits on memory, widening or not */
#else
  int widening = p->cout >= p->cin; /* AVX2: half the FMA rate, F(4x4) still pays */
#endif
  int wide = p->cin >= WINO4_WIDE_CIN &&
             (out >= WINO4_MIN_OUT_WIDE || (out >= WINO4_MIN_OUT_WIDENING && widening));
  return kern_wino4_supported() && (out >= WINO4_MIN_OUT || wide) ? 4 : 2;
}

/* U is built one packed panel of output channels at a time: the panel's transformed
 * weights (nxi planes of KERN_SGEMM_PANEL x cin floats, at most 1.2 MB) stay in cache
 * and are packed at once into each plane's panel. A whole-layer temporary (ResNet-50:
 * 110 MB in all) made load time first-touch bound: on a host where a fresh page costs
 * ~10 us (session 26's Zen 5 VM: 2.5 ms per MB) it was a third of start-up. */
int kern_wino_prepare(kern_conv_t *p) {
  p->wino_m = wino__pick(p);
  const double(*gm)[3] = wino__s2(p) ? kern_wino_s2_g : p->wino_m == 4 ? kern_wino4_g : wino2_g;
  int n = wino__s2(p) || p->wino_m != 4 ? 4 : 6;
  size_t uplane = wino__uplane(p), nxi = wino__uplanes(p);
  float *u = NULL, *tmp = NULL;
  if (!(u = cnn_mem_alloc(wino__ufloats(p) * sizeof *u))) return CNN_ENOMEM;
  if (!kern_sgemm_available()) {
    kern_wino_weights(p, wino2_g, 4, 0, p->cout, u);
    p->packed = u;
    return 0;
  }
  size_t rows = KERN_SGEMM_PANEL, tplane = rows * (size_t)p->cin;
  if (!(tmp = malloc(nxi * tplane * sizeof *tmp))) {
    free(u);
    return CNN_ENOMEM;
  }
  for (int co0 = 0; co0 < p->cout; co0 += (int)rows) {
    int co1 = p->cout - co0 < (int)rows ? p->cout : co0 + (int)rows;
    kern_wino_weights(p, gm, n, co0, co1, tmp);
    size_t panel_plane = (size_t)(co1 - co0) * (size_t)p->cin;
    for (size_t xi = 0; xi < nxi; xi++) /* a panel packs to rows x cin floats at co0 x cin */
      kern_sgemm_pack(tmp + xi * panel_plane, co1 - co0, p->cin, (size_t)p->cin,
                      u + xi * uplane + (size_t)co0 * (size_t)p->cin);
  }
  free(tmp);
  p->packed = u;
  return 0;
}

#if !defined(__AVX512F__) && !KERN_WINO_AVX2
/* Input row y, columns x0 .. x0 + 2*cnt + 1, split into even (e[0..cnt]) and odd
 * (o[0..cnt]) positions, zero outside the plane (the portable input path; AVX-512
 * builds use wino__bt_tiles, AVX2 ones kern_wino2_avx2.c). */
static void wino__row(const float *plane, int h, int w, int y, int x0, int cnt, float *e,
                      float *o) {
  if (y < 0 || y >= h) {
    for (int k = 0; k <= cnt; k++) e[k] = o[k] = 0.0f;
    return;
  }
  const float *r = plane + (size_t)y * (size_t)w;
  for (int k = 0; k <= cnt; k++) {
    int x = x0 + 2 * k;
    e[k] = x >= 0 && x < w ? r[x] : 0.0f;
    o[k] = x + 1 >= 0 && x + 1 < w ? r[x + 1] : 0.0f;
  }
}
#endif

/* Transforms run on 16 adjacent tiles at a time as GCC/Clang vector values (one
 * AVX-512 register with -march=native); the half rows and the M rows they read are
 * padded so a full vector may be read past the last tile (those lanes are never
 * stored). */
typedef float wino_vf __attribute__((vector_size(64)));
/* The helpers taking and returning wino_vf are static, so their calling convention
 * never crosses a translation unit: GCC's note that it differs without AVX-512
 * (-Wpsabi, seen with ARCH=x86-64-v3 as in the Docker image) is moot here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif


static inline wino_vf wino__ld(const float *p) {
  wino_vf x;
  memcpy(&x, p, sizeof x);
  return x;
}

/* Store lanes [0, n) of x at p. */
static inline void wino__st(float *p, wino_vf x, int n) {
  if (n >= WINO_VL) /* a constant size: vector stores, not a call to memcpy */
    memcpy(p, &x, sizeof x);
  else
    memcpy(p, &x, sizeof(float) * (size_t)n);
}

#if !defined(__AVX512F__) && !KERN_WINO_AVX2
/* One row of (B^T d) times B: four outputs for tiles k.., `stride` apart. */
static inline void wino__bt_out(float *dst, size_t stride, wino_vf a0, wino_vf a1, wino_vf a2,
                                wino_vf a3, int n) {
  wino__st(dst, a0 - a2, n);
  wino__st(dst + stride, a1 + a2, n);
  wino__st(dst + 2 * stride, a2 - a1, n);
  wino__st(dst + 3 * stride, a1 - a3, n);
}

/* B^T d B for cnt horizontally adjacent tiles of one channel: the four input rows are
 * given as even/odd halves (e_i, o_i = rows + (2i, 2i+1) * rlen); v[xi * stride + k]
 * receives tile k. Patch row i, columns 0..3 = e_i[k], o_i[k], e_i[k+1], o_i[k+1]. */
static void wino__bt_row(const float *rows, int cnt, int rlen, float *v, size_t stride) {
  for (int k = 0; k < cnt; k += WINO_VL) {
    wino_vf d[4][4];
    for (int i = 0; i < 4; i++) {
      const float *e = rows + (size_t)(2 * i * rlen + k), *o = e + rlen;
      d[i][0] = wino__ld(e), d[i][1] = wino__ld(o), d[i][2] = wino__ld(e + 1);
      d[i][3] = wino__ld(o + 1);
    }
    int n = cnt - k;
    float *dst = v + k;
    wino__bt_out(dst, stride, d[0][0] - d[2][0], d[0][1] - d[2][1], d[0][2] - d[2][2],
                 d[0][3] - d[2][3], n);
    wino__bt_out(dst + 4 * stride, stride, d[1][0] + d[2][0], d[1][1] + d[2][1],
                 d[1][2] + d[2][2], d[1][3] + d[2][3], n);
    wino__bt_out(dst + 8 * stride, stride, d[2][0] - d[1][0], d[2][1] - d[1][1],
                 d[2][2] - d[1][2], d[2][3] - d[1][3], n);
    wino__bt_out(dst + 12 * stride, stride, d[1][0] - d[3][0], d[1][1] - d[3][1],
                 d[1][2] - d[3][2], d[1][3] - d[3][3], n);
  }
}

#endif

#if defined(__AVX512F__)
/* B^T d B straight from the input plane for up to 16 horizontally adjacent tiles
 * (first patch column xs, rows ys .. ys+3), stored as v[xi * stride + k], k < n.
 * Each patch row is loaded twice, at xs and xs + 2 (masked to the plane, so
 * padding reads as zero and nothing outside the plane is touched), and split into
 * even and odd positions: columns 0..3 of tile k's patch are then lane k of
 * e, o, e2, o2. Everything stays in registers: no row buffer to store and reload. */
static inline void wino__bt_tiles(const float *plane, int h, int w, int ys, int xs, int n,
                                  float *v, size_t stride) {
  __m512 d[4][4];
  uint32_t in0 = kern_wino_inside(xs, w), in2 = kern_wino_inside(xs + 2, w);
  for (int i = 0; i < 4; i++) {
    int y = ys + i;
    if (y < 0 || y >= h) {
      d[i][0] = d[i][1] = d[i][2] = d[i][3] = _mm512_setzero_ps();
      continue;
    }
    const float *r = plane + (size_t)y * (size_t)w;
    const float *s0 = (const float *)((uintptr_t)r + (intptr_t)xs * (intptr_t)sizeof(float));
    __m512 a = _mm512_maskz_loadu_ps((__mmask16)(in0 & 0xFFFF), s0);
    __m512 b = _mm512_maskz_loadu_ps((__mmask16)(in0 >> 16), s0 + 16);
    __m512 a2 = _mm512_maskz_loadu_ps((__mmask16)(in2 & 0xFFFF), s0 + 2);
    __m512 b2 = _mm512_maskz_loadu_ps((__mmask16)(in2 >> 16), s0 + 18);
    d[i][0] = kern_simd_even(a, b), d[i][1] = kern_simd_odd(a, b);
    d[i][2] = kern_simd_even(a2, b2), d[i][3] = kern_simd_odd(a2, b2);
  }
  kern_wino_bt_store(d, v, stride, n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1));
}
#endif

#if !KERN_WINO_AVX2
/* V[ci][xi][t - t0] for tiles [t0, t1), a run of tiles of one tile row at a time: a
 * channel's 16 transformed rows are written next to each other (the products read
 * V[xi] as a Cin x tiles matrix with row stride 16 * tiles). */
static void wino__input_ch(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                           float *v, float *rows) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, hw = (size_t)j->h * (size_t)j->w, cin = (size_t)p->cin;
  int rlen = wino__rlen(j->ow);
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    size_t img = run.img;
    int ty = run.ty, tx = run.tx, cnt = run.cnt;
#if defined(__AVX512F__)
    (void)rows, (void)rlen;
    for (size_t ci = c0; ci < c1; ci++) {
      const float *plane = j->in + (img * cin + ci) * hw;
      for (int k = 0; k < cnt; k += WINO_VL)
        wino__bt_tiles(plane, j->h, j->w, 2 * ty - p->pad_t, 2 * (tx + k) - p->pad_l,
                       cnt - k, v + ci * WINO_XI * nb + (t - t0) + (size_t)k, nb);
    }
#else
    for (size_t ci = c0; ci < c1; ci++) {
      const float *plane = j->in + (img * cin + ci) * hw;
      for (int i = 0; i < 4; i++)
        wino__row(plane, j->h, j->w, 2 * ty - p->pad_t + i, 2 * tx - p->pad_l, cnt,
                  rows + 2 * i * rlen, rows + (2 * i + 1) * rlen);
      wino__bt_row(rows, cnt, rlen, v + ci * WINO_XI * nb + (t - t0), nb);
    }
#endif
    t += (size_t)cnt;
  }
}
#endif

/* How the transforms of tiles [t0, t1) lay tiles in vectors: runs of one tile row (any
 * block), or, for blocks of whole images of maps of at most 8 tiles a row, whole tile
 * rows (F(2x2) rows at most 16 floats; F(4x4) and the stride-2 variant two tile rows of
 * input rows at most 32 floats) or a whole plane (F(2x2), at most 16 tiles and 64
 * floats). The input and output transforms of a block always take the same one. */
#if defined(__AVX512F__)
enum { WINO_RUNS, WINO_ROWS, WINO_PLANE };
static int wino__layout(const wino_job_t *j, size_t t0, size_t t1) {
  if (t0 % j->tiles_img != 0 || t1 % j->tiles_img != 0 || j->tw > WINO_VL / 2) return WINO_RUNS;
  if (j->m == 4 || j->s2) return j->w <= 2 * WINO_VL && j->ow <= 2 * WINO_VL ? WINO_ROWS : WINO_RUNS;
  if (j->tiles_img <= WINO_VL && j->h * j->w <= 4 * WINO_VL && j->oh * j->ow <= 4 * WINO_VL)
    return WINO_PLANE;
  return j->w <= WINO_VL && j->ow <= WINO_VL ? WINO_ROWS : WINO_RUNS;
}
#endif

/* V for tiles [t0, t1) and input channels [c0, c1), by the layer's variant and layout. */
static void wino__input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                        float *v, float *rows) {
#if defined(__AVX512F__)
  int layout = wino__layout(j, t0, t1);
  if (j->s2)
    (layout == WINO_ROWS ? kern_wino_s2_rows_input : kern_wino_s2_input)(j, t0, t1, c0, c1, v);
  else if (j->m == 4)
    (layout == WINO_ROWS ? kern_wino4_rows_input : kern_wino4_input)(j, t0, t1, c0, c1, v);
  else if (layout == WINO_PLANE)
    kern_wino_small_input(j, t0, t1, c0, c1, v);
  else if (layout == WINO_ROWS)
    kern_wino_rows_input(j, t0, t1, c0, c1, v);
  else
    wino__input_ch(j, t0, t1, c0, c1, v, rows);
#elif KERN_WINO_AVX2
  (void)rows;
  (j->s2 ? kern_wino_s2_input8 : j->m == 4 ? kern_wino4_input : kern_wino2_input)(j, t0, t1, c0,
                                                                                 c1, v);
#else
  wino__input_ch(j, t0, t1, c0, c1, v, rows);
#endif
}

#if !defined(__AVX512F__) && !KERN_WINO_AVX2
/* A^T m A for cnt adjacent tiles (m[xi * stride + k]): output rows 0 and 1 of the
 * tiles, even columns in y[0], y[2 * pitch], odd ones in y[pitch], y[3 * pitch]. */
static void wino__at_row(const float *m, size_t stride, int cnt, float *y, int pitch) {
  for (int k = 0; k < cnt; k += WINO_VL) {
    wino_vf s[2][4];
    for (int c = 0; c < 4; c++) {
      wino_vf m0 = wino__ld(m + (size_t)c * stride + k);
      wino_vf m1 = wino__ld(m + (size_t)(4 + c) * stride + k);
      wino_vf m2 = wino__ld(m + (size_t)(8 + c) * stride + k);
      wino_vf m3 = wino__ld(m + (size_t)(12 + c) * stride + k);
      s[0][c] = m0 + m1 + m2;
      s[1][c] = m1 - m2 - m3;
    }
    for (int i = 0; i < 2; i++) {
      wino__st(y + (size_t)(2 * i * pitch + k), s[i][0] + s[i][1] + s[i][2], WINO_VL);
      wino__st(y + (size_t)((2 * i + 1) * pitch + k), s[i][1] - s[i][2] - s[i][3], WINO_VL);
    }
  }
}

/* Output row yo from even/odd halves, columns x0 .. x0 + 2*cnt - 1 clipped to ow,
 * with y = act(y + bias + residual) (the portable path; AVX-512 builds use
 * wino__out_vec). */
static void wino__store(const wino_job_t *j, const float *ev, const float *od, int cnt, float b,
                        size_t o, int x0) {
  const float *res = j->residual ? j->residual + o : NULL;
  float *out = j->out + o;
  int n = 2 * cnt < j->ow - x0 ? 2 * cnt : j->ow - x0;
  for (int x = 0; x < n; x++) {
    float y = ((x & 1) ? od : ev)[x >> 1] + b + (res ? res[x] : 0.0f);
    out[x] = j->p->relu && y < 0.0f ? 0.0f : y;
  }
}
#endif

#if defined(__AVX512F__)
/* A^T m A for 16 tiles straight from M into the output (n tiles valid, output rows
 * yo and yo + 1 from offset o, first column x0): the same sums, in the same order,
 * as wino__at_row + wino__store, without the trip through the half rows. */
static inline void wino__out_vec(const wino_job_t *j, const float *m, size_t stride, int n,
                                 float b, size_t o, int x0, int yo) {
  __m512 y[2][2];
  kern_wino_at(m, stride, n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1), y);
  for (int i = 0; i < 2 && yo + i < j->oh; i++)
    kern_wino_store_pair(j, y[i][0], y[i][1], b, o + (size_t)i * (size_t)j->ow, x0, n);
}
#endif

#if KERN_WINO_AVX2
static void wino__output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                         const float *m, float *y) {
  (void)y;
  (j->s2 ? kern_wino_s2_output8 : j->m == 4 ? kern_wino4_output : kern_wino2_output)(j, r0, r1,
                                                                                     t0, t1, m);
}
#else
static void wino__output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                         const float *m, float *y) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, stride = (size_t)(r1 - r0) * nb, cols = (size_t)j->oh * (size_t)j->ow;
  for (size_t t = t0; t < t1;) {
    wino_run_t run = kern_wino_run(j, t, t1);
    size_t img = run.img;
    int ty = run.ty, tx = run.tx, cnt = run.cnt;
#if defined(__AVX512F__)
    (void)y;
    for (int r = r0; r < r1; r++) {
      size_t o = img * j->out_img + (size_t)r * cols + (size_t)(2 * ty) * (size_t)j->ow +
                 (size_t)(2 * tx);
      float b = p->bias ? p->bias[r] : 0.0f;
      for (int k = 0; k < cnt; k += WINO_VL)
        wino__out_vec(j, m + (size_t)(r - r0) * nb + (t - t0) + (size_t)k, stride,
                      cnt - k < WINO_VL ? cnt - k : WINO_VL, b, o + (size_t)(2 * k),
                      2 * (tx + k), 2 * ty);
    }
#else
    int pitch = (cnt + WINO_VL - 1) / WINO_VL * WINO_VL;
    for (int r = r0; r < r1; r++) {
      wino__at_row(m + (size_t)(r - r0) * nb + (t - t0), stride, cnt, y, pitch);
      size_t o = img * j->out_img + (size_t)r * cols + (size_t)(2 * ty) * (size_t)j->ow +
                 (size_t)(2 * tx);
      float b = p->bias ? p->bias[r] : 0.0f;
      wino__store(j, y, y + pitch, cnt, b, o, 2 * tx);
      if (2 * ty + 1 < j->oh)
        wino__store(j, y + 2 * pitch, y + 3 * pitch, cnt, b, o + (size_t)j->ow, 2 * tx);
    }
#endif
    t += (size_t)cnt;
  }
}

#endif

/* Products and output transform for output channels [r0, r1) of tiles [t0, t1), from
 * their V at v; M (and the output's half rows) in this thread's scratch, after its V. */
static void wino__products(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                           const float *v, float *scratch) {
  const kern_conv_t *p = j->p;
  size_t nb = t1 - t0, cin = (size_t)p->cin, cout = (size_t)p->cout, rows = (size_t)(r1 - r0);
  size_t nxi = (size_t)j->xi;
  float *m = scratch + nxi * cin * j->tb, *buf = m + nxi * cout * j->tb;
  if (j->s2) {
    size_t uplane = wino__uplane(p);
    for (int g = 0; g < KERN_WINO_S2_GROUPS; g++) {
      const kern_wino_s2_group_t *gr = &kern_wino_s2_groups[g];
      size_t cols = (size_t)gr->count * nb, s = (size_t)gr->slot;
      kern_sgemm_run(j->u + (size_t)gr->plane * uplane, r0, r1, (int)cin, v + s * nb, nxi * nb,
                     cols, m + s * rows * nb, cols, NULL);
    }
  } else if (kern_sgemm_available()) {
    size_t uplane = wino__uplane(p);
    for (size_t xi = 0; xi < nxi; xi++)
      kern_sgemm_run(j->u + xi * uplane, r0, r1, (int)cin, v + xi * nb, nxi * nb, nb,
                     m + xi * rows * nb, nb, NULL);
  } else {
    for (size_t xi = 0; xi < nxi; xi++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)nb, (int)cin,
                  1.0f, j->u + xi * cout * cin + (size_t)r0 * cin, (int)cin, v + xi * nb,
                  (int)(nxi * nb), 0.0f, m + xi * rows * nb, (int)nb);
  }
#if defined(__AVX512F__)
  int layout = wino__layout(j, t0, t1);
  if (j->s2)
    (layout == WINO_ROWS ? kern_wino_s2_rows_output : kern_wino_s2_output)(j, r0, r1, t0, t1, m);
  else if (j->m == 4)
    (layout == WINO_ROWS ? kern_wino4_rows_output : kern_wino4_output)(j, r0, r1, t0, t1, m);
  else if (layout == WINO_PLANE)
    kern_wino_small_output(j, r0, r1, t0, t1, m);
  else if (layout == WINO_ROWS)
    kern_wino_rows_output(j, r0, r1, t0, t1, m);
  else
#endif
    wino__output(j, r0, r1, t0, t1, m, buf);
}

/* Output channels [r0, r1) of tiles [t0, t1): V into scratch, then the products. */
static void wino__block(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                        float *scratch) {
  size_t nxi = (size_t)j->xi, cin = (size_t)j->p->cin, cout = (size_t)j->p->cout;
  wino__input(j, t0, t1, 0, cin, scratch, scratch + nxi * (cin + cout) * j->tb);
  wino__products(j, r0, r1, t0, t1, scratch, scratch);
}

/* Tiles per block for a range of n tiles: as few blocks as the budget allows, equal;
 * on maps of at most 8 tiles a row, whole images where that stays within the budget (so
 * the blocks take the whole-row transforms, wino__layout: a batch of 3 7x7 images is
 * 32 + 16 tiles, not 24 + 24). */
static size_t wino__blk(const wino_job_t *j, size_t n) {
  size_t nblk = (n + j->tb - 1) / j->tb, blk = (n + nblk - 1) / nblk;
  size_t whole = (blk + j->tiles_img - 1) / j->tiles_img * j->tiles_img;
  return j->tw <= WINO_VL / 2 && whole <= j->tb ? whole : blk;
}

static void wino__by_tiles(void *arg, int tid, int nt) {
  wino_job_t *j = arg;
  for (size_t u; kern_claim_next(&j->claim, tid, &u);) {
    size_t b = u * j->chunk, e = b + j->chunk < j->tiles ? b + j->chunk : j->tiles;
    size_t blk = wino__blk(j, e - b);
    for (size_t t0 = b; t0 < e; t0 += blk)
      wino__block(j, 0, j->p->cout, t0, t0 + blk < e ? t0 + blk : e, j->kc->scratch[tid]);
  }
}

static void wino__by_rows(void *arg, int tid, int nt) {
  wino_job_t *j = arg;
  (void)nt;
  kern_piece_t pc;
  for (int it = 0; kern_rows_next(&j->rows, j->kc, tid, &it, &pc);) {
    if (j->shared_v) { /* one block, its V in tid 0's scratch (wino__share_input) */
      wino__products(j, pc.r0, pc.r1, 0, j->tiles, j->kc->scratch[0], j->kc->scratch[tid]);
      continue;
    }
    size_t blk = wino__blk(j, j->tiles);
    for (size_t t0 = 0; t0 < j->tiles; t0 += blk)
      wino__block(j, pc.r0, pc.r1, t0, t0 + blk < j->tiles ? t0 + blk : j->tiles,
                  j->kc->scratch[tid]);
  }
}

/* The row split's V when the tiles make one block: each thread transforms its share of
 * the input channels into tid 0's scratch, which every thread's products then read. */
static void wino__share_input(void *arg, int tid, int nt) {
  const wino_job_t *j = arg;
  size_t c0, c1, nxi = (size_t)j->xi, cin = (size_t)j->p->cin, cout = (size_t)j->p->cout;
  pool_split(cin, tid, nt, &c0, &c1);
  float *buf = j->kc->scratch[tid] + nxi * (cin + cout) * j->tb;
  if (c0 < c1) wino__input(j, 0, j->tiles, c0, c1, j->kc->scratch[0], buf);
}

void kern_wino_conv2d(const kern_ctx_t *kc, const kern_conv_t *p, const float *in, int n, int h,
                      int w, float *out, int oh, int ow, const float *residual) {
  wino_job_t j = {.kc = kc, .p = p, .in = in, .residual = residual, .u = p->packed,
                  .out = out, .m = p->wino_m == 4 ? 4 : 2, .s2 = wino__s2(p),
                  .h = h, .w = w, .oh = oh, .ow = ow};
  j.xi = (int)wino__xi(p);
  j.tw = (ow + j.m - 1) / j.m;
  j.tiles_img = (size_t)((oh + j.m - 1) / j.m) * (size_t)j.tw;
  j.tiles = (size_t)n * j.tiles_img;
  j.tb = wino__tb(p);
  j.out_img = kern_conv_out_img(p, (size_t)oh * (size_t)ow);
  if (j.tiles == 0) return;
  int nt = kern_threads(kc);
  int rows = nt > 1 && (j.tiles / (size_t)nt < WINO_ROWSPLIT_TILES || j.tiles_img <= 16) && p->cout >= nt * WINO_ROW_ALIGN;
  /* Tile chunks: WINO_CHUNKS_PER_THREAD per thread, whole vectors of 16 tiles (whole
   * 48-tile groups for the products when large enough). */
  size_t want = nt > 1 ? (size_t)nt * WINO_CHUNKS_PER_THREAD : 1;
  j.chunk = (j.tiles + want - 1) / want;
  /* but never so small that the products run on a few columns and U streams once per
   * chunk (a 56x56 map's 196 F(4x4) tiles in chunks of 25 ran slower on 2 threads
   * than on 1) */
  if (j.chunk < WINO_CHUNK_MIN && j.tiles >= (size_t)nt * WINO_CHUNK_MIN) j.chunk = WINO_CHUNK_MIN;
  if (j.tw >= WINO_VL) j.chunk = (j.chunk + 15) / 16 * 16;
  if (j.chunk >= 48) j.chunk = (j.chunk + 47) / 48 * 48;
  /* A thread's whole share in one block: one chunk per thread, so each streams U once
   * (GoogLeNet's 128->192 layer on 28x28, 196 tiles on 2 threads: chunks of 48 made
   * each thread stream its 1.5 MB two or three times, 0.51-0.61 -> 0.38-0.43 ms). A
   * late thread's chunk is still taken by the other (pool.c: the caller runs unclaimed
   * tids, and chunks are claimed, not assigned). */
  size_t share = (j.tiles + (size_t)nt - 1) / (size_t)nt;
  if (j.tw >= WINO_VL) share = (share + 15) / 16 * 16;
  if (nt > 1 && share <= j.tb && share >= WINO_CHUNK_MIN) j.chunk = share;
  /* A share of a few blocks: equal chunks, one per block (GoogLeNet's conv3, 196 F(4x4)
   * tiles of 64 + 192 channels at batch 1, blocks of at most 56: chunks of 48, 48, 48,
   * 48 and 4, the last streaming all of U for 4 tiles; now 4 x 49). */
  else if (nt > 1 && share > j.tb && (share + j.tb - 1) / j.tb <= WINO_CHUNKS_PER_THREAD) {
    size_t per = (share + j.tb - 1) / j.tb, c = (share + per - 1) / per;
    if (j.tw >= WINO_VL) c = (c + 15) / 16 * 16;
    if (c <= j.tb) j.chunk = c;
  }
  j.chunks = (j.tiles + j.chunk - 1) / j.chunk;
  kern_claim_init(&j.claim, j.chunks, nt);
  /* A row split of one block shares its V: each thread transforms its share of the
   * input channels into tid 0's scratch (wino__share_input, a pool_run of its own),
   * then every thread's products read all of it; several blocks are transformed by
   * every thread, block by block. On the AVX-512 host of session 12 sharing had saved
   * 0.02 ms per 28x28 layer in calm phases and cost more than that in slow ones (cache-
   * line round trip between the vCPUs ~400 ns, not ~120: reading the other core's half,
   * and thread 0 later rewriting lines the other core still held; ResNet-50 batch 1
   * medians per phase, shared -> each its own: calm 14.80 -> 14.81 ms, slow 16.01 ->
   * 15.68), so each thread transformed all of it. On the Zen 3 host (AVX2) the
   * transform is a larger part: timed inside the blocks, ResNet-50 batch 1 spent 3.7 ms
   * a thread per forward transforming input against 10.2 in products, 3.0 of them in
   * the row splits, where both threads did the same work. Shared, in forwards alternating
   * one by one in one process (session 14, round trip 110 ns): ResNet-50 batch 1 p50
   * 47.0 -> 46.0 ms (p10 40.9 -> 40.0), GoogLeNet 15.7 -> 15.2, ResNet-18 15.8 ->
   * 15.2, ResNet-50 batch 8 346.7 -> 346.9. So builds without AVX-512 share V, and
   * AVX-512 builds, whose transforms cost less, do not: on the Zen 4 host of session 19
   * the slow phases are the ones where the host has put the two vCPUs on different CCDs
   * (the other core's freshly written 800 KB read at ~22 GB/s, against ~72 in calm
   * phases), and they come and go every few seconds. ResNet-50 batch 1 on 2 threads,
   * forwards alternating one by one in one process, phases told apart by that read
   * before each batch of forwards; shared -> each its own, p50 (mean): slow 41.31 ->
   * 40.06 (40.69 -> 39.75), 43.87 -> 42.95 (44.80 -> 43.98), 42.53 -> 40.97 (42.20 ->
   * 40.79) ms; calm 35.19 -> 35.77 (35.89 -> 36.13), 38.82 -> 39.57 (42.18 -> 41.92),
   * 36.09 -> 36.55 (39.10 -> 39.23). ResNet-18 calm 12.28 -> 12.20, slow 15.45 ->
   * 13.58; GoogLeNet calm 10.93 -> 10.88. Prefetching the other thread's half of a
   * shared V before the products gained nothing (slow 42.53 -> 42.20). */
  j.shared_v = WINO_SHARE_V && rows && wino__blk(&j, j.tiles) >= j.tiles;
  if (j.shared_v) pool_run(kc->pool, wino__share_input, &j);
  /* tails only when V is shared: otherwise each piece would transform it again */
  if (rows) kern_rows_init(&j.rows, kc, p->cout, WINO_ROW_ALIGN, 1, j.shared_v);
  pool_run(kc->pool, rows ? wino__by_rows : wino__by_tiles, &j);
  if (rows) kern_rows_learn(&j.rows, kc);
}
