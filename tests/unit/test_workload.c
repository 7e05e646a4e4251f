/* The guest workloads, run for real on this host: every work type forked,
 * released, stopped and collected; the telemetry checked against what the
 * kernel says (schedstat) and against faults injected with SIGSTOP. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_workload.h"

#define MAX_W 8
#define MS 1000000ull

/* One test's workers; the teardown kills and reaps whatever is left so a
 * failed assertion never leaves a spinning child behind. */
static struct {
    kt_wl_slot_t *slots;
    unsigned n;
    pid_t pids[MAX_W];
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < MAX_W; i++) {
        if (g.pids[i] > 0) {
            kill(g.pids[i], SIGKILL);
            waitpid(g.pids[i], NULL, 0);
            g.pids[i] = 0;
        }
    }
    kt_workload_slots_free(&g.slots, g.n);
    g.n = 0;
    return 0;
}

static void setup_slots(unsigned n)
{
    assert_true(n <= MAX_W);
    g.slots = kt_workload_slots_new(n);
    assert_non_null(g.slots);
    g.n = n;
}

static void spawn(unsigned i)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(kt_workload_main(g.slots, i));
    }
    g.slots[i].pid = pid;
    g.pids[i] = pid;
}

/* The exit code of worker i, which must have finished. */
static int reap(unsigned i)
{
    int status;
    assert_int_equal(waitpid(g.pids[i], &status, 0), g.pids[i]);
    g.pids[i] = 0;
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

/* SIGSTOP and wait until the kernel reports the task stopped. */
static void freeze(pid_t pid)
{
    assert_int_equal(kill(pid, SIGSTOP), 0);
    for (int k = 0; k < 1000 && proc_state(pid) != 'T'; k++)
        sleep_ms(1);
    assert_int_equal(proc_state(pid), 'T');
}

/* schedstat's on-CPU time and run delay of a task. */
static void read_schedstat(pid_t pid, uint64_t *cpu, uint64_t *delay)
{
    char path[64];
    unsigned long long c = 0, d = 0;
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%llu %llu", &c, &d), 2);
    fclose(f);
    *cpu = c;
    *delay = d;
}

/* The run's share of a worker's schedstat figures: collect reports them from
 * the fork on, and on a loaded machine the child may queue for a long time
 * before it parks. */
static uint64_t g_base_cpu[MAX_W], g_base_delay[MAX_W];

static uint64_t run_cpu(const kt_worker_stats_t *w, unsigned i)
{
    return w->cpu_time_ns - g_base_cpu[i];
}

static uint64_t run_delay(const kt_worker_stats_t *w, unsigned i)
{
    return w->run_delay_ns - g_base_delay[i];
}

/* Fork n workers of one type, release them all, run, stop, collect, reap. */
static void run_type(enum kt_work_type type, unsigned n, unsigned run_ms, kt_worker_stats_t *st)
{
    setup_slots(n);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(kt_workload_prepare(g.slots, i, type, 0, i), 0);
    for (unsigned i = 0; i < n; i++)
        spawn(i);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_READY, 5000), 0);
    for (unsigned i = 0; i < n; i++)
        read_schedstat(g.pids[i], &g_base_cpu[i], &g_base_delay[i]);
    for (unsigned i = 0; i < n; i++)
        kt_workload_release(&g.slots[i]);
    sleep_ms(run_ms);
    for (unsigned i = 0; i < n; i++)
        kt_workload_stop(g.slots, i);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_DONE, 2000), 0);
        assert_int_equal(kt_workload_collect(&g.slots[i], &st[i]), 0);
        assert_string_equal(g.slots[i].error, "");
        assert_int_equal(reap(i), 0);
        assert_int_equal(st[i].index, i);
        assert_int_equal(st[i].pid, g.slots[i].pid);
        assert_true(st[i].wall_time_ns >= (uint64_t)run_ms * MS);
        assert_true(st[i].wall_time_ns < (uint64_t)run_ms * MS + 3000 * MS);
        assert_true(st[i].max_gap_ns <= st[i].wall_time_ns);
        assert_true(st[i].work_units > 0);
        assert_true(kt_cpumask_weight(&st[i].cpus_used) >= 1);
        assert_true(st[i].timeslices >= 1);
        assert_true(st[i].cpu_time_ns >= g_base_cpu[i]);
        assert_true(st[i].run_delay_ns >= g_base_delay[i]);
        print_message("# %s[%u]: units=%llu cpu=%.1fms wall=%.1fms delay=%.1fms gap=%.2fms "
                      "cpus=%u migr=%llu wakes=%llu p50=%lluns p99=%lluns max=%lluns "
                      "vcs=%llu ics=%llu\n",
                      kt_work_type_name(type), i, (unsigned long long)st[i].work_units,
                      st[i].cpu_time_ns / 1e6, st[i].wall_time_ns / 1e6,
                      st[i].run_delay_ns / 1e6, st[i].max_gap_ns / 1e6,
                      kt_cpumask_weight(&st[i].cpus_used), (unsigned long long)st[i].migrations,
                      (unsigned long long)st[i].wake_count,
                      (unsigned long long)st[i].wake_lat_p50_ns,
                      (unsigned long long)st[i].wake_lat_p99_ns,
                      (unsigned long long)st[i].wake_lat_max_ns,
                      (unsigned long long)st[i].voluntary_ctxsw,
                      (unsigned long long)st[i].involuntary_ctxsw);
    }
}

/* Runnable the whole run: on a CPU or waiting for one (on an idle machine,
 * on a CPU: cpu_time ~ wall_time). */
static void assert_always_runnable(const kt_worker_stats_t *w)
{
    uint64_t cpu = run_cpu(w, w->index), delay = run_delay(w, w->index);
    assert_true(cpu + delay >= w->wall_time_ns * 8 / 10);
    assert_true(cpu + delay <= w->wall_time_ns + 20 * MS);
    assert_true(cpu > 0);
}

/* Well below a CPU's worth: it blocks or sleeps part of the time. */
static void assert_cpu_below(const kt_worker_stats_t *w, unsigned max_pct)
{
    assert_true(run_cpu(w, w->index) <= w->wall_time_ns * max_pct / 100);
    assert_true(run_cpu(w, w->index) > 0);
}

/* Neither on a CPU nor queued for one for at least the sleeps it recorded,
 * each at least sleep_ns long (minus the syscall entry). */
