/*
 * onnx_node.c — one ONNX NodeProto -> one graph node: op, wiring and attributes.
 *
 * Strict by design: an op we do not implement, an attribute we do not know for that
 * op, or an attribute value we do not implement (group != 1, dilation != 1, ...)
 * is an error naming the node, never silently ignored, because ignoring it would
 * give wrong answers. Attributes that opsets < 10 / < 13 carried as attributes but
 * later opsets pass as inputs (Slice starts/ends/axes, Unsqueeze axes) are turned
 * into constant inputs here, so later passes see one form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "onnx_internal.h"

typedef int (*attr_parse_fn)(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n,
                             cnn_error_t *err);

typedef struct {
  const char *type;
  graph_op_t op;
  const char *attrs; /* space-separated allowed attribute names */
  attr_parse_fn parse;
} op_desc_t;

/* ---- attribute access ------------------------------------------------------ */

static const Onnx__AttributeProto *attr_get(const Onnx__NodeProto *np, const char *name) {
  for (size_t i = 0; i < np->n_attribute; i++)
    if (np->attribute[i] && np->attribute[i]->name && strcmp(np->attribute[i]->name, name) == 0)
      return np->attribute[i];
  return NULL;
}

static int attr_type_error(const graph_node_t *n, const char *name, cnn_error_t *err) {
  return graph_node_error(err, CNN_EMODEL_INVALID, n, "attribute '%s' has the wrong type", name);
}

static int attr_int(const Onnx__NodeProto *np, const graph_node_t *n, const char *name,
                    int64_t def, int64_t *out, cnn_error_t *err) {
  const Onnx__AttributeProto *a = attr_get(np, name);
  *out = def;
  if (!a) return 0;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) return attr_type_error(n, name, err);
  *out = a->i;
  return 0;
}

static int attr_float(const Onnx__NodeProto *np, const graph_node_t *n, const char *name,
                      float def, float *out, cnn_error_t *err) {
  const Onnx__AttributeProto *a = attr_get(np, name);
  *out = def;
  if (!a) return 0;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
    return attr_type_error(n, name, err);
  *out = a->f;
  return 0;
}

/* Reads an INTS attribute of exactly `want` values (want < 0: up to -want). */
static int attr_ints(const Onnx__NodeProto *np, const graph_node_t *n, const char *name,
                     int want, int64_t *out, int *count, cnn_error_t *err) {
  const Onnx__AttributeProto *a = attr_get(np, name);
  *count = 0;
  if (!a) return 0;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) return attr_type_error(n, name, err);
  size_t max = want < 0 ? (size_t)-want : (size_t)want;
  if ((want >= 0 && a->n_ints != max) || a->n_ints > max)
    return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "attribute '%s' has %zu values",
                            name, a->n_ints);
  if (a->n_ints) memcpy(out, a->ints, a->n_ints * sizeof *out); /* ints is NULL when empty */
  *count = (int)a->n_ints;
  return 0;
}

static int attr_string_is(const Onnx__NodeProto *np, const char *name, const char *val) {
  const Onnx__AttributeProto *a = attr_get(np, name);
  return a && a->s.len == strlen(val) && memcmp(a->s.data, val, a->s.len) == 0;
}

static int check_attrs(const Onnx__NodeProto *np, const graph_node_t *n, const char *allowed,
                       cnn_error_t *err) {
  for (size_t i = 0; i < np->n_attribute; i++) {
    const char *nm = np->attribute[i] && np->attribute[i]->name ? np->attribute[i]->name : "";
    size_t len = strlen(nm);
    const char *p = allowed;
    int ok = 0;
    while (len && (p = strstr(p, nm)) != NULL) {
      if ((p == allowed || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0')) {
        ok = 1;
        break;
      }
      p += len;
    }
    if (!ok)
      return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "unsupported attribute '%s'", nm);
  }
  return 0;
}

