/*
 * graph.h — the engine's internal graph: values, nodes and the model that owns them.
 *
 * Loading goes ONNX protobuf -> graph (onnx_load.c, onnx_tensor.c) -> per-op checks
 * and shape inference (graph_ops.c) -> rewrites (graph_fuse.c: BatchNorm folded into
 * Conv, residual Add and Relu fused into the Conv epilogue; graph_concat.c: channel
 * Concats written in place by the convs feeding them; graph_siblings.c: sibling 1x1
 * convs merged; graph_shortcut.c: projection shortcuts merged into their blocks' last
 * convs) -> memory plan
 * (graph_plan.c). After that the graph is read-only and shared by every context
 * (ctx.c), which owns only the arena, the scratch and the thread pool.
 *
 * Batching: every runtime value is derived from the single image input and carries
 * the batch in dims[0]. Shapes are stored per image (dims[0] == 1); a forward of n
 * images scales dims[0] and every runtime size by n. Constants never carry a batch.
 * Ops that would mix images (reshaping, slicing or concatenating along axis 0) are
 * refused at load with an error naming the node.
 *
 * Storage: a runtime value either owns a slot in the arena (root) or aliases its
 * root (Reshape, Flatten, Unsqueeze, Identity, Dropout: same bytes, new shape), or is
 * a view of it: the channel slice of a Concat output that a conv writes in place,
 * view_off floats into each image's part of the root (graph_concat.c), or the first
 * channels of a merged shortcut conv's input (graph_shortcut.c).
 * Plan offsets are per image, in floats; a context for max_batch B multiplies them
 * by B, which keeps the plan valid because every runtime size scales by B.
 */
#ifndef CNN_GRAPH_H
#define CNN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"
#include "kernels.h"

#define GRAPH_MAX_DIMS 8
#define GRAPH_MAX_INPUTS 64
#define GRAPH_MAX_OUTPUTS KERN_CONV_GROUPS /* a conv with row groups writes one per group */
/* Most elements any value may have (per image for runtime values): 2^28, 1 GiB of
 * floats, far above any real classifier (ResNet's largest is 0.8 M) and small enough
 * that a product of two bounded sizes never overflows int64. A hostile file cannot
 * make shape inference or the plan ask for more. */
#define GRAPH_MAX_ELEMS ((int64_t)1 << 28)
/* Further load-time bounds, each far above real classifiers (ResNet-152: ~500 nodes,
 * ~1,000 values; ImageNet-21k: 21,841 classes), so that a small hostile file cannot
 * make loading slow (value lookup is linear) or memory-hungry (labels are per class,
 * the arena per image). */
#define GRAPH_MAX_NODES 16384
#define GRAPH_MAX_VALUES 32768
#define GRAPH_MAX_CLASSES (1 << 20)
#define GRAPH_MAX_PLAN_FLOATS ((int64_t)1 << 28)
/* The image-serial prefix of a batch runs in at most this many stages (graph_plan.c). */
#define GRAPH_SERIAL_STAGES 4

typedef enum { DT_FLOAT = 1, DT_INT64 = 7 } graph_dtype_t;

typedef enum { VAL_RUNTIME, VAL_CONST, VAL_INPUT } graph_val_kind_t;

typedef struct {
  char *name;
  graph_val_kind_t kind;
  graph_dtype_t dtype;
  int known;                      /* shape inferred (or given, for constants) */
  int ndim;
  int64_t dims[GRAPH_MAX_DIMS];   /* per image for runtime values */
  float *f;                       /* VAL_CONST float data, owned */
  int64_t *i64;                   /* VAL_CONST int64 data, owned */
  int producer;                   /* node index, -1 for constants and the input */
  int alias_of;                   /* value whose storage this one shares, or -1 */
  int64_t view_off;               /* an alias starting this many floats into it (per image;
                                   * a channel slice of a Concat, graph_concat.c), else 0 */
  int last_use;                   /* last node index reading it (INT32_MAX: graph output) */
  int64_t offset;                 /* plan: arena offset of the root, floats per image */
  int64_t soffset;                /* serial plan: offset in a thread's serial arena, or -1 */
  int64_t toffset;                /* serial stages: offset in an image's stage slot, or -1 */
  int param;                      /* initializer counted as a model parameter */
} graph_value_t;

