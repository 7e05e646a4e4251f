/* Scenarios: the declared, topology-independent description of what a cell
 * runs (cgroups, cpusets, workers and their work type, duration, checks),
 * and the plan: a scenario resolved against one topology into explicit
 * cgroups, CPU masks and worker counts, which is what ktstr-init executes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kt_payload.h"
#include "kt_topology.h"

#define KT_NAME_MAX 64
#define KT_DESC_MAX 160
#define KT_MAX_CGROUPS 32
#define KT_MAX_WORKERS_PER_CGROUP 256
#define KT_MAX_WORKERS 512
#define KT_MAX_FAULTS 8
/* fifo / rr workers: ktstr-init's own threads run at 97..99, above them. */
#define KT_RT_PRIORITY_MAX 96

enum kt_work_type {
    KT_WORK_SPIN = 0,
    KT_WORK_YIELD,
    KT_WORK_MIXED,
    KT_WORK_BURSTY,
    KT_WORK_IO_SYNC,
    KT_WORK_PIPE_PINGPONG,
    KT_WORK_FUTEX_PINGPONG,
    /* ktstr's other work types; worker/guest/kt_workload.h says what each
     * does and what its unit and wake latency are. */
    KT_WORK_CACHE_PRESSURE,
    KT_WORK_CACHE_YIELD,
    KT_WORK_CACHE_PIPE,         /* pairs */
    KT_WORK_FUTEX_FAN_OUT,      /* groups of 1 waker + 4 waiters */
    KT_WORK_FAN_OUT_COMPUTE,    /* groups of 1 waker + 4 workers */
    KT_WORK_SEQUENCE,
    KT_WORK_FORK_EXIT,
    KT_WORK_NICE_SWEEP,
    KT_WORK_AFFINITY_CHURN,
    KT_WORK_POLICY_CHURN,
    KT_WORK_PAGE_FAULT_CHURN,
    KT_WORK_MUTEX_CONTENTION,   /* groups of 4 contenders */
    KT_WORK__COUNT,
};

const char *kt_work_type_name(enum kt_work_type type);
/* Accepts the canonical names (dashes or underscores) and ktstr's aliases
 * (yield-heavy, pipe-io, futex-ping-pong, spin-wait). -EINVAL when unknown;
 * ret is untouched then. */
int kt_work_type_parse(const char *name, enum kt_work_type *ret);
/* Workers of this type come in groups of this size: 2 for the ping-pong
 * pairs, 5 for the fan-outs (one waker, four waiters), 4 for mutex
 * contention, 1 otherwise. A cgroup's worker count must be a multiple. */
unsigned kt_work_type_group_size(enum kt_work_type type);
/* True for types whose members block on each other and wake, so that the
 * wake-latency check applies (the ping-pongs, the fan-outs, mutex
 * contention). Types that only sleep on timers (mixed, bursty, sequence)
 * record wake latency too but are not judged on it. */
bool kt_work_type_wakes(enum kt_work_type type);

enum kt_cpuset_kind {
    KT_CPUSET_ALL = 0,  /* no cpuset: all CPUs */
    KT_CPUSET_LLC,      /* the CPUs of LLC `index` */
    KT_CPUSET_NODE,     /* the CPUs of NUMA node `index` */
    KT_CPUSET_PER_LLC,  /* expands to one cgroup per LLC, each on its LLC */
    KT_CPUSET_LIST,     /* exact: the kernel list in `list` */
    KT_CPUSET_RANGE,    /* CPUs [lo, hi) as fractions of the CPU count, in CPU order */
    KT_CPUSET_DISJOINT, /* slice `index` of `of` equal, disjoint slices */
    KT_CPUSET_OVERLAP,  /* slice `index` of `of`, widened by `overlap` of a slice on each
                         * side, so neighbours share CPUs */
};

typedef struct kt_cpuset_spec {
    enum kt_cpuset_kind kind;
    unsigned index;
    unsigned of;        /* disjoint / overlap: the number of slices */
    double lo, hi;      /* range: fractions in [0, 1], lo < hi */
    double overlap;     /* overlap: fraction of a slice, (0, 1] */
    char list[128];
} kt_cpuset_spec_t;

