/* Scenarios: work types, constraints, and resolution of the built-ins and
 * of hand-made scenarios against topologies into plans. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_scenario.h"

static kt_topology_t s_topo(const char *text)
{
    kt_topology_t t;
    if (kt_topology_parse(text, &t) < 0)
        fail_msg("bad topology '%s'", text);
    return t;
}

#define assert_mask(m, want)                                                                       \
    do {                                                                                           \
        char _b[1024];                                                                             \
        kt_cpumask_format((m), _b, sizeof(_b));                                                    \
        assert_string_equal(_b, (want));                                                           \
    } while (0)

static void test_work_types(void **state)
{
    (void)state;
    enum kt_work_type w;
    static const struct {
        const char *name;
        enum kt_work_type type;
    } names[] = {
        {"spin", KT_WORK_SPIN},
        {"yield", KT_WORK_YIELD},
        {"yield-heavy", KT_WORK_YIELD},
        {"mixed", KT_WORK_MIXED},
        {"bursty", KT_WORK_BURSTY},
        {"io-sync", KT_WORK_IO_SYNC},
        {"io_sync", KT_WORK_IO_SYNC},
        {"pipe-pingpong", KT_WORK_PIPE_PINGPONG},
        {"pipe_pingpong", KT_WORK_PIPE_PINGPONG},
        {"pipe-io", KT_WORK_PIPE_PINGPONG},
        {"futex-pingpong", KT_WORK_FUTEX_PINGPONG},
        {"futex-ping-pong", KT_WORK_FUTEX_PINGPONG},
        {"futex_ping_pong", KT_WORK_FUTEX_PINGPONG},
        {"spin-wait", KT_WORK_SPIN},
        {"cache-pressure", KT_WORK_CACHE_PRESSURE},
        {"cache_pressure", KT_WORK_CACHE_PRESSURE},
        {"cache-yield", KT_WORK_CACHE_YIELD},
        {"cache-pipe", KT_WORK_CACHE_PIPE},
        {"futex-fan-out", KT_WORK_FUTEX_FAN_OUT},
        {"futex_fan_out", KT_WORK_FUTEX_FAN_OUT},
        {"fan-out-compute", KT_WORK_FAN_OUT_COMPUTE},
        {"sequence", KT_WORK_SEQUENCE},
        {"fork-exit", KT_WORK_FORK_EXIT},
        {"fork_exit", KT_WORK_FORK_EXIT},
        {"nice-sweep", KT_WORK_NICE_SWEEP},
        {"affinity-churn", KT_WORK_AFFINITY_CHURN},
        {"affinity_churn", KT_WORK_AFFINITY_CHURN},
        {"policy-churn", KT_WORK_POLICY_CHURN},
        {"page-fault-churn", KT_WORK_PAGE_FAULT_CHURN},
        {"page_fault_churn", KT_WORK_PAGE_FAULT_CHURN},
        {"mutex-contention", KT_WORK_MUTEX_CONTENTION},
        {"mutex_contention", KT_WORK_MUTEX_CONTENTION},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (kt_work_type_parse(names[i].name, &w) != 0)
            fail_msg("'%s' not accepted", names[i].name);
        assert_int_equal(w, names[i].type);
    }
    static const char *const unknown[] = {"",
                                          "spinn",
                                          "SPIN",
                                          "pipe",
                                          "_",
                                          "spin ",
                                          "fan-out",
                                          "cache",
                                          "fork-exit-",
                                          "a_very_long_name_with_underscores_over_32_bytes"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        w = KT_WORK_MIXED;
        assert_int_equal(kt_work_type_parse(unknown[i], &w), -EINVAL);
        assert_int_equal(w, KT_WORK_MIXED);
    }
    for (unsigned i = 0; i < KT_WORK__COUNT; i++) {
        const char *n = kt_work_type_name((enum kt_work_type)i);
        assert_int_equal(kt_work_type_parse(n, &w), 0);
        assert_int_equal(w, i);
        unsigned group = 1;
        if (i == KT_WORK_PIPE_PINGPONG || i == KT_WORK_FUTEX_PINGPONG || i == KT_WORK_CACHE_PIPE)
            group = 2;
        else if (i == KT_WORK_FUTEX_FAN_OUT || i == KT_WORK_FAN_OUT_COMPUTE)
            group = 5;
        else if (i == KT_WORK_MUTEX_CONTENTION)
            group = 4;
        assert_int_equal(kt_work_type_group_size((enum kt_work_type)i), group);
        /* Exactly the types whose members block on each other. */
        assert_int_equal(kt_work_type_wakes((enum kt_work_type)i), group > 1);
    }
    /* Every type, ktstr's 19, under its own name. */
    assert_int_equal(KT_WORK__COUNT, 19);
    for (unsigned i = 0; i < KT_WORK__COUNT; i++)
        for (unsigned j = 0; j < i; j++)
            assert_string_not_equal(kt_work_type_name((enum kt_work_type)i),
                                    kt_work_type_name((enum kt_work_type)j));
    /* The values written into plans and messages before these types
     * existed keep their meaning. */
    assert_int_equal(KT_WORK_SPIN, 0);
    assert_int_equal(KT_WORK_FUTEX_PINGPONG, 6);
    assert_string_equal(kt_work_type_name(KT_WORK__COUNT), "unknown");
    assert_int_equal(kt_work_type_group_size(KT_WORK__COUNT), 1);
    assert_false(kt_work_type_wakes(KT_WORK__COUNT));
}

