/* The checks: for each one, telemetry that passes and telemetry that breaks
 * its threshold; disabled checks stay silent; the reason names the check,
 * the value and the cgroup. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_checks.h"

#define MS (1000ull * 1000ull)
#define SEC (1000ull * MS)

/* A plan with two cgroups on tiny-2llc: cg_0 on all CPUs (no cpuset), cg_1
 * pinned to LLC 1 (CPUs 2-3), two spinners each; all checks off. */
static void s_plan(kt_plan_t *p, enum kt_work_type work)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->scenario, sizeof(p->scenario), "t");
    p->topology = (kt_topology_t){1, 2, 2, 1};
    p->duration_ms = 1000;
    p->n_cgroups = 2;
    for (unsigned i = 0; i < 2; i++) {
        kt_plan_cgroup_t *c = &p->cgroups[i];
        snprintf(c->name, sizeof(c->name), "cg_%u", i);
        c->workers = 2;
        c->work = work;
    }
    kt_topology_all_mask(&p->topology, &p->cgroups[0].cpus);
    p->cgroups[1].has_cpuset = true;
    kt_topology_llc_mask(&p->topology, 1, &p->cgroups[1].cpus);
}

/* Healthy telemetry: 1 s of wall time, 90% on CPU, 1000 units and loop
 * passes, 10 migrations, 10 ms gaps, on the cgroup's own CPUs, 50 us p99
 * wakeups with a CV of 0.5. */
static void s_healthy(const kt_plan_t *p, kt_worker_stats_t *ws, size_t *ret_n)
{
    size_t n = 0;
    for (unsigned c = 0; c < p->n_cgroups; c++) {
        for (unsigned i = 0; i < p->cgroups[c].workers; i++) {
            kt_worker_stats_t *w = &ws[n++];
            memset(w, 0, sizeof(*w));
            w->cgroup = c;
            w->index = i;
            w->pid = (int32_t)(100 + n);
            w->work_units = 1000;
            w->wall_time_ns = SEC;
            w->cpu_time_ns = 900 * MS;
            w->max_gap_ns = 10 * MS;
            kt_cpumask_set(&w->cpus_used, 2 + i % 2);
            w->wake_count = 5000;
            w->wake_lat_p50_ns = 10000;
            w->wake_lat_p99_ns = 50000;
            w->wake_lat_max_ns = 90000;
            /* mean 20 us, stddev 10 us: CV 0.5 */
            w->wake_lat_sum_ns = 5000ull * 20000;
            w->wake_lat_sumsq = 5000.0 * (1e8 + 4e8);
            w->iterations = 1000;
            w->migrations = 10;
        }
    }
    *ret_n = n;
}

static const kt_check_result_t *s_find(const kt_check_report_t *r, enum kt_check_id id, int cg)
{
    for (unsigned i = 0; i < r->n_results; i++)
        if (r->results[i].id == id && r->results[i].cgroup == cg)
            return &r->results[i];
    return NULL;
}

static unsigned s_count(const kt_check_report_t *r, enum kt_check_id id)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_results; i++)
        n += r->results[i].id == id;
    return n;
}

static void s_reason(const kt_check_report_t *r, const kt_plan_t *p, const char *want)
{
    char buf[512];
    kt_check_report_reason(r, p, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(kt_check_name(KT_CHECK_STARVED), "not_starved");
    assert_string_equal(kt_check_name(KT_CHECK_SPREAD), "fairness_spread");
    assert_string_equal(kt_check_name(KT_CHECK_GAP), "max_gap");
    assert_string_equal(kt_check_name(KT_CHECK_ISOLATION), "cpuset_isolation");
    assert_string_equal(kt_check_name(KT_CHECK_WAKE_P99), "wake_p99");
    assert_string_equal(kt_check_name(KT_CHECK_WORK_RATE), "work_rate");
    assert_string_equal(kt_check_name(KT_CHECK_BPF_CALLBACK), "bpf_callback_ns");
    assert_string_equal(kt_check_name(KT_CHECK_WAKE_CV), "wake_cv");
    assert_string_equal(kt_check_name(KT_CHECK_THROUGHPUT_CV), "throughput_cv");
    assert_string_equal(kt_check_name(KT_CHECK_ITERATION_RATE), "iteration_rate");
    assert_string_equal(kt_check_name(KT_CHECK_MIGRATION_RATIO), "migration_ratio");
    assert_string_equal(kt_check_name(KT_CHECK__COUNT), "unknown");

    kt_worker_stats_t w = {.cpu_time_ns = 250 * MS, .wall_time_ns = SEC};
    assert_true(kt_worker_on_cpu_pct(&w) == 25.0);
    w.cpu_time_ns = 2 * SEC; /* clock skew: clamped */
    assert_true(kt_worker_on_cpu_pct(&w) == 100.0);
    w.wall_time_ns = 0;
    assert_true(kt_worker_on_cpu_pct(&w) == 0.0);
}

static void test_starved(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    p.thresholds.check_starved = true;
    s_healthy(&p, ws, &n);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_int_equal(r.n_failed, 0);
    assert_int_equal(s_count(&r, KT_CHECK_STARVED), 2);
    assert_true(s_find(&r, KT_CHECK_STARVED, 0)->passed);
    s_reason(&r, &p, "");

    ws[3].work_units = 0; /* cg_1 worker 1 never ran */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_STARVED, 1);
    assert_non_null(c);
    assert_false(c->passed);
    assert_int_equal(c->worker, 1);
    assert_true(c->measured == 0.0);
    assert_true(c->threshold == 1.0);
    assert_string_equal(c->unit, "units");
    assert_non_null(strstr(c->detail, "worker 1"));
    assert_non_null(strstr(c->detail, "pid 104"));
    assert_true(s_find(&r, KT_CHECK_STARVED, 0)->passed);
    s_reason(&r, &p, "not_starved 0.0 units < 1.0 in cgroup 'cg_1'");
}

