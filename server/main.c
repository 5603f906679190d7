/*
 * main.c — classifyd entry point: `classifyd classify ...` runs the one-shot
 * CLI; anything else runs the daemon.
 */
#include <string.h>

#include "cli.h"
#include "daemon.h"

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "classify") == 0) return cli_classify_main(argc - 1, argv + 1);
  return daemon_main(argc, argv);
}
