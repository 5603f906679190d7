/*
 * mhd_midbody.c — can the installed libmicrohttpd answer in the middle of a request body?
 *
 *   mhd_midbody [BODY_BYTES [ANSWER_AT]]      (defaults: 1000000, 100000)
 *
 * The experiment behind http.c's handling of chunked bodies over the limit: a
 * minimal MHD server (internal polling thread, 3 s connection timeout) whose
 * handler, once ANSWER_AT bytes of a chunked body are in, queues a 413 the way
 * classifyd would; a client on the same process sends the whole body (16 KiB
 * chunks and the last chunk) and then reads until the server closes or 8 s pass.
 * It prints what MHD_queue_response() returned mid-body, how often the handler
 * was called again after the body ended, what the client read and when, and
 * MHD's termination code. libmicrohttpd 0.9.75 (Debian 12): MHD_NO mid-body.
 * Exit status: 0 when the experiment ran (whatever MHD did), 1 when it could not.
 * Threads: MHD's polling thread runs the handler; main is the client; the
 * counters are atomics. Memory: the per-request state is static (one request).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MB_CHUNK 16384

typedef struct {
  size_t answer_at;
  atomic_size_t got;
  atomic_int mid_rc;        /* -1: not tried; else the MHD_Result mid-body */
  atomic_long final_calls;  /* handler calls with no data once the body ended */
  atomic_int toe;           /* termination code, -1 until completed */
} mb_state_t;

static double mb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum MHD_Result mb_queue_413(struct MHD_Connection *c) {
  static const char body[] = "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"x\"}}\n";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result rc = MHD_queue_response(c, 413, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result mb_handler(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)url, (void)method, (void)version, (void)upload;
  mb_state_t *s = cls;
  if (!*con_cls) { /* headers: nothing to say yet (no Content-Length to judge) */
    *con_cls = s;
    return MHD_YES;
  }
  if (*upload_size) {
    size_t got = atomic_fetch_add(&s->got, *upload_size) + *upload_size;
    *upload_size = 0;
    int tried = -1;
    if (got > s->answer_at && atomic_compare_exchange_strong(&s->mid_rc, &tried, 0))
      atomic_store(&s->mid_rc, (int)mb_queue_413(c));
    return MHD_YES;
  }
  atomic_fetch_add(&s->final_calls, 1);
  /* An answer queued mid-body, if MHD took it, is already there; else leave it
   * unanswered to see what MHD does with a request it cannot finish. */
  return MHD_YES;
}

static void mb_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)c, (void)con_cls;
  atomic_store(&((mb_state_t *)cls)->toe, (int)toe);
}

/* Sends the chunked request; 0, or -1 with errno's text printed. */
static int mb_send(int fd, size_t total) {
  static char chunk[MB_CHUNK + 16];
  const char head[] = "POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n";
  if (send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL) < 0) return perror("send"), -1;
  for (size_t sent = 0; sent < total;) {
    size_t n = total - sent < MB_CHUNK ? total - sent : MB_CHUNK;
    int h = snprintf(chunk, sizeof(chunk), "%zx\r\n", n);
    memset(chunk + h, 0xff, n);
    memcpy(chunk + h + n, "\r\n", 2);
    for (size_t off = 0, len = (size_t)h + n + 2; off < len;) {
      ssize_t w = send(fd, chunk + off, len - off, MSG_NOSIGNAL);
      if (w < 0) return perror("send body"), -1;
      off += (size_t)w;
    }
    sent += n;
  }
  if (send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL) < 0) return perror("send last chunk"), -1;
  return 0;
}

/* Reads until EOF, an error or 8 s; prints what came and when. */
static void mb_read(int fd, double t0) {
  struct timeval tv = {.tv_sec = 8};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[4096], first[128] = "";
  size_t total = 0;
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
    if (total == 0) snprintf(first, sizeof(first), "%.*s", (int)strcspn(buf, "\r\n"), buf);
    total += (size_t)n;
  }
  const char *end = n == 0 ? "closed by the server" : "no end (timeout or reset)";
  printf("client read: %zu bytes%s%s%s, then %s after %.1f s\n", total, *first ? " (\"" : "",
         first, *first ? "\")" : "", end, mb_now() - t0);
}

int main(int argc, char **argv) {
  size_t total = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
  mb_state_t s = {.answer_at = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000};
  atomic_init(&s.got, 0), atomic_init(&s.mid_rc, -1);
  atomic_init(&s.final_calls, 0), atomic_init(&s.toe, -1);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, mb_handler, &s,
      MHD_OPTION_NOTIFY_COMPLETED, mb_completed, &s, MHD_OPTION_CONNECTION_TIMEOUT, 3u,
      MHD_OPTION_END);
  const union MHD_DaemonInfo *di = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  if (!di) return fprintf(stderr, "cannot start libmicrohttpd\n"), 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(di->port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("connect");
    MHD_stop_daemon(d);
    return 1;
  }
  printf("libmicrohttpd %s; a %zu-byte chunked body, answered once %zu bytes are in\n",
         MHD_get_version(), total, s.answer_at);
  double t0 = mb_now();
  int sent = mb_send(fd, total);
  mb_read(fd, t0);
  close(fd);
  usleep(200000);
  int mid = atomic_load(&s.mid_rc);
  printf("send: %s; MHD_queue_response mid-body: %s; body bytes the handler saw: %zu\n",
         sent == 0 ? "complete" : "failed",
         mid < 0 ? "not tried" : mid == MHD_YES ? "MHD_YES" : "MHD_NO", atomic_load(&s.got));
  printf("handler calls after the body ended, no answer queued: %ld; termination code: %d "
         "(0 ok, 1 error, 2 timeout, 3 shutdown, 4 read error, 5 client abort, -1 none yet)\n",
         atomic_load(&s.final_calls), atomic_load(&s.toe));
  MHD_stop_daemon(d);
  return 0;
}
