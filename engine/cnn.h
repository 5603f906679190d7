/*
 * cnn.h — classifyd's CNN engine: the whole public API.
 *
 * The engine loads an ONNX image classifier once (cnn_model_t, read-only after load
 * and shared by every thread) and runs it many times through per-caller contexts
 * (cnn_ctx_t: planned activation arena, per-thread scratch and a thread pool, all
 * allocated up front so a steady-state forward never allocates). It also decodes
 * uploaded images and preprocesses them into the model's input tensor. It knows
 * nothing about HTTP.
 *
 * Errors: every fallible call returns 0 or a negative CNN_E* code and, when given
 * a cnn_error_t, fills it with the code and a human message naming what was wrong
 * (the node and op for model errors). cnn_err_code() gives the stable machine
 * name (e.g. "invalid_image") that the daemon maps to an HTTP status.
 *
 * Ownership: the create and load calls return objects the caller frees with the matching
 * destroy or free call. Pointers returned by accessors live as long as their owner.
 */
#ifndef CNN_H
#define CNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------------- */

/* X(NAME, code string, generic message); codes are -1, -2, ... in this order. */
#define CNN_ERRNO_MAP(X)                                                             \
  X(NOMEM, "out_of_memory", "out of memory")                                         \
  X(IO, "io_error", "input/output error")                                            \
  X(INVAL, "invalid_argument", "invalid argument")                                   \
  X(MODEL_INVALID, "invalid_model", "model file is malformed or inconsistent")       \
  X(MODEL_UNSUPPORTED, "unsupported_model", "model uses an unsupported feature")     \
  X(MEDIA_UNSUPPORTED, "unsupported_media_type",                                     \
    "unsupported image format (supported: JPEG, PNG, WebP)")                         \
  X(IMAGE_TOO_LARGE, "image_too_large", "image exceeds the pixel or side limit")     \
  X(IMAGE_INVALID, "invalid_image", "image data is truncated or corrupt")            \
  X(INTERNAL, "internal_error", "internal error")

/* Positions in the table (1, 2, ...); the codes themselves are their negatives. */
enum {
  CNN__ERRNO_FIRST = 0,
#define CNN__ERRNO_IDX(name, code, msg) CNN__IDX_##name,
  CNN_ERRNO_MAP(CNN__ERRNO_IDX)
#undef CNN__ERRNO_IDX
  CNN__ERRNO_COUNT
};
enum {
  CNN_OK = 0,
#define CNN__ERRNO_ENUM(name, code, msg) CNN_E##name = -CNN__IDX_##name,
  CNN_ERRNO_MAP(CNN__ERRNO_ENUM)
#undef CNN__ERRNO_ENUM
};

typedef struct {
  int code;      /* 0 or a negative CNN_E* value */
  char msg[320]; /* human-readable detail; "" when code is 0 */
} cnn_error_t;

const char *cnn_err_code(int err); /* stable machine name, "ok" for 0 */
const char *cnn_strerror(int err); /* generic human message */

/* ---- models -------------------------------------------------------------- */

typedef struct cnn_model cnn_model_t;
typedef struct cnn_ctx cnn_ctx_t;

/* How an image becomes the model's input tensor (torchvision's ImageNet
 * transform by default: resize shorter side to 256 with PIL's antialiased
 * bilinear, center-crop 224, RGB scaled to [0,1], normalize mean/std). */
typedef struct {
  int resize_shorter; /* 0: no resize before the crop */
  int crop_h, crop_w; /* also the input's H and W */
  float mean[3], std[3];
  int bgr;       /* 1: channel 0 of the tensor is blue */
  float scale;   /* pixel value multiplier before normalizing: 1/255 or 1 */
} cnn_preprocess_t;

void cnn_preprocess_default(cnn_preprocess_t *pp);

typedef struct {
  const char *name;   /* metadata "model_name", else the file's stem */
  const char *arch;   /* metadata "arch" (e.g. "resnet50"), else "" */
  const char *path;   /* the file it came from */
  int in_c, in_h, in_w;
  int num_classes;
  const char *const *labels; /* num_classes strings; "class_N" where unknown */
  cnn_preprocess_t preprocess;
  int64_t params; /* weight parameters */
  int64_t macs;   /* multiply-accumulates per image */
  size_t weight_bytes;
  int opset;
  int untrained;         /* metadata "untrained" = "true": random weights */
  int outputs_probabilities; /* graph ends in Softmax */
} cnn_model_info_t;

