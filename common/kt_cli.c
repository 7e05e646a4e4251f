/* The verb programs' main() and option readers (see kt_cli.h). */
#include "kt_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_log.h"

static void s_usage(const kt_cli_t *cli, FILE *f)
{
    fprintf(f, "usage: %s VERB [OPTIONS]\n\nverbs:\n", cli->prog);
    for (size_t i = 0; i < cli->n_verbs; i++)
        fprintf(f, "  %-10s %s\n", cli->verbs[i].name, cli->verbs[i].help);
    if (cli->list_help)
        fprintf(f, "  %-10s %s\n", "help", "this text");
    fprintf(f, "\n`%s VERB --help` describes a verb's options.\n", cli->prog);
}

int kt_cli_main(const kt_cli_t *cli, int argc, char **argv)
{
    kt_log_set_ident(cli->prog);
    if (argc < 2) {
        s_usage(cli, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(cli, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s\n", cli->version);
        return 0;
    }
    for (size_t i = 0; i < cli->n_verbs; i++)
        if (strcmp(argv[1], cli->verbs[i].name) == 0)
            return cli->verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown verb '%s'\n", cli->prog, argv[1]);
    s_usage(cli, stderr);
    return 2;
}

int kt_cli_parse_u64(const char *text, uint64_t lo, uint64_t hi, uint64_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || v < lo || v > hi)
        return -EINVAL;
    *ret = v;
    return 0;
}

int kt_cli_parse_secs(const char *text, uint64_t *ret_ms)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v > 0) || v > 30.0 * 24 * 3600)
        return -EINVAL;
    *ret_ms = (uint64_t)(v * 1000.0);
    return 0;
}
