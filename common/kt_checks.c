/* The checks: not starved, fairness spread, longest gap, cpuset isolation,
 * and the optional wake-latency, work-rate, wake CV, throughput CV,
 * iteration-rate and migration-ratio bounds. One result per check
 * and cgroup, carrying the worst worker's value. */
#include "kt_checks.h"
#include "kt_timeline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const s_check_names[KT_CHECK__COUNT] = {
    [KT_CHECK_STARVED] = "not_starved",
    [KT_CHECK_SPREAD] = "fairness_spread",
    [KT_CHECK_GAP] = "max_gap",
    [KT_CHECK_ISOLATION] = "cpuset_isolation",
    [KT_CHECK_WAKE_P99] = "wake_p99",
    [KT_CHECK_WORK_RATE] = "work_rate",
    [KT_CHECK_BPF_CALLBACK] = "bpf_callback_ns",
    [KT_CHECK_PAYLOAD_EXIT] = "payload_exit",
    [KT_CHECK_PAYLOAD_TAP] = "payload_tap",
    [KT_CHECK_PAYLOAD_METRIC] = "payload_metric",
    [KT_CHECK_WAKE_CV] = "wake_cv",
    [KT_CHECK_THROUGHPUT_CV] = "throughput_cv",
    [KT_CHECK_ITERATION_RATE] = "iteration_rate",
    [KT_CHECK_MIGRATION_RATIO] = "migration_ratio",
};

const char *kt_check_name(enum kt_check_id id)
{
    return (unsigned)id < KT_CHECK__COUNT ? s_check_names[id] : "unknown";
}

double kt_worker_on_cpu_pct(const kt_worker_stats_t *w)
{
    if (w->wall_time_ns == 0)
        return 0.0;
    double pct = 100.0 * (double)w->cpu_time_ns / (double)w->wall_time_ns;
    return pct > 100.0 ? 100.0 : pct;
}

void kt_cgroup_summarize(const kt_plan_t *plan, unsigned cgroup, const kt_worker_stats_t *workers,
                         size_t n_workers, kt_cgroup_summary_t *ret)
{
    (void)plan;
    memset(ret, 0, sizeof(*ret));
    bool first = true;
    for (size_t i = 0; i < n_workers; i++) {
        const kt_worker_stats_t *w = &workers[i];
        if (w->cgroup != cgroup)
            continue;
        double pct = kt_worker_on_cpu_pct(w);
        ret->workers++;
        ret->work_units += w->work_units;
        if (w->max_gap_ns > ret->max_gap_ns)
            ret->max_gap_ns = w->max_gap_ns;
        kt_cpumask_or(&ret->cpus_used, &w->cpus_used);
        if (first || pct < ret->min_on_cpu_pct)
            ret->min_on_cpu_pct = pct;
        if (first || pct > ret->max_on_cpu_pct)
            ret->max_on_cpu_pct = pct;
        first = false;
    }
    ret->spread_pct = ret->workers > 1 ? ret->max_on_cpu_pct - ret->min_on_cpu_pct : 0.0;
}

void kt_check_report_add(kt_check_report_t *r, enum kt_check_id id, int cgroup, int worker,
                         bool passed, double measured, double threshold, const char *unit,
                         const char *detail)
{
    if (!passed)
        r->n_failed++;
    if (r->n_results >= KT_MAX_CHECK_RESULTS) {
        r->truncated = true;
        return;
    }
    kt_check_result_t *c = &r->results[r->n_results++];
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->cgroup = cgroup;
    c->worker = worker;
    c->passed = passed;
    c->measured = measured;
    c->threshold = threshold;
    snprintf(c->unit, sizeof(c->unit), "%s", unit);
    snprintf(c->detail, sizeof(c->detail), "%.*s", (int)sizeof(c->detail) - 1,
             detail ? detail : "");
}
#define s_add kt_check_report_add

/* The worst worker of a cgroup for one per-worker metric. */
typedef double (*s_metric_fn)(const kt_plan_t *plan, const kt_worker_stats_t *w);

static double s_units(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    (void)p;
    return (double)w->work_units;
}

static double s_gap_ms(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    (void)p;
    return (double)w->max_gap_ns / 1e6;
}

