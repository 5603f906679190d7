/*
 * kern_pool.c — max, average and global average pooling, float32 NCHW.
 *
 * Work is split across threads by (n*c) planes; each output value reads its
 * window clipped to the input. Window bounds are computed per output row and
 * column, so the inner loops carry no padding tests. In ceil mode a window may
 * run past the padded input: those positions are ignored, and with
 * count_include_pad the divisor counts padding but not positions beyond it.
 */
#include <float.h>
#include "kern_simd.h"

#include "kern_internal.h"

typedef struct {
  const kern_pool_t *p;
  const float *in;
  float *out;
  int h, w, oh, ow;
  size_t planes;
  int n, avg;
} pool_job_t;

/* Clip window [o*s - pad, +k) to [0, len) and to the padded range [-pad, len+pad2). */
static void pool__span(int o, int s, int k, int pad, int pad2, int len, int *a, int *b,
                       int *padded) {
  int lo = o * s - pad, hi = lo + k;
  *padded = (hi < len + pad2 ? hi : len + pad2) - lo;
  *a = lo < 0 ? 0 : lo;
  *b = hi > len ? len : hi;
}

static float pool__max_window(const float *x, int w, int y0, int y1, int x0, int x1) {
  float m = -FLT_MAX;
  for (int y = y0; y < y1; y++)
    for (int xx = x0; xx < x1; xx++) m = x[y * w + xx] > m ? x[y * w + xx] : m;
  return m;
}

static float pool__sum_window(const float *x, int w, int y0, int y1, int x0, int x1) {
  float s = 0.0f;
  for (int y = y0; y < y1; y++)
    for (int xx = x0; xx < x1; xx++) s += x[y * w + xx];
  return s;
}

static void pool__plane(const pool_job_t *j, const float *x, float *y) {
  const kern_pool_t *p = j->p;
  for (int oy = 0; oy < j->oh; oy++) {
    int y0, y1, ny;
    pool__span(oy, p->stride_h, p->kh, p->pad_t, p->pad_b, j->h, &y0, &y1, &ny);
    for (int ox = 0; ox < j->ow; ox++) {
      int x0, x1, nx;
      pool__span(ox, p->stride_w, p->kw, p->pad_l, p->pad_r, j->w, &x0, &x1, &nx);
      float v;
      if (!j->avg) {
        v = (y1 > y0 && x1 > x0) ? pool__max_window(x, j->w, y0, y1, x0, x1) : 0.0f;
      } else {
        int cnt = p->count_include_pad ? ny * nx : (y1 - y0) * (x1 - x0);
        v = cnt > 0 ? pool__sum_window(x, j->w, y0, y1, x0, x1) / (float)cnt : 0.0f;
      }
      *y++ = v;
    }
  }
}

/* Max pooling, separably: for each output row, the column maxima over its window's
 * input rows (contiguous, vectorizes), then each output's maximum over its window's
 * columns of that row (interior windows without clipping tests). max is exact, so
 * the order changes nothing: results equal pool__plane's. Rows up to POOL_ROW_MAX
 * wide (the row lives on the stack, with POOL_MARGIN floats of -FLT_MAX on each
 * side so vector loads may run past its ends); wider ones take pool__plane. */
enum { POOL_ROW_MAX = 2048, POOL_MARGIN = 48 };

