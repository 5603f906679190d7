/*
 * file_read.c — whole-file reads for the CLI and configuration (labels files).
 *
 * Refuses non-regular files (a FIFO or device could block or never end) and files
 * over the caller's cap before reading anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_read.h"

static int fail(cnn_error_t *err, int code, const char *path, const char *why) {
  if (err) {
    err->code = code;
    snprintf(err->msg, sizeof err->msg, "%s: %s", path, why);
  }
  return code;
}

int file_read_all(const char *path, size_t max, uint8_t **data, size_t *len, cnn_error_t *err) {
  *data = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fail(err, CNN_EIO, path, strerror(errno));
  struct stat st;
  int rc = 0;
  uint8_t *buf = NULL;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) rc = fail(err, CNN_EIO, path, "not a regular file");
  else if ((size_t)st.st_size > max) rc = fail(err, CNN_EINVAL, path, "file too large");
  else if (!(buf = malloc((size_t)st.st_size + 1))) rc = fail(err, CNN_ENOMEM, path, "out of memory");
  size_t done = 0;
  while (!rc && done < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + done, (size_t)st.st_size - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) rc = fail(err, CNN_EIO, path, r < 0 ? strerror(errno) : "file shrank while reading");
    else done += (size_t)r;
  }
  close(fd);
  if (rc) {
    free(buf);
    return rc;
  }
  buf[done] = 0;
  *data = buf;
  *len = done;
  return 0;
}
