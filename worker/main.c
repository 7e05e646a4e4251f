/* ktstr-worker: parse the verb, run it. One file per verb (builtin-*.c). */
#include <stdio.h>
#include <string.h>

#include "builtins.h"
#include "kt_config.h"
#include "kt_log.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} s_verbs[] = {
    {"check", builtin_check, "check KVM (with a canary boot) and print host capacity"},
    {"run-cell", builtin_run_cell, "run one cell in a VM on this host and write its sidecar"},
    {"serve", builtin_serve, "serve coordinators: run their cells, journal results until acked"},
};

static void s_usage(FILE *f)
{
    fprintf(f, "usage: ktstr-worker VERB [OPTIONS]\n\nverbs:\n");
    for (size_t i = 0; i < sizeof(s_verbs) / sizeof(s_verbs[0]); i++)
        fprintf(f, "  %-10s %s\n", s_verbs[i].name, s_verbs[i].help);
    fprintf(f, "\n`ktstr-worker VERB --help` describes a verb's options.\n");
}

int main(int argc, char **argv)
{
    kt_log_set_ident("ktstr-worker");
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ktstr-worker %s\n", KT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(s_verbs) / sizeof(s_verbs[0]); i++)
        if (strcmp(argv[1], s_verbs[i].name) == 0)
            return s_verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ktstr-worker: unknown verb '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