static void pool__max_row(const kern_pool_t *p, const float *v, int w, int ow, float *y) {
  int s = p->stride_w, k = p->kw, pad = p->pad_l;
  /* Interior outputs: windows [ox*s - pad, +k) inside [0, w). */
  int i0 = (pad + s - 1) / s, i1 = w - k + pad >= 0 ? (w - k + pad) / s + 1 : 0;
  if (i1 > ow) i1 = ow;
  if (i0 > i1) i0 = i1;
#if defined(__AVX512F__)
  /* 3 taps at stride 2 (GoogLeNet's and ResNet's stride-2 pools), 16 outputs at a time
   * over the whole row, narrow rows included: the window of output ox is e[ox],
   * o[ox], e[ox + 1] with e and o the even and odd positions from ox*2 - pad, from
   * one permute of two loads each. Positions outside the row read the margins'
   * -FLT_MAX (which no window takes, as each holds a real position or is empty: the
   * edge outputs are redone exactly below). */
  int vec = s == 2 && k == 3 && pad <= 8 && p->pad_r <= 8; /* reads stay in the margins */
  if (vec) {
    for (int ox = 0; ox < ow; ox += 16) {
      const float *b = v + ox * 2 - pad;
      __m512 lo = _mm512_loadu_ps(b), hi = _mm512_loadu_ps(b + 16);
      __m512 lo2 = _mm512_loadu_ps(b + 2), hi2 = _mm512_loadu_ps(b + 18);
      __m512 m = _mm512_max_ps(_mm512_max_ps(kern_simd_even(lo, hi), kern_simd_odd(lo, hi)),
                               kern_simd_even(lo2, hi2));
      int n = ow - ox < 16 ? ow - ox : 16;
      _mm512_mask_storeu_ps(y + ox, (__mmask16)((1u << n) - 1), m);
    }
  }
#elif defined(__AVX2__)
  /* The same with 8 outputs a vector (GoogLeNet's stride-2 pools on a Zen 3 host, 2 threads: the scalar
   * windows cost 1.2 ms of a 24 ms forward). */
  int vec = s == 2 && k == 3 && pad <= 8 && p->pad_r <= 8;
  if (vec) {
    for (int ox = 0; ox < ow; ox += 8) {
      const float *b = v + ox * 2 - pad;
      __m256 lo = _mm256_loadu_ps(b), hi = _mm256_loadu_ps(b + 8);
      __m256 lo2 = _mm256_loadu_ps(b + 2), hi2 = _mm256_loadu_ps(b + 10);
      __m256 m = _mm256_max_ps(_mm256_max_ps(kern_simd_even8(lo, hi), kern_simd_odd8(lo, hi)),
                               kern_simd_even8(lo2, hi2));
      int n = ow - ox < 8 ? ow - ox : 8;
      kern_simd_store_n8(y + ox, m, n);
    }
  }
#endif
  for (int ox = 0; ox < ow; ox++) {
    if (ox == i0) ox = i1;
    if (ox >= ow) break;
    int x0, x1, nx;
    pool__span(ox, s, k, pad, p->pad_r, w, &x0, &x1, &nx);
    float m = x1 > x0 ? -FLT_MAX : 0.0f;
    for (int x = x0; x < x1; x++) m = v[x] > m ? v[x] : m;
    y[ox] = m;
  }
  if (s == 1) {
    const float *b = v + i0 - pad;
    for (int ox = i0; ox < i1; ox++) y[ox] = b[ox - i0];
    for (int kx = 1; kx < k; kx++)
      for (int ox = i0; ox < i1; ox++) y[ox] = b[ox - i0 + kx] > y[ox] ? b[ox - i0 + kx] : y[ox];
    return;
  }
  int ox = i0;
#if defined(__AVX512F__) || defined(__AVX2__)
  if (vec) return;
#endif
  for (; ox < i1; ox++) {
    const float *b = v + ox * s - pad;
    float m = b[0];
    for (int kx = 1; kx < k; kx++) m = b[kx] > m ? b[kx] : m;
    y[ox] = m;
  }
}

static void pool__max_plane(const pool_job_t *j, const float *x, float *y) {
  const kern_pool_t *p = j->p;
  float vbuf[POOL_MARGIN + POOL_ROW_MAX + POOL_MARGIN], *v = vbuf + POOL_MARGIN;
  for (int i = 0; i < POOL_MARGIN; i++) v[-1 - i] = v[j->w + i] = -FLT_MAX;
  for (int oy = 0; oy < j->oh; oy++, y += j->ow) {
    int y0, y1, ny;
    pool__span(oy, p->stride_h, p->kh, p->pad_t, p->pad_b, j->h, &y0, &y1, &ny);
    if (y1 <= y0) {
      for (int ox = 0; ox < j->ow; ox++) y[ox] = 0.0f;
      continue;
    }
    const float *r = x + (size_t)y0 * (size_t)j->w;
#if defined(__AVX512F__)
    /* Explicit vectors with a masked tail: rows of 7 to 28 columns would otherwise
     * spend more in the compiler's scalar remainder loop than in the maxima. */
    for (int xx = 0; xx < j->w; xx += 16) {
      int left = j->w - xx;
      __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
      __m512 m = _mm512_maskz_loadu_ps(mk, r + xx);
      for (int yy = y0 + 1; yy < y1; yy++)
        m = _mm512_max_ps(m, _mm512_maskz_loadu_ps(mk, x + (size_t)yy * (size_t)j->w + xx));
      _mm512_mask_storeu_ps(v + xx, mk, m);
    }
#else
    for (int xx = 0; xx < j->w; xx++) v[xx] = r[xx];
    for (int yy = y0 + 1; yy < y1; yy++) {
      r = x + (size_t)yy * (size_t)j->w;
      for (int xx = 0; xx < j->w; xx++) v[xx] = r[xx] > v[xx] ? r[xx] : v[xx];
    }
#endif
    pool__max_row(p, v, j->w, j->ow, y);
  }
}

