/* Workloads run by ktstr-init's worker processes, and the telemetry each
 * worker keeps in memory shared with its parent (MAP_SHARED, set up before
 * fork). Plain Linux code: it also runs on the host in unit tests.
 *
 * Lifecycle (two-phase start): the parent maps the slots, sets up groups
 * (pipes / futex words for ping-pong pairs), forks every worker; a child
 * calls kt_workload_main(), which parks until the parent moves it into its
 * cgroup and releases it (state RELEASED), works until the parent sets
 * state STOP, and returns. The parent reads /proc for the child before
 * reaping it (kt_workload_collect). */
#pragma once

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "kt_checks.h"
#include "kt_scenario.h"

enum kt_wl_state {
    KT_WL_CREATED = 0,
    KT_WL_READY = 1,      /* child parked, waiting for release */
    KT_WL_RELEASED = 2,
    KT_WL_STOP = 3,
    KT_WL_DONE = 4,       /* child finished writing its telemetry */
};

#define KT_WL_LAT_BUCKETS 64   /* log2(ns) buckets for wake latencies */

/* One worker's shared slot. Written by the child, read by the parent. */
typedef struct kt_wl_slot {
    _Atomic uint32_t state;
    uint32_t type;                 /* enum kt_work_type */
    uint32_t cgroup;
    uint32_t index;
    uint32_t group_peer;           /* slot index of the ping-pong peer */
    uint32_t group_role;           /* 0 = initiator, 1 = responder */
    int32_t pid;
    _Atomic uint64_t work_units;
    uint64_t start_ns;             /* CLOCK_MONOTONIC at release */
    uint64_t last_checkpoint_ns;
    uint64_t end_ns;
    uint64_t max_gap_ns;
    uint64_t migrations;
    int32_t last_cpu;
    uint64_t cpus_used[KT_CPUMASK_WORDS];
    uint64_t wake_count;
    uint64_t wake_lat_max_ns;
    uint64_t wake_lat_hist[KT_WL_LAT_BUCKETS];
    /* Ping-pong: pipe fds (created by the parent before fork) and a futex
     * word shared by the pair (in the initiator's slot). */
    int32_t pipe_to_peer[2];
    int32_t pipe_from_peer[2];
    _Atomic uint32_t futex_word;
    char error[96];                /* set when the workload itself failed */
} kt_wl_slot_t;

/* Maps n zeroed slots shared across fork. Caller owns; kt_workload_slots_free. */
kt_wl_slot_t *kt_workload_slots_new(unsigned n);
void kt_workload_slots_free(kt_wl_slot_t **slots_p, unsigned n);

/* Prepare slot i (and its peer for ping-pong types: the pair is i, i+1 of the
 * same cgroup) before fork: records type/cgroup/index, creates pipes. */
int kt_workload_prepare(kt_wl_slot_t *slots, unsigned i, enum kt_work_type type, unsigned cgroup,
                        unsigned index);

/* The child's body. Returns the exit code for _exit(): 0, or 1 when the
 * workload failed (slot->error says why). */
int kt_workload_main(kt_wl_slot_t *slots, unsigned i);

/* Parent: release / stop one worker (wakes parked or blocked children). */
void kt_workload_release(kt_wl_slot_t *slot);
void kt_workload_stop(kt_wl_slot_t *slots, unsigned i);

/* Parent: fill stats from the slot and /proc/<pid>/{stat,schedstat,status};
 * call after the child reached DONE (or was killed) but before reaping it. */
int kt_workload_collect(const kt_wl_slot_t *slot, kt_worker_stats_t *ret);
