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
} wino_job_t;

/* F(4x4, 3x3), AVX-512 builds only (kern_wino4_supported() says so). */
int kern_wino4_supported(void);
/* u[xi][co][ci] = (G g G^T)[xi] for all 36 positions, computed in double. */
void kern_wino4_weights(const kern_conv_t *p, float *u);
/* V[ci][xi][t - t0] for tiles [t0, t1). */
void kern_wino4_input(const wino_job_t *j, size_t t0, size_t t1, float *v);
/* Output channels [r0, r1) of tiles [t0, t1) from M, with the fused epilogue. */
void kern_wino4_output(const wino_job_t *j, int r0, int r1, size_t t0, size_t t1,
                       const float *m);

#endif
