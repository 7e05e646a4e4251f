/* What is in force while a cell runs: the plan's steps replayed op by op.
 *
 * kt_sim_t is the state after some ops: which cgroups exist and their
 * cpusets, where each worker slot is, whether it runs, and the affinity it
 * asked for. ktstr-init applies every op to one as it performs it (so what
 * it writes to cgroupfs and sched_setaffinity is what the sim says), and
 * the checks replay the same ops into a kt_timeline_t to judge each phase's
 * workers against what was in force then.
 *
 * Phases: phase 0 runs from the release to the first step's ops; phase k+1
 * from step k's ops to the next step's (the last to the end of the run). A
 * loop step applies its ops again every interval: its phase records the
 * union of the states the loop goes through.
 *
 * Worker slots are laid out cgroup by cgroup: a cgroup's declared workers,
 * then its spawn slots (taken in order by its spawn ops). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kt_scenario.h"

enum kt_slot_state {
    KT_SLOT_PENDING = 0, /* not started: a deferred cgroup's or a spawn slot */
    KT_SLOT_RUNNING,
    KT_SLOT_STOPPED,     /* by a stop or remove_cgroup op */
};

enum kt_cg_state {
    KT_CG_PENDING = 0, /* deferred, not added yet */
    KT_CG_ALIVE,
    KT_CG_REMOVED,
};

typedef struct kt_sim {
    const kt_plan_t *plan;
    unsigned n_slots;
    uint8_t cg_state[KT_MAX_CGROUPS];
    bool cg_has_cpuset[KT_MAX_CGROUPS];
    kt_cpumask_t cg_own[KT_MAX_CGROUPS];     /* cpuset.cpus as written */
    unsigned cg_spawned[KT_MAX_CGROUPS];     /* spawn slots taken */
    uint8_t slot_home[KT_MAX_WORKERS];       /* the cgroup it was declared in */
    uint16_t slot_index[KT_MAX_WORKERS];     /* its index there */
    uint8_t slot_cg[KT_MAX_WORKERS];         /* where it is now */
    uint8_t slot_state[KT_MAX_WORKERS];
    bool slot_has_user[KT_MAX_WORKERS];      /* an affinity was set */
    kt_cpumask_t slot_user[KT_MAX_WORKERS];  /* the mask asked for */
} kt_sim_t;

/* The state at the release: every cgroup that is not deferred, with its
 * declared cpuset; its declared workers running with their declared
 * affinity. */
void kt_sim_init(kt_sim_t *s, const kt_plan_t *p);

/* The CPUs a cgroup's tasks may use: its own cpuset within its parent's
 * (an empty intersection falls back to the parent's, as cgroup v2 does),
 * all of the topology's at the top. */
void kt_sim_effective(const kt_sim_t *s, unsigned cg, kt_cpumask_t *ret);

/* Where a running slot may run: its affinity within its cgroup's CPUs, or
 * those CPUs when the two do not meet (the kernel's fallback). */
void kt_sim_allowed(const kt_sim_t *s, unsigned slot, kt_cpumask_t *ret);

/* The affinity of slot under kind (count: random's CPUs, exact: the list)
 * inside the CPUs within; false for inherit (no mask). salt tells a loop's
 * applications apart (random draws anew each time). */
bool kt_sim_affinity_mask(const kt_sim_t *s, unsigned slot, enum kt_affinity_kind kind,
                          unsigned count, const kt_cpumask_t *exact, const kt_cpumask_t *within,
                          unsigned salt, kt_cpumask_t *ret);

/* Applies one op (the plan was validated by kt_scenario_resolve, so the op
 * is legal in this state). */
void kt_sim_apply(kt_sim_t *s, const kt_plan_op_t *op, unsigned salt);

/* How many times the ops of step k run: 1, or for a loop one per interval
 * that starts while it holds. */
unsigned kt_step_applications(const kt_plan_step_t *st);

typedef struct kt_timeline {
    unsigned n_phases;
    unsigned n_slots;
    uint32_t start_ms[KT_MAX_PHASES], end_ms[KT_MAX_PHASES];
    bool cg_alive[KT_MAX_PHASES][KT_MAX_CGROUPS];
    kt_cpumask_t cg_cpus[KT_MAX_PHASES][KT_MAX_CGROUPS];        /* effective */
    uint8_t slot_cg[KT_MAX_PHASES][KT_MAX_WORKERS];
    uint8_t slot_state[KT_MAX_PHASES][KT_MAX_WORKERS];          /* in force during the phase */
    kt_cpumask_t slot_allowed[KT_MAX_PHASES][KT_MAX_WORKERS];
    uint8_t slot_home[KT_MAX_WORKERS];
    uint16_t slot_index[KT_MAX_WORKERS];
} kt_timeline_t;

/* Replays the plan. Heap-allocated (about 300 KiB); NULL on ENOMEM. */
kt_timeline_t *kt_timeline_build(const kt_plan_t *p);

/* True when the plan needs the phase-by-phase judging: steps, declared
 * affinities, deferred cgroups or spawns. */
bool kt_plan_has_timeline(const kt_plan_t *p);
