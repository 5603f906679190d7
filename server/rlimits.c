/*
 * rlimits.c — fd and memory limits and the start-up fit check (see rlimits.h).
 *
 * Everything here runs once at start-up (and after a reload's load, for the
 * memory check) on the thread that asks; it reads /proc and /sys files and
 * allocates nothing. Numbers in messages are MiB, rounded up.
 */
#include "rlimits.h"

#include "cgroup.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define MIB (1024.0 * 1024.0)
#define RLIMITS_AUTO_CONNS 1000
#define RLIMITS_MAX_LINGER 256
#define RLIMITS_RSS_SLACK (32u << 20) /* allocator and library slack when counting RSS */

int rlimits_connections(long nofile, int configured, rlimits_conns_t *out, char *msg,
                        size_t n) {
  msg[0] = '\0';
  if (nofile <= 0) {
    struct rlimit rl;
    nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                 ? (long)rl.rlim_cur : 1L << 20;
  }
  long avail = nofile - RLIMITS_FD_RESERVE;
  if (avail < 8) {
    snprintf(msg, n, "the open-file limit (ulimit -n) is %ld: at least %d are needed "
             "(%d for the daemon itself, 8 for connections)", nofile, RLIMITS_FD_RESERVE + 8,
             RLIMITS_FD_RESERVE);
    return -1;
  }
  long linger = avail / 8;
  if (linger > RLIMITS_MAX_LINGER) linger = RLIMITS_MAX_LINGER;
  long hard = avail - linger; /* fds left for connections */
  long want = configured > 0 ? configured : RLIMITS_AUTO_CONNS;
  long overflow = want / 8 > 4 ? want / 8 : 4; /* answered 503 rather than left waiting */
  if (want + overflow > hard) {
    overflow = hard / 8 > 1 ? hard / 8 : 1;
    if (configured > 0)
      snprintf(msg, n, "server.max_connections = %d needs more file descriptors than the "
               "open-file limit (ulimit -n %ld) leaves; using %ld", configured, nofile,
               hard - overflow);
    want = hard - overflow;
  }
  *out = (rlimits_conns_t){(int)want, (int)(want + overflow), (int)linger};
  return 0;
}

static int read_u64(const char *path, uint64_t *v) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[64] = "";
  int ok = fgets(buf, sizeof(buf), f) != NULL;
  fclose(f);
  if (!ok || strncmp(buf, "max", 3) == 0) return -1;
  return sscanf(buf, "%" SCNu64, v) == 1 ? 0 : -1;
}

typedef struct {
  const char *file, *source; /* the limit file in each cgroup directory */
  rlimits_mem_t *out;
} mem_walk_t;

static void mem_visit(const char *dir, void *arg) {
  mem_walk_t *w = arg;
  char path[1600];
  uint64_t v;
  snprintf(path, sizeof(path), "%s/%s", dir, w->file);
  /* v1 reports "no limit" as a huge page-rounded number */
  if (read_u64(path, &v) == 0 && v < (1ULL << 60) && (w->out->limit == 0 || v < w->out->limit))
    *w->out = (rlimits_mem_t){v, 0, w->source};
}

void rlimits_memory(const char *cgroup_root, const char *self, rlimits_mem_t *out) {
  *out = (rlimits_mem_t){0, 0, NULL};
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    *out = (rlimits_mem_t){(uint64_t)rl.rlim_cur, 1, "RLIMIT_AS (ulimit -v)"};
  mem_walk_t v2 = {"memory.max", "cgroup memory.max", out};
  mem_walk_t v1 = {"memory.limit_in_bytes", "cgroup memory.limit_in_bytes", out};
  cgroup_walk(cgroup_root, self, NULL, mem_visit, &v2);
  cgroup_walk(cgroup_root, self, "memory", mem_visit, &v1);
}

uint64_t rlimits_usage(const rlimits_mem_t *m) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  const char *key = m->address_space ? "VmSize:" : "VmRSS:";
  char line[256];
  uint64_t kb = 0;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, strlen(key)) == 0 && sscanf(line + strlen(key), "%" SCNu64, &kb) == 1)
      break;
  fclose(f);
  return kb * 1024;
}

void rlimits_budget(const config_t *c, const rlimits_mem_t *m, rlimits_budget_t *b) {
  b->decode = (uint64_t)c->workers * (uint64_t)c->max_pixels * 3u;
  b->uploads = 2u * (uint64_t)c->upload_memory;
  if (!m->address_space) {
    b->stacks = RLIMITS_RSS_SLACK;
    return;
  }
  /* address space: every thread started later reserves its whole stack */
  struct rlimit rl;
  uint64_t stack = getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (uint64_t)rl.rlim_cur : 8u << 20;
  b->stacks = (uint64_t)(c->workers + c->http_threads + 2) * stack + RLIMITS_RSS_SLACK;
}

static double mib(uint64_t v) { return (double)v / MIB; }

/* "<head> + decode budget ... = total, over the limit ... . <advice>" into err. */
static int too_big(char *err, size_t n, const char *head, uint64_t models,
                   const rlimits_budget_t *b, const config_t *c, const rlimits_mem_t *m,
                   uint64_t used) {
  uint64_t total = used + models + b->decode + b->uploads + b->stacks;
  snprintf(err, n,
           "%s + decode budget %.0f MiB (%d workers x %" PRId64 " pixels x 3 B) + request "
           "bodies %.0f MiB (2 x server.upload_memory) + thread stacks and slack %.0f MiB = "
           "%.0f MiB, over the memory limit of %.0f MiB (%s). Lower engine.workers, "
           "server.max_pixels or server.upload_memory, serve fewer models, or raise the limit",
           head, mib(b->decode), c->workers, c->max_pixels, mib(b->uploads), mib(b->stacks),
           mib(total), mib(m->limit), m->source);
  return -1;
}

int rlimits_check_files(const config_t *c, const rlimits_mem_t *m, uint64_t used, char *err,
                       size_t n) {
  if (!m->limit) return 0;
  rlimits_budget_t b;
  rlimits_budget(c, m, &b);
  uint64_t models = 0;
  for (int i = 0; i < c->n_models; i++) {
    struct stat st;
    if (stat(c->models[i].path, &st) == 0) models += (uint64_t)st.st_size;
    if (used + models + b.decode + b.uploads + b.stacks <= m->limit) continue;
    char head[400];
    snprintf(head, sizeof(head), "memory: model %s does not fit: %.0f MiB in use + weights "
             "%.0f MiB (%s, from the file size%s)", c->models[i].name, mib(used), mib(models),
             c->models[i].path, i ? "s, with the models before it" : "");
    return too_big(err, n, head, models, &b, c, m, used);
  }
  return 0;
}

int rlimits_check_loaded(const config_t *c, const registry_t *reg, const rlimits_mem_t *m,
                        uint64_t used, char *err, size_t n) {
  if (!m->limit || reg->n == 0) return 0;
  rlimits_budget_t b;
  rlimits_budget(c, m, &b);
  if (used + b.decode + b.uploads + b.stacks <= m->limit) return 0;
  const model_entry_t *last = &reg->m[reg->n - 1];
  char head[400];
  snprintf(head, sizeof(head), "memory: model %s does not fit: loaded (%.0f MiB weights + "
           "%.0f MiB planned arena), the process uses %.0f MiB", last->conf->name,
           mib(last->info->weight_bytes), mib(last->runner ? runner_arena_bytes(last->runner) : 0),
           mib(used));
  return too_big(err, n, head, 0, &b, c, m, used);
}
