/*
 * main.c — the classifyd binary: `classifyd classify ...` runs the one-shot CLI.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "classify") == 0) return cli_classify_main(argc - 1, argv + 1);
  fprintf(stderr, "usage: classifyd classify --model FILE.onnx [--top-k K] IMAGE...\n");
  return 2;
}
