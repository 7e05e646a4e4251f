/* ktstr-coord history [GLOB] [--results DIR] [--last N] [--metric NAME]...
 * [--json] | --runs: what the run store knows of each cell across runs:
 * one line per run with its kernel, verdict, the figures asked for and the
 * reason, then where the verdict last changed, so a cell that began
 * failing on some kernel or some night shows when. --runs lists the runs.
 * Exit status: 0 listed (also when nothing matched: it says so), 2 usage or
 * store error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_store.h"

#define S_MAX_METRICS 8

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-coord history [GLOB] [--results DIR] [--last N] [--metric NAME]...\n"
            "                           [--json]\n"
            "       ktstr-coord history --runs [--results DIR] [--json]\n"
            "For each cell whose name matches GLOB (* ? [..]; default all), its result in\n"
            "each run of the run store ({results}/ktstr.db), oldest first: run, start,\n"
            "kernel (label and commit), verdict, the figures named with --metric (as\n"
            "`ktstr-coord compare` names them, e.g. cgroup.cg_0.spread_pct,\n"
            "check.max_gap.cg_0, timing.boot_ms; up to %d) and the reason; then how\n"
            "many runs passed, in which run the verdict last changed, and whether it\n"
            "changed more than once (flaky).\n"
            "--runs lists the runs instead: id, start, status, cells and verdicts.\n"
            "  --results DIR  default ./results\n"
            "  --last N       only the N newest runs\n"
            "  --json         JSON instead of text\n"
            "Exit status: 0 listed, 2 usage or store error.\n",
            S_MAX_METRICS);
}

typedef struct s_hist {
    bool json;
    const char *metrics[S_MAX_METRICS];
    unsigned n_metrics;
    /* The cell being listed (rows come by name, then oldest run first). */
    char name[1024];
    unsigned runs, pass, changes;
    char last_verdict[16], changed_run[256], changed_from[16];
    unsigned cells;
    json_t *doc;  /* --json: the array of cells */
    json_t *cell; /* --json: the current cell's runs */
} s_hist_t;

static void s_cell_end(s_hist_t *h)
{
    if (!h->name[0])
        return;
    if (h->json) {
        json_t *cell = json_array_get(h->doc, json_array_size(h->doc) - 1);
        json_object_set_new(cell, "verdict_changes", json_integer(h->changes));
        return;
    }
    printf("  %u run(s), %u passed", h->runs, h->pass);
    if (h->changed_run[0])
        printf("; %s -> %s in run %s", h->changed_from, h->last_verdict, h->changed_run);
    /* A verdict that came and went more than once is a race to chase, not
     * a single change. */
    if (h->changes > 1)
        printf("; the verdict changed %u times: flaky", h->changes);
    else if (!h->changed_run[0] && h->runs > 1)
        printf("; %s in every run", h->last_verdict);
    printf("\n");
}

static double s_metric(const json_t *m, const char *name, bool *ok)
{
    const json_t *v = json_object_get(m, name);
    *ok = json_is_number(v);
    return *ok ? json_number_value(v) : 0;
}

static int s_row(const kt_store_row_t *row, void *userdata)
{
    s_hist_t *h = userdata;
    const char *name = row->name ? row->name : "";
    const char *verdict = row->verdict ? row->verdict : "";
    if (strcmp(name, h->name) != 0) {
        s_cell_end(h);
        snprintf(h->name, sizeof(h->name), "%s", name);
        h->runs = h->pass = h->changes = 0;
        h->last_verdict[0] = h->changed_run[0] = h->changed_from[0] = '\0';
        h->cells++;
        if (h->json) {
            h->cell = json_array();
            json_array_append_new(h->doc, json_pack("{s:s, s:o}", "name", name, "runs", h->cell));
        } else {
            printf("%s%s\n", h->cells > 1 ? "\n" : "", name);
        }
    }
    if (h->runs && strcmp(h->last_verdict, verdict) != 0) {
        snprintf(h->changed_from, sizeof(h->changed_from), "%s", h->last_verdict);
        snprintf(h->changed_run, sizeof(h->changed_run), "%s", row->run_id);
        h->changes++;
    }
    snprintf(h->last_verdict, sizeof(h->last_verdict), "%s", verdict);
    h->runs++;
    h->pass += strcmp(verdict, "pass") == 0;
    /* The figures are read only when some were asked for. */
    json_t *m = h->n_metrics && row->metrics_json ? json_loads(row->metrics_json, 0, NULL) : NULL;
    char commit[16];
    snprintf(commit, sizeof(commit), "%.12s", row->kernel_commit ? row->kernel_commit : "");
    if (h->json) {
        json_t *figs = json_object();
        for (unsigned i = 0; i < h->n_metrics; i++) {
            bool ok;
            double v = s_metric(m, h->metrics[i], &ok);
            json_object_set_new(figs, h->metrics[i], ok ? json_real(v) : json_null());
        }
        json_array_append_new(
            h->cell, json_pack("{s:s, s:I, s:s?, s:s?, s:s?, s:i, s:s, s:s?, s:o}", "run_id",
                               row->run_id, "started_ms", (json_int_t)row->run_started_ms,
                               "kernel_label", row->kernel_label, "kernel_version",
                               row->kernel_version, "kernel_commit", row->kernel_commit,
                               "attempt", (int)row->attempt, "verdict", verdict, "reason",
                               row->reason, "figures", figs));
    } else {
        char when[32];
        kt_store_when(row->run_started_ms, when, sizeof(when));
        printf("  %s  %s  %s%s%s  %-5s", row->run_id, when,
               row->kernel_label ? row->kernel_label : "-", commit[0] ? " " : "", commit,
               verdict);
        for (unsigned i = 0; i < h->n_metrics; i++) {
            bool ok;
            double v = s_metric(m, h->metrics[i], &ok);
            if (ok)
                printf("  %s=%.6g", h->metrics[i], v);
            else
                printf("  %s=-", h->metrics[i]);
        }
        if (row->reason && row->reason[0] && strcmp(verdict, "pass") != 0)
            printf("  %.160s", row->reason);
        printf("\n");
    }
    json_decref(m);
    return 0;
}

