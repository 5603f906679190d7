/*
 * onnx_internal.h — pieces of the ONNX loader shared between its files.
 */
#ifndef CNN_ONNX_INTERNAL_H
#define CNN_ONNX_INTERNAL_H

#include "graph.h"
#include "onnx/onnx.pb-c.h"

/* Fill value vi as a constant from a TensorProto. A float raw_data block that is
 * 64-byte aligned (model.c's decode allocator makes large ones so) and exactly the
 * tensor's size is adopted, not copied: t's raw_data is left empty. */
int onnx_tensor_to_value(cnn_model_t *m, Onnx__TensorProto *t, int vi, cnn_error_t *err);

/* Map one NodeProto onto graph node ni: op, inputs, output, attributes. */
int onnx_node_parse(cnn_model_t *m, const Onnx__NodeProto *np, int ni, cnn_error_t *err);

/* Build the graph from a decoded model (everything but metadata). */
int onnx_graph_build(cnn_model_t *m, const Onnx__ModelProto *mp, cnn_error_t *err);

#endif
