/* ktstr-coord compare [RUN_A [RUN_B]] [--results DIR] [--min-change PCT]
 * [--top N] [--json]: two runs of the store side by side: the cells whose
 * verdict changed (regressions first), the cells only one run has, and the
 * figures (kt_metrics.h) that moved by PCT or more, worse first. RUN_B
 * defaults to the newest run, RUN_A to the one before it. Exit status: 0
 * no regression, 1 a cell that passed in A failed or errored in B, 2 usage
 * or store error. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_compare.h"
#include "kt_store.h"

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-coord compare [RUN_A [RUN_B]] [--results DIR] [--min-change PCT]\n"
            "                           [--top N] [--json]\n"
            "Compares run B against run A from the run store ({results}/ktstr.db):\n"
            "cells whose verdict changed (a pass that became fail or error is a\n"
            "regression), cells only one run has, and each cell's figures (timings,\n"
            "per-cgroup work, spread, gaps, wake latency, run delay, every check's\n"
            "measured value, BPF cost, payload metrics) that moved by PCT %% or more,\n"
            "worse first. Cells are matched by name; when each run has one kernel,\n"
            "by name without the kernel label, so one gauntlet on two kernels lines up.\n"
            "A gauntlet's repeats (/r1, /r2...) are samples of one test: it passed when\n"
            "all passed, its figures are medians, and with 2 samples or more on each\n"
            "side a figure moved only when the two runs' ranges do not overlap.\n"
            "A run is its id, latest or latest~N. Defaults: RUN_B latest, RUN_A the\n"
            "run before it (latest~1).\n"
            "  --results DIR     default ./results\n"
            "  --min-change PCT  default 20\n"
            "  --top N           figures listed (default 20; 0 = all)\n"
            "  --json            one JSON object instead of text\n"
            "Exit status: 0 no regression, 1 a regression, 2 usage or store error.\n");
}

static json_t *s_test_json(const kt_cmp_test_t *t)
{
    if (!t)
        return json_null();
    const kt_cmp_cell_t *c = &t->cells[0];
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "name", c->name, "kernel_label",
                     c->kernel_label, "kernel_commit", c->kernel_commit, "verdict", t->verdict,
                     "reason", t->reason, "samples", (int)t->n, "passed", (int)t->n_pass);
}

/* "pass", or "2/3 pass" for repeated cells. */
static const char *s_verdict(const kt_cmp_test_t *t, char *buf, size_t len)
{
    if (t->n == 1)
        return t->verdict;
    snprintf(buf, len, "%s (%u/%zu passed)", t->verdict, t->n_pass, t->n);
    return buf;
}

static json_t *s_side_json(const kt_cmp_side_t *s)
{
    return json_pack("{s:s, s:I, s:I, s:s?}", "run_id", s->run_id, "started_ms",
                     (json_int_t)s->started_ms, "cells", (json_int_t)s->n_cells, "kernel_label",
                     s->one_kernel ? s->kernel_label : NULL);
}

static const char *s_sense(int sense)
{
    return sense > 0 ? "better" : sense < 0 ? "worse" : "moved";
}

static int s_print_json(const kt_compare_t *c, size_t top)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "a", s_side_json(&c->a));
    json_object_set_new(doc, "b", s_side_json(&c->b));
    json_object_set_new(doc, "matched_by", json_string(c->by_test ? "test" : "name"));
    json_t *counts = json_object();
    for (int k = 0; k < KT_CMP__COUNT; k++)
        json_object_set_new(counts, kt_cmp_kind_name(k), json_integer((json_int_t)c->count[k]));
    json_object_set_new(doc, "counts", counts);
    json_t *cells = json_array();
    for (size_t i = 0; i < c->n_pairs; i++) {
        const kt_cmp_pair_t *p = &c->pairs[i];
        if (p->kind == KT_CMP_SAME)
            continue;
        json_array_append_new(cells, json_pack("{s:s, s:s, s:o, s:o}", "kind",
                                               kt_cmp_kind_name(p->kind), "key",
                                               p->a ? p->a->key : p->b->key, "a",
                                               s_test_json(p->a), "b", s_test_json(p->b)));
    }
    json_object_set_new(doc, "cells", cells);
    json_t *figs = json_array();
    for (size_t i = 0; i < c->n_metrics && (!top || i < top); i++) {
        const kt_cmp_metric_t *m = &c->metrics[i];
        json_array_append_new(
            figs, json_pack("{s:s, s:s, s:f, s:f, s:i, s:i, s:o, s:s}", "key", m->a->key,
                            "figure", m->name, "a", m->va, "b", m->vb, "a_samples", (int)m->na,
                            "b_samples", (int)m->nb, "change_pct",
                            isfinite(m->change_pct) ? json_real(m->change_pct) : json_null(),
                            "sense", s_sense(m->sense)));
    }
    json_object_set_new(doc, "figures", figs);
    json_object_set_new(doc, "figures_moved", json_integer((json_int_t)c->n_metrics));
    json_object_set_new(doc, "figures_compared", json_integer((json_int_t)c->n_compared));
    json_object_set_new(doc, "figures_within_range", json_integer((json_int_t)c->n_overlap));
    int r = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
    json_decref(doc);
    printf("\n");
    return r;
}