/* 3x3 (left padding 0 or 1) or 2x2 (no left padding), stride 2, on rows exactly twice
 * as wide as the output's (w = 2 ow), any window height: GoogLeNet's four stride-2
 * pools (ceil mode; the last is 2x2) and ResNet's stem pool. Output row oy, column ox then starts at v[oy w + 2 ox - pad_l] in the plane of
 * column maxima v (oh rows of w), so the row pass runs over the whole plane as one flat
 * stride-2 sequence, 16 outputs a vector, whatever the width; only the window that
 * runs into the neighbouring row (the first with pad_l 1, the last with pad_l 0) is
 * redone afterwards. Row by row, the 7 and 14 wide outputs of the small maps spent
 * more on per-row set-up than on the maxima (GoogLeNet's maxpool4, one thread: 0.075
 * ms against ONNX Runtime's 0.009). */
enum { POOL_FLAT_MAX = 8192 };

static int pool__is_3x3s2_flat(const kern_pool_t *p, int w, int oh, int ow) {
#if defined(__AVX512F__)
  return p->stride_h == 2 && p->stride_w == 2 && w == 2 * ow &&
         ((p->kw == 3 && p->pad_l <= 1) || (p->kw == 2 && p->pad_l == 0)) &&
         (size_t)oh * (size_t)w <= POOL_FLAT_MAX;
#else
  (void)p, (void)w, (void)oh, (void)ow;
  return 0;
#endif
}

#if defined(__AVX512F__)
/* Rows of at most 15 (14x14 maps): each output row from its column maxima in one
 * register, permuted to the windows' three taps; lanes past the row, and the left
 * padding (lane -1, read as lane 15), hold -FLT_MAX, so no window needs fixing up and
 * nothing goes through memory between the passes (a store of the maxima reloaded
 * across vector boundaries stalls on store-to-load forwarding). */
static void pool__max_3x3s2_narrow(const pool_job_t *j, const float *x, float *y) {
  const kern_pool_t *p = j->p;
  int w = j->w, ow = j->ow, pl = p->pad_l;
  __mmask16 mk = (__mmask16)((1u << w) - 1), mo = (__mmask16)((1u << ow) - 1);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i i0 = _mm512_and_si512(_mm512_sub_epi32(_mm512_add_epi32(lane, lane), _mm512_set1_epi32(pl)),
                                _mm512_set1_epi32(15));
  __m512i i1 = _mm512_and_si512(_mm512_add_epi32(i0, _mm512_set1_epi32(1)), _mm512_set1_epi32(15));
  __m512i i2 = _mm512_and_si512(_mm512_add_epi32(i0, _mm512_set1_epi32(2)), _mm512_set1_epi32(15));
  const __m512 lowest = _mm512_set1_ps(-FLT_MAX);
  for (int oy = 0; oy < j->oh; oy++, y += ow) {
    int y0, y1, ny;
    pool__span(oy, p->stride_h, p->kh, p->pad_t, p->pad_b, j->h, &y0, &y1, &ny);
    if (y1 <= y0) {
      _mm512_mask_storeu_ps(y, mo, _mm512_setzero_ps());
      continue;
    }
    __m512 m = lowest;
    for (int yy = y0; yy < y1; yy++)
      m = _mm512_max_ps(m, _mm512_mask_loadu_ps(lowest, mk, x + (size_t)yy * (size_t)w));
    __m512 r = _mm512_max_ps(_mm512_permutexvar_ps(i0, m), _mm512_permutexvar_ps(i1, m));
    if (p->kw == 3) r = _mm512_max_ps(r, _mm512_permutexvar_ps(i2, m));
    _mm512_mask_storeu_ps(y, mo, r);
  }
}

