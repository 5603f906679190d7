/*
 * kern_sgemm.h — packed-weight sgemm with a fused conv epilogue (see kern_sgemm.c).
 * Internal to the kernels; not part of the engine's public API.
 */
#ifndef CNN_KERN_SGEMM_H
#define CNN_KERN_SGEMM_H

#include <stddef.h>

enum {
  KERN_SGEMM_PANEL = 16, /* rows per packed panel of A */
  KERN_SGEMM_MR = 8      /* rows per wide micro-kernel tile (half a panel) */
};

/* Applied to every C element before its one store: c = act(c + bias[row] + res[.]).
 * bias is indexed by absolute row (NULL: none); res (NULL: none) is aligned with the
 * c passed to kern_sgemm_run: element (i, j) of that C reads res[i * ldr + j]. */
typedef struct {
  const float *bias;
  const float *res;
  size_t ldr;
  int relu;
  int accumulate; /* 1: C += A B (the old C is read; for products split along K) */
} kern_sgemm_epi_t;

/* 1 when a micro-kernel was compiled in (AVX-512, or AVX2 with FMA); else use OpenBLAS. */
int kern_sgemm_available(void);

/* Floats kern_sgemm_pack writes for an m x k matrix (m rounded up to a panel). */
size_t kern_sgemm_packed_floats(int m, int k);
/* Pack row-major a (m x k, row stride lda) into MR-row panels. */
void kern_sgemm_pack(const float *a, int m, int k, size_t lda, float *packed);

/* Rows [m0, m1) of C = A B: A given packed, m0 a multiple of KERN_SGEMM_MR; B is k x n with row
 * stride ldb; c points at row m0, column 0 of the output block (row stride ldc). */
void kern_sgemm_run(const float *packed, int m0, int m1, int k, const float *b, size_t ldb,
                    size_t n, float *c, size_t ldc, const kern_sgemm_epi_t *epi);
/* The same for the slice [k0, k1) of K of an A packed with kfull columns: b points at
 * row k0 of B. With epi->accumulate, C += A[:, k0:k1] B[k0:k1, :]. */
void kern_sgemm_run_k(const float *packed, int kfull, int k0, int k1, int m0, int m1,
                      const float *b, size_t ldb, size_t n, float *c, size_t ldc,
                      const kern_sgemm_epi_t *epi);
/* An implicit lowering: C = A B over all k columns of A, where B's row p is the n
 * floats at b + boff[p] (a conv's shifted views of its input planes). */
void kern_sgemm_run_ind(const float *packed, int k, int m0, int m1, const float *b,
                        const ptrdiff_t *boff, size_t n, float *c, size_t ldc,
                        const kern_sgemm_epi_t *epi);

#endif