static double s_stray_cpus(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    const kt_cpumask_t *allowed = &p->cgroups[w->cgroup].cpus;
    unsigned n = 0;
    for (unsigned c = 0; c < KT_MAX_CPUS; c++)
        if (kt_cpumask_test(&w->cpus_used, c) && !kt_cpumask_test(allowed, c))
            n++;
    return n;
}

static double s_wake_p99_us(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    (void)p;
    return (double)w->wake_lat_p99_ns / 1e3;
}

static double s_rate(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    (void)p;
    return w->wall_time_ns ? (double)w->work_units / ((double)w->wall_time_ns / 1e9) : 0.0;
}

static double s_iter_rate(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    (void)p;
    return w->wall_time_ns ? (double)w->iterations / ((double)w->wall_time_ns / 1e9) : 0.0;
}

static double s_migration_ratio(const kt_plan_t *p, const kt_worker_stats_t *w)
{
    (void)p;
    return (double)w->migrations / (double)(w->iterations ? w->iterations : 1);
}

/* Population CV from a count, a sum and a sum of squares; 0 for a mean of 0. */
static double s_cv(double n, double sum, double sumsq, double *ret_mean, double *ret_sd)
{
    double mean = n > 0 ? sum / n : 0.0;
    double var = n > 0 ? sumsq / n - mean * mean : 0.0;
    double sd = var > 0 ? sqrt(var) : 0.0;
    if (ret_mean)
        *ret_mean = mean;
    if (ret_sd)
        *ret_sd = sd;
    return mean > 0 ? sd / mean : 0.0;
}

static double s_worker_wake_cv(const kt_worker_stats_t *w)
{
    return s_cv((double)w->wake_count, (double)w->wake_lat_sum_ns, w->wake_lat_sumsq, NULL, NULL);
}

/* wake_cv over the cgroup's pooled wakeups (see kt_checks.h). */
static void s_check_wake_cv(const kt_plan_t *plan, unsigned cg, const kt_worker_stats_t *ws,
                            size_t n, kt_check_report_t *r)
{
    double max_cv = plan->thresholds.max_wake_cv;
    double count = 0, sum = 0, sumsq = 0, worst_cv = -1;
    unsigned workers = 0;
    int worst = -1;
    for (size_t i = 0; i < n; i++) {
        if (ws[i].cgroup != cg)
            continue;
        workers++;
        count += (double)ws[i].wake_count;
        sum += (double)ws[i].wake_lat_sum_ns;
        sumsq += ws[i].wake_lat_sumsq;
        double cv = s_worker_wake_cv(&ws[i]);
        if (ws[i].wake_count >= 2 && cv > worst_cv) {
            worst_cv = cv;
            worst = (int)i;
        }
    }
    if (workers == 0)
        return;
    char detail[160];
    if (count < 2) {
        snprintf(detail, sizeof(detail), "%.0f wakeups across %u workers: too few to judge",
                 count, workers);
        s_add(r, KT_CHECK_WAKE_CV, (int)cg, -1, true, 0, max_cv, "cv", detail);
        return;
    }
    double mean, sd;
    double cv = s_cv(count, sum, sumsq, &mean, &sd);
    snprintf(detail, sizeof(detail),
             "%.0f wakeups of %u workers: mean %.1f us, stddev %.1f us; most variable: "
             "worker %u (cv %.3f)",
             count, workers, mean / 1e3, sd / 1e3, worst >= 0 ? ws[worst].index : 0,
             worst >= 0 ? worst_cv : 0.0);
    s_add(r, KT_CHECK_WAKE_CV, (int)cg, -1, cv <= max_cv, cv, max_cv, "cv", detail);
}