static void assert_slept(const kt_worker_stats_t *w, uint64_t sleep_ns)
{
    uint64_t busy = run_cpu(w, w->index) + run_delay(w, w->index);
    uint64_t asleep = w->wall_time_ns > busy ? w->wall_time_ns - busy : 0;
    assert_true(asleep >= w->wake_count * sleep_ns * 9 / 10);
}

static void assert_wake_stats(const kt_worker_stats_t *w)
{
    assert_true(w->wake_count > 0);
    assert_true(w->wake_lat_p50_ns > 0);
    assert_true(w->wake_lat_p50_ns <= w->wake_lat_p99_ns);
    assert_true(w->wake_lat_p99_ns <= w->wake_lat_max_ns);
    /* A wake-up slower than the whole run is impossible. */
    assert_true(w->wake_lat_max_ns < w->wall_time_ns);
}

static void test_slots_new(void **state)
{
    (void)state;
    errno = 0;
    assert_null(kt_workload_slots_new(0));
    assert_int_equal(errno, EINVAL);
    assert_null(kt_workload_slots_new(KT_MAX_WORKERS + 1));
    setup_slots(3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(g.slots[i].n_slots, 3);
        assert_int_equal(g.slots[i].state, KT_WL_CREATED);
        assert_int_equal(g.slots[i].pipe_to_peer[0], -1);
        assert_int_equal(g.slots[i].pipe_from_peer[1], -1);
        assert_int_equal((uintptr_t)&g.slots[i] % 64, 0);
    }
    kt_wl_slot_t *null_slots = NULL;
    kt_workload_slots_free(&null_slots, 3);
}

static void test_prepare(void **state)
{
    (void)state;
    setup_slots(5);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK__COUNT, 0, 0), -EINVAL);
    assert_int_equal(kt_workload_prepare(g.slots, 5, KT_WORK_SPIN, 0, 0), -EINVAL);
    /* A responder whose initiator was never prepared. */
    assert_int_equal(kt_workload_prepare(g.slots, 1, KT_WORK_PIPE_PINGPONG, 0, 1), -EINVAL);
    /* An initiator in the last slot has no room for its responder. */
    assert_int_equal(kt_workload_prepare(g.slots, 4, KT_WORK_FUTEX_PINGPONG, 1, 0), -EINVAL);

    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_PIPE_PINGPONG, 2, 0), 0);
    assert_int_equal(kt_workload_prepare(g.slots, 1, KT_WORK_PIPE_PINGPONG, 2, 1), 0);
    /* The same slot under another cgroup is not its initiator's responder. */
    assert_int_equal(kt_workload_prepare(g.slots, 1, KT_WORK_PIPE_PINGPONG, 3, 1), -EINVAL);
    kt_wl_slot_t *a = &g.slots[0], *b = &g.slots[1];
    assert_int_equal(a->group_role, 0);
    assert_int_equal(b->group_role, 1);
    assert_int_equal(a->group_peer, 1);
    assert_int_equal(b->group_peer, 0);
    assert_int_equal(b->cgroup, 2);
    assert_int_equal(b->index, 1);
    assert_int_equal(a->pipe_to_peer[1], b->pipe_from_peer[1]);
    assert_int_equal(a->pipe_from_peer[0], b->pipe_to_peer[0]);
    assert_int_not_equal(a->pipe_to_peer[0], a->pipe_from_peer[0]);
    int fds[4] = {a->pipe_to_peer[0], a->pipe_to_peer[1], a->pipe_from_peer[0],
                  a->pipe_from_peer[1]};
    for (unsigned k = 0; k < 4; k++) {
        int fl = fcntl(fds[k], F_GETFD);
        assert_true(fl >= 0);
        assert_true(fl & FD_CLOEXEC);
    }
    assert_int_equal(kt_workload_prepare(g.slots, 2, KT_WORK_SPIN, 1, 0), 0);
    assert_int_equal(g.slots[2].type, KT_WORK_SPIN);
    assert_int_equal(g.slots[2].pipe_to_peer[0], -1);

    kt_workload_slots_free(&g.slots, g.n);
    assert_null(g.slots);
    for (unsigned k = 0; k < 4; k++)
        assert_int_equal(fcntl(fds[k], F_GETFD), -1);
}

static void test_spin(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_SPIN, 1, 700, st);
    assert_always_runnable(&st[0]);
    assert_int_equal(st[0].wake_count, 0);
    /* A unit is real work: thousands of dependent xorshift steps. */
    assert_true(st[0].cpu_time_ns / st[0].work_units >= 2000);
    assert_true(st[0].work_units >= 100);
    /* Checkpoints every unit: only preemption can open a gap, and a broken
     * checkpoint would show the whole 700 ms run. The bound leaves room for a
     * loaded 2-core host. */
    assert_true(st[0].max_gap_ns < 450 * MS);
    /* A spinner's loop pass is its unit. */
    assert_int_equal(st[0].iterations, st[0].work_units);
    assert_int_equal(st[0].policy, SCHED_OTHER);
}

/* collect reads the policy the kernel has for the worker (/proc/PID/stat
 * fields 40 and 41), whoever set it. */
static void test_collect_policy(void **state)
{
    (void)state;
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_SPIN, 0, 0), 0);
    spawn(0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_READY, 5000), 0);
    struct sched_param sp = {.sched_priority = 0};
    assert_int_equal(sched_setscheduler(g.pids[0], SCHED_BATCH, &sp), 0);
    kt_workload_release(&g.slots[0]);
    sleep_ms(50);
    kt_workload_stop(g.slots, 0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);
    kt_worker_stats_t w;
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_int_equal(reap(0), 0);
    assert_int_equal(w.policy, SCHED_BATCH);
    assert_int_equal(w.rt_priority, 0);
}

static void test_yield(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_YIELD, 1, 700, st);
    assert_always_runnable(&st[0]);
    assert_true(st[0].max_gap_ns < 450 * MS);
}

static void test_mixed(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_MIXED, 1, 300, st);
    assert_cpu_below(&st[0], 80);
    assert_slept(&st[0], 500000);
    assert_wake_stats(&st[0]);
    /* Each sleep is a voluntary switch, one sleep per 16 units. */
    assert_true(st[0].voluntary_ctxsw >= st[0].wake_count / 2);
    assert_true(st[0].wake_count >= st[0].work_units / 16 - 1);
    assert_true(st[0].wake_count <= st[0].work_units / 16 + 1);
    /* A loop pass is 16 units and their sleep. */
    assert_true(st[0].iterations >= st[0].work_units / 16);
    assert_true(st[0].iterations <= st[0].work_units / 16 + 1);
    /* The latency sums: their mean lies within what was seen, and the
     * variance they give is not negative. */
    double mean = (double)st[0].wake_lat_sum_ns / (double)st[0].wake_count;
    assert_true(mean <= (double)st[0].wake_lat_max_ns);
    assert_true(st[0].wake_lat_sumsq / (double)st[0].wake_count >= mean * mean * 0.999);
}

