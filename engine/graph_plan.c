/*
 * graph_plan.c — activation memory planned by liveness, once per model.
 *
 * Every runtime value that owns storage (a root: not an alias, not the input) lives
 * from the first node that writes it to the last node that reads it (or forever, for
 * the graph output). The first writer is its producer, or earlier a conv writing a
 * view of it (a Concat written in place, graph_concat.c); a conv with row groups
 * writes several roots at once (graph_node_outputs). Roots are placed largest first at
 * the lowest arena offset that does not overlap, in memory, any already placed root
 * whose lifetime overlaps its own ("greedy by size"). A node's inputs and output always
 * overlap in time, so a kernel never sees its output alias an input. Offsets and sizes
 * are per image, rounded to 16 floats (64 bytes); a context scales them by its max batch.
 *
 * Image-serial prefix (graph_plan_serial): a batch runs the early layers, whose
 * maps are large and weights small, one image at a time per thread (ctx.c), so each
 * image's activations stay in cache; the rest runs batched, where weights are
 * large and reused across the batch. The prefix ends at the first node whose output
 * map is below SERIAL_MIN_PIXELS (or is not a map), or takes the whole graph when
 * the weights fit in the last-level cache. Its values that later nodes
 * read ("crossing") keep their batch slots in the main arena; the others live in a
 * per-thread serial arena of one image, planned the same way (soffset).
 * The prefix is cut into up to GRAPH_SERIAL_STAGES stages of about equal MACs, at
 * nodes where one value alone crosses (plan_stages), so that ctx.c can hand the last
 * images' stages to whichever thread is free. Values that a later stage reads live
 * in a stage slot of one image (toffset), planned the same way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "graph.h"

typedef struct {
  int v;
  int64_t size, start, end; /* floats; node interval [start, end] */
} slot_t;

static void mark_use(cnn_model_t *m, int v, int at) {
  if (v < 0) return;
  int r = graph_root(m, v);
  if (m->vals[r].last_use < at) m->vals[r].last_use = at;
}

static void compute_liveness(cnn_model_t *m) {
  for (int i = 0; i < m->nvals; i++) m->vals[i].last_use = -1;
  for (int i = 0; i < m->nnodes; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++) mark_use(m, n->in[j], i);
    if (n->op == OP_CONV) mark_use(m, n->a.conv.residual, i);
  }
  mark_use(m, m->output, INT32_MAX);
}

/* first[r] for every root r: the earliest live node writing r or a view of it (a conv
 * writes its output, view or not; the other nodes whose output is an alias, Reshape and
 * the like, write nothing). nnodes for values no node writes. */
static void first_writes(const cnn_model_t *m, int *first) {
  for (int v = 0; v < m->nvals; v++) first[v] = m->nnodes;
  for (int i = m->nnodes - 1; i >= 0; i--) {
    const graph_node_t *n = &m->nodes[i];
    int outs[GRAPH_MAX_OUTPUTS], no = n->dead ? 0 : graph_node_outputs(n, outs);
    for (int k = 0; k < no; k++) {
      int r = graph_root(m, outs[k]);
      if (r == outs[k] || n->op == OP_CONV) first[r] = i;
    }
  }
}

/* Node i's outputs that need storage of their own (roots, not aliases) into outs;
 * returns how many (none for a dead node). */
static int root_outs(const cnn_model_t *m, int i, int *outs) {
  const graph_node_t *n = &m->nodes[i];
  int all[GRAPH_MAX_OUTPUTS], na = n->dead ? 0 : graph_node_outputs(n, all), no = 0;
  for (int k = 0; k < na; k++)
    if (m->vals[all[k]].alias_of < 0) outs[no++] = all[k];
  return no;
}

static int by_size_desc(const void *a, const void *b) {
  const slot_t *x = a, *y = b;
  return x->size < y->size ? 1 : x->size > y->size ? -1 : x->v - y->v;
}

static int64_t place(slot_t *s, int count, int idx, int64_t *offsets) {
  int64_t off = 0;
  for (int moved = 1; moved;) {
    moved = 0;
    for (int j = 0; j < idx; j++) {
      if (s[j].end < s[idx].start || s[idx].end < s[j].start) continue; /* not live together */
      int64_t o = offsets[j];
      if (off < o + s[j].size && o < off + s[idx].size) off = o + s[j].size, moved = 1;
    }
  }
  return off;
}

