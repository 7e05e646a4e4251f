/* ktstr-coord list --gauntlet FILE [--budget SECS] [--results DIR]: expand a gauntlet into
 * its cells and print one cell name per line, running nothing. The kernels
 * are read (label, version, commit) and the artifacts hashed exactly as
 * `run` would, so the names and the count are those a run gets. A summary
 * goes to stderr. Exit status: 0 listed, 1 the gauntlet is invalid or
 * names something unreadable, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_coord.h"
#include "kt_gauntlet.h"
#include "kt_log.h"
#include "kt_matrix.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: ktstr-coord list --gauntlet FILE [--budget SECS] [--results DIR] [--ids]\n"
               "Prints the cells of a gauntlet, one name per line\n"
               "(gauntlet/{scenario}/{preset}/{profile}/{kernel_label}; a payload entry's\n"
               "cells read gauntlet/{payload}/...), without running\n"
               "anything. --budget keeps the cells a run with that time budget would run,\n"
               "timing each cell as run does: by its earlier runs in the --results store\n"
               "(default ./results) when it has them, else by its estimate.\n"
               "--ids prefixes each name with its cell id. A summary goes to stderr.\n"
               "Exit status: 0 listed, 1 invalid gauntlet, 2 usage error.\n");
}

static const char *s_plural(unsigned n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

int builtin_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"gauntlet", required_argument, NULL, 'g'},
        {"budget", required_argument, NULL, 'b'},
        {"results", required_argument, NULL, 'r'},
        {"ids", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *gauntlet = NULL;
    uint64_t budget_ms = 0;
    const char *results = "results";
    bool ids = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "g:b:r:ih", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            gauntlet = optarg;
            break;
        case 'b':
            if (kt_cli_parse_secs(optarg, &budget_ms) < 0) {
                kt_log_error("list: --budget '%s': expected a number of seconds > 0", optarg);
                return 2;
            }
            break;
        case 'r':
            results = optarg;
            break;
        case 'i':
            ids = true;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (!gauntlet || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    char err[1024] = "";
    _cleanup_(kt_gauntlet_free) kt_gauntlet_t *g = NULL;
    int r = kt_gauntlet_load(gauntlet, &g, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord list: %s\n", err);
        return 1;
    }
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = {0};
    r = kt_coord_run_prepare(g, &run, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord list: %s\n", err);
        return 1;
    }
    unsigned expanded = run.n_cells;
    unsigned timed = kt_matrix_learn_results(&run, results);
    uint64_t est_all = 0;
    for (unsigned i = 0; i < run.n_cells; i++)
        est_all += kt_coord_cell_expect_ms(&run.cells[i]);
    if (budget_ms)
        kt_matrix_budget(&run, budget_ms);
    uint64_t est = 0;
    for (unsigned i = 0; i < run.n_cells; i++) {
        est += kt_coord_cell_expect_ms(&run.cells[i]);
        if (ids)
            printf("%s ", run.cells[i].spec.cell_id);
        printf("%s\n", run.cells[i].spec.cell_name);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        kt_log_error("list: cannot write the list: %m");
        return 1;
    }
    fprintf(stderr,
            "%u %s (%u %s, %u %s, %u %s, %u %s, repeat %u; %u excluded by scenario "
            "constraints)",
            run.n_cells, s_plural(run.n_cells, "cell", "cells"), run.n_kernels,
            s_plural(run.n_kernels, "kernel", "kernels"), g->n_scheds,
            s_plural(g->n_scheds, "scheduler", "schedulers"), g->n_topologies,
            s_plural(g->n_topologies, "topology", "topologies"), g->n_scenarios,
            s_plural(g->n_scenarios, "scenario", "scenarios"), g->repeat, run.n_filtered);
    if (g->n_payloads)
        fprintf(stderr, "; %u %s", g->n_payloads, s_plural(g->n_payloads, "payload", "payloads"));
    if (budget_ms)
        fprintf(stderr, "; budget %.0f s keeps %u of %u (estimated %.0f s of %.0f s)",
                (double)budget_ms / 1000.0, run.n_cells, expanded, (double)est / 1000.0,
                (double)est_all / 1000.0);
    else
        fprintf(stderr, "; estimated %.0f s of VM time", (double)est / 1000.0);
    if (timed)
        fprintf(stderr, "; %u of %u cells timed by their earlier runs in %s/ktstr.db", timed,
                expanded, results);
    fprintf(stderr, "\n");
    return 0;
}
