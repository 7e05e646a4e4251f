/* cpuset isolation judged phase by phase: each worker's CPUs in a phase
 * against what its cgroup's cpuset and its affinity allowed then (see
 * kt_timeline.h). Replaces the whole-run isolation check for plans with a
 * timeline (kt_checks_evaluate skips those). */
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

int kt_checks_evaluate_steps(const kt_plan_t *plan, const kt_worker_stats_t *ws, size_t n,
                             kt_check_report_t *r)
{
    if (!plan->thresholds.check_isolation || !kt_plan_has_timeline(plan))
        return 0;
    kt_timeline_t *tl = kt_timeline_build(plan);
    if (!tl)
        return -1;
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
    return (int)failed;
}