static void test_bursty(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_BURSTY, 1, 300, st);
    assert_cpu_below(&st[0], 85);
    assert_slept(&st[0], 10 * MS);
    assert_wake_stats(&st[0]);
    /* 20 ms bursts and 10 ms sleeps: about ten of each in 300 ms. */
    assert_true(st[0].wake_count >= 4);
    assert_true(st[0].wake_count <= 16);
    /* The sleep is a gap between checkpoints. */
    assert_true(st[0].max_gap_ns >= 10 * MS);
    /* A pass is a burst and its sleep: one per wake-up, one more if the stop
     * cut the last sleep short. */
    assert_true(st[0].iterations >= st[0].wake_count);
    assert_true(st[0].iterations <= st[0].wake_count + 1);
}

static void test_io_sync(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_IO_SYNC, 1, 250, st);
    assert_int_equal(st[0].wake_count, 0);
    char path[96];
    snprintf(path, sizeof(path), "/tmp/ktstr-io-%d-0", (int)st[0].pid);
    assert_int_equal(access(path, F_OK), -1);
}

static void check_pair(const kt_worker_stats_t *st)
{
    for (unsigned i = 0; i < 2; i++) {
        assert_wake_stats(&st[i]);
        assert_cpu_below(&st[i], 85);
        assert_true(st[i].voluntary_ctxsw > 0);
        assert_true(st[i].work_units >= 50);
    }
    /* Strict alternation: the pair's unit counts differ by at most one
     * hand-over (plus the one in flight at stop). */
    uint64_t a = st[0].work_units, b = st[1].work_units;
    assert_true(a <= b + 2 && b <= a + 2);
    assert_true(st[0].wake_count == st[0].work_units);
    assert_true(st[1].wake_count == st[1].work_units);
}

static void test_pipe_pingpong(void **state)
{
    (void)state;
    kt_worker_stats_t st[2];
    run_type(KT_WORK_PIPE_PINGPONG, 2, 300, st);
    check_pair(st);
}

static void test_futex_pingpong(void **state)
{
    (void)state;
    kt_worker_stats_t st[2];
    run_type(KT_WORK_FUTEX_PINGPONG, 2, 300, st);
    check_pair(st);
}

static bool child_has_fd(pid_t pid, int fd)
{
    char path[64], target[128];
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
    return readlink(path, target, sizeof(target)) > 0;
}

/* A child keeps only its own read and write ends. */
static void test_child_closes_unused_pipes(void **state)
{
    (void)state;
    setup_slots(4);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_PIPE_PINGPONG, 0, 0), 0);
    assert_int_equal(kt_workload_prepare(g.slots, 2, KT_WORK_PIPE_PINGPONG, 1, 0), 0);
    spawn(1);
    assert_int_equal(kt_workload_wait(&g.slots[1], KT_WL_READY, 5000), 0);
    const kt_wl_slot_t *r = &g.slots[1], *o = &g.slots[2];
    pid_t pid = g.pids[1];
    assert_true(child_has_fd(pid, r->pipe_from_peer[0]));
    assert_true(child_has_fd(pid, r->pipe_to_peer[1]));
    assert_false(child_has_fd(pid, r->pipe_from_peer[1]));
    assert_false(child_has_fd(pid, r->pipe_to_peer[0]));
    assert_false(child_has_fd(pid, o->pipe_to_peer[0]));
    assert_false(child_has_fd(pid, o->pipe_to_peer[1]));
    assert_false(child_has_fd(pid, o->pipe_from_peer[0]));
    assert_false(child_has_fd(pid, o->pipe_from_peer[1]));
    /* The parent still holds all of them (kt_workload_stop writes there). */
    assert_true(fcntl(o->pipe_to_peer[0], F_GETFD) >= 0);
    kt_workload_stop(g.slots, 1);
    assert_int_equal(kt_workload_wait(&g.slots[1], KT_WL_DONE, 2000), 0);
    assert_int_equal(reap(1), 0);
}

/* Frozen before its release: it never works, and its gap is the whole run. */
static void test_sigstop_before_release(void **state)
{
    (void)state;
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_SPIN, 0, 0), 0);
    spawn(0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_READY, 5000), 0);
    freeze(g.pids[0]);
    kt_workload_release(&g.slots[0]);
    sleep_ms(250);
    kt_workload_stop(g.slots, 0);

    kt_worker_stats_t w;
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_int_equal(w.work_units, 0);
    assert_true(w.wall_time_ns >= 250 * MS);
    assert_int_equal(w.max_gap_ns, w.wall_time_ns);
    assert_true(kt_cpumask_empty(&w.cpus_used));

    assert_int_equal(kill(g.pids[0], SIGCONT), 0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_int_equal(w.work_units, 0);
    assert_true(w.wall_time_ns >= 250 * MS);
    assert_int_equal(w.max_gap_ns, w.wall_time_ns);
    assert_int_equal(reap(0), 0);
}

/* Frozen mid-run: the longest gap covers at least the frozen time. */
static void test_sigstop_mid_run(void **state)
{
    (void)state;
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_SPIN, 0, 0), 0);
    spawn(0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_READY, 5000), 0);
    kt_workload_release(&g.slots[0]);
    sleep_ms(100);
    freeze(g.pids[0]);
    uint64_t t0 = now_ns();
    uint64_t units_frozen = atomic_load(&g.slots[0].work_units);
    sleep_ms(300);
    assert_int_equal(atomic_load(&g.slots[0].work_units), units_frozen);
    uint64_t frozen = now_ns() - t0;
    assert_int_equal(kill(g.pids[0], SIGCONT), 0);
    sleep_ms(100);
    kt_workload_stop(g.slots, 0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);

    kt_worker_stats_t w;
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_true(units_frozen > 0);
    assert_true(w.work_units > units_frozen);
    assert_true(w.max_gap_ns >= frozen);
    assert_true(w.max_gap_ns < w.wall_time_ns);
    assert_int_equal(reap(0), 0);
}

/* One member of a pair frozen mid-run: the other blocks on the hand-over,
 * and kt_workload_stop must still wake it promptly. */