/* Output rows [oy0, oy1) of one plane (x, y: the plane's first input and output row);
 * v holds the column maxima of those rows only. */
static void pool__max_3x3s2_flat(const pool_job_t *j, const float *x, float *y, int oy0,
                                 int oy1) {
  const kern_pool_t *p = j->p;
  int w = j->w, ow = j->ow, pl = p->pad_l;
  if (w <= 15) {
    pool__max_3x3s2_narrow(j, x, y);
    return;
  }
  float vbuf[POOL_MARGIN + POOL_FLAT_MAX + POOL_MARGIN], *v = vbuf + POOL_MARGIN;
  size_t nv = (size_t)(oy1 - oy0) * (size_t)w, ny = (size_t)(oy1 - oy0) * (size_t)ow;
  for (int i = 0; i < POOL_MARGIN; i++) v[-1 - i] = v[nv + (size_t)i] = -FLT_MAX;
  y += (size_t)oy0 * (size_t)ow;
  for (int oy = oy0; oy < oy1; oy++) { /* column maxima over each output row's window */
    int y0, y1, ny_;
    pool__span(oy, p->stride_h, p->kh, p->pad_t, p->pad_b, j->h, &y0, &y1, &ny_);
    float *vr = v + (size_t)(oy - oy0) * (size_t)w;
    for (int xx = 0; xx < w; xx += 16) {
      int left = w - xx;
      __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
      __m512 m = _mm512_set1_ps(-FLT_MAX);
      for (int yy = y0; yy < y1; yy++)
        m = _mm512_max_ps(m, _mm512_maskz_loadu_ps(mk, x + (size_t)yy * (size_t)w + xx));
      _mm512_mask_storeu_ps(vr + xx, mk, m);
    }
  }
  for (size_t o = 0; o < ny; o += 16) { /* the row pass, flat */
    const float *b = v + 2 * o - (size_t)pl;
    __m512 lo = _mm512_loadu_ps(b), hi = _mm512_loadu_ps(b + 16);
    __m512 lo2 = _mm512_loadu_ps(b + 2), hi2 = _mm512_loadu_ps(b + 18);
    __m512 m = _mm512_max_ps(kern_simd_even(lo, hi), kern_simd_odd(lo, hi));
    if (p->kw == 3) m = _mm512_max_ps(m, kern_simd_even(lo2, hi2));
    size_t n = ny - o < 16 ? ny - o : 16;
    _mm512_mask_storeu_ps(y + o, (__mmask16)((1u << n) - 1), m);
  }
  for (int oy = oy0; oy < oy1; oy++) { /* windows that ran into the next or previous row */
    const float *vr = v + (size_t)(oy - oy0) * (size_t)w;
    float *yr = y + (size_t)(oy - oy0) * (size_t)ow;
    if (p->kw == 3 && pl == 1) /* 2x2 windows never leave their row */
      yr[0] = vr[0] > vr[1] ? vr[0] : vr[1];
    else if (p->kw == 3)
      yr[ow - 1] = vr[w - 2] > vr[w - 1] ? vr[w - 2] : vr[w - 1];
    int y0, y1, ny_;
    pool__span(oy, p->stride_h, p->kh, p->pad_t, p->pad_b, j->h, &y0, &y1, &ny_);
    if (y1 <= y0)
      for (int ox = 0; ox < ow; ox++) yr[ox] = 0.0f;
  }
}
#endif

/* 3x3, stride 1, padding 1 on every side (GoogLeNet's inception branches): the
 * output has the input's size, and both passes run over the whole plane as flat,
 * vectorizable loops (a row-by-row pass spends more on loop overhead than on the
 * maxima at 7 to 28 columns); columns 0 and w-1 are fixed up afterwards. The
 * intermediate plane lives on the stack, so planes up to POOL_PLANE_MAX only. */
