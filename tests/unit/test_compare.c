/* A cell's figures from its sidecar (kt_metrics), the store's queries
 * (runs, a run's rows, history by glob and by the newest runs) and the
 * comparison of two runs (kt_compare): regressions, fixes, other changes,
 * cells on one side only, kernel labels taken off for an A/B of kernels,
 * repeats as samples (medians; overlapping ranges are not a move),
 * latest / latest~N, and a cell's time across runs for --budget. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_compare.h"
#include "kt_metrics.h"
#include "kt_store.h"
#include "kt_test_git.h"

static char *s_dir;

static int s_setup(void **state)
{
    (void)state;
    s_dir = kt_test_tmpdir("compare");
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    kt_test_rm_rf(s_dir);
    free(s_dir);
    return 0;
}

/* ---- kt_metrics ---- */

static const char s_sidecar[] =
    "{\"verdict\": \"fail\","
    " \"timings\": {\"boot_ms\": 2609, \"run_ms\": 9370, \"collect_ms\": 43, \"total_ms\": 12336,"
    "             \"kvm_check_ms\": 0},"
    " \"cgroups\": [{\"name\": \"cg_0\", \"work_units\": 35564, \"spread_pct\": 13.6,"
    "                \"max_gap_ms\": 7158.7, \"min_on_cpu_pct\": 0.6, \"max_on_cpu_pct\": 14.2,"
    "                \"worker_stats\": ["
    "                  {\"migrations\": 3, \"involuntary_ctxsw\": 6, \"run_delay_ms\": 10,"
    "                   \"wake_count\": 0, \"wake_p99_us\": 999},"
    "                  {\"migrations\": 4, \"involuntary_ctxsw\": 1, \"run_delay_ms\": 30,"
    "                   \"wake_count\": 5, \"wake_p99_us\": 120}]},"
    "               {\"name\": \"cg_1\", \"work_units\": 10}],"
    " \"checks\": [{\"name\": \"max_gap\", \"cgroup\": \"cg_0\", \"measured\": 7158.7},"
    "            {\"name\": \"cpuset_isolation\", \"cgroup\": \"cg_0\", \"measured\": 0},"
    "            {\"name\": \"cpuset_isolation\", \"cgroup\": \"cg_0\", \"measured\": 2},"
    "            {\"name\": \"bpf_callback_ns\", \"cgroup\": \"\", \"measured\": 900},"
    "            {\"name\": \"no_value\", \"cgroup\": \"cg_0\"}],"
    " \"bpf_stats\": {\"measured\": true, \"ns_per_call\": 10031, \"struct_ops_calls\": 2053},"
    " \"payload\": {\"metrics\": {\"ops\": 1500, \"label\": \"x\"}}}";

static double s_get(const json_t *m, const char *name)
{
    const json_t *v = json_object_get(m, name);
    if (!json_is_number(v))
        fail_msg("figure '%s' missing", name);
    return json_number_value(v);
}

static void test_metrics_from_sidecar(void **state)
{
    (void)state;
    json_t *doc = json_loads(s_sidecar, 0, NULL);
    assert_non_null(doc);
    json_t *m = kt_metrics_from_sidecar(doc);
    assert_non_null(m);
    assert_true(s_get(m, "timing.boot_ms") == 2609);
    assert_true(s_get(m, "timing.total_ms") == 12336);
    assert_null(json_object_get(m, "timing.kvm_check_ms"));
    assert_true(s_get(m, "cgroup.cg_0.work_units") == 35564);
    assert_true(s_get(m, "cgroup.cg_0.max_gap_ms") == 7158.7);
    assert_true(s_get(m, "cgroup.cg_0.migrations") == 7);
    assert_true(s_get(m, "cgroup.cg_0.involuntary_ctxsw") == 7);
    assert_true(s_get(m, "cgroup.cg_0.run_delay_ms") == 20);
    /* Only workers that woke count towards the worst p99. */
    assert_true(s_get(m, "cgroup.cg_0.wake_p99_us") == 120);
    assert_true(s_get(m, "cgroup.cg_1.work_units") == 10);
    assert_null(json_object_get(m, "cgroup.cg_1.migrations"));
    assert_true(s_get(m, "check.max_gap.cg_0") == 7158.7);
    /* A second entry of one check and cgroup (a later phase) gets #2. */
    assert_true(s_get(m, "check.cpuset_isolation.cg_0") == 0);
    assert_true(s_get(m, "check.cpuset_isolation.cg_0#2") == 2);
    assert_true(s_get(m, "check.bpf_callback_ns") == 900);
    assert_null(json_object_get(m, "check.no_value.cg_0"));
    assert_true(s_get(m, "bpf.ns_per_call") == 10031);
    assert_true(s_get(m, "payload.ops") == 1500);
    assert_null(json_object_get(m, "payload.label"));
    json_decref(m);

    /* BPF figures only when they were measured. */
    json_object_set_new(json_object_get(doc, "bpf_stats"), "measured", json_false());
    m = kt_metrics_from_sidecar(doc);
    assert_null(json_object_get(m, "bpf.ns_per_call"));
    json_decref(m);
    json_decref(doc);

    /* The text form: compact, sorted; nothing for what is not an object. */
    char *text = kt_metrics_json(s_sidecar, strlen(s_sidecar));
    assert_non_null(text);
    assert_non_null(strstr(text, "\"timing.boot_ms\":2609"));
    free(text);
    assert_null(kt_metrics_json("[1, 2]", 6));
    assert_null(kt_metrics_json("{not json", 9));
    text = kt_metrics_json("{}", 2);
    assert_string_equal(text, "{}");
    free(text);
}

