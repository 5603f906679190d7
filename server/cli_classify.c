/*
 * cli_classify.c — `classifyd classify`: classify image files once and print one
 * JSON object per image on stdout:
 *   {"image":"cat.jpg","model":"resnet50","predictions":[{"index":281,"label":"tabby",
 *    "probability":0.61}, ...]}
 * Images are decoded and preprocessed one by one and run through the engine in
 * batches of up to CLI_BATCH. An image that cannot be read or decoded gets a
 * message on stderr and makes the exit status 1; the others are still classified.
 * Bad arguments or an unloadable model: message on stderr, exit status 2.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cnn.h"
#include "cpus.h"
#include "file_read.h"

#define CLI_BATCH 8
#define CLI_MAX_FILE ((size_t)64 << 20)

typedef struct {
  const char *model_path;
  int top_k, threads, exif;
  char **images;
  int nimages;
} cli_opts_t;

static void usage(FILE *f) {
  fprintf(f, "usage: classifyd classify --model FILE.onnx [--top-k K] [--threads N] "
             "[--no-exif] IMAGE...\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static int parse_opts(int argc, char **argv, cli_opts_t *o) {
  static const struct option longs[] = {{"model", required_argument, 0, 'm'},
                                        {"top-k", required_argument, 0, 'k'},
                                        {"threads", required_argument, 0, 't'},
                                        {"no-exif", no_argument, 0, 'x'},
                                        {"help", no_argument, 0, 'h'},
                                        {0, 0, 0, 0}};
  *o = (cli_opts_t){NULL, 5, cpus_available(), 1, NULL, 0};
  optind = 1;
  for (int c; (c = getopt_long(argc, argv, "m:k:t:h", longs, NULL)) != -1;) {
    if (c == 'm') o->model_path = optarg;
    else if (c == 'k' && parse_int(optarg, 1, 1000, &o->top_k) == 0) continue;
    else if (c == 't' && parse_int(optarg, 1, 256, &o->threads) == 0) continue;
    else if (c == 'x') o->exif = 0;
    else if (c == 'h') return usage(stdout), 1;
    else if (c == 'k' || c == 't') {
      fprintf(stderr, "classifyd classify: invalid --%s '%s'\n", c == 'k' ? "top-k (1-1000)" : "threads", optarg);
      return -1;
    } else return usage(stderr), -1;
  }
  o->images = argv + optind;
  o->nimages = argc - optind;
  if (!o->model_path || o->nimages < 1) {
    fprintf(stderr, "classifyd classify: %s\n", !o->model_path ? "--model is required" : "no images given");
    usage(stderr);
    return -1;
  }
  return 0;
}

static void print_result(const cli_opts_t *o, const cnn_model_info_t *info, const char *image,
                         const float *scores) {
  int idx[1000];
  float prob[1000];
  int k = cnn_topk(scores, info->num_classes, o->top_k, info->outputs_probabilities, idx, prob);
  json_t *preds = json_array();
  for (int i = 0; i < k; i++)
    json_array_append_new(preds, json_pack("{s:i,s:s,s:f}", "index", idx[i], "label",
                                           info->labels[idx[i]], "probability", (double)prob[i]));
  json_t *obj = json_pack("{s:s,s:s,s:o}", "image", image, "model", info->name, "predictions", preds);
  if (info->untrained) json_object_set_new(obj, "untrained", json_true());
  char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
  if (text) puts(text);
  free(text);
  json_decref(obj);
}

/* Decode one image into dst; 0 or -1 (message printed). */
static int load_image(const cli_opts_t *o, const cnn_model_info_t *info, const char *path, float *dst) {
  uint8_t *data = NULL;
  size_t len = 0;
  cnn_error_t err;
  if (file_read_all(path, CLI_MAX_FILE, &data, &len, &err)) {
    fprintf(stderr, "classifyd classify: %s\n", err.msg);
    return -1;
  }
  cnn_image_limits_t lim;
  cnn_image_limits_default(&lim);
  lim.apply_exif = o->exif;
  int rc = cnn_image_to_tensor(data, len, &lim, &info->preprocess, dst, &err);
  free(data);
  if (rc) fprintf(stderr, "classifyd classify: %s: %s: %s\n", path, cnn_err_code(rc), err.msg);
  return rc ? -1 : 0;
}

static int run(const cli_opts_t *o, cnn_model_t *m) {
  const cnn_model_info_t *info = cnn_model_info(m);
  size_t per = (size_t)info->in_c * info->in_h * info->in_w;
  cnn_ctx_t *ctx;
  cnn_error_t err;
  if (cnn_ctx_create(m, CLI_BATCH, o->threads, &ctx, &err)) {
    fprintf(stderr, "classifyd classify: %s\n", err.msg);
    return 2;
  }
  float *in = malloc(per * CLI_BATCH * sizeof *in);
  float *out = malloc((size_t)info->num_classes * CLI_BATCH * sizeof *out);
  const char *names[CLI_BATCH];
  int failed = 0, fatal = !(in && out);
  for (int i = 0; !fatal && i < o->nimages;) {
    int n = 0;
    for (; i < o->nimages && n < CLI_BATCH; i++) {
      if (load_image(o, info, o->images[i], in + per * (size_t)n)) failed = 1;
      else names[n++] = o->images[i];
    }
    if (n && cnn_forward(ctx, in, n, out, &err)) {
      fprintf(stderr, "classifyd classify: %s\n", err.msg);
      fatal = 1;
      break;
    }
    for (int j = 0; j < n; j++) print_result(o, info, names[j], out + (size_t)info->num_classes * j);
    fflush(stdout);
  }
  free(in);
  free(out);
  cnn_ctx_destroy(ctx);
  return fatal ? 2 : failed;
}

int cli_classify_main(int argc, char **argv) {
  cli_opts_t o;
  int rc = parse_opts(argc, argv, &o);
  if (rc) return rc > 0 ? 0 : 2;
  cnn_model_t *m;
  cnn_error_t err;
  if (cnn_model_load(o.model_path, &m, &err)) {
    fprintf(stderr, "classifyd classify: cannot load model: %s: %s\n", cnn_err_code(err.code), err.msg);
    return 2;
  }
  if (cnn_model_info(m)->num_classes > 1000 && o.top_k > 1000) o.top_k = 1000;
  rc = run(&o, m);
  cnn_model_destroy(m);
  return rc;
}
