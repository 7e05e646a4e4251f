/* The ktstr-worker verbs, one file each (builtin-<verb>.c), dispatched from
 * main.c. Each returns the process exit status. */
#pragma once

int builtin_check(int argc, char **argv);
int builtin_run_cell(int argc, char **argv);
int builtin_serve(int argc, char **argv);
