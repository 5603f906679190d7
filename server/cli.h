#ifndef CLASSIFYD_CLI_H
#define CLASSIFYD_CLI_H

int cli_classify_main(int argc, char **argv);

#endif
