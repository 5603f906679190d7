/*
 * cli.h — one-shot subcommands of the classifyd binary.
 */
#ifndef CLASSIFYD_CLI_H
#define CLASSIFYD_CLI_H

/* `classifyd classify --model FILE.onnx [--top-k K] [--threads N] IMAGE...`;
 * argv[0] is "classify". Returns the process exit code. */
int cli_classify_main(int argc, char **argv);

#endif
