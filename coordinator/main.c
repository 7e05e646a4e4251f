/* ktstr-coord: parse the verb, run it. One file per verb (builtin-*.c). */
#include <stdio.h>
#include <string.h>

#include "builtins.h"
#include "kt_config.h"
#include "kt_log.h"
#include "kt_msg.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} s_verbs[] = {
    {"run", builtin_run, "run a gauntlet on workers (or on this machine) and report"},
    {"list", builtin_list, "print the cells of a gauntlet, one name per line, running nothing"},
    {"keygen", builtin_keygen, "make a CURVE certificate for a coordinator or a worker"},
    {"selftests", builtin_selftests, "run the kernel's sched_ext selftests, one cell per test"},
    {"scenarios", builtin_scenarios, "list the built-in scenarios, or print one as YAML"},
    {"kernel", builtin_kernel, "the kernel cache: build, list, clean, resolve SPEC..."},
    {"history", builtin_history, "each cell's verdicts and figures across the stored runs"},
    {"compare", builtin_compare, "two stored runs side by side: regressions, fixes, figures"},
};

static void s_usage(FILE *f)
{
    fprintf(f, "usage: ktstr-coord VERB [OPTIONS]\n\nverbs:\n");
    for (size_t i = 0; i < sizeof(s_verbs) / sizeof(s_verbs[0]); i++)
        fprintf(f, "  %-10s %s\n", s_verbs[i].name, s_verbs[i].help);
    fprintf(f, "  %-10s %s\n", "help", "this text");
    fprintf(f, "\n`ktstr-coord VERB --help` describes a verb's options.\n");
}

int main(int argc, char **argv)
{
    kt_log_set_ident("ktstr-coord");
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ktstr-coord %s (protocol %d)\n", KT_VERSION, KT_PROTO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(s_verbs) / sizeof(s_verbs[0]); i++)
        if (strcmp(argv[1], s_verbs[i].name) == 0)
            return s_verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ktstr-coord: unknown verb '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
