/* The ktstr-coord verbs, one file each (builtin-<verb>.c), dispatched from
 * main.c. Each returns the process exit status. */
#pragma once

int builtin_run(int argc, char **argv);
int builtin_list(int argc, char **argv);
int builtin_keygen(int argc, char **argv);
int builtin_selftests(int argc, char **argv);
int builtin_scenarios(int argc, char **argv);
int builtin_kernel(int argc, char **argv);
int builtin_history(int argc, char **argv);
int builtin_compare(int argc, char **argv);