/* Greedy placement of count slots; returns the arena size, offsets in off. */
static int64_t place_all(slot_t *s, int count, int64_t *off) {
  qsort(s, (size_t)count, sizeof *s, by_size_desc);
  int64_t total = 0;
  for (int i = 0; i < count; i++) {
    off[i] = place(s, count, i, off);
    if (off[i] + s[i].size > total) total = off[i] + s[i].size;
  }
  return total;
}

int graph_plan(cnn_model_t *m, cnn_error_t *err) {
  compute_liveness(m);
  slot_t *s = calloc((size_t)m->nvals + 1, sizeof *s); /* a slot per root output */
  int64_t *off = calloc((size_t)m->nvals + 1, sizeof *off);
  int *first = calloc((size_t)m->nvals, sizeof *first);
  if (!s || !off || !first) {
    free(s), free(off), free(first);
    return cnn_error_set(err, CNN_ENOMEM, "out of memory planning activations");
  }
  first_writes(m, first);
  int count = 0;
  for (int i = 0; i < m->nnodes; i++) {
    int outs[GRAPH_MAX_OUTPUTS], no = root_outs(m, i, outs);
    for (int k = 0; k < no; k++) {
      graph_value_t *v = &m->vals[outs[k]];
      int64_t end = v->last_use < i ? i : v->last_use;
      s[count++] = (slot_t){outs[k], (graph_numel(v) + 15) / 16 * 16, first[outs[k]], end};
    }
  }
  m->plan_floats = place_all(s, count, off);
  for (int i = 0; i < count; i++) m->vals[s[i].v].offset = off[i];
  free(s);
  free(off);
  free(first);
  if (m->plan_floats > GRAPH_MAX_PLAN_FLOATS)
    return cnn_error_set(err, CNN_EMODEL_UNSUPPORTED,
                         "activations need %lld MiB per image (max %lld MiB)",
                         (long long)(m->plan_floats >> 18), (long long)(GRAPH_MAX_PLAN_FLOATS >> 18));
  return 0;
}

enum { SERIAL_MIN_PIXELS = 14 * 14 };
/* Models whose weights fit in 7/8 of the L3 cache run wholly image by image:
 * re-reading them per image costs less than the batched schedule's synchronization.
 * GoogLeNet (25 MiB): batch 8 on 2 threads 59 -> 48 ms; the ResNets (44 MiB and
 * more) measured better with layer4 batched. The size is CPU 0's L3 as sysfs gives
 * it (one cache's, as lscpu shows; glibc's sysconf can report the whole package's,
 * 384 MiB on this VM), 32 MiB if unknown. */
static int64_t serial_all_bytes(void) {
  int64_t l3 = (int64_t)32 << 20;
  FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
  if (f) {
    long kb = 0;
    char unit = 0;
    if (fscanf(f, "%ld%c", &kb, &unit) >= 1 && kb > 0 && kb < (1L << 30))
      l3 = unit == 'M' ? (int64_t)kb << 20 : (int64_t)kb << 10;
    fclose(f);
  }
  return l3 / 8 * 7;
}


/* Stage boundaries of the prefix [0, cut): near each multiple of 1/stages of its
 * MACs, the node within half a stage of it where one value alone crosses (written
 * before it, read at or after it, dead before cut: a block's output, in ResNets and
 * GoogLeNet); a multiple without one gets no boundary. Linear in the nodes, so a
 * hostile graph cannot make loading slow. */
