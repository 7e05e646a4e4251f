/* kt-kbuild-tool: drives kt_kbuild (coordinator/kt_kbuild.h) from the shell,
 * without the kernel cache: for developing and measuring builds by hand and
 * for tests that need a build without `ktstr-coord kernel build`.
 *
 *   kt-kbuild-tool build --source DIR --out DIR [--kconfig FILE] [-j N] [--quiet]
 *   kt-kbuild-tool hash FILE
 *   kt-kbuild-tool check CONFIG
 *
 * build prints the kernelrelease and the schedulers, one per line:
 * "version 6.12.117", "sched scx_simple". --kconfig defaults to the
 * source checkout's deploy/ktstr.kconfig.
 * Exit status: 0 ok, 1 failure (the error names what and where), 2 usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_config.h"
#include "kt_kbuild.h"

static int s_usage(void)
{
    fprintf(stderr, "usage: kt-kbuild-tool build --source DIR --out DIR [--kconfig FILE] [-j N] "
                    "[--quiet]\n       kt-kbuild-tool hash FILE\n"
                    "       kt-kbuild-tool check CONFIG\n");
    return 2;
}

int main(int argc, char **argv)
{
    static char err[8192];
    if (argc < 2)
        return s_usage();
    if (strcmp(argv[1], "hash") == 0 && argc == 3) {
        char h[65];
        if (kt_kbuild_kconfig_hash(argv[2], h, err, sizeof(err)) < 0) {
            fprintf(stderr, "kt-kbuild-tool: %s\n", err);
            return 1;
        }
        printf("%s\n", h);
        return 0;
    }
    if (strcmp(argv[1], "check") == 0 && argc == 3) {
        if (kt_kbuild_check_config(argv[2], err, sizeof(err)) < 0) {
            fprintf(stderr, "kt-kbuild-tool: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (strcmp(argv[1], "build") != 0)
        return s_usage();
    kt_kbuild_opts_t o = {.kconfig = KT_SOURCE_DIR "/deploy/ktstr.kconfig"};
    static const struct option longs[] = {{"source", required_argument, NULL, 's'},
                                          {"out", required_argument, NULL, 'o'},
                                          {"kconfig", required_argument, NULL, 'k'},
                                          {"jobs", required_argument, NULL, 'j'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "j:", longs, NULL)) != -1) {
        switch (c) {
        case 's': o.source_dir = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'k': o.kconfig = optarg; break;
        case 'j': {
            char *end;
            unsigned long j = strtoul(optarg, &end, 10);
            if (*end || j > 1024) {
                fprintf(stderr, "kt-kbuild-tool: -j '%s': not a job count (0 to 1024)\n", optarg);
                return 2;
            }
            o.jobs = (unsigned)j;
            break;
        }
        case 'q': o.quiet = true; break;
        default: return s_usage();
        }
    }
    if (optind != argc || !o.source_dir || !o.out_dir)
        return s_usage();
    kt_kbuild_result_t res;
    if (kt_kbuild_run(&o, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "kt-kbuild-tool: %s\n", err);
        return 1;
    }
    printf("version %s\n", res.version);
    for (unsigned i = 0; i < res.n_sched_progs; i++)
        printf("sched %s\n", res.sched_progs[i]);
    return 0;
}