static void s_print_cells(const kt_compare_t *c, enum kt_cmp_kind kind, const char *title)
{
    if (!c->count[kind])
        return;
    printf("\n%s (%zu):\n", title, c->count[kind]);
    for (size_t i = 0; i < c->n_pairs; i++) {
        const kt_cmp_pair_t *p = &c->pairs[i];
        if (p->kind != kind)
            continue;
        char va[64], vb[64];
        if (!p->b)
            printf("  %s  %s\n", p->a->key, s_verdict(p->a, va, sizeof(va)));
        else if (!p->a)
            printf("  %s  %s\n", p->b->key, s_verdict(p->b, vb, sizeof(vb)));
        else
            printf("  %s  %s -> %s%s%.200s\n", p->a->key, s_verdict(p->a, va, sizeof(va)),
                   s_verdict(p->b, vb, sizeof(vb)),
                   kind == KT_CMP_FIX || !p->b->reason[0] ? "" : "  ",
                   kind == KT_CMP_FIX ? "" : p->b->reason);
    }
}

static void s_print_text(const kt_compare_t *c, double min_change, size_t top)
{
    char wa[32], wb[32];
    kt_store_when(c->a.started_ms, wa, sizeof(wa));
    kt_store_when(c->b.started_ms, wb, sizeof(wb));
    printf("A: run %s (%s, %zu cells%s%s)\n", c->a.run_id, wa, c->a.n_cells,
           c->a.one_kernel ? ", kernel " : "", c->a.one_kernel ? c->a.kernel_label : "");
    printf("B: run %s (%s, %zu cells%s%s)\n", c->b.run_id, wb, c->b.n_cells,
           c->b.one_kernel ? ", kernel " : "", c->b.one_kernel ? c->b.kernel_label : "");
    printf("cells matched by %s\n",
           c->by_test ? "test (the name without its kernel label)" : "name");
    s_print_cells(c, KT_CMP_REGRESSION, "regressions: passed in A, fail or error in B");
    s_print_cells(c, KT_CMP_FIX, "fixes: fail or error in A, passed in B");
    s_print_cells(c, KT_CMP_CHANGED, "other verdict changes");
    s_print_cells(c, KT_CMP_ONLY_A, "only in A");
    s_print_cells(c, KT_CMP_ONLY_B, "only in B");
    printf("\nfigures that moved by %g %% or more: %zu of %zu compared", min_change, c->n_metrics,
           c->n_compared);
    if (c->n_overlap)
        printf(" (%zu more moved by the median but stayed within the other run's range)",
               c->n_overlap);
    printf("\n");
    for (size_t i = 0; i < c->n_metrics && (!top || i < top); i++) {
        const kt_cmp_metric_t *m = &c->metrics[i];
        char pct[32];
        if (isfinite(m->change_pct))
            snprintf(pct, sizeof(pct), "%+.0f %%", m->change_pct);
        else
            snprintf(pct, sizeof(pct), "from 0");
        char n[32] = "";
        if (m->na > 1 || m->nb > 1)
            snprintf(n, sizeof(n), ", medians of %u/%u", m->na, m->nb);
        printf("  %-6s %s  %s  %.6g -> %.6g (%s%s)\n", s_sense(m->sense), m->a->key, m->name,
               m->va, m->vb, pct, n);
    }
    if (top && c->n_metrics > top)
        printf("  ... %zu more (--top 0 lists all)\n", c->n_metrics - top);
    printf("\n%zu test(s) matched: %zu regression(s), %zu fix(es), %zu other change(s), %zu same; "
           "%zu only in A, %zu only in B\n",
           c->count[KT_CMP_SAME] + c->count[KT_CMP_REGRESSION] + c->count[KT_CMP_FIX] +
               c->count[KT_CMP_CHANGED],
           c->count[KT_CMP_REGRESSION], c->count[KT_CMP_FIX], c->count[KT_CMP_CHANGED],
           c->count[KT_CMP_SAME], c->count[KT_CMP_ONLY_A], c->count[KT_CMP_ONLY_B]);
}

int builtin_compare(int argc, char **argv)
{
    static const struct option opts[] = {
        {"results", required_argument, NULL, 'r'},
        {"min-change", required_argument, NULL, 'm'},
        {"top", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *results = "results";
    double min_change = 20;
    uint64_t top = 20;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:m:t:jh", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'r':
            results = optarg;
            break;
        case 'm':
            errno = 0;
            min_change = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(min_change >= 0) || min_change > 1e6) {
                fprintf(stderr, "ktstr-coord compare: --min-change '%s': expected a percentage "
                                ">= 0\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (kt_cli_parse_u64(optarg, 0, 1000000, &top) < 0) {
                fprintf(stderr, "ktstr-coord compare: --top '%s': expected a count >= 0\n",
                        optarg);
                return 2;
            }
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 2) {
        s_usage(stderr);
        return 2;
    }
    char err[1024] = "";
    _cleanup_(kt_store_close) kt_store_t *s = NULL;
    if (kt_store_open_results(results, &s, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord compare: %s\n", err);
        return 2;
    }
    int n_args = argc - optind;
    const char *spec_a = n_args >= 1 ? argv[optind] : "latest~1";
    const char *spec_b = n_args == 2 ? argv[optind + 1] : "latest";
    char run_a[256], run_b[256];
    if (kt_store_pick_run(s, spec_a, run_a, sizeof(run_a), err, sizeof(err)) < 0 ||
        kt_store_pick_run(s, spec_b, run_b, sizeof(run_b), err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord compare: %s\n", err);
        return 2;
    }
    _cleanup_(kt_compare_free) kt_compare_t cmp = {0};
    if (kt_compare_runs(s, run_a, run_b, min_change, &cmp, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord compare: %s\n", err);
        return 2;
    }
    if (json)
        s_print_json(&cmp, (size_t)top);
    else
        s_print_text(&cmp, min_change, (size_t)top);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ktstr-coord compare: cannot write the comparison: %s\n", strerror(errno));
        return 2;
    }
    return cmp.count[KT_CMP_REGRESSION] ? 1 : 0;
}
