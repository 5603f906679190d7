/*
 * conns.c — connection registry and slow-client sweeper (see conns.h).
 *
 * A doubly linked list under one mutex; per-entry progress is atomic so the
 * upload path never takes the lock. The sweep is linear in open connections,
 * which the connection limit bounds (a thousand entries every 200 ms is a few
 * microseconds).
 * The sweep also closes a waiting connection whose client has gone (end of
 * stream pending): libmicrohttpd 0.9.75 can miss that end of stream in the
 * middle of an upload (seen: 6 of 10 clients that closed right after sending
 * part of a body held their connection until its idle timeout); the shutdown
 * wakes it up.
 */
#include "conns.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "job.h"

int conns_init(conns_t *c, int timeout_s, uint64_t min_rate, long soft_limit) {
  c->head = NULL;
  c->soft_limit = soft_limit;
  c->timeout_ns = (uint64_t)timeout_s * 1000000000u;
  c->min_rate = min_rate;
  atomic_init(&c->open, 0);
  atomic_init(&c->cut, 0);
  return pthread_mutex_init(&c->mu, NULL) == 0 ? 0 : -1;
}

void conns_deinit(conns_t *c) {
  pthread_mutex_lock(&c->mu);
  while (c->head) {
    conn_entry_t *e = c->head;
    c->head = e->next;
    free(e);
  }
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_destroy(&c->mu);
}

conn_entry_t *conns_open(conns_t *c, int fd) {
  conn_entry_t *e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  e->fd = fd;
  atomic_init(&e->t_start, job_now_ns());
  atomic_init(&e->bytes, 0);
  atomic_init(&e->state, CONN_WAITING);
  pthread_mutex_lock(&c->mu);
  e->next = c->head;
  if (c->head) c->head->prev = e;
  c->head = e;
  pthread_mutex_unlock(&c->mu);
  e->over = atomic_fetch_add(&c->open, 1) >= c->soft_limit;
  return e;
}

void conns_close(conns_t *c, conn_entry_t *e) {
  if (!e) return;
  pthread_mutex_lock(&c->mu);
  if (e->prev) e->prev->next = e->next;
  else c->head = e->next;
  if (e->next) e->next->prev = e->prev;
  pthread_mutex_unlock(&c->mu);
  atomic_fetch_sub(&c->open, 1);
  free(e);
}

void conns_progress(conn_entry_t *e, uint64_t bytes) {
  if (e) atomic_fetch_add(&e->bytes, bytes);
}

void conns_exempt(conn_entry_t *e) {
  int want = CONN_WAITING;
  if (e) atomic_compare_exchange_strong(&e->state, &want, CONN_EXEMPT);
}

void conns_answered(conn_entry_t *e) {
  if (!e) return;
  atomic_store(&e->t_start, job_now_ns());
  atomic_store(&e->bytes, 0);
  int want = CONN_EXEMPT;
  atomic_compare_exchange_strong(&e->state, &want, CONN_WAITING);
}

/* End of stream (or an error) pending on a socket: the client left. Data pending is
 * not: libmicrohttpd will read it. Peeking consumes nothing. */
static int peer_gone(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static uint64_t entry_deadline(const conns_t *c, conn_entry_t *e) {
  uint64_t extra = c->min_rate ? atomic_load(&e->bytes) / c->min_rate * 1000000000u : 0;
  return atomic_load(&e->t_start) + c->timeout_ns + extra;
}

int conns_sweep(conns_t *c, uint64_t now) {
  int n = 0;
  pthread_mutex_lock(&c->mu);
  for (conn_entry_t *e = c->head; e; e = e->next) {
    if (atomic_load(&e->state) != CONN_WAITING) continue;
    if (now <= entry_deadline(c, e) && !peer_gone(e->fd)) continue;
    int want = CONN_WAITING;
    if (!atomic_compare_exchange_strong(&e->state, &want, CONN_CUT)) continue;
    (void)shutdown(e->fd, SHUT_RDWR); /* MHD reads end-of-stream and closes it */
    n++;
  }
  pthread_mutex_unlock(&c->mu);
  if (n) atomic_fetch_add(&c->cut, n);
  return n;
}