static void test_metrics_direction(void **state)
{
    (void)state;
    assert_int_equal(kt_metrics_direction("cgroup.cg_0.work_units"), 1);
    assert_int_equal(kt_metrics_direction("cgroup.cg_0.spread_pct"), -1);
    assert_int_equal(kt_metrics_direction("cgroup.cg_0.wake_p99_us"), -1);
    assert_int_equal(kt_metrics_direction("timing.boot_ms"), -1);
    assert_int_equal(kt_metrics_direction("check.not_starved.cg_0"), 1);
    assert_int_equal(kt_metrics_direction("check.max_gap.cg_0#3"), -1);
    assert_int_equal(kt_metrics_direction("check.max_gap"), -1);
    assert_int_equal(kt_metrics_direction("check.max_gapx.cg_0"), 0);
    assert_int_equal(kt_metrics_direction("cgroup.cg_0.migrations"), 0);
    assert_int_equal(kt_metrics_direction("payload.ops"), 0);
}

/* ---- a store with two runs ---- */

typedef struct s_cell {
    const char *name, *verdict, *metrics;
} s_cell_t;

static void s_run(kt_store_t *s, const char *run_id, const char *label, const s_cell_t *cells,
                  size_t n)
{
    assert_int_equal(kt_store_run_begin(s, run_id, "{}"), 0);
    for (size_t i = 0; i < n; i++) {
        char id[64], name[256];
        snprintf(id, sizeof(id), "%s-%zu", run_id, i);
        snprintf(name, sizeof(name), "%s/%s", cells[i].name, label);
        /* A repeat's index goes after the kernel label, as kt_matrix names it. */
        const char *rep = strstr(cells[i].name, "@r");
        if (rep)
            snprintf(name, sizeof(name), "%.*s/%s/%s", (int)(rep - cells[i].name),
                     cells[i].name, label, rep + 1);
        assert_int_equal(kt_store_cell_add(s, run_id, id, name, label, label, "abc1234"), 0);
        assert_int_equal(kt_store_attempt_begin(s, run_id, id, 1, "w1"), 0);
        bool acc = false;
        assert_int_equal(kt_store_result(s, run_id, id, 1, "w1", cells[i].verdict,
                                         strcmp(cells[i].verdict, "pass") ? "it broke" : "",
                                         NULL, cells[i].metrics, &acc),
                         0);
        assert_true(acc);
    }
    assert_int_equal(kt_store_run_end(s, run_id, "done"), 0);
}