static void test_spread(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    p.thresholds.check_spread = true;
    p.thresholds.max_spread_pct = 15.0;
    s_healthy(&p, ws, &n);
    ws[1].cpu_time_ns = 800 * MS; /* 90% vs 80%: spread 10 */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_SPREAD, 0);
    assert_non_null(c);
    assert_true(c->passed);
    assert_float_equal(c->measured, 10.0, 1e-9);

    ws[0].cpu_time_ns = SEC;      /* 100% */
    ws[1].cpu_time_ns = 500 * MS; /* 50% */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    c = s_find(&r, KT_CHECK_SPREAD, 0);
    assert_false(c->passed);
    assert_int_equal(c->worker, -1);
    assert_float_equal(c->measured, 50.0, 1e-9);
    assert_true(c->threshold == 15.0);
    assert_string_equal(c->unit, "pct");
    assert_string_equal(c->detail, "on-CPU share 50.0%..100.0% across 2 workers");
    assert_true(s_find(&r, KT_CHECK_SPREAD, 1)->passed);
    s_reason(&r, &p, "fairness_spread 50.0 pct > 15.0 in cgroup 'cg_0'");

    /* A looser threshold (debug kernels) lets the same telemetry pass. */
    p.thresholds.max_spread_pct = 50.0;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);

    /* A single worker has no spread. */
    kt_cgroup_summary_t sum;
    kt_cgroup_summarize(&p, 0, ws, 1, &sum);
    assert_int_equal(sum.workers, 1);
    assert_true(sum.spread_pct == 0.0);
    p.thresholds.max_spread_pct = 15.0;
    assert_int_equal(kt_checks_evaluate(&p, ws, 1, &r), 0);
    assert_null(s_find(&r, KT_CHECK_SPREAD, 0));
}

static void test_gap(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    p.thresholds.check_gap = true;
    p.thresholds.max_gap_ms = 2000;
    s_healthy(&p, ws, &n);
    ws[2].max_gap_ns = 2000 * MS; /* exactly the bound passes */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_float_equal(s_find(&r, KT_CHECK_GAP, 1)->measured, 2000.0, 1e-9);

    ws[2].max_gap_ns = 2500 * MS;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_GAP, 1);
    assert_false(c->passed);
    assert_int_equal(c->worker, 0);
    assert_float_equal(c->measured, 2500.0, 1e-9);
    assert_true(c->threshold == 2000.0);
    assert_string_equal(c->unit, "ms");
    s_reason(&r, &p, "max_gap 2500.0 ms > 2000.0 in cgroup 'cg_1'");
}

static void test_isolation(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    p.thresholds.check_isolation = true;
    s_healthy(&p, ws, &n);
    /* cg_0 has no cpuset: running anywhere is fine and is not checked. */
    kt_cpumask_set(&ws[0].cpus_used, 0);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_null(s_find(&r, KT_CHECK_ISOLATION, 0));
    assert_true(s_find(&r, KT_CHECK_ISOLATION, 1)->passed);

    kt_cpumask_set(&ws[3].cpus_used, 0); /* cg_1 is pinned to 2-3 */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_ISOLATION, 1);
    assert_false(c->passed);
    assert_int_equal(c->worker, 1);
    assert_true(c->measured == 1.0);
    assert_string_equal(c->unit, "cpus");
    assert_string_equal(c->detail, "worker 1 ran on 0,3, cpuset 2-3");
    s_reason(&r, &p, "cpuset_isolation 1.0 cpus > 0.0 in cgroup 'cg_1'");
}

