/*
 * cpus.c — CPUs available to this process, for sizing thread pools.
 *
 * The host's core count is the wrong number in a container or under taskset: we
 * take the affinity mask (sched_getaffinity) and cap it by the cgroup CPU quota
 * (cgroup v2 cpu.max "quota period", or v1 cfs_quota_us / cfs_period_us), rounded
 * up, as Kubernetes CPU limits and systemd's CPUQuota= set it: the tightest of the
 * process's own cgroup and its ancestors (cgroup.h).
 */
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup.h"
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

/* The tightest quota seen so far, in CPUs rounded up (0: none yet). */
static void quota_fold(int *best, long long quota, long long period) {
  if (quota <= 0 || period <= 0) return;
  long long n = (quota + period - 1) / period;
  if (n > 1 << 20) n = 1 << 20;
  if (*best == 0 || n < *best) *best = (int)n;
}

static void quota_v2(const char *dir, void *arg) {
  char a[1600];
  long long quota, period;
  snprintf(a, sizeof a, "%s/cpu.max", dir);
  if (read_two(a, &quota, &period) == 0) quota_fold(arg, quota, period);
}

static void quota_v1(const char *dir, void *arg) {
  char a[1600], b[1600];
  long long quota, period;
  snprintf(a, sizeof a, "%s/cpu.cfs_quota_us", dir);
  snprintf(b, sizeof b, "%s/cpu.cfs_period_us", dir);
  if (read_one(a, &quota) == 0 && read_one(b, &period) == 0) quota_fold(arg, quota, period);
}

/* CPUs allowed by the tightest cgroup quota on this process's cgroup or an ancestor
 * (v2 cpu.max, v1 cpu.cfs_quota_us / cfs_period_us; cgroup.h), rounded up; 0 when
 * there is none or it cannot be read. */
static int cgroup_quota_cpus(const char *root, const char *self) {
  int best = 0;
  cgroup_walk(root, self, NULL, quota_v2, &best);
  cgroup_walk(root, self, "cpu", quota_v1, &best);
  return best;
}

int cpus_available(void) {
  cpu_set_t set;
  int n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  int q = cgroup_quota_cpus(CGROUP_ROOT, CGROUP_SELF);
  if (q > 0 && q < n) n = q;
  return n;
}
