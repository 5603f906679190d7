/*
 * model_meta.c — the model's description from ONNX metadata_props: name, arch,
 * labels, preprocessing, untrained flag (keys in models/METADATA.md).
 *
 * Metadata is untrusted like the rest of the file: JSON is parsed with jansson and
 * every field is range-checked; a present but wrong field is an error (a silent
 * fallback would give users wrong answers), an absent one gets the default.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

static const char *meta_get(const Onnx__ModelProto *mp, const char *key) {
  for (size_t i = 0; i < mp->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
    if (e && e->key && e->value && strcmp(e->key, key) == 0) return e->value;
  }
  return NULL;
}

static int meta_labels(cnn_model_t *m, const char *text, cnn_error_t *err) {
  int n = m->info.num_classes;
  json_error_t je;
  json_t *arr = json_loads(text, 0, &je);
  int rc = 0;
  if (!json_is_array(arr) || (int)json_array_size(arr) != n)
    rc = cnn_error_set(err, CNN_EMODEL_INVALID,
                       "metadata 'labels' must be a JSON array of %d strings", n);
  for (int i = 0; !rc && i < n; i++) {
    const char *s = json_string_value(json_array_get(arr, (size_t)i));
    if (!s || strlen(s) > 200)
      rc = cnn_error_set(err, CNN_EMODEL_INVALID, "metadata 'labels'[%d] is not a short string", i);
    else if (!(m->labels[i] = strdup(s)))
      rc = cnn_error_set(err, CNN_ENOMEM, "out of memory");
  }
  json_decref(arr);
  return rc;
}

static int json_floats3(json_t *o, const char *key, float out[3], int positive) {
  json_t *a = json_object_get(o, key);
  if (!a) return 0;
  if (!json_is_array(a) || json_array_size(a) != 3) return -1;
  for (int i = 0; i < 3; i++) {
    json_t *x = json_array_get(a, (size_t)i);
    if (!json_is_number(x)) return -1;
    double v = json_number_value(x);
    if (v != v || v < -1e4 || v > 1e4 || (positive && v <= 0)) return -1;
    out[i] = (float)v;
  }
  return 0;
}

static int json_crop(json_t *o, cnn_preprocess_t *pp) {
  json_t *c = json_object_get(o, "crop");
  if (!c) return 0;
  if (json_is_integer(c)) {
    pp->crop_h = pp->crop_w = (int)json_integer_value(c);
  } else if (json_is_array(c) && json_array_size(c) == 2 &&
             json_is_integer(json_array_get(c, 0)) && json_is_integer(json_array_get(c, 1))) {
    pp->crop_h = (int)json_integer_value(json_array_get(c, 0));
    pp->crop_w = (int)json_integer_value(json_array_get(c, 1));
  } else {
    return -1;
  }
  return 0;
}

static int meta_preprocess(cnn_model_t *m, const char *text, cnn_error_t *err) {
  cnn_preprocess_t *pp = &m->info.preprocess;
  json_error_t je;
  json_t *o = json_loads(text, 0, &je);
  int bad = !json_is_object(o);
  if (!bad) {
    json_t *r = json_object_get(o, "resize_shorter");
    if (r) bad |= !json_is_integer(r), pp->resize_shorter = (int)json_integer_value(r);
    bad |= json_crop(o, pp) || json_floats3(o, "mean", pp->mean, 0) ||
           json_floats3(o, "std", pp->std, 1);
    const char *order = json_string_value(json_object_get(o, "channel_order"));
    const char *range = json_string_value(json_object_get(o, "pixel_range"));
    if (order) bad |= strcmp(order, "RGB") && strcmp(order, "BGR"), pp->bgr = !strcmp(order, "BGR");
    if (range) bad |= strcmp(range, "0-1") && strcmp(range, "0-255"),
                   pp->scale = strcmp(range, "0-255") ? 1.0f / 255.0f : 1.0f;
    bad |= pp->resize_shorter < 0 || pp->resize_shorter > 8192;
  }
  json_decref(o);
  if (bad)
    return cnn_error_set(err, CNN_EMODEL_INVALID, "metadata 'preprocess' is malformed: %s", text);
  return 0;
}

static char *dup_or(const char *s, const char *fallback) { return strdup(s ? s : fallback); }

int model_read_meta(cnn_model_t *m, const Onnx__ModelProto *mp, const char *stem,
                    cnn_error_t *err) {
  cnn_model_info_t *in = &m->info;
  m->name = dup_or(meta_get(mp, "model_name"), stem);
  m->arch = dup_or(meta_get(mp, "arch"), "");
  m->labels = calloc((size_t)in->num_classes, sizeof *m->labels);
  if (!m->name || !m->arch || !m->labels) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  const char *labels = meta_get(mp, "labels"), *pre = meta_get(mp, "preprocess");
  int rc = labels ? meta_labels(m, labels, err) : 0;
  for (int i = 0; !rc && !labels && i < in->num_classes; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "class_%d", i);
    if (!(m->labels[i] = strdup(buf))) rc = cnn_error_set(err, CNN_ENOMEM, "out of memory");
  }
  if (rc) return rc;
  cnn_preprocess_default(&in->preprocess);
  in->preprocess.crop_h = in->in_h, in->preprocess.crop_w = in->in_w;
  in->preprocess.resize_shorter = (in->in_h < in->in_w ? in->in_h : in->in_w) * 256 / 224;
  if (pre && (rc = meta_preprocess(m, pre, err))) return rc;
  if (in->preprocess.crop_h != in->in_h || in->preprocess.crop_w != in->in_w)
    return cnn_error_set(err, CNN_EMODEL_INVALID,
                         "metadata 'preprocess' crop %dx%d differs from the input %dx%d",
                         in->preprocess.crop_h, in->preprocess.crop_w, in->in_h, in->in_w);
  const char *u = meta_get(mp, "untrained");
  in->untrained = u && strcmp(u, "true") == 0;
  in->name = m->name, in->arch = m->arch, in->labels = (const char *const *)m->labels;
  return 0;
}
