/* Built-in scenarios, constraint filtering and resolution of a scenario
 * against a topology into the plan ktstr-init executes. */
#include "kt_scenario.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kt_cleanup.h"

static const struct {
    const char *name;
    const char *alias; /* ktstr's name where it differs */
    unsigned group;
    bool wakes;
} s_work_types[KT_WORK__COUNT] = {
    [KT_WORK_SPIN] = {"spin", "spin-wait", 1, false},
    [KT_WORK_YIELD] = {"yield", "yield-heavy", 1, false},
    [KT_WORK_MIXED] = {"mixed", NULL, 1, false},
    [KT_WORK_BURSTY] = {"bursty", NULL, 1, false},
    [KT_WORK_IO_SYNC] = {"io-sync", NULL, 1, false},
    [KT_WORK_PIPE_PINGPONG] = {"pipe-pingpong", "pipe-io", 2, true},
    [KT_WORK_FUTEX_PINGPONG] = {"futex-pingpong", "futex-ping-pong", 2, true},
    [KT_WORK_CACHE_PRESSURE] = {"cache-pressure", NULL, 1, false},
    [KT_WORK_CACHE_YIELD] = {"cache-yield", NULL, 1, false},
    [KT_WORK_CACHE_PIPE] = {"cache-pipe", NULL, 2, true},
    [KT_WORK_FUTEX_FAN_OUT] = {"futex-fan-out", NULL, 5, true},
    [KT_WORK_FAN_OUT_COMPUTE] = {"fan-out-compute", NULL, 5, true},
    [KT_WORK_SEQUENCE] = {"sequence", NULL, 1, false},
    [KT_WORK_FORK_EXIT] = {"fork-exit", NULL, 1, false},
    [KT_WORK_NICE_SWEEP] = {"nice-sweep", NULL, 1, false},
    [KT_WORK_AFFINITY_CHURN] = {"affinity-churn", NULL, 1, false},
    [KT_WORK_POLICY_CHURN] = {"policy-churn", NULL, 1, false},
    [KT_WORK_PAGE_FAULT_CHURN] = {"page-fault-churn", NULL, 1, false},
    [KT_WORK_MUTEX_CONTENTION] = {"mutex-contention", NULL, 4, true},
};

const char *kt_work_type_name(enum kt_work_type type)
{
    return (unsigned)type < KT_WORK__COUNT ? s_work_types[type].name : "unknown";
}

int kt_work_type_parse(const char *name, enum kt_work_type *ret)
{
    for (unsigned i = 0; i < KT_WORK__COUNT; i++) {
        if (strcmp(name, s_work_types[i].name) == 0 ||
            (s_work_types[i].alias && strcmp(name, s_work_types[i].alias) == 0)) {
            *ret = (enum kt_work_type)i;
            return 0;
        }
    }
    /* Underscores are accepted for dashes (pipe_pingpong). */
    char buf[32];
    size_t n = strlen(name);
    if (n >= sizeof(buf) || !strchr(name, '_'))
        return -EINVAL;
    for (size_t i = 0; i <= n; i++)
        buf[i] = name[i] == '_' ? '-' : name[i];
    return kt_work_type_parse(buf, ret);
}

unsigned kt_work_type_group_size(enum kt_work_type type)
{
    return (unsigned)type < KT_WORK__COUNT ? s_work_types[type].group : 1;
}

bool kt_work_type_wakes(enum kt_work_type type)
{
    return (unsigned)type < KT_WORK__COUNT && s_work_types[type].wakes;
}

bool kt_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= KT_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

bool kt_cgroup_name_valid(const char *name)
{
    if (!name[0] || name[0] == '/' || strlen(name) >= KT_NAME_MAX)
        return false;
    for (const char *seg = name; *seg;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        seg += n;
        if (*seg == '/' && !*++seg)
            return false;
    }
    return true;
}

static const char *const s_policy_names[] = {
    [KT_POLICY_NORMAL] = "normal", [KT_POLICY_BATCH] = "batch", [KT_POLICY_IDLE] = "idle",
    [KT_POLICY_FIFO] = "fifo",     [KT_POLICY_RR] = "rr",
};

const char *kt_sched_policy_name(enum kt_sched_policy p)
{
    return (unsigned)p < sizeof(s_policy_names) / sizeof(s_policy_names[0]) ? s_policy_names[p]
                                                                             : "unknown";
}