enum { POOL_PLANE_MAX = 4096 };

static int pool__is_3x3_same(const kern_pool_t *p, int h, int w, int oh, int ow) {
  return p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->pad_t == 1 &&
         p->pad_l == 1 && p->pad_b == 1 && p->pad_r == 1 && oh == h && ow == w && h >= 2 &&
         w >= 2 && (size_t)h * (size_t)w <= POOL_PLANE_MAX;
}

static inline float pool__max2(float a, float b) { return a > b ? a : b; }

static void pool__max_3x3_same(const float *x, int h, int w, float *y) {
  float v[POOL_PLANE_MAX];
  size_t n = (size_t)h * (size_t)w, uw = (size_t)w;
  for (size_t i = 0; i < uw; i++) v[i] = pool__max2(x[i], x[i + uw]);
  for (size_t i = uw; i < n - uw; i++) v[i] = pool__max2(pool__max2(x[i - uw], x[i]), x[i + uw]);
  for (size_t i = n - uw; i < n; i++) v[i] = pool__max2(x[i - uw], x[i]);
  for (size_t i = 1; i + 1 < n; i++) y[i] = pool__max2(pool__max2(v[i - 1], v[i]), v[i + 1]);
  for (size_t r = 0; r < n; r += uw) {
    y[r] = pool__max2(v[r], v[r + 1]);
    y[r + uw - 1] = pool__max2(v[r + uw - 2], v[r + uw - 1]);
  }
}

/* One image's flat 3x3/2 pool onto at least POOL_BAND_MIN_OUT outputs a plane (the
 * 112x112 -> 56x56 pools after ResNet's and GoogLeNet's stems) is split into bands of
 * output rows, every plane each, not into planes: the stem conv splits its output by
 * columns, each thread the same range in every layer (kern_conv.c, kern_claim.h), so a
 * thread's band is the part of every plane it wrote itself, where a plane split read
 * half of each plane from the other core. ResNet-50 batch 1 on 2 threads (session 27,
 * Zen 5), the MaxPool node's fastest / median over alternating runs, plane split ->
 * bands: with the vCPUs far apart (a cache line's round trip ~420 ns) 0.135-0.154 /
 * 0.202-0.242 -> 0.109-0.111 / 0.156-0.167 ms; close together 0.079-0.086 / 0.111-0.129
 * -> 0.074-0.082 / 0.090-0.108. Smaller planes keep the plane split: with every flat
 * pool banded, GoogLeNet's pools (bands on 28x28 and 14x14 outputs doubled the per-plane
 * set-up) went 0.63-0.65 / 0.72-0.73 -> 0.66-0.69 / 0.78-0.80 ms. With the bands'
 * prefetch (below), GoogLeNet's maxpool2 (56x56 -> 28x28, 192 planes, after conv3's
 * tile split, which also writes each thread a band of rows) gains from bands too: its
 * fastest / median over 5 alternating rounds (session 29, Zen 5, 2 threads)
 * 0.104-0.109 / 0.117-0.128 -> 0.087-0.088 / 0.098-0.101 ms; the 1x1 convs reading
 * its output unchanged (0.050-0.054 ms). So the threshold is a 28x28 output. */
enum { POOL_BAND_MIN_OUT = 28 * 28 };

static int pool__banded(const pool_job_t *j, int nt) {
#if defined(__AVX512F__)
  return nt > 1 && j->n == 1 && !j->avg && j->w > 15 && j->oh >= 2 * nt &&
         (size_t)j->oh * (size_t)j->ow >= POOL_BAND_MIN_OUT &&
         pool__is_3x3s2_flat(j->p, j->w, j->oh, j->ow);
#else
  (void)j, (void)nt;
  return 0;
#endif
}