static void test_wake_p99(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_PIPE_PINGPONG);
    p.thresholds.max_p99_wake_us = 500;
    s_healthy(&p, ws, &n);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_true(s_find(&r, KT_CHECK_WAKE_P99, 0)->passed);
    assert_float_equal(s_find(&r, KT_CHECK_WAKE_P99, 0)->measured, 50.0, 1e-9);

    ws[1].wake_lat_p99_ns = 800000; /* 800 us */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_WAKE_P99, 0);
    assert_false(c->passed);
    assert_int_equal(c->worker, 1);
    assert_float_equal(c->measured, 800.0, 1e-9);
    assert_true(c->threshold == 500.0);
    assert_string_equal(c->unit, "us");
    assert_string_equal(c->detail, "p99 wake latency: worker 1 over 5000 wakeups");
    s_reason(&r, &p, "wake_p99 800.0 us > 500.0 in cgroup 'cg_0'");

    /* Spinners do not block: their wake latency is not judged. */
    p.cgroups[0].work = KT_WORK_SPIN;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_null(s_find(&r, KT_CHECK_WAKE_P99, 0));
}

static void test_work_rate(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    p.thresholds.min_work_rate = 100.0;
    s_healthy(&p, ws, &n); /* 1000 units in 1 s */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_float_equal(s_find(&r, KT_CHECK_WORK_RATE, 1)->measured, 1000.0, 1e-9);

    ws[2].work_units = 100;
    ws[2].wall_time_ns = 2 * SEC; /* 50 units/s */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_WORK_RATE, 1);
    assert_false(c->passed);
    assert_int_equal(c->worker, 0);
    assert_float_equal(c->measured, 50.0, 1e-9);
    assert_string_equal(c->unit, "units/s");
    s_reason(&r, &p, "work_rate 50.0 units/s < 100.0 in cgroup 'cg_1'");
}

static void test_wake_cv(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_FUTEX_PINGPONG);
    p.thresholds.max_wake_cv = 1.0;
    s_healthy(&p, ws, &n); /* every worker: mean 20 us, CV 0.5 */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_WAKE_CV, 0);
    assert_true(c->passed);
    assert_float_equal(c->measured, 0.5, 1e-9);
    assert_int_equal(c->worker, -1);

    /* One worker of cg_1 wakes at 20 us mean with stddev 60 us (CV 3): the
     * pooled CV of cg_1 is sqrt((1e8 + 3.6e9) / 2) / 20000 = 2.15. */
    ws[3].wake_lat_sumsq = 5000.0 * (3.6e9 + 4e8);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    c = s_find(&r, KT_CHECK_WAKE_CV, 1);
    assert_false(c->passed);
    assert_float_equal(c->measured, sqrt((1e8 + 3.6e9) / 2) / 20000, 1e-9);
    assert_true(c->threshold == 1.0);
    assert_string_equal(c->unit, "cv");
    assert_non_null(strstr(c->detail, "10000 wakeups of 2 workers"));
    assert_non_null(strstr(c->detail, "most variable: worker 1 (cv 3.000)"));
    assert_true(s_find(&r, KT_CHECK_WAKE_CV, 0)->passed);
    s_reason(&r, &p, "wake_cv 2.151 cv > 1 in cgroup 'cg_1'");

    /* Fewer than 2 wakeups: nothing to judge, a passing line says so. */
    for (size_t i = 2; i < 4; i++)
        ws[i].wake_count = 0;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_non_null(strstr(s_find(&r, KT_CHECK_WAKE_CV, 1)->detail, "too few"));
    /* Spinners are not judged on wake latency. */
    p.cgroups[1].work = KT_WORK_SPIN;
    ws[3].wake_count = 5000;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_null(s_find(&r, KT_CHECK_WAKE_CV, 1));
}

static void test_throughput_cv(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    p.thresholds.max_throughput_cv = 0.2;
    s_healthy(&p, ws, &n);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_float_equal(s_find(&r, KT_CHECK_THROUGHPUT_CV, 0)->measured, 0.0, 1e-12);

    /* cg_0: 1000 and 500 units/s (a worker stopped half the time): mean 750,
     * stddev 250, CV 1/3. */
    ws[1].work_units = 500;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_THROUGHPUT_CV, 0);
    assert_false(c->passed);
    assert_int_equal(c->worker, 1);
    assert_float_equal(c->measured, 1.0 / 3.0, 1e-9);
    assert_string_equal(c->detail,
                        "work rate 500.0..1000.0 units/s (mean 750.0) across 2 workers; "
                        "slowest: worker 1");
    s_reason(&r, &p, "throughput_cv 0.3333 cv > 0.2 in cgroup 'cg_0'");
    /* Relaxed past it: passes. */
    p.thresholds.max_throughput_cv = 0.4;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    /* One worker alone has no spread to judge. */
    p.cgroups[0].workers = 1;
    ws[1].cgroup = 1;
    ws[1].index = 2;
    p.thresholds.max_throughput_cv = 0.01;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    assert_null(s_find(&r, KT_CHECK_THROUGHPUT_CV, 0));
    assert_false(s_find(&r, KT_CHECK_THROUGHPUT_CV, 1)->passed);
}

