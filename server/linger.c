/*
 * linger.c — the lingering-close thread (see linger.h).
 *
 * One thread polls the wake-up eventfd and every lingering socket, with a
 * timeout no longer than the nearest idle or total deadline; a readable socket
 * is drained with non-blocking reads into a stack buffer (the bytes are
 * dropped). Slots are a fixed array: adding is O(slots) under the mutex, which
 * the thread holds only while it copies the fds out and puts results back.
 */
#include "linger.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "job.h"

#define LINGER_BUF 16384

/* Reads what is there; 1 when the socket is done (end, error or byte budget). */
static int slot_drain(linger_t *l, linger_slot_t *s, uint64_t now) {
  char buf[LINGER_BUF];
  for (int i = 0; i < 64; i++) {
    ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return 1;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : 1;
    s->bytes += (uint64_t)n;
    s->t_last = now;
    if (s->bytes >= l->max_bytes) return 1;
  }
  return 0;
}

static int slot_expired(const linger_t *l, const linger_slot_t *s, uint64_t now) {
  return now - s->t_last >= l->idle_ns || now - s->t_start >= l->total_ns;
}

static void slot_close(linger_t *l, linger_slot_t *s) {
  close(s->fd);
  s->fd = -1;
  l->used--;
  atomic_fetch_sub(&l->active, 1);
}

/* Poll timeout: until the nearest deadline, at most 1 s. Called under the mutex. */
static int next_timeout_ms(const linger_t *l, uint64_t now) {
  uint64_t best = 1000000000u;
  for (int i = 0; i < l->slots; i++) {
    const linger_slot_t *s = &l->slot[i];
    if (s->fd < 0) continue;
    uint64_t idle = s->t_last + l->idle_ns, total = s->t_start + l->total_ns;
    uint64_t d = idle < total ? idle : total;
    uint64_t left = d > now ? d - now : 0;
    if (left < best) best = left;
  }
  return (int)(best / 1000000u) + 1;
}

static void *linger_main(void *arg) {
  linger_t *l = arg;
  struct pollfd *pf = l->pf;
  int *idx = l->idx;
  for (;;) {
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
      pthread_mutex_unlock(&l->mu);
      break;
    }
    int n = 0;
    pf[n++] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
    for (int i = 0; i < l->slots; i++) {
      if (l->slot[i].fd < 0) continue;
      idx[n] = i;
      pf[n++] = (struct pollfd){.fd = l->slot[i].fd, .events = POLLIN};
    }
    int timeout = next_timeout_ms(l, job_now_ns());
    pthread_mutex_unlock(&l->mu);
    (void)poll(pf, (nfds_t)n, timeout);
    uint64_t now = job_now_ns(), v;
    if (pf[0].revents & POLLIN) (void)!read(l->wake_fd, &v, sizeof(v));
    pthread_mutex_lock(&l->mu);
    for (int k = 1; k < n; k++) {
      linger_slot_t *s = &l->slot[idx[k]];
      int done = pf[k].revents ? slot_drain(l, s, now) : 0;
      if (done || slot_expired(l, s, now)) slot_close(l, s);
    }
    pthread_mutex_unlock(&l->mu);
  }
  return NULL;
}

static void linger_free(linger_t *l) {
  free(l->slot);
  free(l->pf);
  free(l->idx);
  l->slot = NULL, l->pf = NULL, l->idx = NULL;
}

int linger_start(linger_t *l, int slots, uint64_t max_bytes, int idle_ms, int total_ms) {
  l->slots = slots;
  l->used = l->stop = l->started = 0;
  l->max_bytes = max_bytes;
  l->idle_ns = (uint64_t)idle_ms * 1000000u;
  l->total_ns = (uint64_t)total_ms * 1000000u;
  atomic_init(&l->active, 0);
  atomic_init(&l->total, 0);
  atomic_init(&l->skipped, 0);
  l->slot = calloc((size_t)slots, sizeof(*l->slot));
  l->pf = calloc((size_t)slots + 1, sizeof(*l->pf));
  l->idx = calloc((size_t)slots + 1, sizeof(*l->idx));
  if (!l->slot || !l->pf || !l->idx) return linger_free(l), -1;
  for (int i = 0; i < slots; i++) l->slot[i].fd = -1;
  l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->wake_fd < 0 || pthread_mutex_init(&l->mu, NULL) != 0) {
    if (l->wake_fd >= 0) close(l->wake_fd);
    return linger_free(l), -1;
  }
  if (pthread_create(&l->thread, NULL, linger_main, l) != 0) {
    pthread_mutex_destroy(&l->mu);
    close(l->wake_fd);
    return linger_free(l), -1;
  }
  l->started = 1;
  return 0;
}

static void wake(linger_t *l) {
  uint64_t one = 1;
  (void)!write(l->wake_fd, &one, sizeof(one));
}

void linger_stop(linger_t *l) {
  if (!l->started) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_mutex_unlock(&l->mu);
  wake(l);
  pthread_join(l->thread, NULL);
  for (int i = 0; i < l->slots; i++)
    if (l->slot[i].fd >= 0) slot_close(l, &l->slot[i]);
  pthread_mutex_destroy(&l->mu);
  close(l->wake_fd);
  linger_free(l);
  l->started = 0;
}

int linger_add(linger_t *l, int fd) {
  if (!l->started) return -1;
  pthread_mutex_lock(&l->mu);
  int free_slot = -1;
  for (int i = 0; i < l->slots && free_slot < 0 && l->used < l->slots; i++)
    if (l->slot[i].fd < 0) free_slot = i;
  int dup_fd = free_slot >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  if (dup_fd >= 0) {
    (void)shutdown(dup_fd, SHUT_WR); /* the answer is out: end our side (MHD may have) */
    uint64_t now = job_now_ns();
    l->slot[free_slot] = (linger_slot_t){.fd = dup_fd, .t_start = now, .t_last = now};
    l->used++;
    atomic_fetch_add(&l->active, 1);
    atomic_fetch_add(&l->total, 1);
  } else {
    atomic_fetch_add(&l->skipped, 1);
  }
  pthread_mutex_unlock(&l->mu);
  if (dup_fd < 0) return -1;
  wake(l);
  return 0;
}
