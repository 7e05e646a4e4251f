/* Steps: resolution of steps and ops (and its refusals), the timeline
 * replay (what is in force per phase: cpusets, nesting, moves, affinities,
 * loops), and the phase-by-phase checks fed telemetry that breaks them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_checks.h"
#include "kt_scenario.h"
#include "kt_scenario_yaml.h"
#include "kt_timeline.h"

#define assert_mask(m, want)                                                                       \
    do {                                                                                           \
        char _b[1024];                                                                             \
        kt_cpumask_format((m), _b, sizeof(_b));                                                    \
        assert_string_equal(_b, (want));                                                           \
    } while (0)

static kt_plan_t *s_plan_of(const char *builtin_or_yaml, const char *topo)
{
    kt_topology_t t;
    if (kt_topology_parse(topo, &t) < 0)
        fail_msg("bad topology '%s'", topo);
    kt_scenario_t *s = malloc(sizeof(*s));
    char err[512];
    const kt_scenario_t *b = kt_scenario_builtin_find(builtin_or_yaml);
    if (b)
        *s = *b;
    else if (kt_scenario_yaml_parse(builtin_or_yaml, strlen(builtin_or_yaml), "t.yaml", s, err,
                                    sizeof(err)) < 0)
        fail_msg("%s", err);
    kt_plan_t *p = malloc(sizeof(*p));
    char why[256];
    if (kt_scenario_resolve(s, &t, 0, p, why, sizeof(why)) < 0)
        fail_msg("%s: %s", s->name, why);
    free(s);
    return p;
}

/* Resolving the YAML fails with exactly this reason. */
static void s_refused(const char *yaml, const char *reason)
{
    kt_topology_t t;
    assert_int_equal(kt_topology_parse("tiny-2llc", &t), 0);
    kt_scenario_t *s = malloc(sizeof(*s));
    char err[512], why[256] = "";
    if (kt_scenario_yaml_parse(yaml, strlen(yaml), "t.yaml", s, err, sizeof(err)) < 0)
        fail_msg("parse: %s", err);
    kt_plan_t *p = malloc(sizeof(*p));
    assert_int_equal(kt_scenario_resolve(s, &t, 0, p, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, reason);
    free(p);
    free(s);
}

static void test_resolve_steps(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("cgroup_spawn", "tiny-2llc");
    assert_int_equal(p->n_steps, 3);
    assert_int_equal(p->steps[0].at_ms, 0);
    assert_int_equal(p->steps[1].at_ms, 1500);
    assert_int_equal(p->steps[2].at_ms, 3250);
    assert_int_equal(p->steps[2].hold_ms, 1750); /* the last holds to the end */
    assert_int_equal(p->steps[1].ops[0].kind, KT_OP_SPAWN);
    assert_int_equal(p->cgroups[0].spawn_slots, 2);
    assert_int_equal(kt_plan_total_slots(p), kt_plan_total_workers(p) + 2);
    free(p);

    p = s_plan_of("cpuset_swap", "tiny-2llc");
    assert_int_equal(p->steps[1].loop_ms, 500);
    assert_int_equal(p->steps[1].hold_ms, 4000);
    assert_int_equal(kt_step_applications(&p->steps[1]), 8);
    free(p);

    p = s_plan_of("nested_task_move", "tiny-2llc");
    assert_int_equal(p->cgroups[1].nest_parent, 1);
    assert_int_equal(p->cgroups[2].nest_parent, 1);
    assert_int_equal(p->cgroups[0].workers, 0);
    assert_mask(&p->cgroups[2].cpus, "2-3");
    free(p);
}

static void test_resolve_refusals(void **state)
{
    (void)state;
#define CG2 "cgroups:\n  - {name: a, workers: 2}\n  - {name: b, workers: 2}\n"
    /* A loop before another step is refused when the file is read. */
    kt_scenario_t *sc = malloc(sizeof(*sc));
    char err[256];
    const char *y = "name: x\n" CG2 "steps:\n  - {hold: loop:100ms}\n  - {hold: 0.5}\n";
    assert_int_equal(kt_scenario_yaml_parse(y, strlen(y), "t.yaml", sc, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "t.yaml:6:12: steps[0].hold: a loop holds to the end of the run, so it "
                             "must be the last step");
    free(sc);
    s_refused("name: x\nduration: 2s\n" CG2 "steps:\n  - {hold: 1500ms}\n  - {hold: 1s}\n",
              "steps[1]: the steps hold 2500 ms up to here, more than the duration 2000 ms");
    s_refused("name: x\n" CG2 "steps:\n  - ops: [{op: add_cgroup, cgroup: a}]\n    hold: 0.5\n",
              "steps[0].ops[0] (add_cgroup): 'a' is not declared deferred");
    s_refused("name: x\n" CG2 "  - {name: c, workers: 1, deferred: true}\n"
              "steps:\n  - ops: [{op: set_cpuset, cgroup: c, cpuset: '0'}]\n    hold: 0.5\n",
              "steps[0].ops[0] (set_cpuset): cgroup 'c' is not added yet");
    s_refused("name: x\n" CG2 "  - {name: c, workers: 1, deferred: true}\n",
              "cgroup 'c' is deferred but no step adds it");
    s_refused("name: x\n" CG2 "steps:\n  - ops: [{op: remove_cgroup, cgroup: a}]\n    hold: 0.5\n"
              "  - ops: [{op: stop, cgroup: a}]\n    hold: 0.5\n",
              "steps[1].ops[0] (stop): cgroup 'a' was removed");
    s_refused("name: x\ncgroups:\n  - {name: p, workers: 0}\n  - {name: p/c, workers: 2}\n"
              "steps:\n  - ops: [{op: remove_cgroup, cgroup: p}]\n    hold: 0.5\n",
              "steps[0].ops[0] (remove_cgroup): 'p' still holds 'p/c'");
    s_refused("name: x\ncgroups:\n  - {name: p, workers: 0}\n  - {name: p/c, workers: 2}\n"
              "  - {name: d, workers: 2}\n"
              "steps:\n  - ops: [{op: move_tasks, cgroup: d, target: p}]\n    hold: 0.5\n",
              "steps[0].ops[0] (move_tasks): target 'p' has nested cgroups and cannot hold tasks");
    s_refused("name: x\ncgroups:\n  - {name: p, workers: 2}\n  - {name: p/c, workers: 2}\n",
              "cgroup 'p' has nested cgroups, so it cannot hold workers itself (2 given)");
    s_refused("name: x\ncgroups:\n  - {name: p, workers: 0, cpuset: '0-1'}\n"
              "  - {name: p/c, workers: 2, cpuset: '2-3'}\n",
              "cgroup 'p/c': cpuset 2-3 is not within its parent's 0-1");
    s_refused("name: x\ncgroups:\n  - {name: pp, work: futex-pingpong, workers: 2}\n"
              "steps:\n  - ops: [{op: spawn, cgroup: pp, workers: 3}]\n    hold: 0.5\n",
              "steps[0].ops[0] (spawn): 3 workers for 'pp', whose futex-pingpong workers come in "
              "groups of 2");
    s_refused("name: x\n" CG2 "steps:\n  - ops: [{op: spawn, cgroup: a, workers: 1}]\n"
              "    hold: loop:100ms\n",
              "steps[0].ops[0]: spawn cannot repeat in a loop");
    s_refused("name: x\ncgroups:\n  - {name: a, workers: 0}\n",
              "cgroup 'a' has no workers, no nested cgroups, and no step spawns or moves tasks "
              "into it");
    s_refused("name: x\ncgroups:\n  - {name: a, workers: 1, cpuset: disjoint:0/8}\n",
              "cgroup 'a': 8 cpuset slices of 4 CPUs would leave some empty");
#undef CG2
}

static void test_cpuset_fractions(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("name: x\ncgroups:\n"
                             "  - {name: r, workers: 1, cpuset: range:0.25..0.75}\n"
                             "  - {name: d0, workers: 1, cpuset: disjoint:0/3}\n"
                             "  - {name: d2, workers: 1, cpuset: disjoint:2/3}\n"
                             "  - {name: o, workers: 1, cpuset: overlap:1/2:0.5}\n",
                             "medium-4llc");
    /* medium-4llc: 32 CPUs. */
    assert_mask(&p->cgroups[0].cpus, "8-23");
    assert_mask(&p->cgroups[1].cpus, "0-10");
    assert_mask(&p->cgroups[2].cpus, "21-31");
    assert_mask(&p->cgroups[3].cpus, "8-31");
    free(p);
}

static void test_timeline_cpusets(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("cpuset_apply", "tiny-2llc");
    kt_timeline_t *tl = kt_timeline_build(p);
    assert_non_null(tl);
    assert_int_equal(tl->n_phases, 3);
    assert_int_equal(tl->start_ms[2], 2500);
    assert_int_equal(tl->end_ms[2], 5000);
    /* Slot 0 is cg_0's first worker, slot 2 cg_1's. */
    assert_mask(&tl->slot_allowed[1][0], "0-3");
    assert_mask(&tl->slot_allowed[2][0], "0-1");
    assert_mask(&tl->slot_allowed[2][2], "2-3");
    free(tl);
    free(p);

    /* A loop of swaps: its phase allows the union of what it swaps. */
    p = s_plan_of("cpuset_swap", "tiny-2llc");
    tl = kt_timeline_build(p);
    assert_mask(&tl->slot_allowed[1][0], "0-1");
    assert_mask(&tl->slot_allowed[2][0], "0-3");
    free(tl);
    free(p);
}

static void test_timeline_moves_and_nesting(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("nested_task_move", "tiny-2llc");
    kt_timeline_t *tl = kt_timeline_build(p);
    /* outer/a's two workers are slots 0-1 (outer has none). */
    assert_int_equal(tl->slot_home[0], 1);
    assert_int_equal(tl->slot_cg[1][0], 1);
    assert_int_equal(tl->slot_cg[2][0], 2);
    assert_mask(&tl->slot_allowed[1][0], "0-1");
    assert_mask(&tl->slot_allowed[2][0], "2-3");
    free(tl);
    free(p);

    /* A child's cpuset within its parent's; cleared, it takes the parent's. */
    p = s_plan_of("name: x\ncgroups:\n  - {name: p, workers: 0, cpuset: '1-3'}\n"
                  "  - {name: p/c, workers: 1, cpuset: '2-3'}\n"
                  "steps:\n  - ops: [{op: clear_cpuset, cgroup: p/c}]\n    hold: 0.5\n",
                  "tiny-2llc");
    tl = kt_timeline_build(p);
    assert_mask(&tl->slot_allowed[0][0], "2-3");
    assert_mask(&tl->slot_allowed[1][0], "1-3");
    free(tl);
    free(p);
}

static void test_timeline_lifecycle(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("name: x\ncgroups:\n  - {name: a, workers: 2}\n"
                             "  - {name: late, workers: 2, deferred: true}\n"
                             "steps:\n  - ops: [{op: add_cgroup, cgroup: late}]\n    hold: 0.3\n"
                             "  - ops: [{op: spawn, cgroup: a, workers: 1}, {op: stop, cgroup: "
                             "late}]\n    hold: 0.3\n"
                             "  - ops: [{op: remove_cgroup, cgroup: late}]\n    hold: 0.3\n",
                             "tiny-2llc");
    kt_timeline_t *tl = kt_timeline_build(p);
    assert_int_equal(tl->n_slots, 5); /* a: 2 + 1 spawn slot; late: 2 */
    assert_int_equal(tl->slot_state[0][2], KT_SLOT_PENDING);
    assert_int_equal(tl->slot_state[0][3], KT_SLOT_PENDING);
    assert_int_equal(tl->slot_state[1][3], KT_SLOT_RUNNING);
    assert_int_equal(tl->slot_state[2][2], KT_SLOT_RUNNING);
    assert_int_equal(tl->slot_state[2][3], KT_SLOT_STOPPED);
    assert_true(tl->cg_alive[2][1]);
    assert_false(tl->cg_alive[3][1]);
    free(tl);
    free(p);
}

static void test_affinities(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("affinity_pinned", "tiny-2llc");
    kt_timeline_t *tl = kt_timeline_build(p);
    for (unsigned i = 0; i < 4; i++) {
        char want[8];
        snprintf(want, sizeof(want), "%u", i);
        assert_mask(&tl->slot_allowed[0][i], want);
    }
    free(tl);
    free(p);

    /* LLC-aligned and cross-cgroup (the cpuset wins). */
    p = s_plan_of("affinity_cross", "tiny-2llc");
    tl = kt_timeline_build(p);
    assert_mask(&tl->slot_allowed[0][0], "0-1");
    assert_mask(&tl->slot_allowed[0][2], "2-3");
    free(tl);
    free(p);

    /* Random subsets: the asked size, inside the cgroup, the same from the
     * same seed, new per loop application. */
    p = s_plan_of("affinity_change", "medium-4llc");
    kt_sim_t *s = malloc(sizeof(*s)), *s2 = malloc(sizeof(*s2));
    kt_sim_init(s, p);
    kt_sim_init(s2, p);
    const kt_plan_op_t *op = &p->steps[1].ops[0];
    kt_sim_apply(s, op, 0);
    kt_sim_apply(s2, op, 0);
    for (unsigned i = 0; i < s->n_slots; i++) {
        assert_true(s->slot_has_user[i]);
        assert_int_equal(kt_cpumask_weight(&s->slot_user[i]), 2);
        assert_memory_equal(&s->slot_user[i], &s2->slot_user[i], sizeof(kt_cpumask_t));
    }
    kt_sim_apply(s2, op, 1);
    unsigned differ = 0;
    for (unsigned i = 0; i < s->n_slots; i++)
        differ += memcmp(&s->slot_user[i], &s2->slot_user[i], sizeof(kt_cpumask_t)) != 0;
    assert_true(differ > s->n_slots / 2);
    free(s);
    free(s2);
    free(p);
}

/* Telemetry where every worker ran where it was allowed and worked in every
 * phase. */
static kt_worker_stats_t *s_good_stats(const kt_plan_t *p, const kt_timeline_t *tl)
{
    kt_worker_stats_t *ws = calloc(tl->n_slots, sizeof(*ws));
    for (unsigned i = 0; i < tl->n_slots; i++) {
        ws[i].cgroup = tl->slot_home[i];
        ws[i].index = tl->slot_index[i];
        ws[i].started = true;
        ws[i].work_units = 1000;
        for (unsigned ph = 0; ph < tl->n_phases; ph++) {
            if (tl->slot_state[ph][i] != KT_SLOT_RUNNING)
                continue;
            ws[i].step_units[ph] = 100;
            /* 90 % of the phase on a CPU. */
            ws[i].step_cpu_ns[ph] = (uint64_t)(tl->end_ms[ph] - tl->start_ms[ph]) * 900000;
            for (unsigned c = 0; c < KT_MAX_CPUS; c++)
                if (kt_cpumask_test(&tl->slot_allowed[ph][i], c)) {
                    kt_cpumask_set(&ws[i].step_cpus[ph], c);
                    break;
                }
        }
    }
    (void)p;
    return ws;
}

static void test_checks_per_phase(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("cpuset_apply", "tiny-2llc");
    kt_timeline_t *tl = kt_timeline_build(p);
    kt_worker_stats_t *ws = s_good_stats(p, tl);
    kt_check_report_t *r = calloc(1, sizeof(*r));
    assert_int_equal(kt_checks_evaluate_steps(p, ws, tl->n_slots, r), 0);
    assert_int_equal(r->n_failed, 0);
    assert_int_equal(r->n_results, 3); /* one passing line each: starved, spread, isolation */
    assert_string_equal(r->results[1].detail,
                        "in each phase of 1000 ms or more: worst 0.0 pct over 4 cgroup-phases");

    /* cg_1's first worker (slot 2) stays on CPU 0 after its cpuset became
     * 2-3: caught in phase 2 only. */
    kt_cpumask_zero(&ws[2].step_cpus[2]);
    kt_cpumask_set(&ws[2].step_cpus[2], 0);
    kt_cpumask_set(&ws[2].step_cpus[2], 3);
    memset(r, 0, sizeof(*r));
    assert_int_equal(kt_checks_evaluate_steps(p, ws, tl->n_slots, r), 1);
    assert_int_equal(r->n_results, 3); /* starvation's and spread's passing lines, the failure */
    const kt_check_result_t *f = NULL;
    for (unsigned i = 0; i < r->n_results; i++)
        if (!r->results[i].passed)
            f = &r->results[i];
    assert_non_null(f);
    assert_int_equal(f->id, KT_CHECK_ISOLATION);
    assert_int_equal(f->cgroup, 1);
    assert_true(f->measured == 1.0);
    assert_string_equal(f->detail,
                        "phase 2 (after steps[1]): worker 0 ran on 0,3, allowed 2-3 (in 'cg_1')");

    /* Isolation off: only the starvation judging stays. */
    p->thresholds.check_isolation = false;
    memset(r, 0, sizeof(*r));
    assert_int_equal(kt_checks_evaluate_steps(p, ws, tl->n_slots, r), 0);
    p->thresholds.check_isolation = true;

    /* cg_0's second worker gets half the CPU of its sibling in phase 2:
     * the spread fails there, and only there. */
    ws[2].step_cpus[2] = tl->slot_allowed[2][2];
    ws[1].step_cpu_ns[2] /= 2;
    memset(r, 0, sizeof(*r));
    assert_int_equal(kt_checks_evaluate_steps(p, ws, tl->n_slots, r), 1);
    f = NULL;
    for (unsigned i = 0; i < r->n_results; i++)
        if (!r->results[i].passed)
            f = &r->results[i];
    assert_int_equal(f->id, KT_CHECK_SPREAD);
    assert_int_equal(f->cgroup, 0);
    assert_true(f->measured > 44.9 && f->measured < 45.1);
    assert_string_equal(f->detail, "phase 2 (after steps[1]): on-CPU share 45.0% (worker 1)..90.0% "
                                   "(worker 0) across 2 workers");
    ws[1].step_cpu_ns[2] *= 2;

    /* A worker that did nothing after the step, though it worked before:
     * starved in phase 2. */
    ws[2].step_units[2] = 0;
    memset(r, 0, sizeof(*r));
    assert_int_equal(kt_checks_evaluate_steps(p, ws, tl->n_slots, r), 1);
    f = NULL;
    for (unsigned i = 0; i < r->n_results; i++)
        if (!r->results[i].passed)
            f = &r->results[i];
    assert_int_equal(f->id, KT_CHECK_STARVED);
    assert_string_equal(f->detail, "phase 2 (after steps[1]): worker 0 (in 'cg_1') did no work "
                                   "in 2500 ms");
    free(r);
    free(ws);
    free(tl);
    free(p);
}

static void test_plans_without_timeline(void **state)
{
    (void)state;
    kt_plan_t *p = s_plan_of("steady", "tiny-2llc");
    assert_false(kt_plan_has_timeline(p));
    kt_check_report_t *r = calloc(1, sizeof(*r));
    assert_int_equal(kt_checks_evaluate_steps(p, NULL, 0, r), 0);
    assert_int_equal(r->n_results, 0);
    free(r);
    free(p);
    p = s_plan_of("affinity_pinned", "tiny-2llc");
    assert_true(kt_plan_has_timeline(p));
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_steps),       cmocka_unit_test(test_resolve_refusals),
        cmocka_unit_test(test_cpuset_fractions),    cmocka_unit_test(test_timeline_cpusets),
        cmocka_unit_test(test_timeline_moves_and_nesting),
        cmocka_unit_test(test_timeline_lifecycle),  cmocka_unit_test(test_affinities),
        cmocka_unit_test(test_checks_per_phase),    cmocka_unit_test(test_plans_without_timeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
