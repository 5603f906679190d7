/*
 * onnx_tensor.c — ONNX TensorProto (initializers, Constant values) -> graph constant.
 *
 * Accepts FLOAT and INT64 tensors (INT32 and BOOL are widened to INT64, for index,
 * shape and flag inputs); data from raw_data, float_data/int64_data/int32_data, or an external
 * file. Everything is checked against the declared shape before it is copied:
 * element counts must match exactly and sizes may not overflow. External files must
 * resolve (after symlinks) inside the model's own folder.
 *
 * The constant's arrays are malloc'd and owned by the graph value. Float raw_data in
 * the engine's layout (little-endian, 64-byte aligned, the exact size) is adopted from
 * the decoded protobuf rather than copied (see model.c's decode allocator).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "mem.h"
#include "onnx_internal.h"

#define MAX_TENSOR_ELEMS ((int64_t)1 << 30)

static const char *dtype_name(int t) {
  static const char *names[] = {"UNDEFINED", "FLOAT", "UINT8",  "INT8",    "UINT16",
                                "INT16",     "INT32", "INT64",  "STRING",  "BOOL",
                                "FLOAT16",   "DOUBLE", "UINT32", "UINT64", "COMPLEX64",
                                "COMPLEX128", "BFLOAT16"};
  return (t >= 0 && t < (int)(sizeof names / sizeof *names)) ? names[t] : "unknown";
}

static int tensor_shape(const Onnx__TensorProto *t, graph_value_t *v, cnn_error_t *err) {
  if (t->n_dims > GRAPH_MAX_DIMS)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "tensor '%s': %zu dimensions (max %d)",
                         v->name, t->n_dims, GRAPH_MAX_DIMS);
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0 || t->dims[i] > MAX_TENSOR_ELEMS)
      return cnn_error_set(err, CNN_EMODEL_INVALID, "tensor '%s': bad dimension %lld", v->name,
                           (long long)t->dims[i]);
    v->dims[i] = t->dims[i];
  }
  /* Zero-size tensors are legal, but the other dims stay bounded: shape inference
   * multiplies subsets of them. */
  if (!graph_dims_within(v->dims, (int)t->n_dims, MAX_TENSOR_ELEMS))
    return cnn_error_set(err, CNN_EMODEL_INVALID, "tensor '%s' is too large", v->name);
  v->ndim = (int)t->n_dims;
  v->known = 1;
  return 0;
}

static const char *external_key(const Onnx__TensorProto *t, const char *key) {
  for (size_t i = 0; i < t->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = t->external_data[i];
    if (e && e->key && strcmp(e->key, key) == 0) return e->value ? e->value : "";
  }
  return NULL;
}

static int parse_size(const char *s, int64_t *out) {
  if (!s) return 0;
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || end == s || *end || x < 0) return -1;
  *out = x;
  return 0;
}

/* Resolve `loc` inside `dir`: relative, no "..", and its real path under dir's. */
static int external_path(const char *dir, const char *loc, char *out, cnn_error_t *err,
                         const char *tname) {
  if (!dir)
    return cnn_error_set(err, CNN_EMODEL_INVALID,
                         "tensor '%s': external data not allowed for in-memory models", tname);
  if (!loc || !*loc || loc[0] == '/' || strstr(loc, "..") != NULL)
    return cnn_error_set(err, CNN_EMODEL_INVALID,
                         "tensor '%s': external data location '%s' leaves the model folder",
                         tname, loc ? loc : "");
  char joined[PATH_MAX], rdir[PATH_MAX];
  if (snprintf(joined, sizeof joined, "%s/%s", dir, loc) >= (int)sizeof joined ||
      !realpath(dir, rdir))
    return cnn_error_set(err, CNN_EIO, "tensor '%s': bad external data path", tname);
  if (!realpath(joined, out))
    return cnn_error_set(err, CNN_EIO, "tensor '%s': external data file '%s': %s", tname, loc,
                         strerror(errno));
  size_t n = strlen(rdir);
  if (strncmp(out, rdir, n) != 0 || out[n] != '/')
    return cnn_error_set(err, CNN_EMODEL_INVALID,
                         "tensor '%s': external data '%s' resolves outside the model folder",
                         tname, loc);
  return 0;
}

static int read_external(const cnn_model_t *m, const Onnx__TensorProto *t, const char *tname,
                         void *dst, size_t need, cnn_error_t *err) {
  char path[PATH_MAX];
  int64_t off = 0, len = (int64_t)need;
  int rc = external_path(m->dir, external_key(t, "location"), path, err, tname);
  if (rc) return rc;
  if (parse_size(external_key(t, "offset"), &off) || parse_size(external_key(t, "length"), &len))
    return cnn_error_set(err, CNN_EMODEL_INVALID, "tensor '%s': bad external offset/length",
                         tname);
  if ((size_t)len != need)
    return cnn_error_set(err, CNN_EMODEL_INVALID,
                         "tensor '%s': external length %lld, shape needs %zu bytes", tname,
                         (long long)len, need);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cnn_error_set(err, CNN_EIO, "tensor '%s': %s: %s", tname, path, strerror(errno));
  struct stat st;
  rc = 0;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode) || off > st.st_size ||
      (int64_t)need > st.st_size - off)
    rc = cnn_error_set(err, CNN_EMODEL_INVALID,
                       "tensor '%s': external file %s is too short for offset %lld + %zu bytes",
                       tname, path, (long long)off, need);
  for (size_t done = 0; !rc && done < need;) {
    ssize_t r = pread(fd, (char *)dst + done, need - done, (off_t)(off + (int64_t)done));
    if (r <= 0)
      rc = cnn_error_set(err, CNN_EIO, "tensor '%s': reading %s failed", tname, path);
    else
      done += (size_t)r;
  }
  close(fd);
  return rc;
}