static void test_iteration_rate(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_MIXED);
    p.thresholds.min_iteration_rate = 100;
    s_healthy(&p, ws, &n);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_float_equal(s_find(&r, KT_CHECK_ITERATION_RATE, 1)->measured, 1000.0, 1e-9);

    ws[2].iterations = 60; /* 60 passes in 1 s: 1000 units, 16 per pass */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_ITERATION_RATE, 1);
    assert_false(c->passed);
    assert_int_equal(c->worker, 0);
    assert_float_equal(c->measured, 60.0, 1e-9);
    assert_string_equal(c->unit, "iter/s");
    assert_string_equal(c->detail, "slowest worker 0: 60 passes in 1000 ms");
    s_reason(&r, &p, "iteration_rate 60.0 iter/s < 100.0 in cgroup 'cg_1'");
}

static void test_migration_ratio(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_AFFINITY_CHURN);
    p.thresholds.max_migration_ratio = 0.1;
    s_healthy(&p, ws, &n); /* 10 migrations in 1000 passes */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_float_equal(s_find(&r, KT_CHECK_MIGRATION_RATIO, 0)->measured, 0.01, 1e-12);

    ws[1].migrations = 990; /* affinity churn: nearly every pass moves */
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    const kt_check_result_t *c = s_find(&r, KT_CHECK_MIGRATION_RATIO, 0);
    assert_false(c->passed);
    assert_int_equal(c->worker, 1);
    assert_float_equal(c->measured, 0.99, 1e-12);
    assert_string_equal(c->unit, "ratio");
    assert_string_equal(c->detail, "worker 1: 990 migrations in 1000 passes");
    s_reason(&r, &p, "migration_ratio 0.99 ratio > 0.1 in cgroup 'cg_0'");

    /* No pass at all: the migrations count against one. */
    ws[1].migrations = 3;
    ws[1].iterations = 0;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
    assert_float_equal(s_find(&r, KT_CHECK_MIGRATION_RATIO, 0)->measured, 3.0, 1e-12);
}

