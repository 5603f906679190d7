/*
 * topk.c — the k best classes of one score row, with softmax probabilities.
 *
 * Softmax is computed in double with the row maximum subtracted (no overflow); NaN
 * scores rank last. Selection keeps a sorted list of k by insertion, O(n*k) at
 * worst, which for ImageNet's 1000 classes and k <= 1000 is microseconds.
 */
#include <math.h>

#include "cnn.h"

static double score_of(float x) { return isnan(x) ? -INFINITY : (double)x; }

int cnn_topk(const float *scores, int n, int k, int already_probabilities, int *idx,
             float *prob) {
  if (n < 1) return 0;
  if (k < 1) k = 1;
  if (k > n) k = n;
  double mx = -INFINITY, sum = 0.0;
  for (int i = 0; i < n; i++) mx = fmax(mx, score_of(scores[i]));
  if (!already_probabilities && isfinite(mx))
    for (int i = 0; i < n; i++) sum += exp(score_of(scores[i]) - mx);
  int have = 0;
  for (int i = 0; i < n; i++) {
    double s = score_of(scores[i]);
    if (have == k && !(s > score_of(scores[idx[k - 1]]))) continue;
    int j = have < k ? have++ : k - 1;
    while (j > 0 && s > score_of(scores[idx[j - 1]])) {
      idx[j] = idx[j - 1];
      j--;
    }
    idx[j] = i;
  }
  for (int j = 0; j < k; j++) {
    double s = score_of(scores[idx[j]]);
    if (already_probabilities) prob[j] = (float)(isfinite(s) ? s : 0.0);
    else prob[j] = (float)(sum > 0 && isfinite(mx) ? exp(s - mx) / sum : 0.0);
  }
  return k;
}
