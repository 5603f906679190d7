/*
 * graph_shortcut.c — a projection shortcut merged into its block's last conv.
 *
 * The first block of each ResNet-50/101/152 stage ends y = relu(W3 x2 + b3 + Wd xs + bd):
 * the 1x1 conv3 on x2 (conv2's output) plus the shortcut, a 1x1 conv of stride s on the
 * block's input x (xs: x sampled every s pixels). Run as two convs, the shortcut writes
 * its whole output (ResNet-50's layer1: 3.2 MB) and conv3's epilogue reads it back as
 * the residual, two passes and two tasks on the pool. Both are products over the same
 * output pixels, so they are one product over K = c2 + cx:
 *   y = relu([W3 | Wd] [x2 ; xs] + b3 + bd),
 * with [x2 ; xs] one map Z of c2 + cx channels:
 *  - conv2 writes x2 as Z's first c2 channels in place (a view, image stride Z's: the
 *    Concat-in-place machinery of graph_concat.c);
 *  - a subsample node (OP_SUBSAMPLE, kern_subsample), in the place of the node that ran
 *    first of the two convs, copies xs into Z's last cx channels (a plain copy at
 *    stride 1);
 *  - the later conv (the one the Add was fused into) becomes the merged conv: 1x1,
 *    stride 1, on Z, weights [W3 | Wd] and bias b3 + bd (new constants), its ReLU kept,
 *    no residual.
 * The sums are those of one dot product over both inputs instead of two added, so the
 * output rounds differently (within a few ulps; the differential tests bound it).
 * Conditions: the conv with the fused residual and the residual's producer are both
 * live 1x1 convs without padding, groups or views, the producer with neither ReLU nor a
 * residual, its output read only as that residual; one of them has stride 1 and reads
 * x2, the output of a live conv without a residual or groups that nothing else reads,
 * a root of 4 dims; the other reads x, a 4-D root, at a stride that gives the same
 * output map. Anything else is left as it was.
 * ResNet-50 (session 35, Zen 5, 2 threads): per-node minima at batch 1, separate ->
 * merged: layer1 0.295 + 0.248 -> 0.482 ms, layer2 0.591 + 0.245 -> 0.707, layer3
 * 0.566 + 0.256 -> 0.735, layer4 0.522 + 0.242 -> 0.691, plus the four copies (0.09 ms
 * in all). Forwards alternating in blocks between a model loaded with and one without,
 * 60 s a run: batch 1 p50 18.898 -> 18.751 and 18.481 -> 18.358 ms (p10 18.550 ->
 * 18.432, 18.251 -> 18.132); batch 8 unchanged (bench_engine, alternating processes:
 * 134.9 / 134.8 ms without, 138.9 / 134.9 with). An earlier version (session 16, Zen 3)
 * also copied x2 beside xs and lost that copy's cost in layers 2-4; here conv2 writes
 * x2 where the product reads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "graph.h"

/* A live 1x1 conv without padding, row groups or an output view. */
static int plain_1x1(const cnn_model_t *m, const graph_node_t *n) {
  const kern_conv_t *k = &n->a.conv.k;
  return !n->dead && n->op == OP_CONV && k->kh == 1 && k->kw == 1 && k->pad_t == 0 &&
         k->pad_l == 0 && k->pad_b == 0 && k->pad_r == 0 && k->ngroups == 0 &&
         k->out_img == 0 && k->weight && m->vals[n->out].alias_of < 0;
}

/* A 4-D runtime root that no other value aliases. */
static int lone_root(const cnn_model_t *m, const int *aliased, int v) {
  const graph_value_t *x = &m->vals[v];
  return x->kind == VAL_RUNTIME && x->alias_of < 0 && !aliased[v] && x->ndim == 4;
}

/* The conv that may write its output x2 into Z: x2 a lone root read only by `main`. */
static graph_node_t *view_writer(cnn_model_t *m, const int *readers, const int *aliased, int x2) {
  if (x2 < 0 || x2 == m->output || readers[x2] != 1 || !lone_root(m, aliased, x2) ||
      m->vals[x2].producer < 0)
    return NULL;
  graph_node_t *p = &m->nodes[m->vals[x2].producer];
  const kern_conv_t *k = &p->a.conv.k;
  return !p->dead && p->op == OP_CONV && p->out == x2 && p->a.conv.residual < 0 &&
                 k->ngroups == 0 && k->out_img == 0
             ? p
             : NULL;
}

