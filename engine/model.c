/*
 * model.c — cnn_model_load: file -> protobuf (protobuf-c, generated at build time
 * from the system's onnx.proto) -> graph -> shape inference -> fusion -> memory
 * plan, then the public info (parameters, MACs, labels, preprocessing).
 *
 * The decoded protobuf is freed before returning; the model keeps only its own
 * copies (weights as float arrays), so a loaded model is compact and read-only.
 * A file is read whole (protobuf needs it contiguous); 2 GiB is protobuf's limit.
 *
 * Start-up time is mostly first writes to fresh memory: on session 26's VM a fresh
 * page cost ~10 us (2.5 ms per MB, 40x a copy between warm buffers), and ResNet-50's
 * load wrote ~570 MB: read 270 ms, decode 360, copy into tensors 200, weight
 * preparation 650 (daemon ready after 1.56 s). So a load now writes as little new
 * memory as it can, on all the CPUs it may use: the file is read by several threads
 * (pread shares), the decoder's raw_data blocks become the weights (no copy), and the
 * convs' weights are prepared in parallel without a whole-layer temporary
 * (graph_prepare.c, kern_wino_prepare). Ready after ~0.7 s (session 26), ~0.3-0.4 s
 * since the change below.
 * The file's buffer comes from cnn_mem_alloc too, so its interior is on huge pages
 * (THP in madvise mode) and is faulted in 2 MiB at a time: on session 30's VM (Zen 5,
 * where a fresh 4 KiB page costs ~10-25 us) ResNet-50's load went from 55,000 minor
 * faults and 560-594 ms to 30,000 and 313-325 ms (bench_engine, 3 runs each).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "mem.h"
#include "model_internal.h"
#include "onnx_internal.h"
#include "pool.h"

#define MAX_MODEL_BYTES ((size_t)2 << 30)

/* Threads a load uses to read the file and prepare weights: the CPUs this process
 * may run on, at most LOAD_THREADS_MAX. Both steps are mostly first writes to fresh
 * memory, which two threads do 1.75x as fast as one on session 26's VM (200 MB: 510
 * -> 290 ms). Buffers below LOAD_PARALLEL_MIN load on the caller's thread alone. */
enum { LOAD_THREADS_MAX = 4, LOAD_PARALLEL_MIN = 1 << 20 };

static pool_t *load_pool(size_t bytes) {
  cpu_set_t set;
  int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  n = n < 1 ? 1 : n > LOAD_THREADS_MAX ? LOAD_THREADS_MAX : n;
  pool_t *p = NULL;
  if (n > 1 && bytes >= LOAD_PARALLEL_MIN && pool_create(n, &p)) p = NULL; /* then serial */
  return p;
}

typedef struct {
  int fd;
  uint8_t *data;
  size_t len;
  atomic_int failed;
} read_job_t;

/* Thread tid's share of the file, with pread (no shared offset). */
static void read_task(void *arg, int tid, int nthreads) {
  read_job_t *j = arg;
  size_t at, end;
  pool_split(j->len, tid, nthreads, &at, &end);
  while (at < end) {
    ssize_t r = pread(j->fd, j->data + at, end - at, (off_t)at);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) { /* an error, or the file shrank under us */
      atomic_store(&j->failed, 1);
      return;
    }
    at += (size_t)r;
  }
}

/* Reads the whole file into *data (malloc'd; protobuf needs it contiguous), on the
 * pool's threads when there is one; creates *pool for the rest of the load. */
static int read_file(const char *path, pool_t **pool, uint8_t **data, size_t *len,
                     cnn_error_t *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cnn_error_set(err, CNN_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode))
    rc = cnn_error_set(err, CNN_EIO, "%s: not a regular file", path);
  else if ((size_t)st.st_size > MAX_MODEL_BYTES)
    rc = cnn_error_set(err, CNN_EMODEL_INVALID, "%s: larger than 2 GiB", path);
  else if (!(*data = cnn_mem_alloc((size_t)st.st_size + 1)))
    rc = cnn_error_set(err, CNN_ENOMEM, "%s: out of memory", path);
  if (!rc) {
    read_job_t j = {.fd = fd, .data = *data, .len = (size_t)st.st_size};
    atomic_init(&j.failed, 0);
    *pool = load_pool(j.len);
    if (*pool)
      pool_run(*pool, read_task, &j);
    else
      read_task(&j, 0, 1);
    if (atomic_load(&j.failed)) rc = cnn_error_set(err, CNN_EIO, "%s: read failed", path);
  }
  close(fd);
  if (rc) {
    free(*data);
    *data = NULL;
  } else {
    *len = (size_t)st.st_size;
  }
  return rc;
}

/* Parameters as PyTorch counts them: weights and biases, not BN running statistics. */
static int64_t count_params(cnn_model_t *m) {
  int64_t total = 0;
  char *seen = calloc((size_t)m->nvals, 1);
  if (!seen) return 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    for (int j = 0; j < n->nin; j++) {
      int v = n->in[j];
      if (v < 0 || seen[v] || !m->vals[v].param || m->vals[v].dtype != DT_FLOAT) continue;
      if (n->op == OP_BATCHNORM && j >= 3) continue;
      seen[v] = 1;
      total += graph_numel(&m->vals[v]);
    }
  }
  free(seen);
  return total;
}