/* defaults -> scheduler -> scenario: a layer changes only what it set. */
static void test_thresholds_merge(void **state)
{
    (void)state;
    kt_thresholds_t sched = {0}, scen = {0}, t;
    /* The scheduler relaxes spread to 30, switches the gap check off, bounds
     * migrations and wake CV. */
    sched.max_spread_pct = 30;
    sched.check_gap = false;
    sched.max_migration_ratio = 0.5;
    sched.max_wake_cv = 2;
    sched.max_gap_ms = 1; /* not in set: must not leak through */
    sched.set = KT_THR_BIT(KT_THR_SPREAD) | KT_THR_BIT(KT_THR_GAP_ON) |
                KT_THR_BIT(KT_THR_MIGRATION_RATIO) | KT_THR_BIT(KT_THR_WAKE_CV);
    /* The scenario switches spread off, overrides the migration bound and
     * switches wake CV off again. */
    scen.check_spread = false;
    scen.max_migration_ratio = 0.25;
    scen.max_wake_cv = 0;
    scen.set = KT_THR_BIT(KT_THR_SPREAD_ON) | KT_THR_BIT(KT_THR_MIGRATION_RATIO) |
               KT_THR_BIT(KT_THR_WAKE_CV);
    kt_thresholds_layer(&sched, &scen, &t);

    kt_thresholds_t def;
    kt_thresholds_default(&def);
    assert_false(t.check_spread);                 /* scenario switch-off */
    assert_true(t.max_spread_pct == 30);          /* scheduler's value stays */
    assert_false(t.check_gap);                    /* scheduler switch-off */
    assert_int_equal(t.max_gap_ms, def.max_gap_ms);
    assert_true(t.max_migration_ratio == 0.25);   /* scenario override */
    assert_true(t.max_wake_cv == 0);              /* off again */
    assert_true(t.check_starved && t.check_isolation); /* untouched defaults */
    assert_int_equal(t.max_p99_wake_us, 0);
    assert_true(t.max_throughput_cv == 0 && t.min_iteration_rate == 0);
    assert_int_equal(t.set, sched.set | scen.set);

    assert_int_equal(kt_thresholds_source(&t, KT_THR_SPREAD), KT_THR_FROM_SCHEDULER);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_SPREAD_ON), KT_THR_FROM_SCENARIO);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_GAP_ON), KT_THR_FROM_SCHEDULER);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_MIGRATION_RATIO), KT_THR_FROM_SCENARIO);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_GAP), KT_THR_FROM_DEFAULT);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_STARVED), KT_THR_FROM_DEFAULT);
    assert_string_equal(kt_thr_source_name(KT_THR_FROM_DEBUG_DEFAULT), "debug-default");
    assert_string_equal(kt_thr_field_name(KT_THR_ITERATION_RATE), "iteration_rate");

    /* No scheduler layer: the scenario's alone; an empty layer changes
     * nothing. */
    kt_thresholds_layer(NULL, &scen, &t);
    assert_true(t.max_spread_pct == def.max_spread_pct);
    assert_true(t.check_gap);
    kt_thresholds_t empty = {0}, before = t;
    kt_thresholds_merge(&t, &empty, KT_THR_FROM_SCHEDULER);
    assert_memory_equal(&t, &before, sizeof(t));

    /* bpf bounds go as one field: the later layer's list replaces. */
    kt_thresholds_t a = {0}, b = {0};
    assert_int_equal(kt_checks_callback_bound_add(&a, "x_enqueue", 100), 0);
    assert_int_equal(kt_checks_callback_bound_add(&a, "x_dispatch", 200), 0);
    a.set = KT_THR_BIT(KT_THR_CALLBACK_BOUNDS) | KT_THR_BIT(KT_THR_CALLBACK_NS);
    b.set = KT_THR_BIT(KT_THR_CALLBACK_BOUNDS) | KT_THR_BIT(KT_THR_CALLBACK_NS);
    kt_thresholds_layer(&a, &b, &t);
    assert_int_equal(t.n_callback_bounds, 0);
    kt_thresholds_layer(&a, &empty, &t);
    assert_int_equal(t.n_callback_bounds, 2);
    assert_string_equal(t.callback_bounds[1].prog, "x_dispatch");
}

/* Debug kernels: ktstr's 35 % / 3000 ms for what no layer set. */
static void test_thresholds_debug(void **state)
{
    (void)state;
    kt_thresholds_t t, sched = {0}, scen = {0};
    kt_thresholds_layer(NULL, &scen, &t);
    assert_int_equal(kt_thresholds_relax_for_debug(&t), 2);
    assert_true(t.max_spread_pct == KT_THR_DEBUG_SPREAD_PCT);
    assert_int_equal(t.max_gap_ms, KT_THR_DEBUG_GAP_MS);
    assert_true(t.max_spread_pct == 35.0 && t.max_gap_ms == 3000);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_SPREAD), KT_THR_FROM_DEBUG_DEFAULT);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_GAP), KT_THR_FROM_DEBUG_DEFAULT);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_SPREAD_ON), KT_THR_FROM_DEFAULT);

    /* The scheduler set spread, the scenario the gap: both stay. */
    sched.max_spread_pct = 20;
    sched.set = KT_THR_BIT(KT_THR_SPREAD);
    scen.max_gap_ms = 500;
    scen.set = KT_THR_BIT(KT_THR_GAP);
    kt_thresholds_layer(&sched, &scen, &t);
    assert_int_equal(kt_thresholds_relax_for_debug(&t), 0);
    assert_true(t.max_spread_pct == 20);
    assert_int_equal(t.max_gap_ms, 500);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_SPREAD), KT_THR_FROM_SCHEDULER);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_GAP), KT_THR_FROM_SCENARIO);

    /* Only one set: the other relaxes. */
    kt_thresholds_layer(&sched, &(kt_thresholds_t){0}, &t);
    assert_int_equal(kt_thresholds_relax_for_debug(&t), 1);
    assert_true(t.max_spread_pct == 20);
    assert_int_equal(t.max_gap_ms, 3000);
    /* A debug-relaxed field that a later merge sets is that layer's again. */
    kt_thresholds_merge(&t, &scen, KT_THR_FROM_SCENARIO);
    assert_int_equal(t.max_gap_ms, 500);
    assert_int_equal(kt_thresholds_source(&t, KT_THR_GAP), KT_THR_FROM_SCENARIO);
}

/* With every check off, even telemetry that breaks all of them passes with
 * no results; each check alone reports only itself. */
