/*
 * file_read.h — read a whole regular file into memory, with a size cap.
 */
#ifndef CLASSIFYD_FILE_READ_H
#define CLASSIFYD_FILE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"

/* On success *data (caller frees) holds *len bytes. Errors: CNN_EIO (with the path
 * and reason in err), CNN_EINVAL when the file exceeds max bytes, CNN_ENOMEM. */
int file_read_all(const char *path, size_t max, uint8_t **data, size_t *len, cnn_error_t *err);

#endif
