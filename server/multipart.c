/*
 * multipart.c — image part selection over MHD's post processor (see multipart.h).
 *
 * Design: MHD's parser handles boundaries and headers incrementally with a
 * fixed buffer; we only decide, at the start of each part (offset 0), whether
 * it outranks the part kept so far (named image/data > first file part), and
 * append the chosen part's bytes. The buffer grows by doubling and never past
 * `limit`, so a hostile body costs at most `limit` bytes of memory.
 */
#include "multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PP_BUFFER 16384

static int part_rank(const char *key, const char *filename) {
  if (key && (!strcmp(key, "image") || !strcmp(key, "data"))) return 2;
  return filename ? 1 : 0;
}

static int append(multipart_t *mp, const char *data, size_t size) {
  if (size > mp->limit - mp->len) return -1;
  if (mp->len + size > mp->cap) {
    size_t cap = mp->cap ? mp->cap : 65536;
    while (cap < mp->len + size) cap *= 2;
    if (cap > mp->limit) cap = mp->limit;
    uint8_t *nb = realloc(mp->buf, cap);
    if (!nb) {
      mp->oom = 1;
      return -1;
    }
    mp->buf = nb;
    mp->cap = cap;
  }
  memcpy(mp->buf + mp->len, data, size);
  mp->len += size;
  return 0;
}

static enum MHD_Result iterate(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
  multipart_t *mp = cls;
  int new_part = off == 0 || !key || strncmp(key, mp->cur_key, sizeof(mp->cur_key) - 1) != 0;
  if (new_part) {
    snprintf(mp->cur_key, sizeof(mp->cur_key), "%s", key ? key : "");
    int rank = part_rank(key, filename);
    mp->collecting = rank > mp->rank;
    if (mp->collecting) {
      mp->rank = rank;
      mp->len = 0;
    }
  }
  if (!mp->collecting || size == 0) return MHD_YES;
  return append(mp, data, size) < 0 ? MHD_NO : MHD_YES;
}

int multipart_init(multipart_t *mp, struct MHD_Connection *c, size_t limit) {
  memset(mp, 0, sizeof(*mp));
  mp->limit = limit;
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) return -1;
  mp->pp = MHD_create_post_processor(c, PP_BUFFER, iterate, mp);
  return mp->pp ? 0 : -2;
}

int multipart_feed(multipart_t *mp, const char *data, size_t len) {
  return MHD_post_process(mp->pp, data, len) == MHD_YES ? 0 : -1;
}

void multipart_deinit(multipart_t *mp) {
  if (mp->pp) (void)MHD_destroy_post_processor(mp->pp);
  free(mp->buf);
  memset(mp, 0, sizeof(*mp));
}

uint8_t *multipart_take(multipart_t *mp, size_t *len) {
  uint8_t *b = mp->rank ? mp->buf : NULL;
  *len = b ? mp->len : 0;
  if (b) mp->buf = NULL, mp->len = mp->cap = 0;
  return b;
}
