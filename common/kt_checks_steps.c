/* The checks of plans with a timeline (see kt_timeline.h), phase by phase:
 * cpuset isolation (each worker's CPUs in a phase against what its cgroup's
 * cpuset and its affinity allowed then; it replaces the whole-run check,
 * which kt_checks_evaluate skips for those plans), and starvation inside a
 * phase (beside the whole-run not_starved). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_checks.h"
#include "kt_timeline.h"

static void s_add(kt_check_report_t *r, int cgroup, int worker, bool passed, double measured,
                  const char *detail)
{
    kt_check_report_add(r, KT_CHECK_ISOLATION, cgroup, worker, passed, measured, 0, "cpus", detail);
}

/* "phase 2 (after steps[1])" or "phase 0 (from the release)". */
static void s_phase_name(unsigned ph, char *buf, size_t len)
{
    if (ph == 0)
        snprintf(buf, len, "phase 0 (from the release)");
    else
        snprintf(buf, len, "phase %u (after steps[%u])", ph, ph - 1);
}

/* A phase this long with a worker running through it and not one unit done
 * in it is starvation, whatever the worker did in the other phases. */
#define S_STARVED_PHASE_MS 500

/* not_starved phase by phase: a worker that ran before a step and kept
 * running after it must make progress in the phase the step opened (a
 * scheduler that loses tasks when cpusets change, cgroups come and go or
 * tasks move). */
static int s_starved_phases(const kt_plan_t *plan, const kt_timeline_t *tl,
                            const kt_worker_stats_t *ws, size_t n, kt_check_report_t *r)
{
    unsigned failed = 0, judged = 0;
    char detail[320], phase[48];
    for (size_t i = 0; i < n && i < tl->n_slots; i++) {
        const kt_worker_stats_t *w = &ws[i];
        if (!w->started)
            continue;
        for (unsigned ph = 0; ph < tl->n_phases; ph++) {
            uint32_t len = tl->end_ms[ph] - tl->start_ms[ph];
            if (len < S_STARVED_PHASE_MS || tl->slot_state[ph][i] != KT_SLOT_RUNNING ||
                (ph + 1 < tl->n_phases && tl->slot_state[ph + 1][i] != KT_SLOT_RUNNING))
                continue;
            judged++;
            if (w->step_units[ph])
                continue;
            s_phase_name(ph, phase, sizeof(phase));
            snprintf(detail, sizeof(detail), "%s: worker %u (in '%.20s') did no work in %u ms",
                     phase, w->index, plan->cgroups[tl->slot_cg[ph][i]].name, len);
            kt_check_report_add(r, KT_CHECK_STARVED, (int)w->cgroup, (int)w->index, false, 0, 1,
                                "units", detail);
            failed++;
        }
    }
    if (!failed && judged) {
        snprintf(detail, sizeof(detail),
                 "every worker made progress in each phase of %u ms or more (%u judged)",
                 S_STARVED_PHASE_MS, judged);
        kt_check_report_add(r, KT_CHECK_STARVED, -1, -1, true, 1, 1, "units", detail);
    }
    return (int)failed;
}

/* fairness_spread phase by phase: in each cgroup, the on-CPU shares of the
 * workers that ran through the whole phase (spawned, stopped or moved-in
 * workers count only in phases they spanned), in phases of 1 s or more. */
#define S_SPREAD_PHASE_MS 1000