/* throughput_cv across the cgroup's workers (see kt_checks.h). */
static void s_check_throughput_cv(const kt_plan_t *plan, unsigned cg, const kt_worker_stats_t *ws,
                                  size_t n, kt_check_report_t *r)
{
    double max_cv = plan->thresholds.max_throughput_cv;
    double count = 0, sum = 0, sumsq = 0, lo = 0, hi = 0;
    int slowest = -1;
    for (size_t i = 0; i < n; i++) {
        if (ws[i].cgroup != cg)
            continue;
        double v = s_rate(plan, &ws[i]);
        if (slowest < 0 || v < lo) {
            lo = v;
            slowest = (int)i;
        }
        if (count == 0 || v > hi)
            hi = v;
        count++;
        sum += v;
        sumsq += v * v;
    }
    if (count < 2)
        return;
    double mean;
    double cv = s_cv(count, sum, sumsq, &mean, NULL);
    char detail[160];
    snprintf(detail, sizeof(detail),
             "work rate %.1f..%.1f units/s (mean %.1f) across %.0f workers; slowest: worker %u",
             lo, hi, mean, count, ws[slowest].index);
    s_add(r, KT_CHECK_THROUGHPUT_CV, (int)cg, (int)ws[slowest].index, cv <= max_cv, cv, max_cv,
          "cv", detail);
}

/* Evaluates metric over the cgroup's workers; lower_is_bad picks the minimum
 * as worst. Returns the worst worker index or -1 when the cgroup is empty. */
static int s_worst(const kt_plan_t *plan, unsigned cg, const kt_worker_stats_t *ws, size_t n,
                   s_metric_fn metric, bool lower_is_bad, double *ret_value)
{
    int worst = -1;
    double wv = 0;
    for (size_t i = 0; i < n; i++) {
        if (ws[i].cgroup != cg)
            continue;
        double v = metric(plan, &ws[i]);
        if (worst < 0 || (lower_is_bad ? v < wv : v > wv)) {
            worst = (int)i;
            wv = v;
        }
    }
    *ret_value = wv;
    return worst;
}

int kt_checks_evaluate(const kt_plan_t *plan, const kt_worker_stats_t *ws, size_t n,
                       kt_check_report_t *r)
{
    const kt_thresholds_t *t = &plan->thresholds;
    memset(r, 0, sizeof(*r));
    char detail[160];
    for (unsigned cg = 0; cg < plan->n_cgroups; cg++) {
        double v;
        int w;
        if (t->check_starved) {
            w = s_worst(plan, cg, ws, n, s_units, true, &v);
            if (w >= 0) {
                snprintf(detail, sizeof(detail), "fewest work units: worker %u (pid %d)",
                         ws[w].index, ws[w].pid);
                s_add(r, KT_CHECK_STARVED, (int)cg, (int)ws[w].index, v >= 1.0, v, 1.0, "units",
                      detail);
            }
        }
        /* With steps, workers of one cgroup may live through different
         * phases: the spread is judged phase by phase instead
         * (kt_checks_evaluate_steps). */
        if (t->check_spread && !plan->n_steps) {
            kt_cgroup_summary_t sum;
            kt_cgroup_summarize(plan, cg, ws, n, &sum);
            if (sum.workers > 1) {
                snprintf(detail, sizeof(detail), "on-CPU share %.1f%%..%.1f%% across %u workers",
                         sum.min_on_cpu_pct, sum.max_on_cpu_pct, sum.workers);
                s_add(r, KT_CHECK_SPREAD, (int)cg, -1, sum.spread_pct <= t->max_spread_pct,
                      sum.spread_pct, t->max_spread_pct, "pct", detail);
            }
        }
        if (t->check_gap) {
            w = s_worst(plan, cg, ws, n, s_gap_ms, false, &v);
            if (w >= 0) {
                snprintf(detail, sizeof(detail), "longest gap between checkpoints: worker %u",
                         ws[w].index);
                s_add(r, KT_CHECK_GAP, (int)cg, (int)ws[w].index, v <= t->max_gap_ms, v,
                      t->max_gap_ms, "ms", detail);
            }
        }
        if (t->check_isolation && plan->cgroups[cg].has_cpuset && !kt_plan_has_timeline(plan)) {
            w = s_worst(plan, cg, ws, n, s_stray_cpus, false, &v);
            if (w >= 0) {
                char used[KT_MAX_CPUS * 4], allowed[KT_MAX_CPUS * 4];
                kt_cpumask_format(&ws[w].cpus_used, used, sizeof(used));
                kt_cpumask_format(&plan->cgroups[cg].cpus, allowed, sizeof(allowed));
                snprintf(detail, sizeof(detail), "worker %u ran on %.60s, cpuset %.60s",
                         ws[w].index, used, allowed);
                s_add(r, KT_CHECK_ISOLATION, (int)cg, (int)ws[w].index, v == 0, v, 0, "cpus",
                      detail);
            }
        }
        if (t->max_p99_wake_us && kt_work_type_wakes(plan->cgroups[cg].work)) {
            w = s_worst(plan, cg, ws, n, s_wake_p99_us, false, &v);
            if (w >= 0) {
                snprintf(detail, sizeof(detail), "p99 wake latency: worker %u over %llu wakeups",
                         ws[w].index, (unsigned long long)ws[w].wake_count);
                s_add(r, KT_CHECK_WAKE_P99, (int)cg, (int)ws[w].index, v <= t->max_p99_wake_us,
                      v, t->max_p99_wake_us, "us", detail);
            }
        }
        if (t->min_work_rate > 0) {
            w = s_worst(plan, cg, ws, n, s_rate, true, &v);
            if (w >= 0) {
                snprintf(detail, sizeof(detail), "slowest worker %u", ws[w].index);
                s_add(r, KT_CHECK_WORK_RATE, (int)cg, (int)ws[w].index, v >= t->min_work_rate, v,
                      t->min_work_rate, "units/s", detail);
            }
        }
        if (t->max_wake_cv > 0 && kt_work_type_wakes(plan->cgroups[cg].work))
            s_check_wake_cv(plan, cg, ws, n, r);
        if (t->max_throughput_cv > 0)
            s_check_throughput_cv(plan, cg, ws, n, r);
        if (t->min_iteration_rate > 0) {
            w = s_worst(plan, cg, ws, n, s_iter_rate, true, &v);
            if (w >= 0) {
                snprintf(detail, sizeof(detail), "slowest worker %u: %llu passes in %.0f ms",
                         ws[w].index, (unsigned long long)ws[w].iterations,
                         (double)ws[w].wall_time_ns / 1e6);
                s_add(r, KT_CHECK_ITERATION_RATE, (int)cg, (int)ws[w].index,
                      v >= t->min_iteration_rate, v, t->min_iteration_rate, "iter/s", detail);
            }
        }
        if (t->max_migration_ratio > 0) {
            w = s_worst(plan, cg, ws, n, s_migration_ratio, false, &v);
            if (w >= 0) {
                snprintf(detail, sizeof(detail), "worker %u: %llu migrations in %llu passes",
                         ws[w].index, (unsigned long long)ws[w].migrations,
                         (unsigned long long)ws[w].iterations);
                s_add(r, KT_CHECK_MIGRATION_RATIO, (int)cg, (int)ws[w].index,
                      v <= t->max_migration_ratio, v, t->max_migration_ratio, "ratio", detail);
            }
        }
    }
    return (int)r->n_failed;
}

