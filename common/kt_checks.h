/* Per-worker telemetry and the checks that judge it. The same code runs in
 * ktstr-init (to produce the verdict) and in the unit tests, which feed it
 * telemetry that breaks each threshold. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_scenario.h"

typedef struct kt_worker_stats {
    unsigned cgroup;              /* index into plan->cgroups */
    unsigned index;               /* worker index inside its cgroup */
    int32_t pid;
    uint64_t work_units;
    uint64_t cpu_time_ns;         /* utime + stime of the worker */
    uint64_t wall_time_ns;        /* released -> stopped */
    uint64_t max_gap_ns;          /* longest interval between checkpoints */
    kt_cpumask_t cpus_used;       /* CPUs seen at checkpoints */
    uint64_t migrations;          /* CPU changes between checkpoints */
    uint64_t wake_count;          /* blocking types: wakeups measured */
    uint64_t wake_lat_p50_ns;
    uint64_t wake_lat_p99_ns;
    uint64_t wake_lat_max_ns;
    uint64_t wake_lat_sum_ns;     /* sum of the wake latencies (for their mean) */
    double wake_lat_sumsq;        /* sum of their squares, ns^2 (for the CV) */
    uint64_t iterations;          /* passes of the work type's loop (kt_workload.h) */
    uint64_t run_delay_ns;        /* /proc/<pid>/schedstat field 2 */
    uint64_t timeslices;          /* /proc/<pid>/schedstat field 3 */
    uint64_t voluntary_ctxsw;
    uint64_t involuntary_ctxsw;
    /* The scheduling policy (SCHED_*) and rt_priority the kernel had for
     * the worker when it was collected (-1: unread). */
    int32_t policy;
    uint32_t rt_priority;
    /* Figures of one work type (kt_workload.h says what each means): the
     * cache types' and fan-out-compute's buffer, the churn types' changes,
     * nice-sweep's range, page-fault-churn's minor faults, sequence's units
     * per phase (spin, sleep, yield, io). */
    uint64_t buffer_bytes;
    uint64_t changes;
    int32_t nice_lo, nice_hi;
    uint64_t minflt;
    uint64_t sequence_units[4];
    /* Steps (kt_timeline.h): units and CPUs seen per phase; started is
     * false for a slot that was never released (a spawn slot no op took). */
    bool started;
    uint64_t step_units[KT_MAX_PHASES];
    kt_cpumask_t step_cpus[KT_MAX_PHASES];
    uint64_t step_cpu_ns[KT_MAX_PHASES]; /* on-CPU time per phase (schedstat at boundaries) */
} kt_worker_stats_t;

/* On-CPU share of wall time in percent; off-CPU share is 100 - this. */
double kt_worker_on_cpu_pct(const kt_worker_stats_t *w);

enum kt_check_id {
    KT_CHECK_STARVED = 0,
    KT_CHECK_SPREAD,
    KT_CHECK_GAP,
    KT_CHECK_ISOLATION,
    KT_CHECK_WAKE_P99,
    KT_CHECK_WORK_RATE,
    KT_CHECK_BPF_CALLBACK,
    KT_CHECK_PAYLOAD_EXIT,      /* the payload's exit status */
    KT_CHECK_PAYLOAD_TAP,       /* the payload's TAP result line(s) */
    KT_CHECK_PAYLOAD_METRIC,    /* a bound on a metric of the payload's JSON */
    /* ktstr's benchmarking checks, each off until a threshold is given:
     * - wake_cv: coefficient of variation (population stddev / mean) of the
     *   wake latencies of all a cgroup's wakeups pooled, as ktstr's
     *   max_wake_latency_cv; judged for the types that wake each other
     *   (kt_work_type_wakes) with at least 2 wakeups; the detail names the
     *   worker whose own wakeups vary most.
     * - throughput_cv: CV of the work rate (units per second of wall time,
     *   as work_rate; ktstr divides by CPU time instead, which a worker
     *   kept off the CPU does not change) across a cgroup's workers (2 or
     *   more); the detail names the slowest.
     * - iteration_rate: loop passes per second of wall time, per worker
     *   (ktstr's min_iteration_rate; a pass is a unit except for mixed,
     *   bursty, sequence and page-fault-churn: kt_workload.h).
     * - migration_ratio: CPU changes seen between checkpoints per loop pass,
     *   per worker (ktstr's migrations / iterations, judged per worker
     *   rather than per cgroup); 0 passes count as 1. */
    KT_CHECK_WAKE_CV,
    KT_CHECK_THROUGHPUT_CV,
    KT_CHECK_ITERATION_RATE,
    KT_CHECK_MIGRATION_RATIO,
    KT_CHECK__COUNT,
};

const char *kt_check_name(enum kt_check_id id);

#define KT_MAX_CHECK_RESULTS 256

typedef struct kt_check_result {
    enum kt_check_id id;
    int cgroup;                   /* -1: whole cell */
    int worker;                   /* -1: whole cgroup */
    bool passed;
    double measured;
    double threshold;
    char unit[8];                 /* "pct", "ms", "us", "units/s", "cpus", "cv", "iter/s",
                                   * "ratio" */
    char detail[160];
} kt_check_result_t;

