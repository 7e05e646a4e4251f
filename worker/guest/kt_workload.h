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
 * ktstr's other types:
 * - cache-pressure: a unit is 4096 read-modify-writes of cache lines, 65
 *   lines (a page and a line) apart, cycling through a private buffer of
 *   twice the last-level cache (rounded up to a power of two, at most
 *   64 MiB, and at most a quarter of the memory shared among the cache
 *   workers; buffer_bytes says what it got), populated before the release.
 * - cache-yield: a cache unit then sched_yield().
 * - cache-pipe: pairs; pipe ping-pong with a cache unit before each send.
 * - futex-fan-out: groups of 5; each round one member (the waker) spins a
 *   unit, stamps the time and wakes the 4 others with one FUTEX_WAKE on a
 *   shared generation word; each runs a spin unit and reports back (a
 *   counter; the last report wakes the next round's waker). The waker's role
 *   rotates through the group, so every member has the same demand. Unit =
 *   one round, for every member.
 * - fan-out-compute: groups of 5, fork-join: the round's waker wakes the 4
 *   others, then every member (the waker too) multiplies two 48x48 integer
 *   matrices (a 54 KiB working set) and reports back; the next waker starts
 *   when all 5 reported. Unit = one multiplication (one round).
 * - sequence: phases cycling spin 20 ms, sleep 10 ms (1 ms sleeps), yield
 *   10 ms (sched_yield per unit), io 10 ms (io-sync units); phase_units
 *   counts each phase's units.
 * - fork-exit: fork a child that _exit(0)s at once and reap it; unit = one
 *   child reaped.
 * - nice-sweep: spin units; the nice value follows the time since the
 *   release, -20..19 in 10 ms steps (every member of a cgroup has the same
 *   nice at the same time); without CAP_SYS_NICE the negative half is
 *   skipped. changes / nice_lo / nice_hi say what was applied. It replaces
 *   the cgroup's nice.
 * - affinity-churn: after every spin unit, sched_setaffinity to one other
 *   CPU of those it was allowed at its release (picked at random); when a
 *   cpuset change makes that fail, the allowed set is read again.
 * - policy-churn: after every spin unit, the next of SCHED_OTHER, BATCH,
 *   IDLE (replacing the cgroup's policy). Workers are not in step: at any
 *   moment one may run as SCHED_IDLE beside another at full weight, so their
 *   on-CPU shares differ by design.
 * - page-fault-churn: mmap 1 MiB, write one byte per 4 KiB page
 *   (MADV_NOHUGEPAGE), munmap; a unit is one page touched (one fault), a
 *   checkpoint every 16; minflt is the kernel's count of minor faults over
 *   the run, for comparison.
 * - mutex-contention: groups of 4 on a robust, process-shared pthread mutex
 *   in the leader's slot: a spin unit outside, a quarter unit inside; unit =
 *   one critical section.
 *
 * Wake latency: ping-pong = time from the peer's hand-over (its
 * CLOCK_MONOTONIC stamp, sent in the pipe message or stored next to the
 * futex word) to the waiter running again; mixed, bursty and sequence's
 * sleeps = time from the sleep's absolute deadline to the wake-up (their
 * timer slack is set to 1 ns so the figure is the scheduler's, not the
 * slack's); fan-outs = from the waker's stamp to each member running, and
 * from the last report to the next waker running; mutex-contention = the time
 * blocked for the lock, counted for contended acquisitions only (a trylock
 * that failed). The others record none.
 *
 * Iterations (ktstr's iterations): passes of the type's outer loop. For
 * most types a pass is one unit; for mixed it is the 16 units and their
 * sleep, for bursty one burst and its sleep, for sequence one cycle through
 * the four phases, for page-fault-churn one mapping (256 pages touched and
 * unmapped). A pass that the stop cut short still counts.
 *
 * Groups (pairs included) are consecutive slots of one cgroup; stopping any
 * member stops the group, and wakes members blocked on each other even when
 * one of them is frozen (mutex contenders wait in 20 ms slices and look at
 * their state in between). */
#pragma once

#include <pthread.h>
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
    uint32_t group_peer;           /* pairs: the other's slot; larger groups: the leader's
                                    * (the leader's: its first member) */
    uint32_t group_role;           /* position in the group: 0 = initiator / leader */
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
    _Atomic uint64_t futex_stamp_ns; /* futex ping-pong: hand-over time (initiator's slot);
                                      * fan-outs: the round's start (leader's slot) */
    /* Groups of any size; the shared words live in the leader's slot. */
    uint32_t group_size;           /* 1 for ungrouped types */
    uint32_t group_leader;         /* slot index of the group's first member */
    _Atomic uint32_t group_gen;    /* fan-outs: round number, bit 31 = stop */
    _Atomic uint32_t group_acks;   /* fan-outs: reports this round, bit 31 = stop */
    _Atomic uint64_t group_ack_ns; /* fan-outs: the latest report of the round */
    pthread_mutex_t group_mutex;   /* mutex-contention: robust, process-shared */
    /* Type-specific telemetry, beside the units and wake latencies. */
    uint64_t buffer_bytes;         /* cache types: the buffer; fan-out-compute: matrices */
    uint64_t changes;              /* nice / affinity / policy churn: changes applied */
    int32_t nice_lo, nice_hi;      /* nice-sweep: the range applied */
    uint64_t minflt;               /* page-fault-churn: the kernel's minor faults in the run */
    uint64_t phase_units[4];       /* sequence: units of spin, sleep, yield, io */
    /* ktstr's benchmarking figures (wake_cv, iteration_rate, migration_ratio). */
    uint64_t iterations;           /* loop passes (see "Iterations" above) */
    uint64_t wake_lat_sum_ns;      /* sum of the recorded wake latencies */
    double wake_lat_sumsq;         /* sum of their squares, ns^2 */
    /* Steps (common/kt_timeline.h). Slot 0's step_epoch is the run's phase
     * counter: 2 * phase, odd while the parent applies a step's ops. A
     * checkpoint counts in a phase only when it read the same even epoch
     * before and after reading its CPU, so no sample straddles a change. */
    _Alignas(64) _Atomic uint32_t step_epoch;
    uint64_t step_units[KT_MAX_PHASES];
    uint64_t step_cpus[KT_MAX_PHASES][KT_CPUMASK_WORDS];
} kt_wl_slot_t;

/* Sequence phases, in order (phase_units index). */
enum kt_wl_phase { KT_WL_PHASE_SPIN, KT_WL_PHASE_SLEEP, KT_WL_PHASE_YIELD, KT_WL_PHASE_IO };

/* Maps n (1..KT_MAX_WORKERS) zeroed slots shared across fork, pipe fds -1.
 * NULL with errno set on failure. Caller owns; kt_workload_slots_free. */
kt_wl_slot_t *kt_workload_slots_new(unsigned n);
/* Closes the pipes the parent still holds and unmaps; NULL-safe, nulls *slots_p. */
void kt_workload_slots_free(kt_wl_slot_t **slots_p, unsigned n);

/* Prepare slot i before fork: records type/cgroup/index. Grouped types
 * (kt_work_type_group_size > 1) come in groups of consecutive slots of one
 * cgroup, index 0 mod the group size first: that leader prepares itself and
 * the other members (index + 1 ...) and the group's shared state (a pair's
 * two O_CLOEXEC pipes, a fan-out's words, the contenders' mutex); preparing
 * a member afterwards only verifies it. -EINVAL for a bad type or slot, a
 * group past the end, a member whose leader was not prepared, or a slot an
 * earlier group claimed (a count that is no multiple of the group); -EBUSY for
 * a pair's initiator prepared twice (its pipes exist); -errno from pipe2()
 * or the mutex setup.
 * The parent keeps the pipe fds until kt_workload_slots_free: kt_workload_stop
 * writes to them to wake blocked readers. Prepare every slot before forking
 * any worker: a child closes the pipe fds of the other slots, and cache
 * workers size their buffers by how many there are. */
int kt_workload_prepare(kt_wl_slot_t *slots, unsigned i, enum kt_work_type type, unsigned cgroup,
                        unsigned index);

/* The child's body. Returns the exit code for _exit(): 0, or 1 when the
 * workload failed (slot->error says why). Sets READY and parks until
 * RELEASED; works until STOP; records end_ns and sets DONE. */
int kt_workload_main(kt_wl_slot_t *slots, unsigned i);

/* Parent: release / stop one worker (wakes parked or blocked children).
 * Release records start_ns and is a no-op once stopped. Stopping one member
 * of a group stops the group (its members cannot progress alone): every
 * state goes to STOP, the shared futex words get their stop bit, and a stop
 * message goes into a pair's pipes, so blocked members wake even when
 * another one is frozen. */
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
/* Parent: the phase the checkpoints of every worker count in from now on
 * (kt_workload_phase_begin_change before applying a step's ops, then
 * kt_workload_phase_set with the new phase). slots: the array's first. */
void kt_workload_phase_begin_change(kt_wl_slot_t *slots);
void kt_workload_phase_set(kt_wl_slot_t *slots, unsigned phase);
/* The slot's part of kt_workload_collect (no /proc fields): for a worker that
 * is already reaped. */
void kt_workload_collect_slot(const kt_wl_slot_t *slot, kt_worker_stats_t *ret);
