/* The scheduler's cost in ktstr-init: BPF run-time stats on for the cell, a
 * snapshot of every loaded BPF program (name, type, verified instructions,
 * run count, run time) before and after the workload phase, and the
 * deltas, which go into the result as "bpf_progs" and feed the
 * bpf_callback_ns check. Only the snapshot and the stats switch touch the
 * kernel; the delta is plain code, tested on the host. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kt_checks.h"

#define KT_GUEST_BPF_PROGS_MAX 128
#define KT_GUEST_BPF_SYSCTL "/proc/sys/kernel/bpf_stats_enabled"

typedef struct kt_guest_bpf_snap {
    unsigned n;
    bool truncated;                 /* more programs were loaded than fit */
    uint64_t at_ns;                 /* CLOCK_MONOTONIC when taken */
    kt_bpf_prog_cost_t progs[KT_GUEST_BPF_PROGS_MAX];
} kt_guest_bpf_snap_t;

typedef struct kt_guest_bpf {
    int stats_fd;                   /* BPF_ENABLE_STATS keeps stats on while open; -1 */
    char stats_by[24];              /* "bpf_enable_stats", "sysctl", "" while off */
    char error[192];                /* why the stats or a snapshot failed; "" */
    bool have_before;
    bool measured;                  /* stats on and both snapshots taken */
    kt_guest_bpf_snap_t before, after;

    /* The deltas over the workload phase, one per program loaded at its
     * end (a program loaded during it counts from its load). */
    unsigned n_progs;
    kt_bpf_prog_cost_t progs[KT_GUEST_BPF_PROGS_MAX];
    unsigned unloaded;              /* loaded before, gone after: not in progs */
    bool truncated;                 /* a snapshot did not hold every program */
    double interval_ms;             /* between the two snapshots */
    unsigned n_struct_ops;          /* struct_ops programs in progs */
    uint64_t struct_ops_calls;      /* their run_cnt, summed */
    uint64_t struct_ops_run_time_ns;
} kt_guest_bpf_t;

void kt_guest_bpf_init(kt_guest_bpf_t *b);

/* Turns BPF run-time stats on for the rest of the boot: BPF_ENABLE_STATS,
 * else the bpf_stats_enabled sysctl. 0, or -errno with b->error set. */
int kt_guest_bpf_stats_enable(kt_guest_bpf_t *b);

/* Every loaded BPF program's info, in id order, into ret (at most
 * KT_GUEST_BPF_PROGS_MAX; ret->truncated says when more were loaded). A
 * program unloaded while the list is read is skipped. 0, or -errno with a
 * reason in why. */
int kt_guest_bpf_snapshot(kt_guest_bpf_snap_t *ret, char *why, size_t why_len);

/* The deltas of b->after over b->before into b's delta fields (plain code:
 * the unit test feeds it hand-made snapshots). Counters that went backwards
 * (they cannot: a program's stats only grow) count as 0. */
void kt_guest_bpf_delta(kt_guest_bpf_t *b);

/* The before snapshot, right before the workers are released, and the after
 * snapshot with the deltas, right after they are stopped. end sets
 * b->measured when the stats were on and both snapshots were taken. 0 or
 * -errno with b->error set. */
int kt_guest_bpf_begin(kt_guest_bpf_t *b);
int kt_guest_bpf_end(kt_guest_bpf_t *b);

/* Mean ns per call over all struct_ops programs; 0 without calls. */
double kt_guest_bpf_struct_ops_ns_per_call(const kt_guest_bpf_t *b);