static kt_store_t *s_two_runs(const char *db)
{
    kt_store_t *s = NULL;
    unlink(db);
    assert_int_equal(kt_store_open(db, &s), 0);
    static const s_cell_t a[] = {
        {"g/regress", "pass", "{\"cgroup.x.work_units\": 100}"},
        {"g/fixed", "fail", NULL},
        {"g/moved", "pass", "{\"cgroup.x.wake_p99_us\": 100, \"timing.boot_ms\": 2000}"},
        {"g/gone", "pass", NULL},
        {"g/errs", "fail", NULL},
        {"g/rep@r1", "pass", "{\"cgroup.x.spread_pct\": 1, \"cgroup.x.max_gap_ms\": 10}"},
        {"g/rep@r2", "pass", "{\"cgroup.x.spread_pct\": 5, \"cgroup.x.max_gap_ms\": 11}"},
        {"g/rep@r3", "pass", "{\"cgroup.x.spread_pct\": 2, \"cgroup.x.max_gap_ms\": 12}"},
    };
    static const s_cell_t b[] = {
        {"g/regress", "error", "{\"cgroup.x.work_units\": 100}"},
        {"g/fixed", "pass", NULL},
        {"g/moved", "pass", "{\"cgroup.x.wake_p99_us\": 300, \"timing.boot_ms\": 2100}"},
        {"g/new", "pass", NULL},
        {"g/errs", "error", NULL},
        /* spread: median 2 -> 4 but within A's range 1..5: not a move;
         * max_gap: 10..12 -> 30..40: a move, worse. */
        {"g/rep@r1", "pass", "{\"cgroup.x.spread_pct\": 4, \"cgroup.x.max_gap_ms\": 30}"},
        {"g/rep@r2", "fail", "{\"cgroup.x.spread_pct\": 4, \"cgroup.x.max_gap_ms\": 40}"},
        {"g/rep@r3", "pass", "{\"cgroup.x.spread_pct\": 3, \"cgroup.x.max_gap_ms\": 35}"},
    };
    s_run(s, "run-a", "6.12.1", a, sizeof(a) / sizeof(a[0]));
    s_run(s, "run-b", "6.12.2", b, sizeof(b) / sizeof(b[0]));
    return s;
}

static const kt_cmp_pair_t *s_pair(const kt_compare_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_pairs; i++) {
        const kt_cmp_test_t *t = c->pairs[i].a ? c->pairs[i].a : c->pairs[i].b;
        if (strcmp(t->key, key) == 0)
            return &c->pairs[i];
    }
    fail_msg("no pair '%s'", key);
    return NULL;
}

static const kt_cmp_metric_t *s_moved(const kt_compare_t *c, const char *key, const char *name)
{
    for (size_t i = 0; i < c->n_metrics; i++)
        if (strcmp(c->metrics[i].a->key, key) == 0 && strcmp(c->metrics[i].name, name) == 0)
            return &c->metrics[i];
    return NULL;
}

static void test_compare_runs(void **state)
{
    (void)state;
    char db[4200];
    snprintf(db, sizeof(db), "%s/cmp.db", s_dir);
    kt_store_t *s = s_two_runs(db);
    kt_compare_t c;
    char err[512] = "";
    assert_int_equal(kt_compare_runs(s, "run-a", "run-b", 20, &c, err, sizeof(err)), 0);
    /* One kernel each (6.12.1, 6.12.2): matched without the label. */
    assert_true(c.by_test);
    assert_string_equal(c.a.kernel_label, "6.12.1");
    assert_int_equal(c.a.n_cells, 8);
    assert_int_equal(c.a.n_tests, 6);
    assert_int_equal(s_pair(&c, "g/regress")->kind, KT_CMP_REGRESSION);
    assert_int_equal(s_pair(&c, "g/fixed")->kind, KT_CMP_FIX);
    assert_int_equal(s_pair(&c, "g/moved")->kind, KT_CMP_SAME);
    assert_int_equal(s_pair(&c, "g/gone")->kind, KT_CMP_ONLY_A);
    assert_int_equal(s_pair(&c, "g/new")->kind, KT_CMP_ONLY_B);
    assert_int_equal(s_pair(&c, "g/errs")->kind, KT_CMP_CHANGED);
    /* Three samples, one failed in B: the test failed, a regression. */
    const kt_cmp_pair_t *rep = s_pair(&c, "g/rep");
    assert_int_equal(rep->kind, KT_CMP_REGRESSION);
    assert_int_equal(rep->a->n, 3);
    assert_int_equal(rep->b->n_pass, 2);
    assert_string_equal(rep->b->verdict, "fail");
    assert_string_equal(rep->b->reason, "it broke");
    assert_int_equal(c.count[KT_CMP_REGRESSION], 2);
    assert_int_equal(c.count[KT_CMP_FIX], 1);
    assert_int_equal(c.count[KT_CMP_SAME], 1);

    /* Figures: wake p99 tripled (worse); boot +5 % is under 20 %; the
     * repeat's spread moved by its median but stayed in A's range; its
     * max_gap left it (medians 11 -> 35). */
    const kt_cmp_metric_t *m = s_moved(&c, "g/moved", "cgroup.x.wake_p99_us");
    assert_non_null(m);
    assert_int_equal(m->sense, -1);
    assert_true(fabs(m->change_pct - 200) < 1e-9);
    assert_null(s_moved(&c, "g/moved", "timing.boot_ms"));
    assert_null(s_moved(&c, "g/rep", "cgroup.x.spread_pct"));
    m = s_moved(&c, "g/rep", "cgroup.x.max_gap_ms");
    assert_non_null(m);
    assert_true(m->va == 11 && m->vb == 35);
    assert_int_equal(m->na, 3);
    assert_int_equal(m->sense, -1);
    assert_int_equal(c.n_overlap, 1);
    /* work_units 100 -> 100, boot, wake, spread, gap. */
    assert_int_equal(c.n_compared, 5);
    assert_int_equal(c.n_metrics, 2);
    /* The bigger move first among the worse ones. */
    assert_string_equal(c.metrics[0].name, "cgroup.x.max_gap_ms");
    kt_compare_free(&c);

    /* A run against itself: nothing changed. */
    assert_int_equal(kt_compare_runs(s, "run-b", "run-b", 0, &c, err, sizeof(err)), 0);
    assert_int_equal(c.count[KT_CMP_SAME], c.n_pairs);
    assert_int_equal(c.n_metrics, 0);
    kt_compare_free(&c);

    /* An unknown run is named. */
    assert_int_equal(kt_compare_runs(s, "run-a", "run-x", 20, &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "run-x"));
    kt_store_close(&s);
}