static void test_defaults(void **state)
{
    (void)state;
    kt_thresholds_t t;
    kt_thresholds_default(&t);
    assert_true(t.check_starved);
    assert_true(t.check_isolation);
    assert_true(t.check_spread);
    assert_true(t.max_spread_pct == 15.0);
    assert_true(t.check_gap);
    assert_int_equal(t.max_gap_ms, 2000);
    assert_int_equal(t.max_p99_wake_us, 0);
    assert_true(t.min_work_rate == 0);
    kt_scenario_t s;
    kt_scenario_init(&s, "x");
    assert_string_equal(s.name, "x");
    assert_int_equal(s.duration_ms, 5000);
    assert_int_equal(s.n_cgroups, 0);
    assert_memory_equal(&s.thresholds, &t, sizeof(t));
    unsigned n;
    const kt_scenario_t *b = kt_scenario_builtins(&n);
    assert_int_equal(n, 19);
    static const char *const names[] = {
        "steady",           "steady_llc",      "oversubscribed",  "pipe_pingpong",
        "futex_pingpong",   "cpuset_apply",    "cpuset_clear",    "cpuset_resize",
        "cpuset_swap",      "cgroup_add",      "cgroup_remove",   "cgroup_spawn",
        "affinity_change",  "affinity_pinned", "affinity_cross",  "host_contention",
        "mixed_workloads",  "nested_steady",   "nested_task_move"};
    for (unsigned i = 0; i < n; i++) {
        assert_string_equal(b[i].name, names[i]);
        assert_ptr_equal(kt_scenario_builtin_find(names[i]), &b[i]);
        assert_true(strlen(b[i].description) > 10);
    }
    assert_null(kt_scenario_builtin_find("steady2"));
}

/* Every built-in on the four small presets: where it fits it resolves,
 * every worker count is positive, ping-pong counts are even, and each
 * cgroup's CPUs lie inside the topology. */