static void test_disabled(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_PIPE_PINGPONG);
    s_healthy(&p, ws, &n);
    ws[0].work_units = 0;
    ws[0].cpu_time_ns = 0;
    ws[0].max_gap_ns = 9 * SEC;
    ws[0].wake_lat_p99_ns = 9 * SEC;
    ws[0].iterations = 0;
    ws[0].migrations = 900;
    ws[0].wake_lat_sumsq = 5000.0 * (4e10 + 4e8); /* CV 10 */
    kt_cpumask_set(&ws[2].cpus_used, 0);
    memset(&p.thresholds, 0, sizeof(p.thresholds));
    p.thresholds.max_spread_pct = 1; /* a threshold alone enables nothing */
    p.thresholds.max_gap_ms = 1;
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    assert_int_equal(r.n_results, 0);

    for (int id = 0; id < KT_CHECK__COUNT; id++) {
        memset(&p.thresholds, 0, sizeof(p.thresholds));
        p.thresholds.max_spread_pct = 15;
        p.thresholds.max_gap_ms = 2000;
        switch (id) {
        case KT_CHECK_STARVED:
            p.thresholds.check_starved = true;
            break;
        case KT_CHECK_SPREAD:
            p.thresholds.check_spread = true;
            break;
        case KT_CHECK_GAP:
            p.thresholds.check_gap = true;
            break;
        case KT_CHECK_ISOLATION:
            p.thresholds.check_isolation = true;
            break;
        case KT_CHECK_WAKE_P99:
            p.thresholds.max_p99_wake_us = 500;
            break;
        case KT_CHECK_WORK_RATE:
            p.thresholds.min_work_rate = 10;
            break;
        case KT_CHECK_WAKE_CV:
            p.thresholds.max_wake_cv = 2;
            break;
        case KT_CHECK_THROUGHPUT_CV:
            p.thresholds.max_throughput_cv = 0.5;
            break;
        case KT_CHECK_ITERATION_RATE:
            p.thresholds.min_iteration_rate = 10;
            break;
        case KT_CHECK_MIGRATION_RATIO:
            p.thresholds.max_migration_ratio = 0.5;
            break;
        case KT_CHECK_BPF_CALLBACK:
            /* Judged by kt_checks_evaluate_bpf, never from worker telemetry. */
            p.thresholds.max_callback_ns = 1;
            assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
            assert_int_equal(r.n_results, 0);
            continue;
        case KT_CHECK_PAYLOAD_EXIT:
        case KT_CHECK_PAYLOAD_TAP:
        case KT_CHECK_PAYLOAD_METRIC:
            /* Judged by kt_checks_evaluate_payload (tests/unit/test_payload.c). */
            assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
            assert_int_equal(r.n_results, 0);
            continue;
        }
        assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 1);
        for (unsigned i = 0; i < r.n_results; i++)
            assert_int_equal(r.results[i].id, id);
        assert_true(r.n_results >= 1);
    }
}