/* Append a constant int64 input built from attribute values. */
static int add_const_input(cnn_model_t *m, graph_node_t *n, const char *suffix,
                           const int64_t *vals, int count, cnn_error_t *err) {
  char name[300];
  snprintf(name, sizeof name, "%s/%s", n->name, suffix);
  int vi = graph_add_value(m, name, err);
  if (vi < 0) return vi;
  graph_value_t *v = &m->vals[vi];
  v->kind = VAL_CONST;
  v->dtype = DT_INT64;
  v->known = 1;
  v->ndim = 1;
  v->dims[0] = count;
  v->i64 = malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
  if (!v->i64) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  memcpy(v->i64, vals, sizeof(int64_t) * (size_t)count);
  if (n->nin >= GRAPH_MAX_INPUTS) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "too many inputs");
  n->in[n->nin++] = vi;
  return 0;
}

/* ---- per-op attribute parsers ------------------------------------------------- */

static int parse_window(const Onnx__NodeProto *np, graph_node_t *n, int *stride_h, int *stride_w,
                        int pads[4], cnn_error_t *err) {
  int64_t v[4];
  int c, rc;
  if ((rc = attr_ints(np, n, "kernel_shape", 2, v, &c, err))) return rc;
  if (c) {
    if (v[0] < 1 || v[1] < 1 || v[0] > 64 || v[1] > 64)
      return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "kernel_shape out of range");
    n->kernel_shape[0] = (int)v[0];
    n->kernel_shape[1] = (int)v[1];
  }
  if ((rc = attr_ints(np, n, "strides", 2, v, &c, err))) return rc;
  *stride_h = c ? (int)v[0] : 1;
  *stride_w = c ? (int)v[1] : 1;
  if (c && (v[0] < 1 || v[1] < 1 || v[0] > 64 || v[1] > 64))
    return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "strides out of range");
  if ((rc = attr_ints(np, n, "pads", 4, v, &c, err))) return rc;
  for (int i = 0; i < 4; i++) {
    if (c && (v[i] < 0 || v[i] > 64))
      return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "pads out of range");
    pads[i] = c ? (int)v[i] : 0; /* ONNX order: top, left, bottom, right */
  }
  if ((rc = attr_ints(np, n, "dilations", 2, v, &c, err))) return rc;
  if (c && (v[0] != 1 || v[1] != 1))
    return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "dilations other than 1");
  const Onnx__AttributeProto *ap = attr_get(np, "auto_pad");
  if (ap) {
    if (attr_string_is(np, "auto_pad", "NOTSET")) n->auto_pad = 0;
    else if (attr_string_is(np, "auto_pad", "VALID")) n->auto_pad = 1;
    else if (attr_string_is(np, "auto_pad", "SAME_UPPER")) n->auto_pad = 2;
    else if (attr_string_is(np, "auto_pad", "SAME_LOWER")) n->auto_pad = 3;
    else return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "unknown auto_pad value");
  }
  return 0;
}

static int parse_conv(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n,
                      cnn_error_t *err) {
  kern_conv_t *k = &n->a.conv.k;
  int pads[4], rc;
  int64_t group;
  if ((rc = parse_window(np, n, &k->stride_h, &k->stride_w, pads, err))) return rc;
  k->pad_t = pads[0], k->pad_l = pads[1], k->pad_b = pads[2], k->pad_r = pads[3];
  if ((rc = attr_int(np, n, "group", 1, &group, err))) return rc;
  if (group != 1) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "group %lld (only 1)", (long long)group);
  n->a.conv.residual = -1;
  return 0;
}

static int parse_pool(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n,
                      cnn_error_t *err) {
  kern_pool_t *k = &n->a.pool.k;
  int pads[4], rc;
  int64_t v;
  if ((rc = parse_window(np, n, &k->stride_h, &k->stride_w, pads, err))) return rc;
  if (!n->kernel_shape[0])
    return graph_node_error(err, CNN_EMODEL_INVALID, n, "missing kernel_shape");
  k->kh = n->kernel_shape[0], k->kw = n->kernel_shape[1];
  k->pad_t = pads[0], k->pad_l = pads[1], k->pad_b = pads[2], k->pad_r = pads[3];
  if ((rc = attr_int(np, n, "ceil_mode", 0, &v, err))) return rc;
  n->a.pool.ceil_mode = v != 0;
  if ((rc = attr_int(np, n, "count_include_pad", 0, &v, err))) return rc;
  k->count_include_pad = v != 0;
  if ((rc = attr_int(np, n, "storage_order", 0, &v, err))) return rc;
  if (v != 0) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "storage_order 1");
  if (np->n_output > 1 && np->output[1] && np->output[1][0])
    return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "the Indices output");
  return 0;
}