static void stop_wakes_frozen_pair(enum kt_work_type type)
{
    setup_slots(2);
    assert_int_equal(kt_workload_prepare(g.slots, 0, type, 0, 0), 0);
    spawn(0);
    spawn(1);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_READY, 5000), 0);
    kt_workload_release(&g.slots[0]);
    kt_workload_release(&g.slots[1]);
    sleep_ms(100);
    freeze(g.pids[1]);
    sleep_ms(50);
    uint64_t units = atomic_load(&g.slots[0].work_units);
    sleep_ms(100);
    /* Blocked: no progress without its peer. */
    assert_true(units > 0);
    assert_int_equal(atomic_load(&g.slots[0].work_units), units);

    uint64_t t0 = now_ns();
    kt_workload_stop(g.slots, 0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 1000), 0);
    uint64_t took = now_ns() - t0;
    print_message("# %s: blocked initiator done %.2f ms after stop\n", kt_work_type_name(type),
                  took / 1e6);
    assert_true(took < 1000 * MS);
    /* The pair was stopped as a whole. */
    assert_int_equal(atomic_load(&g.slots[1].state), KT_WL_STOP);

    kt_worker_stats_t w;
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_true(w.max_gap_ns >= 150 * MS);
    assert_int_equal(reap(0), 0);
    assert_int_equal(kill(g.pids[1], SIGCONT), 0);
    assert_int_equal(kt_workload_wait(&g.slots[1], KT_WL_DONE, 2000), 0);
    assert_int_equal(reap(1), 0);
}

static void test_stop_wakes_frozen_pipe_pair(void **state)
{
    (void)state;
    stop_wakes_frozen_pair(KT_WORK_PIPE_PINGPONG);
}

static void test_stop_wakes_frozen_futex_pair(void **state)
{
    (void)state;
    stop_wakes_frozen_pair(KT_WORK_FUTEX_PINGPONG);
}

/* Only the initiator released: it waits for a reply that never comes; a stop
 * on the parked responder ends both. */
static void stop_half_released_pair(enum kt_work_type type)
{
    setup_slots(2);
    assert_int_equal(kt_workload_prepare(g.slots, 0, type, 0, 0), 0);
    spawn(0);
    spawn(1);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_READY, 5000), 0);
    kt_workload_release(&g.slots[0]);
    sleep_ms(150);
    assert_int_equal(atomic_load(&g.slots[0].work_units), 0);
    kt_workload_stop(g.slots, 1);
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_DONE, 1000), 0);

    kt_worker_stats_t w0, w1;
    assert_int_equal(kt_workload_collect(&g.slots[0], &w0), 0);
    assert_int_equal(kt_workload_collect(&g.slots[1], &w1), 0);
    assert_int_equal(w0.work_units, 0);
    assert_true(w0.wall_time_ns >= 150 * MS);
    assert_int_equal(w0.max_gap_ns, w0.wall_time_ns);
    assert_int_equal(w0.wake_count, 0);
    /* Never released: no run at all. */
    assert_int_equal(w1.work_units, 0);
    assert_int_equal(w1.wall_time_ns, 0);
    assert_int_equal(reap(0), 0);
    assert_int_equal(reap(1), 0);
}

static void test_stop_half_released_pipe_pair(void **state)
{
    (void)state;
    stop_half_released_pair(KT_WORK_PIPE_PINGPONG);
}

static void test_stop_half_released_futex_pair(void **state)
{
    (void)state;
    stop_half_released_pair(KT_WORK_FUTEX_PINGPONG);
}

/* A stop is final: a late release does not restart the worker. */
static void test_release_after_stop(void **state)
{
    (void)state;
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_SPIN, 0, 0), 0);
    spawn(0);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_READY, 5000), 0);
    kt_workload_stop(g.slots, 0);
    kt_workload_release(&g.slots[0]);
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);
    assert_int_equal(g.slots[0].start_ns, 0);
    assert_int_equal(atomic_load(&g.slots[0].work_units), 0);
    assert_int_equal(reap(0), 0);
}

static void test_wait_times_out(void **state)
{
    (void)state;
    setup_slots(1);
    uint64_t t0 = now_ns();
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_READY, 50), -ETIMEDOUT);
    uint64_t took = now_ns() - t0;
    assert_true(took >= 50 * MS);
    assert_true(took < 1000 * MS);
}

/* The percentile and gap arithmetic on a hand-made slot; /proc is our own. */
static void test_collect_math(void **state)
{
    (void)state;
    setup_slots(1);
    kt_wl_slot_t *s = &g.slots[0];
    kt_worker_stats_t w;
    memset(&w, 0x5a, sizeof(w));
    kt_worker_stats_t before = w;
    assert_int_equal(kt_workload_collect(s, &w), -ESRCH);
    assert_memory_equal(&w, &before, sizeof(w));

    s->pid = (int32_t)getpid();
    s->cgroup = 3;
    s->index = 7;
    s->start_ns = 1000 * MS;
    s->last_checkpoint_ns = 1900 * MS;
    s->max_gap_ns = 50 * MS;
    s->end_ns = 2000 * MS;
    s->cpus_used[0] = 0x5;
    s->cpus_used[1] = 0x1;
    s->migrations = 4;
    s->wake_lat_hist[10] = 90; /* [1024, 2047] */
    s->wake_lat_hist[20] = 10; /* [1048576, 2097151] */
    s->wake_count = 100;
    s->wake_lat_max_ns = 1500000;
    atomic_store(&s->work_units, 42);
    atomic_store(&s->state, KT_WL_DONE);

    assert_int_equal(kt_workload_collect(s, &w), 0);
    assert_int_equal(w.cgroup, 3);
    assert_int_equal(w.index, 7);
    assert_int_equal(w.work_units, 42);
    assert_int_equal(w.wall_time_ns, 1000 * MS);
    /* The tail from the last checkpoint to the end (100 ms) beats 50 ms. */
    assert_int_equal(w.max_gap_ns, 100 * MS);
    assert_int_equal(kt_cpumask_weight(&w.cpus_used), 3);
    assert_true(kt_cpumask_test(&w.cpus_used, 64));
    assert_int_equal(w.migrations, 4);
    assert_int_equal(w.wake_count, 100);
    /* p50: rank 50 of 90 in [1024, 2047]; p99: rank 9 of 10 in
     * [1048576, 1500000] (capped at the max). */
    assert_int_equal(w.wake_lat_p50_ns, 1024 + (uint64_t)(1023.0 * 50 / 90));
    assert_int_equal(w.wake_lat_p99_ns, 1048576 + (uint64_t)((1500000.0 - 1048576) * 9 / 10));
    assert_int_equal(w.wake_lat_max_ns, 1500000);
    /* Our own process has run. */
    assert_true(w.cpu_time_ns > 0);
    assert_true(w.timeslices > 0);
    assert_true(w.voluntary_ctxsw + w.involuntary_ctxsw > 0);

    /* Not done, stop asked: the run ends at the stop. */
    atomic_store(&s->state, KT_WL_STOP);
    s->stop_ns = 1500 * MS;
    kt_workload_collect_slot(s, &w);
    assert_int_equal(w.wall_time_ns, 500 * MS);
    assert_int_equal(w.max_gap_ns, 50 * MS);

    /* One sample: every percentile is that sample. */
    memset(s->wake_lat_hist, 0, sizeof(s->wake_lat_hist));
    s->wake_lat_hist[0] = 1;
    s->wake_lat_max_ns = 1;
    kt_workload_collect_slot(s, &w);
    assert_int_equal(w.wake_count, 1);
    assert_int_equal(w.wake_lat_p50_ns, 1);
    assert_int_equal(w.wake_lat_p99_ns, 1);
}