void kt_check_report_reason(const kt_check_report_t *r, const kt_plan_t *plan, char *buf, size_t len)
{
    size_t off = 0;
    unsigned shown = 0;
    if (len)
        buf[0] = '\0';
    for (unsigned i = 0; i < r->n_results && off < len; i++) {
        const kt_check_result_t *c = &r->results[i];
        if (c->passed)
            continue;
        if (shown == 3) {
            snprintf(buf + off, len - off, "; and %u more", r->n_failed - shown);
            return;
        }
        if (c->id == KT_CHECK_BPF_CALLBACK || c->id == KT_CHECK_PAYLOAD_EXIT ||
            c->id == KT_CHECK_PAYLOAD_TAP || c->id == KT_CHECK_PAYLOAD_METRIC) {
            /* Not about a cgroup: the detail names the program and value. */
            int w = snprintf(buf + off, len - off, "%s%s: %s", shown ? "; " : "",
                             kt_check_name(c->id), c->detail);
            if (w < 0)
                return;
            off += (size_t)w;
            shown++;
            continue;
        }
        const char *cg = c->cgroup >= 0 && (unsigned)c->cgroup < plan->n_cgroups
                             ? plan->cgroups[c->cgroup].name
                             : "-";
        const char *op = c->id == KT_CHECK_STARVED || c->id == KT_CHECK_WORK_RATE ||
                                 c->id == KT_CHECK_ITERATION_RATE
                             ? "<"
                             : ">";
        /* CVs and ratios are small numbers: one decimal would hide them. */
        bool small = c->id == KT_CHECK_WAKE_CV || c->id == KT_CHECK_THROUGHPUT_CV ||
                     c->id == KT_CHECK_MIGRATION_RATIO;
        int w = snprintf(buf + off, len - off,
                         small ? "%s%s %.4g %s %s %.4g in cgroup '%s'"
                               : "%s%s %.1f %s %s %.1f in cgroup '%s'",
                         shown ? "; " : "", kt_check_name(c->id), c->measured, c->unit, op,
                         c->threshold, cg);
        if (w < 0)
            return;
        off += (size_t)w;
        shown++;
    }
}