static int merge(cnn_model_t *m, graph_node_t *late, graph_node_t *early, graph_node_t *main_c,
                 graph_node_t *short_c, graph_node_t *writer, cnn_error_t *err) {
  const kern_conv_t *km = &main_c->a.conv.k, *ks = &short_c->a.conv.k;
  int c2 = km->cin, cx = ks->cin, cout = km->cout, cin = c2 + cx, stride = ks->stride_h;
  int x = short_c->in[0], x2 = main_c->in[0], r = early->out;
  int wv = graph_new_floats(m, late, "shortcut_weight", (int64_t)cout * cin, err);
  if (wv < 0) return wv;
  int bv = graph_new_floats(m, late, "shortcut_bias", cout, err);
  if (bv < 0) return bv;
  char name[300];
  snprintf(name, sizeof name, "%s/shortcut_input", late->name);
  int zv = graph_add_value(m, name, err);
  if (zv < 0) return zv;
  float *w = m->vals[wv].f, *b = m->vals[bv].f;
  for (int co = 0; co < cout; co++) {
    memcpy(w + (size_t)co * cin, km->weight + (size_t)co * c2, sizeof(float) * (size_t)c2);
    memcpy(w + (size_t)co * cin + c2, ks->weight + (size_t)co * cx, sizeof(float) * (size_t)cx);
    b[co] = (km->bias ? km->bias[co] : 0.0f) + (ks->bias ? ks->bias[co] : 0.0f);
  }
  const float *old[4] = {km->weight, km->bias, ks->weight, ks->bias};
  int oh = main_c->a.conv.oh, ow = main_c->a.conv.ow;
  int early_in[GRAPH_MAX_INPUTS], early_nin = early->nin;
  memcpy(early_in, early->in, sizeof early_in);

  graph_value_t *z = &m->vals[zv], *v2 = &m->vals[x2];
  z->kind = VAL_RUNTIME, z->dtype = DT_FLOAT, z->known = 1, z->ndim = 4;
  z->dims[0] = 1, z->dims[1] = cin, z->dims[2] = oh, z->dims[3] = ow;
  z->alias_of = -1;
  v2->alias_of = zv, v2->view_off = 0;
  writer->a.conv.k.out_img = (size_t)graph_numel(z);

  /* the late node: the merged conv */
  kern_conv_t k = late->a.conv.k;
  k.cin = cin, k.stride_h = k.stride_w = 1;
  k.weight = w, k.bias = b;
  late->a.conv.k = k;
  late->in[0] = zv;
  late->a.conv.residual = -1;
  late->a.conv.h = oh, late->a.conv.w = ow;
  late->macs = main_c->macs + short_c->macs;

  /* the early node: the copy of xs into Z */
  const graph_value_t *xv = &m->vals[x];
  int early_idx = (int)(early - m->nodes);
  memset(&early->a, 0, sizeof early->a);
  early->op = OP_SUBSAMPLE, early->type = "Subsample";
  early->nin = 1, early->in[0] = x, early->out = zv, early->macs = 0;
  early->a.sub.stride = stride, early->a.sub.c = cx;
  early->a.sub.h = (int)xv->dims[2], early->a.sub.w = (int)xv->dims[3];
  early->a.sub.oh = oh, early->a.sub.ow = ow;
  early->a.sub.off = (int64_t)c2 * oh * ow;
  z->producer = early_idx;
  m->vals[r].producer = -1;

  for (int i = 0; i < 4; i++) graph_drop_data(m, old[i]);
  for (int j = 1; j < early_nin; j++) graph_drop_value(m, early_in[j]); /* its initializers */
  return 0;
}

/* Whether late (the conv with the residual) and early (the residual's producer) form a
 * block end to merge; if so merges them. readers and aliased cover the values [0, nvals)
 * that existed before the first merge. Returns 1 merged, 0 not, < 0 an error. */
static int try_block(cnn_model_t *m, graph_node_t *late, const int *readers, const int *aliased,
                     int nvals, cnn_error_t *err) {
  int r = late->a.conv.residual;
  if (!plain_1x1(m, late) || r < 0 || r >= nvals || r == m->output || readers[r] != 1 ||
      !lone_root(m, aliased, r) || m->vals[r].producer < 0)
    return 0;
  graph_node_t *early = &m->nodes[m->vals[r].producer];
  if (!plain_1x1(m, early) || early->out != r || early->a.conv.residual >= 0 ||
      early->a.conv.k.relu || early->a.conv.k.cout != late->a.conv.k.cout)
    return 0;
  for (int pick = 0; pick < 2; pick++) { /* which of the two reads x2 */
    graph_node_t *main_c = pick ? late : early, *short_c = pick ? early : late;
    const kern_conv_t *km = &main_c->a.conv.k, *ks = &short_c->a.conv.k;
    if (km->stride_h != 1 || km->stride_w != 1 || ks->stride_h != ks->stride_w ||
        short_c->a.conv.oh != main_c->a.conv.oh || short_c->a.conv.ow != main_c->a.conv.ow ||
        main_c->a.conv.h != main_c->a.conv.oh || main_c->a.conv.w != main_c->a.conv.ow)
      continue;
    int x = short_c->in[0], x2 = main_c->in[0];
    if (x < 0 || x2 < 0 || x >= nvals || x2 >= nvals || x == x2 || /* no earlier merge's Z */ !graph_is_runtime(&m->vals[x]) || m->vals[x].alias_of >= 0 ||
        m->vals[x].ndim != 4 || m->vals[x].dims[1] != ks->cin ||
        m->vals[x].producer >= (int)(early - m->nodes)) /* x ready where the copy runs */
      continue;
    graph_node_t *writer = view_writer(m, readers, aliased, x2);
    if (!writer || (int)(writer - m->nodes) >= (int)(early - m->nodes)) continue;
    int rc = merge(m, late, early, main_c, short_c, writer, err);
    return rc ? rc : 1;
  }
  return 0;
}

int graph_merge_shortcuts(cnn_model_t *m, const int *readers, cnn_error_t *err) {
  int *aliased = graph_aliased(m);
  if (!aliased) return cnn_error_set(err, CNN_ENOMEM, "out of memory");
  int nnodes = m->nnodes, nvals = m->nvals, rc = 0;
  for (int i = 0; i < nnodes && rc >= 0; i++)
    if (m->nodes[i].op == OP_CONV && !m->nodes[i].dead && m->nodes[i].a.conv.residual >= 0)
      rc = try_block(m, &m->nodes[i], readers, aliased, nvals, err);
  free(aliased);
  return rc < 0 ? rc : 0;
}