enum kt_sched_policy {
    KT_POLICY_NORMAL = 0,
    KT_POLICY_BATCH,
    KT_POLICY_IDLE,
    KT_POLICY_FIFO,     /* real-time: rt_priority 1..99 */
    KT_POLICY_RR,
};

/* A name of a scenario, scheduler, flag or payload (it names cells and
 * files): 1 to KT_NAME_MAX - 1 of A-Z a-z 0-9 _ . -, not "." or "..". */
bool kt_name_valid(const char *name);

/* A cgroup name of a plan: a name, or nested names joined by '/' ("a/b"),
 * no empty, "." or ".." part, shorter than KT_NAME_MAX. */
bool kt_cgroup_name_valid(const char *name);

const char *kt_sched_policy_name(enum kt_sched_policy p);
int kt_sched_policy_parse(const char *name, enum kt_sched_policy *ret);

/* A worker's CPU affinity (sched_setaffinity), inside its cgroup's cpuset. */
enum kt_affinity_kind {
    KT_AFFINITY_INHERIT = 0, /* none set: the cpuset's CPUs */
    KT_AFFINITY_RANDOM,      /* a random subset of `count` CPUs of the cgroup's (per worker,
                              * from the plan's seed) */
    KT_AFFINITY_LLC,         /* the CPUs of one LLC: worker i on the i-th LLC the cgroup
                              * touches, round robin */
    KT_AFFINITY_CROSS,       /* the cgroup's CPUs plus those of the next cgroup: a mask that
                              * crosses cgroup bounds (the kernel keeps the intersection) */
    KT_AFFINITY_SINGLE,      /* one CPU: worker i on the i-th CPU of the cgroup's, round robin */
    KT_AFFINITY_EXACT,       /* the kernel list in `list` */
    KT_AFFINITY__COUNT,
};

typedef struct kt_affinity_spec {
    enum kt_affinity_kind kind;
    unsigned count;          /* random: CPUs in the subset */
    char list[128];          /* exact */
} kt_affinity_spec_t;

const char *kt_affinity_kind_name(enum kt_affinity_kind k);

typedef struct kt_cgroup_spec {
    char name[KT_NAME_MAX];
    kt_cpuset_spec_t cpuset;
    /* Exactly one of workers / workers_per_cpu is non-zero. workers_per_cpu
     * counts the CPUs of the cgroup's cpuset (all CPUs without one). */
    unsigned workers;
    double workers_per_cpu;
    enum kt_work_type work;
    enum kt_sched_policy policy;
    unsigned rt_priority;    /* fifo / rr: 1..KT_RT_PRIORITY_MAX */
    int nice;
    kt_affinity_spec_t affinity;
    /* Not created at the start: an add_cgroup step creates it mid-run. */
    bool deferred;
} kt_cgroup_spec_t;

/* ---- steps: what changes mid-run ----
 * A scenario's steps run in order after the workers' release; each applies
 * its ops at its start, then holds (a fraction of the duration, a fixed
 * time, or a loop that applies the ops again every interval until the end
 * of the run). Whatever time the steps leave is held in the state of the
 * last. Cgroups are named by their declared name (a per-llc cgroup by its
 * expanded name, "llc_0"); nested cgroups by their path ("parent/child"). */
#define KT_MAX_STEPS 16
#define KT_MAX_OPS 8
#define KT_MAX_PHASES (KT_MAX_STEPS + 1)

enum kt_op_kind {
    KT_OP_ADD_CGROUP = 0, /* create a deferred cgroup, start its workers */
    KT_OP_REMOVE_CGROUP,  /* stop its workers, remove it */
    KT_OP_SET_CPUSET,     /* cpuset.cpus = `cpuset` */
    KT_OP_CLEAR_CPUSET,   /* cpuset.cpus = "" (the parent's) */
    KT_OP_SWAP_CPUSETS,   /* exchange the cpusets of `cgroup` and `target` */
    KT_OP_SPAWN,          /* `workers` more workers in `cgroup` */
    KT_OP_STOP,           /* stop the cgroup's workers (the cgroup stays) */
    KT_OP_SET_AFFINITY,   /* `affinity` for every live worker of the cgroup */
    KT_OP_MOVE_TASKS,     /* move every task of `cgroup` to `target` */
    KT_OP__COUNT,
};

const char *kt_op_kind_name(enum kt_op_kind k);
int kt_op_kind_parse(const char *name, enum kt_op_kind *ret);

