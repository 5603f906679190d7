/*
 * web.h — the browser page: GET / and GET /static/NAME, served from files
 * embedded in the binary at build time (web/ -> build/gen/web_assets.h by
 * scripts/embed_web.sh). The assets are static, read-only data.
 */
#ifndef CLASSIFYD_WEB_H
#define CLASSIFYD_WEB_H

#include <stddef.h>

#include "http.h"

typedef struct {
  const char *name;    /* file name in web/, e.g. "app.js" */
  const char *ctype;   /* Content-Type */
  const char *etag;    /* quoted strong ETag */
  const char *version; /* content hash: /static/NAME?v=VERSION is immutable */
  const unsigned char *data;
  size_t len;
} web_asset_t;

/* The Content-Security-Policy of the page (no inline code, same origin only). */
extern const char web_csp[];

/* "/" -> index.html, "/static/NAME" -> NAME; NULL for any other path. */
const web_asset_t *web_find(const char *path);
/* 1 when an If-None-Match header value names etag (a list, W/ tags or "*"). */
int web_etag_match(const char *if_none_match, const char *etag);
/* Answers GET/HEAD of asset a (from web_find): 200, or 304 when If-None-Match
 * names its ETag, with caching and security headers. */
enum MHD_Result web_serve(req_t *r, const web_asset_t *a);

#endif
