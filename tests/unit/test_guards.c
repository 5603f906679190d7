/*
 * test_guards.c — unit tests of the daemon's guards against abusive clients and
 * of its resource limits: the connection registry's slow-client sweep and soft
 * limit (conns.c), the lingering close (linger.c) and the fd and memory limits
 * (rlimits.c). Sockets are AF_UNIX socket pairs; cgroup files are written to a
 * temporary directory standing in for /sys/fs/cgroup.
 *
 * The server sources under test are compiled into this translation unit, as in
 * test_server.c (which does not include these).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../server/conns.c"
#include "../../server/linger.c"
#include "../../server/rlimits.c"

#define SEC 1000000000ull

/* 1 when the peer sees end-of-stream within ms milliseconds, 0 if still open. */
static int peer_closed(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, ms) <= 0) return 0;
  char b[256];
  ssize_t n;
  while ((n = recv(fd, b, sizeof(b), MSG_DONTWAIT)) > 0) {}
  return n == 0 || (n < 0 && errno != EAGAIN);
}

Test(conns, sweep_cuts_only_late_waiting_connections) {
  conns_t c;
  cr_assert_eq(conns_init(&c, 2, 1000, 100), 0);
  int a[2], b[2], e2[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, e2), 0);
  conn_entry_t *late = conns_open(&c, a[0]), *busy = conns_open(&c, b[0]);
  conn_entry_t *steady = conns_open(&c, e2[0]);
  cr_assert(late && busy && steady);
  conns_exempt(busy);          /* its request is complete: no deadline */
  conns_progress(steady, 5000); /* 5000 bytes at 1000 B/s: 5 s more */
  uint64_t t0 = atomic_load(&late->t_start);
  cr_assert_eq(conns_sweep(&c, t0 + 1 * SEC), 0, "nobody is late at 1 s");
  cr_assert_eq(conns_sweep(&c, t0 + 3 * SEC), 1, "only the waiting one is late at 3 s");
  cr_assert(peer_closed(a[1], 100), "its socket was shut down");
  cr_assert_not(peer_closed(b[1], 0));
  cr_assert_not(peer_closed(e2[1], 0));
  cr_assert_eq(conns_sweep(&c, t0 + 4 * SEC), 0, "a cut connection is not cut twice");
  cr_assert_eq(conns_sweep(&c, t0 + 8 * SEC), 1, "the steady one's extension runs out");
  conns_answered(busy); /* answered: the next request's clock starts now */
  uint64_t t1 = atomic_load(&busy->t_start);
  cr_assert_eq(conns_sweep(&c, t1 + 1 * SEC), 0);
  cr_assert_eq(conns_sweep(&c, t1 + 3 * SEC), 1);
  cr_assert_eq(atomic_load(&c.cut), 3);
  cr_assert_eq(atomic_load(&c.open), 3);
  conns_close(&c, late);
  conns_close(&c, busy);
  conns_close(&c, steady);
  conns_close(&c, NULL);
  cr_assert_eq(atomic_load(&c.open), 0);
  conns_deinit(&c);
  for (int i = 0; i < 2; i++) close(a[i]), close(b[i]), close(e2[i]);
}

Test(conns, sweep_cuts_a_waiting_connection_whose_client_left) {
  conns_t c;
  cr_assert_eq(conns_init(&c, 30, 1000, 100), 0);
  int gone[2], busy[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, gone), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, busy), 0);
  conn_entry_t *g = conns_open(&c, gone[0]), *b = conns_open(&c, busy[0]);
  cr_assert_eq(send(busy[1], "GET", 3, 0), 3); /* unread data: not gone */
  cr_assert_eq(conns_sweep(&c, job_now_ns()), 0, "both clients are there");
  close(gone[1]);
  close(busy[1]); /* data still pending before its end of stream: MHD reads it first */
  cr_assert_eq(conns_sweep(&c, job_now_ns()), 1, "the one with only end-of-stream left");
  cr_assert_eq(atomic_load(&g->state), CONN_CUT);
  cr_assert_eq(atomic_load(&b->state), CONN_WAITING);
  conns_close(&c, g);
  conns_close(&c, b);
  conns_deinit(&c);
  close(gone[0]);
  close(busy[0]);
}

