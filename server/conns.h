/*
 * conns.h — the registry of open client connections and the slow-client sweeper.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that trickles
 * one byte per second (slowloris) is never idle and would hold its connection,
 * its buffers and a share of the connection limit for ever. So, as Apache's
 * mod_reqtimeout does, each request must arrive in full within
 * connection_timeout seconds, extended by one second for every `min_rate` body
 * bytes received; the clock starts when the connection is accepted or when its
 * previous answer was sent. conns_sweep() (called from a timer) shuts down the
 * socket of every connection past its deadline; libmicrohttpd then sees the
 * end of the stream and closes the connection through its own path.
 * A waiting connection whose client has closed its end is shut down at the
 * next sweep too. A connection whose request is complete (decoding, queued,
 * being answered) is exempt until its answer is sent.
 *
 * Threads: open/close/progress are called from libmicrohttpd's threads, sweep
 * from the loop thread. The list is under one mutex; an entry's fd is shut down
 * only under that mutex, and conns_close() (called by MHD before it closes the
 * fd) unlinks it under the same mutex, so a reused fd number is never touched.
 * A connection opened while `soft_limit` others are open is marked `over`: its
 * request is answered 503 and the connection closed (http.c).
 * Memory: conns_open() allocates the entry; conns_close() frees it.
 */
#ifndef CLASSIFYD_CONNS_H
#define CLASSIFYD_CONNS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef enum { CONN_WAITING = 0, CONN_EXEMPT = 1, CONN_CUT = 2 } conn_state_t;

typedef struct conn_entry {
  struct conn_entry *prev, *next;
  int fd;
  _Atomic uint64_t t_start; /* accepted, or previous answer sent (CLOCK_MONOTONIC ns) */
  _Atomic uint64_t bytes;   /* body bytes of the current request so far */
  atomic_int state;         /* conn_state_t */
  int over;                 /* opened beyond the soft limit: its request gets 503 */
} conn_entry_t;

typedef struct {
  pthread_mutex_t mu;
  conn_entry_t *head;
  uint64_t timeout_ns;
  uint64_t min_rate; /* bytes per second that earn one more second; 0: no extension */
  long soft_limit;   /* connections beyond this many are marked `over` */
  atomic_long open;  /* entries in the list */
  atomic_long cut;   /* connections shut down by the sweeper (late or gone), ever */
} conns_t;

int conns_init(conns_t *c, int timeout_s, uint64_t min_rate, long soft_limit); /* 0 or -1 */
void conns_deinit(conns_t *c);
/* A connection was accepted; NULL when out of memory (then it is simply not watched). */
conn_entry_t *conns_open(conns_t *c, int fd);
void conns_close(conns_t *c, conn_entry_t *e); /* NULL is ignored */
void conns_progress(conn_entry_t *e, uint64_t bytes); /* body bytes arrived */
void conns_exempt(conn_entry_t *e);   /* request complete: no deadline until answered */
void conns_answered(conn_entry_t *e); /* answer sent: the next request's clock starts */
/* Shuts down every waiting connection past its deadline at `now` or whose client
 * has gone; returns how many. */
int conns_sweep(conns_t *c, uint64_t now);

#endif
