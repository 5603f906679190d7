/*
 * fuzz_config.c — libFuzzer target for the configuration: the INI file (inih + our
 * handler) and the command-line flags (getopt_long + config_set), then the deep copy
 * and the reload rule (config_keep_startup) on what parsed.
 *
 * Input: text. Lines before a line "%%" are the INI file (all of it when there is no
 * such line); lines after it are argv entries, one per line. The file is a memfd
 * passed as --config /proc/self/fd/N; a fuzzed --config (or an abbreviation of it) is
 * pointed at the same memfd so the run never opens a device or a FIFO that blocks.
 * A parsed configuration must satisfy the invariants the daemon relies on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parsed(const config_t *c) {
  if (!c->listen || !c->cors_origins || c->n_models < 1 || c->n_models > CONFIG_MAX_MODELS ||
      c->default_model < 0 || c->default_model >= c->n_models || c->body_limit < 1 ||
      c->body_limit > (1u << 30) || c->threads < 1 || c->max_batch < 1 || c->max_batch > 64 ||
      c->queue_length < 1 || c->workers < 1 || c->http_threads < 1 || c->max_side < 1 ||
      c->max_pixels < 1)
    abort();
  for (int i = 0; i < c->n_models; i++) {
    const config_model_t *m = &c->models[i];
    if (!m->path || !memchr(m->name, '\0', sizeof(m->name)) || !m->name[0]) abort();
    if (m->pp.has_crop && (m->pp.crop_h < 1 || m->pp.crop_w < 1)) abort();
  }
}

/* Splits `text` (NUL-terminated, modified) into argv after argv[0..2]. */
static int split_args(char *text, char **argv, char *cfgflag) {
  int argc = 3;
  for (char *line = text; line && *line && argc < MAX_ARGS;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    argv[argc++] = strncmp(line, "--conf", 6) == 0 ? cfgflag : line;
    line = nl ? nl + 1 : NULL;
  }
  return argc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *sep = strstr(text, "\n%%\n"), *args = NULL;
  size_t ini_len = size;
  if (sep) {
    ini_len = (size_t)(sep - text) + 1;
    args = sep + 4;
  }
  int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
  if (fd < 0 || write(fd, text, ini_len) != (ssize_t)ini_len) abort();
  char fdpath[64], cfgflag[80];
  snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
  snprintf(cfgflag, sizeof(cfgflag), "--config=%s", fdpath);
  char *argv[MAX_ARGS + 1] = {"classifyd", "--config", fdpath};
  int argc = args ? split_args(args, argv, cfgflag) : 3;
  argv[argc] = NULL;

  config_t c, copy, base;
  char err[1024];
  err[0] = '\0';
  int rc = config_parse(&c, argc, argv, err, sizeof(err));
  if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz_config: %d %s\n", rc, rc ? err : "parsed");
  if (rc < 0 && !err[0]) abort(); /* a refusal always says why */
  if (rc == 0) {
    check_parsed(&c);
    if (config_copy(&copy, &c) == 0) {
      char changed[512];
      char *base_argv[] = {"classifyd", "--model", "m=/dev/null", NULL};
      memset(&base, 0, sizeof(base));
      if (config_parse(&base, 3, base_argv, err, sizeof(err)) != 0) abort();
      if (config_keep_startup(&copy, &base, changed, sizeof(changed)) == 0 &&
          strcmp(copy.listen, base.listen) != 0)
        abort(); /* a start-up setting must come back to the running value */
      config_free(&base);
      config_free(&copy);
    }
  }
  config_free(&c); /* the contract: safe whatever config_parse returned */
  close(fd);
  free(text);
  return 0;
}