/* ---- bpf_callback_ns ---- */

double kt_bpf_prog_ns_per_call(const kt_bpf_prog_cost_t *p)
{
    return p->run_cnt ? (double)p->run_time_ns / (double)p->run_cnt : 0.0;
}

bool kt_checks_bpf_bounded(const kt_thresholds_t *t)
{
    return t->max_callback_ns > 0 || t->n_callback_bounds > 0;
}

static bool s_bpf_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= KT_BPF_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
        if (!ok)
            return false;
    }
    return true;
}

int kt_checks_callback_bound_add(kt_thresholds_t *t, const char *prog, uint32_t max_ns)
{
    if (!prog || !s_bpf_name_valid(prog) || max_ns == 0)
        return -EINVAL;
    for (unsigned i = 0; i < t->n_callback_bounds && i < KT_MAX_CALLBACK_BOUNDS; i++)
        if (strcmp(t->callback_bounds[i].prog, prog) == 0)
            return -EEXIST;
    if (t->n_callback_bounds >= KT_MAX_CALLBACK_BOUNDS)
        return -E2BIG;
    kt_callback_bound_t *b = &t->callback_bounds[t->n_callback_bounds++];
    snprintf(b->prog, sizeof(b->prog), "%s", prog);
    b->max_ns = max_ns;
    return 0;
}

static unsigned s_bpf_judge(kt_check_report_t *r, const kt_bpf_prog_cost_t *p, uint32_t bound)
{
    char detail[160];
    double v = kt_bpf_prog_ns_per_call(p);
    bool passed = v <= (double)bound;
    snprintf(detail, sizeof(detail), "program '%s' (%s) %.1f ns per call %s %u ns over %llu calls",
             p->name, p->type, v, passed ? "<=" : ">", bound, (unsigned long long)p->run_cnt);
    s_add(r, KT_CHECK_BPF_CALLBACK, -1, -1, passed, v, bound, "ns", detail);
    return passed ? 0 : 1;
}

int kt_checks_evaluate_bpf(const kt_thresholds_t *t, const kt_bpf_prog_cost_t *progs, size_t n,
                           kt_check_report_t *r)
{
    unsigned failed = 0, struct_ops = 0;
    char detail[160];
    for (size_t i = 0; i < n; i++)
        struct_ops += progs[i].struct_ops;
    if (t->max_callback_ns > 0) {
        unsigned judged = 0;
        for (size_t i = 0; i < n; i++) {
            if (!progs[i].struct_ops || progs[i].run_cnt == 0)
                continue;
            failed += s_bpf_judge(r, &progs[i], t->max_callback_ns);
            judged++;
        }
        if (judged == 0) {
            snprintf(detail, sizeof(detail),
                     struct_ops ? "no struct_ops program was called during the workload"
                                : "no struct_ops program is loaded (no sched_ext scheduler)");
            s_add(r, KT_CHECK_BPF_CALLBACK, -1, -1, true, 0, t->max_callback_ns, "ns", detail);
        }
    }
    for (unsigned b = 0; b < t->n_callback_bounds && b < KT_MAX_CALLBACK_BOUNDS; b++) {
        const kt_callback_bound_t *cb = &t->callback_bounds[b];
        unsigned loaded = 0, judged = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(progs[i].name, cb->prog) != 0)
                continue;
            loaded++;
            if (progs[i].run_cnt == 0)
                continue;
            failed += s_bpf_judge(r, &progs[i], cb->max_ns);
            judged++;
        }
        if (judged > 0)
            continue;
        bool passed = loaded > 0 || struct_ops == 0;
        if (loaded > 0)
            snprintf(detail, sizeof(detail), "program '%s' was not called during the workload",
                     cb->prog);
        else if (passed)
            snprintf(detail, sizeof(detail),
                     "no program is named '%s' (no sched_ext scheduler is loaded)", cb->prog);
        else
            snprintf(detail, sizeof(detail),
                     "no loaded program is named '%s' (the scheduler has %u struct_ops programs)",
                     cb->prog, struct_ops);
        s_add(r, KT_CHECK_BPF_CALLBACK, -1, -1, passed, 0, cb->max_ns, "ns", detail);
        failed += !passed;
    }
    return (int)failed;
}