typedef struct kt_check_report {
    unsigned n_results;           /* failed results, then one summary per check */
    kt_check_result_t results[KT_MAX_CHECK_RESULTS];
    unsigned n_failed;
    bool truncated;
} kt_check_report_t;

/* Per-cgroup aggregate used by the sidecar. */
typedef struct kt_cgroup_summary {
    unsigned workers;
    uint64_t work_units;
    double spread_pct;
    double min_on_cpu_pct, max_on_cpu_pct;
    uint64_t max_gap_ns;
    kt_cpumask_t cpus_used;
} kt_cgroup_summary_t;

void kt_cgroup_summarize(const kt_plan_t *plan, unsigned cgroup, const kt_worker_stats_t *workers,
                         size_t n_workers, kt_cgroup_summary_t *ret);

/* Runs every enabled check of plan->thresholds over the workers. Returns the
 * number of failed checks (>= 0). The report lists every failure with its
 * measured value and threshold, and one passing line per check that ran. */
int kt_checks_evaluate(const kt_plan_t *plan, const kt_worker_stats_t *workers, size_t n_workers,
                       kt_check_report_t *ret);

/* Appends one result (a failure counts in n_failed); past
 * KT_MAX_CHECK_RESULTS only the count, and truncated is set. */
void kt_check_report_add(kt_check_report_t *r, enum kt_check_id id, int cgroup, int worker,
                         bool passed, double measured, double threshold, const char *unit,
                         const char *detail);

/* Phase by phase for plans with a timeline (steps, affinities, deferred
 * cgroups, spawns; kt_plan_has_timeline): cpuset isolation, each worker's
 * CPUs in each phase against its cgroup's cpuset and its affinity in force
 * then; and, with steps, not_starved inside each phase of 500 ms or more
 * that a worker ran through. Appends to r (after kt_checks_evaluate, which leaves
 * isolation to this for those plans); returns the failures added, -1 on
 * ENOMEM. */
int kt_checks_evaluate_steps(const kt_plan_t *plan, const kt_worker_stats_t *workers,
                             size_t n_workers, kt_check_report_t *r);

/* A short human reason from the first failures, e.g.
 * "spread 41.2 pct > 15.0 in cgroup 'cg_0'". */
void kt_check_report_reason(const kt_check_report_t *r, const kt_plan_t *plan, char *buf, size_t len);

/* ---- bpf_callback_ns: the mean cost of the scheduler's BPF callbacks ---- */

/* One BPF program as ktstr-init saw it: absolute counters in a snapshot, or
 * the deltas over the workload phase (run-time stats must be on). */
typedef struct kt_bpf_prog_cost {
    uint32_t id;
    char name[KT_BPF_NAME_MAX];
    char type[24];                /* libbpf's name of the program type */
    bool struct_ops;              /* BPF_PROG_TYPE_STRUCT_OPS: a scheduler callback */
    uint32_t verified_insns;
    uint64_t run_cnt;
    uint64_t run_time_ns;
} kt_bpf_prog_cost_t;

/* Mean ns per call; 0 when it was not called. */
double kt_bpf_prog_ns_per_call(const kt_bpf_prog_cost_t *p);

/* True when t bounds any BPF program's cost. */
bool kt_checks_bpf_bounded(const kt_thresholds_t *t);

/* Adds a bound on the programs named prog (1..15 of [A-Za-z0-9_.], as the
 * kernel allows). -EINVAL for a bad name or max_ns 0, -EEXIST when prog is
 * bounded already, -E2BIG past KT_MAX_CALLBACK_BOUNDS. */
int kt_checks_callback_bound_add(kt_thresholds_t *t, const char *prog, uint32_t max_ns);

/* Appends the bpf_callback_ns results to r (after kt_checks_evaluate): one
 * per judged program that was called during the workload, the struct_ops
 * ones against max_callback_ns and those of a bounded name against their
 * bound. A named bound that matches no loaded program fails when the cell
 * has a sched_ext scheduler (a struct_ops program), and passes with a note
 * otherwise (EEVDF). Returns the number of failures it added. */
int kt_checks_evaluate_bpf(const kt_thresholds_t *t, const kt_bpf_prog_cost_t *progs, size_t n,
                           kt_check_report_t *r);

/* ---- payload cells: checks on the payload's outcome ---- */

/* Appends the payload's results to r (after kt_checks_evaluate): its exit
 * status (judge exit: against the "exit==N" check, else 0; judge tap: only
 * when an "exit==N" check asks), its TAP result (judge tap: a "not ok" line
 * fails; no line or a skip is for the caller to judge), and each metric
 * check (a metric absent from the output fails). Nothing for a payload that
 * did not start, timed out or was killed when the cell stopped (its verdict
 * is decided elsewhere). Returns the number of failures it added. */
int kt_checks_evaluate_payload(const kt_payload_spec_t *spec, const kt_payload_outcome_t *o,
                               kt_check_report_t *r);
