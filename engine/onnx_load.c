/*
 * onnx_load.c — decoded ONNX ModelProto -> graph: opset, initializers, the image
 * input, the nodes in file order, and the output.
 *
 * ONNX requires nodes in topological order; we rely on it and check it (an input
 * not yet defined is an error), which also rejects cycles. The model must have one
 * float image input [batch, C, H, W] (batch may be symbolic) and one output.
 */
#include <string.h>

#include "error.h"
#include "onnx_internal.h"

static int read_opset(cnn_model_t *m, const Onnx__ModelProto *mp, cnn_error_t *err) {
  m->opset = 0;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (o && (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0))
      m->opset = (int)o->version;
  }
  if (m->opset < 7 || m->opset > 21)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "ONNX opset %d (supported: 7 to 21)",
                         m->opset);
  return 0;
}

static int load_initializers(cnn_model_t *m, const Onnx__GraphProto *g, cnn_error_t *err) {
  for (size_t i = 0; i < g->n_initializer; i++) {
    Onnx__TensorProto *t = g->initializer[i]; /* its raw_data may be adopted */
    if (!t || !t->name || !t->name[0])
      return cnn_error_set(err, CNN_EMODEL_INVALID, "initializer %zu has no name", i);
    if (graph_find_value(m, t->name) >= 0)
      return cnn_error_set(err, CNN_EMODEL_INVALID, "initializer '%s' is defined twice", t->name);
    int vi = graph_add_value(m, t->name, err);
    if (vi < 0) return vi;
    int rc = onnx_tensor_to_value(m, t, vi, err);
    if (rc) return rc;
    m->vals[vi].param = 1;
  }
  return 0;
}

static int input_shape(graph_value_t *v, const Onnx__ValueInfoProto *vi, cnn_error_t *err) {
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "input '%s' is not a tensor", v->name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  if (tt->elem_type != 1)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "input '%s' is not float32", v->name);
  const Onnx__TensorShapeProto *sh = tt->shape;
  if (!sh || sh->n_dim != 4)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED,
                         "input '%s' must be 4-D [batch, channels, height, width]", v->name);
  v->ndim = 4;
  v->dims[0] = 1;
  for (int i = 1; i < 4; i++) {
    const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
    if (!d || d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
        d->dim_value < 1 || d->dim_value > 8192)
      return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED,
                           "input '%s': dimension %d must be a fixed size", v->name, i);
    v->dims[i] = d->dim_value;
  }
  if (v->dims[1] != 3)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "input '%s' has %lld channels (need 3)",
                         v->name, (long long)v->dims[1]);
  v->known = 1;
  v->kind = VAL_INPUT;
  return 0;
}

static int load_input(cnn_model_t *m, const Onnx__GraphProto *g, cnn_error_t *err) {
  m->input = -1;
  for (size_t i = 0; i < g->n_input; i++) {
    const Onnx__ValueInfoProto *vi = g->input[i];
    if (!vi || !vi->name) return cnn_error_set(err, CNN_EMODEL_INVALID, "graph input without name");
    if (graph_find_value(m, vi->name) >= 0) continue; /* an initializer (IR < 4 lists them) */
    if (m->input >= 0)
      return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "more than one graph input ('%s', '%s')",
                           m->vals[m->input].name, vi->name);
    int v = graph_add_value(m, vi->name, err);
    if (v < 0) return v;
    m->input = v;
    int rc = input_shape(&m->vals[v], vi, err);
    if (rc) return rc;
  }
  if (m->input < 0) return cnn_error_set(err, CNN_EMODEL_INVALID, "graph has no input");
  return 0;
}

static int load_nodes(cnn_model_t *m, const Onnx__GraphProto *g, cnn_error_t *err) {
  for (size_t i = 0; i < g->n_node; i++) {
    if (!g->node[i]) return cnn_error_set(err, CNN_EMODEL_INVALID, "empty node %zu", i);
    int ni = graph_add_node(m, err);
    if (ni < 0) return ni;
    int rc = onnx_node_parse(m, g->node[i], ni, err);
    if (rc) return rc;
  }
  return 0;
}

static int load_output(cnn_model_t *m, const Onnx__GraphProto *g, cnn_error_t *err) {
  if (g->n_output != 1 || !g->output[0] || !g->output[0]->name)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "graph must have exactly one output (has %zu)",
                         g->n_output);
  m->output = graph_find_value(m, g->output[0]->name);
  if (m->output < 0)
    return cnn_error_set(err, CNN_EMODEL_INVALID, "graph output '%s' is never produced",
                         g->output[0]->name);
  if (m->vals[m->output].kind != VAL_RUNTIME)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "graph output '%s' is not computed from the input",
                         g->output[0]->name);
  return 0;
}

int onnx_graph_build(cnn_model_t *m, const Onnx__ModelProto *mp, cnn_error_t *err) {
  const Onnx__GraphProto *g = mp->graph;
  if (!g) return cnn_error_set(err, CNN_EMODEL_INVALID, "model has no graph (empty or truncated file?)");
  int rc = read_opset(m, mp, err);
  if (rc) return rc;
  if (g->n_sparse_initializer)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED, "sparse initializers");
  if ((rc = load_initializers(m, g, err)) || (rc = load_input(m, g, err)) ||
      (rc = load_nodes(m, g, err)) || (rc = load_output(m, g, err)))
    return rc;
  return 0;
}
