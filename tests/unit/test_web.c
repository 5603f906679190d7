/*
 * test_web.c — unit tests of the embedded page (server/web.c): path lookup,
 * the embedded bytes against web/ on disk, versioned links in index.html and
 * If-None-Match matching. The HTTP side (headers, 304, CSP) is covered by
 * tests/browser/test_page.js against a running daemon.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/web.c"

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  cr_assert(b);
  cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  b[n] = '\0';
  *len = (size_t)n;
  return b;
}

Test(web, find_maps_paths_to_assets) {
  cr_assert_str_eq(web_find("/")->name, "index.html");
  cr_assert_str_eq(web_find("/static/app.js")->name, "app.js");
  cr_assert_str_eq(web_find("/static/app.css")->name, "app.css");
  cr_assert_str_eq(web_find("/static/app.js")->ctype, "text/javascript; charset=utf-8");
  cr_assert_str_eq(web_find("/")->ctype, "text/html; charset=utf-8");
  cr_assert_null(web_find("/index.html"));
  cr_assert_null(web_find("/static/"));
  cr_assert_null(web_find("/static/../app.js"));
  cr_assert_null(web_find("/static/app.js/"));
  cr_assert_null(web_find("/staticapp.js"));
  cr_assert_null(web_find("//"));
  cr_assert_null(web_find(""));
}

Test(web, embedded_assets_equal_the_files) {
  for (size_t i = 0; i < sizeof(web_assets) / sizeof(web_assets[0]); i++) {
    const web_asset_t *a = &web_assets[i];
    char path[256];
    snprintf(path, sizeof(path), "web/%s", a->name);
    size_t len;
    unsigned char *b = slurp(path, &len);
    if (strcmp(a->name, "index.html") != 0) {
      cr_assert_eq(a->len, len, "%s", a->name);
      cr_assert(memcmp(a->data, b, len) == 0, "%s differs from the embedded copy", a->name);
    }
    cr_assert_eq(strlen(a->version), 16);
    cr_assert_eq(strlen(a->etag), 18);
    cr_assert(a->etag[0] == '"' && a->etag[17] == '"' && !strncmp(a->etag + 1, a->version, 16));
    free(b);
  }
}

Test(web, index_links_assets_by_current_version) {
  const web_asset_t *page = web_find("/");
  char *html = strndup((const char *)page->data, page->len);
  cr_assert(html);
  cr_assert_null(strstr(html, "{{v:"), "a version placeholder was left in index.html");
  const char *names[] = {"app.js", "app.css", "favicon.svg"};
  for (size_t i = 0; i < 3; i++) {
    char path[64], want[128];
    snprintf(path, sizeof(path), "/static/%s", names[i]);
    const web_asset_t *a = web_find(path);
    cr_assert_not_null(a, "%s is not embedded", names[i]);
    snprintf(want, sizeof(want), "%s?v=%s\"", path, a->version);
    cr_assert_not_null(strstr(html, want), "index.html does not link %s", want);
  }
  free(html);
}

Test(web, if_none_match) {
  const char *e = "\"0123456789abcdef\"";
  cr_assert(web_etag_match("\"0123456789abcdef\"", e));
  cr_assert(web_etag_match("W/\"0123456789abcdef\"", e));
  cr_assert(web_etag_match("\"x\", \"0123456789abcdef\"", e));
  cr_assert(web_etag_match("\"x\",W/\"0123456789abcdef\" ", e));
  cr_assert(web_etag_match("*", e));
  cr_assert_not(web_etag_match("", e));
  cr_assert_not(web_etag_match("\"0123456789abcde\"", e));
  cr_assert_not(web_etag_match("\"0123456789abcdef0\"", e));
  cr_assert_not(web_etag_match("0123456789abcdef", e));
  cr_assert_not(web_etag_match(",,, ,", e));
  cr_assert_not(web_etag_match("W/", e));
}
