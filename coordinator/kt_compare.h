/* Two runs of the store side by side (`ktstr-coord compare`): which cells
 * changed verdict, which appeared or went, and which figures moved.
 *
 * Cells are matched by name. A gauntlet's repeats (names ending in /r{k})
 * are samples of one test: a test passed when every sample passed, and a
 * figure is the median of its samples; with two samples or more on each
 * side, a figure counts as moved only when the two sides' ranges do not
 * overlap, so run-to-run noise is not reported as change. When each run has
 * a single kernel, the kernel's label is taken off the names too, so that
 * the same gauntlet run on two kernels (an A/B of kernels) lines up test by
 * test. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_store.h"

enum kt_cmp_kind {
    KT_CMP_SAME = 0,   /* same verdict */
    KT_CMP_REGRESSION, /* pass in A, fail or error in B */
    KT_CMP_FIX,        /* fail or error in A, pass in B */
    KT_CMP_CHANGED,    /* any other change (fail <-> error, skip) */
    KT_CMP_ONLY_A,
    KT_CMP_ONLY_B,
    KT_CMP__COUNT,
};

const char *kt_cmp_kind_name(enum kt_cmp_kind k);

typedef struct kt_cmp_cell {
    char *key;          /* what it is matched by */
    char *name, *kernel_label, *kernel_commit, *verdict, *reason;
    json_t *metrics;    /* kt_metrics' object, NULL when none was kept */
} kt_cmp_cell_t;

/* The samples of one test: cells[0..n) of a side, all with this key. */
typedef struct kt_cmp_test {
    const char *key;
    const kt_cmp_cell_t *cells;
    size_t n;
    unsigned n_pass, n_fail, n_error;
    const char *verdict;  /* pass: all passed; fail: one failed; error: one
                             errored, none failed; else the first's */
    const char *reason;   /* the first sample's that did not pass, or "" */
} kt_cmp_test_t;

typedef struct kt_cmp_side {
    char run_id[256];
    int64_t started_ms;
    char kernel_label[256]; /* the run's one kernel; "" when several */
    bool one_kernel;
    kt_cmp_cell_t *cells;   /* sorted by key */
    size_t n_cells;
    kt_cmp_test_t *tests;   /* by key */
    size_t n_tests;
} kt_cmp_side_t;

typedef struct kt_cmp_pair {
    enum kt_cmp_kind kind;
    const kt_cmp_test_t *a, *b; /* NULL on the side it is missing from */
} kt_cmp_pair_t;

typedef struct kt_cmp_metric {
    const kt_cmp_test_t *a;     /* the test (its key names it) */
    char name[288];
    double va, vb;              /* medians of the samples */
    unsigned na, nb;            /* samples with the figure */
    double change_pct;          /* (b - a) / |a| x 100; +-inf when a is 0 */
    int sense;                  /* +1 better, -1 worse, 0 neither (kt_metrics_direction) */
} kt_cmp_metric_t;

typedef struct kt_compare {
    kt_cmp_side_t a, b;
    bool by_test;               /* kernel labels taken off the names */
    kt_cmp_pair_t *pairs;       /* by key */
    size_t n_pairs;
    size_t count[KT_CMP__COUNT];
    kt_cmp_metric_t *metrics;   /* moved by min_change_pct or more: worse first, then by size */
    size_t n_metrics;
    size_t n_compared;          /* figures present on both sides */
    size_t n_overlap;           /* moved by the median but within each other's range */
} kt_compare_t;

/* Compares run_b against run_a. -ENOENT for a run the store does not know
 * (err names it), other -errno on failure. */
int kt_compare_runs(kt_store_t *s, const char *run_a, const char *run_b, double min_change_pct,
                    kt_compare_t *ret, char *err, size_t err_len);
void kt_compare_free(kt_compare_t *c);

/* A run named on the command line: its id, or `latest` / `latest~N` (the
 * newest run, the one N before it). -ENOENT when there is no such run. */
int kt_store_pick_run(kt_store_t *s, const char *spec, char *buf, size_t len, char *err,
                      size_t err_len);