static void pool__bands(void *arg, int tid, int nt) {
#if defined(__AVX512F__)
  const pool_job_t *j = arg;
  size_t r0, r1, in_plane = (size_t)j->h * j->w, out_plane = (size_t)j->oh * j->ow;
  pool_split((size_t)j->oh, tid, nt, &r0, &r1);
  /* The band's input rows, clipped to the plane. The next plane's are prefetched before
   * this one is pooled: planes lie a whole map apart, which the hardware prefetcher does
   * not follow. Session 28 (Zen 5), alternating: ResNet-50's pool fastest / median
   * 0.092-0.113 / 0.110-0.129 -> 0.078-0.085 / 0.096-0.103 ms, GoogLeNet's maxpool1
   * medians 0.18-0.20 -> 0.12-0.13 ms. */
  const kern_pool_t *p = j->p;
  long y0 = (long)r0 * p->stride_h - p->pad_t;
  long y1 = (long)(r1 - 1) * p->stride_h - p->pad_t + p->kh;
  if (y0 < 0) y0 = 0;
  if (y1 > j->h) y1 = j->h;
  size_t pf0 = (size_t)y0 * (size_t)j->w, pf1 = (size_t)y1 * (size_t)j->w;
  for (size_t i = 0; i < j->planes && r0 < r1; i++) {
    const float *next = j->in + (i + 1) * in_plane;
    for (size_t q = pf0; i + 1 < j->planes && q < pf1; q += 16)
      _mm_prefetch((const char *)(next + q), _MM_HINT_T0);
    pool__max_3x3s2_flat(j, j->in + i * in_plane, j->out + i * out_plane, (int)r0, (int)r1);
  }
#else
  (void)arg, (void)tid, (void)nt;
#endif
}

static void pool__task(void *arg, int tid, int nt) {
  const pool_job_t *j = arg;
  size_t b, e, in_plane = (size_t)j->h * j->w, out_plane = (size_t)j->oh * j->ow;
  pool_split(j->planes, tid, nt, &b, &e);
  int separable = !j->avg && j->w <= POOL_ROW_MAX;
  int same3 = !j->avg && pool__is_3x3_same(j->p, j->h, j->w, j->oh, j->ow);
  int flat = !j->avg && pool__is_3x3s2_flat(j->p, j->w, j->oh, j->ow); /* 0 without AVX-512 */
  (void)flat;
  for (size_t i = b; i < e; i++) {
    if (same3)
      pool__max_3x3_same(j->in + i * in_plane, j->h, j->w, j->out + i * out_plane);
#if defined(__AVX512F__)
    else if (flat)
      pool__max_3x3s2_flat(j, j->in + i * in_plane, j->out + i * out_plane, 0, j->oh);
#endif
    else if (separable)
      pool__max_plane(j, j->in + i * in_plane, j->out + i * out_plane);
    else
      pool__plane(j, j->in + i * in_plane, j->out + i * out_plane);
  }
}

static void pool__run(const kern_ctx_t *kc, const kern_pool_t *p, const float *in, int n,
                      int c, int h, int w, float *out, int oh, int ow, int avg) {
  pool_job_t j = {p, in, out, h, w, oh, ow, (size_t)n * (size_t)c, n, avg};
  pool_run(kc->pool, pool__banded(&j, kern_threads(kc)) ? pool__bands : pool__task, &j);
}

void kern_maxpool2d(const kern_ctx_t *kc, const kern_pool_t *p, const float *in, int n, int c,
                    int h, int w, float *out, int oh, int ow) {
  pool__run(kc, p, in, n, c, h, w, out, oh, ow, 0);
}

void kern_avgpool2d(const kern_ctx_t *kc, const kern_pool_t *p, const float *in, int n, int c,
                    int h, int w, float *out, int oh, int ow) {
  pool__run(kc, p, in, n, c, h, w, out, oh, ow, 1);
}

typedef struct {
  const float *in;
  float *out;
  size_t planes, hw;
} gap_job_t;

static void gap__task(void *arg, int tid, int nt) {
  const gap_job_t *j = arg;
  size_t b, e;
  pool_split(j->planes, tid, nt, &b, &e);
  for (size_t i = b; i < e; i++) {
    const float *x = j->in + i * j->hw;
    float s = 0.0f;
    for (size_t k = 0; k < j->hw; k++) s += x[k];
    j->out[i] = j->hw ? s / (float)j->hw : 0.0f;
  }
}

void kern_global_avgpool(const kern_ctx_t *kc, const float *in, int n, int c, size_t hw,
                         float *out) {
  gap_job_t j = {in, out, (size_t)n * (size_t)c, hw};
  pool_run(kc->pool, gap__task, &j);
}