/* ---- ktstr's other work types ---- */

/* A number from /proc/<pid>/status ("VmRSS:   1234 kB" -> 1234). */
static uint64_t proc_status(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    uint64_t v = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            v = strtoull(line + klen + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Field n (1-based, as in proc(5)) of /proc/<pid>/stat, after the comm. */
static long long proc_stat_field(pid_t pid, unsigned n)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return LLONG_MIN;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return LLONG_MIN;
    p += 2; /* field 3 */
    for (unsigned k = 3; k < n && p; k++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoll(p, NULL, 10) : LLONG_MIN;
}

/* CPU 0's L3 as sysfs gives it (what the workload sizes itself by), or -1. */
static long sysfs_l3_bytes(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "re");
    if (!f)
        return -1;
    char buf[32] = "";
    char *ok = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!ok)
        return -1;
    char *end;
    long v = strtol(buf, &end, 10);
    return *end == 'K' ? v << 10 : *end == 'M' ? v << 20 : v;
}

/* Forks n prepared workers, waits for them to park, takes the schedstat base
 * and releases them. */
static void start_prepared(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        spawn(i);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_READY, 5000), 0);
    for (unsigned i = 0; i < n; i++)
        read_schedstat(g.pids[i], &g_base_cpu[i], &g_base_delay[i]);
    for (unsigned i = 0; i < n; i++)
        kt_workload_release(&g.slots[i]);
}

static void test_prepare_groups(void **state)
{
    (void)state;
    setup_slots(8);
    /* A group of 5 from slot 4 would run past the end. */
    assert_int_equal(kt_workload_prepare(g.slots, 4, KT_WORK_FUTEX_FAN_OUT, 0, 0), -EINVAL);
    /* A member whose leader was never prepared. */
    assert_int_equal(kt_workload_prepare(g.slots, 2, KT_WORK_FUTEX_FAN_OUT, 0, 2), -EINVAL);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_FUTEX_FAN_OUT, 1, 0), 0);
    for (unsigned i = 1; i < 5; i++)
        assert_int_equal(kt_workload_prepare(g.slots, i, KT_WORK_FUTEX_FAN_OUT, 1, i), 0);
    /* Not this group's member: another cgroup, another position, another type. */
    assert_int_equal(kt_workload_prepare(g.slots, 3, KT_WORK_FUTEX_FAN_OUT, 2, 3), -EINVAL);
    assert_int_equal(kt_workload_prepare(g.slots, 3, KT_WORK_FAN_OUT_COMPUTE, 1, 3), -EINVAL);
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(g.slots[i].group_size, 5);
        assert_int_equal(g.slots[i].group_leader, 0);
        assert_int_equal(g.slots[i].group_role, i);
        assert_int_equal(g.slots[i].index, i);
        assert_int_equal(g.slots[i].cgroup, 1);
        assert_int_equal(g.slots[i].pipe_to_peer[0], -1);
    }
    /* Mutex contenders: the leader's mutex works across processes' slots. */
    setup_slots(4);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_MUTEX_CONTENTION, 0, 0), 0);
    assert_int_equal(kt_workload_prepare(g.slots, 3, KT_WORK_MUTEX_CONTENTION, 0, 3), 0);
    assert_int_equal(pthread_mutex_trylock(&g.slots[0].group_mutex), 0);
    assert_int_equal(pthread_mutex_trylock(&g.slots[0].group_mutex), EBUSY);
    assert_int_equal(pthread_mutex_unlock(&g.slots[0].group_mutex), 0);
    /* Stopping one member stops the group. */
    kt_workload_stop(g.slots, 2);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&g.slots[i].state), KT_WL_STOP);
    /* Three contenders then a spinner (a count the resolution refuses): the
     * group of four claims the spinner's slot, which is then refused. */
    setup_slots(4);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_MUTEX_CONTENTION, 0, 0), 0);
    assert_int_equal(kt_workload_prepare(g.slots, 2, KT_WORK_MUTEX_CONTENTION, 0, 2), 0);
    assert_int_equal(kt_workload_prepare(g.slots, 3, KT_WORK_SPIN, 1, 0), -EINVAL);
    assert_int_equal(kt_workload_prepare(g.slots, 3, KT_WORK_FUTEX_FAN_OUT, 1, 0), -EINVAL);
    /* Ungrouped slots keep a group of one. */
    setup_slots(2);
    assert_int_equal(kt_workload_prepare(g.slots, 1, KT_WORK_FORK_EXIT, 0, 0), 0);
    assert_int_equal(g.slots[1].group_size, 1);
    kt_workload_stop(g.slots, 1);
    assert_int_equal(atomic_load(&g.slots[0].state), KT_WL_CREATED);
}