typedef enum {
  OP_CONV, OP_BATCHNORM, OP_RELU, OP_MAXPOOL, OP_AVGPOOL, OP_GLOBALAVGPOOL, OP_ADD, OP_MUL,
  OP_CONCAT, OP_FLATTEN, OP_RESHAPE, OP_GEMM, OP_MATMUL, OP_SOFTMAX, OP_LRN, OP_IDENTITY,
  OP_DROPOUT, OP_CONSTANT, OP_GATHER, OP_UNSQUEEZE, OP_SLICE,
  OP_SUBSAMPLE, /* no ONNX op: a shortcut's input copied beside its block's (graph_shortcut.c) */
  OP__COUNT
} graph_op_t;

typedef struct {
  graph_op_t op;
  char *name;       /* ONNX node name or "#index" */
  const char *type; /* ONNX op_type as spelled in the file's node, e.g. "Conv" */
  int nin;
  int in[GRAPH_MAX_INPUTS]; /* value indices, -1 for an omitted optional input */
  int out;                  /* value index of output 0 */
  int dead;                 /* removed by a rewrite; skipped when running */
  int inplace;              /* Concat whose inputs are written in place: nothing to run */
  union {
    struct {
      kern_conv_t k;
      int residual; /* value fused as the residual, or -1 */
      int gout[KERN_CONV_GROUPS]; /* k.ngroups > 0: each group's output value (gout[0] == out) */
      int h, w, oh, ow;
    } conv;
    struct {
      kern_pool_t k;
      int ceil_mode;
      int h, w, oh, ow;
    } pool;
    struct {
      float eps;
      float *scale, *shift; /* owned: folded inference form */
    } bn;
    struct {
      int axis;
    } axis; /* Concat, Flatten, Softmax (see softmax_coerce), Gather */
    struct {
      int trans_a, trans_b;
      float alpha, beta;
    } gemm;
    struct {
      int size;
      float alpha, beta, bias;
    } lrn;
    struct {
      int64_t starts[GRAPH_MAX_DIMS], steps[GRAPH_MAX_DIMS];
    } slice;
    struct {
      int stride, c, h, w, oh, ow;
      int64_t off; /* floats before the copy in each image of the output */
    } sub;
  } a;
  int softmax_coerce; /* opset < 13: Softmax over the flattened dims from axis on */
  int auto_pad;       /* Conv/pools: 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER */
  int kernel_shape[2]; /* Conv/pools: from the attribute, 0 when absent */
  int64_t macs;       /* multiply-accumulates per image */
  int64_t *idx;       /* Gather: indices made non-negative, owned */
  size_t nidx;
} graph_node_t;

struct cnn_model {
  cnn_model_info_t info;
  graph_value_t *vals;
  int nvals, cap_vals;
  graph_node_t *nodes;
  int nnodes, cap_nodes;
  int input;              /* value index of the image input */
  int output;             /* value index of the graph output */
  int opset;
  int64_t plan_floats;    /* arena size per image, floats */
  int serial_end;         /* nodes [0, serial_end) may run image by image (0: none) */
  int64_t serial_floats;  /* their serial arena, floats (one image, per thread) */
  int serial_stages;      /* the prefix in stages (1..GRAPH_SERIAL_STAGES): stage s is */
  int serial_cut[GRAPH_SERIAL_STAGES + 1]; /* nodes [cut[s], cut[s + 1]) */
  int64_t stage_floats;   /* per image: the values crossing a stage boundary */
  char *dir;              /* folder external data must stay in, or NULL */
  /* info storage */
  char *name, *arch, *path;
  char **labels;
};

