/*
 * linger.h — lingering close of connections whose upload was refused unread.
 *
 * When classifyd refuses an upload from its headers (413 from Content-Length,
 * unknown model, bad top_k), libmicrohttpd sends the answer and closes the
 * socket with the refused body still arriving. Closing a TCP socket with unread
 * data makes the kernel send a reset, and a client still writing its body (one
 * that did not send `Expect: 100-continue`) may then see "connection reset"
 * instead of reading the answer. As Apache and nginx do, the socket is kept a
 * little longer: linger_add() takes a duplicate of the fd (so MHD's close does
 * not close the socket), and one thread reads and discards what arrives until
 * the client closes, `max_bytes` were discarded, nothing came for `idle_ms`, or
 * `total_ms` passed; then it closes the duplicate. At most `slots` sockets
 * linger at once; beyond that a socket is closed at once (the old behaviour).
 *
 * Threads: linger_add() from any thread (a mutex, then an eventfd wake-up);
 * the linger thread owns the slots' fds. Memory: everything is allocated in
 * linger_start(); linger_stop() joins the thread and closes what is left.
 */
#ifndef CLASSIFYD_LINGER_H
#define CLASSIFYD_LINGER_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct {
  int fd;
  uint64_t t_start, t_last, bytes;
} linger_slot_t;

typedef struct {
  pthread_t thread;
  pthread_mutex_t mu;
  int wake_fd, stop, started;
  int slots, used;
  linger_slot_t *slot;
  struct pollfd *pf; /* the thread's poll set: wake-up fd + one per slot */
  int *idx;          /* pf[k] -> slot index */
  uint64_t max_bytes, idle_ns, total_ns;
  atomic_long active;  /* sockets lingering now */
  atomic_long total;   /* sockets that lingered, ever */
  atomic_long skipped; /* refused sockets closed at once because every slot was busy */
} linger_t;

int linger_start(linger_t *l, int slots, uint64_t max_bytes, int idle_ms, int total_ms);
void linger_stop(linger_t *l);
/* Linger on a duplicate of fd (the caller keeps and closes its own fd). 0 if it lingers,
 * -1 if it cannot (slots full, dup failed): nothing to undo either way. */
int linger_add(linger_t *l, int fd);

#endif