Test(conns, connections_beyond_the_soft_limit_are_marked_over) {
  conns_t c;
  cr_assert_eq(conns_init(&c, 30, 0, 2), 0);
  conn_entry_t *e[4];
  for (int i = 0; i < 4; i++) e[i] = conns_open(&c, -1);
  cr_assert(!e[0]->over && !e[1]->over && e[2]->over && e[3]->over);
  conns_close(&c, e[0]);
  conns_close(&c, e[2]);
  conn_entry_t *again = conns_open(&c, -1); /* 2 open before it: over */
  cr_assert(again->over);
  conns_close(&c, again);
  conns_close(&c, e[1]);
  conn_entry_t *fits = conns_open(&c, -1); /* 1 open before it */
  cr_assert_not(fits->over);
  conns_close(&c, fits);
  conns_close(&c, e[3]);
  conns_deinit(&c);
}

Test(linger, reads_until_the_client_closes_then_closes) {
  linger_t l;
  cr_assert_eq(linger_start(&l, 2, 1 << 20, 2000, 10000), 0);
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cr_assert_eq(linger_add(&l, sv[0]), 0);
  close(sv[0]); /* as MHD does: the socket stays open through the duplicate */
  cr_assert(peer_closed(sv[1], 200) == 1, "our side ended its writing (FIN)");
  char buf[65536] = {0};
  size_t sent = 0;
  for (int i = 0; i < 8; i++) { /* 512 KiB: more than the socket buffers hold */
    ssize_t n = send(sv[1], buf, sizeof(buf), MSG_NOSIGNAL);
    cr_assert_gt(n, 0, "the client can keep sending: %s", strerror(errno));
    sent += (size_t)n;
  }
  cr_assert_eq(atomic_load(&l.active), 1);
  close(sv[1]);
  for (int i = 0; i < 500 && atomic_load(&l.active); i++) usleep(10000);
  cr_assert_eq(atomic_load(&l.active), 0, "closed once the client closed");
  cr_assert_eq(atomic_load(&l.total), 1);
  linger_stop(&l);
}