static void test_reason_many(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_worker_stats_t ws[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    kt_thresholds_default(&p.thresholds);
    s_healthy(&p, ws, &n);
    ws[0].work_units = 0;
    ws[2].work_units = 0;
    ws[0].max_gap_ns = 3 * SEC;
    ws[2].max_gap_ns = 4 * SEC;
    kt_cpumask_set(&ws[2].cpus_used, 1);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 5);
    assert_int_equal(r.n_failed, 5);
    assert_false(r.truncated);
    s_reason(&r, &p,
             "not_starved 0.0 units < 1.0 in cgroup 'cg_0'; max_gap 3000.0 ms > 2000.0 in "
             "cgroup 'cg_0'; not_starved 0.0 units < 1.0 in cgroup 'cg_1'; and 2 more");
    /* A short buffer is cut, never overrun. */
    char small[16];
    kt_check_report_reason(&r, &p, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_true(strncmp(small, "not_starved 0.0", 15) == 0);

    /* Per-cgroup summary. */
    kt_cgroup_summary_t sum;
    kt_cgroup_summarize(&p, 1, ws, n, &sum);
    assert_int_equal(sum.workers, 2);
    assert_int_equal(sum.work_units, 1000);
    assert_int_equal(sum.max_gap_ns, 4 * SEC);
    char used[64];
    kt_cpumask_format(&sum.cpus_used, used, sizeof(used));
    assert_string_equal(used, "1-3");
}

/* Every check failing in every one of the 32 cgroups: all 192 failures are
 * counted and fit the report (32 x 6 < KT_MAX_CHECK_RESULTS). */
static void test_all_fail(void **state)
{
    (void)state;
    kt_plan_t *p = calloc(1, sizeof(*p));
    kt_worker_stats_t *ws = calloc(KT_MAX_CGROUPS * 2, sizeof(*ws));
    kt_check_report_t *r = calloc(1, sizeof(*r));
    assert_non_null(p);
    assert_non_null(ws);
    assert_non_null(r);
    p->topology = (kt_topology_t){1, 1, 4, 1};
    p->n_cgroups = KT_MAX_CGROUPS;
    kt_thresholds_default(&p->thresholds);
    p->thresholds.max_p99_wake_us = 1;
    p->thresholds.min_work_rate = 1e9;
    size_t n = 0;
    for (unsigned c = 0; c < KT_MAX_CGROUPS; c++) {
        snprintf(p->cgroups[c].name, sizeof(p->cgroups[c].name), "c%u", c);
        p->cgroups[c].workers = 2;
        p->cgroups[c].work = KT_WORK_FUTEX_PINGPONG;
        p->cgroups[c].has_cpuset = true;
        kt_cpumask_set(&p->cgroups[c].cpus, 0);
        for (unsigned i = 0; i < 2; i++) {
            kt_worker_stats_t *w = &ws[n++];
            w->cgroup = c;
            w->index = i;
            w->wall_time_ns = SEC;
            w->cpu_time_ns = i ? SEC : 0;
            w->max_gap_ns = 10 * SEC;
            kt_cpumask_set(&w->cpus_used, 3);
            w->wake_lat_p99_ns = SEC;
        }
    }
    assert_int_equal(kt_checks_evaluate(p, ws, n, r), 6 * KT_MAX_CGROUPS);
    assert_int_equal(r->n_results, 6 * KT_MAX_CGROUPS);
    assert_false(r->truncated);
    for (unsigned i = 0; i < r->n_results; i++)
        assert_false(r->results[i].passed);
    free(p);
    free(ws);
    free(r);
}

/* bpf_callback_ns: scx_simple-like callbacks against a bound for all
 * struct_ops programs and per-name bounds. */
static void s_bpf_progs(kt_bpf_prog_cost_t *p, size_t *ret_n)
{
    static const struct {
        const char *name;
        bool struct_ops;
        uint64_t cnt, ns;
    } t[] = {
        {"simple_enqueue", true, 1000, 2500000}, /* 2500 ns per call */
        {"simple_dispatch", true, 4000, 4000000}, /* 1000 */
        {"simple_init", true, 0, 0},              /* not called */
        {"iter_prog", false, 10, 900000},         /* 90000, not struct_ops */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].id = (uint32_t)(10 + i);
        snprintf(p[i].name, sizeof(p[i].name), "%s", t[i].name);
        snprintf(p[i].type, sizeof(p[i].type), "%s", t[i].struct_ops ? "struct_ops" : "tracing");
        p[i].struct_ops = t[i].struct_ops;
        p[i].run_cnt = t[i].cnt;
        p[i].run_time_ns = t[i].ns;
    }
    *ret_n = sizeof(t) / sizeof(t[0]);
}