typedef struct kt_op_spec {
    enum kt_op_kind kind;
    char cgroup[KT_NAME_MAX];
    char target[KT_NAME_MAX];     /* swap_cpusets, move_tasks */
    kt_cpuset_spec_t cpuset;      /* set_cpuset */
    kt_affinity_spec_t affinity;  /* set_affinity */
    unsigned workers;             /* spawn */
} kt_op_spec_t;

enum kt_hold_kind {
    KT_HOLD_FRAC = 0, /* `frac` of the duration */
    KT_HOLD_FIXED,    /* `ms` */
    KT_HOLD_LOOP,     /* apply the ops every `ms` until the end of the run */
};

typedef struct kt_step_spec {
    unsigned n_ops;
    kt_op_spec_t ops[KT_MAX_OPS];
    enum kt_hold_kind hold;
    double frac;
    uint32_t ms;
} kt_step_spec_t;

/* A bound on the mean cost of the BPF programs of one name (bpf check). */
#define KT_BPF_NAME_MAX 16          /* BPF_OBJ_NAME_LEN, NUL included */
#define KT_MAX_CALLBACK_BOUNDS 8
typedef struct kt_callback_bound {
    char prog[KT_BPF_NAME_MAX];
    uint32_t max_ns;
} kt_callback_bound_t;

/* The fields of kt_thresholds_t a layer may set (kt_thresholds_t.set): one
 * bit each, so that a layer (a gauntlet scheduler's `checks:`, a scenario's)
 * says which values it chose and the merge leaves the others alone. */
enum kt_thr_field {
    KT_THR_STARVED = 0,         /* check_starved */
    KT_THR_ISOLATION,           /* check_isolation */
    KT_THR_SPREAD_ON,           /* check_spread */
    KT_THR_SPREAD,              /* max_spread_pct */
    KT_THR_GAP_ON,              /* check_gap */
    KT_THR_GAP,                 /* max_gap_ms */
    KT_THR_WAKE_P99,            /* max_p99_wake_us */
    KT_THR_WORK_RATE,           /* min_work_rate */
    KT_THR_CALLBACK_NS,         /* max_callback_ns */
    KT_THR_CALLBACK_BOUNDS,     /* n_callback_bounds + callback_bounds, as one */
    KT_THR_WAKE_CV,             /* max_wake_cv */
    KT_THR_THROUGHPUT_CV,       /* max_throughput_cv */
    KT_THR_ITERATION_RATE,      /* min_iteration_rate */
    KT_THR_MIGRATION_RATIO,     /* max_migration_ratio */
    KT_THR__COUNT,
};
#define KT_THR_BIT(f) (1u << (f))
#define KT_THR_ALL (KT_THR_BIT(KT_THR__COUNT) - 1u)

/* Where a threshold in force came from (the sidecar's "thresholds"). */
enum kt_thr_source {
    KT_THR_FROM_DEFAULT = 0,    /* kt_thresholds_default */
    KT_THR_FROM_DEBUG_DEFAULT,  /* ktstr's relaxed default on a debug kernel */
    KT_THR_FROM_SCHEDULER,      /* the gauntlet scheduler's `checks:` */
    KT_THR_FROM_SCENARIO,       /* the scenario's `checks:` */
};

/* Check thresholds. A zero/false optional threshold means "off". */
typedef struct kt_thresholds {
    bool check_starved;
    bool check_isolation;
    bool check_spread;
    double max_spread_pct;      /* max - min on-CPU share in a cgroup, points */
    bool check_gap;
    uint32_t max_gap_ms;        /* longest gap between a worker's checkpoints */
    uint32_t max_p99_wake_us;   /* optional */
    double min_work_rate;       /* optional: work units per second per worker */
    /* optional (bpf_callback_ns): mean ns per call over the workload phase;
     * max_callback_ns bounds every struct_ops program (0: off), each
     * callback_bounds entry the programs of its name. */
    uint32_t max_callback_ns;
    unsigned n_callback_bounds;
    kt_callback_bound_t callback_bounds[KT_MAX_CALLBACK_BOUNDS];
    /* optional, ktstr's benchmarking bounds (kt_checks.h says what each
     * measures); 0 = off */
    double max_wake_cv;         /* wake latency stddev / mean, a cgroup's wakeups */
    double max_throughput_cv;   /* work rate stddev / mean across a cgroup's workers */
    double min_iteration_rate;  /* loop passes per second per worker */
    double max_migration_ratio; /* migrations / loop passes per worker */
    /* Layering: the bits (KT_THR_BIT) of the fields a layer set explicitly;
     * in a merged set, from_scheduler marks those whose last setter was the
     * scheduler layer, debug_relaxed those a debug kernel relaxed. */
    uint32_t set;
    uint32_t from_scheduler;
    uint32_t debug_relaxed;
} kt_thresholds_t;