/* ---- payload cells ---- */

int kt_checks_evaluate_payload(const kt_payload_spec_t *spec, const kt_payload_outcome_t *o,
                               kt_check_report_t *r)
{
    unsigned before = r->n_failed;
    if (!o->started || o->timed_out || o->killed)
        return 0;
    char detail[160];
    const char *name = spec->name;
    bool explicit_exit = false;
    for (unsigned i = 0; i < spec->n_checks; i++)
        explicit_exit |= spec->checks[i].kind == KT_PAYLOAD_CHECK_EXIT;
    for (unsigned i = 0; i <= spec->n_checks; i++) {
        /* The last round is the implicit "exit==0" of an exit-judged payload. */
        kt_payload_check_t implicit = {.kind = KT_PAYLOAD_CHECK_EXIT};
        const kt_payload_check_t *c = i < spec->n_checks ? &spec->checks[i] : NULL;
        if (!c && (explicit_exit || spec->judge != KT_PAYLOAD_JUDGE_EXIT))
            break;
        if (!c)
            c = &implicit;
        if (c->kind != KT_PAYLOAD_CHECK_EXIT)
            continue;
        int want = (int)c->lo;
        bool passed = o->exited && o->signal == 0 && o->exit_code == want;
        if (!o->exited)
            snprintf(detail, sizeof(detail), "payload '%.48s' ended without an exit status, "
                     "expected %d", name, want);
        else if (o->signal)
            snprintf(detail, sizeof(detail), "payload '%.48s' was killed by signal %d, expected "
                     "exit status %d", name, o->signal, want);
        else
            snprintf(detail, sizeof(detail), "payload '%.48s' exited with status %d%s%d", name,
                     o->exit_code, passed ? ", as expected: " : ", expected ", want);
        s_add(r, KT_CHECK_PAYLOAD_EXIT, -1, -1, passed,
              o->signal ? -(double)o->signal : (double)o->exit_code, want, "status", detail);
    }
    if (spec->judge == KT_PAYLOAD_JUDGE_TAP && o->tap.status != KT_PAYLOAD_TAP_NONE &&
        o->tap.status != KT_PAYLOAD_TAP_SKIP) {
        bool passed = o->tap.status == KT_PAYLOAD_TAP_PASS;
        snprintf(detail, sizeof(detail), "%.150s", o->tap.line);
        s_add(r, KT_CHECK_PAYLOAD_TAP, -1, -1, passed, o->tap.fail, 0, "not ok", detail);
    }
    for (unsigned i = 0; i < spec->n_checks; i++) {
        const kt_payload_check_t *c = &spec->checks[i];
        if (c->kind == KT_PAYLOAD_CHECK_EXIT)
            continue;
        char expr[96];
        kt_payload_check_format(c, expr, sizeof(expr));
        const kt_payload_metric_t *m = kt_payload_metric_find(o, c->metric);
        double threshold = c->kind == KT_PAYLOAD_CHECK_MAX ? c->hi : c->lo;
        if (!m) {
            snprintf(detail, sizeof(detail), "%.70s: no metric '%.48s' in the payload's output",
                     expr, c->metric);
            s_add(r, KT_CHECK_PAYLOAD_METRIC, -1, -1, false, 0, threshold, "", detail);
            continue;
        }
        bool passed = c->kind == KT_PAYLOAD_CHECK_MIN   ? m->value >= c->lo
                      : c->kind == KT_PAYLOAD_CHECK_MAX ? m->value <= c->hi
                                                        : m->value >= c->lo && m->value <= c->hi;
        snprintf(detail, sizeof(detail), "%.90s: measured %.6g", expr, m->value);
        s_add(r, KT_CHECK_PAYLOAD_METRIC, -1, -1, passed, m->value, threshold, "", detail);
    }
    return (int)(r->n_failed - before);
}