static int parse_bn(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n,
                    cnn_error_t *err) {
  int64_t v;
  int rc;
  if ((rc = attr_float(np, n, "epsilon", 1e-5f, &n->a.bn.eps, err))) return rc;
  if ((rc = attr_int(np, n, "training_mode", 0, &v, err))) return rc;
  if (v) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "training_mode 1");
  if ((rc = attr_int(np, n, "spatial", 1, &v, err))) return rc;
  if (v != 1) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "spatial 0");
  if (n->nin != 5) return graph_node_error(err, CNN_EMODEL_INVALID, n, "needs 5 inputs");
  return 0;
}

static int parse_axis(const Onnx__NodeProto *np, graph_node_t *n, int64_t def, cnn_error_t *err) {
  int64_t v;
  int rc = attr_int(np, n, "axis", def, &v, err);
  if (rc) return rc;
  if (v < -GRAPH_MAX_DIMS || v >= GRAPH_MAX_DIMS)
    return graph_node_error(err, CNN_EMODEL_INVALID, n, "axis %lld out of range", (long long)v);
  n->a.axis.axis = (int)v;
  return 0;
}

static int parse_axis0(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  if (n->op == OP_CONCAT && !attr_get(np, "axis"))
    return graph_node_error(err, CNN_EMODEL_INVALID, n, "missing axis");
  return parse_axis(np, n, 0, err);
}

static int parse_flatten(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  return parse_axis(np, n, 1, err);
}

static int parse_softmax(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  n->softmax_coerce = m->opset < 13;
  return parse_axis(np, n, m->opset < 13 ? 1 : -1, err);
}

static int parse_gemm(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  int64_t ta, tb;
  int rc;
  if ((rc = attr_float(np, n, "alpha", 1.0f, &n->a.gemm.alpha, err)) ||
      (rc = attr_float(np, n, "beta", 1.0f, &n->a.gemm.beta, err)) ||
      (rc = attr_int(np, n, "transA", 0, &ta, err)) || (rc = attr_int(np, n, "transB", 0, &tb, err)))
    return rc;
  n->a.gemm.trans_a = ta != 0;
  n->a.gemm.trans_b = tb != 0;
  return 0;
}

static int parse_lrn(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  int64_t size;
  int rc;
  if (!attr_get(np, "size")) return graph_node_error(err, CNN_EMODEL_INVALID, n, "missing size");
  if ((rc = attr_int(np, n, "size", 0, &size, err)) ||
      (rc = attr_float(np, n, "alpha", 1e-4f, &n->a.lrn.alpha, err)) ||
      (rc = attr_float(np, n, "beta", 0.75f, &n->a.lrn.beta, err)) ||
      (rc = attr_float(np, n, "bias", 1.0f, &n->a.lrn.bias, err)))
    return rc;
  if (size < 1 || size > 1024) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "size %lld", (long long)size);
  n->a.lrn.size = (int)size;
  return 0;
}

static int parse_reshape(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  int64_t v;
  int rc = attr_int(np, n, "allowzero", 0, &v, err);
  if (rc) return rc;
  if (v) return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "allowzero 1");
  return 0;
}

static int parse_unsqueeze(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  int64_t axes[GRAPH_MAX_DIMS];
  int c, rc;
  if (!attr_get(np, "axes")) return 0; /* opset >= 13: axes is input 1 */
  if ((rc = attr_ints(np, n, "axes", -GRAPH_MAX_DIMS, axes, &c, err))) return rc;
  return add_const_input(m, n, "axes", axes, c, err);
}

