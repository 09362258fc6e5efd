/* `sluice dead-letter list|show DIR`: what is in the dead-letter store, for a person. */
#ifndef SL_DEADLETTER_CLI_H
#define SL_DEADLETTER_CLI_H

#include <stdio.h>

/* argv[0] is "list" or "show". Returns the process exit code. */
int sl_dead_letter_cli(int argc, char **argv, FILE *out, FILE *err);

#endif
