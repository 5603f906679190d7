/*
 * kern_rows.h — a row split whose last rows another thread may take over.
 *
 * A row split gives each thread a share of the output channels (kern_row_share:
 * weighted by the threads' measured speeds) and every column. On a shared host a vCPU
 * is now and then descheduled for tens of microseconds to milliseconds; with fixed
 * shares the other thread then finished its own and waited at the end of the layer,
 * and such waits were most of what a contended spell added to a forward (ResNet-50
 * batch 1 on 2 threads, the slowest fifth of the forwards against the fastest: 13.2
 * against 3.7 thread-ms idle per forward, two thirds of it in the row splits).
 * Here each share is cut into three pieces: most of it, then two tails of about an
 * eighth each. A thread takes its own pieces front to back, then the other shares'
 * pieces from their back ends (kern_claim.h), so a thread that falls behind loses its
 * tails to the one that is done. Each piece is a product of its own over all columns,
 * so the columns are packed once per piece instead of once per share, which costs more
 * than the waits it saves on small shares: tails of 16 rows (every share of 128 rows or
 * more cut) made ResNet-50 batch 1 slower (p50 47.39 -> 47.93 ms, mean 49.80 -> 50.06,
 * though p90 62.1 -> 58.9; layer3's 1x1 convs, K = 1024, repacked 800 KB per piece), so
 * only shares that give tails of KERN_ROWS_TAIL_MIN units (64 rows: shares of 512 rows,
 * ResNet's 1024- and 2048-channel 1x1 convs) are cut. Session 17, Zen 3, 2 threads,
 * forwards alternating one by one in one process for 90 s, with / without: p50 50.21 /
 * 50.47 and 48.62 / 48.61 ms, mean 53.75 / 54.05 and 51.74 / 52.18; idle thread time in
 * the 1x1 convs onto 14x14 1.28 / 1.63 and 1.35 / 1.69 ms per forward, onto 7x7 0.53 /
 * 0.69 and 0.61 / 0.82.
 * A conv that walks the images one by one (kern_conv.c's row split at batch 3 and
 * more: ResNet-50's layer4 1x1 convs at batch 8) cuts the images instead, its tails
 * being the share's last two images, which packs nothing more. Batch 8, 120 s
 * alternating, with / without: p50 370.7 / 375.3 ms, mean 375.1 / 379.0; layer4's 1x1
 * convs on 7x7 medians 27.3 / 27.7 ms (idle 2.9 / 3.2 thread-ms), its 1x1/2 shortcut
 * 11.7 / 13.7.
 * Which thread computes a row never changes its sums. A task in which a piece moved
 * is not learned from (kern_rows_learn): its run times no longer match its shares.
 * The struct lives on the caller's stack for the duration of one pool_run.
 */
#ifndef CNN_KERN_ROWS_H
#define CNN_KERN_ROWS_H

#include <stdatomic.h>

#include "kern_claim.h"
#include "kern_internal.h"

enum {
  KERN_ROWS_PIECES = 3,  /* per share: the body and two tails */
  KERN_ROWS_IMAGE_TAILS = 3, /* from this many images the tails are images */
  KERN_ROWS_TAIL_DIV = 8, /* each tail about this fraction of the share, */
  KERN_ROWS_TAIL_MIN = 4  /* of at least this many alignment units */
};

/* Output channels [r0, r1) of images [i0, i1). */
typedef struct {
  int r0, r1, i0, i1;
} kern_piece_t;

typedef struct {
  kern_claim_t claim;
  int whole;        /* more threads than claim ranges: each tid its own share, whole */
  int rows, align, images;
  kern_piece_t piece[KERN_ROWS_PIECES * KERN_CLAIM_RANGES];
  atomic_int moved; /* a piece ran on a thread other than its share's */
} kern_rows_t;

/* Before the pool_run: every thread's share of `rows` (multiples of align) for all
 * `images`, cut into pieces; with `tails` 0 one piece per share. A caller that walks
 * images one by one passes their number: from 3 images on, the tails are the last two
 * images of the share (no more packing than before: each image is a product of its
 * own anyway); otherwise the tails are rows. Callers that run every image in one
 * product (a grouped conv, Winograd) pass 1 and ignore the pieces' i0, i1. */
static inline void kern_rows_init(kern_rows_t *s, const kern_ctx_t *kc, int rows, int align,
                                  int images, int tails) {
  int nt = kern_threads(kc);
  if (nt < 2) tails = 0; /* nobody to take them over */
  s->rows = rows, s->align = align, s->images = images;
  s->whole = nt > KERN_CLAIM_RANGES;
  atomic_init(&s->moved, 0);
  if (s->whole) return;
  for (int t = 0; t < nt; t++) {
    kern_piece_t *pc = s->piece + KERN_ROWS_PIECES * t;
    int a, b;
    if (!kern_row_share(kc, rows, align, t, &a, &b)) a = b = 0;
    for (int i = 0; i < KERN_ROWS_PIECES; i++) pc[i] = (kern_piece_t){a, b, 0, 0};
    pc[0].i1 = images;
    if (tails && images >= KERN_ROWS_IMAGE_TAILS) { /* images n - 2 and n - 1 */
      pc[0].i1 = images - 2;
      pc[1].i0 = images - 2, pc[1].i1 = images - 1;
      pc[2].i0 = images - 1, pc[2].i1 = images;
      continue;
    }
    int units = (b - a + align - 1) / align, tail = units / KERN_ROWS_TAIL_DIV;
    if (!tails || tail < KERN_ROWS_TAIL_MIN) continue;
    int c0 = a + (units - 2 * tail) * align, c1 = a + (units - tail) * align; /* aligned */
    if (c0 > b) c0 = b;
    if (c1 > b) c1 = b;
    pc[0].r1 = c0; /* the body, then the tails */
    pc[1] = (kern_piece_t){c0, c1, 0, images};
    pc[2] = (kern_piece_t){c1, b, 0, images};
  }
  kern_claim_init(&s->claim, (size_t)(KERN_ROWS_PIECES * nt), nt);
}

/* In the task: the next piece for tid into *pc; 0 when none is left. *it is the
 * caller's cursor, 0 before the first call. */
static inline int kern_rows_next(kern_rows_t *s, const kern_ctx_t *kc, int tid, int *it,
                                 kern_piece_t *pc) {
  if (s->whole) {
    *pc = (kern_piece_t){0, 0, 0, s->images};
    return (*it)++ == 0 && kern_row_share(kc, s->rows, s->align, tid, &pc->r0, &pc->r1);
  }
  for (size_t u; kern_claim_next(&s->claim, tid, &u);) {
    const kern_piece_t *q = &s->piece[u];
    if (q->r0 >= q->r1 || q->i0 >= q->i1) continue; /* an empty piece */
    if ((int)(u / KERN_ROWS_PIECES) != tid)
      atomic_store_explicit(&s->moved, 1, memory_order_relaxed);
    *pc = *q;
    return 1;
  }
  return 0;
}

/* After the pool_run: learn the threads' speeds unless a piece moved. */
static inline void kern_rows_learn(kern_rows_t *s, const kern_ctx_t *kc) {
  if (!atomic_load_explicit(&s->moved, memory_order_relaxed)) kern_row_learn(kc, s->rows, s->align);
}

#endif
