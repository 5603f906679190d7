/*
 * fuzz_multipart.c — libFuzzer target for multipart/form-data uploads (multipart.c over
 * MHD's post processor, then the chosen part through sniffing, decoding and inference).
 *
 * Input: a boundary line (up to 70 bytes before the first '\n') and the body. The
 * request around them is well formed (POST /classify, the Content-Type with that
 * boundary, the exact Content-Length), so every execution reaches the part parser;
 * the first byte of the boundary line, when it is '"', asks for a quoted boundary.
 * Sent to the in-process server of tests/fuzz/lib/fuzz_http.c; the answer is checked
 * (fuzz_http_check): a malformed body must give a JSON 400/415, never a crash or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char resp[65536];
  if (size > 200000) return 0;
  fuzz_http_t *h = fuzz_http_start(NULL, 0);
  const uint8_t *nl = memchr(data, '\n', size < 71 ? size : 71);
  size_t blen = nl ? (size_t)(nl - data) : 0;
  const uint8_t *body = nl ? nl + 1 : data;
  size_t body_len = size - (size_t)(body - data);
  char boundary[80];
  memcpy(boundary, data, blen);
  boundary[blen] = '\0';
  for (size_t i = 0; i < blen; i++) /* a header value cannot hold CR/LF/NUL */
    if (boundary[i] == '\r' || boundary[i] == '\0') boundary[i] = '_';
  char head[256];
  int quoted = blen > 0 && boundary[0] == '"'; /* boundary="..." */
  int n = snprintf(head, sizeof(head),
                   "POST /classify HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
                   "Content-Type: multipart/form-data; boundary=%s%s\r\nContent-Length: %zu\r\n\r\n",
                   boundary, quoted ? "\"" : "", body_len);
  char *req = malloc((size_t)n + body_len);
  if (!req) return 0;
  memcpy(req, head, (size_t)n);
  memcpy(req + n, body, body_len);
  size_t got = fuzz_http_exchange(h, req, (size_t)n + body_len, resp, sizeof(resp), 0);
  free(req);
  fuzz_http_check(resp, got, sizeof(resp), 5);
  if (got) {
    int st = fuzz_http_status(resp, got);
    if (st != 200 && st != 400 && st != 413 && st != 415 && st != 422 && st != 503) {
      fprintf(stderr, "fuzz_multipart: status %d for an upload\n", st);
      abort();
    }
  }
  return 0;
}