static void summarize(cnn_model_t *m) {
  cnn_model_info_t *in = &m->info;
  in->macs = 0;
  size_t floats = 0;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    in->macs = n->macs > INT64_MAX - in->macs ? INT64_MAX : in->macs + n->macs; /* saturates */
    if (n->op == OP_CONV) {
      const kern_conv_t *k = &n->a.conv.k;
      floats += (size_t)k->cout * k->cin * k->kh * k->kw + (k->bias ? (size_t)k->cout : 0);
      continue;
    }
    if (n->op == OP_BATCHNORM) floats += 2 * (size_t)m->vals[n->out].dims[1];
    else
      for (int j = 0; j < n->nin; j++)
        if (n->in[j] >= 0 && m->vals[n->in[j]].kind == VAL_CONST && m->vals[n->in[j]].dtype == DT_FLOAT)
          floats += (size_t)graph_numel(&m->vals[n->in[j]]);
  }
  in->weight_bytes = floats * sizeof(float);
  int p = m->vals[graph_root(m, m->output)].producer;
  in->outputs_probabilities = p >= 0 && m->nodes[p].op == OP_SOFTMAX;
}

/* protobuf-c's allocator for the decode: blocks of PB_ADOPT_MIN bytes and more (in a
 * model, the initializers' raw_data) come 64-byte aligned from cnn_mem_alloc, so
 * onnx_tensor_to_value can adopt them as the weights instead of copying them
 * (ResNet-50: 98 MB of fresh memory and ~200 ms less). Smaller blocks (names, node
 * lists, small tensors) keep malloc's. */
enum { PB_ADOPT_MIN = 4096 };
static void *pb_alloc(void *ud, size_t n) {
  (void)ud;
  return n >= PB_ADOPT_MIN ? cnn_mem_alloc(n) : malloc(n);
}
static void pb_free(void *ud, void *p) {
  (void)ud;
  free(p);
}
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

static int build(cnn_model_t *m, const uint8_t *data, size_t len, const char *stem,
                 pool_t *pool, cnn_error_t *err) {
  if (len == 0) return cnn_error_set(err, CNN_EMODEL_INVALID, "empty file");
  Onnx__ModelProto *mp = onnx__model_proto__unpack(&pb_allocator, len, data);
  if (!mp)
    return cnn_error_set(err, CNN_EMODEL_INVALID,
                         "not a valid ONNX model (truncated or corrupt protobuf)");
  int rc = onnx_graph_build(m, mp, err);
  if (!rc) rc = graph_infer(m, err);
  if (!rc) {
    const graph_value_t *x = &m->vals[m->input];
    m->info.in_c = (int)x->dims[1], m->info.in_h = (int)x->dims[2], m->info.in_w = (int)x->dims[3];
    m->info.num_classes = (int)m->vals[m->output].dims[1];
    m->info.params = count_params(m);
    m->info.opset = m->opset;
    rc = model_read_meta(m, mp, stem, err);
  }
  onnx__model_proto__free_unpacked(mp, &pb_allocator);
  if (!rc) rc = graph_fuse(m, err);
  if (!rc) rc = graph_prepare(m, pool, err);
  if (!rc) rc = graph_plan(m, err);
  if (!rc) rc = graph_plan_serial(m, err);
  if (!rc) summarize(m);
  return rc;
}

static int load_common(const void *data, size_t len, const char *dir, const char *path,
                       const char *stem, pool_t *pool, cnn_model_t **out, cnn_error_t *err) {
  cnn_error_clear(err);
  *out = NULL;
  cnn_model_t *m = calloc(1, sizeof *m);
  if (!m) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  m->dir = dir ? strdup(dir) : NULL;
  m->path = strdup(path ? path : "");
  int rc = (dir && !m->dir) || !m->path ? cnn_error_set(err, CNN_ENOMEM, "out of memory") : 0;
  if (!rc) rc = build(m, data, len, stem, pool, err);
  if (rc) {
    cnn_model_destroy(m);
    return rc;
  }
  m->info.path = m->path;
  *out = m;
  return 0;
}

int cnn_model_load_buffer(const void *data, size_t len, const char *dir, const char *name,
                          cnn_model_t **out, cnn_error_t *err) {
  pool_t *pool = load_pool(len);
  int rc = load_common(data, len, dir, "", name ? name : "model", pool, out, err);
  pool_destroy(pool);
  return rc;
}

int cnn_model_load(const char *path, cnn_model_t **out, cnn_error_t *err) {
  uint8_t *data = NULL;
  size_t len = 0;
  *out = NULL;
  pool_t *pool = NULL;
  int rc = read_file(path, &pool, &data, &len, err);
  if (rc) {
    pool_destroy(pool);
    return rc;
  }
  char a[PATH_MAX], b[PATH_MAX];
  snprintf(a, sizeof a, "%s", path);
  snprintf(b, sizeof b, "%s", path);
  char *stem = basename(b), *dot = strrchr(stem, '.');
  if (dot && dot != stem) *dot = '\0';
  rc = load_common(data, len, dirname(a), path, stem, pool, out, err);
  pool_destroy(pool);
  if (rc && err && err->code) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    cnn_error_set(err, rc, "%s: %s", path, msg);
  }
  free(data);
  return rc;
}

void cnn_model_destroy(cnn_model_t *m) {
  if (!m) return;
  graph_free(m);
  if (m->labels)
    for (int i = 0; i < m->info.num_classes; i++) free(m->labels[i]);
  free(m->labels);
  free(m->name);
  free(m->arch);
  free(m->path);
  free(m->dir);
  free(m);
}

const cnn_model_info_t *cnn_model_info(const cnn_model_t *m) { return &m->info; }
