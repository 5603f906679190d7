/*
 * rlimits.h — what the process may use (file descriptors, memory) and whether
 * the configured daemon fits in it, decided at start-up.
 *
 * Connections: each costs one fd, so the connection limit is derived from
 * RLIMIT_NOFILE minus a reserve for the daemon's own fds (listening socket,
 * event loops, eventfds, model files being read) and the lingering-close
 * slots (linger.h). A configured limit above that is lowered, with a warning.
 * Beyond the soft limit, an overflow of 1/8 more connections is still accepted
 * so that their requests get a clean 503 instead of waiting unanswered.
 *
 * Memory: the limit is the tighter of RLIMIT_AS (address space: compared with
 * VmSize) and the cgroup's memory.max (v2) or memory.limit_in_bytes (v1)
 * (resident memory: compared with VmRSS). The daemon needs the models
 * (weights, then the planned arenas once loaded) plus budgets that are
 * bounded by configuration: decoding (workers x max_pixels x 3 bytes, as a
 * decoded RGB image is that large), request bodies (2 x upload_memory: the
 * budget counts bytes received, buffers grow by doubling) and thread stacks.
 * If that exceeds the limit, start-up fails with a message naming the model and
 * every term, instead of an out-of-memory kill or failure mid-request later.
 */
#ifndef CLASSIFYD_RLIMITS_H
#define CLASSIFYD_RLIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "models.h"

#define RLIMITS_FD_RESERVE 32 /* fds the daemon itself may hold besides connections */

typedef struct {
  uint64_t limit;     /* bytes; 0: no limit found */
  int address_space;  /* 1: RLIMIT_AS (compare VmSize), 0: cgroup (compare VmRSS) */
  const char *source; /* "RLIMIT_AS", "cgroup memory.max", ... */
} rlimits_mem_t;

typedef struct {
  uint64_t decode, uploads, stacks;
} rlimits_budget_t;

typedef struct {
  int soft;   /* connections served; requests on more get 503 (server.max_connections) */
  int hard;   /* connections accepted at all (libmicrohttpd's limit); more wait unaccepted */
  int linger; /* lingering-close slots */
} rlimits_conns_t;

/* Connection limits for RLIMIT_NOFILE = nofile (0: read it); configured 0 means
 * automatic (1000). 0 with *out set, or -1 with msg when the fd limit is too low to
 * serve at all; msg also carries a warning when a configured limit was lowered
 * (msg[0] != 0). */
int rlimits_connections(long nofile, int configured, rlimits_conns_t *out, char *msg,
                        size_t n);
/* The tightest memory limit: RLIMIT_AS, or memory.max / memory.limit_in_bytes on
 * this process's cgroup or any ancestor (cgroup.h). cgroup_root and self are
 * normally CGROUP_ROOT and CGROUP_SELF. */
void rlimits_memory(const char *cgroup_root, const char *self, rlimits_mem_t *out);
/* Current use in the unit the limit counts (VmSize or VmRSS), 0 if unknown. */
uint64_t rlimits_usage(const rlimits_mem_t *m);
void rlimits_budget(const config_t *c, const rlimits_mem_t *m, rlimits_budget_t *b);
/* Before loading: weights estimated from the files' sizes. 0 fits (or no limit),
 * -1 with err naming the first model that does not fit and every term. */
int rlimits_check_files(const config_t *c, const rlimits_mem_t *m, uint64_t used, char *err,
                       size_t n);
/* After loading (models are in `used`): the budgets still to come must fit. */
int rlimits_check_loaded(const config_t *c, const registry_t *reg, const rlimits_mem_t *m,
                        uint64_t used, char *err, size_t n);

#endif
