/*
 * daemon.h — run the classifyd daemon; returns the process exit status
 * (0 clean shutdown, 1 runtime failure, 2 invalid configuration).
 */
#ifndef CLASSIFYD_DAEMON_H
#define CLASSIFYD_DAEMON_H

int daemon_main(int argc, char **argv);

#endif