static void test_cache_pressure(void **state)
{
    (void)state;
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_CACHE_PRESSURE, 0, 0), 0);
    start_prepared(1);
    sleep_ms(150);
    uint64_t rss_kib = proc_status(g.pids[0], "VmRSS");
    sleep_ms(250);
    kt_workload_stop(g.slots, 0);
    kt_worker_stats_t w;
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_string_equal(g.slots[0].error, "");
    assert_int_equal(reap(0), 0);
    uint64_t bytes = g.slots[0].buffer_bytes;
    long llc = sysfs_l3_bytes();
    print_message("# cache-pressure: buffer=%llu KiB (L3 %ld KiB) rss=%llu KiB units=%llu "
                  "cpu/unit=%.1f us\n",
                  (unsigned long long)(bytes >> 10), llc / 1024, (unsigned long long)rss_kib,
                  (unsigned long long)w.work_units, run_cpu(&w, 0) / 1e3 / (double)w.work_units);
    assert_true(w.work_units > 0);
    assert_int_equal(w.wake_count, 0);
    /* A power of two, larger than the LLC where memory allows, and resident. */
    assert_int_equal(bytes & (bytes - 1), 0);
    assert_true(bytes >= (1u << 20));
    if (llc > 0 && (uint64_t)llc * 2 <= (64ull << 20))
        assert_true(bytes >= (uint64_t)llc * 2);
    assert_true(rss_kib * 1024 >= bytes);
    assert_always_runnable(&w);
    /* 4096 lines a page apart do not stay in L1: well over a nanosecond each. */
    assert_true(run_cpu(&w, 0) / w.work_units >= 4096 * 2);
}

static void test_cache_yield(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_CACHE_YIELD, 1, 300, st);
    assert_always_runnable(&st[0]);
    assert_int_equal(st[0].wake_count, 0);
    assert_true(g.slots[0].buffer_bytes >= (1u << 20));
}

static void test_cache_pipe(void **state)
{
    (void)state;
    kt_worker_stats_t st[2];
    run_type(KT_WORK_CACHE_PIPE, 2, 300, st);
    check_pair(st);
    for (unsigned i = 0; i < 2; i++)
        assert_true(g.slots[i].buffer_bytes >= (1u << 20));
}

/* A fan-out group in lockstep: every member did about as many rounds as
 * the first, every round was a measured wake-up (but round 0's waker's), and
 * with the waker's role rotating, no member worked much more than another. */
static void check_fan_out(const kt_worker_stats_t *st)
{
    uint64_t cpu_min = UINT64_MAX, cpu_max = 0;
    for (unsigned i = 0; i < 5; i++) {
        assert_wake_stats(&st[i]);
        assert_true(st[i].work_units >= 10);
        /* (a waker stopped between its wake-up and its unit has one more) */
        assert_true(st[i].wake_count <= st[i].work_units + 1);
        assert_true(st[i].wake_count + 1 >= st[i].work_units);
        assert_true(st[i].work_units <= st[0].work_units + 1);
        assert_true(st[i].work_units + 1 >= st[0].work_units);
        assert_true(st[i].voluntary_ctxsw > 0);
        uint64_t cpu = run_cpu(&st[i], i);
        cpu_min = cpu < cpu_min ? cpu : cpu_min;
        cpu_max = cpu > cpu_max ? cpu : cpu_max;
    }
    print_message("# on-CPU time %.1f..%.1f ms across the group\n", cpu_min / 1e6, cpu_max / 1e6);
    assert_true(cpu_max <= cpu_min * 2);
}

static void test_futex_fan_out(void **state)
{
    (void)state;
    kt_worker_stats_t st[5];
    run_type(KT_WORK_FUTEX_FAN_OUT, 5, 400, st);
    check_fan_out(st);
}

static void test_fan_out_compute(void **state)
{
    (void)state;
    kt_worker_stats_t st[5];
    run_type(KT_WORK_FAN_OUT_COMPUTE, 5, 400, st);
    check_fan_out(st);
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(g.slots[i].buffer_bytes, 3 * 48 * 48 * 8);
        /* A 48x48 multiply is 110592 multiply-adds: tens of microseconds. */
        assert_true(run_cpu(&st[i], i) / st[i].work_units >= 20000);
    }
}

static void test_sequence(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_SEQUENCE, 1, 400, st);
    const uint64_t *pu = g.slots[0].phase_units;
    print_message("# sequence: spin=%llu sleep=%llu yield=%llu io=%llu\n",
                  (unsigned long long)pu[KT_WL_PHASE_SPIN],
                  (unsigned long long)pu[KT_WL_PHASE_SLEEP],
                  (unsigned long long)pu[KT_WL_PHASE_YIELD], (unsigned long long)pu[KT_WL_PHASE_IO]);
    /* 400 ms is eight 50 ms cycles: every phase ran. */
    for (unsigned p = 0; p < 4; p++)
        assert_true(pu[p] > 0);
    assert_int_equal(pu[0] + pu[1] + pu[2] + pu[3], st[0].work_units);
    /* A pass is a cycle of the four phases (50 ms): about eight. */
    assert_true(st[0].iterations >= 2);
    assert_true(st[0].iterations <= pu[KT_WL_PHASE_IO] + 1);
    /* 1 ms sleeps, each a timer wake-up (fewer than 10 a cycle when the
     * machine is busy and they run late). */
    assert_true(pu[KT_WL_PHASE_SLEEP] >= 4);
    assert_true(st[0].wake_count >= pu[KT_WL_PHASE_SLEEP] - 8);
    assert_true(st[0].wake_count <= pu[KT_WL_PHASE_SLEEP]);
    assert_slept(&st[0], 900000);
    assert_cpu_below(&st[0], 95);
}

/* The last pid the kernel handed out (/proc/loadavg's last field). */
static long last_pid(void)
{
    FILE *f = fopen("/proc/loadavg", "re");
    assert_non_null(f);
    char buf[128] = "";
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    char *p = strrchr(buf, ' ');
    assert_non_null(p);
    return strtol(p + 1, NULL, 10);
}

static void test_fork_exit(void **state)
{
    (void)state;
    long before = last_pid();
    kt_worker_stats_t st[1];
    run_type(KT_WORK_FORK_EXIT, 1, 300, st);
    long after = last_pid();
    print_message("# fork-exit: %llu children, pids %ld -> %ld\n",
                  (unsigned long long)st[0].work_units, before, after);
    assert_true(st[0].work_units >= 20);
    /* The kernel handed out at least one pid per child (unless pids wrapped). */
    if (after > before)
        assert_true((uint64_t)(after - before) >= st[0].work_units);
    /* Waiting for each child is a voluntary switch more often than not. */
    assert_true(st[0].voluntary_ctxsw > 0);
}

