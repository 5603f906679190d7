/*
 * cpus.h — how many CPUs this process may actually use.
 */
#ifndef CLASSIFYD_CPUS_H
#define CLASSIFYD_CPUS_H

/* min(CPUs in the affinity mask, cgroup v2/v1 CPU quota rounded up), at least 1. */
int cpus_available(void);

#endif
