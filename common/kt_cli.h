/* What the command-line programs share: the verb table that main() of
 * ktstr-coord and ktstr-worker dispatches from (one builtin-<verb>.c per
 * verb, kvmtool's way), and the readers of their numeric options. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kt_cli_verb {
    const char *name;
    int (*fn)(int argc, char **argv);   /* argv[0] is the verb; returns the exit status */
    const char *help;                   /* one line for the usage text */
} kt_cli_verb_t;

typedef struct kt_cli {
    const char *prog;               /* "ktstr-coord": the log ident and the usage's name */
    const kt_cli_verb_t *verbs;
    size_t n_verbs;
    const char *version;            /* the --version line, without its newline */
    bool list_help;                 /* list `help` among the verbs in the usage text */
} kt_cli_t;

/* main() of a verb program: sets the log ident; `help`, --help and -h print
 * the usage on stdout (exit 0), --version the version line; a verb runs
 * with argv from the verb on; no verb or an unknown one prints the usage on
 * stderr (exit 2). Returns the exit status. */
int kt_cli_main(const kt_cli_t *cli, int argc, char **argv);

/* A decimal integer in [lo, hi], nothing else around it (no sign, no
 * blanks). Returns 0, or -EINVAL (*ret untouched). */
int kt_cli_parse_u64(const char *text, uint64_t lo, uint64_t hi, uint64_t *ret);

/* Seconds > 0, at most 30 days, fractions allowed, as milliseconds.
 * Returns 0, or -EINVAL (*ret_ms untouched). */
int kt_cli_parse_secs(const char *text, uint64_t *ret_ms);