static void test_nice_sweep(void **state)
{
    (void)state;
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_NICE_SWEEP, 0, 0), 0);
    start_prepared(1);
    /* The kernel's view of the worker's nice (stat field 19) as it goes. */
    bool seen[40] = {false};
    unsigned distinct = 0;
    for (unsigned k = 0; k < 100; k++) {
        long long nice = proc_stat_field(g.pids[0], 19);
        if (nice >= -20 && nice <= 19 && !seen[nice + 20]) {
            seen[nice + 20] = true;
            distinct++;
        }
        sleep_ms(5);
    }
    kt_workload_stop(g.slots, 0);
    kt_worker_stats_t w;
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_string_equal(g.slots[0].error, "");
    assert_int_equal(reap(0), 0);
    const kt_wl_slot_t *s = &g.slots[0];
    print_message("# nice-sweep: %llu changes, nice %d..%d, %u values seen by the kernel\n",
                  (unsigned long long)s->changes, s->nice_lo, s->nice_hi, distinct);
    assert_true(w.work_units > 0);
    /* ~500 ms at 10 ms a level: the whole range at least once (a level
     * passes unapplied when the worker does not run during its 10 ms, as can
     * happen at nice 19 on a busy machine). */
    assert_true(s->changes >= 30);
    assert_true(s->nice_hi >= 15);
    assert_int_equal(s->nice_lo, geteuid() == 0 ? -20 : 0);
    assert_true(distinct >= 10);
}

static void test_affinity_churn(void **state)
{
    (void)state;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t saved, two;
    assert_int_equal(sched_getaffinity(0, sizeof(saved), &saved), 0);
    CPU_ZERO(&two);
    unsigned picked = 0;
    for (int c = 0; c < CPU_SETSIZE && picked < 2; c++)
        if (CPU_ISSET(c, &saved)) {
            CPU_SET(c, &two);
            picked++;
        }
    /* The worker inherits two CPUs (or one on a one-CPU machine). */
    assert_int_equal(sched_setaffinity(0, sizeof(two), &two), 0);
    kt_worker_stats_t st[1];
    run_type(KT_WORK_AFFINITY_CHURN, 1, 300, st);
    assert_int_equal(sched_setaffinity(0, sizeof(saved), &saved), 0);
    const kt_wl_slot_t *s = &g.slots[0];
    print_message("# affinity-churn: %llu changes, %u CPUs used, %llu migrations (%ld online)\n",
                  (unsigned long long)s->changes, kt_cpumask_weight(&st[0].cpus_used),
                  (unsigned long long)st[0].migrations, ncpu);
    assert_true(s->changes >= st[0].work_units);
    assert_true(s->changes <= st[0].work_units + 1);
    /* Only the CPUs it was given. */
    for (unsigned c = 0; c < KT_MAX_CPUS; c++)
        if (kt_cpumask_test(&st[0].cpus_used, c))
            assert_true(CPU_ISSET(c, &two));
    if (picked == 2) {
        assert_int_equal(kt_cpumask_weight(&st[0].cpus_used), 2);
        /* Every change is to the other CPU: a migration each. */
        assert_true(st[0].migrations + 2 >= st[0].work_units);
    }
}

static void test_policy_churn(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* back from SCHED_IDLE needs CAP_SYS_NICE (or RLIMIT_NICE) */
    setup_slots(1);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_POLICY_CHURN, 0, 0), 0);
    start_prepared(1);
    unsigned seen = 0;
    for (unsigned k = 0; k < 200; k++) {
        int p = sched_getscheduler(g.pids[0]);
        if (p == SCHED_OTHER)
            seen |= 1;
        else if (p == SCHED_BATCH)
            seen |= 2;
        else if (p == SCHED_IDLE)
            seen |= 4;
        sleep_ms(1);
    }
    kt_workload_stop(g.slots, 0);
    kt_worker_stats_t w;
    assert_int_equal(kt_workload_wait(&g.slots[0], KT_WL_DONE, 2000), 0);
    assert_int_equal(kt_workload_collect(&g.slots[0], &w), 0);
    assert_string_equal(g.slots[0].error, "");
    assert_int_equal(reap(0), 0);
    print_message("# policy-churn: %llu units, %llu changes, policies seen 0x%x\n",
                  (unsigned long long)w.work_units, (unsigned long long)g.slots[0].changes, seen);
    assert_true(w.work_units > 10);
    assert_true(g.slots[0].changes + 1 >= w.work_units);
    assert_true(g.slots[0].changes <= w.work_units);
    /* The kernel saw the policy change: at least two of the three. */
    assert_true(__builtin_popcount(seen) >= 2);
}

static void test_page_fault_churn(void **state)
{
    (void)state;
    kt_worker_stats_t st[1];
    run_type(KT_WORK_PAGE_FAULT_CHURN, 1, 300, st);
    uint64_t minflt = g.slots[0].minflt;
    print_message("# page-fault-churn: %llu pages touched, the kernel counted %llu faults\n",
                  (unsigned long long)st[0].work_units, (unsigned long long)minflt);
    assert_true(st[0].work_units >= 256);
    /* Every touch was a fault the kernel counted, and little else was. */
    assert_true(minflt >= st[0].work_units * 9 / 10);
    assert_true(minflt <= st[0].work_units * 11 / 10 + 64);
    assert_always_runnable(&st[0]);
    /* A pass is one mapping of 256 pages (the last perhaps cut short). */
    assert_true(st[0].iterations >= st[0].work_units / 256);
    assert_true(st[0].iterations <= st[0].work_units / 256 + 1);
}

static void test_mutex_contention(void **state)
{
    (void)state;
    kt_worker_stats_t st[4];
    run_type(KT_WORK_MUTEX_CONTENTION, 4, 400, st);
    uint64_t waits = 0;
    for (unsigned i = 0; i < 4; i++) {
        assert_true(st[i].work_units > 0);
        waits += st[i].wake_count;
        if (st[i].wake_count) {
            assert_wake_stats(&st[i]);
            /* Only contended acquisitions count: never more than the units. */
            assert_true(st[i].wake_count <= st[i].work_units + 1);
        }
    }
    /* Four contenders on this machine's CPUs collide. */
    assert_true(waits > 0);
}

/* The test holds the contenders' mutex: nobody gets in, and a stop still
 * ends every contender promptly; handed back, the waits are as long as the
 * hold. */
