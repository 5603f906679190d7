/*
 * model.c — cnn_model_load: file -> protobuf (protobuf-c, generated at build time
 * from the system's onnx.proto) -> graph -> shape inference -> fusion -> memory
 * plan, then the public info (parameters, MACs, labels, preprocessing).
 *
 * The decoded protobuf is freed before returning; the model keeps only its own
 * copies (weights as float arrays), so a loaded model is compact and read-only.
 * A file is read whole (protobuf needs it contiguous); 2 GiB is protobuf's limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "model_internal.h"
#include "onnx_internal.h"

#define MAX_MODEL_BYTES ((size_t)2 << 30)

static int read_file(const char *path, uint8_t **data, size_t *len, cnn_error_t *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cnn_error_set(err, CNN_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode))
    rc = cnn_error_set(err, CNN_EIO, "%s: not a regular file", path);
  else if ((size_t)st.st_size > MAX_MODEL_BYTES)
    rc = cnn_error_set(err, CNN_EMODEL_INVALID, "%s: larger than 2 GiB", path);
  else if (!(*data = malloc((size_t)st.st_size + 1)))
    rc = cnn_error_set(err, CNN_ENOMEM, "%s: out of memory", path);
  for (size_t done = 0; !rc && done < (size_t)st.st_size;) {
    ssize_t r = read(fd, *data + done, (size_t)st.st_size - done);
    if (r <= 0) rc = cnn_error_set(err, CNN_EIO, "%s: read failed", path);
    else done += (size_t)r;
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

static int build(cnn_model_t *m, const uint8_t *data, size_t len, const char *stem,
                 cnn_error_t *err) {
  if (len == 0) return cnn_error_set(err, CNN_EMODEL_INVALID, "empty file");
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
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
  onnx__model_proto__free_unpacked(mp, NULL);
  if (!rc) rc = graph_fuse(m, err);
  if (!rc) rc = graph_plan(m, err);
  if (!rc) rc = graph_plan_serial(m, err);
  if (!rc) summarize(m);
  return rc;
}

static int load_common(const void *data, size_t len, const char *dir, const char *path,
                       const char *stem, cnn_model_t **out, cnn_error_t *err) {
  cnn_error_clear(err);
  *out = NULL;
  cnn_model_t *m = calloc(1, sizeof *m);
  if (!m) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  m->dir = dir ? strdup(dir) : NULL;
  m->path = strdup(path ? path : "");
  int rc = (dir && !m->dir) || !m->path ? cnn_error_set(err, CNN_ENOMEM, "out of memory") : 0;
  if (!rc) rc = build(m, data, len, stem, err);
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
  return load_common(data, len, dir, "", name ? name : "model", out, err);
}

int cnn_model_load(const char *path, cnn_model_t **out, cnn_error_t *err) {
  uint8_t *data = NULL;
  size_t len = 0;
  *out = NULL;
  int rc = read_file(path, &data, &len, err);
  if (rc) return rc;
  char a[PATH_MAX], b[PATH_MAX];
  snprintf(a, sizeof a, "%s", path);
  snprintf(b, sizeof b, "%s", path);
  char *stem = basename(b), *dot = strrchr(stem, '.');
  if (dot && dot != stem) *dot = '\0';
  rc = load_common(data, len, dirname(a), path, stem, out, err);
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