static void test_builtins_resolve(void **state)
{
    (void)state;
    static const char *const presets[] = {"tiny-1llc", "tiny-2llc", "smt-2llc", "numa2-4llc"};
    unsigned n;
    const kt_scenario_t *b = kt_scenario_builtins(&n);
    unsigned resolved = 0;
    for (size_t p = 0; p < sizeof(presets) / sizeof(presets[0]); p++) {
        kt_topology_t t = s_topo(presets[p]);
        kt_cpumask_t all;
        kt_topology_all_mask(&t, &all);
        for (unsigned i = 0; i < n; i++) {
            char why[256] = "";
            int fits = kt_scenario_fits(&b[i], &t, why, sizeof(why));
            bool expect_fit = !(strcmp(b[i].name, "steady_llc") == 0 && t.llcs < 2);
            if ((fits == 0) != expect_fit)
                fail_msg("%s on %s: fits %d (%s)", b[i].name, presets[p], fits, why);
            if (fits < 0)
                continue;
            kt_plan_t plan;
            int r = kt_scenario_resolve(&b[i], &t, 0, &plan, why, sizeof(why));
            if (r < 0)
                fail_msg("%s on %s: %s", b[i].name, presets[p], why);
            resolved++;
            assert_string_equal(plan.scenario, b[i].name);
            assert_true(kt_topology_equal(&plan.topology, &t));
            assert_int_equal(plan.duration_ms, b[i].duration_ms);
            assert_memory_equal(&plan.thresholds, &b[i].thresholds, sizeof(plan.thresholds));
            assert_true(plan.n_cgroups >= 1);
            unsigned cpus = kt_topology_cpus(&t);
            for (unsigned c = 0; c < plan.n_cgroups; c++) {
                const kt_plan_cgroup_t *cg = &plan.cgroups[c];
                bool parent = false;
                for (unsigned k = 0; k < plan.n_cgroups; k++)
                    parent |= plan.cgroups[k].nest_parent == c + 1;
                /* No workers: a parent, or a cgroup a step fills. */
                assert_true(cg->workers >= 1 || parent || plan.n_steps > 0);
                assert_int_equal(cg->workers % kt_work_type_group_size(cg->work), 0);
                assert_true(kt_cpumask_subset(&cg->cpus, &all));
                assert_false(kt_cpumask_empty(&cg->cpus));
            }
            unsigned total = kt_plan_total_workers(&plan);
            /* Worker counts as the built-ins promise them. */
            if (!strcmp(b[i].name, "steady")) {
                assert_int_equal(plan.n_cgroups, 2);
                assert_int_equal(total, cpus);
                assert_false(plan.cgroups[0].has_cpuset);
            } else if (!strcmp(b[i].name, "oversubscribed")) {
                assert_int_equal(total, 2 * cpus);
                assert_int_equal(plan.cgroups[0].work, KT_WORK_MIXED);
            } else if (!strcmp(b[i].name, "steady_llc")) {
                assert_int_equal(plan.n_cgroups, t.llcs);
                assert_int_equal(total, cpus);
            } else if (strstr(b[i].name, "pingpong")) {
                assert_int_equal(plan.n_cgroups, 1);
                assert_int_equal(total, cpus); /* all even here */
                assert_true(kt_work_type_wakes(plan.cgroups[0].work));
            } else {
                /* The catalog: workers somewhere, steps where promised. */
                assert_true(kt_plan_total_slots(&plan) >= 1);
                if (strncmp(b[i].name, "cpuset_", 7) == 0 || strncmp(b[i].name, "cgroup_", 7) == 0 ||
                    !strcmp(b[i].name, "affinity_change") || !strcmp(b[i].name, "nested_task_move"))
                    assert_true(plan.n_steps >= 2);
            }
        }
    }
    assert_int_equal(resolved, 4 * 19 - 1);
}

