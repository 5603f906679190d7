/*
 * image_pixels.c — the decoders' pixel buffers, and one per thread that
 * cnn_image_to_tensor lends them (image_internal.h).
 *
 * Why: the daemon fixes glibc's mmap threshold at 256 KiB (server/daemon.c, so that
 * reloads return the freed weights), so every decoded image of more than ~87,000
 * pixels got a mapping of its own: a fresh, zeroed mapping to fault in page by page
 * and a munmap after. At ResNet-50's maximum load on the 2-vCPU Zen 4 host that was
 * 137 page faults per 480x360 JPEG (518 KB of RGB), and decoding plus preprocessing
 * took 2.8-3.2 ms against 1.9 alone; with the threshold at 8 MiB, 12-80 faults and
 * 2.1-2.5 ms (session 24). A global threshold that high would bring the reload growth
 * back, so the buffer is reused instead: cnn_image_to_tensor decodes, preprocesses and
 * frees on one thread within one call, and lends the decoder that thread's buffer,
 * grown as needed up to IMAGE_PIXELS_KEEP and kept for the thread's next call: 11-14
 * faults per image and 2.05-2.26 ms, in rounds alternating with the old build. (Since
 * session 30 the daemon's threshold is 16 MiB and modelset.c trims after a reload, so
 * there these buffers would come from the arenas anyway; the lending stays for the
 * library's other callers, where glibc's threshold starts at 128 KiB.) What
 * stays resident for it is at most IMAGE_PIXELS_KEEP per decoding thread, touched only
 * as far as the largest image decoded.
 *
 * Ownership: image__pixels_alloc hands out the thread's buffer only while that
 * thread lends (image__pixels_lend, set by cnn_image_to_tensor around its decode),
 * only one at a time, and only up to IMAGE_PIXELS_KEEP; every other request is a
 * plain malloc. image__pixels_free takes both kinds: the lent buffer goes back to the
 * thread, anything else is freed. The lent buffer never leaves cnn_image_to_tensor,
 * so no other thread can be handed it. A thread's buffer is freed when it exits
 * (pthread key destructor); without a key nothing is lent.
 */
#include <pthread.h>
#include <stdlib.h>

#include "image_internal.h"

typedef struct {
  uint8_t *buf; /* this thread's buffer, cap bytes, or NULL */
  size_t cap;
  int lending;  /* inside cnn_image_to_tensor's decode */
  int lent;     /* buf is in use */
} pixels_tls_t;

static _Thread_local pixels_tls_t tls;
static pthread_key_t pixels_key;
static pthread_once_t pixels_once = PTHREAD_ONCE_INIT;
static int pixels_key_ok;

static void pixels_thread_exit(void *buf) { free(buf); }

static void pixels_key_create(void) {
  pixels_key_ok = pthread_key_create(&pixels_key, pixels_thread_exit) == 0;
}

void image__pixels_lend(int on) { tls.lending = on; }

uint8_t *image__pixels_alloc(size_t bytes) {
  if (!tls.lending || tls.lent || bytes > IMAGE_PIXELS_KEEP) return malloc(bytes);
  pthread_once(&pixels_once, pixels_key_create);
  if (!pixels_key_ok) return malloc(bytes);
  if (tls.cap < bytes) {
    uint8_t *b = malloc(bytes);
    if (!b) return NULL;
    if (pthread_setspecific(pixels_key, b) != 0) return b; /* not kept: an ordinary block */
    free(tls.buf);
    tls.buf = b;
    tls.cap = bytes;
  }
  tls.lent = 1;
  return tls.buf;
}

uint8_t *image__pixels_shrink(uint8_t *p, size_t bytes) {
  if (p && p == tls.buf && tls.lent) return p;
  uint8_t *s = realloc(p, bytes);
  return s ? s : p;
}

void image__pixels_free(uint8_t *p) {
  if (p && p == tls.buf && tls.lent) {
    tls.lent = 0;
    return;
  }
  free(p);
}
