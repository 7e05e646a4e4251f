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

static kt_scenario_t s_builtins[5];
static unsigned s_n_builtins;

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

static int s_add_cgroup(kt_plan_t *p, const kt_cgroup_spec_t *spec, const char *name,
                        const kt_cpumask_t *cpus, bool has_cpuset, char *why, size_t wl)
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
    if (!workers) {
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
    return 0;
}

int kt_scenario_resolve(const kt_scenario_t *s, const kt_topology_t *t, uint32_t duration_override_ms,
                        kt_plan_t *ret, char *why, size_t wl)
{
    if (!kt_topology_valid(t)) {
        snprintf(why, wl, "invalid topology");
        return -EINVAL;
    }
    if (s->n_cgroups == 0) {
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
                if ((r = s_add_cgroup(&p, spec, name, &m, true, why, wl)) < 0)
                    return r;
            }
            continue;
        }
        kt_cpumask_t m;
        if ((r = s_cpuset_mask(&spec->cpuset, t, &m, spec->name, why, wl)) < 0)
            return r;
        if ((r = s_add_cgroup(&p, spec, spec->name, &m, spec->cpuset.kind != KT_CPUSET_ALL, why,
                              wl)) < 0)
            return r;
    }
    if (kt_plan_total_workers(&p) > KT_MAX_WORKERS) {
        snprintf(why, wl, "%u workers in all, limit %d", kt_plan_total_workers(&p), KT_MAX_WORKERS);
        return -EINVAL;
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