/* Load an ONNX file. External-data tensors are resolved relative to the file's
 * folder and may not leave it. */
int cnn_model_load(const char *path, cnn_model_t **out, cnn_error_t *err);
/* Load from memory; `dir` is where external data would live (NULL: refused). */
int cnn_model_load_buffer(const void *data, size_t len, const char *dir,
                          const char *name, cnn_model_t **out, cnn_error_t *err);
void cnn_model_destroy(cnn_model_t *m);
const cnn_model_info_t *cnn_model_info(const cnn_model_t *m);

/* ---- inference contexts ---------------------------------------------------- */

/* A context runs one forward at a time for batches of 1..max_batch images using
 * `threads` threads (the caller's thread plus threads-1 workers it owns). Any
 * number of contexts may run concurrently on the same model. */
int cnn_ctx_create(const cnn_model_t *m, int max_batch, int threads, cnn_ctx_t **out,
                   cnn_error_t *err);
void cnn_ctx_destroy(cnn_ctx_t *ctx);
size_t cnn_ctx_arena_bytes(const cnn_ctx_t *ctx); /* planned activation memory */
int cnn_ctx_max_batch(const cnn_ctx_t *ctx);

/* input: n x in_c x in_h x in_w floats (NCHW); output: n x num_classes floats,
 * the graph's output as is (logits for torchvision exports). */
int cnn_forward(cnn_ctx_t *ctx, const float *input, int n, float *output, cnn_error_t *err);

/* Profiling for benchmarks: while on, each forward records every node's wall time
 * (two clock reads per node), keeping each node's fastest (noise on a shared machine
 * only adds time) and its times in the first 1024 forwards, for medians (how much the
 * noise adds, node by node); cnn_ctx_profile_print writes fastest and median times
 * summed per op type and per node for the slowest nodes, then clears the counters.
 * Returns 0 or CNN_ENOMEM (turning it on allocates 1025 counters per node). */
int cnn_ctx_set_profiling(cnn_ctx_t *ctx, int on);
void cnn_ctx_profile_print(cnn_ctx_t *ctx, void *file /* FILE * */, int top);

/* Top-k of one row of scores: writes k indices and probabilities (softmax of the
 * row unless `already_probabilities`), sorted by probability, descending; ties
 * keep the lower index first. k is clamped to [1, n]; returns the k used. */
int cnn_topk(const float *scores, int n, int k, int already_probabilities, int *idx,
             float *prob);

/* Tell OpenBLAS to run single-threaded (the engine threads around it). Called by
 * cnn_ctx_create; exposed for tools that call BLAS themselves. */
void cnn_blas_single_thread(void);

/* ---- images -------------------------------------------------------------- */

typedef enum { CNN_FMT_UNKNOWN = 0, CNN_FMT_JPEG, CNN_FMT_PNG, CNN_FMT_WEBP } cnn_image_format_t;

typedef struct {
  int64_t max_pixels; /* width*height budget; default 40e6 */
  int max_side;       /* longest side allowed; default 20000 */
  int apply_exif;     /* rotate/flip by EXIF orientation; default 1 */
} cnn_image_limits_t;

void cnn_image_limits_default(cnn_image_limits_t *lim);

/* An 8-bit RGB image, rows packed (stride = 3*width). */
typedef struct {
  int width, height;
  uint8_t *rgb;
  cnn_image_format_t format;
} cnn_image_t;

/* Sniff the format from the first bytes (never the name or content type). */
cnn_image_format_t cnn_image_sniff(const void *data, size_t len);
const char *cnn_image_format_name(cnn_image_format_t f);

/* Decode any supported upload to RGB. Dimensions are checked against `lim`
 * before any pixel is decoded. `min_shorter` (0: none) lets a JPEG decode at a
 * DCT-domain scale as long as its shorter side stays >= min_shorter. */
int cnn_image_decode(const void *data, size_t len, const cnn_image_limits_t *lim,
                     int min_shorter, cnn_image_t *out, cnn_error_t *err);
void cnn_image_free(cnn_image_t *img);

/* Resize/crop/normalize into dst: 3 x crop_h x crop_w floats (CHW). */
int cnn_image_preprocess(const cnn_image_t *img, const cnn_preprocess_t *pp, float *dst,
                         cnn_error_t *err);

/* Decode + preprocess in one call, choosing the DCT scale from `pp`. */
int cnn_image_to_tensor(const void *data, size_t len, const cnn_image_limits_t *lim,
                        const cnn_preprocess_t *pp, float *dst, cnn_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* CNN_H */