static int parse_slice(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  int64_t v[GRAPH_MAX_DIMS];
  int c, rc;
  if (!attr_get(np, "starts")) return 0; /* opset >= 10: inputs */
  if ((rc = attr_ints(np, n, "starts", -GRAPH_MAX_DIMS, v, &c, err)) ||
      (rc = add_const_input(m, n, "starts", v, c, err)))
    return rc;
  if ((rc = attr_ints(np, n, "ends", -GRAPH_MAX_DIMS, v, &c, err)) ||
      (rc = add_const_input(m, n, "ends", v, c, err)))
    return rc;
  if (attr_get(np, "axes")) {
    if ((rc = attr_ints(np, n, "axes", -GRAPH_MAX_DIMS, v, &c, err)) ||
        (rc = add_const_input(m, n, "axes", v, c, err)))
      return rc;
  }
  return 0;
}

static int parse_dropout(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  /* A mask output (output 1) is never defined, so any node reading it fails to wire. */
  if (n->nin >= 3 && n->in[2] >= 0) {
    const graph_value_t *t = &m->vals[n->in[2]];
    if (t->kind != VAL_CONST || (t->i64 && t->i64[0]) || (t->f && t->f[0] != 0.0f))
      return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "training_mode");
  }
  return 0;
}

static int parse_none(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err) {
  return 0;
}

static int parse_constant(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n, cnn_error_t *err);

static const op_desc_t op_table[] = {
    {"Conv", OP_CONV, "kernel_shape strides pads dilations group auto_pad", parse_conv},
    {"BatchNormalization", OP_BATCHNORM, "epsilon momentum spatial training_mode is_test", parse_bn},
    {"Relu", OP_RELU, "", parse_none},
    {"MaxPool", OP_MAXPOOL, "kernel_shape strides pads dilations ceil_mode storage_order auto_pad", parse_pool},
    {"AveragePool", OP_AVGPOOL, "kernel_shape strides pads ceil_mode count_include_pad auto_pad", parse_pool},
    {"GlobalAveragePool", OP_GLOBALAVGPOOL, "", parse_none},
    {"Add", OP_ADD, "", parse_none},
    {"Mul", OP_MUL, "", parse_none},
    {"Concat", OP_CONCAT, "axis", parse_axis0},
    {"Flatten", OP_FLATTEN, "axis", parse_flatten},
    {"Reshape", OP_RESHAPE, "allowzero", parse_reshape},
    {"Gemm", OP_GEMM, "alpha beta transA transB", parse_gemm},
    {"MatMul", OP_MATMUL, "", parse_none},
    {"Softmax", OP_SOFTMAX, "axis", parse_softmax},
    {"LRN", OP_LRN, "size alpha beta bias", parse_lrn},
    {"Identity", OP_IDENTITY, "", parse_none},
    {"Dropout", OP_DROPOUT, "ratio seed is_test", parse_dropout},
    {"Constant", OP_CONSTANT, "value value_float value_floats value_int value_ints", parse_constant},
    {"Gather", OP_GATHER, "axis", parse_axis0},
    {"Unsqueeze", OP_UNSQUEEZE, "axes", parse_unsqueeze},
    {"Slice", OP_SLICE, "starts ends axes", parse_slice},
};

const char *graph_op_name(int op) {
  if (op == OP_SUBSAMPLE) return "Subsample"; /* made by a rewrite, never parsed */
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
    if ((int)op_table[i].op == op) return op_table[i].type;
  return "?";
}