static void test_compare_two_kernels_in_a_run(void **state)
{
    (void)state;
    char db[4200];
    snprintf(db, sizeof(db), "%s/mixed.db", s_dir);
    unlink(db);
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(db, &s), 0);
    static const s_cell_t one[] = {{"g/t", "pass", NULL}};
    s_run(s, "r1", "6.12.1", one, 1);
    /* r2 has two kernels: names keep their labels, so only 6.12.1 matches. */
    assert_int_equal(kt_store_run_begin(s, "r2", "{}"), 0);
    const char *labels[] = {"6.12.1", "6.12.2"};
    for (unsigned i = 0; i < 2; i++) {
        char id[16], name[64];
        snprintf(id, sizeof(id), "c%u", i);
        snprintf(name, sizeof(name), "g/t/%s", labels[i]);
        assert_int_equal(kt_store_cell_add(s, "r2", id, name, labels[i], labels[i], NULL), 0);
        assert_int_equal(kt_store_attempt_begin(s, "r2", id, 1, "w"), 0);
        bool acc;
        assert_int_equal(kt_store_result(s, "r2", id, 1, "w", "fail", "x", NULL, NULL, &acc), 0);
    }
    kt_compare_t c;
    char err[256];
    assert_int_equal(kt_compare_runs(s, "r1", "r2", 20, &c, err, sizeof(err)), 0);
    assert_false(c.by_test);
    assert_int_equal(s_pair(&c, "g/t/6.12.1")->kind, KT_CMP_REGRESSION);
    assert_int_equal(s_pair(&c, "g/t/6.12.2")->kind, KT_CMP_ONLY_B);
    kt_compare_free(&c);
    kt_store_close(&s);
}

/* ---- runs, latest~N, history ---- */

typedef struct s_seen {
    char rows[16][128];
    unsigned n;
} s_seen_t;

static int s_row(const kt_store_row_t *row, void *userdata)
{
    s_seen_t *seen = userdata;
    if (seen->n < 16)
        snprintf(seen->rows[seen->n++], sizeof(seen->rows[0]), "%s %s %s%s", row->name,
                 row->run_id, row->verdict, row->metrics_json ? " +m" : "");
    return 0;
}

static int s_count_runs(const kt_store_run_t *run, void *userdata)
{
    unsigned *n = userdata;
    if (strcmp(run->run_id, "run-b") == 0) {
        assert_int_equal(run->cells, 8);
        assert_int_equal(run->pass, 5);
        assert_int_equal(run->fail, 1);
        assert_int_equal(run->error, 2);
        assert_string_equal(run->status, "done");
    }
    (*n)++;
    return 0;
}