static void plan_stages(cnn_model_t *m, const int *first, int cut, int stages) {
  int64_t total = 0, *before = calloc((size_t)cut + 1, sizeof *before);
  int *cross = calloc((size_t)cut + 2, sizeof *cross); /* crossing values per node */
  m->serial_stages = 1;
  m->serial_cut[0] = 0;
  if (!before || !cross) stages = 1; /* stages are an optimization: none without memory */
  for (int i = 0; stages > 1 && i < cut; i++) {
    before[i] = total;
    if (!m->nodes[i].dead) total += m->nodes[i].macs;
    int outs[GRAPH_MAX_OUTPUTS], no = root_outs(m, i, outs);
    for (int k = 0; k < no; k++) {
      const graph_value_t *v = &m->vals[outs[k]];
      int f = first[outs[k]];
      if (v->last_use > f && v->last_use < cut) cross[f + 1]++, cross[v->last_use + 1]--;
    }
  }
  for (int i = 1; stages > 1 && i < cut; i++) cross[i] += cross[i - 1];
  for (int s = 1; s < stages; s++) {
    int64_t target = total / stages * s, best_gap = total / stages / 2 + 1;
    int best = -1;
    for (int b = m->serial_cut[m->serial_stages - 1] + 1; b < cut; b++) {
      int64_t gap = before[b] > target ? before[b] - target : target - before[b];
      if (gap < best_gap && cross[b] == 1) best = b, best_gap = gap;
    }
    if (best > 0) m->serial_cut[m->serial_stages++] = best;
  }
  m->serial_cut[m->serial_stages] = cut;
  free(before), free(cross);
}

int graph_plan_serial(cnn_model_t *m, cnn_error_t *err) {
  m->serial_end = 0;
  m->serial_floats = 0;
  m->serial_stages = 0;
  m->stage_floats = 0;
  for (int i = 0; i < m->nvals; i++) m->vals[i].soffset = m->vals[i].toffset = -1;
  int cut = m->nnodes;
  int all = m->info.params * (int64_t)sizeof(float) <= serial_all_bytes();
  for (int i = 0; i < m->nnodes && !all; i++) {
    const graph_node_t *n = &m->nodes[i];
    if (n->dead) continue;
    const graph_value_t *o = &m->vals[n->out];
    if (!graph_is_runtime(o)) continue; /* constants */
    if (o->ndim != 4 || o->dims[2] * o->dims[3] < SERIAL_MIN_PIXELS) {
      cut = i;
      break;
    }
  }
  int *first = calloc((size_t)m->nvals, sizeof *first);
  if (!first) return cnn_error_set(err, CNN_ENOMEM, "out of memory planning activations");
  first_writes(m, first);
  plan_stages(m, first, cut, GRAPH_SERIAL_STAGES);
  /* s[0, count): values one stage alone reads, for the serial arena; t[0, tcount):
   * values a later stage reads, for the stage slot (an image's stages run in node
   * order, so the two plans overlap values by node intervals as the main plan does) */
  slot_t *s = calloc((size_t)m->nvals + 1, sizeof *s);
  slot_t *t = calloc((size_t)m->nvals + 1, sizeof *t);
  int64_t *off = calloc((size_t)m->nvals + 1, sizeof *off);
  if (!s || !t || !off) {
    free(s), free(t), free(off), free(first);
    return cnn_error_set(err, CNN_ENOMEM, "out of memory planning activations");
  }
  int count = 0, tcount = 0;
  for (int i = 0; i < cut; i++) {
    int outs[GRAPH_MAX_OUTPUTS], no = root_outs(m, i, outs);
    for (int k = 0; k < no; k++) {
      const graph_value_t *v = &m->vals[outs[k]];
      int f = first[outs[k]], st = 1; /* st: the stage after the first write's */
      while (st < m->serial_stages && m->serial_cut[st] <= f) st++;
      int64_t end = v->last_use < i ? i : v->last_use;
      slot_t slot = {outs[k], (graph_numel(v) + 15) / 16 * 16, f, end};
      if (end >= cut) continue; /* crossing: keeps its batch slot in the main arena */
      if (st < m->serial_stages && end >= m->serial_cut[st]) t[tcount++] = slot;
      else s[count++] = slot;
    }
  }
  m->serial_floats = place_all(s, count, off);
  for (int i = 0; i < count; i++) m->vals[s[i].v].soffset = off[i];
  m->stage_floats = place_all(t, tcount, off);
  for (int i = 0; i < tcount; i++) m->vals[t[i].v].toffset = off[i];
  m->serial_end = count > 0 ? cut : 0;
  if (!m->serial_end) m->serial_stages = 0, m->stage_floats = 0;
  free(s), free(t), free(off), free(first);
  return 0;
}
