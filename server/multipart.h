/*
 * multipart.h — pick the image out of a multipart/form-data upload.
 *
 * Wraps libmicrohttpd's post processor. The chosen part is the one named
 * "image" or "data", else the first part that has a filename; its bytes are
 * appended to a buffer capped at `limit` bytes (the body limit). Other parts
 * are skipped without being stored.
 */
#ifndef CLASSIFYD_MULTIPART_H
#define CLASSIFYD_MULTIPART_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  struct MHD_PostProcessor *pp;
  uint8_t *buf;
  size_t len, cap, limit;
  int rank;       /* 0 none, 1 first file part, 2 named image/data */
  int collecting; /* the current part is the chosen one */
  char cur_key[32];
  int oom;
} multipart_t;

/* 0; -1 when the request is not multipart/form-data; -2 when it is but MHD cannot
 * parse it (no usable boundary: MHD refuses e.g. a missing or one-character boundary),
 * which the caller must answer as a malformed upload, not read as a raw image. */
int multipart_init(multipart_t *mp, struct MHD_Connection *c, size_t limit);
int multipart_feed(multipart_t *mp, const char *data, size_t len); /* 0 or -1 */
void multipart_deinit(multipart_t *mp);
/* Takes the chosen part's bytes (caller frees); NULL/0 when there was none. */
uint8_t *multipart_take(multipart_t *mp, size_t *len);

#endif