static void test_store_queries(void **state)
{
    (void)state;
    char db[4200];
    snprintf(db, sizeof(db), "%s/q.db", s_dir);
    kt_store_t *s = s_two_runs(db);
    unsigned n = 0;
    assert_int_equal(kt_store_runs(s, s_count_runs, &n), 0);
    assert_int_equal(n, 2);

    char id[256], err[256] = "";
    assert_int_equal(kt_store_pick_run(s, "latest", id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, "run-b");
    assert_int_equal(kt_store_pick_run(s, "latest~1", id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, "run-a");
    assert_int_equal(kt_store_pick_run(s, "latest~2", id, sizeof(id), err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "2 run(s)"));
    assert_int_equal(kt_store_pick_run(s, "latest~x", id, sizeof(id), err, sizeof(err)), -EINVAL);
    assert_int_equal(kt_store_pick_run(s, "run-a", id, sizeof(id), err, sizeof(err)), 0);
    assert_string_equal(id, "run-a");

    s_seen_t seen = {0};
    unsigned walked = 0;
    assert_int_equal(kt_store_history(s, "g/moved/*", 0, s_row, &seen, &walked), 0);
    assert_int_equal(walked, 2);
    assert_string_equal(seen.rows[0], "g/moved/6.12.1 run-a pass +m");
    assert_string_equal(seen.rows[1], "g/moved/6.12.2 run-b pass +m");
    /* Only the newest run. */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kt_store_history(s, "g/moved/*", 1, s_row, &seen, &walked), 0);
    assert_int_equal(walked, 1);
    assert_string_equal(seen.rows[0], "g/moved/6.12.2 run-b pass +m");
    /* Repeats, by name: r1..r3 of each run. */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kt_store_history(s, "g/rep/*", 0, s_row, &seen, &walked), 0);
    assert_int_equal(walked, 6);
    assert_int_equal(kt_store_history(s, "nothing*", 0, s_row, &seen, &walked), 0);
    assert_int_equal(walked, 0);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kt_store_run_rows(s, "run-a", s_row, &seen), 0);
    assert_int_equal(seen.n, 8);
    assert_string_equal(seen.rows[0], "g/errs/6.12.1 run-a fail");
    assert_int_equal(kt_store_run_rows(s, "run-z", s_row, &seen), -ENOENT);
    assert_non_null(strstr(kt_store_error(s), "run-z"));
    kt_store_close(&s);

    /* A results folder without a store is not made one. */
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/empty", s_dir);
    assert_int_equal(kt_store_open_results(dir, &s, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "empty/ktstr.db"));
    assert_null(s);
}

/* A cell's time across runs: the median of its last accepted results that
 * carry timing.total_ms; stale results and ones without figures do not
 * count. */
static void test_cell_ms(void **state)
{
    (void)state;
    char db[4200];
    snprintf(db, sizeof(db), "%s/times.db", s_dir);
    unlink(db);
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(db, &s), 0);
    static const char *const metrics[] = {"{\"timing.total_ms\": 9000}", NULL,
                                          "{\"timing.total_ms\": 11000}",
                                          "{\"timing.total_ms\": 10000}"};
    for (unsigned i = 0; i < 4; i++) {
        char run[16];
        snprintf(run, sizeof(run), "t%u", i);
        assert_int_equal(kt_store_run_begin(s, run, "{}"), 0);
        assert_int_equal(kt_store_cell_add(s, run, "c1", "g/c1", "k", "k", NULL), 0);
        assert_int_equal(kt_store_attempt_begin(s, run, "c1", 1, "w"), 0);
        assert_int_equal(kt_store_attempt_begin(s, run, "c1", 2, "w"), 0);
        bool acc;
        /* Attempt 1 was fenced: its late result is stale and not a time. */
        assert_int_equal(kt_store_result(s, run, "c1", 1, "w", "pass", "", NULL,
                                         "{\"timing.total_ms\": 99000}", &acc),
                         0);
        assert_false(acc);
        assert_int_equal(kt_store_result(s, run, "c1", 2, "w", "pass", "", NULL, metrics[i], &acc),
                         0);
        assert_true(acc);
    }
    uint64_t ms = 0;
    assert_int_equal(kt_store_cell_ms(s, "c1", 5, &ms), 0);
    assert_int_equal(ms, 10000);
    /* The last one only. */
    assert_int_equal(kt_store_cell_ms(s, "c1", 1, &ms), 0);
    assert_int_equal(ms, 10000);
    /* The last two: 11000 and 10000. */
    assert_int_equal(kt_store_cell_ms(s, "c1", 2, &ms), 0);
    assert_int_equal(ms, 10500);
    assert_int_equal(kt_store_cell_ms(s, "c2", 5, &ms), -ENOENT);
    assert_int_equal(kt_store_cell_ms(s, "c1", 0, &ms), -EINVAL);
    kt_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_from_sidecar),
        cmocka_unit_test(test_metrics_direction),
        cmocka_unit_test(test_compare_runs),
        cmocka_unit_test(test_compare_two_kernels_in_a_run),
        cmocka_unit_test(test_store_queries),
        cmocka_unit_test(test_cell_ms),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