static int s_spread_phases(const kt_plan_t *plan, const kt_timeline_t *tl,
                           const kt_worker_stats_t *ws, size_t n, kt_check_report_t *r)
{
    const double max = plan->thresholds.max_spread_pct;
    unsigned failed = 0, judged = 0;
    double worst = 0;
    char detail[320], phase[48];
    for (unsigned ph = 0; ph < tl->n_phases; ph++) {
        uint32_t len = tl->end_ms[ph] - tl->start_ms[ph];
        if (len < S_SPREAD_PHASE_MS)
            continue;
        for (unsigned cg = 0; cg < plan->n_cgroups; cg++) {
            double lo = 0, hi = 0;
            unsigned count = 0, w_lo = 0, w_hi = 0;
            for (size_t i = 0; i < n && i < tl->n_slots; i++) {
                /* Running in the phase: it was, or this phase's ops started
                 * it; a stop or move comes at a boundary, so it spans the
                 * whole phase either way. */
                if (tl->slot_cg[ph][i] != cg || tl->slot_state[ph][i] != KT_SLOT_RUNNING)
                    continue;
                double pct = 100.0 * (double)ws[i].step_cpu_ns[ph] / ((double)len * 1e6);
                if (!count || pct < lo) {
                    lo = pct;
                    w_lo = ws[i].index;
                }
                if (!count || pct > hi) {
                    hi = pct;
                    w_hi = ws[i].index;
                }
                count++;
            }
            if (count < 2)
                continue;
            judged++;
            double spread = hi - lo;
            if (spread > worst)
                worst = spread;
            if (spread <= max)
                continue;
            s_phase_name(ph, phase, sizeof(phase));
            snprintf(detail, sizeof(detail),
                     "%s: on-CPU share %.1f%% (worker %u)..%.1f%% (worker %u) across %u workers",
                     phase, lo, w_lo, hi, w_hi, count);
            kt_check_report_add(r, KT_CHECK_SPREAD, (int)cg, -1, false, spread, max, "pct",
                                detail);
            failed++;
        }
    }
    if (!failed && judged) {
        snprintf(detail, sizeof(detail),
                 "in each phase of %u ms or more: worst %.1f pct over %u cgroup-phases",
                 S_SPREAD_PHASE_MS, worst, judged);
        kt_check_report_add(r, KT_CHECK_SPREAD, -1, -1, true, worst, max, "pct", detail);
    }
    return (int)failed;
}

int kt_checks_evaluate_steps(const kt_plan_t *plan, const kt_worker_stats_t *ws, size_t n,
                             kt_check_report_t *r)
{
    if (!kt_plan_has_timeline(plan) ||
        (!plan->thresholds.check_isolation && !plan->thresholds.check_starved &&
         !plan->thresholds.check_spread))
        return 0;
    kt_timeline_t *tl = kt_timeline_build(plan);
    if (!tl)
        return -1;
    int starved = plan->thresholds.check_starved && plan->n_steps
                      ? s_starved_phases(plan, tl, ws, n, r)
                      : 0;
    starved += plan->thresholds.check_spread && plan->n_steps ? s_spread_phases(plan, tl, ws, n, r)
                                                              : 0;
    if (!plan->thresholds.check_isolation) {
        free(tl);
        return starved;
    }
    unsigned failed = 0, judged = 0;
    char detail[320], phase[48];
    for (size_t i = 0; i < n && i < tl->n_slots; i++) {
        const kt_worker_stats_t *w = &ws[i];
        for (unsigned ph = 0; ph < tl->n_phases; ph++) {
            if (kt_cpumask_empty(&w->step_cpus[ph]))
                continue;
            const kt_cpumask_t *allowed = &tl->slot_allowed[ph][i];
            unsigned stray = 0;
            for (unsigned c = 0; c < KT_MAX_CPUS; c++)
                stray += kt_cpumask_test(&w->step_cpus[ph], c) && !kt_cpumask_test(allowed, c);
            judged++;
            if (!stray)
                continue;
            char used[KT_MAX_CPUS * 4], ok[KT_MAX_CPUS * 4];
            kt_cpumask_format(&w->step_cpus[ph], used, sizeof(used));
            kt_cpumask_format(allowed, ok, sizeof(ok));
            s_phase_name(ph, phase, sizeof(phase));
            unsigned cur = tl->slot_cg[ph][i];
            snprintf(detail, sizeof(detail), "%s: worker %u ran on %.40s, allowed %.40s (in '%.20s')",
                     phase, w->index, used, ok, plan->cgroups[cur].name);
            s_add(r, (int)w->cgroup, (int)w->index, false, stray, detail);
            failed++;
        }
    }
    if (!failed) {
        snprintf(detail, sizeof(detail),
                 "every worker within its cpuset and affinity in each of %u phases (%u judged)",
                 tl->n_phases, judged);
        s_add(r, -1, -1, true, 0, detail);
    }
    free(tl);
    return (int)failed + starved;
}