int kt_sched_policy_parse(const char *name, enum kt_sched_policy *ret)
{
    for (unsigned i = 0; i < sizeof(s_policy_names) / sizeof(s_policy_names[0]); i++) {
        if (strcmp(name, s_policy_names[i]) == 0) {
            *ret = (enum kt_sched_policy)i;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *const s_affinity_names[KT_AFFINITY__COUNT] = {
    [KT_AFFINITY_INHERIT] = "inherit", [KT_AFFINITY_RANDOM] = "random",
    [KT_AFFINITY_LLC] = "llc",         [KT_AFFINITY_CROSS] = "cross-cgroup",
    [KT_AFFINITY_SINGLE] = "single",   [KT_AFFINITY_EXACT] = "exact",
};

const char *kt_affinity_kind_name(enum kt_affinity_kind k)
{
    return (unsigned)k < KT_AFFINITY__COUNT ? s_affinity_names[k] : "unknown";
}

static const char *const s_op_names[KT_OP__COUNT] = {
    [KT_OP_ADD_CGROUP] = "add_cgroup",       [KT_OP_REMOVE_CGROUP] = "remove_cgroup",
    [KT_OP_SET_CPUSET] = "set_cpuset",       [KT_OP_CLEAR_CPUSET] = "clear_cpuset",
    [KT_OP_SWAP_CPUSETS] = "swap_cpusets",   [KT_OP_SPAWN] = "spawn",
    [KT_OP_STOP] = "stop",                   [KT_OP_SET_AFFINITY] = "set_affinity",
    [KT_OP_MOVE_TASKS] = "move_tasks",
};

const char *kt_op_kind_name(enum kt_op_kind k)
{
    return (unsigned)k < KT_OP__COUNT ? s_op_names[k] : "unknown";
}

int kt_op_kind_parse(const char *name, enum kt_op_kind *ret)
{
    for (unsigned i = 0; i < KT_OP__COUNT; i++) {
        if (strcmp(name, s_op_names[i]) == 0) {
            *ret = (enum kt_op_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

void kt_thresholds_default(kt_thresholds_t *ret)
{
    *ret = (kt_thresholds_t){
        .check_starved = true,
        .check_isolation = true,
        .check_spread = true,
        .max_spread_pct = 15.0,
        .check_gap = true,
        .max_gap_ms = 2000,
    };
}

static const char *const s_thr_field_names[KT_THR__COUNT] = {
    [KT_THR_STARVED] = "not_starved",
    [KT_THR_ISOLATION] = "cpuset_isolation",
    [KT_THR_SPREAD_ON] = "fairness_spread",
    [KT_THR_SPREAD] = "fairness_spread",
    [KT_THR_GAP_ON] = "max_gap",
    [KT_THR_GAP] = "max_gap",
    [KT_THR_WAKE_P99] = "wake_p99",
    [KT_THR_WORK_RATE] = "work_rate",
    [KT_THR_CALLBACK_NS] = "bpf_callback_ns",
    [KT_THR_CALLBACK_BOUNDS] = "bpf_callback_ns",
    [KT_THR_WAKE_CV] = "wake_cv",
    [KT_THR_THROUGHPUT_CV] = "throughput_cv",
    [KT_THR_ITERATION_RATE] = "iteration_rate",
    [KT_THR_MIGRATION_RATIO] = "migration_ratio",
};

const char *kt_thr_field_name(enum kt_thr_field f)
{
    return (unsigned)f < KT_THR__COUNT ? s_thr_field_names[f] : "unknown";
}

const char *kt_thr_source_name(enum kt_thr_source s)
{
    switch (s) {
    case KT_THR_FROM_DEFAULT:
        return "default";
    case KT_THR_FROM_DEBUG_DEFAULT:
        return "debug-default";
    case KT_THR_FROM_SCHEDULER:
        return "scheduler";
    case KT_THR_FROM_SCENARIO:
        return "scenario";
    }
    return "unknown";
}

void kt_thresholds_merge(kt_thresholds_t *base, const kt_thresholds_t *layer,
                         enum kt_thr_source source)
{
    uint32_t set = layer->set & KT_THR_ALL;
#define S_TAKE(bit, field)                                                                         \
    do {                                                                                           \
        if (set & KT_THR_BIT(bit))                                                                 \
            base->field = layer->field;                                                            \
    } while (0)
    S_TAKE(KT_THR_STARVED, check_starved);
    S_TAKE(KT_THR_ISOLATION, check_isolation);
    S_TAKE(KT_THR_SPREAD_ON, check_spread);
    S_TAKE(KT_THR_SPREAD, max_spread_pct);
    S_TAKE(KT_THR_GAP_ON, check_gap);
    S_TAKE(KT_THR_GAP, max_gap_ms);
    S_TAKE(KT_THR_WAKE_P99, max_p99_wake_us);
    S_TAKE(KT_THR_WORK_RATE, min_work_rate);
    S_TAKE(KT_THR_CALLBACK_NS, max_callback_ns);
    S_TAKE(KT_THR_WAKE_CV, max_wake_cv);
    S_TAKE(KT_THR_THROUGHPUT_CV, max_throughput_cv);
    S_TAKE(KT_THR_ITERATION_RATE, min_iteration_rate);
    S_TAKE(KT_THR_MIGRATION_RATIO, max_migration_ratio);
#undef S_TAKE
    if (set & KT_THR_BIT(KT_THR_CALLBACK_BOUNDS)) {
        base->n_callback_bounds = layer->n_callback_bounds;
        memcpy(base->callback_bounds, layer->callback_bounds, sizeof(base->callback_bounds));
    }
    base->set |= set;
    if (source == KT_THR_FROM_SCHEDULER)
        base->from_scheduler |= set;
    else
        base->from_scheduler &= ~set;
    base->debug_relaxed &= ~set;
}

void kt_thresholds_layer(const kt_thresholds_t *scheduler, const kt_thresholds_t *scenario,
                         kt_thresholds_t *ret)
{
    kt_thresholds_t t;
    kt_thresholds_default(&t);
    if (scheduler)
        kt_thresholds_merge(&t, scheduler, KT_THR_FROM_SCHEDULER);
    kt_thresholds_merge(&t, scenario, KT_THR_FROM_SCENARIO);
    *ret = t;
}

unsigned kt_thresholds_relax_for_debug(kt_thresholds_t *t)
{
    unsigned n = 0;
    if (!(t->set & KT_THR_BIT(KT_THR_SPREAD))) {
        t->max_spread_pct = KT_THR_DEBUG_SPREAD_PCT;
        t->debug_relaxed |= KT_THR_BIT(KT_THR_SPREAD);
        n++;
    }
    if (!(t->set & KT_THR_BIT(KT_THR_GAP))) {
        t->max_gap_ms = KT_THR_DEBUG_GAP_MS;
        t->debug_relaxed |= KT_THR_BIT(KT_THR_GAP);
        n++;
    }
    return n;
}

enum kt_thr_source kt_thresholds_source(const kt_thresholds_t *t, enum kt_thr_field f)
{
    uint32_t bit = (unsigned)f < KT_THR__COUNT ? KT_THR_BIT(f) : 0;
    if (t->set & bit)
        return t->from_scheduler & bit ? KT_THR_FROM_SCHEDULER : KT_THR_FROM_SCENARIO;
    return t->debug_relaxed & bit ? KT_THR_FROM_DEBUG_DEFAULT : KT_THR_FROM_DEFAULT;
}

void kt_scenario_init(kt_scenario_t *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->duration_ms = 5000;
    kt_thresholds_default(&s->thresholds);
}

static kt_cgroup_spec_t s_cg(const char *name, enum kt_work_type work, double per_cpu,
                             enum kt_cpuset_kind kind)
{
    kt_cgroup_spec_t c = {.work = work, .workers_per_cpu = per_cpu, .cpuset = {.kind = kind}};
    snprintf(c.name, sizeof(c.name), "%s", name);
    return c;
}


/* ---- the catalog of ktstr's canned scenarios with steps ---- */

static kt_scenario_t *s_new(const char *name, const char *desc);
static kt_cpuset_spec_t s_slice(enum kt_cpuset_kind kind, unsigned i, unsigned of)
{
    return (kt_cpuset_spec_t){.kind = kind, .index = i, .of = of};
}

static kt_cpuset_spec_t s_range(double lo, double hi)
{
    return (kt_cpuset_spec_t){.kind = KT_CPUSET_RANGE, .lo = lo, .hi = hi};
}

static kt_step_spec_t *s_step(kt_scenario_t *s, enum kt_hold_kind hold, double frac, uint32_t ms)
{
    kt_step_spec_t *st = &s->steps[s->n_steps++];
    memset(st, 0, sizeof(*st));
    st->hold = hold;
    st->frac = frac;
    st->ms = ms;
    return st;
}

static kt_op_spec_t *s_op(kt_step_spec_t *st, enum kt_op_kind kind, const char *cg,
                          const char *target)
{
    kt_op_spec_t *op = &st->ops[st->n_ops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    snprintf(op->cgroup, sizeof(op->cgroup), "%s", cg);
    if (target)
        snprintf(op->target, sizeof(op->target), "%s", target);
    return op;
}

/* A fairness spread is not a property of the scheduler where the scenario
 * gives workers of one cgroup different CPUs on purpose (with steps, the
 * spread is judged per phase, so different lifetimes are fine). */
static void s_no_spread(kt_scenario_t *s)
{
    s->thresholds.check_spread = false;
    s->thresholds.set |= KT_THR_BIT(KT_THR_SPREAD_ON);
}

static unsigned s_n_builtins;
static kt_scenario_t s_builtins[24];

static kt_scenario_t *s_new(const char *name, const char *desc)
{
    kt_scenario_t *s = &s_builtins[s_n_builtins++];
    kt_scenario_init(s, name);
    snprintf(s->description, sizeof(s->description), "%s", desc);
    return s;
}

static void s_catalog_init(void)
{
    kt_scenario_t *s;
    kt_step_spec_t *st;
    kt_cgroup_spec_t *cg;

    s = s_new("cpuset_apply", "two cgroups of spinners on all CPUs, then disjoint cpusets applied "
                              "mid-run: tasks must leave the CPUs they lost");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("cg_1", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s_step(s, KT_HOLD_FRAC, 0.5, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.5, 0);
    s_op(st, KT_OP_SET_CPUSET, "cg_0", NULL)->cpuset = s_slice(KT_CPUSET_DISJOINT, 0, 2);
    s_op(st, KT_OP_SET_CPUSET, "cg_1", NULL)->cpuset = s_slice(KT_CPUSET_DISJOINT, 1, 2);
    s->constraints.min_cpus = 2;

    s = s_new("cpuset_clear", "two cgroups on disjoint cpusets, cleared mid-run: tasks may "
                              "spread over every CPU");
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_0", KT_WORK_SPIN, 1.0, KT_CPUSET_DISJOINT);
    cg->cpuset = s_slice(KT_CPUSET_DISJOINT, 0, 2);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_1", KT_WORK_SPIN, 1.0, KT_CPUSET_DISJOINT);
    cg->cpuset = s_slice(KT_CPUSET_DISJOINT, 1, 2);
    s_step(s, KT_HOLD_FRAC, 0.5, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.5, 0);
    s_op(st, KT_OP_CLEAR_CPUSET, "cg_0", NULL);
    s_op(st, KT_OP_CLEAR_CPUSET, "cg_1", NULL);
    s->constraints.min_cpus = 2;

    s = s_new("cpuset_resize", "a cgroup's cpuset shrinks to a quarter of the CPUs, then grows to "
                               "all, beside a cgroup on the other half");
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_0", KT_WORK_SPIN, 1.0, KT_CPUSET_RANGE);
    cg->cpuset = s_range(0.0, 0.5);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_1", KT_WORK_SPIN, 1.0, KT_CPUSET_RANGE);
    cg->cpuset = s_range(0.5, 1.0);
    s_step(s, KT_HOLD_FRAC, 0.3, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.35, 0);
    s_op(st, KT_OP_SET_CPUSET, "cg_0", NULL)->cpuset = s_range(0.0, 0.25);
    st = s_step(s, KT_HOLD_FRAC, 0.35, 0);
    s_op(st, KT_OP_SET_CPUSET, "cg_0", NULL)->cpuset = s_range(0.0, 1.0);
    s->constraints.min_cpus = 4;

    s = s_new("cpuset_swap", "two cgroups on disjoint cpusets that swap every 500 ms: repeated "
                             "mass migration");
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_0", KT_WORK_SPIN, 0.5, KT_CPUSET_DISJOINT);
    cg->cpuset = s_slice(KT_CPUSET_DISJOINT, 0, 2);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_1", KT_WORK_SPIN, 0.5, KT_CPUSET_DISJOINT);
    cg->cpuset = s_slice(KT_CPUSET_DISJOINT, 1, 2);
    s_step(s, KT_HOLD_FRAC, 0.2, 0);
    st = s_step(s, KT_HOLD_LOOP, 0, 500);
    s_op(st, KT_OP_SWAP_CPUSETS, "cg_0", "cg_1");
    s->constraints.min_cpus = 2;

    s = s_new("cgroup_add", "a cgroup of spinners, joined mid-run by a second cgroup created "
                            "then: the newcomer gets its share");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_late", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    cg->deferred = true;
    s_step(s, KT_HOLD_FRAC, 0.5, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.5, 0);
    s_op(st, KT_OP_ADD_CGROUP, "cg_late", NULL);

    s = s_new("cgroup_remove", "two cgroups of spinners, one removed mid-run: the other takes "
                               "the freed CPUs");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("cg_gone", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s_step(s, KT_HOLD_FRAC, 0.5, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.5, 0);
    s_op(st, KT_OP_REMOVE_CGROUP, "cg_gone", NULL);

    s = s_new("cgroup_spawn", "a cgroup of spinners that doubles mid-run, then a second cgroup "
                              "stopped: task arrival and exit under load");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("cg_1", KT_WORK_MIXED, 0.5, KT_CPUSET_ALL);
    s_step(s, KT_HOLD_FRAC, 0.3, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.35, 0);
    s_op(st, KT_OP_SPAWN, "cg_0", NULL)->workers = 2;
    st = s_step(s, KT_HOLD_FRAC, 0.35, 0);
    s_op(st, KT_OP_STOP, "cg_1", NULL);
    s->constraints.min_cpus = 2;

    s = s_new("affinity_change", "spinners whose affinity moves to a new random pair of CPUs "
                                 "every 500 ms");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_SPIN, 1.0, KT_CPUSET_ALL);
    s_step(s, KT_HOLD_FRAC, 0.2, 0);
    st = s_step(s, KT_HOLD_LOOP, 0, 500);
    s_op(st, KT_OP_SET_AFFINITY, "cg_0", NULL)->affinity =
        (kt_affinity_spec_t){.kind = KT_AFFINITY_RANDOM, .count = 2};
    s_no_spread(s);
    s->constraints.min_cpus = 3;

    s = s_new("affinity_pinned", "one spinner pinned to each CPU, beside unpinned mixed workers: "
                                 "pinned tasks stay put");
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("pinned", KT_WORK_SPIN, 1.0, KT_CPUSET_ALL);
    cg->affinity.kind = KT_AFFINITY_SINGLE;
    s->cgroups[s->n_cgroups++] = s_cg("free", KT_WORK_MIXED, 0.5, KT_CPUSET_ALL);
    s->constraints.min_cpus = 2;

    s = s_new("affinity_cross", "workers whose affinity spans every CPU inside a cpuset of half "
                                "of them: the cpuset must win");
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_0", KT_WORK_SPIN, 1.0, KT_CPUSET_DISJOINT);
    cg->cpuset = s_slice(KT_CPUSET_DISJOINT, 0, 2);
    cg->affinity.kind = KT_AFFINITY_CROSS;
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("cg_1", KT_WORK_SPIN, 1.0, KT_CPUSET_DISJOINT);
    cg->cpuset = s_slice(KT_CPUSET_DISJOINT, 1, 2);
    cg->affinity.kind = KT_AFFINITY_LLC;
    s->constraints.min_cpus = 2;

    s = s_new("host_contention", "mixed workers beside a cgroup of nice -5 spinners standing in "
                                 "for host load: the workers must not starve");
    s->cgroups[s->n_cgroups++] = s_cg("work", KT_WORK_MIXED, 1.0, KT_CPUSET_ALL);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("host", KT_WORK_SPIN, 1.0, KT_CPUSET_ALL);
    cg->nice = -5;

    s = s_new("mixed_workloads", "spinners, bursty, io-sync and futex ping-pong workers in "
                                 "cgroups of their own");
    s->cgroups[s->n_cgroups++] = s_cg("spin", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("bursty", KT_WORK_BURSTY, 0.5, KT_CPUSET_ALL);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("io", KT_WORK_IO_SYNC, 0, KT_CPUSET_ALL);
    cg->workers = 1;
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("pingpong", KT_WORK_FUTEX_PINGPONG, 0, KT_CPUSET_ALL);
    cg->workers = 2;
    s->constraints.min_cpus = 2;

    s = s_new("nested_steady", "two nested cgroups of spinners under one parent, beside a "
                               "top-level cgroup: hierarchical weights");
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("outer", KT_WORK_SPIN, 0, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("outer/a", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("outer/b", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("top", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);

    s = s_new("nested_task_move", "every task of one nested cgroup moved mid-run to a sibling on "
                                  "other CPUs: they must follow");
    s->cgroups[s->n_cgroups++] = s_cg("outer", KT_WORK_SPIN, 0, KT_CPUSET_ALL);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("outer/a", KT_WORK_SPIN, 1.0, KT_CPUSET_RANGE);
    cg->cpuset = s_range(0.0, 0.5);
    cg = &s->cgroups[s->n_cgroups++];
    *cg = s_cg("outer/b", KT_WORK_SPIN, 0, KT_CPUSET_RANGE);
    cg->cpuset = s_range(0.5, 1.0);
    s_step(s, KT_HOLD_FRAC, 0.5, 0);
    st = s_step(s, KT_HOLD_FRAC, 0.5, 0);
    s_op(st, KT_OP_MOVE_TASKS, "outer/a", "outer/b");
    s->constraints.min_cpus = 2;
}

static void s_builtins_init(void)
{
    if (s_n_builtins)
        return;
    kt_scenario_t *s;

    s = &s_builtins[s_n_builtins++];
    kt_scenario_init(s, "steady");
    snprintf(s->description, sizeof(s->description),
             "two cgroups of spinners, one spinner per CPU in all: balance and fairness");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("cg_1", KT_WORK_SPIN, 0.5, KT_CPUSET_ALL);

    s = &s_builtins[s_n_builtins++];
    kt_scenario_init(s, "steady_llc");
    snprintf(s->description, sizeof(s->description),
             "a cgroup per LLC with its cpuset on that LLC, one spinner per CPU: isolation");
    s->cgroups[s->n_cgroups++] = s_cg("llc", KT_WORK_SPIN, 1.0, KT_CPUSET_PER_LLC);
    s->constraints.min_llcs = 2;

    s = &s_builtins[s_n_builtins++];
    kt_scenario_init(s, "oversubscribed");
    snprintf(s->description, sizeof(s->description),
             "two cgroups of mixed workers, two workers per CPU in all: fairness under load");
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", KT_WORK_MIXED, 1.0, KT_CPUSET_ALL);
    s->cgroups[s->n_cgroups++] = s_cg("cg_1", KT_WORK_MIXED, 1.0, KT_CPUSET_ALL);

    s = &s_builtins[s_n_builtins++];
    kt_scenario_init(s, "pipe_pingpong");
    snprintf(s->description, sizeof(s->description),
             "pairs exchanging a byte over pipes, one worker per CPU: wakeup latency");
    s->cgroups[s->n_cgroups++] = s_cg("pingpong", KT_WORK_PIPE_PINGPONG, 1.0, KT_CPUSET_ALL);
    s->constraints.min_cpus = 2;

    s = &s_builtins[s_n_builtins++];
    kt_scenario_init(s, "futex_pingpong");
    snprintf(s->description, sizeof(s->description),
             "pairs alternating on a shared futex, one worker per CPU: wakeup latency");
    s->cgroups[s->n_cgroups++] = s_cg("pingpong", KT_WORK_FUTEX_PINGPONG, 1.0, KT_CPUSET_ALL);
    s->constraints.min_cpus = 2;

    s_catalog_init();
}

const kt_scenario_t *kt_scenario_builtins(unsigned *ret_count)
{
    s_builtins_init();
    *ret_count = s_n_builtins;
    return s_builtins;
}

const kt_scenario_t *kt_scenario_builtin_find(const char *name)
{
    s_builtins_init();
    for (unsigned i = 0; i < s_n_builtins; i++)
        if (strcmp(s_builtins[i].name, name) == 0)
            return &s_builtins[i];
    return NULL;
}

int kt_scenario_fits(const kt_scenario_t *s, const kt_topology_t *t, char *why, size_t why_len)
{
    const kt_constraints_t *c = &s->constraints;
    unsigned cpus = kt_topology_cpus(t);
    const char *what = NULL;
    unsigned have = 0, bound = 0;

#define S_BOUND(cond, text, h, b)                                                                  \
    if (!what && (cond)) {                                                                         \
        what = (text);                                                                             \
        have = (h);                                                                                \
        bound = (b);                                                                               \
    }
    S_BOUND(c->min_llcs && t->llcs < c->min_llcs, "at least", t->llcs, c->min_llcs);
    S_BOUND(c->max_llcs && t->llcs > c->max_llcs, "at most", t->llcs, c->max_llcs);
    const char *unit = what ? "LLCs" : NULL;
    S_BOUND(c->min_cpus && cpus < c->min_cpus, "at least", cpus, c->min_cpus);
    S_BOUND(c->max_cpus && cpus > c->max_cpus, "at most", cpus, c->max_cpus);
    if (what && !unit)
        unit = "CPUs";
    S_BOUND(c->min_numa && t->numa_nodes < c->min_numa, "at least", t->numa_nodes, c->min_numa);
    S_BOUND(c->max_numa && t->numa_nodes > c->max_numa, "at most", t->numa_nodes, c->max_numa);
    if (what && !unit)
        unit = "NUMA nodes";
    S_BOUND(c->requires_smt && t->threads_per_core < 2, "at least", t->threads_per_core, 2);
    if (what && !unit)
        unit = "threads per core (SMT)";
#undef S_BOUND
    if (!what)
        return 0;
    snprintf(why, why_len, "scenario '%s' needs %s %u %s, topology has %u", s->name, what, bound,
             unit, have);
    return -EDOM;
}

/* CPUs [first, last) of the topology's, in CPU order. */
static void s_mask_span(unsigned first, unsigned last, kt_cpumask_t *ret)
{
    kt_cpumask_zero(ret);
    for (unsigned c = first; c < last; c++)
        kt_cpumask_set(ret, c);
}

/* The fraction kinds: range lo..hi, disjoint slice i of n, overlapping
 * slice i of n. Bounds round outwards so that a slice is never empty on a
 * topology with enough CPUs; one with too few is refused. */
static int s_cpuset_slice(const kt_cpuset_spec_t *cs, const kt_topology_t *t, kt_cpumask_t *ret,
                          const char *cg, char *why, size_t wl)
{
    unsigned n = kt_topology_cpus(t);
    double lo, hi;
    if (cs->kind == KT_CPUSET_RANGE) {
        if (!(cs->lo >= 0.0 && cs->hi <= 1.0 && cs->lo < cs->hi)) {
            snprintf(why, wl, "cgroup '%s': cpuset range %g..%g is not within 0..1 with lo < hi",
                     cg, cs->lo, cs->hi);
            return -EINVAL;
        }
        lo = cs->lo;
        hi = cs->hi;
    } else {
        if (cs->of == 0 || cs->index >= cs->of) {
            snprintf(why, wl, "cgroup '%s': cpuset slice %u of %u does not exist", cg, cs->index,
                     cs->of);
            return -EINVAL;
        }
        if (cs->of > n) {
            snprintf(why, wl, "cgroup '%s': %u cpuset slices of %u CPUs would leave some empty",
                     cg, cs->of, n);
            return -EINVAL;
        }
        double w = 1.0 / cs->of;
        lo = cs->index * w;
        hi = (cs->index + 1) * w;
        if (cs->kind == KT_CPUSET_OVERLAP) {
            if (!(cs->overlap > 0.0 && cs->overlap <= 1.0)) {
                snprintf(why, wl, "cgroup '%s': cpuset overlap %g is not in (0, 1]", cg,
                         cs->overlap);
                return -EINVAL;
            }
            lo -= cs->overlap * w;
            hi += cs->overlap * w;
            lo = lo < 0.0 ? 0.0 : lo;
            hi = hi > 1.0 ? 1.0 : hi;
        }
    }
    unsigned first = (unsigned)floor(lo * n + 1e-9);
    unsigned last = (unsigned)ceil(hi * n - 1e-9);
    if (last > n)
        last = n;
    if (last <= first) {
        snprintf(why, wl, "cgroup '%s': cpuset %g..%g of %u CPUs holds no CPU", cg, lo, hi, n);
        return -EINVAL;
    }
    s_mask_span(first, last, ret);
    return 0;
}

static int s_cpuset_mask(const kt_cpuset_spec_t *cs, const kt_topology_t *t, kt_cpumask_t *ret,
                         const char *cg, char *why, size_t wl)
{
    kt_cpumask_t all;
    kt_topology_all_mask(t, &all);
    switch (cs->kind) {
    case KT_CPUSET_ALL:
        *ret = all;
        return 0;
    case KT_CPUSET_LLC:
        if (cs->index >= t->llcs) {
            snprintf(why, wl, "cgroup '%s': cpuset names LLC %u, topology has %u", cg, cs->index,
                     t->llcs);
            return -EINVAL;
        }
        kt_topology_llc_mask(t, cs->index, ret);
        return 0;
    case KT_CPUSET_NODE:
        if (cs->index >= t->numa_nodes) {
            snprintf(why, wl, "cgroup '%s': cpuset names NUMA node %u, topology has %u", cg,
                     cs->index, t->numa_nodes);
            return -EINVAL;
        }
        kt_topology_node_mask(t, cs->index, ret);
        return 0;
    case KT_CPUSET_LIST:
        if (kt_cpumask_parse(cs->list, ret) < 0 || kt_cpumask_empty(ret)) {
            snprintf(why, wl, "cgroup '%s': bad CPU list '%s'", cg, cs->list);
            return -EINVAL;
        }
        if (!kt_cpumask_subset(ret, &all)) {
            snprintf(why, wl, "cgroup '%s': CPU list '%s' is outside the %u CPUs of the topology",
                     cg, cs->list, kt_topology_cpus(t));
            return -EINVAL;
        }
        return 0;
    case KT_CPUSET_RANGE:
    case KT_CPUSET_DISJOINT:
    case KT_CPUSET_OVERLAP:
        return s_cpuset_slice(cs, t, ret, cg, why, wl);
    case KT_CPUSET_PER_LLC:
        break;
    }
    snprintf(why, wl, "cgroup '%s': unexpected cpuset kind", cg);
    return -EINVAL;
}

/* An affinity spec into the plan's fields; exact lists are checked against
 * the topology. */
static int s_plan_affinity(const kt_affinity_spec_t *a, const kt_topology_t *t, const char *cg,
                           enum kt_affinity_kind *kind, unsigned *count, kt_cpumask_t *cpus,
                           char *why, size_t wl)
{
    if ((unsigned)a->kind >= KT_AFFINITY__COUNT) {
        snprintf(why, wl, "cgroup '%s': unknown affinity kind %u", cg, (unsigned)a->kind);
        return -EINVAL;
    }
    *kind = a->kind;
    *count = 0;
    kt_cpumask_zero(cpus);
    if (a->kind == KT_AFFINITY_RANDOM) {
        if (a->count == 0 || a->count > kt_topology_cpus(t)) {
            snprintf(why, wl, "cgroup '%s': random affinity of %u CPUs, topology has %u", cg,
                     a->count, kt_topology_cpus(t));
            return -EINVAL;
        }
        *count = a->count;
    } else if (a->kind == KT_AFFINITY_EXACT) {
        kt_cpumask_t all;
        kt_topology_all_mask(t, &all);
        if (kt_cpumask_parse(a->list, cpus) < 0 || kt_cpumask_empty(cpus)) {
            snprintf(why, wl, "cgroup '%s': bad affinity CPU list '%s'", cg, a->list);
            return -EINVAL;
        }
        if (!kt_cpumask_subset(cpus, &all)) {
            snprintf(why, wl, "cgroup '%s': affinity CPU list '%s' is outside the %u CPUs", cg,
                     a->list, kt_topology_cpus(t));
            return -EINVAL;
        }
    }
    return 0;
}

static int s_add_cgroup(kt_plan_t *p, const kt_topology_t *t, const kt_cgroup_spec_t *spec,
                        const char *name, const kt_cpumask_t *cpus, bool has_cpuset, char *why,
                        size_t wl)
{
    if (p->n_cgroups >= KT_MAX_CGROUPS) {
        snprintf(why, wl, "more than %d cgroups", KT_MAX_CGROUPS);
        return -EINVAL;
    }
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        if (strcmp(p->cgroups[i].name, name) == 0) {
            snprintf(why, wl, "cgroup '%s' is declared twice", name);
            return -EINVAL;
        }
    }
    unsigned workers = spec->workers;
    if (!workers && spec->workers_per_cpu == 0.0) {
        /* No workers: a parent of nested cgroups, or one that an op fills
         * (spawn, move_tasks); kt_scenario_resolve checks which. */
    } else if (!workers) {
        double w = spec->workers_per_cpu * kt_cpumask_weight(cpus);
        workers = w < 1.0 ? 1 : (unsigned)lround(w);
    }
    unsigned group = kt_work_type_group_size(spec->work);
    if (workers % group) {
        if (spec->workers) {
            snprintf(why, wl, "cgroup '%s': %s workers come in groups of %u, %u given", name,
                     kt_work_type_name(spec->work), group, workers);
            return -EINVAL;
        }
        workers += group - workers % group;
    }
    if (workers > KT_MAX_WORKERS_PER_CGROUP) {
        snprintf(why, wl, "cgroup '%s': %u workers, limit %d", name, workers,
                 KT_MAX_WORKERS_PER_CGROUP);
        return -EINVAL;
    }
    kt_plan_cgroup_t *c = &p->cgroups[p->n_cgroups++];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->has_cpuset = has_cpuset;
    c->cpus = *cpus;
    c->workers = workers;
    c->work = spec->work;
    c->policy = spec->policy;
    c->nice = spec->nice;
    c->rt_priority = spec->rt_priority;
    c->deferred = spec->deferred;
        int r = s_plan_affinity(&spec->affinity, t, name, &c->affinity, &c->affinity_count,
                            &c->affinity_cpus, why, wl);
    if (r < 0) {
        p->n_cgroups--;
        return r;
    }
    if ((spec->policy == KT_POLICY_FIFO || spec->policy == KT_POLICY_RR) &&
        (spec->rt_priority < 1 || spec->rt_priority > KT_RT_PRIORITY_MAX)) {
        snprintf(why, wl, "cgroup '%s': policy %s needs rt_priority 1..%d, %u given", name,
                 kt_sched_policy_name(spec->policy), KT_RT_PRIORITY_MAX, spec->rt_priority);
        p->n_cgroups--;
        return -EINVAL;
    }
    if (spec->policy != KT_POLICY_FIFO && spec->policy != KT_POLICY_RR && spec->rt_priority) {
        snprintf(why, wl, "cgroup '%s': rt_priority is for policies fifo and rr, not %s", name,
                 kt_sched_policy_name(spec->policy));
        p->n_cgroups--;
        return -EINVAL;
    }
    /* "a/b" nests in "a", which must come first. */
    const char *slash = strrchr(name, '/');
    if (slash) {
        size_t plen = (size_t)(slash - name);
        for (unsigned i = 0; i + 1 < p->n_cgroups; i++)
            if (strlen(p->cgroups[i].name) == plen && strncmp(p->cgroups[i].name, name, plen) == 0)
                c->nest_parent = i + 1;
        if (!c->nest_parent) {
            snprintf(why, wl, "cgroup '%s': its parent '%.*s' is not declared before it", name,
                     (int)plen, name);
            p->n_cgroups--;
            return -EINVAL;
        }
    }
    return 0;
}

static int s_cgroup_index(const kt_plan_t *p, const char *name)
{
    for (unsigned i = 0; i < p->n_cgroups; i++)
        if (strcmp(p->cgroups[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool s_is_parent(const kt_plan_t *p, unsigned cg)
{
    for (unsigned i = 0; i < p->n_cgroups; i++)
        if (p->cgroups[i].nest_parent == cg + 1)
            return true;
    return false;
}

/* Nested cgroups: a parent holds no workers of its own (cgroup v2 puts no
 * tasks in a cgroup that distributes cpu to children), and a child's cpuset
 * lies within its parent's; a deferred parent makes its children deferred. */
static int s_check_nesting(kt_plan_t *p, char *why, size_t wl)
{
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        kt_plan_cgroup_t *c = &p->cgroups[i];
        if (s_is_parent(p, i) && c->workers) {
            snprintf(why, wl,
                     "cgroup '%s' has nested cgroups, so it cannot hold workers itself (%u given)",
                     c->name, c->workers);
            return -EINVAL;
        }
        if (!c->nest_parent)
            continue;
        const kt_plan_cgroup_t *par = &p->cgroups[c->nest_parent - 1];
        if (c->has_cpuset && par->has_cpuset && !kt_cpumask_subset(&c->cpus, &par->cpus)) {
            char a[128], b[128];
            kt_cpumask_format(&c->cpus, a, sizeof(a));
            kt_cpumask_format(&par->cpus, b, sizeof(b));
            snprintf(why, wl, "cgroup '%s': cpuset %s is not within its parent's %s", c->name, a,
                     b);
            return -EINVAL;
        }
        if (par->deferred && !c->deferred) {
            snprintf(why, wl, "cgroup '%s': its parent '%s' is deferred, so it must be too",
                     c->name, par->name);
            return -EINVAL;
        }
    }
    return 0;
}

/* A cgroup with no workers must be a parent or get tasks from a spawn or
 * a move. */
static int s_check_empty(const kt_plan_t *p, char *why, size_t wl)
{
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        const kt_plan_cgroup_t *c = &p->cgroups[i];
        if (c->workers || c->spawn_slots || s_is_parent(p, i))
            continue;
        bool filled = false;
        for (unsigned k = 0; k < p->n_steps; k++)
            for (unsigned o = 0; o < p->steps[k].n_ops; o++)
                filled |= p->steps[k].ops[o].kind == KT_OP_MOVE_TASKS &&
                          p->steps[k].ops[o].target == i;
        if (!filled) {
            snprintf(why, wl,
                     "cgroup '%s' has no workers, no nested cgroups, and no step spawns or moves "
                     "tasks into it",
                     c->name);
            return -EINVAL;
        }
    }
    return 0;
}

unsigned kt_plan_total_slots(const kt_plan_t *p)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n_cgroups; i++)
        n += p->cgroups[i].workers + p->cgroups[i].spawn_slots;
    return n;
}

/* Steps into the plan: times from the holds, ops by cgroup index, cpusets
 * as masks; each op is checked against the cgroups alive at its step. */
static int s_resolve_steps(const kt_scenario_t *s, const kt_topology_t *t, kt_plan_t *p, char *why,
                           size_t wl)
{
    if (s->n_steps > KT_MAX_STEPS) {
        snprintf(why, wl, "%u steps, limit %d", s->n_steps, KT_MAX_STEPS);
        return -EINVAL;
    }
    /* 0: not created yet (deferred), 1: alive, 2: removed. */
    unsigned char state[KT_MAX_CGROUPS];
    for (unsigned i = 0; i < p->n_cgroups; i++)
        state[i] = p->cgroups[i].deferred ? 0 : 1;
    uint64_t at = 0;
    for (unsigned k = 0; k < s->n_steps; k++) {
        const kt_step_spec_t *ss = &s->steps[k];
        kt_plan_step_t *ps = &p->steps[k];
        memset(ps, 0, sizeof(*ps));
        if (ss->n_ops > KT_MAX_OPS) {
            snprintf(why, wl, "steps[%u]: %u ops, limit %d", k, ss->n_ops, KT_MAX_OPS);
            return -EINVAL;
        }
        ps->at_ms = (uint32_t)at;
        uint64_t hold;
        switch (ss->hold) {
        case KT_HOLD_FRAC:
            if (!(ss->frac > 0.0 && ss->frac <= 1.0)) {
                snprintf(why, wl, "steps[%u]: hold %g is not a fraction in (0, 1]", k, ss->frac);
                return -EINVAL;
            }
            hold = (uint64_t)llround(ss->frac * p->duration_ms);
            break;
        case KT_HOLD_FIXED:
            hold = ss->ms;
            break;
        case KT_HOLD_LOOP:
            if (k + 1 != s->n_steps) {
                snprintf(why, wl, "steps[%u]: a loop holds to the end of the run, so it must be "
                                  "the last step",
                         k);
                return -EINVAL;
            }
            if (ss->ms < 10) {
                snprintf(why, wl, "steps[%u]: loop interval %u ms, at least 10 ms", k, ss->ms);
                return -EINVAL;
            }
            ps->loop_ms = ss->ms;
            hold = at < p->duration_ms ? p->duration_ms - at : 0;
            break;
        default:
            snprintf(why, wl, "steps[%u]: unknown hold kind", k);
            return -EINVAL;
        }
        if (hold == 0 && ss->hold != KT_HOLD_FIXED) {
            snprintf(why, wl, "steps[%u] starts at %llu ms, at or after the end of the run (%u ms)",
                     k, (unsigned long long)at, p->duration_ms);
            return -EINVAL;
        }
        if (at + hold > p->duration_ms) {
            snprintf(why, wl,
                     "steps[%u]: the steps hold %llu ms up to here, more than the duration %u ms",
                     k, (unsigned long long)(at + hold), p->duration_ms);
            return -EINVAL;
        }
        ps->hold_ms = (uint32_t)hold;
        at += hold;
        for (unsigned o = 0; o < ss->n_ops; o++) {
            const kt_op_spec_t *os = &ss->ops[o];
            kt_plan_op_t *po = &ps->ops[ps->n_ops];
            memset(po, 0, sizeof(*po));
            po->kind = os->kind;
            const char *opn = kt_op_kind_name(os->kind);
            int cg = s_cgroup_index(p, os->cgroup);
            if (cg < 0) {
                snprintf(why, wl, "steps[%u].ops[%u] (%s): no cgroup '%s'", k, o, opn, os->cgroup);
                return -EINVAL;
            }
            po->cgroup = (unsigned)cg;
            bool two = os->kind == KT_OP_SWAP_CPUSETS || os->kind == KT_OP_MOVE_TASKS;
            int tg = two ? s_cgroup_index(p, os->target) : -1;
            if (two && (tg < 0 || tg == cg)) {
                snprintf(why, wl, "steps[%u].ops[%u] (%s): target '%s' is %s", k, o, opn,
                         os->target, tg < 0 ? "no cgroup" : "the cgroup itself");
                return -EINVAL;
            }
            po->target = two ? (unsigned)tg : 0;
            if (ps->loop_ms && (os->kind == KT_OP_ADD_CGROUP || os->kind == KT_OP_REMOVE_CGROUP ||
                                os->kind == KT_OP_SPAWN || os->kind == KT_OP_STOP ||
                                os->kind == KT_OP_MOVE_TASKS)) {
                snprintf(why, wl, "steps[%u].ops[%u]: %s cannot repeat in a loop", k, o, opn);
                return -EINVAL;
            }
            if (os->kind == KT_OP_ADD_CGROUP) {
                if (state[cg] != 0) {
                    snprintf(why, wl, "steps[%u].ops[%u] (add_cgroup): '%s' is %s", k, o,
                             os->cgroup,
                             p->cgroups[cg].deferred ? "added twice" : "not declared deferred");
                    return -EINVAL;
                }
                int par = (int)p->cgroups[cg].nest_parent - 1;
                if (par >= 0 && state[par] != 1) {
                    snprintf(why, wl, "steps[%u].ops[%u] (add_cgroup): parent '%s' of '%s' does "
                                      "not exist then",
                             k, o, p->cgroups[par].name, os->cgroup);
                    return -EINVAL;
                }
                state[cg] = 1;
            } else if (state[cg] != 1 || (two && state[tg] != 1)) {
                unsigned bad = state[cg] != 1 ? (unsigned)cg : (unsigned)tg;
                snprintf(why, wl, "steps[%u].ops[%u] (%s): cgroup '%s' %s", k, o, opn,
                         p->cgroups[bad].name,
                         state[bad] == 0 ? "is not added yet" : "was removed");
                return -EINVAL;
            }
            switch (os->kind) {
            case KT_OP_REMOVE_CGROUP:
                for (unsigned i = 0; i < p->n_cgroups; i++) {
                    if (p->cgroups[i].nest_parent == (unsigned)cg + 1 && state[i] == 1) {
                        snprintf(why, wl, "steps[%u].ops[%u] (remove_cgroup): '%s' still holds "
                                          "'%s'",
                                 k, o, os->cgroup, p->cgroups[i].name);
                        return -EINVAL;
                    }
                }
                state[cg] = 2;
                break;
            case KT_OP_SET_CPUSET: {
                if (os->cpuset.kind == KT_CPUSET_PER_LLC || os->cpuset.kind == KT_CPUSET_ALL) {
                    snprintf(why, wl, "steps[%u].ops[%u] (set_cpuset): cpuset '%s' %s", k, o,
                             os->cgroup,
                             os->cpuset.kind == KT_CPUSET_ALL ? "all: use clear_cpuset"
                                                              : "per-llc is for declarations");
                    return -EINVAL;
                }
                char what[KT_NAME_MAX + 32];
                snprintf(what, sizeof(what), "%s (steps[%u])", os->cgroup, k);
                int r = s_cpuset_mask(&os->cpuset, t, &po->cpus, what, why, wl);
                if (r < 0)
                    return r;
                po->has_cpus = true;
                break;
            }
            case KT_OP_SPAWN: {
                unsigned group = kt_work_type_group_size(p->cgroups[cg].work);
                if (os->workers == 0 || os->workers % group) {
                    snprintf(why, wl, "steps[%u].ops[%u] (spawn): %u workers for '%s', whose %s "
                                      "workers come in groups of %u",
                             k, o, os->workers, os->cgroup, kt_work_type_name(p->cgroups[cg].work),
                             group);
                    return -EINVAL;
                }
                if (s_is_parent(p, (unsigned)cg)) {
                    snprintf(why, wl, "steps[%u].ops[%u] (spawn): '%s' has nested cgroups", k, o,
                             os->cgroup);
                    return -EINVAL;
                }
                po->count = os->workers;
                p->cgroups[cg].spawn_slots += os->workers;
                break;
            }
            case KT_OP_SET_AFFINITY: {
                int r = s_plan_affinity(&os->affinity, t, os->cgroup, &po->affinity, &po->count,
                                        &po->cpus, why, wl);
                if (r < 0)
                    return r;
                po->has_cpus = po->affinity == KT_AFFINITY_EXACT;
                break;
            }
            case KT_OP_MOVE_TASKS:
                if (s_is_parent(p, (unsigned)tg)) {
                    snprintf(why, wl, "steps[%u].ops[%u] (move_tasks): target '%s' has nested "
                                      "cgroups and cannot hold tasks",
                             k, o, os->target);
                    return -EINVAL;
                }
                break;
            default:
                break;
            }
            ps->n_ops++;
        }
    }
    p->n_steps = s->n_steps;
    /* The last step holds to the end of the run. */
    if (p->n_steps)
        p->steps[p->n_steps - 1].hold_ms = p->duration_ms - p->steps[p->n_steps - 1].at_ms;
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        if (state[i] == 0) {
            snprintf(why, wl, "cgroup '%s' is deferred but no step adds it", p->cgroups[i].name);
            return -EINVAL;
        }
    }
    return 0;
}

int kt_scenario_resolve(const kt_scenario_t *s, const kt_topology_t *t, uint32_t duration_override_ms,
                        kt_plan_t *ret, char *why, size_t wl)
{
    if (!kt_topology_valid(t)) {
        snprintf(why, wl, "invalid topology");
        return -EINVAL;
    }
    if (s->n_cgroups == 0 && !kt_payload_present(&s->payload)) {
        snprintf(why, wl, "scenario '%s' has no cgroups", s->name);
        return -EINVAL;
    }
    kt_plan_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.scenario, sizeof(p.scenario), "%s", s->name);
    p.topology = *t;
    p.duration_ms = duration_override_ms ? duration_override_ms : s->duration_ms;
    if (p.duration_ms == 0) {
        snprintf(why, wl, "scenario '%s' has no duration", s->name);
        return -EINVAL;
    }
    p.thresholds = s->thresholds;
    int r;
    for (unsigned i = 0; i < s->n_cgroups; i++) {
        const kt_cgroup_spec_t *spec = &s->cgroups[i];
        if (spec->cpuset.kind == KT_CPUSET_PER_LLC) {
            for (unsigned l = 0; l < t->llcs; l++) {
                char name[KT_NAME_MAX];
                kt_cpumask_t m;
                snprintf(name, sizeof(name), "%.*s_%u", KT_NAME_MAX - 12, spec->name, l & 0xffff);
                kt_topology_llc_mask(t, l, &m);
                if ((r = s_add_cgroup(&p, t, spec, name, &m, true, why, wl)) < 0)
                    return r;
            }
            continue;
        }
        kt_cpumask_t m;
        if ((r = s_cpuset_mask(&spec->cpuset, t, &m, spec->name, why, wl)) < 0)
            return r;
        if ((r = s_add_cgroup(&p, t, spec, spec->name, &m, spec->cpuset.kind != KT_CPUSET_ALL, why,
                              wl)) < 0)
            return r;
    }
    for (unsigned i = 0; i < s->n_faults; i++) {
        const kt_fault_t *f = &s->faults[i];
        unsigned cg = p.n_cgroups;
        for (unsigned j = 0; j < p.n_cgroups; j++)
            if (strcmp(p.cgroups[j].name, f->cgroup) == 0)
                cg = j;
        if (cg == p.n_cgroups || f->worker >= p.cgroups[cg].workers) {
            snprintf(why, wl, "fault names no worker: cgroup '%s' worker %u", f->cgroup, f->worker);
            return -EINVAL;
        }
        p.faults[p.n_faults++] = (kt_plan_fault_t){cg, f->worker, f->at_ms};
    }
    if (kt_plan_total_workers(&p) > KT_MAX_WORKERS) {
        snprintf(why, wl, "%u workers in all, limit %d", kt_plan_total_workers(&p), KT_MAX_WORKERS);
        return -EINVAL;
    }
    if ((r = s_check_nesting(&p, why, wl)) < 0 || (r = s_resolve_steps(s, t, &p, why, wl)) < 0)
        return r;
    if ((r = s_check_empty(&p, why, wl)) < 0)
        return r;
    if (kt_plan_total_slots(&p) > KT_MAX_WORKERS) {
        snprintf(why, wl, "%u workers in all with those spawned by steps, limit %d",
                 kt_plan_total_slots(&p), KT_MAX_WORKERS);
        return -EINVAL;
    }
    /* Random affinities are drawn from a seed of the scenario's name, so a
     * cell's masks are the same in every run. */
    p.seed = 2166136261u;
    for (const char *q = s->name; *q; q++)
        p.seed = (p.seed ^ (unsigned char)*q) * 16777619u;
    *ret = p;
    return 0;
}

unsigned kt_plan_total_workers(const kt_plan_t *p)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n_cgroups; i++)
        n += p->cgroups[i].workers;
    return n;
}

void kt_scenario_override_work(kt_scenario_t *s, enum kt_work_type type)
{
    for (unsigned i = 0; i < s->n_cgroups && i < KT_MAX_CGROUPS; i++)
        s->cgroups[i].work = type;
}

int kt_plan_override_work(kt_plan_t *p, enum kt_work_type type, char *why, size_t wl)
{
    if ((unsigned)type >= KT_WORK__COUNT) {
        snprintf(why, wl, "unknown work type %u", (unsigned)type);
        return -EINVAL;
    }
    unsigned group = kt_work_type_group_size(type);
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        if (p->cgroups[i].workers % group) {
            snprintf(why, wl, "cgroup '%s': %s workers come in groups of %u, the plan has %u",
                     p->cgroups[i].name, kt_work_type_name(type), group, p->cgroups[i].workers);
            return -EINVAL;
        }
    }
    for (unsigned i = 0; i < p->n_cgroups; i++)
        p->cgroups[i].work = type;
    return 0;
}