/* Fault injection for the harness's own tests: SIGSTOP a worker so that the
 * checks that must catch it can be shown to fail. */
typedef struct kt_fault {
    char cgroup[KT_NAME_MAX];
    unsigned worker;
    uint32_t at_ms;             /* 0: stopped before it is released */
} kt_fault_t;

typedef struct kt_constraints {
    unsigned min_llcs, max_llcs;     /* 0: no bound */
    unsigned min_cpus, max_cpus;
    unsigned min_numa, max_numa;
    bool requires_smt;
} kt_constraints_t;

typedef struct kt_scenario {
    char name[KT_NAME_MAX];
    char description[KT_DESC_MAX];
    unsigned n_cgroups;
    kt_cgroup_spec_t cgroups[KT_MAX_CGROUPS];
    uint32_t duration_ms;
    uint64_t memory_mib;             /* 0: the default for the topology */
    kt_constraints_t constraints;
    kt_thresholds_t thresholds;
    unsigned n_faults;
    kt_fault_t faults[KT_MAX_FAULTS];
    unsigned n_steps;
    kt_step_spec_t steps[KT_MAX_STEPS];
    /* `payload:`: a static binary run beside the workers (or alone: a
     * scenario with a payload may have no cgroups). payload.name "" = none;
     * payload.sha stays "" here: whoever ships the binary hashes it.
     * payload_binary is the file on the host (resolved against the YAML
     * file's folder when loaded from a file, as written otherwise). */
    kt_payload_spec_t payload;
    char payload_binary[4096];
} kt_scenario_t;

/* One resolved cgroup: explicit CPU mask (empty = no cpuset) and count. */
typedef struct kt_plan_cgroup {
    char name[KT_NAME_MAX];
    bool has_cpuset;
    kt_cpumask_t cpus;
    unsigned workers;
    enum kt_work_type work;
    enum kt_sched_policy policy;
    int nice;
    /* ---- appended after protocol 1 (kt_chanmsg packs them under new keys) ---- */
    unsigned rt_priority;
    enum kt_affinity_kind affinity;
    unsigned affinity_count;     /* random */
    kt_cpumask_t affinity_cpus;  /* exact */
    bool deferred;               /* created by an add_cgroup op */
    unsigned spawn_slots;        /* workers spawned by ops, beyond `workers` */
    unsigned nest_parent;        /* nested: 1 + index of the parent cgroup; 0 at the top */
} kt_plan_cgroup_t;

/* One resolved op: cgroups by index, cpusets and affinities as masks. */
typedef struct kt_plan_op {
    enum kt_op_kind kind;
    unsigned cgroup;
    unsigned target;
    bool has_cpus;               /* set_cpuset: always; set_affinity exact */
    kt_cpumask_t cpus;
    enum kt_affinity_kind affinity;
    unsigned count;              /* spawn: workers; set_affinity random: CPUs */
} kt_plan_op_t;

typedef struct kt_plan_step {
    uint32_t at_ms;              /* since the release */
    uint32_t hold_ms;            /* until the next step (the last: to the end) */
    uint32_t loop_ms;            /* 0, or the ops again every loop_ms while it holds */
    unsigned n_ops;
    kt_plan_op_t ops[KT_MAX_OPS];
} kt_plan_step_t;

typedef struct kt_plan_fault {
    unsigned cgroup;
    unsigned worker;
    uint32_t at_ms;
} kt_plan_fault_t;

