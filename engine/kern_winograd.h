/*
 * kern_winograd.h — what the Winograd driver (kern_winograd.c) shares with its
 * F(4x4, 3x3) transforms (kern_wino4.c); internal to the kernels.
 *
 * One job is one call of kern_wino_conv2d: tiles of m x m outputs (m = 2 or 4) are
 * numbered over the whole batch (image-major, then tile row, then column); xi =
 * (m + 2)^2 transform positions. V is [cin][xi][nb] and M is [xi][rows][nb] for a
 * block of nb tiles.
 */
#ifndef CNN_KERN_WINOGRAD_H
#define CNN_KERN_WINOGRAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

typedef struct {
  const kern_ctx_t *kc;
  const kern_conv_t *p;
  const float *in, *residual, *u;
  float *out;
  int m, xi;                 /* output tile side, transform positions */
  int h, w, oh, ow, tw;      /* tw: tiles per tile row */
  size_t tiles_img, tiles, tb;
  size_t chunk, chunks;      /* tile split: chunks of `chunk` tiles, */
  atomic_size_t next_chunk;  /* claimed by the threads as they go (as in kern_conv.c) */
  float *v_shared;           /* row split, one block: V transformed once by all threads */
} wino_job_t;

/* The run of tiles that starts at tile t on one tile row, cut at t1: its image, tile
 * row and column, and length. Transforms walk a block run by run. */
typedef struct {
  size_t img;
  int ty, tx, cnt;
} wino_run_t;

static inline wino_run_t kern_wino_run(const wino_job_t *j, size_t t, size_t t1) {
  wino_run_t r;
  size_t rem = t % j->tiles_img;
  r.img = t / j->tiles_img;
  r.ty = (int)(rem / (size_t)j->tw), r.tx = (int)(rem % (size_t)j->tw);
  r.cnt = (size_t)(j->tw - r.tx) < t1 - t ? j->tw - r.tx : (int)(t1 - t);
  return r;
}

/* u[xi][co][ci] = (G g G^T)[xi], G of n rows (kern_winograd.c). */
void kern_wino_weights(const kern_conv_t *p, const double (*g)[3], int n, float *u);

/* Lanes i of [0, 32) whose position xs + i lies in [0, w), as a 32-bit mask: the lanes
 * of a 32-float row segment starting at column xs that a masked load may read. */
static inline uint32_t kern_wino_inside(int xs, int w) {
  int lo = xs < 0 ? -xs : 0, hi = w - xs;
  if (hi > 32) hi = 32;
  if (hi <= lo) return 0;
  uint64_t m = ((uint64_t)1 << hi) - 1;
  return (uint32_t)(m & ~(((uint64_t)1 << lo) - 1));
}

/* F(4x4, 3x3), AVX-512 builds only (kern_wino4_supported() says so); G below. */
int kern_wino4_supported(void);
extern const double kern_wino4_g[6][3];
#if defined(__AVX512F__)
/* V[ci][xi][t - t0] for tiles [t0, t1) and input channels [c0, c1). */
void kern_wino4_input(const wino_job_t *j, size_t t0, size_t t1, size_t c0, size_t c1,
                      float *v);
/* Output channels [r0, r1) of tiles [t0, t1) from M, with the fused epilogue. */
void kern_wino4_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m);
#endif

#endif
