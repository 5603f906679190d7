/*
 * fuzz_query.c — libFuzzer target for the request target of a classify call: routing
 * (router_match on the raw path, /models/NAME/classify) and the query parameters
 * (?model= selection, strict top_k 1..1000, MHD's percent-decoding before them).
 *
 * Input: the request target (up to the first CR/LF/space/NUL; "/classify?" is put in
 * front when it does not start with '/'). router_match() runs on it directly; then a
 * well-formed POST with a valid 9x9 PNG goes to the in-process server
 * (tests/fuzz/lib/fuzz_http.c). The answer is checked (fuzz_http_check); a 200 must
 * come from /classify or /models/{tiny,bgr}/classify, and for the plain form
 * /classify?top_k=DIGITS an independent oracle says which status and how many
 * predictions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http.h"
#include "handlers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A 2x2 RGB PNG (PIL). */
static const uint8_t png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd,
    0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x16, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x3c,
    0x21, 0x17, 0xc5, 0xc0, 0xc0, 0xc0, 0xc4, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x00, 0x00, 0x0f,
    0x98, 0x01, 0x44, 0xe2, 0x49, 0xc0, 0x26, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82};

static void check_router(const char *target) {
  req_t r;
  char name[CONFIG_NAME_MAX + 2];
  memset(&r, 0, sizeof(r));
  char path[4096];
  snprintf(path, sizeof(path), "%.*s", (int)strcspn(target, "?"), target);
  router_match(&r, path, name, sizeof(name));
  if (strlen(name) >= sizeof(name)) abort();
  if (name[0] && r.route != ROUTE_CLASSIFY) abort(); /* a model name only from that route */
  if (r.route == ROUTE_CLASSIFY && !router_method_ok(r.route, "POST")) abort();
}

/* Oracle for the plain form "/classify?top_k=DIGITS": top_k is valid with 1 to 4
 * digits and a value in 1..1000; then the answer has min(top_k, 5) predictions.
 * Returns the expected prediction count, 0 for "must be 400", -1 for other targets. */
static int expected_k(const char *target) {
  static const char prefix[] = "/classify?top_k=";
  if (strncmp(target, prefix, sizeof(prefix) - 1) != 0) return -1;
  const char *d = target + sizeof(prefix) - 1;
  size_t nd = strspn(d, "0123456789");
  if (d[nd] != '\0') return -1;
  if (nd < 1 || nd > 4) return 0;
  int v = atoi(d);
  return v >= 1 && v <= 1000 ? (v < 5 ? v : 5) : 0;
}

static int count_predictions(const char *resp) {
  int n = 0;
  for (const char *p = resp; (p = strstr(p, "\"index\":")) != NULL; p++) n++;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char resp[65536];
  if (size > 2000) return 0;
  char target[2048 + 16];
  size_t n = 0, off = 0;
  if (size == 0 || data[0] != '/') off = (size_t)snprintf(target, sizeof(target), "/classify?");
  while (n < size && data[n] != '\r' && data[n] != '\n' && data[n] != ' ' && data[n] != '\0') n++;
  memcpy(target + off, data, n);
  target[off + n] = '\0';
  check_router(target);
  fuzz_http_t *h = fuzz_http_start(NULL, 0);
  char req[4096 + sizeof(png)];
  int hl = snprintf(req, sizeof(req),
                    "POST %s HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Type: image/png\r\n"
                    "Content-Length: %zu\r\n\r\n", target, sizeof(png));
  memcpy(req + hl, png, sizeof(png));
  size_t got = fuzz_http_exchange(h, req, (size_t)hl + sizeof(png), resp, sizeof(resp), 0);
  fuzz_http_check(resp, got, sizeof(resp), 5);
  int st = got ? fuzz_http_status(resp, got) : 0;
  if (st == 200 && strncmp(target, "/classify", 9) != 0 &&
      strncmp(target, "/models/tiny/classify", 21) != 0 &&
      strncmp(target, "/models/bgr/classify", 20) != 0) {
    fprintf(stderr, "fuzz_query: 200 for '%s'\n", target);
    abort();
  }
  int want = expected_k(target);
  if (want >= 0 && got && (want == 0 ? st != 400 : st != 200 || count_predictions(resp) != want)) {
    fprintf(stderr, "fuzz_query: '%s' answered %d, expected %s (%d predictions)\n", target, st,
            want ? "200" : "400", want);
    abort();
  }
  return 0;
}
