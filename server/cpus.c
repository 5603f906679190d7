/*
 * cpus.c — CPUs available to this process, for sizing thread pools.
 *
 * The host's core count is the wrong number in a container or under taskset: we
 * take the affinity mask (sched_getaffinity) and cap it by the cgroup CPU quota
 * (cgroup v2 cpu.max "quota period", or v1 cfs_quota_us / cfs_period_us), rounded
 * up, as Kubernetes CPU limits set it.
 */
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "cpus.h"

static int read_two(const char *path, long long *a, long long *b) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char first[32] = "";
  int n = fscanf(f, "%31s %lld", first, b);
  fclose(f);
  if (n != 2) return -1;
  if (first[0] == 'm') *a = -1; /* "max": no quota */
  else if (sscanf(first, "%lld", a) != 1) return -1;
  return 0;
}

static int read_one(const char *path, long long *v) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = fscanf(f, "%lld", v);
  fclose(f);
  return n == 1 ? 0 : -1;
}

/* CPUs allowed by the cgroup quota under `root` (v2 first, then v1), rounded up;
 * 0 when there is no quota or it cannot be read. */
static int cgroup_quota_cpus(const char *root) {
  char a[512], b[512];
  long long quota, period;
  snprintf(a, sizeof a, "%s/cpu.max", root);
  if (read_two(a, &quota, &period) == 0 && quota > 0 && period > 0)
    return (int)((quota + period - 1) / period);
  snprintf(a, sizeof a, "%s/cpu/cpu.cfs_quota_us", root);
  snprintf(b, sizeof b, "%s/cpu/cpu.cfs_period_us", root);
  if (read_one(a, &quota) == 0 && read_one(b, &period) == 0 && quota > 0 && period > 0)
    return (int)((quota + period - 1) / period);
  return 0;
}

int cpus_available(void) {
  cpu_set_t set;
  int n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  int q = cgroup_quota_cpus("/sys/fs/cgroup");
  if (q > 0 && q < n) n = q;
  return n;
}