static int s_run(const kt_store_run_t *run, void *userdata)
{
    json_t *doc = userdata;
    if (doc) {
        json_array_append_new(
            doc, json_pack("{s:s, s:I, s:o, s:s, s:i, s:i, s:i, s:i}", "run_id", run->run_id,
                           "started_ms", (json_int_t)run->started_ms, "ended_ms",
                           run->ended_ms ? json_integer(run->ended_ms) : json_null(), "status",
                           run->status ? run->status : "", "cells", (int)run->cells, "pass",
                           (int)run->pass, "fail", (int)run->fail, "error", (int)run->error));
        return 0;
    }
    char when[32];
    kt_store_when(run->started_ms, when, sizeof(when));
    printf("%s  %s  %-11s  %u cells: %u pass, %u fail, %u error\n", run->run_id, when,
           run->status ? run->status : "-", run->cells, run->pass, run->fail, run->error);
    return 0;
}

int builtin_history(int argc, char **argv)
{
    static const struct option opts[] = {
        {"results", required_argument, NULL, 'r'},
        {"last", required_argument, NULL, 'l'},
        {"metric", required_argument, NULL, 'm'},
        {"runs", no_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *results = "results";
    uint64_t last = 0;
    bool runs = false;
    s_hist_t h = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:l:m:Rjh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            results = optarg;
            break;
        case 'l':
            if (kt_cli_parse_u64(optarg, 1, 1000000, &last) < 0) {
                fprintf(stderr, "ktstr-coord history: --last '%s': expected a count >= 1\n",
                        optarg);
                return 2;
            }
            break;
        case 'm':
            if (h.n_metrics == S_MAX_METRICS) {
                fprintf(stderr, "ktstr-coord history: at most %d --metric\n", S_MAX_METRICS);
                return 2;
            }
            h.metrics[h.n_metrics++] = optarg;
            break;
        case 'R':
            runs = true;
            break;
        case 'j':
            h.json = true;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1 || (runs && argc - optind > 0)) {
        s_usage(stderr);
        return 2;
    }
    const char *glob = argc - optind == 1 ? argv[optind] : "*";
    char err[1024] = "";
    _cleanup_(kt_store_close) kt_store_t *s = NULL;
    if (kt_store_open_results(results, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord history: %s\n", err);
        return 2;
    }
    int r;
    unsigned n = 0;
    if (runs) {
        json_t *doc = h.json ? json_array() : NULL;
        r = kt_store_runs(s, s_run, doc);
        if (r >= 0 && doc) {
            json_dumpf(doc, stdout, JSON_INDENT(2));
            printf("\n");
        }
        json_decref(doc);
    } else {
        h.doc = h.json ? json_array() : NULL;
        r = kt_store_history(s, glob, (unsigned)last, s_row, &h, &n);
        if (r >= 0) {
            s_cell_end(&h);
            if (h.json) {
                json_dumpf(h.doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
                printf("\n");
            } else if (!n) {
                printf("no cell matching '%s' has a result in the store\n", glob);
            }
        }
        json_decref(h.doc);
    }
    if (r < 0) {
        fprintf(stderr, "ktstr-coord history: %s\n", kt_store_error(s));
        return 2;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ktstr-coord history: cannot write: %s\n", strerror(errno));
        return 2;
    }
    return 0;
}