/* The declared shape must match the data the file carries, checked before anything is
 * allocated: a few bytes of protobuf may declare a tensor of gigabytes. */
static int tensor_source_check(const Onnx__TensorProto *t, const graph_value_t *v, int64_t n,
                               cnn_error_t *err) {
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return 0; /* read_external checks the length against the file */
  if (t->has_raw_data) {
    size_t esz = t->data_type == 9 ? 1 : t->data_type == 6 ? 4 : (v->dtype == DT_FLOAT ? 4 : 8);
    if (t->raw_data.len != (size_t)n * esz)
      return cnn_error_set(err, CNN_EMODEL_INVALID,
                           "tensor '%s': raw_data has %zu bytes, shape needs %zu", v->name,
                           t->raw_data.len, (size_t)n * esz);
    return 0;
  }
  int narrow = t->data_type == 6 || t->data_type == 9; /* INT32 and BOOL use int32_data */
  size_t have = v->dtype == DT_FLOAT ? t->n_float_data : narrow ? t->n_int32_data : t->n_int64_data;
  if (have != (size_t)n)
    return cnn_error_set(err, CNN_EMODEL_INVALID, "tensor '%s': %zu values, shape needs %lld",
                         v->name, have, (long long)n);
  return 0;
}

/* Copy the tensor's elements into dst (elem bytes each, n of them); sizes were
 * checked by tensor_source_check. */
static int tensor_fill(const cnn_model_t *m, const Onnx__TensorProto *t, graph_value_t *v,
                       int64_t n, cnn_error_t *err) {
  size_t need = (size_t)n * (v->dtype == DT_FLOAT ? 4 : 8);
  void *dst = v->dtype == DT_FLOAT ? (void *)v->f : (void *)v->i64;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    if (t->data_type == 6 || t->data_type == 9)
      return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "tensor '%s': external INT32/BOOL data",
                           v->name);
    return read_external(m, t, v->name, dst, need, err);
  }
  if (t->has_raw_data) {
    if (t->data_type == 9) {
      for (int64_t i = 0; i < n; i++) v->i64[i] = t->raw_data.data[i] != 0;
    } else if (t->data_type == 6) {
      for (int64_t i = 0; i < n; i++) {
        int32_t x;
        memcpy(&x, t->raw_data.data + 4 * i, 4);
        v->i64[i] = x;
      }
    } else if (n) {
      memcpy(dst, t->raw_data.data, need);
    }
    return 0;
  }
  int narrow = t->data_type == 6 || t->data_type == 9;
  if (v->dtype == DT_FLOAT && n) memcpy(dst, t->float_data, need);
  if (v->dtype == DT_INT64 && t->data_type == 7 && n) memcpy(dst, t->int64_data, need);
  if (narrow)
    for (int64_t i = 0; i < n; i++) v->i64[i] = t->data_type == 9 ? t->int32_data[i] != 0 : t->int32_data[i];
  return 0;
}

/* raw_data the engine can own as is: float, little-endian (x86 and the other targets
 * the engine builds for), exactly the shape's bytes, and aligned as cnn_mem_alloc's. */
static int tensor_adoptable(const Onnx__TensorProto *t, const graph_value_t *v, int64_t n) {
  int external = t->has_data_location &&
                 t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  return !external && t->has_raw_data && v->dtype == DT_FLOAT && t->data_type == 1 && n > 0 &&
         t->raw_data.len == (size_t)n * 4 && t->raw_data.data &&
         (uintptr_t)t->raw_data.data % 64 == 0 &&
         __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}

int onnx_tensor_to_value(cnn_model_t *m, Onnx__TensorProto *t, int vi, cnn_error_t *err) {
  graph_value_t *v = &m->vals[vi];
  int dt = t->has_data_type ? t->data_type : 0;
  if (dt != 1 && dt != 7 && dt != 6 && dt != 9)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED,
                         "tensor '%s': unsupported data type %s (float32, int64, int32, bool only)",
                         v->name, dtype_name(dt));
  int rc = tensor_shape(t, v, err);
  if (rc) return rc;
  int64_t n = graph_numel(v);
  v->kind = VAL_CONST;
  v->dtype = dt == 1 ? DT_FLOAT : DT_INT64;
  if ((rc = tensor_source_check(t, v, n, err))) return rc;
  if (tensor_adoptable(t, v, n)) {
    v->f = (float *)t->raw_data.data; /* same allocator family: freed with free() */
    t->raw_data.data = NULL;
    t->raw_data.len = 0;
    return 0;
  }
  size_t bytes = (size_t)(n ? n : 1) * (v->dtype == DT_FLOAT ? 4 : 8);
  if (v->dtype == DT_FLOAT)
    v->f = cnn_mem_alloc(bytes);
  else
    v->i64 = malloc(bytes);
  if (!v->f && !v->i64) return cnn_error_set(err, CNN_ENOMEM, "tensor '%s': out of memory", v->name);
  return tensor_fill(m, t, v, n, err);
}
