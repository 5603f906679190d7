/*
 * web.c — serves the embedded page (web/index.html and /static/ assets).
 *
 * The files are compiled in (build/gen/web_assets.h), so the daemon needs no
 * document root and a page can never be out of step with its binary. Caching:
 * "/" is revalidated on every load (no-cache + ETag, 304 when unchanged); it
 * links its assets as /static/NAME?v=HASH, and a request carrying the current
 * hash is immutable for a year; without it (or with a stale hash) the asset is
 * revalidated like the page. Every answer carries a strict CSP and nosniff.
 * Responses point at the static arrays (MHD_RESPMEM_PERSISTENT): no copies.
 */
#include "web.h"

#include <string.h>

#include "web_assets.h"

#define STATIC_PREFIX "/static/"
#define WEB_IMMUTABLE "public, max-age=31536000, immutable"
#define WEB_REVALIDATE "no-cache"

const char web_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                       "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; "
                       "form-action 'none'; frame-ancestors 'none'";

const web_asset_t *web_find(const char *path) {
  const char *name;
  size_t pl = strlen(STATIC_PREFIX);
  if (strcmp(path, "/") == 0)
    name = "index.html";
  else if (strncmp(path, STATIC_PREFIX, pl) == 0)
    name = path + pl;
  else
    return NULL;
  for (size_t i = 0; i < sizeof(web_assets) / sizeof(web_assets[0]); i++)
    if (strcmp(name, web_assets[i].name) == 0) return &web_assets[i];
  return NULL;
}

int web_etag_match(const char *inm, const char *etag) {
  size_t el = strlen(etag);
  const char *p = inm;
  while (p && *p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (*p == '*') return 1;
    if (strncmp(p, "W/", 2) == 0) p += 2; /* If-None-Match compares weakly */
    size_t n = strcspn(p, ",");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (n == el && n > 0 && strncmp(p, etag, n) == 0) return 1;
    p += strcspn(p, ",");
  }
  return 0;
}

static void web_headers(struct MHD_Response *resp, const web_asset_t *a, const char *cache) {
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->ctype);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
  MHD_add_response_header(resp, "Content-Security-Policy", web_csp);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
}

enum MHD_Result web_serve(req_t *r, const web_asset_t *a) {
  const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "v");
  int versioned = strcmp(a->name, "index.html") != 0 && v && strcmp(v, a->version) == 0;
  const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_IF_NONE_MATCH);
  int unchanged = inm && web_etag_match(inm, a->etag);
  struct MHD_Response *resp =
      unchanged ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
                : MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  web_headers(resp, a, versioned ? WEB_IMMUTABLE : WEB_REVALIDATE);
  int status = unchanged ? 304 : 200;
  enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  r->status = status;
  r->bytes_out = unchanged ? 0 : a->len;
  r->state = RS_ANSWERED;
  return rc;
}
