/*
 * json_out.h — a growable output buffer with JSON and text helpers.
 *
 * A jout_t starts empty (zero-initialised or jout_init) and grows by doubling;
 * once an append fails for lack of memory the buffer is marked failed and every
 * later append is a no-op, so callers check jout_failed() once at the end.
 * The caller owns buf and frees it with jout_free (or takes it with jout_take).
 */
#ifndef CLASSIFYD_JSON_OUT_H
#define CLASSIFYD_JSON_OUT_H

#include <stddef.h>

typedef struct {
  char *buf;
  size_t len, cap;
  int failed;
} jout_t;

void jout_init(jout_t *j);
void jout_free(jout_t *j);
char *jout_take(jout_t *j, size_t *len); /* caller frees; NULL if failed */
int jout_failed(const jout_t *j);
void jout_puts(jout_t *j, const char *s);
void jout_putn(jout_t *j, const char *s, size_t n);
void jout_printf(jout_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal with quotes; invalid UTF-8 bytes become U+FFFD. */
void jout_str(jout_t *j, const char *s);
void jout_strn(jout_t *j, const char *s, size_t n);
/* A finite double with up to `digits` significant digits (null if not finite). */
void jout_num(jout_t *j, double v, int digits);

#endif
