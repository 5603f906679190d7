/*
 * fuzz_request.c — libFuzzer target for the daemon's request path, raw bytes to
 * answer: the input is sent as is on a fresh connection to the in-process server of
 * tests/fuzz/lib/fuzz_http.c (MHD's parser, routing, parameters, CORS, uploads raw
 * and multipart, the pipeline, decoding, inference of a tiny model, the JSON answer).
 * Every answer is checked against the daemon's promises (fuzz_http_check). Seeds are
 * complete requests for every endpoint (tests/fuzz/corpus/fuzz_request).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const flags[] = {"--cors-origins", "http://ok.example, https://b.example"};
  static char resp[65536];
  if (size > 200000) return 0;
  fuzz_http_t *h = fuzz_http_start(flags, 2);
  size_t n = fuzz_http_exchange(h, data, size, resp, sizeof(resp), 1);
  fuzz_http_check(resp, n, sizeof(resp), 5); /* tiny has 5 classes: top_k is clamped to them */
  return 0;
}
