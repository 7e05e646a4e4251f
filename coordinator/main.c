/* ktstr-coord: parse the verb, run it. One file per verb (builtin-*.c). */
#include <stdio.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_config.h"
#include "kt_msg.h"

static const kt_cli_verb_t s_verbs[] = {
    {"run", builtin_run, "run a gauntlet on workers (or on this machine) and report"},
    {"list", builtin_list, "print the cells of a gauntlet, one name per line, running nothing"},
    {"keygen", builtin_keygen, "make a CURVE certificate for a coordinator or a worker"},
    {"selftests", builtin_selftests, "run the kernel's sched_ext selftests, one cell per test"},
    {"scenarios", builtin_scenarios, "list the built-in scenarios, or print one as YAML"},
    {"kernel", builtin_kernel, "the kernel cache: build, list, clean, resolve SPEC..."},
    {"history", builtin_history, "each cell's verdicts and figures across the stored runs"},
    {"compare", builtin_compare, "two stored runs side by side: regressions, fixes, figures"},
};

int main(int argc, char **argv)
{
    char version[64];
    snprintf(version, sizeof(version), "ktstr-coord %s (protocol %d)", KT_VERSION,
             KT_PROTO_VERSION);
    const kt_cli_t cli = {.prog = "ktstr-coord", .verbs = s_verbs,
                          .n_verbs = KT_ARRAY_SIZE(s_verbs), .version = version,
                          .list_help = true};
    return kt_cli_main(&cli, argc, argv);
}
