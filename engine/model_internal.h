/*
 * model_internal.h — model-level helpers shared by model.c and model_meta.c.
 */
#ifndef CNN_MODEL_INTERNAL_H
#define CNN_MODEL_INTERNAL_H

#include "graph.h"
#include "onnx/onnx.pb-c.h"

/* Fill name, arch, labels, preprocess and untrained from metadata_props. Needs
 * info.num_classes and info.in_* set. */
int model_read_meta(cnn_model_t *m, const Onnx__ModelProto *mp, const char *stem,
                    cnn_error_t *err);

#endif