/* Constant: its output becomes a constant value; the node itself never runs. */
static int parse_constant(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n,
                          cnn_error_t *err) {
  if (np->n_attribute != 1 || !np->attribute[0])
    return graph_node_error(err, CNN_EMODEL_INVALID, n, "needs exactly one value attribute");
  const Onnx__AttributeProto *a = np->attribute[0];
  graph_value_t *v = &m->vals[n->out];
  int rc = 0;
  if (a->t && strcmp(a->name, "value") == 0) {
    rc = onnx_tensor_to_value(m, a->t, n->out, err);
  } else if (strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_floats") == 0) {
    int one = strcmp(a->name, "value_float") == 0;
    size_t cnt = one ? 1 : a->n_floats;
    v->kind = VAL_CONST, v->dtype = DT_FLOAT, v->known = 1, v->ndim = one ? 0 : 1;
    v->dims[0] = (int64_t)cnt;
    v->f = malloc(sizeof(float) * (cnt ? cnt : 1));
    if (!v->f) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
    if (one) v->f[0] = a->f;
    else if (cnt) memcpy(v->f, a->floats, sizeof(float) * cnt);
  } else if (strcmp(a->name, "value_int") == 0 || strcmp(a->name, "value_ints") == 0) {
    int one = strcmp(a->name, "value_int") == 0;
    size_t cnt = one ? 1 : a->n_ints;
    v->kind = VAL_CONST, v->dtype = DT_INT64, v->known = 1, v->ndim = one ? 0 : 1;
    v->dims[0] = (int64_t)cnt;
    v->i64 = malloc(sizeof(int64_t) * (cnt ? cnt : 1));
    if (!v->i64) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
    if (one) v->i64[0] = a->i;
    else if (cnt) memcpy(v->i64, a->ints, sizeof(int64_t) * cnt);
  } else {
    return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "value attribute '%s'", a->name);
  }
  if (rc) return rc;
  v->producer = -1;
  n->dead = 1;
  return 0;
}

static const op_desc_t *op_lookup(const Onnx__NodeProto *np) {
  if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx") != 0) return NULL;
  for (size_t i = 0; i < sizeof op_table / sizeof *op_table; i++)
    if (np->op_type && strcmp(op_table[i].type, np->op_type) == 0) return &op_table[i];
  return NULL;
}

static int wire_inputs(cnn_model_t *m, const Onnx__NodeProto *np, graph_node_t *n,
                       cnn_error_t *err) {
  if (np->n_input > GRAPH_MAX_INPUTS)
    return graph_node_error(err, CNN_EMODEL_UNSUPPORTED, n, "%zu inputs", np->n_input);
  for (size_t i = 0; i < np->n_input; i++) {
    const char *nm = np->input[i] ? np->input[i] : "";
    int vi = -1;
    if (nm[0]) {
      vi = graph_find_value(m, nm);
      if (vi < 0)
        return graph_node_error(err, CNN_EMODEL_INVALID, n,
                                "input '%s' is not defined before use (missing initializer?)", nm);
    }
    n->in[n->nin++] = vi;
  }
  return 0;
}

static int wire_output(cnn_model_t *m, const Onnx__NodeProto *np, int ni, cnn_error_t *err) {
  graph_node_t *n = &m->nodes[ni];
  if (np->n_output < 1 || !np->output[0] || !np->output[0][0])
    return graph_node_error(err, CNN_EMODEL_INVALID, n, "no output");
  if (graph_find_value(m, np->output[0]) >= 0)
    return graph_node_error(err, CNN_EMODEL_INVALID, n, "output '%s' is defined twice",
                            np->output[0]);
  int vi = graph_add_value(m, np->output[0], err);
  if (vi < 0) return vi;
  n = &m->nodes[ni];
  m->vals[vi].producer = ni;
  n->out = vi;
  return 0;
}

int onnx_node_parse(cnn_model_t *m, const Onnx__NodeProto *np, int ni, cnn_error_t *err) {
  graph_node_t *n = &m->nodes[ni];
  char fallback[32];
  snprintf(fallback, sizeof fallback, "#%d", ni);
  n->name = strdup(np->name && np->name[0] ? np->name : fallback);
  if (!n->name) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  const op_desc_t *d = op_lookup(np);
  n->type = d ? d->type : "?";
  if (!d)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "node '%s' (%s): unsupported op", n->name,
                         np->op_type ? np->op_type : "");
  n->op = d->op;
  int rc = check_attrs(np, n, d->attrs, err);
  if (!rc) rc = wire_inputs(m, np, n, err);
  if (!rc) rc = wire_output(m, np, ni, err);
  if (!rc) rc = d->parse(m, np, &m->nodes[ni], err);
  return rc;
}