static void test_bpf_callback(void **state)
{
    (void)state;
    kt_plan_t p;
    kt_bpf_prog_cost_t progs[8];
    size_t n;
    kt_check_report_t r;
    s_plan(&p, KT_WORK_SPIN);
    s_bpf_progs(progs, &n);
    assert_true(kt_bpf_prog_ns_per_call(&progs[0]) == 2500.0);
    assert_true(kt_bpf_prog_ns_per_call(&progs[2]) == 0.0);

    /* Off: nothing judged. */
    assert_false(kt_checks_bpf_bounded(&p.thresholds));
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 0);
    assert_int_equal(r.n_results, 0);

    /* A generous bound passes the two called struct_ops programs only. */
    p.thresholds.max_callback_ns = 5000;
    assert_true(kt_checks_bpf_bounded(&p.thresholds));
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 0);
    assert_int_equal(r.n_results, 2);
    assert_true(r.results[0].passed && r.results[1].passed);
    assert_true(r.results[0].measured == 2500.0);
    assert_string_equal(r.results[0].unit, "ns");

    /* 1 ns: every called callback fails, the tracing program is not judged. */
    memset(&r, 0, sizeof(r));
    p.thresholds.max_callback_ns = 1;
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 2);
    assert_int_equal(r.n_failed, 2);
    assert_int_equal(s_count(&r, KT_CHECK_BPF_CALLBACK), 2);
    s_reason(&r, &p,
             "bpf_callback_ns: program 'simple_enqueue' (struct_ops) 2500.0 ns per call > 1 ns "
             "over 1000 calls; bpf_callback_ns: program 'simple_dispatch' (struct_ops) 1000.0 ns "
             "per call > 1 ns over 4000 calls");

    /* Between the two: only simple_enqueue fails. */
    memset(&r, 0, sizeof(r));
    p.thresholds.max_callback_ns = 2000;
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 1);
    assert_false(r.results[0].passed);
    assert_true(r.results[1].passed);

    /* Per name, any type: the tracing program is judged by name. */
    p.thresholds.max_callback_ns = 0;
    assert_int_equal(kt_checks_callback_bound_add(&p.thresholds, "iter_prog", 100000), 0);
    assert_int_equal(kt_checks_callback_bound_add(&p.thresholds, "simple_dispatch", 999), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 1);
    assert_int_equal(r.n_results, 2);
    assert_true(r.results[0].passed);
    assert_false(r.results[1].passed);
    assert_true(r.results[1].threshold == 999.0);

    /* A bounded name that is loaded but not called passes with a note; one
     * that names nothing fails under a sched_ext scheduler... */
    assert_int_equal(kt_checks_callback_bound_add(&p.thresholds, "simple_init", 10), 0);
    assert_int_equal(kt_checks_callback_bound_add(&p.thresholds, "simple_enqeue", 10), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 2);
    assert_int_equal(r.n_results, 4);
    assert_true(r.results[2].passed);
    assert_non_null(strstr(r.results[2].detail, "not called"));
    assert_false(r.results[3].passed);
    assert_non_null(strstr(r.results[3].detail, "no loaded program is named 'simple_enqeue'"));

    /* ...and passes under EEVDF (no struct_ops program), as does the bound
     * for all struct_ops programs, with a line saying why. */
    kt_thresholds_t t = {.max_callback_ns = 1};
    assert_int_equal(kt_checks_callback_bound_add(&t, "simple_enqueue", 1), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_bpf(&t, &progs[3], 1, &r), 0);
    assert_int_equal(r.n_results, 2);
    assert_true(r.results[0].passed && r.results[1].passed);
    assert_non_null(strstr(r.results[0].detail, "no struct_ops program is loaded"));
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_bpf(&t, NULL, 0, &r), 0);
    assert_int_equal(r.n_results, 2);

    /* It appends to the worker checks' report. */
    kt_worker_stats_t ws[8];
    kt_thresholds_default(&p.thresholds);
    p.thresholds.max_callback_ns = 1;
    s_healthy(&p, ws, &n);
    assert_int_equal(kt_checks_evaluate(&p, ws, n, &r), 0);
    unsigned before = r.n_results;
    s_bpf_progs(progs, &n);
    assert_int_equal(kt_checks_evaluate_bpf(&p.thresholds, progs, n, &r), 2);
    assert_int_equal(r.n_results, before + 2);
    assert_int_equal(r.n_failed, 2);
}

static void test_bpf_bound_add(void **state)
{
    (void)state;
    kt_thresholds_t t = {0};
    assert_int_equal(kt_checks_callback_bound_add(&t, "", 5), -EINVAL);
    assert_int_equal(kt_checks_callback_bound_add(&t, "a-b", 5), -EINVAL);
    assert_int_equal(kt_checks_callback_bound_add(&t, "x", 0), -EINVAL);
    assert_int_equal(kt_checks_callback_bound_add(&t, "sixteen_chars_xx", 5), -EINVAL);
    assert_int_equal(kt_checks_callback_bound_add(&t, "fifteen_chars_x", 5), 0);
    assert_int_equal(kt_checks_callback_bound_add(&t, "fifteen_chars_x", 6), -EEXIST);
    for (unsigned i = 1; i < KT_MAX_CALLBACK_BOUNDS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%u.x", i);
        assert_int_equal(kt_checks_callback_bound_add(&t, name, i), 0);
    }
    assert_int_equal(kt_checks_callback_bound_add(&t, "one_more", 5), -E2BIG);
    assert_int_equal(t.n_callback_bounds, KT_MAX_CALLBACK_BOUNDS);
    assert_string_equal(t.callback_bounds[0].prog, "fifteen_chars_x");
    assert_int_equal(t.callback_bounds[0].max_ns, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),       cmocka_unit_test(test_starved),
        cmocka_unit_test(test_spread),      cmocka_unit_test(test_gap),
        cmocka_unit_test(test_isolation),   cmocka_unit_test(test_wake_p99),
        cmocka_unit_test(test_work_rate),   cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_wake_cv),     cmocka_unit_test(test_throughput_cv),
        cmocka_unit_test(test_iteration_rate), cmocka_unit_test(test_migration_ratio),
        cmocka_unit_test(test_thresholds_merge), cmocka_unit_test(test_thresholds_debug),
        cmocka_unit_test(test_reason_many), cmocka_unit_test(test_all_fail),
        cmocka_unit_test(test_bpf_callback), cmocka_unit_test(test_bpf_bound_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