typedef struct kt_plan {
    char scenario[KT_NAME_MAX];
    kt_topology_t topology;
    uint32_t duration_ms;
    unsigned n_cgroups;
    kt_plan_cgroup_t cgroups[KT_MAX_CGROUPS];
    kt_thresholds_t thresholds;
    unsigned n_faults;
    kt_plan_fault_t faults[KT_MAX_FAULTS];
    unsigned n_steps;
    kt_plan_step_t steps[KT_MAX_STEPS];
    uint32_t seed;               /* random affinities */
    /* ---- payload cells (kt_payload.h): a static binary run as the workload,
     * beside the cgroups' workers if any; name "" = none. Set by the caller
     * after kt_scenario_resolve (which leaves it empty). ---- */
    kt_payload_spec_t payload;
} kt_plan_t;

void kt_thresholds_default(kt_thresholds_t *ret);

/* ktstr's relaxed defaults on a debug kernel (lockdep, KASAN ...). */
#define KT_THR_DEBUG_SPREAD_PCT 35.0
#define KT_THR_DEBUG_GAP_MS 3000u

/* Applies a layer onto base: every field whose bit is in layer->set replaces
 * base's (a check switched off included), the bit joins base->set, and
 * from_scheduler records whether source was the scheduler layer; the other
 * fields of base stay. The bpf_callback_ns bounds go as one field: a layer
 * that names them replaces the list, as a later bpf_callback_ns does in one
 * file. */
void kt_thresholds_merge(kt_thresholds_t *base, const kt_thresholds_t *layer,
                         enum kt_thr_source source);
/* defaults -> scheduler (may be NULL) -> scenario, into ret. */
void kt_thresholds_layer(const kt_thresholds_t *scheduler, const kt_thresholds_t *scenario,
                         kt_thresholds_t *ret);
/* On a debug kernel: the spread and gap thresholds that no layer set get
 * ktstr's relaxed defaults (marked in debug_relaxed). Returns how many. */
unsigned kt_thresholds_relax_for_debug(kt_thresholds_t *t);
/* Where field f's value in force came from. */
enum kt_thr_source kt_thresholds_source(const kt_thresholds_t *t, enum kt_thr_field f);
const char *kt_thr_source_name(enum kt_thr_source s);
/* The YAML key of field f in a `checks:` map (the on/off field of a check
 * and its threshold share one key: "fairness_spread"). */
const char *kt_thr_field_name(enum kt_thr_field f);
void kt_scenario_init(kt_scenario_t *s, const char *name);

/* Built-in scenarios: steady, steady_llc, oversubscribed, pipe_pingpong,
 * futex_pingpong. */
const kt_scenario_t *kt_scenario_builtins(unsigned *ret_count);
const kt_scenario_t *kt_scenario_builtin_find(const char *name);

/* 0 when the topology satisfies the constraints; otherwise -EDOM and a
 * reason ("needs at least 2 LLCs") in why. */
int kt_scenario_fits(const kt_scenario_t *s, const kt_topology_t *t, char *why, size_t why_len);

/* Resolve against a topology. -EINVAL with a reason in why for a cpuset that
 * names a missing LLC/node or CPU, a worker count over the limits, a
 * ping-pong cgroup with an odd count, or a fault that names no worker. A
 * scenario without cgroups resolves only when it has a payload. The plan's
 * payload is left empty: the caller sets it with the binary's hash. */
int kt_scenario_resolve(const kt_scenario_t *s, const kt_topology_t *t, uint32_t duration_override_ms,
                        kt_plan_t *ret, char *why, size_t why_len);

unsigned kt_plan_total_workers(const kt_plan_t *p);
/* Worker slots ktstr-init prepares: the workers plus those spawn ops start
 * (cgroup by cgroup: a cgroup's workers, then its spawned ones). */
unsigned kt_plan_total_slots(const kt_plan_t *p);

/* The --work-type override (`ktstr-worker run-cell --work-type`, a
 * gauntlet's `work_type:`): every cgroup of the scenario gets this work
 * type. Apply it before kt_scenario_resolve, so that the group-size rule is
 * the one a declared type gets: a count from workers_per_cpu rounds up to
 * the group size, an explicit count that is not a multiple is refused. */
void kt_scenario_override_work(kt_scenario_t *s, enum kt_work_type type);
/* The same on a plan that is already resolved (a fleet cell): every count
 * must already be a multiple of the type's group size; otherwise -EINVAL
 * with the cgroup named in why, and the plan is left alone. */
int kt_plan_override_work(kt_plan_t *p, enum kt_work_type type, char *why, size_t why_len);
