/* Workloads run by ktstr-init's worker processes, and the telemetry each
 * worker keeps in memory shared with its parent (MAP_SHARED, set up before
 * fork). Plain Linux code: it also runs on the host in unit tests.
 *
 * Lifecycle (two-phase start): the parent maps the slots, sets up groups
 * (pipes / futex words for ping-pong pairs), forks every worker; a child
 * calls kt_workload_main(), which parks until the parent moves it into its
 * cgroup and releases it (state RELEASED), works until the parent sets
 * state STOP, and returns. The parent reads /proc for the child before
 * reaping it (kt_workload_collect).
 *
 * Work units and checkpoints: spin = 1<<14 xorshift steps (~25 us on a
 * modern core); yield = a spin unit then sched_yield(); mixed = 16 spin
 * units then a 500 us sleep; bursty = spin units for 20 ms then a 10 ms
 * sleep; io-sync = a 4 KiB pwrite + fdatasync to an unlinked file in /tmp;
 * pipe / futex ping-pong = one hand-over received (a round trip for the
 * initiator). Every unit ends with a checkpoint (CLOCK_MONOTONIC and
 * sched_getcpu(): gap, CPUs used, migrations).
 *
 * Wake latency: ping-pong = time from the peer's hand-over (its
 * CLOCK_MONOTONIC stamp, sent in the pipe message or stored next to the
 * futex word) to the waiter running again; mixed and bursty = time from the
 * sleep's absolute deadline to the wake-up (their timer slack is set to
 * 1 ns so the figure is the scheduler's, not the slack's). spin, yield and
 * io-sync record none. */
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
    _Alignas(64) _Atomic uint32_t state;   /* own cache line per slot */
    uint32_t type;                 /* enum kt_work_type */
    uint32_t cgroup;
    uint32_t index;
    uint32_t group_peer;           /* slot index of the ping-pong peer */
    uint32_t group_role;           /* 0 = initiator, 1 = responder */
    int32_t pid;                   /* set by the parent after fork and by the child */
    _Atomic uint64_t work_units;
    uint64_t start_ns;             /* CLOCK_MONOTONIC at release (set by the parent) */
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
    /* Extensions (appended). */
    uint32_t n_slots;              /* size of the slot array (kt_workload_slots_new) */
    uint64_t stop_ns;              /* CLOCK_MONOTONIC when the parent asked to stop */
    _Atomic uint64_t futex_stamp_ns; /* futex ping-pong: hand-over time (initiator's slot) */
} kt_wl_slot_t;

/* Maps n (1..KT_MAX_WORKERS) zeroed slots shared across fork, pipe fds -1.
 * NULL with errno set on failure. Caller owns; kt_workload_slots_free. */
kt_wl_slot_t *kt_workload_slots_new(unsigned n);
/* Closes the pipes the parent still holds and unmaps; NULL-safe, nulls *slots_p. */
void kt_workload_slots_free(kt_wl_slot_t **slots_p, unsigned n);

/* Prepare slot i before fork: records type/cgroup/index. Ping-pong types come
 * in pairs of consecutive slots of one cgroup: an even index is the initiator
 * and prepares itself and slot i + 1 (index + 1, the responder) and creates
 * the pair's two O_CLOEXEC pipes; preparing the odd index afterwards only
 * verifies it. -EINVAL for a bad type or slot, a pair past the end, or a
 * responder whose initiator was not prepared; -errno from pipe2().
 * The parent keeps the pipe fds until kt_workload_slots_free: kt_workload_stop
 * writes to them to wake blocked readers. Prepare every slot before forking
 * any worker: a child closes the pipe fds of the other slots. */
int kt_workload_prepare(kt_wl_slot_t *slots, unsigned i, enum kt_work_type type, unsigned cgroup,
                        unsigned index);

/* The child's body. Returns the exit code for _exit(): 0, or 1 when the
 * workload failed (slot->error says why). Sets READY and parks until
 * RELEASED; works until STOP; records end_ns and sets DONE. */
int kt_workload_main(kt_wl_slot_t *slots, unsigned i);

/* Parent: release / stop one worker (wakes parked or blocked children).
 * Release records start_ns and is a no-op once stopped. Stopping one member
 * of a ping-pong pair stops the pair (neither can progress alone): both
 * states go to STOP, the futex word gets its stop bit, and a stop message goes
 * into both pipes, so blocked peers wake even when the other one is frozen. */
void kt_workload_release(kt_wl_slot_t *slot);
void kt_workload_stop(kt_wl_slot_t *slots, unsigned i);

/* Parent: wait until slot->state >= state (e.g. KT_WL_READY, KT_WL_DONE).
 * 0, or -ETIMEDOUT after timeout_ms. */
int kt_workload_wait(kt_wl_slot_t *slot, enum kt_wl_state state, uint32_t timeout_ms);

/* Parent: fill stats from the slot and /proc/<pid>/{stat,schedstat,status};
 * call after the child reached DONE (or was killed) but before reaping it.
 * cpu_time_ns is schedstat's on-CPU time (stat's utime + stime in clock
 * ticks when the kernel has no schedstat). The run ends at end_ns when DONE,
 * else at stop_ns when a stop was asked, else now; max_gap_ns includes the
 * gap from the last checkpoint (or the release) to that end, so a worker
 * frozen before its release shows max_gap_ns == wall_time_ns. Wake-latency
 * percentiles interpolate linearly inside the log2 bucket holding the rank
 * (within a factor 2 of the truth), capped at the observed maximum.
 * -ESRCH when the slot has no pid, -errno when /proc cannot be read; ret is
 * untouched on failure. */
int kt_workload_collect(const kt_wl_slot_t *slot, kt_worker_stats_t *ret);
/* The slot's part of kt_workload_collect (no /proc fields): for a worker that
 * is already reaped. */
void kt_workload_collect_slot(const kt_wl_slot_t *slot, kt_worker_stats_t *ret);
