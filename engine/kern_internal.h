/*
 * kern_internal.h — helpers shared by the kernel files; not part of the contract.
 */
#ifndef CNN_KERN_INTERNAL_H
#define CNN_KERN_INTERNAL_H

#include <stddef.h>

#include "kernels.h"

/* Lower output columns [c0, c1) of one image (cin x h x w) into col, a dense
 * K x (c1 - c0) matrix with K = cin*kh*kw (see kern_im2col.c). */
void kern_im2col(const kern_conv_t *p, const float *img, int h, int w, int ow, size_t c0,
                 size_t c1, float *col);

static inline int kern_threads(const kern_ctx_t *kc) { return pool_threads(kc->pool); }

#endif
