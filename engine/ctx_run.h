/*
 * ctx_run.h — node execution shared by the forward pass's schedules (ctx_run.c).
 */
#ifndef CNN_CTX_RUN_H
#define CNN_CTX_RUN_H

#include "graph.h"

typedef struct {
  const cnn_model_t *m;
  float *const *ptr;      /* per value: its data for this run */
  const kern_ctx_t *kc;   /* threads and scratch for the kernels */
} ctx_env_t;

/* Run node nd on n images (dead and alias nodes must be skipped by the caller). */
void ctx_run_node(const ctx_env_t *c, const graph_node_t *nd, int n);
/* Ops that only rename storage: nothing to run. */
int ctx_is_alias_op(graph_op_t op);

#endif