Test(linger, bounded_by_bytes_idle_time_and_slots) {
  linger_t l;
  cr_assert_eq(linger_start(&l, 1, 100000, 200, 10000), 0);
  int a[2], b[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  cr_assert_eq(linger_add(&l, a[0]), 0);
  cr_assert_eq(linger_add(&l, b[0]), -1, "one slot only: the second is not kept");
  cr_assert_eq(atomic_load(&l.skipped), 1);
  close(a[0]);
  close(b[0]);
  char buf[16384] = {0};
  int refused = 0;
  for (int i = 0; i < 64 && !refused; i++) { /* 1 MiB offered, 100000 bytes accepted */
    if (send(a[1], buf, sizeof(buf), MSG_NOSIGNAL) < 0) refused = 1;
    else usleep(2000);
  }
  cr_assert(refused, "closed after the byte budget: the client's send fails");
  close(a[1]);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  cr_assert_eq(linger_add(&l, a[0]), 0, "the slot is free again");
  close(a[0]);
  cr_assert(peer_closed(a[1], 100), "FIN at once");
  uint64_t t0 = job_now_ns(); /* idle 200 ms: closed without the client doing anything */
  while (atomic_load(&l.active) && job_now_ns() - t0 < 5 * SEC) usleep(10000);
  cr_assert_eq(atomic_load(&l.active), 0);
  cr_assert_geq(job_now_ns() - t0, 150000000u, "not before the idle time");
  close(a[1]);
  close(b[1]);
  linger_stop(&l);
}

Test(rlimits, connections_follow_the_open_file_limit) {
  rlimits_conns_t c;
  char msg[512];
  cr_assert_eq(rlimits_connections(64, 0, &c, msg, sizeof(msg)), 0);
  cr_assert_eq(c.linger, 4);                     /* (64 - 32) / 8 */
  cr_assert_eq(c.hard, 28);                      /* 64 - 32 - 4 */
  cr_assert_eq(c.soft, 25);                      /* 1/8 of the fds kept to answer 503 */
  cr_assert_str_eq(msg, "", "automatic: no warning");
  cr_assert_eq(rlimits_connections(100000, 10, &c, msg, sizeof(msg)), 0);
  cr_assert(c.soft == 10 && c.hard == 14 && c.linger == 256);
  cr_assert_eq(rlimits_connections(100000, 0, &c, msg, sizeof(msg)), 0);
  cr_assert(c.soft == 1000 && c.hard == 1125);
  cr_assert_eq(rlimits_connections(1024, 5000, &c, msg, sizeof(msg)), 0);
  cr_assert_leq(c.hard + c.linger + RLIMITS_FD_RESERVE, 1024);
  cr_assert(strstr(msg, "server.max_connections = 5000") && strstr(msg, "ulimit -n 1024"), "%s",
            msg);
  cr_assert_eq(rlimits_connections(20, 0, &c, msg, sizeof(msg)), -1);
  cr_assert(strstr(msg, "open-file limit (ulimit -n) is 20"), "%s", msg);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
}

Test(rlimits, memory_limit_from_cgroup_files) {
  struct rlimit rl;
  cr_assert_eq(getrlimit(RLIMIT_AS, &rl), 0);
  if (rl.rlim_cur != RLIM_INFINITY) cr_skip_test("RLIMIT_AS is set for the test itself");
  char root[] = "/tmp/classifyd-cg-XXXXXX", p[256];
  cr_assert(mkdtemp(root));
  rlimits_mem_t m;
  rlimits_memory(root, "/nonexistent", &m);
  cr_assert_eq(m.limit, 0, "no files: no limit");
  snprintf(p, sizeof(p), "%s/memory.max", root);
  write_file(p, "max\n");
  rlimits_memory(root, "/nonexistent", &m);
  cr_assert_eq(m.limit, 0, "v2 \"max\": no limit");
  write_file(p, "1073741824\n");
  rlimits_memory(root, "/nonexistent", &m);
  cr_assert_eq(m.limit, 1073741824u);
  cr_assert_eq(m.address_space, 0, "a cgroup limit counts resident memory");
  cr_assert_str_eq(m.source, "cgroup memory.max");
  unlink(p);
  snprintf(p, sizeof(p), "%s/memory", root);
  cr_assert_eq(mkdir(p, 0700), 0);
  snprintf(p, sizeof(p), "%s/memory/memory.limit_in_bytes", root);
  write_file(p, "9223372036854771712\n");
  rlimits_memory(root, "/nonexistent", &m);
  cr_assert_eq(m.limit, 0, "v1 'unlimited' is a huge number");
  write_file(p, "536870912\n");
  rlimits_memory(root, "/nonexistent", &m);
  cr_assert_eq(m.limit, 536870912u);
  unlink(p);
  snprintf(p, sizeof(p), "%s/memory", root);
  rmdir(p);
  rmdir(root);
}

/* Under systemd (no cgroup namespace) the mount root is the host's: the limit is on
 * the service's own cgroup or its slice, named in /proc/self/cgroup. */
Test(rlimits, memory_limit_of_the_process_cgroup_and_its_ancestors) {
  struct rlimit rl;
  cr_assert_eq(getrlimit(RLIMIT_AS, &rl), 0);
  if (rl.rlim_cur != RLIM_INFINITY) cr_skip_test("RLIMIT_AS is set for the test itself");
  char root[] = "/tmp/classifyd-cg-XXXXXX", p[600], self[300], cmd[700];
  cr_assert(mkdtemp(root));
  snprintf(cmd, sizeof cmd, "mkdir -p '%s/app.slice/svc' '%s/memory/app.slice/svc'", root, root);
  cr_assert_eq(system(cmd), 0);
  snprintf(self, sizeof self, "%s/self", root);
  write_file(self, "0::/app.slice/svc\n7:memory:/app.slice/svc\n");
  rlimits_mem_t m;
  snprintf(p, sizeof p, "%s/memory.max", root);
  write_file(p, "max\n");
  snprintf(p, sizeof p, "%s/app.slice/svc/memory.max", root);
  write_file(p, "734003200\n");
  rlimits_memory(root, self, &m);
  cr_assert_eq(m.limit, 734003200u, "the service's MemoryMax=700M, below an unlimited root");
  cr_assert_str_eq(m.source, "cgroup memory.max");
  snprintf(p, sizeof p, "%s/memory/app.slice/memory.limit_in_bytes", root);
  write_file(p, "536870912\n");
  rlimits_memory(root, self, &m);
  cr_assert_eq(m.limit, 536870912u, "a v1 parent's tighter limit binds too");
  cr_assert_str_eq(m.source, "cgroup memory.limit_in_bytes");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  cr_assert_eq(system(cmd), 0);
}

Test(rlimits, models_that_do_not_fit_are_named_with_the_numbers) {
  char path[] = "/tmp/classifyd-model-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(ftruncate(fd, 50 << 20), 0); /* a 50 MiB "model" */
  close(fd);
  config_t c;
  memset(&c, 0, sizeof(c));
  c.workers = 2, c.http_threads = 1, c.max_pixels = 10000000, c.upload_memory = 16 << 20;
  c.n_models = 1;
  snprintf(c.models[0].name, sizeof(c.models[0].name), "big");
  c.models[0].path = path;
  rlimits_mem_t m = {400u << 20, 0, "cgroup memory.max"};
  char err[1024];
  /* 50 weights + 57 decode + 32 bodies + 32 slack + 100 in use = 271 MiB: fits in 400 */
  cr_assert_eq(rlimits_check_files(&c, &m, 100u << 20, err, sizeof(err)), 0);
  m.limit = 250u << 20;
  cr_assert_eq(rlimits_check_files(&c, &m, 100u << 20, err, sizeof(err)), -1);
  cr_assert(strstr(err, "model big does not fit") && strstr(err, "weights 50 MiB") &&
                strstr(err, "decode budget 57 MiB") && strstr(err, "= 271 MiB") &&
                strstr(err, "limit of 250 MiB (cgroup memory.max)"),
            "%s", err);
  m.limit = 0;
  cr_assert_eq(rlimits_check_files(&c, &m, 100u << 20, err, sizeof(err)), 0, "no limit");
  unlink(path);
}

Test(rlimits, upload_memory_defaults_to_the_body_limit_at_least) {
  config_t c;
  char err[512];
  char *a1[] = {"classifyd", "--model", "a=/dev/null", NULL};
  cr_assert_eq(config_parse(&c, 3, a1, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(c.upload_memory, (size_t)128 << 20);
  cr_assert_eq(c.max_connections, 0, "automatic");
  cr_assert(c.header_limit == 32768 && c.max_headers == 64 && c.max_query_args == 16);
  config_free(&c);
  char *a2[] = {"classifyd", "--model", "a=/dev/null", "--body-limit", "512M", NULL};
  cr_assert_eq(config_parse(&c, 5, a2, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(c.upload_memory, (size_t)512 << 20);
  config_free(&c);
  char *a3[] = {"classifyd", "--model", "a=/dev/null", "--body-limit", "2M", "--upload-memory",
                "1M", NULL};
  cr_assert_eq(config_parse(&c, 7, a3, err, sizeof(err)), -1);
  cr_assert(strstr(err, "server.upload_memory") && strstr(err, "server.body_limit"), "%s", err);
  config_free(&c);
}