static void test_constraints(void **state)
{
    (void)state;
    char why[256];
    kt_topology_t one = s_topo("tiny-1llc");
    const kt_scenario_t *llc = kt_scenario_builtin_find("steady_llc");
    assert_int_equal(kt_scenario_fits(llc, &one, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'steady_llc' needs at least 2 LLCs, topology has 1");

    kt_scenario_t s;
    kt_scenario_init(&s, "c");
    kt_topology_t numa = s_topo("numa2-4llc"), smt = s_topo("smt-2llc");
    s.constraints.max_llcs = 2;
    assert_int_equal(kt_scenario_fits(&s, &numa, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'c' needs at most 2 LLCs, topology has 4");
    assert_int_equal(kt_scenario_fits(&s, &smt, why, sizeof(why)), 0);

    memset(&s.constraints, 0, sizeof(s.constraints));
    s.constraints.min_cpus = 8;
    assert_int_equal(kt_scenario_fits(&s, &one, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'c' needs at least 8 CPUs, topology has 4");
    assert_int_equal(kt_scenario_fits(&s, &smt, why, sizeof(why)), 0);
    s.constraints.min_cpus = 0;
    s.constraints.max_cpus = 8;
    assert_int_equal(kt_scenario_fits(&s, &numa, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'c' needs at most 8 CPUs, topology has 16");

    memset(&s.constraints, 0, sizeof(s.constraints));
    s.constraints.min_numa = 2;
    assert_int_equal(kt_scenario_fits(&s, &smt, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'c' needs at least 2 NUMA nodes, topology has 1");
    assert_int_equal(kt_scenario_fits(&s, &numa, why, sizeof(why)), 0);
    s.constraints.min_numa = 0;
    s.constraints.max_numa = 1;
    assert_int_equal(kt_scenario_fits(&s, &numa, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'c' needs at most 1 NUMA nodes, topology has 2");

    memset(&s.constraints, 0, sizeof(s.constraints));
    s.constraints.requires_smt = true;
    assert_int_equal(kt_scenario_fits(&s, &numa, why, sizeof(why)), -EDOM);
    assert_string_equal(why,
                        "scenario 'c' needs at least 2 threads per core (SMT), topology has 1");
    assert_int_equal(kt_scenario_fits(&s, &smt, why, sizeof(why)), 0);

    /* The first unmet bound is the reason; no bounds fit everything. */
    s.constraints.min_llcs = 3;
    assert_int_equal(kt_scenario_fits(&s, &one, why, sizeof(why)), -EDOM);
    assert_string_equal(why, "scenario 'c' needs at least 3 LLCs, topology has 1");
    memset(&s.constraints, 0, sizeof(s.constraints));
    size_t np;
    const kt_topology_preset_t *ps = kt_topology_presets(&np);
    for (size_t i = 0; i < np; i++)
        assert_int_equal(kt_scenario_fits(&s, &ps[i].topo, why, sizeof(why)), 0);
}

static kt_cgroup_spec_t s_cg(const char *name, unsigned workers, double per_cpu,
                             enum kt_cpuset_kind kind, unsigned index, const char *list)
{
    kt_cgroup_spec_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    c.workers = workers;
    c.workers_per_cpu = per_cpu;
    c.cpuset.kind = kind;
    c.cpuset.index = index;
    if (list)
        snprintf(c.cpuset.list, sizeof(c.cpuset.list), "%s", list);
    return c;
}

static void test_per_llc_and_cpusets(void **state)
{
    (void)state;
    char why[256] = "";
    kt_plan_t p;
    kt_topology_t numa = s_topo("numa2-4llc");
    assert_int_equal(
        kt_scenario_resolve(kt_scenario_builtin_find("steady_llc"), &numa, 0, &p, why, sizeof(why)),
        0);
    assert_int_equal(p.n_cgroups, 4);
    static const char *const want[] = {"0-3", "4-7", "8-11", "12-15"};
    for (unsigned i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "llc_%u", i);
        assert_string_equal(p.cgroups[i].name, name);
        assert_true(p.cgroups[i].has_cpuset);
        assert_mask(&p.cgroups[i].cpus, want[i]);
        assert_int_equal(p.cgroups[i].workers, 4);
    }

    kt_scenario_t s;
    kt_scenario_init(&s, "sets");
    s.cgroups[s.n_cgroups++] = s_cg("all", 1, 0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[s.n_cgroups++] = s_cg("llc3", 0, 1.0, KT_CPUSET_LLC, 3, NULL);
    s.cgroups[s.n_cgroups++] = s_cg("node1", 0, 0.5, KT_CPUSET_NODE, 1, NULL);
    s.cgroups[s.n_cgroups++] = s_cg("list", 0, 1.0, KT_CPUSET_LIST, 0, "1,3,5-6");
    s.cgroups[s.n_cgroups++] = s_cg("few", 0, 0.1, KT_CPUSET_LLC, 0, NULL);
    s.cgroups[s.n_cgroups - 1].policy = KT_POLICY_IDLE;
    s.cgroups[s.n_cgroups - 1].nice = 7;
    int r = kt_scenario_resolve(&s, &numa, 1234, &p, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_int_equal(p.duration_ms, 1234);
    assert_int_equal(p.n_cgroups, 5);
    assert_false(p.cgroups[0].has_cpuset);
    assert_mask(&p.cgroups[0].cpus, "0-15");
    assert_int_equal(p.cgroups[0].workers, 1);
    assert_true(p.cgroups[1].has_cpuset);
    assert_mask(&p.cgroups[1].cpus, "12-15");
    assert_int_equal(p.cgroups[1].workers, 4);
    assert_mask(&p.cgroups[2].cpus, "8-15");
    assert_int_equal(p.cgroups[2].workers, 4);
    assert_mask(&p.cgroups[3].cpus, "1,3,5-6");
    assert_int_equal(p.cgroups[3].workers, 4);
    assert_int_equal(p.cgroups[4].workers, 1); /* 0.4 rounds up to one worker */
    assert_int_equal(p.cgroups[4].policy, KT_POLICY_IDLE);
    assert_int_equal(p.cgroups[4].nice, 7);
    assert_int_equal(kt_plan_total_workers(&p), 14);

    /* per-LLC on an SMT topology keeps the siblings together. */
    kt_topology_t smt = s_topo("smt-2llc");
    assert_int_equal(
        kt_scenario_resolve(kt_scenario_builtin_find("steady_llc"), &smt, 0, &p, why, sizeof(why)),
        0);
    assert_int_equal(p.n_cgroups, 2);
    assert_mask(&p.cgroups[1].cpus, "4-7");
}

static void test_pingpong_counts(void **state)
{
    (void)state;
    char why[256] = "";
    kt_plan_t p;
    /* One worker per CPU on 9 CPUs rounds up to an even 10. */
    kt_topology_t odd = s_topo("odd-3llc");
    assert_int_equal(kt_scenario_resolve(kt_scenario_builtin_find("pipe_pingpong"), &odd, 0, &p,
                                         why, sizeof(why)),
                     0);
    assert_int_equal(p.cgroups[0].workers, 10);
    assert_int_equal(kt_scenario_resolve(kt_scenario_builtin_find("futex_pingpong"), &odd, 0, &p,
                                         why, sizeof(why)),
                     0);
    assert_int_equal(p.cgroups[0].workers % 2, 0);
    /* Even the smallest share makes one pair. */
    kt_scenario_t s;
    kt_scenario_init(&s, "pp");
    s.cgroups[s.n_cgroups++] = s_cg("pp", 0, 0.01, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[0].work = KT_WORK_PIPE_PINGPONG;
    assert_int_equal(kt_scenario_resolve(&s, &odd, 0, &p, why, sizeof(why)), 0);
    assert_int_equal(p.cgroups[0].workers, 2);
    /* An explicit odd count is refused, not rounded. */
    s.cgroups[0] = s_cg("pp", 3, 0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[0].work = KT_WORK_FUTEX_PINGPONG;
    assert_int_equal(kt_scenario_resolve(&s, &odd, 0, &p, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "cgroup 'pp': futex-pingpong workers come in groups of 2, 3 given");
}

/* The grouped types: counts from workers_per_cpu round up to the group size,
 * explicit counts that are no multiple are refused. */
static void test_group_counts(void **state)
{
    (void)state;
    char why[256] = "";
    kt_plan_t p;
    kt_topology_t t = s_topo("tiny-2llc"); /* 4 CPUs */
    kt_scenario_t s;
    kt_scenario_init(&s, "groups");
    s.cgroups[s.n_cgroups++] = s_cg("fan", 0, 1.0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[0].work = KT_WORK_FUTEX_FAN_OUT;
    s.cgroups[s.n_cgroups++] = s_cg("mutex", 0, 1.5, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[1].work = KT_WORK_MUTEX_CONTENTION;
    s.cgroups[s.n_cgroups++] = s_cg("cpipe", 0, 0.75, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[2].work = KT_WORK_CACHE_PIPE;
    s.cgroups[s.n_cgroups++] = s_cg("forks", 0, 0.75, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[3].work = KT_WORK_FORK_EXIT;
    assert_int_equal(kt_scenario_resolve(&s, &t, 0, &p, why, sizeof(why)), 0);
    assert_int_equal(p.cgroups[0].workers, 5); /* 4 -> one group of 5 */
    assert_int_equal(p.cgroups[1].workers, 8); /* 6 -> two groups of 4 */
    assert_int_equal(p.cgroups[2].workers, 4); /* 3 -> two pairs */
    assert_int_equal(p.cgroups[3].workers, 3); /* ungrouped: as computed */
    assert_int_equal(p.cgroups[1].work, KT_WORK_MUTEX_CONTENTION);

    s.cgroups[0] = s_cg("fan", 10, 0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[0].work = KT_WORK_FAN_OUT_COMPUTE;
    assert_int_equal(kt_scenario_resolve(&s, &t, 0, &p, why, sizeof(why)), 0);
    assert_int_equal(p.cgroups[0].workers, 10);
    s.cgroups[0].workers = 4;
    assert_int_equal(kt_scenario_resolve(&s, &t, 0, &p, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "cgroup 'fan': fan-out-compute workers come in groups of 5, 4 given");
}

/* --work-type: before resolution it replaces every cgroup's type and the
 * group rule applies as for a declared type; on a resolved plan it refuses
 * counts that do not divide and leaves the plan alone. */
static void test_override_work(void **state)
{
    (void)state;
    char why[256] = "";
    kt_topology_t t = s_topo("tiny-2llc");
    kt_scenario_t s = *kt_scenario_builtin_find("steady");
    kt_scenario_override_work(&s, KT_WORK_MUTEX_CONTENTION);
    kt_plan_t p;
    assert_int_equal(kt_scenario_resolve(&s, &t, 0, &p, why, sizeof(why)), 0);
    assert_int_equal(p.n_cgroups, 2);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(p.cgroups[i].work, KT_WORK_MUTEX_CONTENTION);
        assert_int_equal(p.cgroups[i].workers, 4); /* 2 per cgroup -> a group of 4 */
    }
    /* The built-in itself is untouched. */
    assert_int_equal(kt_scenario_builtin_find("steady")->cgroups[0].work, KT_WORK_SPIN);

    kt_scenario_t e;
    kt_scenario_init(&e, "explicit");
    e.cgroups[e.n_cgroups++] = s_cg("three", 3, 0, KT_CPUSET_ALL, 0, NULL);
    kt_scenario_override_work(&e, KT_WORK_PIPE_PINGPONG);
    assert_int_equal(kt_scenario_resolve(&e, &t, 0, &p, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "cgroup 'three': pipe-pingpong workers come in groups of 2, 3 given");

    /* On a plan: steady's 2 + 2 spinners take pairs but not groups of 5. */
    assert_int_equal(kt_scenario_resolve(kt_scenario_builtin_find("steady"), &t, 0, &p, why,
                                         sizeof(why)),
                     0);
    kt_plan_t before = p;
    assert_int_equal(kt_plan_override_work(&p, KT_WORK_FUTEX_FAN_OUT, why, sizeof(why)),
                     -EINVAL);
    assert_string_equal(why, "cgroup 'cg_0': futex-fan-out workers come in groups of 5, the "
                             "plan has 2");
    assert_memory_equal(&p, &before, sizeof(p));
    assert_int_equal(kt_plan_override_work(&p, KT_WORK__COUNT, why, sizeof(why)), -EINVAL);
    assert_int_equal(kt_plan_override_work(&p, KT_WORK_CACHE_PIPE, why, sizeof(why)), 0);
    assert_int_equal(p.cgroups[0].work, KT_WORK_CACHE_PIPE);
    assert_int_equal(p.cgroups[1].work, KT_WORK_CACHE_PIPE);
    assert_int_equal(p.cgroups[1].workers, 2);
}

/* Resolution fails with exactly this reason and leaves the plan alone. */
static void s_expect_refused(const kt_scenario_t *s, const char *topo, const char *reason)
{
    kt_topology_t t = s_topo(topo);
    kt_plan_t p, before;
    memset(&p, 0x3c, sizeof(p));
    before = p;
    char why[256] = "";
    assert_int_equal(kt_scenario_resolve(s, &t, 0, &p, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, reason);
    assert_memory_equal(&p, &before, sizeof(p));
}

static void test_refused(void **state)
{
    (void)state;
    kt_scenario_t s;
    kt_scenario_init(&s, "bad");
    s_expect_refused(&s, "tiny-1llc", "scenario 'bad' has no cgroups");

    s.cgroups[s.n_cgroups++] = s_cg("a", 0, 1.0, KT_CPUSET_LLC, 2, NULL);
    s_expect_refused(&s, "tiny-2llc", "cgroup 'a': cpuset names LLC 2, topology has 2");
    s.cgroups[0] = s_cg("a", 0, 1.0, KT_CPUSET_NODE, 1, NULL);
    s_expect_refused(&s, "tiny-2llc", "cgroup 'a': cpuset names NUMA node 1, topology has 1");
    s.cgroups[0] = s_cg("a", 0, 1.0, KT_CPUSET_LIST, 0, "0-9");
    s_expect_refused(&s, "tiny-2llc",
                     "cgroup 'a': CPU list '0-9' is outside the 4 CPUs of the topology");
    s.cgroups[0] = s_cg("a", 0, 1.0, KT_CPUSET_LIST, 0, "x");
    s_expect_refused(&s, "tiny-2llc", "cgroup 'a': bad CPU list 'x'");
    s.cgroups[0] = s_cg("a", 0, 1.0, KT_CPUSET_LIST, 0, "");
    s_expect_refused(&s, "tiny-2llc", "cgroup 'a': bad CPU list ''");

    s.cgroups[0] = s_cg("a", 257, 0, KT_CPUSET_ALL, 0, NULL);
    s_expect_refused(&s, "tiny-2llc", "cgroup 'a': 257 workers, limit 256");
    s.cgroups[0] = s_cg("a", 200, 0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[s.n_cgroups++] = s_cg("b", 200, 0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[s.n_cgroups++] = s_cg("c", 200, 0, KT_CPUSET_ALL, 0, NULL);
    s_expect_refused(&s, "tiny-2llc", "600 workers in all, limit 512");
    s.n_cgroups = 2;
    s.cgroups[1] = s_cg("a", 1, 0, KT_CPUSET_ALL, 0, NULL);
    s_expect_refused(&s, "tiny-2llc", "cgroup 'a' is declared twice");
    /* A per-llc expansion that collides with a declared name. */
    s.cgroups[0] = s_cg("x", 1, 0, KT_CPUSET_PER_LLC, 0, NULL);
    s.cgroups[1] = s_cg("x_1", 1, 0, KT_CPUSET_ALL, 0, NULL);
    s_expect_refused(&s, "tiny-2llc", "cgroup 'x_1' is declared twice");

    s.n_cgroups = 1;
    s.cgroups[0] = s_cg("a", 2, 0, KT_CPUSET_ALL, 0, NULL);
    s.duration_ms = 0;
    s_expect_refused(&s, "tiny-2llc", "scenario 'bad' has no duration");
    s.duration_ms = 1000;

    kt_topology_t broken = {1, 3, 1, 1};
    broken.numa_nodes = 2;
    kt_plan_t p;
    char why[128];
    assert_int_equal(kt_scenario_resolve(&s, &broken, 0, &p, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "invalid topology");
}

static void test_faults(void **state)
{
    (void)state;
    kt_scenario_t s;
    kt_scenario_init(&s, "faulty");
    s.cgroups[s.n_cgroups++] = s_cg("a", 2, 0, KT_CPUSET_ALL, 0, NULL);
    s.cgroups[s.n_cgroups++] = s_cg("per", 1, 0, KT_CPUSET_PER_LLC, 0, NULL);
    s.faults[s.n_faults++] = (kt_fault_t){"a", 1, 0};
    s.faults[s.n_faults++] = (kt_fault_t){"per_1", 0, 250};
    kt_topology_t t = s_topo("tiny-2llc");
    kt_plan_t p;
    char why[256] = "";
    int r = kt_scenario_resolve(&s, &t, 0, &p, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_int_equal(p.n_faults, 2);
    assert_int_equal(p.faults[0].cgroup, 0);
    assert_int_equal(p.faults[0].worker, 1);
    assert_int_equal(p.faults[0].at_ms, 0);
    assert_string_equal(p.cgroups[p.faults[1].cgroup].name, "per_1");
    assert_int_equal(p.faults[1].at_ms, 250);

    s.faults[0] = (kt_fault_t){"a", 2, 0};
    s_expect_refused(&s, "tiny-2llc", "fault names no worker: cgroup 'a' worker 2");
    s.faults[0] = (kt_fault_t){"nobody", 0, 0};
    s_expect_refused(&s, "tiny-2llc", "fault names no worker: cgroup 'nobody' worker 0");
    s.faults[0] = (kt_fault_t){"a", 0, 0};
    s.faults[1] = (kt_fault_t){"per_2", 0, 0}; /* tiny-2llc has LLCs 0 and 1 */
    s_expect_refused(&s, "tiny-2llc", "fault names no worker: cgroup 'per_2' worker 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_types),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_builtins_resolve),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_per_llc_and_cpusets),
        cmocka_unit_test(test_pingpong_counts),
        cmocka_unit_test(test_group_counts),
        cmocka_unit_test(test_override_work),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