/* ---- building (graph.c) ---- */
int graph_add_value(cnn_model_t *m, const char *name, cnn_error_t *err);
int graph_find_value(const cnn_model_t *m, const char *name);
int graph_add_node(cnn_model_t *m, cnn_error_t *err);
/* A new float constant of `count` elements named "<node n's name>/<what>", its data
 * allocated (uninitialized) and owned by the model (rewrites' new weights). Returns
 * its index or a negative error. */
int graph_new_floats(cnn_model_t *m, const graph_node_t *n, const char *what, int64_t count,
                     cnn_error_t *err);
int64_t graph_numel(const graph_value_t *v);
/* 1 when every dim is >= 0 and the product of the nonzero dims is at most `limit`
 * (so no partial product overflows, even when another dim is 0). */
int graph_dims_within(const int64_t *dims, int ndim, int64_t limit); /* per image for runtime values */
void graph_free(cnn_model_t *m);

/* ---- passes ---- */
int graph_infer(cnn_model_t *m, cnn_error_t *err);         /* graph_infer.c */
int graph_infer_tensor_op(cnn_model_t *m, graph_node_t *n, cnn_error_t *err); /* graph_infer_tensor.c */
int graph_is_runtime(const graph_value_t *v);
int graph_fuse(cnn_model_t *m, cnn_error_t *err);          /* graph_fuse.c */
/* graph_concat.c: channel Concats whose inputs are lone convs' outputs, written in place
 * by those convs; readers[v] counts the live readers of each value. */
int graph_concat_inplace(cnn_model_t *m, const int *readers, cnn_error_t *err);
/* graph_siblings.c: direct 1x1 convs reading one value merged into one conv with row
 * groups, in place of the earliest; after graph_concat_inplace. */
int graph_merge_siblings(cnn_model_t *m, cnn_error_t *err);
/* graph_shortcut.c: a residual block's projection shortcut (a 1x1 conv) merged into the
 * block's last 1x1 conv, one product over both inputs side by side; last of the rewrites.
 * readers[v] counts the live readers of each value (a merge changes only its own). */
int graph_merge_shortcuts(cnn_model_t *m, const int *readers, cnn_error_t *err);
/* Rewrites' checks: a new array, 1 for each value another value aliases or views (the
 * caller frees it); NULL when out of memory. */
int *graph_aliased(const cnn_model_t *m);
/* Rewrites' clean-up: frees constant value v's data (or the constant holding data f)
 * unless a live node reads it, as an input or as a conv's weights or bias. */
void graph_drop_value(cnn_model_t *m, int v);
void graph_drop_data(cnn_model_t *m, const float *f);
struct pool;
/* Every live conv's weights prepared for its kernel on the pool's threads (NULL: the
 * caller's alone), then the plain copies no kernel reads freed (graph_prepare.c). */
int graph_prepare(cnn_model_t *m, struct pool *pool, cnn_error_t *err);
/* graph_fuse_affine.c: Concat of per-channel Gather/Unsqueeze/Mul/Add chains -> one
 * scale-and-shift node; readers[v] counts the live readers of each value. */
int graph_fuse_affine(cnn_model_t *m, const int *readers, cnn_error_t *err);
int graph_plan(cnn_model_t *m, cnn_error_t *err);          /* graph_plan.c */
int graph_plan_serial(cnn_model_t *m, cnn_error_t *err);   /* after graph_plan */
const char *graph_op_name(int op);                        /* ONNX op type; onnx_node.c */
int graph_root(const cnn_model_t *m, int v);               /* follow alias_of */
int64_t graph_view_off(const cnn_model_t *m, int v);       /* view_off summed to the root */
/* The values node n writes into outs (GRAPH_MAX_OUTPUTS room): its output, or each row
 * group's of a conv with groups (graph_siblings.c). Returns how many. */
int graph_node_outputs(const graph_node_t *n, int *outs);

/* Error helper naming the node: "node 'conv1' (Conv): <msg>". */
int graph_node_error(cnn_error_t *err, int code, const graph_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
