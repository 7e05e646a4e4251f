/* ktstr-worker: parse the verb, run it. One file per verb (builtin-*.c). */
#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_config.h"

static const kt_cli_verb_t s_verbs[] = {
    {"check", builtin_check, "check KVM (with a canary boot) and print host capacity"},
    {"run-cell", builtin_run_cell, "run one cell in a VM on this host and write its sidecar"},
    {"serve", builtin_serve, "serve coordinators: run their cells, journal results until acked"},
};

int main(int argc, char **argv)
{
    const kt_cli_t cli = {.prog = "ktstr-worker", .verbs = s_verbs,
                          .n_verbs = KT_ARRAY_SIZE(s_verbs),
                          .version = "ktstr-worker " KT_VERSION};
    return kt_cli_main(&cli, argc, argv);
}