static void test_mutex_held(void **state)
{
    (void)state;
    setup_slots(4);
    assert_int_equal(kt_workload_prepare(g.slots, 0, KT_WORK_MUTEX_CONTENTION, 0, 0), 0);
    pthread_mutex_t *m = &g.slots[0].group_mutex;
    assert_int_equal(pthread_mutex_lock(m), 0);
    start_prepared(4);
    sleep_ms(200);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&g.slots[i].work_units), 0);
    assert_int_equal(pthread_mutex_unlock(m), 0);
    sleep_ms(100);
    for (unsigned i = 0; i < 4; i++)
        assert_true(atomic_load(&g.slots[i].work_units) > 0);
    /* Held again, then stopped while they wait. */
    assert_int_equal(pthread_mutex_lock(m), 0);
    sleep_ms(50);
    uint64_t t0 = now_ns();
    kt_workload_stop(g.slots, 1);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_DONE, 1000), 0);
    uint64_t took = now_ns() - t0;
    print_message("# mutex-contention: contenders done %.2f ms after stop\n", took / 1e6);
    assert_true(took < 500 * MS);
    assert_int_equal(pthread_mutex_unlock(m), 0);
    for (unsigned i = 0; i < 4; i++) {
        kt_worker_stats_t w;
        assert_int_equal(kt_workload_collect(&g.slots[i], &w), 0);
        assert_string_equal(g.slots[i].error, "");
        /* The first acquisition waited out the 200 ms hold. */
        assert_true(w.wake_lat_max_ns >= 150 * MS);
        assert_int_equal(reap(i), 0);
    }
}

/* One fan-out member frozen: the round never completes, the leader blocks,
 * and a stop still ends everyone else promptly. The leader frozen: the
 * members block on the next round, likewise. */
static void stop_wakes_frozen_fan_out(enum kt_work_type type, unsigned frozen)
{
    setup_slots(5);
    assert_int_equal(kt_workload_prepare(g.slots, 0, type, 0, 0), 0);
    start_prepared(5);
    sleep_ms(100);
    freeze(g.pids[frozen]);
    sleep_ms(50);
    unsigned other = frozen == 0 ? 1 : 0;
    uint64_t units = atomic_load(&g.slots[other].work_units);
    sleep_ms(100);
    assert_true(units > 0);
    assert_true(atomic_load(&g.slots[other].work_units) <= units + 1);

    uint64_t t0 = now_ns();
    kt_workload_stop(g.slots, other);
    for (unsigned i = 0; i < 5; i++) {
        if (i == frozen)
            continue;
        assert_int_equal(kt_workload_wait(&g.slots[i], KT_WL_DONE, 1000), 0);
    }
    uint64_t took = now_ns() - t0;
    print_message("# %s: blocked members done %.2f ms after stop (member %u frozen)\n",
                  kt_work_type_name(type), took / 1e6, frozen);
    assert_true(took < 1000 * MS);
    assert_int_equal(atomic_load(&g.slots[frozen].state), KT_WL_STOP);
    for (unsigned i = 0; i < 5; i++) {
        if (i == frozen)
            continue;
        kt_worker_stats_t w;
        assert_int_equal(kt_workload_collect(&g.slots[i], &w), 0);
        assert_true(w.max_gap_ns >= 100 * MS);
        assert_int_equal(reap(i), 0);
    }
    assert_int_equal(kill(g.pids[frozen], SIGCONT), 0);
    assert_int_equal(kt_workload_wait(&g.slots[frozen], KT_WL_DONE, 2000), 0);
    assert_int_equal(reap(frozen), 0);
}

static void test_stop_wakes_frozen_fan_out_member(void **state)
{
    (void)state;
    stop_wakes_frozen_fan_out(KT_WORK_FUTEX_FAN_OUT, 3);
}

static void test_stop_wakes_frozen_fan_out_leader(void **state)
{
    (void)state;
    stop_wakes_frozen_fan_out(KT_WORK_FAN_OUT_COMPUTE, 0);
}

/* A cache-pipe pair with one side frozen, like the other pairs. */
static void test_stop_wakes_frozen_cache_pipe(void **state)
{
    (void)state;
    stop_wakes_frozen_pair(KT_WORK_CACHE_PIPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_slots_new, teardown),
        cmocka_unit_test_teardown(test_prepare, teardown),
        cmocka_unit_test_teardown(test_wait_times_out, teardown),
        cmocka_unit_test_teardown(test_collect_math, teardown),
        cmocka_unit_test_teardown(test_spin, teardown),
        cmocka_unit_test_teardown(test_collect_policy, teardown),
        cmocka_unit_test_teardown(test_yield, teardown),
        cmocka_unit_test_teardown(test_mixed, teardown),
        cmocka_unit_test_teardown(test_bursty, teardown),
        cmocka_unit_test_teardown(test_io_sync, teardown),
        cmocka_unit_test_teardown(test_pipe_pingpong, teardown),
        cmocka_unit_test_teardown(test_futex_pingpong, teardown),
        cmocka_unit_test_teardown(test_child_closes_unused_pipes, teardown),
        cmocka_unit_test_teardown(test_sigstop_before_release, teardown),
        cmocka_unit_test_teardown(test_sigstop_mid_run, teardown),
        cmocka_unit_test_teardown(test_stop_wakes_frozen_pipe_pair, teardown),
        cmocka_unit_test_teardown(test_stop_wakes_frozen_futex_pair, teardown),
        cmocka_unit_test_teardown(test_stop_half_released_pipe_pair, teardown),
        cmocka_unit_test_teardown(test_stop_half_released_futex_pair, teardown),
        cmocka_unit_test_teardown(test_release_after_stop, teardown),
        cmocka_unit_test_teardown(test_prepare_groups, teardown),
        cmocka_unit_test_teardown(test_cache_pressure, teardown),
        cmocka_unit_test_teardown(test_cache_yield, teardown),
        cmocka_unit_test_teardown(test_cache_pipe, teardown),
        cmocka_unit_test_teardown(test_futex_fan_out, teardown),
        cmocka_unit_test_teardown(test_fan_out_compute, teardown),
        cmocka_unit_test_teardown(test_sequence, teardown),
        cmocka_unit_test_teardown(test_fork_exit, teardown),
        cmocka_unit_test_teardown(test_nice_sweep, teardown),
        cmocka_unit_test_teardown(test_affinity_churn, teardown),
        cmocka_unit_test_teardown(test_policy_churn, teardown),
        cmocka_unit_test_teardown(test_page_fault_churn, teardown),
        cmocka_unit_test_teardown(test_mutex_contention, teardown),
        cmocka_unit_test_teardown(test_mutex_held, teardown),
        cmocka_unit_test_teardown(test_stop_wakes_frozen_fan_out_member, teardown),
        cmocka_unit_test_teardown(test_stop_wakes_frozen_fan_out_leader, teardown),
        cmocka_unit_test_teardown(test_stop_wakes_frozen_cache_pipe, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
