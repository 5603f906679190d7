/*
 * cgroup.h — walking this process's own cgroup directories, v2 and v1.
 *
 * A limit set on this process's cgroup, or on any ancestor of it (systemd's
 * MemoryMax= or CPUQuota= on the service or its slice, a pod's limit above its
 * container), binds the process. The mount root (/sys/fs/cgroup) is the right
 * place to read only inside a cgroup namespace (Docker, Kubernetes on v2); a
 * systemd service sees the host's root there, where no limit is set. So the
 * readers walk from the process's own cgroup, named in /proc/self/cgroup, up to
 * the mount root, and take the tightest limit (cpus.c, rlimits.c).
 */
#ifndef CLASSIFYD_CGROUP_H
#define CLASSIFYD_CGROUP_H

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP_SELF "/proc/self/cgroup"

/* Calls visit(dir, arg) for this process's cgroup directory in the hierarchy of
 * `controller` ("memory", "cpu": v1, mounted at root/controller; NULL: the v2
 * unified hierarchy, mounted at root) and for each ancestor up to the mount
 * root, leaf first; directories that do not exist are skipped (a container
 * without a cgroup namespace may see only its own cgroup, at the mount root).
 * `self` is a /proc/PID/cgroup file; without one, or without a line for that
 * hierarchy, only the mount root is visited. */
void cgroup_walk(const char *root, const char *self, const char *controller,
                 void (*visit)(const char *dir, void *arg), void *arg);

#endif
