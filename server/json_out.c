/*
 * json_out.c — growable output buffer used for JSON answers, metrics and log lines.
 *
 * Design: append-only, doubling growth, sticky failure flag (see json_out.h), so
 * building an answer never needs an error check per call. Strings are escaped
 * per RFC 8259; bytes that are not valid UTF-8 are replaced by U+FFFD so that
 * hostile input (paths, labels files) can never produce invalid JSON.
 */
#include "json_out.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jout_init(jout_t *j) { memset(j, 0, sizeof(*j)); }

void jout_free(jout_t *j) {
  free(j->buf);
  jout_init(j);
}

int jout_failed(const jout_t *j) { return j->failed; }

char *jout_take(jout_t *j, size_t *len) {
  char *b = j->failed ? NULL : j->buf;
  if (j->failed) free(j->buf);
  if (len) *len = b ? j->len : 0;
  jout_init(j);
  return b;
}

static int jout_reserve(jout_t *j, size_t extra) {
  if (j->failed) return -1;
  if (j->len + extra + 1 <= j->cap) return 0;
  size_t cap = j->cap ? j->cap : 256;
  while (cap < j->len + extra + 1) {
    if (cap > SIZE_MAX / 2) goto fail;
    cap *= 2;
  }
  char *nb = realloc(j->buf, cap);
  if (!nb) goto fail;
  j->buf = nb;
  j->cap = cap;
  return 0;
fail:
  j->failed = 1;
  return -1;
}

void jout_putn(jout_t *j, const char *s, size_t n) {
  if (jout_reserve(j, n) < 0) return;
  memcpy(j->buf + j->len, s, n);
  j->len += n;
  j->buf[j->len] = '\0';
}

void jout_puts(jout_t *j, const char *s) { jout_putn(j, s, strlen(s)); }

void jout_printf(jout_t *j, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) {
    j->failed = 1;
    return;
  }
  if ((size_t)n < sizeof(small)) {
    jout_putn(j, small, (size_t)n);
    return;
  }
  if (jout_reserve(j, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(j->buf + j->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  j->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  uint32_t min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) len = 2, min = 0x80;
  else if ((c & 0xF0) == 0xE0) len = 3, min = 0x800;
  else if ((c & 0xF8) == 0xF0) len = 4, min = 0x10000;
  else return 0;
  if (len > n) return 0;
  uint32_t cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void jout_strn(jout_t *j, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  jout_putn(j, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t run = utf8_seq(s + i, n - i);
    if (run == 0) {
      jout_puts(j, "\\ufffd");
      i++;
    } else if (c == '"' || c == '\\') {
      jout_putn(j, "\\", 1);
      jout_putn(j, (const char *)s + i, 1);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      jout_printf(j, "\\u%04x", c);
      i++;
    } else {
      jout_putn(j, (const char *)s + i, run);
      i += run;
    }
  }
  jout_putn(j, "\"", 1);
}

void jout_str(jout_t *j, const char *s) { jout_strn(j, s ? s : "", s ? strlen(s) : 0); }

void jout_num(jout_t *j, double v, int digits) {
  if (!isfinite(v)) {
    jout_puts(j, "null");
    return;
  }
  jout_printf(j, "%.*g", digits, v);
}
