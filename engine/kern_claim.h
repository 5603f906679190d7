/*
 * kern_claim.h — the chunks of a split, claimed from home ranges.
 *
 * A kernel cut into `chunks` pieces gives thread tid of nt a home range of them
 * (pool_split). A thread takes its own range's chunks from the front, in order, and
 * when that is empty takes the other ranges' chunks from their back ends. So on a
 * quiet machine thread tid runs the same part of every layer (pool.c keeps a tid on
 * one core from task to task): the same image columns, whose inputs it wrote itself
 * in the layer before. One shared counter handed chunks out in arrival order, so
 * about half of each layer's input came from the other core, which is slow when the
 * host places our two vCPUs far apart (a cache line's round trip 385-429 against
 * 94-146 ns). A thread that falls behind still loses its last chunks to the others,
 * as with the shared counter, and loses them from the far end of its range.
 *
 * Each range is one 64-bit word, front in the low 32 bits and end in the high 32,
 * on its own cache line; claims are compare-and-swaps. The struct lives on the
 * caller's stack for the duration of one pool_run.
 */
#ifndef CNN_KERN_CLAIM_H
#define CNN_KERN_CLAIM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

enum { KERN_CLAIM_RANGES = 16 }; /* more threads than this share ranges (tid % 16) */

typedef struct {
  _Alignas(64) _Atomic uint64_t v; /* front | end << 32, alone on its cache line */
} kern_claim_range_t;

typedef struct {
  kern_claim_range_t r[KERN_CLAIM_RANGES];
  int nr;
} kern_claim_t;

static inline void kern_claim_init(kern_claim_t *c, size_t chunks, int nt) {
  c->nr = nt < 1 ? 1 : nt > KERN_CLAIM_RANGES ? KERN_CLAIM_RANGES : nt;
  for (int i = 0; i < c->nr; i++) {
    size_t b, e;
    pool_split(chunks, i, c->nr, &b, &e);
    atomic_init(&c->r[i].v, (uint64_t)b | (uint64_t)e << 32);
  }
}

/* Next chunk for thread tid into *u; 0 when every range is empty. */
static inline int kern_claim_next(kern_claim_t *c, int tid, size_t *u) {
  int home = tid % c->nr;
  _Atomic uint64_t *r = &c->r[home].v;
  uint64_t v = atomic_load_explicit(r, memory_order_relaxed);
  while ((uint32_t)v < (uint32_t)(v >> 32))
    if (atomic_compare_exchange_weak_explicit(r, &v, v + 1, memory_order_relaxed,
                                              memory_order_relaxed)) {
      *u = (uint32_t)v;
      return 1;
    }
  for (int k = 1; k < c->nr; k++) {
    r = &c->r[(home + k) % c->nr].v;
    v = atomic_load_explicit(r, memory_order_relaxed);
    while ((uint32_t)v < (uint32_t)(v >> 32)) {
      uint64_t e = (v >> 32) - 1;
      if (atomic_compare_exchange_weak_explicit(r, &v, (v & 0xffffffffu) | e << 32,
                                                memory_order_relaxed, memory_order_relaxed)) {
        *u = (size_t)e;
        return 1;
      }
    }
  }
  return 0;
}

#endif
