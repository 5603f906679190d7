/*
 * error.h — internal helpers for filling a cnn_error_t.
 *
 * cnn_error_set() records code and a printf-style message and returns the code,
 * so error paths read `return cnn_error_set(err, CNN_EIMAGE_INVALID, "...", ...);`.
 * A NULL err is allowed: the code is still returned.
 */
#ifndef CNN_ERROR_H
#define CNN_ERROR_H

#include "cnn.h"

int cnn_error_set(cnn_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cnn_error_clear(cnn_error_t *err);

#endif
