/*
 * error.c — the one table of engine error codes: machine names and messages.
 *
 * Codes are the negated positions in CNN_ERRNO_MAP (cnn.h), so the table here and
 * the enum there cannot drift apart.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

#define ROW(name, code, msg) {code, msg},
static const struct {
  const char *code;
  const char *msg;
} errtab[] = {{"ok", "success"}, CNN_ERRNO_MAP(ROW)};
#undef ROW

static int errtab_index(int err) {
  int i = -err;
  return (i >= 0 && i < CNN__ERRNO_COUNT) ? i : -CNN_EINTERNAL;
}

const char *cnn_err_code(int err) { return errtab[errtab_index(err)].code; }

const char *cnn_strerror(int err) { return errtab[errtab_index(err)].msg; }

int cnn_error_set(cnn_error_t *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void cnn_error_clear(cnn_error_t *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}
